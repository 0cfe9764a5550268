"""What a history row holds besides its JSON: its numeric leaves, its typed values, the media index.

Layer 5 (the server). What it promises:

* ``numeric_leaves(row)``: the row's numbers as (dotted key, value), the values ``series`` holds:
  reserved keys (``_step``, ``_runtime``, ``_timestamp``) left out, a dict with ``_type`` (media)
  is not a number, a dict without it is a subtree; NaN becomes None (NULL: SQLite cannot store a
  NaN REAL), +-Infinity stay, an int beyond a double's range has no chart value (the row keeps it).
* ``typed_leaves``/``media_leaves``: the row's ``_type`` values (media, tables, charts), the keys
  ``media_rows`` hol* ``media_rows`` covers exactly the run's final rows ``[0, rows_final)``: ``add_media_rows`` adds
  the final rows a batch stores, in the batch's transaction, so a reader sees rows and their index
  together and never writes (reads work on a read-only replica or role). A provisional row
  (``final: false``) does not enter it: the read side reads the one row at ``rows_final`` raw.
* The old layout's pyramid (``series_agg``, from ``series``; retired by migration 0006):
  ``backfill_read_indexes`` is kept for migration ``0004_read_indexes_at_ingest``, which still runs
  on a store older than it. Level L buckets ``16 ** (L + 1)`` history indexes (``PYRAMID_SHIFT``,
  ``PYRAMID_LEVELS``). The compact layout's chunk statistics replace it (``history_store.py``).

y.

numpy is imported when first needed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.schema import history, media_rows, series, series_agg
from wandblite.vocab import RESERVED, TYPE_KEY

__all__ = [
    "PYRAMID_LEVELS", "PYRAMID_SHIFT", "add_media_rows", "backfill_read_indexes",
    "media_leaves", "numeric_leaves", "typed_leaves",
]

#: Each pyramid level buckets 16x more history indexes than the one below: widths 16 .. 1048576.
PYRAMID_SHIFT = 4
PYRAMID_LEVELS = 5
#: ``"_type"`` as it appears in a row's JSON text: a row without it holds no typed value.
_TYPE_KEY_JSON = f'"{TYPE_KEY}"'
#: The same as a LIKE pattern (its ``_`` escaped by a backslash), for rows still to index in SQL.
_TYPE_KEY_LIKE = "%" + _TYPE_KEY_JSON.replace("_", "\\_") + "%"


def numeric_leaves(row: dict[str, Any]) -> list[tuple[str, float | None]]:
    """The numeric leaves of a history row as (dotted key, value), reserved keys left out (the
    keys every row carries besides what was logged: ``wandblite.vocab.RESERVED``)."""
    out: list[tuple[str, float | None]] = []
    _numeric({k: v for k, v in row.items() if k not in RESERVED}, "", out)
    return out


def _numeric(row: dict[str, Any], prefix: str, out: list[tuple[str, float | None]]) -> None:
    """Numeric leaves of a row as (dotted key, value); media dicts (with ``_type``) are not numbers.

    Hot path: the number test (``vocab.is_plain_number``) and the subtree test (``vocab.is_subtree``)
    are inlined."""
    for k, v in row.items():
        t = type(v)
        if t is float:
            out.append((prefix + k, None if v != v else v))  # NaN -> NULL (SQLite cannot store it)
        elif t is int:
            try:
                out.append((prefix + k, float(v)))
            except OverflowError:
                continue  # an int beyond a double's range has no chart value; the row keeps it
        elif t is dict and TYPE_KEY not in v:  # a subtree (``vocab.is_subtree``)
            _numeric(v, f"{prefix}{k}.", out)


def typed_leaves(row: dict[str, Any], prefix: str, out: list[tuple[str, Any]]) -> None:
    """The ``_type`` values (media, tables, charts, ...) of a row as (dotted key, value)."""
    for k, v in row.items():
        if type(v) is dict:
            if TYPE_KEY in v:  # a typed value; without the key, a subtree (``vocab.is_subtree``)
                out.append((prefix + k, v))
            else:
                typed_leaves(v, f"{prefix}{k}.", out)


def media_leaves(row: dict[str, Any], text: str) -> list[tuple[str, str]]:
    """(dotted key, ``_type``) of each typed value of a row (``text``: its JSON), reserved keys left out."""
    if _TYPE_KEY_JSON not in text:
        return []
    leaves: list[tuple[str, Any]] = []
    typed_leaves({k: v for k, v in row.items() if k not in RESERVED}, "", leaves)
    return [(k, str(v.get(TYPE_KEY))[:64]) for k, v in leaves]


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


def add_media_rows(conn: Connection, pk: int, rows: list[tuple[int, int | None, list[tuple[str, str]]]]) -> None:
    """Add final rows ``(idx, step, media leaves)`` to the run's media index (in the caller's transaction)."""
    params = [{"run": pk, "key": k, "idx": idx, "step": step, "type": t} for idx, step, leaves in rows for k, t in leaves]
    for i in range(0, len(params), 5000):
        conn.execute(media_rows.insert(), params[i:i + 5000])


def backfill_read_indexes(conn: Connection, pk: int, final: int, built: dict[tuple[int, str], int] | None = None,
                          ) -> None:
    """Build a run's pyramid and media index over its final rows ``[0, final)`` from ``series`` and
    ``history``, continuing where ``built`` (``(run, "agg:<key>" | "media") -> upto``, what an
    older read side had built) says each stands. For rows stored without ``apply_batch`` (migration
    0004, benchmarks); ``apply_batch`` keeps them current after that (``extend_read_indexes``)."""
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
                    history.c.row.like(_TYPE_KEY_LIKE, escape="\\")))
        for idx, step, text in conn.execute(q):
            params.extend({"run": pk, "key": k, "idx": idx, "step": step, "type": t}
                          for k, t in media_leaves(json.loads(text), text))
        for i in range(0, len(params), 5000):
            conn.execute(media_rows.insert(), params[i:i + 5000])
