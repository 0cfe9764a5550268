"""API keys, users' identities and browser sessions: who is asking.

Layer 5 (the server). Functions over the store's engines (a write engine for changes, a read engine
for checks). What it promises:

* A key is ``wl_`` + 32 random bytes (URL-safe base64), shown once by ``create_key``; only its
  sha256 is stored, with a short prefix that tells keys apart in ``list_keys``. A key belongs to a
  user (``users.py``; the "admin" user when none is named), has a scope (read, write, admin:
  ``vocab.KEY_SCOPES``; admin only for a server admin's key) and an optional expiry. A revoked or
  expired key, or a key of a disabled user, never passes ``principal_of_key`` again.
* ``principal_of_key``/``principal_of_session`` say who is asking (a ``Principal``: user, key id,
  scope, whether the user is the server's admin) or None.
* A browser session is ``wls_`` + 32 random bytes, kept ``SESSION_SECONDS`` (30 days); only its
  sha256 is stored. A session opened by a valid key is tied to that key, so revoking the key (or
  disabling its user) ends it, and it acts with the key's scope. A session opened by a user's
  password (``login.py`` checks it) is tied to the user: it acts with the user's roles (scope
  write; admin for the server's admin user) and disabling the user ends it. Opening a session
  sweeps expired ones.
* Nothing is kept in the process: every check reads the database, so a key revoked or a session
  opened or ended through one server process holds at once in every other process on the database.
* Creating and revoking a key is recorded in the audit log in the same transaction (``audit.py``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.db import dumps
from wandblite.server.errors import ApiError, bad_request, not_found
from wandblite.server.schema import api_keys, audit_log, sessions, users
from wandblite.server.wire import clean_text
from wandblite.vocab import ADMIN_USER, AUDIT_ACTIONS, KEY_SCOPES

__all__ = [
    "SESSION_SECONDS", "Principal", "admin_user_id", "check_key", "check_session", "create_key", "create_session",
    "end_session", "ensure_admin_key", "list_keys", "new_session", "principal_of_key", "principal_of_session",
    "record", "revoke_key", "session_scope",
]

#: How long a browser session lasts: 30 days.
SESSION_SECONDS = 30 * 86400.0


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user through one of their keys, anonymous (``user_id`` None, scope "") or the
    server's own command line (``client`` "cli", no user, every right)."""

    user_id: int | None
    user: str | None
    key_id: int | None
    scope: str  # "" (anonymous), or one of vocab.KEY_SCOPES
    is_admin: bool  # the server's admin (every project as its admin), as far as the scope lets
    client: str | None = None

    def may(self, scope: str) -> bool:
        """Whether the key's scope reaches ``scope`` (read < write < admin)."""
        return bool(self.scope) and KEY_SCOPES.index(self.scope) >= KEY_SCOPES.index(scope)

    @property
    def server_admin(self) -> bool:
        """A server admin's key of write scope or more (a read key of the admin only reads)."""
        return self.is_admin and self.may("write")

    @property
    def reads_whole_audit(self) -> bool:
        """The server admin with an admin-scope key (or a password session): the whole audit log."""
        return self.is_admin and self.may("admin")

    def at(self, client: str | None) -> Principal:
        return Principal(self.user_id, self.user, self.key_id, self.scope, self.is_admin, client)

    @classmethod
    def anonymous(cls, client: str | None = None) -> Principal:
        return cls(None, None, None, "", False, client)

    @classmethod
    def cli(cls) -> Principal:
        """The operator at the server's command line (works on the database directly)."""
        return cls(None, None, None, "admin", True, "cli")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def record(conn: Connection, actor: Principal | None, action: str, detail: dict[str, Any],
           project: str | None = None, run_id: str | None = None) -> None:
    """One audit log entry, in ``conn``'s transaction (``audit.py`` reads them)."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to vocab.AUDIT_ACTIONS")
    a = actor or Principal.cli()
    conn.execute(audit_log.insert().values(ts=time.time(), user_id=a.user_id, key_id=a.key_id, client=a.client,
                                           action=action, project=project, run_id=run_id, detail=dumps(detail)))


def admin_user_id(conn: Connection) -> int:
    """The "admin" user's id, made if missing (migration 0007 makes it; a concurrent maker is met by
    the unique name)."""
    uid = conn.execute(sa.select(users.c.id).where(users.c.name == ADMIN_USER)).scalar()
    if uid is not None:
        return int(uid)
    try:
        with conn.begin_nested():
            conn.execute(users.insert().values(name=ADMIN_USER, is_admin=True, created_at=time.time()))
    except sa.exc.IntegrityError:
        pass
    return int(conn.execute(sa.select(users.c.id).where(users.c.name == ADMIN_USER)).scalar_one())


def _insert_key(conn: Connection, name: str | None, user_id: int, scope: str,
                expires_at: float | None) -> tuple[int, str]:
    key = "wl_" + secrets.token_urlsafe(32)
    res = conn.execute(api_keys.insert().values(
        name=clean_text(name, "key name", 200), prefix=key[:10], key_hash=_hash(key), created_at=time.time(),
        user_id=user_id, scope=scope, expires_at=expires_at,
    ))
    return int(res.inserted_primary_key[0]), key  # type: ignore[index]


def create_key(engine: Engine, name: str | None = None, user: str | None = None, scope: str = "write",
               expires_at: float | None = None, actor: Principal | None = None) -> tuple[int, str]:
    """A new API key of ``user`` (default: the "admin" user): ``(key id, key)``. Only its sha256 is
    stored; the key is shown once. ``scope`` admin is only for a server admin's key; a disabled
    user gets none (400); an unknown user is a 404."""
    if scope not in KEY_SCOPES:
        raise bad_request(f"scope must be one of {', '.join(KEY_SCOPES)}, not {scope!r}")
    if expires_at is not None and expires_at <= time.time():
        raise bad_request("the expiry is in the past")
    with engine.begin() as conn:
        if user is None:
            uid, is_admin, disabled = admin_user_id(conn), True, None
        else:
            row = conn.execute(sa.select(users.c.id, users.c.is_admin, users.c.disabled_at)
                               .where(users.c.name == user)).first()
            if row is None:
                raise not_found(f"no user {user!r}; create it with `wandblite server users create {user}`")
            uid, is_admin, disabled = int(row.id), bool(row.is_admin), row.disabled_at
        if disabled is not None:
            raise bad_request(f"user {user!r} is disabled")
        if scope == "admin" and not is_admin:
            raise ApiError(403, "forbidden", f"only the server admin's keys may have the admin scope, not {user!r}'s")
        key_id, key = _insert_key(conn, name, uid, scope, expires_at)
        record(conn, actor, "key.created", {"key_id": key_id, "user": user or ADMIN_USER, "scope": scope,
                                            "name": name, "expires_at": expires_at})
        return key_id, key


def ensure_admin_key(engine: Engine) -> str | None:
    """On an empty key table create the first key (the "admin" user's, admin scope) and return it;
    else None.

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
        key_id, key = _insert_key(conn, "admin", admin_user_id(conn), "admin", None)
        record(conn, Principal(None, None, None, "admin", True, "first start"), "key.created",
               {"key_id": key_id, "user": ADMIN_USER, "scope": "admin", "name": "admin", "expires_at": None})
        return key


def list_keys(engine: Engine, user: str | None = None) -> list[dict[str, Any]]:
    """Every key ever created (never the key itself), of ``user`` if named: id, name, prefix,
    created_at, revoked_at, user, scope, expires_at."""
    q = (sa.select(api_keys, users.c.name.label("user"))
         .select_from(api_keys.outerjoin(users, users.c.id == api_keys.c.user_id)).order_by(api_keys.c.id))
    if user is not None:
        q = q.where(users.c.name == user)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [{"id": r["id"], "name": r["name"], "prefix": r["prefix"], "created_at": r["created_at"],
             "revoked_at": r["revoked_at"], "user": r["user"], "scope": r["scope"], "expires_at": r["expires_at"]}
            for r in rows]


def revoke_key(engine: Engine, id_or_prefix: str, actor: Principal | None = None) -> int:
    """Revoke by key id, by the shown prefix, or by the full key; returns how many were revoked."""
    with engine.begin() as conn:
        cond: Any
        if id_or_prefix.isdigit():
            cond = api_keys.c.id == int(id_or_prefix)
        elif id_or_prefix.startswith("wl_") and len(id_or_prefix) > 20:
            cond = api_keys.c.key_hash == _hash(id_or_prefix)
        else:
            cond = api_keys.c.prefix == id_or_prefix
        live = (cond, api_keys.c.revoked_at.is_(None))
        ids = [int(i) for (i,) in conn.execute(sa.select(api_keys.c.id).where(*live))]
        res = conn.execute(api_keys.update().where(*live).values(revoked_at=time.time()))
        for key_id in ids:
            record(conn, actor, "key.revoked", {"key_id": key_id})
        return int(res.rowcount)


def _valid(now: float) -> tuple[Any, ...]:
    """The conditions a key (joined with its user) must meet to pass."""
    return (api_keys.c.revoked_at.is_(None), sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
            users.c.disabled_at.is_(None))


def _principal(row: Any) -> Principal | None:
    if row is None:
        return None
    return Principal(int(row.user_id), str(row.name), int(row.id), str(row.scope or "admin"), bool(row.is_admin))


_WHO = (api_keys.c.id, api_keys.c.user_id, api_keys.c.scope, users.c.name, users.c.is_admin)


def principal_of_key(engine: Engine, key: str | None) -> Principal | None:
    """Who holds ``key``: None for a wrong, revoked or expired key or one of a disabled user."""
    if not key:
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_WHO).join(users, users.c.id == api_keys.c.user_id).where(
            api_keys.c.key_hash == _hash(key), *_valid(time.time()))).first()
    return _principal(row)


