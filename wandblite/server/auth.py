"""API keys and browser sessions: who may read and write the store.

Layer 5 (the server). Functions over the store's engines (a write engine for changes, a read engine
for checks). What it promises:

* A key is ``wl_`` + 32 random bytes (URL-safe base64), shown once by ``create_key``; only its
  sha256 is stored, with a short prefix that tells keys apart in ``list_keys``. A revoked key
  (``revoke_key``: by id, shown prefix or the full key) never passes ``check_key`` again.
* A browser session is ``wls_`` + 32 random bytes, opened only by a valid, unrevoked key and kept
  ``SESSION_SECONDS`` (30 days); only its sha256 is stored, tied to the key that opened it.
  ``check_session`` joins the key, so revoking a key ends its sessions. Opening a session sweeps
  expired ones.
* Nothing is kept in the process: every check reads the database, so a key revoked or a session
  opened or ended through one server process holds at once in every other process on the database.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.schema import api_keys, sessions
from wandblite.server.wire import clean_text

__all__ = [
    "SESSION_SECONDS", "check_key", "check_session", "create_key", "create_session", "end_session",
    "ensure_admin_key", "list_keys", "revoke_key",
]

#: How long a browser session lasts: 30 days.
SESSION_SECONDS = 30 * 86400.0


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _insert_key(conn: Connection, name: str | None) -> tuple[int, str]:
    key = "wl_" + secrets.token_urlsafe(32)
    res = conn.execute(api_keys.insert().values(
        name=clean_text(name, "key name", 200), prefix=key[:10], key_hash=_hash(key), created_at=time.time(),
    ))
    return int(res.inserted_primary_key[0]), key  # type: ignore[index]


def create_key(engine: Engine, name: str | None = None) -> tuple[int, str]:
    """A new API key: ``(key id, key)``. Only its sha256 is stored; the key is shown once."""
    with engine.begin() as conn:
        return _insert_key(conn, name)


def ensure_admin_key(engine: Engine) -> str | None:
    """On an empty key table create the first (admin) key and return it; else None.

    The look and the insert are one transaction holding the key table's write lock (SQLite's
    ``BEGIN IMMEDIATE``; PostgreSQL ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE``, which blocks
    other writers of the table but not readers), so replicas starting together on an empty
    database make exactly one admin key between them, shown by the one that made it.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"LOCK TABLE {api_keys.name} IN SHARE ROW EXCLUSIVE MODE"))
        if conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one():
            return None
        return _insert_key(conn, "admin")[1]


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    """Every key ever created (never the key itself): id, name, prefix, created_at, revoked_at."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).mappings().all()
    return [{"id": r["id"], "name": r["name"], "prefix": r["prefix"], "created_at": r["created_at"],
             "revoked_at": r["revoked_at"]} for r in rows]


def revoke_key(engine: Engine, id_or_prefix: str) -> int:
    """Revoke by key id, by the shown prefix, or by the full key; returns how many were revoked."""
    with engine.begin() as conn:
        cond: Any
        if id_or_prefix.isdigit():
            cond = api_keys.c.id == int(id_or_prefix)
        elif id_or_prefix.startswith("wl_") and len(id_or_prefix) > 20:
            cond = api_keys.c.key_hash == _hash(id_or_prefix)
        else:
            cond = api_keys.c.prefix == id_or_prefix
        res = conn.execute(api_keys.update().where(cond, api_keys.c.revoked_at.is_(None)).values(revoked_at=time.time()))
        return int(res.rowcount)


def check_key(engine: Engine, key: str | None) -> bool:
    """True for a key that exists and is not revoked."""
    if not key:
        return False
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(api_keys.c.id).where(api_keys.c.key_hash == _hash(key), api_keys.c.revoked_at.is_(None))
        ).first()
    return row is not None


def create_session(engine: Engine, key: str | None) -> str | None:
    """A new session token for a valid, unrevoked API key (None for a bad key); only its hash is kept."""
    if not key:
        return None
    now = time.time()
    with engine.begin() as conn:
        key_id = conn.execute(sa.select(api_keys.c.id).where(
            api_keys.c.key_hash == _hash(key), api_keys.c.revoked_at.is_(None))).scalar()
        if key_id is None:
            return None
        token = "wls_" + secrets.token_urlsafe(32)
        conn.execute(sessions.delete().where(sessions.c.expires_at < now))  # keep the table small
        conn.execute(sessions.insert().values(token_hash=_hash(token), key_id=key_id, created_at=now,
                                              expires_at=now + SESSION_SECONDS))
    return token


def check_session(engine: Engine, token: str | None) -> bool:
    """True for an unexpired session whose API key is not revoked (revoking a key ends its sessions)."""
    if not token:
        return False
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(sessions.c.key_id).join(api_keys, api_keys.c.id == sessions.c.key_id).where(
                sessions.c.token_hash == _hash(token), sessions.c.expires_at > time.time(),
                api_keys.c.revoked_at.is_(None))
        ).first()
    return row is not None


def end_session(engine: Engine, token: str | None) -> None:
    """Forget a session token (logout); unknown tokens are ignored."""
    if token:
        with engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.token_hash == _hash(token)))
