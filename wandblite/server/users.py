"""The server's users: named accounts that hold API keys, with an optional password.

Layer 5 (the server). What it promises:

* A user has a unique name (``validate_user_name``: 1-64 letters, digits, ``_ . @ -``), is created
  once (``create_user``; 409 for a taken name), may be disabled (``disable_user``: from then on
  none of the user's keys or sessions pass, ``auth.py``) and is never deleted, so the audit log
  and run ownership keep naming them.
* The "admin" user (``vocab.ADMIN_USER``, made by migration 0007) is the server's administrator.
  It cannot be disabled (the server would lose its operator).
* A password is optional (keys stay the way scripts authenticate; a password is for the dashboard's
  login). Only its argon2id hash is stored (argon2-cffi's ``PasswordHasher``, imported when first
  needed); ``check_password`` answers the same way, after the same argon2 work, for an unknown user,
  a disabled one, a user without a password and a wrong password.
* Creating and disabling a user is recorded in the audit log in the same transaction.
"""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from wandblite.server.auth import Principal, record
from wandblite.server.errors import ApiError, bad_request, not_found
from wandblite.server.schema import api_keys, users
from wandblite.vocab import ADMIN_USER

__all__ = ["USER_NAME_PATTERN", "check_password", "create_user", "disable_user", "list_users", "set_password", "validate_user_name"]

#: A user name (the OpenAPI contract's path pattern too).
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$"
_NAME = re.compile(USER_NAME_PATTERN)


def validate_user_name(name: Any) -> str:
    """``name`` when it is a valid user name, else a 400 saying what a name may hold."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad_request(f"invalid user name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-', "
                          "starting with a letter or digit")
    return name


def _hasher() -> Any:
    from argon2 import PasswordHasher  # the server extra; only password work needs it

    return PasswordHasher()


def create_user(engine: Engine, name: str, password: str | None = None, admin: bool = False,
                actor: Principal | None = None) -> int:
    """A new user; returns its id. 409 ``exists`` when the name is taken."""
    validate_user_name(name)
    pw_hash = _hasher().hash(password) if password else None
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first() is not None:
            raise ApiError(409, "exists", f"a user {name!r} exists already")
        try:
            with conn.begin_nested():
                uid = int(conn.execute(users.insert().values(
                    name=name, password_hash=pw_hash, is_admin=admin, created_at=time.time())).inserted_primary_key[0])  # type: ignore[index]
        except sa.exc.IntegrityError:
            raise ApiError(409, "exists", f"a user {name!r} exists already") from None
        record(conn, actor, "user.created", {"user": name, "admin": admin, "password": bool(password)})
        return uid


def list_users(engine: Engine) -> list[dict[str, Any]]:
    """Every user: name, admin, created_at, disabled_at, whether a password is set, live keys."""
    live = (sa.select(sa.func.count()).select_from(api_keys)
            .where(api_keys.c.user_id == users.c.id, api_keys.c.revoked_at.is_(None)).scalar_subquery())
    q = sa.select(users, live.label("keys")).order_by(users.c.name)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [{"name": r["name"], "admin": bool(r["is_admin"]), "created_at": r["created_at"],
             "disabled_at": r["disabled_at"], "password": r["password_hash"] is not None, "keys": int(r["keys"])}
            for r in rows]


def disable_user(engine: Engine, name: str, actor: Principal | None = None) -> bool:
    """Disable a user (their keys and sessions stop passing); False when already disabled."""
    if name == ADMIN_USER:
        raise bad_request(f"the {ADMIN_USER!r} user cannot be disabled; revoke its keys instead")
    with engine.begin() as conn:
        row = conn.execute(sa.select(users.c.id, users.c.disabled_at).where(users.c.name == name)).first()
        if row is None:
            raise not_found(f"no user {name!r}")
        if row.disabled_at is not None:
            return False
        conn.execute(users.update().where(users.c.id == row.id).values(disabled_at=time.time()))
        record(conn, actor, "user.disabled", {"user": name})
        return True


def set_password(engine: Engine, name: str, password: str | None) -> None:
    """Set (or, with None, remove) a user's password."""
    pw_hash = _hasher().hash(password) if password else None
    with engine.begin() as conn:
        if not conn.execute(users.update().where(users.c.name == name).values(password_hash=pw_hash)).rowcount:
            raise not_found(f"no user {name!r}")


#: A hash of no one's password, verified when there is no hash to check, so that an unknown user, a
#: disabled one and one without a password cost the same argon2 work as a wrong password (made once).
_NO_ONE: list[str] = []


def _no_one_hash() -> str:
    if not _NO_ONE:
        import secrets

        _NO_ONE.append(_hasher().hash(secrets.token_urlsafe(24)))
    return _NO_ONE[0]


def check_password(engine: Engine, name: str, password: str) -> bool:
    """True when ``name`` is an enabled user whose password is ``password``. Every other case (an
    unknown or disabled user, a user without a password) verifies a password against a hash all the
    same, so that the time taken does not tell them apart from a wrong password."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users.c.password_hash).where(
            users.c.name == name, users.c.disabled_at.is_(None))).first()
    stored = row.password_hash if row is not None else None
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        ok = bool(_hasher().verify(stored or _no_one_hash(), password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored is not None
