"""The store: runs, history, series, console, system records, media index and API keys in SQL.

Layer 5. SQLAlchemy Core 2.x, one code path for SQLite (the default and the embedded local store)
and PostgreSQL (``postgresql+psycopg://``). Imports nothing from ``wandblite.sync``.

What it promises
----------------
* ``Store(url).apply_batch(project, run_id, body)`` applies one sync batch in ONE transaction and
  returns the run's new position. It is idempotent: a row, console or system record whose index
  is below the stored count is skipped, so a retried batch changes nothing; a batch that would
  leave a gap raises a 409 ``ApiError`` carrying the current position, and stores nothing. A
  provisional row (``final: false``, a crashed run's pending row) sits at index ``rows`` and is
  replaced by the next row sent at that index. See ``PROTOCOL.md``.
* Concurrent batches for one run are serialised: on SQLite every write transaction is
  ``BEGIN IMMEDIATE`` (one writer at a time, WAL so readers never wait); on PostgreSQL the run's
  row is locked with ``SELECT ... FOR UPDATE``.
* Every value reaches SQL as a bound parameter; project names and run ids are validated first.
* JSON columns are TEXT written by ``json.dumps(allow_nan=True, ensure_ascii=True)`` and read by
  ``json.loads``: NaN, Infinity and -Infinity survive as the tokens ``NaN``/``Infinity``/
  ``-Infinity`` on both databases (the same extended JSON Python's json module and wandb's history
  use). ``ensure_ascii`` keeps NUL and lone surrogates out of the database's text encoding.
* ``series`` holds one REAL per numeric leaf of each history row (dotted key path); NaN is stored
  as NULL there (SQLite cannot hold a NaN REAL), +-Infinity as themselves. The row JSON is exact.
* A batch's ``files``, ``artifacts``, ``uses`` and ``alerts`` records are indexed per run like
  console records and stored once each (the position counts them); their bytes must already be in
  the media store, and artifact versions are keyed (project, name, digest), aliases moved by the
  most recent log record (migration ``0003_files_artifacts_alerts``). Each alert's ``throttled``
  flag (``run.alert``'s ``wait_duration``, ``throttle.py``) is decided as it is stored, from the
  run's earlier alerts in idx order, so it is the same however the alerts were batched (migration
  ``0005_alert_throttle`` decides it for alerts stored before).
* The read indexes, ``series_agg`` (the min/max pyramid charts are downsampled from) and
  ``media_rows``, cover exactly the run's final rows and are extended in each batch's transaction:
  reads never write (they work on a read-only replica or role). A provisional row enters neither,
  so replacing it leaves no stale bucket. Stores from before migration ``0004_read_indexes_at_ingest``
  get theirs built by that migration, once, at the first start.
* Schema changes are small named migrations (``MIGRATIONS``), applied in order once each and
  recorded in ``schema_migrations``.
* SQLite runs in WAL mode with ``synchronous=NORMAL``: a process kill never loses a committed
  batch; a power loss may lose the last ones, which a later sync resends because the server's
  position, not the client's memory, decides what is missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.errors import Error
from wandblite.runfile import validate_project_name, validate_run_id
from wandblite.server.errors import ApiError, bad_request, conflict, not_found
from wandblite.server.throttle import throttle

__all__ = [
    "MIGRATIONS",
    "RECORD_TABLES",
    "Store",
    "artifact_digest",
    "PYRAMID_LEVELS",
    "PYRAMID_SHIFT",
    "backfill_read_indexes",
    "default_home",
    "dumps",
    "loads",
    "normalize_url",
    "typed_leaves",
    "validate_project",
    "validate_run",
    "validate_artifact_name",
    "validate_file_name",
    "validate_sha256",
]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Columns of the runs table a batch's "run" object may set, with the Python type each must have.
_RUN_TEXT = ("name", "group", "job_type", "notes", "state", "signal", "host", "entity", "digest")
_RUN_FLOAT = ("created_at", "heartbeat_at", "ended_at")
_RUN_JSON = ("tags", "config", "summary", "error", "context", "metrics")
_STATES = frozenset({"running", "finished", "failed", "crashed"})


def default_home() -> Path:
    """``$WANDBLITE_HOME`` or ``~/.wandblite``: the embedded store's home."""
    return Path(os.environ.get("WANDBLITE_HOME") or Path.home() / ".wandblite")


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as ``postgresql+psycopg://`` (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def dumps(obj: Any) -> str:
    """JSON text for a column: NaN/Infinity kept as tokens, ASCII only (see the module docstring)."""
    return json.dumps(obj, allow_nan=True, ensure_ascii=True, separators=(",", ":"))


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _text(s: Any, what: str, limit: int = 1 << 20) -> str | None:
    """A value for a TEXT column: None or str, without NUL (PostgreSQL refuses it) or lone surrogates."""
    if s is None:
        return None
    if not isinstance(s, str):
        raise bad_request(f"{what} must be a string or null, not {type(s).__name__}")
    if len(s) > limit:
        raise bad_request(f"{what} is longer than {limit} characters")
    if "\x00" in s:
        s = s.replace("\x00", "\ufffd")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def validate_project(project: Any) -> str:
    """Project names: 1-128 printable characters without ``/ \\ # ? % :``, not starting with ``.`` or ``-``."""
    try:
        return validate_project_name(project)
    except Error as exc:
        raise bad_request(str(exc), code="invalid_name")


def validate_run(run_id: Any) -> str:
    try:
        return validate_run_id(run_id)
    except Error as exc:
        raise bad_request(str(exc), code="invalid_name")


def validate_sha256(sha: Any) -> str:
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise bad_request(f"invalid sha256 {sha!r}: 64 lowercase hex digits expected", code="invalid_sha256")
    return sha


def _has_control(s: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in s)


def validate_file_name(name: Any, what: str = "file name") -> str:
    """A run file's name or an artifact entry's path: a relative ``/``-separated path of 1-1024
    characters whose segments are never empty, ``.`` or ``..``; no backslash or control character.

    Such a name can be joined under a directory without leaving it; the server never does (names
    are SQL parameters), but the clients that download do.
    """
    if not isinstance(name, str) or not 0 < len(name) <= 1024:
        raise bad_request(f"invalid {what} {name!r}: a string of 1-1024 characters expected", code="invalid_name")
    if (name.startswith("/") or "\\" in name or _has_control(name)
            or any(seg in ("", ".", "..") for seg in name.split("/"))):
        raise bad_request(f"invalid {what} {name!r}: a relative path without '..', '.', empty segments, "
                          "backslashes or control characters expected", code="invalid_name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"invalid {what} {name!r}: not encodable as UTF-8", code="invalid_name")
    return name


def validate_artifact_name(name: Any, what: str = "artifact name") -> str:
    """An artifact name or alias: 1-128 characters without ``/``, ``\\``, ``:`` or control characters,
    not ``.`` or ``..`` (the same characters ``wandblite.Artifact`` refuses, and URL-path safe)."""
    if (not isinstance(name, str) or not 0 < len(name) <= 128 or any(c in name for c in "/\\:")
            or _has_control(name) or name in (".", "..")):
        raise bad_request(f"invalid {what} {name!r}: 1-128 characters without '/', '\\', ':' or control "
                          "characters expected", code="invalid_name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"invalid {what} {name!r}: not encodable as UTF-8", code="invalid_name")
    return name


def artifact_digest(entries: dict[str, dict[str, Any]]) -> str:
    """An artifact's digest, by the one rule of ``wandblite.artifacts`` (the SDK computes it offline)."""
    from wandblite.artifacts import _digest

    return _digest(entries)


# --------------------------------------------------------------------------- schema

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text),
    sa.Column("prefix", sa.String(32), nullable=False),  # shown in `keys list` to tell keys apart
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex of the key
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)

projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("group", sa.Text),
    sa.Column("job_type", sa.Text),
    sa.Column("entity", sa.Text),
    sa.Column("tags", sa.Text),
    sa.Column("notes", sa.Text),
    sa.Column("config", sa.Text),
    sa.Column("summary", sa.Text),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("signal", sa.Text),
    sa.Column("created_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float),  # the last moment the writer was known alive
    sa.Column("ended_at", sa.Float),
    sa.Column("host", sa.Text),
    sa.Column("context", sa.Text),
    sa.Column("metrics", sa.Text),  # define_metric definitions
    sa.Column("rows_final", sa.BigInteger, nullable=False),
    sa.Column("pending", sa.Boolean, nullable=False),  # a provisional row sits at idx rows_final
    sa.Column("console_count", sa.BigInteger, nullable=False),
    sa.Column("system_count", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.Text),  # the client's digest of the metadata it last sent
    sa.UniqueConstraint("project_id", "run_id", name="uq_runs_project_run"),
)

history = sa.Table(
    "history", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("runtime", sa.Float),
    sa.Column("timestamp", sa.Float),
    sa.Column("row", sa.Text, nullable=False),
    sa.Column("final", sa.Boolean, nullable=False),
)

series = sa.Table(
    "series", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("runtime", sa.Float),
    sa.Column("timestamp", sa.Float),
    sa.Column("value", sa.Float),
)

console = sa.Table(
    "console", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float),
    sa.Column("stream", sa.String(16)),
    sa.Column("text", sa.Text, nullable=False),
)

system = sa.Table(
    "system", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float),
    sa.Column("metrics", sa.Text, nullable=False),
)

media = sa.Table(
    "media", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("ext", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
)

_INITIAL = [api_keys, projects, runs, history, series, console, system, media]

# ---- 0002: browser sessions and the read side's derived indexes (``wandblite.server.query``).
# A session is a random token in an HttpOnly cookie; only its sha256 is stored, tied to the API key
# that opened it, so revoking the key ends its sessions (the check joins ``api_keys``).
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# Min/max pyramid of a numeric series for chart downsampling: level L aggregates the points of
# ``(run, key)`` whose history idx falls in ``[bucket * 16**(L+1), (bucket+1) * 16**(L+1))``.
# Derived from ``series``, final rows only: extended by ``apply_batch`` in the batch's transaction
# (since migration 0004; before it, by the first read). ``min_v``/``max_v`` are over finite values
# only (NULL when the bucket has none).
series_agg = sa.Table(
    "series_agg", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("first_idx", sa.BigInteger, nullable=False),
    sa.Column("last_idx", sa.BigInteger, nullable=False),
    sa.Column("min_v", sa.Float),
    sa.Column("min_idx", sa.BigInteger),
    sa.Column("max_v", sa.Float),
    sa.Column("max_idx", sa.BigInteger),
)

# Which history rows hold a media (or other ``_type``) value under which dotted key (final rows
# only; written with the rows since migration 0004).
media_rows = sa.Table(
    "media_rows", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("type", sa.String(64)),
)

# How far (exclusive history idx) each derived index of a run was built by the read side: name
# "media" or "agg:<key>". Read once by migration 0004 (to finish those indexes) and dropped by it.
derived_state = sa.Table(
    "derived_state", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("upto", sa.BigInteger, nullable=False),
)


def _m0001_initial(conn: Connection) -> None:
    metadata.create_all(conn, tables=_INITIAL)


def _m0002_sessions_and_read_indexes(conn: Connection) -> None:
    metadata.create_all(conn, tables=[sessions, series_agg, media_rows, derived_state])


# ---- 0003: what ``wandblite.save``, ``log_artifact``/``use_artifact`` and ``run.alert`` record (issue 6).
# Each run's FILES entries, ARTIFACT, USE and ALERT records are numbered by their order in the run's
# files (like console records) and keyed (run, idx): a retried batch is skipped below the stored
# count, so every record is stored exactly once. Bytes live in the content-addressed media store.
run_files = sa.Table(
    "run_files", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),  # validated relative path (``validate_file_name``)
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("policy", sa.String(16)),
    sa.Column("ts", sa.Float),
    sa.Column("lost", sa.Boolean, nullable=False),  # a superseded version whose bytes the client no longer had
    sa.Index("ix_run_files_name", "run", "name"),
)

# One row per (project, name, digest): the server's versions of an artifact.
artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("type", sa.Text),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("metadata", sa.Text),  # JSON object
    sa.Column("manifest", sa.Text, nullable=False),  # JSON: path -> {sha256, size} | {ref[, sha256, size]}
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.String(128)),  # the run that logged this version first
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("project_id", "name", "digest", name="uq_artifacts_digest"),
    sa.UniqueConstraint("project_id", "name", "version", name="uq_artifacts_version"),
)

