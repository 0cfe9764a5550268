"""Database engines and the JSON column codec: how the store talks to SQLite and PostgreSQL.

Layer 5 (the server). What it promises:

* ``normalize_url`` accepts ``postgresql://`` and ``postgres://`` as ``postgresql+psycopg://``
  (psycopg 3); other URLs pass through.
* ``engines(url)`` gives ``(write, read)`` engines. SQLite: the write engine has ONE connection
  (a pool of one, waited for up to ``WAIT_SECONDS``, first come first served): the writers of a
  process queue for it instead of polling the file lock, and every write transaction is ``BEGIN
  IMMEDIATE`` (other processes' writers are queued by a busy timeout of ``WAIT_SECONDS``, never a
  deadlock upgrading a shared lock); reads use a plain ``BEGIN``; WAL so readers never wait,
  ``synchronous=NORMAL`` so a process kill never loses a committed transaction (a power loss may
  lose the last ones). The file's directory is created. PostgreSQL: one pooled engine (pre-ping,
  8 connections kept, up to ``PG_MAX_CONNECTIONS`` (40, the request threads) while busy, a
  checkout waits up to ``WAIT_SECONDS``) for both.
* ``retrying(fn, what)`` runs ``fn`` (which opens and commits its own transaction) again when the
  database gave up on it for a reason that a later attempt does not meet (``is_transient``:
  PostgreSQL's serialization failure and deadlock, SQLite's "database is locked", a connection
  lost mid-transaction), up to ``RETRY_ATTEMPTS`` times with a jittered backoff and for at most
  ``WAIT_SECONDS``; then, or at once for a full connection pool, it raises ``ApiError(503, "busy")``, which the client retries. A
  failed attempt rolled back whole, so running it again is safe; a lost COMMIT that did happen is
  skipped by the retry as a resent batch is (the position decides).
* ``snapshot(read_engine)``: a read connection whose statements all see one state of the database.
* ``dumps``/``loads``: JSON columns are TEXT written with ``allow_nan=True, ensure_ascii=True``:
  NaN, Infinity and -Infinity survive as the tokens ``NaN``/``Infinity``/``-Infinity`` on both
  databases (the extended JSON Python's json module and wandb's history use), and ``ensure_ascii``
  keeps NUL and lone surrogates out of the database's text encoding.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.errors import ApiError
from wandblite.vocab import json_text

__all__ = ["PG_MAX_CONNECTIONS", "RETRY_ATTEMPTS", "WAIT_SECONDS", "busy", "dumps", "engines", "is_transient", "loads", "normalize_url",
           "retrying", "snapshot"]

T = TypeVar("T")

#: How long a writer waits for its turn (SQLite's busy timeout and write connection, PostgreSQL's pool).
WAIT_SECONDS = 60.0
#: The most PostgreSQL connections one server process opens (8 kept open, the rest while busy).
PG_MAX_CONNECTIONS = 40
#: How many times ``retrying`` runs a transaction the database gave up on before answering 503.
RETRY_ATTEMPTS = 8
#: PostgreSQL SQLSTATEs after which the same transaction, run again, may succeed: serialization
#: failure, deadlock detected, lock not available, too many connections (other processes hold
#: them), and the server shutting down or restarting.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03"})


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as ``postgresql+psycopg://`` (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def dumps(obj: Any) -> str:
    """JSON text for a column: the wire's text (``vocab.json_text``), so a row is stored as sent."""
    return json_text(obj)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:" and not path.startswith("file:"):  # a URI filename (?uri=true) is not a path
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    memory = not path or path == ":memory:" or path.startswith("file:")
    pool: dict[str, Any] = {}
    if immediate and not memory:
        # One write connection per process: writers queue for it (FIFO) rather than spin on the lock.
        pool = {"poolclass": sa.pool.QueuePool, "pool_size": 1, "max_overflow": 0, "pool_timeout": WAIT_SECONDS}
    eng = sa.create_engine(url, connect_args={"timeout": WAIT_SECONDS, "check_same_thread": False}, **pool)

    @sa.event.listens_for(eng, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so that BEGIN IMMEDIATE is ours to send.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(WAIT_SECONDS * 1000)}")
        cur.close()

    @sa.event.listens_for(eng, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock at BEGIN: two writers never deadlock upgrading a
        # shared lock, and the busy timeout queues them instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return eng


def engines(url: str) -> tuple[Engine, Engine]:
    """``(write engine, read engine)`` for a database URL (one shared engine on PostgreSQL)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    # As many connections as request threads (Starlette's pool: 40), so that requests queue for a
    # thread (first come first served, no time limit) rather than time out waiting for a connection.
    eng = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=PG_MAX_CONNECTIONS - 8,
                           pool_timeout=WAIT_SECONDS)
    return eng, eng


def is_transient(exc: BaseException) -> bool:
    """True when the database gave up on a transaction that, run again, may succeed."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True  # the connection died mid-transaction (a restart, a network cut): it rolled back
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    return isinstance(orig, sqlite3.OperationalError) and any(
        w in str(orig) for w in ("database is locked", "database is busy", "database table is locked"))


def retrying(fn: Callable[[], T], what: str) -> T:
    """``fn()``, run again while the database gives up on it transiently (see the module docstring);
    ``ApiError(503, "busy")`` naming ``what`` when it keeps doing so or no connection is free."""
    delay = 0.02
    deadline = time.monotonic() + WAIT_SECONDS
    attempt = 1
    while True:
        try:
            return fn()
        except sa.exc.TimeoutError as exc:
            # Every connection of the pool stayed busy for WAIT_SECONDS: waiting more here only
            # lengthens the queue; the client backs off and comes back.
            raise busy(what, f"no database connection was free within {WAIT_SECONDS:g} s") from exc
        except sa.exc.DBAPIError as exc:
            if not is_transient(exc):
                raise
            # A SQLite writer that waited out the busy timeout would only wait it out again.
            if attempt == RETRY_ATTEMPTS or time.monotonic() > deadline:
                raise busy(what, f"the database gave up on it {attempt} times ({_first_line(exc)})") from exc
        time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: two retried rivals do not meet again
        delay = min(delay * 2, 1.0)
        attempt += 1


def busy(what: str, why: str) -> ApiError:
    """The 503 a client retries: the store could not do ``what`` now; nothing of it was stored."""
    return ApiError(503, "busy", f"{what}: {why}; nothing was changed, retry")


def _first_line(exc: sa.exc.DBAPIError) -> str:
    orig = exc.orig if exc.orig is not None else exc
    text = str(orig).strip()
    return f"{type(orig).__name__}: {text.splitlines()[0]}" if text else type(orig).__name__


def snapshot(read_engine: Engine) -> Connection:
    """A read connection (use it as a context manager) whose statements all see one state of the
    database: a SQLite read transaction already does (WAL), PostgreSQL is asked for REPEATABLE
    READ. For reads that combine a run's position with rows and indexes written after it."""
    conn = read_engine.connect()
    if read_engine.dialect.name != "sqlite":
        conn.execution_options(isolation_level="REPEATABLE READ")
    return conn
