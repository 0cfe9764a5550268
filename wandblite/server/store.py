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
``auth.py``         API keys and browser sessions: who is asking (a ``Principal``)
``users.py``        users (optional argon2 passwords)
``login.py``        the dashboard's login (password or key) into a session, its throttle
``access.py``       project roles, visibility, run ownership and grants: who may do what
``audit.py``        the audit log, read (each write records itself in its transaction)
``edits.py``        editing runs: rename, tags, notes, archive, move, delete (``edit_run(store, ...)``)
``workspaces.py``   saved dashboard workspaces: a user's own, the project default, shared snapshots
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

from wandblite.server import (
    access,
    audit,
    auth,
    db,
    ingest,
    login,
    media_index,
    migrations,
    users,
    workspaces,
)
from wandblite.server.auth import Principal
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

    # ---------------------------------------------------------------- api keys, users, browser sessions
    def create_key(self, name: str | None = None, user: str | None = None, scope: str = "write",
                   expires_at: float | None = None, actor: Principal | None = None) -> tuple[int, str]:
        """A new API key of ``user`` (default: the "admin" user): ``(key id, key)``. Only its sha256
        is stored; the key is shown once."""
        return db.retrying(lambda: auth.create_key(self.write_engine, name, user, scope, expires_at, actor),
                           "creating a key")

    def ensure_admin_key(self) -> str | None:
        """On an empty key table create the first (admin) key and return it; else None."""
        return db.retrying(lambda: auth.ensure_admin_key(self.write_engine), "creating the admin key")

    def list_keys(self, user: str | None = None) -> list[dict[str, Any]]:
        return auth.list_keys(self.read_engine, user)

    def revoke_key(self, id_or_prefix: str, actor: Principal | None = None) -> int:
        """Revoke by key id, by the shown prefix, or by the full key; returns how many were revoked."""
        return db.retrying(lambda: auth.revoke_key(self.write_engine, id_or_prefix, actor), "revoking a key")

    def check_key(self, key: str | None) -> bool:
        return auth.check_key(self.read_engine, key)

    def principal_of_key(self, key: str | None) -> Principal | None:
        return auth.principal_of_key(self.read_engine, key)

    def principal_of_session(self, token: str | None) -> Principal | None:
        return auth.principal_of_session(self.read_engine, token)

    def create_user(self, name: str, password: str | None = None, admin: bool = False,
                    actor: Principal | None = None) -> int:
        return db.retrying(lambda: users.create_user(self.write_engine, name, password, admin, actor), "creating a user")

    def list_users(self) -> list[dict[str, Any]]:
        return users.list_users(self.read_engine)

    def disable_user(self, name: str, actor: Principal | None = None) -> bool:
        return db.retrying(lambda: users.disable_user(self.write_engine, name, actor), "disabling a user")

    def set_password(self, name: str, password: str | None) -> None:
        db.retrying(lambda: users.set_password(self.write_engine, name, password), "setting a password")

    def check_password(self, name: str, password: str) -> bool:
        return users.check_password(self.read_engine, name, password)

    # ---------------------------------------------------------------- project roles, grants, the audit log
    def check_read(self, actor: Principal, project: str, public_read: bool = False) -> None:
        access.check_read(self.read_engine, actor, project, public_read)

    def check_media_read(self, actor: Principal, sha: str, public_read: bool = False) -> None:
        access.check_media_read(self.read_engine, actor, sha, public_read)

    def role_of(self, actor: Principal, project: str) -> str | None:
        return access.role_of(self.read_engine, actor, project)

    def readable_projects(self, actor: Principal, public_read: bool = False) -> set[str] | None:
        return access.readable_projects(self.read_engine, actor, public_read)

    def set_member(self, project: str, user: str, role: str, actor: Principal | None = None) -> str:
        return db.retrying(lambda: access.set_member(self.write_engine, project, user, role, actor), "setting a role")

    def remove_member(self, project: str, user: str, actor: Principal | None = None) -> bool:
        return db.retrying(lambda: access.remove_member(self.write_engine, project, user, actor), "removing a member")

    def list_members(self, project: str) -> dict[str, Any]:
        return access.list_members(self.read_engine, project)

    def set_visibility(self, project: str, visibility: str, actor: Principal | None = None) -> None:
        db.retrying(lambda: access.set_visibility(self.write_engine, project, visibility, actor), "setting visibility")

    def grant(self, project: str, run_id: str, key_id: int, actor: Principal | None = None) -> None:
        db.retrying(lambda: access.grant(self.write_engine, project, run_id, key_id, actor), "granting a key")

    def audit(self, project: str | None = None, limit: int = 1000, before: int | None = None) -> dict[str, Any]:
        return audit.entries(self.read_engine, project, limit, before)

    def create_session(self, key: str | None) -> str | None:
        """A new session token for a valid, unrevoked API key (None for a bad key)."""
        return db.retrying(lambda: auth.create_session(self.write_engine, key), "opening a session")

    def open_session(self, body: Any, client: str | None = None) -> str:
        """A session token for a login body (``{"user", "password"}`` or ``{"api_key"}``); 400/401/429
        otherwise (``login.open_session``)."""
        return db.retrying(lambda: login.open_session(self.write_engine, body, client), "logging in")

    def check_session(self, token: str | None) -> bool:
        """True for an unexpired session whose API key is not revoked."""
        return auth.check_session(self.read_engine, token)

    def end_session(self, token: str | None) -> None:
        """Forget a session token (logout); unknown tokens are ignored."""
        db.retrying(lambda: auth.end_session(self.write_engine, token), "ending a session")

    # ---------------------------------------------------------------- saved workspaces
    def workspaces(self, actor: Principal, project: str) -> dict[str, Any]:
        """The asker's own saved workspace and the project default (``workspaces.py``)."""
        return workspaces.get_workspaces(self.read_engine, actor, project)

    def save_workspace(self, actor: Principal, project: str, which: str, doc: Any) -> dict[str, Any]:
        return db.retrying(lambda: workspaces.save(self.write_engine, actor, project, which, doc), "saving a workspace")

    def reset_workspace(self, actor: Principal, project: str, which: str) -> dict[str, Any]:
        return db.retrying(lambda: workspaces.reset(self.write_engine, actor, project, which), "resetting a workspace")

    def share_workspace(self, actor: Principal, project: str, doc: Any) -> dict[str, Any]:
        return db.retrying(lambda: workspaces.share(self.write_engine, actor, project, doc), "sharing a workspace")

    def workspace_view(self, project: str, view_id: str) -> dict[str, Any]:
        return workspaces.get_view(self.read_engine, project, view_id)

    # ---------------------------------------------------------------- runs and batches
    def position(self, project: str, run_id: str) -> dict[str, Any]:
        """Where the store stands for a run (zeros for an unknown run)."""
        return ingest.position(self.read_engine, project, run_id)

    def apply_batch(self, project: str, run_id: str, body: Any, actor: Principal | None = None) -> dict[str, Any]:
        """Apply one batch (see PROTOCOL.md) in one transaction, as ``actor`` (None: the embedded
        store, as the server's admin); return the new position."""
        return db.retrying(lambda: ingest.apply_batch(self.write_engine, project, run_id, body, self.missing_media,
                                                      actor),
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