# Which version an alias names now: the one whose log record carrying the alias is the most recent.
artifact_aliases = sa.Table(
    "artifact_aliases", metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("artifact", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)

# A run's ARTIFACT records (log_artifact calls), pointing at the version they logged.
run_artifacts = sa.Table(
    "run_artifacts", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("artifact", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("aliases", sa.Text, nullable=False),  # JSON list: the aliases this record gave
    sa.Column("ts", sa.Float),
)

# A run's USE records (use_artifact calls); ``artifact`` is set when the server holds that digest.
artifact_uses = sa.Table(
    "artifact_uses", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer),  # as the using client saw it
    sa.Column("digest", sa.String(64)),
    sa.Column("type", sa.Text),
    sa.Column("source_run", sa.String(128)),
    sa.Column("artifact", sa.Integer, sa.ForeignKey("artifacts.id")),
    sa.Column("ts", sa.Float),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("wait_duration", sa.Float),
    # Since migration 0005: wandb would not have sent this alert (``wait_duration``; throttle.py).
    # Decided at ingest from the run's earlier stored alerts, so no read depends on a page.
    sa.Column("throttled", sa.Boolean, nullable=False, server_default=sa.false()),
)

#: The per-run record streams of migration 0003, by the batch field that carries them.
RECORD_TABLES = {"files": run_files, "artifacts": run_artifacts, "uses": artifact_uses, "alerts": alerts}


def _m0003_files_artifacts_alerts(conn: Connection) -> None:
    metadata.create_all(conn, tables=[run_files, artifacts, artifact_aliases, run_artifacts, artifact_uses, alerts])


def _m0004_read_indexes_at_ingest(conn: Connection) -> None:
    """From now on ``apply_batch`` extends ``series_agg`` and ``media_rows`` with each batch's final
    rows, so reads never write. Finish what the read side had built lazily (``derived_state``: up
    to where, per run and key) for every run's final rows, then drop ``derived_state``."""
    has_state = sa.inspect(conn).has_table("derived_state")
    built: dict[tuple[int, str], int] = {}
    if has_state:
        built = {(int(r), str(n)): int(u) for r, n, u in conn.execute(
            sa.select(derived_state.c.run, derived_state.c.name, derived_state.c.upto))}
    for pk, final in conn.execute(sa.select(runs.c.id, runs.c.rows_final).order_by(runs.c.id)).all():
        backfill_read_indexes(conn, int(pk), int(final), built)
    if has_state:
        derived_state.drop(conn)


def _m0005_alert_throttle(conn: Connection) -> None:
    """Add ``alerts.throttled`` (a store created by an older 0003 lacks it) and decide it for every
    alert already stored, per run in idx order (``throttle.throttle``)."""
    if "throttled" not in {c["name"] for c in sa.inspect(conn).get_columns("alerts")}:
        conn.execute(sa.text("ALTER TABLE alerts ADD COLUMN throttled BOOLEAN NOT NULL DEFAULT FALSE"))
    for (pk,) in conn.execute(sa.select(alerts.c.run).distinct()).all():
        q = (sa.select(alerts.c.idx, alerts.c.title, alerts.c.ts, alerts.c.wait_duration)
             .where(alerts.c.run == pk).order_by(alerts.c.idx))
        recs = [dict(r) for r in conn.execute(q).mappings()]
        hit = [{"r": pk, "i": a["idx"]} for a, t in zip(recs, throttle(recs)) if t]
        if hit:
            conn.execute(alerts.update().where(alerts.c.run == sa.bindparam("r"), alerts.c.idx == sa.bindparam("i"))
                         .values(throttled=True), hit)


#: Named schema steps, applied in this order, each once (recorded in ``schema_migrations``).
#: Never edit or reorder a released step: append a new one.
MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0002_sessions_and_read_indexes", _m0002_sessions_and_read_indexes),
    ("0003_files_artifacts_alerts", _m0003_files_artifacts_alerts),
    ("0004_read_indexes_at_ingest", _m0004_read_indexes_at_ingest),
    ("0005_alert_throttle", _m0005_alert_throttle),
]


# --------------------------------------------------------------------------- engines


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


def _engines(url: str) -> tuple[Engine, Engine]:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    eng = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16)
    return eng, eng


# --------------------------------------------------------------------------- rows -> series


def _series_of(row: dict[str, Any], prefix: str, out: list[tuple[str, float | None]]) -> None:
    """Numeric leaves of a row as (dotted key, value); media dicts (with ``_type``) are not numbers."""
    for k, v in row.items():
        t = type(v)
        if t is float:
            out.append((prefix + k, None if v != v else v))  # NaN -> NULL (SQLite cannot store it)
        elif t is int:
            try:
                out.append((prefix + k, float(v)))
            except OverflowError:
                continue  # an int beyond a double's range has no chart value; the row keeps it
        elif t is dict and "_type" not in v:
            _series_of(v, f"{prefix}{k}.", out)


def _num(v: Any) -> float | None:
    if (type(v) is float or type(v) is int) and v is not True and v is not False:
        try:
            f = float(v)
        except OverflowError:
            return None
        return f if math.isfinite(f) else None
    return None


def _int(v: Any) -> int | None:
    return v if type(v) is int and -(1 << 63) <= v < (1 << 63) else None


def _index(item: Any, stream: str, i: int) -> int:
    if not isinstance(item, dict):
        raise bad_request(f"{stream}[{i}] must be an object")
    idx = item.get("idx")
    if type(idx) is not int or idx < 0 or idx >= 1 << 62:
        raise bad_request(f"{stream}[{i}].idx must be a non-negative integer")
    return idx


# --------------------------------------------------------------------------- read indexes
#
# ``series_agg`` (the min/max pyramid) and ``media_rows`` cover exactly the run's final rows,
# ``[0, rows_final)``: ``apply_batch`` extends both with the final rows it stores, in the batch's
# transaction, so a reader sees the rows and their indexes together and never writes. A provisional
# row (``final: false``) enters neither: the read side reads the one row at ``rows_final`` raw, and
# when a later batch replaces it only the row itself is deleted; its replacement, once final, is
# aggregated like any new row. So no bucket ever holds a value that was replaced.

#: Each pyramid level buckets 16x more history indexes than the one below: widths 16 .. 1048576.
PYRAMID_SHIFT = 4
PYRAMID_LEVELS = 5
_RESERVED_KEYS = frozenset({"_step", "_runtime", "_timestamp"})


def typed_leaves(row: dict[str, Any], prefix: str, out: list[tuple[str, Any]]) -> None:
    """The ``_type`` values (media, tables, charts, ...) of a row as (dotted key, value)."""
    for k, v in row.items():
        if type(v) is dict:
            if "_type" in v:
                out.append((prefix + k, v))
            else:
                typed_leaves(v, f"{prefix}{k}.", out)


def _media_leaves(row: dict[str, Any], text: str) -> list[tuple[str, str]]:
    """(dotted key, ``_type``) of each typed value of a row, reserved keys left out."""
    if '"_type"' not in text:
        return []
    leaves: list[tuple[str, Any]] = []
    typed_leaves({k: v for k, v in row.items() if k not in _RESERVED_KEYS}, "", leaves)
    return [(k, str(v.get("_type"))[:64]) for k, v in leaves]


def _aggregate(pk: int, key: str, idx: Any, val: Any) -> list[dict[str, Any]]:
    """Pyramid rows for sorted indexes ``idx`` and values ``val`` (NaN for NULL): every level at once."""
    import numpy as np

    out: list[dict[str, Any]] = []
    finite = np.isfinite(val)
    vmin = np.where(finite, val, np.inf)
    vmax = np.where(finite, val, -np.inf)
    pos = np.arange(len(idx))
    big = len(idx)
    for level in range(PYRAMID_LEVELS):
        b = idx >> (PYRAMID_SHIFT * (level + 1))
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        ends = np.r_[starts[1:], len(idx)]
        mins = np.minimum.reduceat(vmin, starts)
        maxs = np.maximum.reduceat(vmax, starts)
        counts = ends - starts
        min_pos = np.minimum.reduceat(np.where(vmin == np.repeat(mins, counts), pos, big), starts)
        max_pos = np.minimum.reduceat(np.where(vmax == np.repeat(maxs, counts), pos, big), starts)
        # Whole columns to Python at once (a bucket with no finite value has min_pos == big: clamped, unused).
        cols = zip(np.isfinite(mins).tolist(), b[starts].tolist(), counts.tolist(), idx[starts].tolist(),
                   idx[ends - 1].tolist(), mins.tolist(), idx[np.minimum(min_pos, big - 1)].tolist(), maxs.tolist(),
                   idx[np.minimum(max_pos, big - 1)].tolist())
        out.extend({"run": pk, "key": key, "level": level, "bucket": bucket, "n": n, "first_idx": first,
                    "last_idx": last, "min_v": mn if ok else None, "min_idx": mn_i if ok else None,
                    "max_v": mx if ok else None, "max_idx": mx_i if ok else None}
                   for ok, bucket, n, first, last, mn, mn_i, mx, mx_i in cols)
    return out


