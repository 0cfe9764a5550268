"""The dashboard's login: a user name and password, or an API key, in; a browser session out.

Layer 5 (the server). ``open_session`` checks the credentials and opens the session (``auth.py``
keeps it); the HTTP app only sets the cookie. What it promises:

* A password is checked by ``users.check_password`` (argon2id). A wrong password, an unknown user,
  a disabled one and one without a password get the same 401 after the same argon2 work, so the
  answer tells no one which user names exist.
* Failed password logins are counted per submitted name in the database (``login_failures``, shared
  by every replica; nothing is kept in the process): after ``LOGIN_MAX_FAILURES`` failures within
  ``LOGIN_WINDOW_SECONDS`` that name is answered 429 ``too_many_attempts`` (with ``retry_after``
  seconds) until the window ends, whatever the password, right or wrong; a success clears the count.
  Names that exist and names that do not are counted alike.
* Every failed login (a wrong key included) is an audit entry ``login.failed`` with the client's
  address and the name tried (never the password or key); every session opened is ``session.opened``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server import users as user_accounts
from wandblite.server.auth import Principal, create_session, new_session, principal_of_session, record
from wandblite.server.errors import ApiError, bad_request, unauthorized
from wandblite.server.schema import login_failures, users

__all__ = ["LOGIN_MAX_FAILURES", "LOGIN_WINDOW_SECONDS", "MAX_PASSWORD_CHARS", "open_session"]

#: Failed password logins of one name allowed within ``LOGIN_WINDOW_SECONDS`` before it is refused.
LOGIN_MAX_FAILURES = 10
#: The throttle's window: 15 minutes from a name's first counted failure.
LOGIN_WINDOW_SECONDS = 900.0
#: The longest password a login may send (a longer one is a 400: no argon2 work spent on it).
MAX_PASSWORD_CHARS = 1024

_USER_NAME = re.compile(user_accounts.USER_NAME_PATTERN)
_WRONG = "wrong user name or password"


def open_session(engine: Engine, body: Any, client: str | None) -> str:
    """A session token for the login ``body``: ``{"user", "password"}`` or ``{"api_key"}``.

    400 for a body of neither shape, 401 for credentials that do not pass, 429 for a throttled name.
    """
    if not isinstance(body, dict):
        raise bad_request('expected {"user": "...", "password": "..."} or {"api_key": "..."}')
    key, name, password = body.get("api_key"), body.get("user"), body.get("password")
    if isinstance(key, str) and name is None and password is None:
        return _by_key(engine, key, client)
    if isinstance(name, str) and isinstance(password, str) and key is None:
        if len(password) > MAX_PASSWORD_CHARS:
            raise bad_request(f"a password has at most {MAX_PASSWORD_CHARS} characters")
        return _by_password(engine, name, password, client)
    raise bad_request('expected {"user": "...", "password": "..."} or {"api_key": "..."}')


def _anonymous(client: str | None) -> Principal:
    return Principal.anonymous(client)


def _by_key(engine: Engine, key: str, client: str | None) -> str:
    token = create_session(engine, key)
    if token is None:
        with engine.begin() as conn:
            record(conn, _anonymous(client), "login.failed", {"method": "key"})
        raise unauthorized("that API key is not valid (wrong, revoked or expired, or its user is disabled)")
    who = principal_of_session(engine, token)
    with engine.begin() as conn:
        record(conn, who.at(client) if who else _anonymous(client), "session.opened", {"method": "key"})
    return token


def _throttled(conn: Connection, name: str, now: float) -> float | None:
    """Seconds until ``name`` may try again, or None when it may now."""
    row = conn.execute(sa.select(login_failures.c.failures, login_failures.c.window_start)
                       .where(login_failures.c.name == name)).first()
    if row is None or row.window_start <= now - LOGIN_WINDOW_SECONDS or row.failures < LOGIN_MAX_FAILURES:
        return None
    return max(1.0, row.window_start + LOGIN_WINDOW_SECONDS - now)


def _count_failure(conn: Connection, name: str, now: float) -> None:
    """One more failure of ``name`` (a new window when the last one is over); sweeps ended windows."""
    lf = login_failures.c
    conn.execute(login_failures.delete().where(lf.window_start <= now - LOGIN_WINDOW_SECONDS, lf.name != name))
    fresh = lf.window_start > now - LOGIN_WINDOW_SECONDS
    done = conn.execute(login_failures.update().where(lf.name == name).values(
        failures=sa.case((fresh, lf.failures + 1), else_=1),
        window_start=sa.case((fresh, lf.window_start), else_=now))).rowcount
    if not done:
        try:
            with conn.begin_nested():
                conn.execute(login_failures.insert().values(name=name, failures=1, window_start=now))
        except sa.exc.IntegrityError:  # another replica counted this name's first failure at the same moment
            conn.execute(login_failures.update().where(lf.name == name).values(failures=lf.failures + 1))


def _by_password(engine: Engine, name: str, password: str, client: str | None) -> str:
    countable = bool(_USER_NAME.fullmatch(name))  # a name no user can have is never stored in the throttle
    shown = name[:128]
    now = time.time()
    if countable:
        with engine.connect() as conn:
            wait = _throttled(conn, name, now)
        if wait is not None:
            with engine.begin() as conn:
                record(conn, _anonymous(client), "login.failed", {"method": "password", "user": shown,
                                                                  "throttled": True})
            raise ApiError(429, "too_many_attempts",
                           f"too many failed logins for this user name: try again in {int(wait) + 1} seconds",
                           retry_after=int(wait) + 1)
    ok = countable and user_accounts.check_password(engine, name, password)
    if not countable:
        user_accounts.check_password(engine, "", password)  # the same argon2 work as any other failure
    with engine.begin() as conn:
        if ok:
            row = conn.execute(sa.select(users.c.id, users.c.is_admin).where(
                users.c.name == name, users.c.disabled_at.is_(None))).first()
            if row is not None:
                conn.execute(login_failures.delete().where(login_failures.c.name == name))
                token = new_session(conn, now, user_id=int(row.id))
                who = Principal(int(row.id), name, None, "write", bool(row.is_admin), client)
                record(conn, who, "session.opened", {"method": "password"})
                return token
        if countable:
            _count_failure(conn, name, now)
        record(conn, _anonymous(client), "login.failed", {"method": "password", "user": shown})
    raise unauthorized(_WRONG)
