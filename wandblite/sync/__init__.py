"""The client side of ``wandblite sync``: exactly-once upload of run directories to a store.

Layer 5. ``requests`` is imported only here (``transport``). Imports nothing from
``wandblite.server``, lazily or not: the embedded local store (no server configured) is reached
through ``wandblite.embedded.LocalTransport``, a layer above both, which the CLI hands to the client.

* ``client``     ``Syncer`` (one-shot and ``--watch``), ``RunTail`` (incremental fold of one run), ``plan``
* ``transport``  ``HttpTransport`` (retries with backoff); the sync errors (a branch of ``wandblite.Error``)

The protocol is ``wandblite/server/PROTOCOL.md``.
"""