def _write_agg(conn: Connection, params: list[dict[str, Any]], covered: int) -> None:
    """Add pyramid rows for points at or above ``covered`` (the pyramid holds the key's points below
    it): a bucket starting at or after ``covered`` is new and inserted; the one bucket per level that
    straddles ``covered`` may exist and is merged into (n added, min/max compared)."""
    new = [p for p in params if p["bucket"] << (PYRAMID_SHIFT * (p["level"] + 1)) >= covered]
    merge = [p for p in params if p["bucket"] << (PYRAMID_SHIFT * (p["level"] + 1)) < covered]
    for i in range(0, len(new), 5000):
        conn.execute(series_agg.insert(), new[i:i + 5000])
    if not merge:
        return
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    ins = insert(series_agg)
    ex, cur = ins.excluded, series_agg.c
    lower = sa.and_(ex.min_v.is_not(None), sa.or_(cur.min_v.is_(None), ex.min_v < cur.min_v))
    higher = sa.and_(ex.max_v.is_not(None), sa.or_(cur.max_v.is_(None), ex.max_v > cur.max_v))
    stmt = ins.on_conflict_do_update(
        index_elements=[cur.run, cur.key, cur.level, cur.bucket],
        set_={
            "n": cur.n + ex.n,
            "last_idx": sa.func.max(cur.last_idx, ex.last_idx) if sqlite else sa.func.greatest(cur.last_idx, ex.last_idx),
            "min_v": sa.case((lower, ex.min_v), else_=cur.min_v),
            "min_idx": sa.case((lower, ex.min_idx), else_=cur.min_idx),
            "max_v": sa.case((higher, ex.max_v), else_=cur.max_v),
            "max_idx": sa.case((higher, ex.max_idx), else_=cur.max_idx),
        },
    )
    conn.execute(stmt, merge)


def _extend_read_indexes(conn: Connection, pk: int, covered: int,
                         rows: list[tuple[int, int | None, list[tuple[str, float | None]], list[tuple[str, str]]]],
                         ) -> None:
    """Add final rows ``(idx, step, numeric leaves, media leaves)``, all at or above ``covered`` and
    in index order, to the run's pyramid and media index (in the caller's transaction)."""
    import numpy as np

    by_key: dict[str, tuple[list[int], list[float]]] = {}
    media_params: list[dict[str, Any]] = []
    nan = math.nan
    for idx, step, leaves, media_leaves in rows:
        for key, value in leaves:
            ent = by_key.get(key)
            if ent is None:
                ent = by_key[key] = ([], [])
            ent[0].append(idx)
            ent[1].append(nan if value is None else value)
        media_params.extend({"run": pk, "key": k, "idx": idx, "step": step, "type": t} for k, t in media_leaves)
    params: list[dict[str, Any]] = []
    for key, (idxs, vals) in by_key.items():
        params.extend(_aggregate(pk, key, np.asarray(idxs, dtype=np.int64), np.asarray(vals, dtype=np.float64)))
    _write_agg(conn, params, covered)
    for i in range(0, len(media_params), 5000):
        conn.execute(media_rows.insert(), media_params[i:i + 5000])


def backfill_read_indexes(conn: Connection, pk: int, final: int, built: dict[tuple[int, str], int] | None = None,
                          ) -> None:
    """Build a run's pyramid and media index over its final rows ``[0, final)`` from ``series`` and
    ``history``, continuing where ``built`` (``(run, "agg:<key>" | "media") -> upto``, what an
    older read side had built) says each stands. For rows stored without ``apply_batch`` (migration
    0004, benchmarks); ``apply_batch`` keeps them current after that."""
    import numpy as np

    built = built or {}
    keys = [k for (k,) in conn.execute(sa.select(series.c.key).where(series.c.run == pk).distinct())]
    for key in keys:
        start = built.get((pk, "agg:" + key), 0)
        if start >= final:
            continue
        res = conn.execute(sa.select(series.c.idx, series.c.value).where(
            series.c.run == pk, series.c.key == key, series.c.idx >= start, series.c.idx < final,
        ).order_by(series.c.idx).execution_options(yield_per=200_000))
        covered = start
        for part in res.partitions():  # a bucket split between partitions is merged by the second
            idx = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
            val = np.fromiter((math.nan if r[1] is None else r[1] for r in part), dtype=np.float64, count=len(part))
            _write_agg(conn, _aggregate(pk, key, idx, val), covered)
            covered = int(idx[-1]) + 1
        res.close()
    start = built.get((pk, "media"), 0)
    if start < final:
        params: list[dict[str, Any]] = []
        q = (sa.select(history.c.idx, history.c.step, history.c.row)
             .where(history.c.run == pk, history.c.idx >= start, history.c.idx < final,
                    history.c.row.like('%"\\_type"%', escape="\\")))
        for idx, step, text in conn.execute(q):
            params.extend({"run": pk, "key": k, "idx": idx, "step": step, "type": t}
                          for k, t in _media_leaves(json.loads(text), text))
        for i in range(0, len(params), 5000):
            conn.execute(media_rows.insert(), params[i:i + 5000])


# --------------------------------------------------------------------------- the store


