"""Database engines and the JSON column codec: how the store talks to SQLite and PostgreSQL.

Layer 5 (the server). What it promises:

* ``normalize_url`` accepts ``postgresql://`` and ``postgres://`` as ``postgresql+psycopg://``
  (psycopg 3); other URLs pass through.
* ``engines(url)`` gives ``(write, read)`` engines. SQLite: every write transaction is ``BEGIN
  IMMEDIATE`` (one writer at a time, queued by a 60 s busy timeout, never a deadlock upgrading a
  shared lock), reads use a plain ``BEGIN``; WAL so readers never wait, ``synchronous=NORMAL`` so a
  process kill never loses a committed transaction (a power loss may lose the last ones). The file's
  directory is created. PostgreSQL: one pooled engine (pre-ping, 8 + 16 connections) for both.
* ``snapshot(read_engine)``: a read connection whose statements all see one state of the database.
* ``dumps``/``loads``: JSON columns are TEXT written with ``allow_nan=True, ensure_ascii=True``:
  NaN, Infinity and -Infinity survive as the tokens ``NaN``/``Infinity``/``-Infinity`` on both
  databases (the extended JSON Python's json module and wandb's history use), and ``ensure_ascii``
  keeps NUL and lone surrogates out of the database's text encoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.vocab import json_text

__all__ = ["dumps", "engines", "loads", "normalize_url", "snapshot"]


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
    eng = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(eng, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so that BEGIN IMMEDIATE is ours to send.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
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
    eng = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16)
    return eng, eng


def snapshot(read_engine: Engine) -> Connection:
    """A read connection (use it as a context manager) whose statements all see one state of the
    database: a SQLite read transaction already does (WAL), PostgreSQL is asked for REPEATABLE
    READ. For reads that combine a run's position with rows and indexes written after it."""
    conn = read_engine.connect()
    if read_engine.dialect.name != "sqlite":
        conn.execution_options(isolation_level="REPEATABLE READ")
    return conn
