"""The schema's history: small named migration steps, applied in order, once each.

Layer 5 (the server). What it promises:

* ``MIGRATIONS`` lists the steps in the order they run. A released step is never edited or
  reordered: a change to the schema is a new step appended at the end. Each step records itself in
  ``schema_migrations`` in the transaction that applies it, so a step either happened whole or not.
* ``migrate(engine, progress)`` applies the steps not applied yet and returns their names. Several server
  processes may start at once on one database: each step's check and apply run in one transaction
  that holds the database's write lock first (``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped
  advisory lock on PostgreSQL), so every step runs exactly once. Running it again applies nothing.

* A step that converts stored data (``0006_compact_history``, ``0013_chunk_sums``) does its work before its own
  transaction, in pieces, each in its own transaction under the same lock, so it is resumable: a
  server killed half-way converts the rest when it starts again, and two starting at once share the
  work. ``progress`` (default: lines on stderr) is told what is being converted. ``0012_media_refs``
  builds its index the same way, one run per transaction.

The tables themselves are drawn in ``schema.py``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.auth import admin_user_id
from wandblite.server.chunks import split_row
from wandblite.server.history_store import fill_sums, write_rows
from wandblite.server.indexes import backfill_read_indexes
from wandblite.server.media_index import backfill_refs
from wandblite.server.schema import (
    alerts,
    api_keys,
    artifact_aliases,
    artifact_uses,
    artifacts,
    audit_log,
    console,
    derived_state,
    history,
    history_chunks,
    history_pending,
    login_failures,
    media,
    media_refs,
    media_rows,
    metadata,
    project_members,
    projects,
    run_artifacts,
    run_files,
    run_grants,
    run_writers,
    runs,
    schema_migrations,
    series,
    series_agg,
    series_chunks,
    sessions,
    system,
    users,
    workspaces,
    writer_rows,
)
from wandblite.server.wire import Row
from wandblite.throttle import throttle
from wandblite.vocab import DEFAULT_VISIBILITY

__all__ = ["MIGRATIONS", "applied", "migrate"]


def _m0001_initial(conn: Connection) -> None:
    """Keys, projects, runs with their history, series, console and system records, the media index."""
    metadata.create_all(conn, tables=[api_keys, projects, runs, history, series, console, system, media])


def _m0002_sessions_and_read_indexes(conn: Connection) -> None:
    """Browser sessions, and the read side's derived indexes (then built lazily by the first read)."""
    metadata.create_all(conn, tables=[sessions, series_agg, media_rows, derived_state])


def _m0003_files_artifacts_alerts(conn: Connection) -> None:
    """What ``wandblite.save``, ``log_artifact``/``use_artifact`` and ``run.alert`` record."""
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


def _create_chunk_tables(conn: Connection) -> None:
    """The compact layout's tables (if missing). On PostgreSQL their blobs are stored as they are
    (``STORAGE EXTERNAL``): already zstd-compressed, pglz would spend time failing to shrink them."""
    metadata.create_all(conn, tables=[history_chunks, series_chunks, history_pending])
    if conn.dialect.name == "postgresql":
        for table in (history_chunks, series_chunks):
            conn.execute(sa.text(f"ALTER TABLE {table.name} ALTER COLUMN data SET STORAGE EXTERNAL"))


#: Rows converted per transaction by migration 0006 (a multiple of the chunk size).
CONVERT_PIECE = 65_536


def _convert_to_chunks(engine: Engine, progress: Callable[[str], None]) -> None:
    """Migration 0006's data work: every run's ``history`` rows (and so its ``series`` points) into
    ``history_chunks``/``series_chunks``/``history_pending``, ``CONVERT_PIECE`` rows per transaction.
    A converted piece's old rows are deleted in the transaction that writes its chunks, so where a
    run stands is what is left in ``history``: a restart, or a second server, goes on from there."""
    with engine.begin() as conn:
        _lock(conn)
        if not sa.inspect(conn).has_table("history"):
            return
        _create_chunk_tables(conn)
        todo = conn.execute(sa.select(runs.c.id, runs.c.run_id, runs.c.rows_final).where(
            sa.exists().where(history.c.run == runs.c.id)).order_by(runs.c.id)).all()
    for n, (pk, run_id, rows_final) in enumerate(todo, 1):
        while True:
            with engine.begin() as conn:
                _lock(conn)
                if not sa.inspect(conn).has_table("history"):
                    return  # another process finished the step
                h = history.c
                old = conn.execute(sa.select(h.idx, h.step, h.runtime, h.timestamp, h.row, h.final).where(
                    h.run == pk).order_by(h.idx).limit(CONVERT_PIECE)).all()
                if not old:
                    break
                held = int(old[0].idx)
                recs = []
                for o in old:
                    row = json.loads(o.row)
                    template, points = split_row(row, o.step, o.runtime, o.timestamp)
                    recs.append((int(o.idx), Row(bool(o.final), None if o.final else o.row, template, o.step,
                                                 o.runtime, o.timestamp, points, [])))
                write_rows(conn, pk, held, True, recs)
                top = int(old[-1].idx) + 1
                conn.execute(history.delete().where(h.run == pk, h.idx < top))
                conn.execute(series.delete().where(series.c.run == pk, series.c.idx < top))
                progress(f"migrating history to chunks: run {n}/{len(todo)} ({run_id}), "
                         f"{min(top, int(rows_final))}/{int(rows_final)} rows")