class Store:
    """One database (and its media directory). Thread-safe: every method uses its own connection."""

    def __init__(self, url: str, media_dir: str | os.PathLike[str] | None = None, migrate: bool = True) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.write_engine, self.read_engine = _engines(self.url)
        self.media_dir = Path(media_dir) if media_dir is not None else None
        if migrate:
            self.migrate()

    @classmethod
    def embedded(cls, home: str | os.PathLike[str] | None = None) -> Store:
        """The embedded local store: ``<home>/store.db`` and ``<home>/media``."""
        h = Path(home) if home is not None else default_home()
        return cls(f"sqlite:///{h / 'store.db'}", media_dir=h / "media")

    def snapshot(self) -> Connection:
        """A read connection (use it as a context manager) whose statements all see one state of the
        database: a SQLite read transaction already does (WAL), PostgreSQL is asked for REPEATABLE
        READ. For reads that combine a run's position with rows and indexes written after it."""
        conn = self.read_engine.connect()
        if not self.is_sqlite:
            conn.execution_options(isolation_level="REPEATABLE READ")
        return conn

    def close(self) -> None:
        self.write_engine.dispose()
        self.read_engine.dispose()

    # ---------------------------------------------------------------- migrations
    def migrate(self) -> list[str]:
        """Apply the migrations not applied yet, in order; return their names.

        Safe when several server processes start at once on one database: each step's check and
        apply run in one transaction that holds the database's write lock first (``BEGIN
        IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL).
        """
        with self.write_engine.begin() as conn:
            self._migration_lock(conn)
            schema_migrations.create(conn, checkfirst=True)
        applied: list[str] = []
        for name, step in MIGRATIONS:
            with self.write_engine.begin() as conn:
                self._migration_lock(conn)
                done = conn.execute(
                    sa.select(schema_migrations.c.name).where(schema_migrations.c.name == name)
                ).first()
                if done:
                    continue
                step(conn)
                conn.execute(schema_migrations.insert().values(name=name, applied_at=time.time()))
                applied.append(name)
        return applied

    @staticmethod
    def _migration_lock(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Released at commit; the key is arbitrary but fixed ("wblm").
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(2004116589)"))

    def applied_migrations(self) -> list[str]:
        with self.read_engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(schema_migrations.c.name).order_by(schema_migrations.c.name))]

    # ---------------------------------------------------------------- api keys
    @staticmethod
    def _hash_key(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()

    def create_key(self, name: str | None = None) -> tuple[int, str]:
        """A new API key: ``(key id, key)``. Only its sha256 is stored; the key is shown once."""
        key = "wl_" + secrets.token_urlsafe(32)
        with self.write_engine.begin() as conn:
            res = conn.execute(api_keys.insert().values(
                name=_text(name, "key name", 200), prefix=key[:10], key_hash=self._hash_key(key),
                created_at=time.time(),
            ))
            key_id = int(res.inserted_primary_key[0])  # type: ignore[index]
        return key_id, key

    def ensure_admin_key(self) -> str | None:
        """On an empty key table create the first (admin) key and return it; else None."""
        with self.write_engine.begin() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one():
                return None
        return self.create_key("admin")[1]

    def list_keys(self) -> list[dict[str, Any]]:
        with self.read_engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).mappings().all()
        return [{"id": r["id"], "name": r["name"], "prefix": r["prefix"], "created_at": r["created_at"],
                 "revoked_at": r["revoked_at"]} for r in rows]

    def revoke_key(self, id_or_prefix: str) -> int:
        """Revoke by key id, by the shown prefix, or by the full key; returns how many were revoked."""
        with self.write_engine.begin() as conn:
            cond: Any
            if id_or_prefix.isdigit():
                cond = api_keys.c.id == int(id_or_prefix)
            elif id_or_prefix.startswith("wl_") and len(id_or_prefix) > 20:
                cond = api_keys.c.key_hash == self._hash_key(id_or_prefix)
            else:
                cond = api_keys.c.prefix == id_or_prefix
            res = conn.execute(api_keys.update().where(cond, api_keys.c.revoked_at.is_(None)).values(revoked_at=time.time()))
            return int(res.rowcount)

    def check_key(self, key: str | None) -> bool:
        if not key:
            return False
        with self.read_engine.connect() as conn:
            row = conn.execute(
                sa.select(api_keys.c.id).where(api_keys.c.key_hash == self._hash_key(key), api_keys.c.revoked_at.is_(None))
            ).first()
        return row is not None

    # ---------------------------------------------------------------- browser sessions
    SESSION_SECONDS = 30 * 86400.0

    def create_session(self, key: str | None) -> str | None:
        """A new session token for a valid, unrevoked API key (None for a bad key); only its hash is kept."""
        if not key:
            return None
        now = time.time()
        with self.write_engine.begin() as conn:
            key_id = conn.execute(sa.select(api_keys.c.id).where(
                api_keys.c.key_hash == self._hash_key(key), api_keys.c.revoked_at.is_(None))).scalar()
            if key_id is None:
                return None
            token = "wls_" + secrets.token_urlsafe(32)
            conn.execute(sessions.delete().where(sessions.c.expires_at < now))  # keep the table small
            conn.execute(sessions.insert().values(token_hash=self._hash_key(token), key_id=key_id, created_at=now,
                                                  expires_at=now + self.SESSION_SECONDS))
        return token

    def check_session(self, token: str | None) -> bool:
        """True for an unexpired session whose API key is not revoked (revoking a key ends its sessions)."""
        if not token:
            return False
        with self.read_engine.connect() as conn:
            row = conn.execute(
                sa.select(sessions.c.key_id).join(api_keys, api_keys.c.id == sessions.c.key_id).where(
                    sessions.c.token_hash == self._hash_key(token), sessions.c.expires_at > time.time(),
                    api_keys.c.revoked_at.is_(None))
            ).first()
        return row is not None

    def end_session(self, token: str | None) -> None:
        """Forget a session token (logout); unknown tokens are ignored."""
        if token:
            with self.write_engine.begin() as conn:
                conn.execute(sessions.delete().where(sessions.c.token_hash == self._hash_key(token)))

    # ---------------------------------------------------------------- runs and positions
    @staticmethod
    def _position(r: Any) -> dict[str, Any]:
        if r is None:
            return {"rows": 0, "pending": False, "console": 0, "system": 0, "digest": None, "state": None}
        return {"rows": int(r.rows_final), "pending": bool(r.pending), "console": int(r.console_count),
                "system": int(r.system_count), "digest": r.digest, "state": r.state}

    def _find_run(self, conn: Connection, project: str, run_id: str, lock: bool = False) -> Any:
        q = (sa.select(runs).join(projects, projects.c.id == runs.c.project_id)
             .where(projects.c.name == project, runs.c.run_id == run_id))
        if lock and not self.is_sqlite:
            q = q.with_for_update(of=runs)
        return conn.execute(q).first()

    def position(self, project: str, run_id: str) -> dict[str, Any]:
        """Where the store stands for a run (zeros for an unknown run)."""
        validate_project(project)
        validate_run(run_id)
        with self.read_engine.connect() as conn:
            r = self._find_run(conn, project, run_id)
            return {**self._position(r), **self._record_counts(conn, None if r is None else r.id)}

    def _get_or_create(self, conn: Connection, project: str, run_id: str) -> Any:
        """The run's row, locked for this transaction; created (with its project) if new."""
        r = self._find_run(conn, project, run_id, lock=True)
        if r is not None:
            return r
        now = time.time()
        # A concurrent creator (PostgreSQL) makes our INSERT fail: retry the lookup in a savepoint.
        pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar()
        if pid is None:
            try:
                with conn.begin_nested():
                    pid = conn.execute(projects.insert().values(name=project, created_at=now)).inserted_primary_key[0]  # type: ignore[index]
            except sa.exc.IntegrityError:
                pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar_one()
        try:
            with conn.begin_nested():
                conn.execute(runs.insert().values(
                    project_id=pid, run_id=run_id, state="running", updated_at=now, rows_final=0,
                    pending=False, console_count=0, system_count=0,
                ))
        except sa.exc.IntegrityError:
            pass
        return self._find_run(conn, project, run_id, lock=True)

    def apply_batch(self, project: str, run_id: str, body: Any) -> dict[str, Any]:
        """Apply one batch (see PROTOCOL.md) in one transaction; return the new position."""
        validate_project(project)
        validate_run(run_id)
        if not isinstance(body, dict):
            raise bad_request("the batch must be a JSON object")
        meta = body.get("run")
        rows_in = body.get("rows") or []
        cons_in = body.get("console") or []
        sys_in = body.get("system") or []
        for name, v in (("rows", rows_in), ("console", cons_in), ("system", sys_in)):
            if not isinstance(v, list):
                raise bad_request(f"{name} must be a list")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("run must be an object")
        meta_values = self._run_values(meta) if meta else {}
        # Validate and encode everything before the transaction: bad input never holds the write lock.
        rows = self._prepare_rows(rows_in)
        cons = self._prepare_console(cons_in)
        syss = self._prepare_system(sys_in)
        records = self._prepare_records(body)  # files, artifacts, uses, alerts (migration 0003)
        with self.write_engine.begin() as conn:
            r = self._get_or_create(conn, project, run_id)
            pk = r.id
            n, pending = int(r.rows_final), bool(r.pending)
            nc, ns = int(r.console_count), int(r.system_count)
            pos = self._position(r)
            rows = [x for x in rows if x[0] >= n]
            cons = [x for x in cons if x[0] >= nc]
            syss = [x for x in syss if x[0] >= ns]
            if rows and rows[0][0] != n:
                raise conflict(f"rows start at idx {rows[0][0]} but the server holds {n} rows of run "
                               f"{project}/{run_id}: resend from {n}", pos)
            if cons and cons[0][0] != nc:
                raise conflict(f"console records start at idx {cons[0][0]} but the server holds {nc}", pos)
            if syss and syss[0][0] != ns:
                raise conflict(f"system records start at idx {syss[0][0]} but the server holds {ns}", pos)
            upd: dict[str, Any] = dict(meta_values)
            if rows:
                if pending:
                    # The provisional row at idx n (a crashed run's pending row) is replaced.
                    conn.execute(history.delete().where(history.c.run == pk, history.c.idx >= n))
                    conn.execute(series.delete().where(series.c.run == pk, series.c.idx >= n))
                hist_params = []
                ser_params = []
                for idx, final, text, step, runtime, ts, leaves, _media in rows:
                    hist_params.append({"run": pk, "idx": idx, "step": step, "runtime": runtime,
                                        "timestamp": ts, "row": text, "final": final})
                    for key, value in leaves:
                        ser_params.append({"run": pk, "key": key, "idx": idx, "step": step,
                                           "runtime": runtime, "timestamp": ts, "value": value})
                conn.execute(history.insert(), hist_params)
                if ser_params:
                    conn.execute(series.insert(), ser_params)
                last_final = rows[-1][1]
                upd["rows_final"] = n + len(rows) - (0 if last_final else 1)
                upd["pending"] = not last_final
                # The read indexes cover the final rows, so a read never has to build them (see above).
                _extend_read_indexes(conn, pk, n, [(idx, step, leaves, media_leaves) for
                                                   idx, final, _t, step, _rt, _ts, leaves, media_leaves in rows if final])
            if cons:
                conn.execute(console.insert(), [{"run": pk, "idx": i, "ts": ts, "stream": s, "text": t}
                                                for i, ts, s, t in cons])
                upd["console_count"] = nc + len(cons)
            if syss:
                conn.execute(system.insert(), [{"run": pk, "idx": i, "ts": ts, "metrics": m} for i, ts, m in syss])
                upd["system_count"] = ns + len(syss)
            self._apply_records(conn, r, records, pos)
            upd["updated_at"] = time.time()
            conn.execute(runs.update().where(runs.c.id == pk).values(**upd))
            r = conn.execute(sa.select(runs).where(runs.c.id == pk)).first()
            return {**self._position(r), **self._record_counts(conn, pk)}

    @staticmethod
    def _run_values(meta: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in _RUN_TEXT:
            if k in meta:
                out[k] = _text(meta[k], f"run.{k}")
        for k in _RUN_FLOAT:
            if k in meta:
                v = meta[k]
                if v is not None and _num(v) is None:
                    raise bad_request(f"run.{k} must be a finite number or null")
                out[k] = None if v is None else float(v)
        for k in _RUN_JSON:
            if k in meta:
                v = meta[k]
                if k == "tags" and v is not None and not (isinstance(v, list) and all(isinstance(t, str) for t in v)):
                    raise bad_request("run.tags must be a list of strings")
                if k in ("config", "summary", "context", "metrics") and v is not None and not isinstance(v, dict):
                    raise bad_request(f"run.{k} must be an object")
                out[k] = dumps(v)
        if "exit_code" in meta:
            v = meta["exit_code"]
            if v is not None and _int(v) is None:
                raise bad_request("run.exit_code must be an integer or null")
            out["exit_code"] = v
        if "state" in out and out["state"] not in _STATES:
            raise bad_request(f"run.state must be one of {sorted(_STATES)}")
        if "state" in out and out["state"] is None:
            del out["state"]
        return out

    @staticmethod
    def _prepare_rows(items: list[Any]) -> list[tuple[int, bool, str, int | None, float | None, float | None,
                                                     list[tuple[str, float | None]], list[tuple[str, str]]]]:
        """Each row as (idx, final, JSON text, step, runtime, timestamp, numeric leaves, media leaves)."""
        out = []
        prev = -1
        for i, item in enumerate(items):
            idx = _index(item, "rows", i)
            if idx <= prev:
                raise bad_request(f"rows[{i}].idx {idx} does not follow {prev}: indexes must increase")
            if prev >= 0 and idx != prev + 1:
                raise bad_request(f"rows[{i}].idx {idx} leaves a gap after {prev} inside the batch")
            prev = idx
            final = item.get("final", True)
            if type(final) is not bool:
                raise bad_request(f"rows[{i}].final must be a boolean")
            if not final and i != len(items) - 1:
                raise bad_request("only the last row of a batch may be provisional (final: false)")
            row = item.get("row")
            if not isinstance(row, dict):
                raise bad_request(f"rows[{i}].row must be an object")
            leaves: list[tuple[str, float | None]] = []
            _series_of({k: v for k, v in row.items() if k not in _RESERVED_KEYS}, "", leaves)
            text = dumps(row)
            out.append((idx, final, text, _int(row.get("_step")), _num(row.get("_runtime")),
                        _num(row.get("_timestamp")), leaves, _media_leaves(row, text)))
        return out

    @staticmethod
    def _prepare_console(items: list[Any]) -> list[tuple[int, float | None, str | None, str]]:
        out: list[tuple[int, float | None, str | None, str]] = []
        for i, item in enumerate(items):
            idx = _index(item, "console", i)
            if out and idx != out[-1][0] + 1:
                raise bad_request(f"console[{i}].idx {idx} does not follow {out[-1][0]}")
            text = _text(item.get("text"), f"console[{i}].text", 64 << 20)
            out.append((idx, _num(item.get("ts")), _text(item.get("stream"), f"console[{i}].stream", 16), text or ""))
        return out

    @staticmethod
    def _prepare_system(items: list[Any]) -> list[tuple[int, float | None, str]]:
        out: list[tuple[int, float | None, str]] = []
        for i, item in enumerate(items):
            idx = _index(item, "system", i)
            if out and idx != out[-1][0] + 1:
                raise bad_request(f"system[{i}].idx {idx} does not follow {out[-1][0]}")
            m = item.get("metrics")
            if not isinstance(m, dict):
                raise bad_request(f"system[{i}].metrics must be an object")
            out.append((idx, _num(item.get("ts")), dumps(m)))
        return out

    # ---------------------------------------------------------------- media index
    def _blobs(self) -> Any:
        from wandblite.server.blobs import BlobStore

        if self.media_dir is None:
            raise ApiError(503, "no_media_dir", "this server has no media directory (--media)")
        return BlobStore(self.media_dir)

    def missing_media(self, shas: Any) -> list[str]:
        if not isinstance(shas, list) or len(shas) > 100_000:
            raise bad_request("sha256 must be a list of at most 100000 hashes")
        wanted = [validate_sha256(s) for s in shas]
        blobs = self._blobs()
        have: set[str] = set()
        with self.read_engine.connect() as conn:
            for chunk in _chunks(sorted(set(wanted)), 500):
                have.update(r[0] for r in conn.execute(sa.select(media.c.sha256).where(media.c.sha256.in_(chunk))))
        # The file is the truth for the bytes: a row whose file went missing asks for the bytes again.
        return [s for s in dict.fromkeys(wanted) if s not in have or not blobs.has(s)]

    def put_media(self, sha: str, chunks: Iterable[bytes], ext: str | None, limit: int) -> int:
        """Store a blob from byte chunks after checking its sha256; return its size.

        ``limit`` is the caller's blob size limit in bytes (the server's ``--max-blob-size`` or
        ``blobs.max_blob_bytes()``): the store has no default of its own.
        """
        validate_sha256(sha)
        size = self._blobs().put(sha, chunks, limit)
        self._record_media(sha, size, ext)
        return size

    def _record_media(self, sha: str, size: int, ext: str | None) -> None:
        with self.write_engine.begin() as conn:
            if conn.execute(sa.select(media.c.sha256).where(media.c.sha256 == sha)).first() is None:
                conn.execute(media.insert().values(sha256=sha, size=size, ext=_text(ext, "ext", 64), created_at=time.time()))

    def media_path(self, sha: str) -> tuple[Path, str | None]:
        """The blob file of a stored sha256 and its extension (404 when absent)."""
        validate_sha256(sha)
        with self.read_engine.connect() as conn:
            r = conn.execute(sa.select(media.c.ext).where(media.c.sha256 == sha)).first()
        blobs = self._blobs()
        if r is None or not blobs.has(sha):
            raise not_found(f"no media blob {sha}")
        return blobs.path(sha), r[0]

    # ---------------------------------------------------------------- files, artifacts, uses, alerts
    # The batch's ``files``, ``artifacts``, ``uses`` and ``alerts`` (PROTOCOL.md, migration 0003):
    # indexed like console records, validated whole before the transaction, applied in the batch's
    # transaction, skipped below the stored count (a retry changes nothing), a gap is a 409.

    @staticmethod
    def _record_counts(conn: Connection, pk: int | None) -> dict[str, int]:
        """How many records of each stream the run holds (zeros for an unknown run)."""
        if pk is None:
            return dict.fromkeys(RECORD_TABLES, 0)
        return {k: int(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.run == pk)).scalar_one())
                for k, t in RECORD_TABLES.items()}

    @staticmethod
    def _last_sent_alerts(conn: Connection, pk: int, titles: set[str]) -> dict[str, float | None]:
        """title -> ts of the run's most recent stored non-throttled alert of that title (``titles``
        only): where ``throttle`` resumes for a batch's alerts. One pass over the run's sent alerts
        in idx order, under the batch's lock, so batches split anywhere decide the same."""
        last: dict[str, float | None] = {}
        q = (sa.select(alerts.c.title, alerts.c.ts).where(alerts.c.run == pk, alerts.c.throttled == sa.false())
             .order_by(alerts.c.idx))
        for title, ts in conn.execute(q):
            if title in titles:
                last[title] = ts
        return last

    def _prepare_records(self, body: dict[str, Any]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        """Validate the batch's record streams; every byte they name must already be stored."""
        out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for stream, prep in (("files", _prep_file), ("artifacts", _prep_artifact), ("uses", _prep_use),
                             ("alerts", _prep_alert)):
            items = body.get(stream) or []
            if not isinstance(items, list) or len(items) > 100_000:
                raise bad_request(f"{stream} must be a list of at most 100000 records")
            recs: list[tuple[int, dict[str, Any]]] = []
            for i, item in enumerate(items):
                idx = _index(item, stream, i)
                if recs and idx != recs[-1][0] + 1:
                    raise bad_request(f"{stream}[{i}].idx {idx} does not follow {recs[-1][0]}")
                recs.append((idx, prep(item, f"{stream}[{i}]")))
            out[stream] = recs
        need = [f["sha256"] for _i, f in out["files"] if not f["lost"]]
        for _i, a in out["artifacts"]:
            need.extend(e["sha256"] for e in a["entries"].values() if "ref" not in e)
        need = list(dict.fromkeys(need))
        for start in range(0, len(need), 100_000):
            missing = self.missing_media(need[start:start + 100_000])
            if missing:
                raise bad_request(f"{len(missing)} blob(s) the records name are not stored, e.g. {missing[0]}: "
                                  "upload them first (POST /api/v1/media/missing, PUT /api/v1/media/<sha256>)",
                                  code="missing_blob")
        return out

    def _apply_records(self, conn: Connection, r: Any, records: dict[str, list[tuple[int, dict[str, Any]]]],
                       pos: dict[str, Any]) -> None:
        """Store the records at or above each stream's count (inside the batch's transaction)."""
        if not any(records.values()):
            return
        counts = self._record_counts(conn, r.id)
        for stream, recs in records.items():
            n = counts[stream]
            recs = [x for x in recs if x[0] >= n]
            if not recs:
                continue
            if recs[0][0] != n:
                raise conflict(f"{stream} records start at idx {recs[0][0]} but the server holds {n} of run "
                               f"{r.run_id}: resend from {n}", {**pos, **counts})
            if stream == "files":
                conn.execute(run_files.insert(), [{"run": r.id, "idx": i, **f} for i, f in recs])
            elif stream == "alerts":
                flags = throttle([a for _i, a in recs], self._last_sent_alerts(conn, r.id, {a["title"] for _i, a in recs}))
                conn.execute(alerts.insert(), [{"run": r.id, "idx": i, **a, "throttled": t}
                                               for (i, a), t in zip(recs, flags)])
            elif stream == "uses":
                for i, u in recs:
                    aid = None if u["digest"] is None else conn.execute(sa.select(artifacts.c.id).where(
                        artifacts.c.project_id == r.project_id, artifacts.c.name == u["name"],
                        artifacts.c.digest == u["digest"])).scalar()
                    conn.execute(artifact_uses.insert().values(run=r.id, idx=i, artifact=aid, **u))
            else:
                for i, a in recs:
                    aid = self._artifact_version(conn, r.project_id, r.run_id, a)
                    conn.execute(run_artifacts.insert().values(run=r.id, idx=i, artifact=aid,
                                                               aliases=dumps(a["aliases"]), ts=a["ts"]))
                    self._move_aliases(conn, r.project_id, a["name"], a["aliases"], aid, a["ts"] or 0.0)

    @staticmethod
    def _artifact_version(conn: Connection, pid: int, run_id: str, a: dict[str, Any]) -> int:
        """The id of the version with ``a``'s digest, created if new.

        A new digest keeps the version number the client gave it when no other digest of that name
        holds it on the server (the usual case: one root directory, one numbering), else takes
        ``max + 1``. Concurrent creators (PostgreSQL) meet on the unique constraints and re-read.
        """
        where = (artifacts.c.project_id == pid, artifacts.c.name == a["name"])
        for _attempt in range(5):
            aid = conn.execute(sa.select(artifacts.c.id).where(*where, artifacts.c.digest == a["digest"])).scalar()
            if aid is not None:
                return int(aid)
            taken = {int(v) for (v,) in conn.execute(sa.select(artifacts.c.version).where(*where))}
            version = a["version"] if a["version"] not in taken else max(taken) + 1
            try:
                with conn.begin_nested():
                    res = conn.execute(artifacts.insert().values(
                        project_id=pid, name=a["name"], type=a["type"], version=version, digest=a["digest"],
                        description=a["description"], metadata=a["metadata"], manifest=dumps(a["entries"]),
                        size=a["size"], run_id=run_id, created_at=a["ts"] if a["ts"] is not None else time.time()))
                    return int(res.inserted_primary_key[0])  # type: ignore[index]
            except sa.exc.IntegrityError:
                continue
        raise ApiError(503, "busy", f"artifact {a['name']!r} is being written concurrently; retry")

    @staticmethod
    def _move_aliases(conn: Connection, pid: int, name: str, aliases: list[str], aid: int, ts: float) -> None:
        """Point each alias at ``aid`` unless a more recent log record (by ts) gave it to another version."""
        for alias in aliases:
            key = (artifact_aliases.c.project_id == pid, artifact_aliases.c.name == name,
                   artifact_aliases.c.alias == alias)
            try:
                with conn.begin_nested():
                    conn.execute(artifact_aliases.insert().values(project_id=pid, name=name, alias=alias,
                                                                  artifact=aid, ts=ts))
                continue
            except sa.exc.IntegrityError:
                pass
            conn.execute(artifact_aliases.update().where(*key, artifact_aliases.c.ts <= ts).values(artifact=aid, ts=ts))


def _chunks(seq: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


# --------------------------------------------------------------------------- record validation (0003)


def _opt_num(v: Any, what: str) -> float | None:
    if v is None:
        return None
    f = _num(v)
    if f is None:
        raise bad_request(f"{what} must be a finite number or null")
    return f


def _size(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v < 1 << 62:
        raise bad_request(f"{what} must be a non-negative integer")
    return v


def _prep_file(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One FILES entry: ``{name, sha256, size, policy, ts, lost}`` (see PROTOCOL.md)."""
    policy = item.get("policy")
    if policy not in (None, "live", "now", "end"):
        raise bad_request(f"{what}.policy must be live, now, end or null")
    lost = item.get("lost", False)
    if type(lost) is not bool:
        raise bad_request(f"{what}.lost must be a boolean")
    return {"name": validate_file_name(item.get("name"), f"{what}.name"), "sha256": validate_sha256(item.get("sha256")),
            "size": _size(item.get("size"), f"{what}.size"), "policy": policy,
            "ts": _opt_num(item.get("ts"), f"{what}.ts"), "lost": lost}


def _prep_artifact(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One ARTIFACT manifest, checked against its digest; entries keep only ``sha256``/``size``/``ref``."""
    version = item.get("version")
    if type(version) is not int or not 0 <= version < 1 << 31:
        raise bad_request(f"{what}.version must be a non-negative integer")
    aliases = item.get("aliases") or []
    if not isinstance(aliases, list) or len(aliases) > 256:
        raise bad_request(f"{what}.aliases must be a list of at most 256 aliases")
    aliases = list(dict.fromkeys(validate_artifact_name(a, f"{what} alias") for a in aliases))
    for a in aliases:
        if a[:1] == "v" and a[1:].isdigit():
            raise bad_request(f"{what}: alias {a!r} is reserved for versions", code="invalid_name")
    metadata = item.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request(f"{what}.metadata must be an object or null")
    raw = item.get("entries")
    if not isinstance(raw, dict) or len(raw) > 100_000:
        raise bad_request(f"{what}.entries must be an object of at most 100000 entries")
    entries: dict[str, dict[str, Any]] = {}
    for path, e in raw.items():
        validate_file_name(path, f"{what} entry path")
        if not isinstance(e, dict):
            raise bad_request(f"{what}.entries[{path!r}] must be an object")
        clean: dict[str, Any] = {}
        if "ref" in e:
            ref = e["ref"]
            if not isinstance(ref, str) or not 0 < len(ref) <= 4096 or _has_control(ref):
                raise bad_request(f"{what}.entries[{path!r}].ref must be a URI of 1-4096 characters")
            clean["ref"] = _text(ref, f"{what}.entries[{path!r}].ref")
            if e.get("sha256") is not None:
                clean["sha256"] = validate_sha256(e["sha256"])
            if e.get("size") is not None:
                clean["size"] = _size(e["size"], f"{what}.entries[{path!r}].size")
        else:
            clean["sha256"] = validate_sha256(e.get("sha256"))
            clean["size"] = _size(e.get("size"), f"{what}.entries[{path!r}].size")
        entries[path] = clean
    digest = validate_sha256(item.get("digest"))
    if artifact_digest(entries) != digest:
        raise bad_request(f"{what}: the entries hash to {artifact_digest(entries)}, not the digest {digest}",
                          code="hash_mismatch")
    return {"name": validate_artifact_name(item.get("name"), f"{what}.name"),
            "type": _text(item.get("type"), f"{what}.type", 128), "version": version, "digest": digest,
            "aliases": aliases, "description": _text(item.get("description"), f"{what}.description"),
            "metadata": None if metadata is None else dumps(metadata), "entries": entries,
            "size": sum(int(e.get("size") or 0) for e in entries.values()),
            "ts": _opt_num(item.get("ts"), f"{what}.ts")}


def _prep_use(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One USE record: ``{name, version, digest, type, run, ts}``."""
    version = item.get("version")
    if version is not None and (type(version) is not int or not 0 <= version < 1 << 31):
        raise bad_request(f"{what}.version must be a non-negative integer or null")
    digest = item.get("digest")
    return {"name": validate_artifact_name(item.get("name"), f"{what}.name"), "version": version,
            "digest": None if digest is None else validate_sha256(digest),
            "type": _text(item.get("type"), f"{what}.type", 128),
            "source_run": _text(item.get("run"), f"{what}.run", 128), "ts": _opt_num(item.get("ts"), f"{what}.ts")}


def _prep_alert(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One ALERT record: ``{title, text, level, wait_duration, ts}``."""
    title = _text(item.get("title"), f"{what}.title", 64 << 10)
    if not title:
        raise bad_request(f"{what}.title must be a non-empty string")
    level = item.get("level") or "INFO"
    if level not in ("INFO", "WARN", "ERROR"):
        raise bad_request(f"{what}.level must be INFO, WARN or ERROR")
    return {"title": title, "text": _text(item.get("text"), f"{what}.text") or "", "level": level,
            "wait_duration": _opt_num(item.get("wait_duration"), f"{what}.wait_duration"),
            "ts": _opt_num(item.get("ts"), f"{what}.ts")}
