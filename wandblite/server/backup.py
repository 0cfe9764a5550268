"""``wandblite server backup DEST``: a consistent copy of a SQLite store, taken while the server runs.

Layer 5 (the server); the standard library's ``sqlite3`` and SQLAlchemy's URL parser. What it promises:

* The copy is one state of the database: SQLite's online backup API (``Connection.backup``) copies
  every page in one step, inside one read transaction of the source. In WAL mode (the store's,
  ``db.py``) the server's writers go on meanwhile and the copy is the database as of that
  transaction's start; a batch is either wholly in it or not at all.
* ``DEST`` appears whole or not at all: the pages go to ``DEST.partial-<random>`` in the same
  directory, which is checked (``PRAGMA integrity_check``), switched to a rollback journal (one
  self-contained file), fsynced and renamed over ``DEST``; any failure removes it.
* An existing ``DEST`` is replaced only when asked (``replace=True``); the source is never written.
* PostgreSQL is not copied here: the error says to use ``pg_dump`` (or the server's own PITR).

The blobs are not part of the copy: a media directory holds immutable, content-addressed files
(copy it after the database, with ``rsync`` or ``cp -rn``); a bucket is kept by its own versioning
or replication.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from wandblite.server.db import normalize_url

__all__ = ["BackupResult", "backup_sqlite", "sqlite_path"]


@dataclass(frozen=True)
class BackupResult:
    """What a backup wrote: the source file, ``dest``, its size in bytes and pages, and how long it took (seconds)."""

    source: Path
    dest: Path
    size: int
    pages: int
    seconds: float


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///path`` URL; ``ValueError`` for any other database."""
    u = sa.engine.make_url(normalize_url(url))
    if u.get_backend_name() != "sqlite":
        raise ValueError(f"`wandblite server backup` copies SQLite stores; {u.get_backend_name()} is backed up with "
                         "its own tools (PostgreSQL: pg_dump, or base backups with WAL archiving for point-in-time "
                         "recovery)")
    if not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        raise ValueError(f"{url!r} names no database file to copy")
    return Path(u.database).expanduser()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_sqlite(url: str, dest: str | os.PathLike[str], replace: bool = False) -> BackupResult:
    """Copy the SQLite store at ``url`` to ``dest`` (see the module docstring); raises ``ValueError``
    for a database that is not SQLite, an absent source, ``dest`` being the source, or an existing
    ``dest`` without ``replace``; ``RuntimeError`` when the copy fails its integrity check."""
    source = sqlite_path(url)
    target = Path(dest).expanduser()
    if not source.is_file():
        raise ValueError(f"there is no SQLite store at {source}")
    if target.exists() and target.resolve() == source.resolve():
        raise ValueError(f"{target} is the store itself; name another file")
    if target.exists() and not replace:
        raise ValueError(f"{target} exists; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{secrets.token_hex(4)}")
    started = time.monotonic()
    src = sqlite3.connect(source, timeout=60)
    try:
        dst = sqlite3.connect(partial)
        try:
            # pages=-1: every page in one step, so one read transaction of the source (a consistent
            # state); a stepwise copy would restart whenever the server writes, maybe forever.
            src.backup(dst, pages=-1)
            problems = [r[0] for r in dst.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise RuntimeError(f"the copy of {source} failed its integrity check: {'; '.join(problems[:5])}")
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        _fsync_dir(target.parent)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    finally:
        src.close()
    return BackupResult(source, target, target.stat().st_size, pages, time.monotonic() - started)
