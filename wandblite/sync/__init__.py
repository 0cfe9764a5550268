"""The client side of ``wandblite sync``: exactly-once upload of run directories to a store.

Layer 5. ``requests`` is imported only here (``transport``). Imports nothing from
``wandblite.server`` except, lazily and only for the embedded local store (no server configured),
``wandblite.server.store`` through ``transport.LocalTransport``.

* ``client``     ``Syncer`` (one-shot and ``--watch``), ``RunTail`` (incremental fold of one run), ``plan``
* ``transport``  ``HttpTransport`` (retries with backoff) and ``LocalTransport``; the sync errors

The protocol is ``wandblite/server/PROTOCOL.md``.
"""