def _m0006_compact_history(conn: Connection) -> None:
    """The compact layout: a run's rows in chunks (``history_chunks``, ``series_chunks``, a provisional
    row in ``history_pending``) instead of a row per history row (``history``), a row per point
    (``series``) and the pyramid (``series_agg``). ``_convert_to_chunks`` has moved the data; what
    is left to do here is to drop the old tables."""
    _create_chunk_tables(conn)
    inspector = sa.inspect(conn)
    if inspector.has_table("history"):
        left = conn.execute(sa.select(sa.func.count()).select_from(history)).scalar_one()
        if left:
            raise RuntimeError(f"migration 0006: {left} history rows were not converted; start the server again")
    for table in (series_agg, series, history):
        if inspector.has_table(table.name):
            table.drop(conn)


def _add_columns(conn: Connection, table: sa.Table, names: list[str]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each of ``names`` the stored table lacks (a store made
    after the column entered ``schema.py`` has it from its first step)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for name in names:
        if name not in have:
            col = table.c[name]
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {col.type.compile(conn.dialect)}"))


def _m0007_users_roles_audit(conn: Connection) -> None:
    """Users, project members and roles, run ownership and grants, the audit log. What was stored
    keeps its meaning: every key becomes the "admin" user's (admin scope: it could do everything),
    every project internal (every key could read it), every run the admin's."""
    metadata.create_all(conn, tables=[users, project_members, run_grants, audit_log])
    _add_columns(conn, api_keys, ["user_id", "scope", "expires_at"])
    _add_columns(conn, projects, ["visibility"])
    _add_columns(conn, runs, ["owner_id"])
    admin = admin_user_id(conn)
    conn.execute(api_keys.update().where(api_keys.c.user_id.is_(None)).values(user_id=admin))
    conn.execute(api_keys.update().where(api_keys.c.scope.is_(None)).values(scope="admin"))
    conn.execute(projects.update().where(projects.c.visibility.is_(None)).values(visibility=DEFAULT_VISIBILITY))
    conn.execute(runs.update().where(runs.c.owner_id.is_(None)).values(owner_id=admin))


def _m0008_user_sessions(conn: Connection) -> None:
    """A browser session may belong to a user who logged in with a password (``sessions.user_id``;
    ``key_id`` becomes nullable: such a session has no key), and failed logins are counted per name
    (``login_failures``). Sessions already open keep working: SQLite cannot drop a NOT NULL, so its
    table is rebuilt with its rows; PostgreSQL alters the column."""
    metadata.create_all(conn, tables=[login_failures])
    _add_columns(conn, sessions, ["user_id"])
    key_col = next(c for c in sa.inspect(conn).get_columns("sessions") if c["name"] == "key_id")
    if key_col["nullable"]:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE sessions ALTER COLUMN key_id DROP NOT NULL"))
        return
    conn.execute(sa.text("ALTER TABLE sessions RENAME TO sessions_before_0008"))
    sessions.create(conn)
    conn.execute(sa.text("INSERT INTO sessions (token_hash, key_id, created_at, expires_at, user_id) "
                         "SELECT token_hash, key_id, created_at, expires_at, user_id FROM sessions_before_0008"))
    conn.execute(sa.text("DROP TABLE sessions_before_0008"))


def _m0009_writer_streams(conn: Connection) -> None:
    """A shared run's writers synced one by one (``writers.py``): each writer's position, fold and
    facts (``run_writers``), its own rows (``writer_rows``), the writer of each console line and
    system sample (NULL for every record stored before: a single writer's), and the run's writers
    table and crash report (``runs.writers``, NULL for a single writer's run)."""
    metadata.create_all(conn, tables=[run_writers, writer_rows])
    _add_columns(conn, console, ["writer"])
    _add_columns(conn, system, ["writer"])
    _add_columns(conn, runs, ["writers"])


def _m0010_run_edits(conn: Connection) -> None:
    """Run edits on the server (``edits.py``): the archived flag and the record of which fields of
    the run's file an edit overrides. Nothing stored changes meaning: no run is archived or edited."""
    _add_columns(conn, runs, ["archived_at", "edited"])


def _m0011_saved_workspaces(conn: Connection) -> None:
    """Saved dashboard workspaces: a user's own view, a project's default view, shared snapshots."""
    metadata.create_all(conn, tables=[workspaces])


def _backfill_media_refs(engine: Engine, progress: Callable[[str], None]) -> None:
    """Migration 0012's data work: ``media_refs`` of every stored run, from its records, one run per
    transaction (``media_index.backfill_refs``)."""
    backfill_refs(engine, _lock, progress)


def _m0012_media_refs(conn: Connection) -> None:
    """Which run names which blob (``media_refs``), so a blob is served to whoever may read a project
    holding a run that names it. ``_backfill_media_refs`` has filled it for the runs already stored."""
    metadata.create_all(conn, tables=[media_refs])


#: Series chunks summed per transaction by migration 0013.
SUM_PIECE = 2000


def _sum_chunks(engine: Engine, progress: Callable[[str], None]) -> None:
    """Migration 0013's data work: add ``series_chunks.sums`` and store it for every chunk lacking it,
    ``SUM_PIECE`` chunks per transaction. Where the work stands is the chunks still NULL: a restart,
    or a second server, goes on from there (and a reader decodes a chunk not summed yet)."""
    with engine.begin() as conn:
        _lock(conn)
        if not sa.inspect(conn).has_table("series_chunks"):
            return
        _add_columns(conn, series_chunks, ["sums"])
        total = conn.execute(sa.select(sa.func.count()).select_from(series_chunks).where(
            series_chunks.c.sums.is_(None))).scalar_one()
    done = 0
    while True:
        with engine.begin() as conn:
            _lock(conn)
            n = fill_sums(conn, SUM_PIECE)
        if not n:
            return
        done += n
        progress(f"summing series chunks: {min(done, total)}/{total}")


def _m0013_chunk_sums(conn: Connection) -> None:
    """Per-block sums beside each series chunk (``series_chunks.sums``, ``chunks.point_sums``) so that a
    grouped chart reads sums, not points. ``_sum_chunks`` has stored them; a chunk written since by
    a server of the version before is summed here."""
    _add_columns(conn, series_chunks, ["sums"])
    while fill_sums(conn, SUM_PIECE):
        pass


def _m0014_writers_time_order(conn: Connection) -> None:
    """A shared run's console and system records read by every writer at once come in time order
    (``read._paged``: ts, NULL first, then writer label and index): an index in that order on each
    table, so a page is read in index order, not sorted anew each time. PostgreSQL sorts NULL last
    unless told; SQLite's ascending order puts it first and its CREATE INDEX takes no NULLS FIRST."""
    ts = "ts NULLS FIRST" if conn.dialect.name == "postgresql" else "ts"
    for table in (console.name, system.name):
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_{table}_writers_time ON {table} (run, {ts}, writer, idx)"))


#: Named schema steps, applied in this order, each once (recorded in ``schema_migrations``).
#: Never edit or reorder a released step: append a new one.
MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0002_sessions_and_read_indexes", _m0002_sessions_and_read_indexes),
    ("0003_files_artifacts_alerts", _m0003_files_artifacts_alerts),
    ("0004_read_indexes_at_ingest", _m0004_read_indexes_at_ingest),
    ("0005_alert_throttle", _m0005_alert_throttle),
    ("0006_compact_history", _m0006_compact_history),
    ("0007_users_roles_audit", _m0007_users_roles_audit),
    ("0008_user_sessions", _m0008_user_sessions),
    ("0009_writer_streams", _m0009_writer_streams),
    ("0010_run_edits", _m0010_run_edits),
    ("0011_saved_workspaces", _m0011_saved_workspaces),
    ("0012_media_refs", _m0012_media_refs),
    ("0013_chunk_sums", _m0013_chunk_sums),
    ("0014_writers_time_order", _m0014_writers_time_order),
]

