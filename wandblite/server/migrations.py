"""The schema's history: small named migration steps, applied in order, once each.

Layer 5 (the server). What it promises:

* ``MIGRATIONS`` lists the steps in the order they run. A released step is never edited or
  reordered: a change to the schema is a new step appended at the end. Each step records itself in
  ``schema_migrations`` in the transaction that applies it, so a step either happened whole or not.
* ``migrate(engine)`` applies the steps not applied yet and returns their names. Several server
  processes may start at once on one database: each step's check and apply run in one transaction
  that holds the database's write lock first (``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped
  advisory lock on PostgreSQL), so every step runs exactly once. Running it again applies nothing.

The tables themselves are drawn in ``schema.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.indexes import backfill_read_indexes
from wandblite.server.schema import (
    alerts,
    api_keys,
    artifact_aliases,
    artifact_uses,
    artifacts,
    console,
    derived_state,
    history,
    media,
    media_rows,
    metadata,
    projects,
    run_artifacts,
    run_files,
    runs,
    schema_migrations,
    series,
    series_agg,
    sessions,
    system,
)
from wandblite.throttle import throttle

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


#: Named schema steps, applied in this order, each once (recorded in ``schema_migrations``).
#: Never edit or reorder a released step: append a new one.
MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0002_sessions_and_read_indexes", _m0002_sessions_and_read_indexes),
    ("0003_files_artifacts_alerts", _m0003_files_artifacts_alerts),
    ("0004_read_indexes_at_ingest", _m0004_read_indexes_at_ingest),
    ("0005_alert_throttle", _m0005_alert_throttle),
]


def _lock(conn: Connection) -> None:
    """Hold the migration lock until this transaction ends (SQLite: its ``BEGIN IMMEDIATE`` already does)."""
    if conn.dialect.name == "postgresql":
        # Released at commit; the key is arbitrary but fixed ("wblm").
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(2004116589)"))


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations not applied yet, in order, through the write ``engine``; return their names."""
    with engine.begin() as conn:
        _lock(conn)
        schema_migrations.create(conn, checkfirst=True)
    done_now: list[str] = []
    for name, step in MIGRATIONS:
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
