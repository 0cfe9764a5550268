"""wandblite's server: an HTTP API over a SQL store (SQLite or PostgreSQL) and a media directory.

Layer 5 (``pip install wandblite[server]``): Starlette, uvicorn, SQLAlchemy, psycopg. Never
imported by the SDK and imports nothing from ``wandblite.sync``. Modules:

* ``store``  the tables, migrations, the exactly-once batch apply, API keys, the media index
* ``blobs``  media bytes on disk by sha256 (temp file, hash check, rename)
* ``read``   the read side (projects, runs, history, console, system)
* ``query``  run filters, order and search; downsampled series; media per key; meshes
* ``records`` saved files, artifacts, uses and alerts (read side)
* ``throttle`` which alerts wandb would not have sent (``wait_duration``); stdlib only, shared with ``wandblite show``
* ``app``    the Starlette app: auth (keys, read-only session cookies), body limits, one JSON error shape
* ``dashboard`` the web UI's routes; its files are in ``static/``
* ``serve``  ``wandblite server``: open the store, print the first admin key, run uvicorn

The wire protocol and the exactly-once argument are in ``PROTOCOL.md`` beside this file.
"""