def check_key(engine: Engine, key: str | None) -> bool:
    """True for a key that passes (``principal_of_key``)."""
    return principal_of_key(engine, key) is not None


def new_session(conn: Connection, now: float, key_id: int | None = None, user_id: int | None = None) -> str:
    """Store a new session of a key or (``key_id`` None) of a user, in ``conn``'s transaction; its token."""
    token = "wls_" + secrets.token_urlsafe(32)
    conn.execute(sessions.delete().where(sessions.c.expires_at < now))  # keep the table small
    conn.execute(sessions.insert().values(token_hash=_hash(token), key_id=key_id, user_id=user_id, created_at=now,
                                          expires_at=now + SESSION_SECONDS))
    return token


def session_scope(is_admin: bool) -> str:
    """The scope of a session opened by a user's password: what the user's roles allow (write), and
    the admin scope for the server's admin, who proved who they are as a key would."""
    return "admin" if is_admin else "write"


def create_session(engine: Engine, key: str | None) -> str | None:
    """A new session token for a valid API key (None for a bad key); only its hash is kept."""
    if not key:
        return None
    now = time.time()
    with engine.begin() as conn:
        key_id = conn.execute(sa.select(api_keys.c.id).join(users, users.c.id == api_keys.c.user_id).where(
            api_keys.c.key_hash == _hash(key), *_valid(now))).scalar()
        if key_id is None:
            return None
        return new_session(conn, now, key_id=int(key_id))