#: Data work a step does before its transaction, resumably (see the module's docstring).
_BEFORE: dict[str, Callable[[Engine, Callable[[str], None]], None]] = {
    "0006_compact_history": _convert_to_chunks,
    "0012_media_refs": _backfill_media_refs,
    "0013_chunk_sums": _sum_chunks,
}


def _to_stderr(line: str) -> None:
    print(f"wandblite: {line}", file=sys.stderr, flush=True)


def _lock(conn: Connection) -> None:
    """Hold the migration lock until this transaction ends (SQLite: its ``BEGIN IMMEDIATE`` already does)."""
    if conn.dialect.name == "postgresql":
        # Released at commit; the key is arbitrary but fixed ("wblm").
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(2004116589)"))


def migrate(engine: Engine, progress: Callable[[str], None] = _to_stderr) -> list[str]:
    """Apply the migrations not applied yet, in order, through the write ``engine``; return their
    names. ``progress`` is told about data being converted (nothing on a fresh database)."""
    with engine.begin() as conn:
        _lock(conn)
        schema_migrations.create(conn, checkfirst=True)
    done_now: list[str] = []
    for name, step in MIGRATIONS:
        before = _BEFORE.get(name)
        if before is not None:
            with engine.connect() as conn:
                done = conn.execute(
                    sa.select(schema_migrations.c.name).where(schema_migrations.c.name == name)).first()
            if not done:
                before(engine, progress)
        with engine.begin() as conn:
            _lock(conn)
            done = conn.execute(
                sa.select(schema_migrations.c.name).where(schema_migrations.c.name == name)
            ).first()
            if done:
                continue
            step(conn)
            conn.execute(schema_migrations.insert().values(name=name, applied_at=time.time()))
            done_now.append(name)
    return done_now


def applied(engine: Engine) -> list[str]:
    """The names of the steps applied to the database, sorted."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(schema_migrations.c.name).order_by(schema_migrations.c.name))]
