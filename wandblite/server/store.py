"""The store: one database (SQLite or PostgreSQL) and its blob store (a media directory or a bucket), behind one object.

Layer 5 (the server). SQLAlchemy Core 2.x, one code path for SQLite (the default and the embedded
local store) and PostgreSQL (``postgresql+psycopg://``). Imports nothing from ``wandblite.sync``.

``Store`` is a facade: it opens the engines, migrates, and hands each call to the module that owns
the rule, so callers keep calling ``Store(url).apply_batch(...)``:

==================  ==============================================================================
``schema.py``       the tables
``migrations.py``   the named schema steps and their runner (``migrate``, ``applied_migrations``)
``db.py``           engines (SQLite pragmas, ``BEGIN IMMEDIATE``, the PostgreSQL pool), JSON columns
``wire.py``         validation of names and of a batch's records
``ingest.py``       ``apply_batch`` and ``position``: every batch stream by one mechanism
``indexes.py``      series values and the read indexes (the min/max pyramid, the media index)
``auth.py``         API keys and browser sessions
``media_index.py``  which media blobs are stored (``missing_media``, ``put_media``, ``media_blob``)
``blobs.py``        the blob store: a directory, or a bucket (``blobstore_s3.py``)
==================  ==============================================================================

What it promises: every method is thread-safe (each uses its own connection); a write the database
gave up on transiently (a deadlock, a serialization failure, a locked SQLite file) is run again
inside the store and, if it keeps failing, raises ``ApiError(503, "busy")`` (``db.retrying``);
nothing is kept in the process between calls (keys, sessions, positions are read from the
database each time), so any number of processes may serve one database; ``Store(url)``
applies the migrations not applied yet unless ``migrate=False``; ``Store.embedded()`` is the local
store under ``$WANDBLITE_HOME``. A process kill never loses a committed batch; a power loss may lose
the last ones on SQLite (``synchronous=NORMAL``), which a later sync resends because the server's
position, not the client's memory, decides what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from wandblite.server import auth, db, ingest, media_index, migrations
from wandblite.server.blobs import BlobStore, DiskBlobStore
from wandblite.vocab import home_dir

__all__ = ["Store"]


class Store:
    """One database and its blob store. Thread-safe: every method uses its own connection.

    The blobs live in ``blobs`` when given (a bucket: ``serve.open_blob_store``), else in the
    directory ``media_dir`` (None and None: a store that keeps no bytes, 503 wherever they are needed).
    """

    #: How long a browser session lasts (``auth.SESSION_SECONDS``).
    SESSION_SECONDS = auth.SESSION_SECONDS

    def __init__(self, url: str, media_dir: str | os.PathLike[str] | None = None, migrate: bool = True,
                 blobs: BlobStore | None = None) -> None:
        self.url = db.normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.write_engine, self.read_engine = db.engines(self.url)
        self.media_dir = Path(media_dir) if media_dir is not None else None
        self.blobs = blobs if blobs is not None else DiskBlobStore(self.media_dir) if self.media_dir is not None else None
        if migrate:
            self.migrate()

    @classmethod
    def embedded(cls, home: str | os.PathLike[str] | None = None) -> Store:
        """The embedded local store: ``<home>/store.db`` and ``<home>/media`` (``home``: by default
        wandblite's home directory, ``vocab.home_dir()``)."""
        h = Path(home) if home is not None else home_dir()
        return cls(f"sqlite:///{h / 'store.db'}", media_dir=h / "media")

    def snapshot(self) -> Connection:
        """A read connection whose statements all see one state of the database (``db.snapshot``)."""
        return db.snapshot(self.read_engine)

    def close(self) -> None:
        self.write_engine.dispose()
        self.read_engine.dispose()

    # ---------------------------------------------------------------- migrations
    def migrate(self) -> list[str]:
        """Apply the migrations not applied yet, in order; return their names (``migrations.migrate``)."""
        return migrations.migrate(self.write_engine)

    def applied_migrations(self) -> list[str]:
        return migrations.applied(self.read_engine)

    # ---------------------------------------------------------------- api keys and browser sessions
    def create_key(self, name: str | None = None) -> tuple[int, str]:
        """A new API key: ``(key id, key)``. Only its sha256 is stored; the key is shown once."""
        return db.retrying(lambda: auth.create_key(self.write_engine, name), "creating a key")

    def ensure_admin_key(self) -> str | None:
        """On an empty key table create the first (admin) key and return it; else None."""
        return db.retrying(lambda: auth.ensure_admin_key(self.write_engine), "creating the admin key")

    def list_keys(self) -> list[dict[str, Any]]:
        return auth.list_keys(self.read_engine)

    def revoke_key(self, id_or_prefix: str) -> int:
        """Revoke by key id, by the shown prefix, or by the full key; returns how many were revoked."""
        return db.retrying(lambda: auth.revoke_key(self.write_engine, id_or_prefix), "revoking a key")

    def check_key(self, key: str | None) -> bool:
        return auth.check_key(self.read_engine, key)

    def create_session(self, key: str | None) -> str | None:
        """A new session token for a valid, unrevoked API key (None for a bad key)."""
        return db.retrying(lambda: auth.create_session(self.write_engine, key), "opening a session")

    def check_session(self, token: str | None) -> bool:
        """True for an unexpired session whose API key is not revoked."""
        return auth.check_session(self.read_engine, token)

    def end_session(self, token: str | None) -> None:
        """Forget a session token (logout); unknown tokens are ignored."""
        db.retrying(lambda: auth.end_session(self.write_engine, token), "ending a session")

    # ---------------------------------------------------------------- runs and batches
    def position(self, project: str, run_id: str) -> dict[str, Any]:
        """Where the store stands for a run (zeros for an unknown run)."""
        return ingest.position(self.read_engine, project, run_id)

    def apply_batch(self, project: str, run_id: str, body: Any) -> dict[str, Any]:
        """Apply one batch (see PROTOCOL.md) in one transaction; return the new position."""
        return db.retrying(lambda: ingest.apply_batch(self.write_engine, project, run_id, body, self.missing_media),
                           f"the batch of run {project}/{run_id}")

    # ---------------------------------------------------------------- media
    def missing_media(self, shas: Any) -> list[str]:
        """Which of the sha256s ``shas`` the blob store lacks (a row without its bytes counts as missing)."""
        return media_index.missing(self.read_engine, self.blobs, shas)

    def put_media(self, sha: str, chunks: Iterable[bytes], ext: str | None, limit: int) -> int:
        """Store a blob from byte chunks after checking its sha256; return its size.

        ``limit`` is the caller's blob size limit in bytes (the server's ``--max-blob-size`` or
        ``blobs.max_blob_bytes()``): the store has no default of its own.
        """
        return media_index.put(self.write_engine, self.blobs, sha, chunks, ext, limit)

    def media_blob(self, sha: str) -> media_index.MediaBlob:
        """A stored blob: its size, extension and the ways to serve it (404 when absent)."""
        return media_index.blob(self.read_engine, self.blobs, sha)