def principal_of_session(engine: Engine, token: str | None) -> Principal | None:
    """Who opened an unexpired session: the holder of a key that still passes (revoking a key ends
    its sessions), or an enabled user who logged in with a password (disabling the user ends them)."""
    if not token:
        return None
    now = time.time()
    owner = sa.func.coalesce(api_keys.c.user_id, sessions.c.user_id)
    key_ok = sa.or_(sessions.c.key_id.is_(None), sa.and_(
        api_keys.c.revoked_at.is_(None), sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now)))
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(api_keys.c.id, api_keys.c.scope, users.c.id.label("user_id"), users.c.name, users.c.is_admin)
            .select_from(sessions.outerjoin(api_keys, api_keys.c.id == sessions.c.key_id)
                         .join(users, users.c.id == owner))
            .where(sessions.c.token_hash == _hash(token), sessions.c.expires_at > now, users.c.disabled_at.is_(None),
                   key_ok)
        ).first()
    if row is None:
        return None
    if row.id is None:
        return Principal(int(row.user_id), str(row.name), None, session_scope(bool(row.is_admin)), bool(row.is_admin))
    return _principal(row)


def check_session(engine: Engine, token: str | None) -> bool:
    """True for an unexpired session whose key still passes."""
    return principal_of_session(engine, token) is not None


def end_session(engine: Engine, token: str | None) -> None:
    """Forget a session token (logout); unknown tokens are ignored."""
    if token:
        with engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.token_hash == _hash(token)))
