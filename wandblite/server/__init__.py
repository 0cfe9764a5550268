"""wandblite's server: an HTTP API over a SQL store (SQLite or PostgreSQL) and a media directory.

Layer 5 (``pip install wandblite[server]``): Starlette, uvicorn, SQLAlchemy, psycopg. Never
imported by the SDK and imports nothing from ``wandblite.sync``. One concern a module:

The write side (the store, split the way sqlite-utils splits a database from its tables):

* ``store``       the ``Store`` facade: opens a database and its media directory, delegates below
* ``schema``      the tables (SQLAlchemy Core), nothing else
* ``migrations``  the named, ordered schema steps and the runner (one writer at a time)
* ``db``          engines (SQLite pragmas, ``BEGIN IMMEDIATE``; PostgreSQL pool) and the JSON column codec
* ``wire``        the wire contract's validation: names, hashes, and each batch record's preparation
* ``ingest``      ``apply_batch``: one table of streams (rows, console, system, files, artifacts,
                  uses, alerts), each with its preparation, position and writer; exactly-once
* ``chunks``      the compact history codec: row templates, chunks of rows and of points (zstd)
* ``history_store`` a run's history chunks in the database: appended at ingest, read back as rows and points
* ``indexes``     a row's numeric and typed leaves, the media index built at ingest (and the old pyramid)
* ``auth``        API keys and browser sessions: who is asking (a ``Principal``), audit entries written
* ``users``       users: create, list, disable; optional argon2id passwords
* ``login``       the dashboard's login (password or key) into a session; its throttle; failures audited
* ``access``      project roles, visibility, run ownership and grants (checked in the batch's transaction)
* ``audit``       the audit log, read
* ``media_index`` the media table over ``blobs``
* ``blobs``       media bytes on disk by sha256 (temp file, hash check, rename)

The read side:

* ``read``         projects, one run, history / console / system pages, joined console lines, sampled history
* ``runs_query``   the runs table: the filter language, order and search
* ``regex_guard``  the ``$regex`` cost check (catastrophic backtracking refused before it runs)
* ``series_query`` metric keys and downsampled series from the chunks' statistics
* ``media_query``  media per key, meshes and point clouds
* ``records``      saved files, artifacts, uses and alerts

The edge:

* ``errors``     ``ApiError`` (a ``wandblite.Error``) and the one JSON error shape
* ``app``        the Starlette app: auth (keys, read-only session cookies), body limits, routes
* ``dashboard``  the web UI's routes (and ``/static/vocab.js`` from ``wandblite.vocab``); files in ``static/``
* ``serve``      ``wandblite server``: open the store, print the first admin key, run uvicorn

The wire protocol and the exactly-once argument are in ``PROTOCOL.md`` beside this file.
"""
