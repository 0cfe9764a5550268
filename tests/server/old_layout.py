"""Turn a store back into the layout before migration 0006, as the code before it wrote it.

Before 0006 a run's history was one ``history`` row per history row (its JSON text as ``db.dumps``
wrote it, the step/runtime/timestamp columns as ``wire.prep_rows`` computed them, the final flag),
one ``series`` row per numeric point (``indexes.numeric_leaves``, NaN as NULL; the provisional row's
points included) and the min/max pyramid ``series_agg`` over the final rows (``backfill_read_indexes``
is that code, kept for migration 0004). ``to_old_layout`` rewrites every run of a store that way from
what its reads give back, drops the compact tables and forgets migration 0006, so the next
``Store(url)`` start migrates it again: tests compare the answers before and after.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from wandblite.server.db import dumps
from wandblite.server.history_store import pending_row, read_rows
from wandblite.server.indexes import backfill_read_indexes, numeric_leaves
from wandblite.server.schema import (
    history,
    history_chunks,
    history_pending,
    runs,
    schema_migrations,
    series,
    series_agg,
    series_chunks,
)
from wandblite.server.store import Store
from wandblite.server.wire import finite_number, int64
from wandblite.vocab import RUNTIME, STEP, TIMESTAMP

__all__ = ["to_old_layout"]


def _old_rows(pk: int, idx: int, row: dict[str, Any], final: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    step, runtime, timestamp = int64(row.get(STEP)), finite_number(row.get(RUNTIME)), finite_number(row.get(TIMESTAMP))
    h = {"run": pk, "idx": idx, "step": step, "runtime": runtime, "timestamp": timestamp, "row": dumps(row),
         "final": final}
    s = [{"run": pk, "key": k, "idx": idx, "step": step, "runtime": runtime, "timestamp": timestamp, "value": v}
         for k, v in numeric_leaves(row)]
    return h, s


def to_old_layout(store: Store) -> int:
    """Rewrite the store's history into the pre-0006 tables; return how many history rows were written."""
    written = 0
    with store.write_engine.begin() as conn:
        old: dict[int, list[tuple[dict[str, Any], list[dict[str, Any]]]]] = {}
        finals = conn.execute(sa.select(runs.c.id, runs.c.rows_final)).all()
        for pk, final in finals:
            rows = [_old_rows(pk, i, row, True) for i, row in read_rows(conn, pk, 0, int(final))]
            p = pending_row(conn, pk)
            if p is not None:
                rows.append(_old_rows(pk, p[0], p[4], False))
            old[pk] = rows
        for table in (history_pending, series_chunks, history_chunks):
            table.drop(conn)
        for table in (history, series, series_agg):
            table.create(conn)
        for rows in old.values():
            for i in range(0, len(rows), 5000):
                part = rows[i:i + 5000]
                conn.execute(history.insert(), [h for h, _s in part])
                points = [p for _h, s in part for p in s]
                if points:
                    conn.execute(series.insert(), points)
            written += len(rows)
        for pk, final in finals:  # the pyramid as the old ingest grew it (media_rows are already there)
            backfill_read_indexes(conn, pk, int(final), {(pk, "media"): int(final)})
        conn.execute(schema_migrations.delete().where(schema_migrations.c.name == "0006_compact_history"))
    return written
