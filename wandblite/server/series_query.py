"""What a run's charts read: its keys, and each metric's series downsampled for a chart.

Layer 5 (server). Plain functions over a ``Store`` returning JSON-able dicts, each reading one
snapshot (``Store.snapshot``) and writing nothing, so they serve from a read-only database user or
replica. ``series_args`` turns the query string of ``GET .../series`` into ``get_series``'s arguments.

What it promises
----------------
* ``run_keys`` lists the numeric keys (dotted leaf paths, from ``store.series``) with their point
  counts and first/last steps, then the media and other ``_type`` keys (from ``store.media_rows``,
  written with the final rows, plus a crashed run's provisional row read raw), each with its
  ``kind`` (one of ``KINDS``).
* ``get_series`` downsamples a metric for charts: at most ``samples`` points that keep, for each
  of about ``samples / 2`` buckets of the run's index range, the bucket's minimum and maximum point
  (the spikes), in x order. NaN and +-Infinity values are skipped in ``y`` (they have no place on
  a chart); ``count`` still counts them (every point logged in the range). The x of a point is its
  row's ``_step``, ``_runtime``, ``_timestamp``, or the value another metric (``epoch``) has in the
  same history row (points whose row lacks that metric are dropped).
* Speed: the min/max of each bucket comes from a per-(run, key) pyramid (``store.series_agg``,
  buckets of 16, 256, 4096, 65536 and 1048576 history indexes) that the store extends as each sync
  batch is stored. A chart of a 1M-point series reads about 4,000 aggregate rows instead of a
  million points. Only final rows enter the pyramid; a crashed run's provisional row is read raw.
* ``min_x``/``max_x`` (zoom) locate the index range by binary search, which assumes x does not
  decrease along the run (true for ``_step``, ``_runtime``, ``_timestamp`` and usual epoch
  counters); the points returned are then filtered exactly by x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.errors import bad_request
from wandblite.server.indexes import PYRAMID_LEVELS, PYRAMID_SHIFT, typed_leaves
from wandblite.server.read import run_row, tail_rows
from wandblite.server.schema import history, media_rows, series, series_agg
from wandblite.server.store import Store
from wandblite.vocab import RESERVED, RUNTIME, STEP, TIMESTAMP, TYPE_KEY

__all__ = ["KINDS", "MAX_SAMPLES", "get_series", "run_keys", "series_args"]

#: ``kind`` values of ``run_keys``; other ``_type`` values (collections such as ``videos``) are "other".
KINDS = ("number", "image-file", "images/separated", "video-file", "audio-file", "histogram", "table-file",
         "chart", "object3D-file", "html-file", "other")
MAX_SAMPLES = 100_000
_SHIFT = PYRAMID_SHIFT  # each pyramid level buckets 16x more indexes than the one below
_LEVELS = PYRAMID_LEVELS  # bucket widths 16, 256, 4096, 65536, 1048576
_RAW_MAX = 20_000  # index spans up to this are read point by point
#: The reserved keys (``vocab.RESERVED_KEYS``), each with the column of ``history`` and ``series``
#: that holds it: an x-axis read from a column rather than from another metric's series.
_X_COLUMNS = {STEP: "step", RUNTIME: "runtime", TIMESTAMP: "timestamp"}


# --------------------------------------------------------------------------- keys


def _kind(t: str) -> str:
    return t if t in KINDS else "other"


def run_keys(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """``{"keys": [{"key", "kind", "count", "first_step", "last_step"}]}``: numeric keys (dotted
    leaf paths, from ``series``) then media and other ``_type`` keys (from the history rows)."""
    out: list[dict[str, Any]] = []
    with store.snapshot() as conn:
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        key: str | None = None
        while True:
            q = sa.select(sa.func.min(series.c.key)).where(series.c.run == pk)
            key = conn.execute(q.where(series.c.key > key) if key is not None else q).scalar()
            if key is None:
                break
            cond = (series.c.run == pk, series.c.key == key)
            first = conn.execute(sa.select(series.c.step).where(*cond).order_by(series.c.idx).limit(1)).scalar()
            last = conn.execute(sa.select(series.c.step).where(*cond).order_by(series.c.idx.desc()).limit(1)).scalar()
            count = _count(conn, pk, final, key)
            out.append({"key": key, "kind": "number", "count": int(count or 0), "first_step": first, "last_step": last})
        media: dict[str, dict[str, Any]] = {}
        q2 = (sa.select(media_rows.c.key, media_rows.c.type, sa.func.count().label("n"),
                        sa.func.min(media_rows.c.step).label("lo"), sa.func.max(media_rows.c.step).label("hi"))
              .where(media_rows.c.run == pk).group_by(media_rows.c.key, media_rows.c.type))
        for k, t, n, lo, hi in conn.execute(q2):
            _merge_media_key(media, k, t, int(n), lo, hi)
        for _idx, step, row in tail_rows(conn, pk, final):  # a provisional row is not indexed
            leaves: list[tuple[str, Any]] = []
            typed_leaves({k: v for k, v in row.items() if k not in RESERVED}, "", leaves)
            for k, v in leaves:
                _merge_media_key(media, k, str(v.get(TYPE_KEY)), 1, step, step)
    out.extend(sorted(media.values(), key=lambda d: d["key"]))
    for d in out:
        d.pop("_n", None)
    return {"keys": out}


def _count(conn: Connection, pk: int, final: int, key: str) -> int:
    """Points of a key: the final rows' from its pyramid's top level, plus a provisional row's."""
    a = series_agg.c
    top = conn.execute(sa.select(sa.func.sum(a.n)).where(a.run == pk, a.key == key, a.level == _LEVELS - 1)).scalar()
    rest = conn.execute(sa.select(sa.func.count()).select_from(series).where(
        series.c.run == pk, series.c.key == key, series.c.idx >= final)).scalar()
    return int(top or 0) + int(rest or 0)


def _merge_media_key(media: dict[str, dict[str, Any]], key: str, t: str, n: int, lo: Any, hi: Any) -> None:
    d = media.get(key)
    if d is None:
        media[key] = {"key": key, "kind": _kind(t), "type": t, "count": n, "first_step": lo, "last_step": hi,
                      "_n": n}
        return
    if n > d["_n"]:  # a key that held several types reports the commonest
        d.update(kind=_kind(t), type=t, _n=n)
    d["count"] += n
    d["first_step"] = lo if d["first_step"] is None else min(d["first_step"], lo) if lo is not None else d["first_step"]
    d["last_step"] = hi if d["last_step"] is None else max(d["last_step"], hi) if hi is not None else d["last_step"]


# --------------------------------------------------------------------------- series


def series_args(params: Any) -> dict[str, Any]:
    """Validate the query parameters of ``GET .../series`` into ``get_series`` kwargs."""
    keys = [k for k in (params.get("keys") or "").split(",") if k]
    if not keys:
        raise bad_request("keys is required: a comma-separated list of metric keys")
    if len(keys) > 100:
        raise bad_request("at most 100 keys per request")
    out: dict[str, Any] = {"keys": keys, "x_axis": params.get("x_axis") or STEP}
    try:
        out["samples"] = int(params.get("samples") or 1500)
        for name in ("min_x", "max_x"):
            v = params.get(name)
            out[name] = float(v) if v not in (None, "") else None
    except ValueError:
        raise bad_request("samples must be an integer and min_x/max_x numbers")
    return out


def get_series(store: Store, project: str, run_id: str, keys: list[str], x_axis: str = STEP,
               samples: int = 1500, min_x: float | None = None, max_x: float | None = None) -> dict[str, Any]:
    """``{"x_axis", "series": {key: {"x", "y", "y_min", "y_max", "count"}}}``, downsampled.

    ``x``/``y`` are the points kept, in x order (at most ``samples``); ``y_min``/``y_max`` are the
    minimum and maximum of the bucket each point stands for (equal to ``y`` for points returned one
    by one); ``count`` is the number of points logged in the range. A key never logged gives
    empty lists and a count of 0.
    """
    if not 2 <= samples <= MAX_SAMPLES:
        raise bad_request(f"samples must be between 2 and {MAX_SAMPLES}")
    for v in (min_x, max_x):
        if v is not None and math.isnan(v):
            raise bad_request("min_x and max_x must be numbers")
    for key in keys:
        if key in _X_COLUMNS:
            raise bad_request(f"{key} is an x axis, not a metric key")
    out: dict[str, Any] = {}
    with store.snapshot() as conn:  # the position, the rows and the pyramid as of one moment
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        for key in keys:
            out[key] = _one_series(conn, pk, final, key, x_axis, samples, min_x, max_x)
    return {"x_axis": x_axis, "series": out}


def _x_probe(conn: Connection, pk: int, x_axis: str) -> Callable[[int], float | None]:
    """x at the first row with an index >= i that has one (None past the end)."""
    if x_axis in _X_COLUMNS:
        col = history.c[_X_COLUMNS[x_axis]]
        q = sa.select(col).where(history.c.run == pk, history.c.idx >= sa.bindparam("i"), col.is_not(None))
    else:
        col = series.c.value
        q = sa.select(col).where(series.c.run == pk, series.c.key == x_axis, series.c.idx >= sa.bindparam("i"),
                                 col.is_not(None))
    q = q.order_by(history.c.idx if x_axis in _X_COLUMNS else series.c.idx).limit(1)

    def probe(i: int) -> float | None:
        v = conn.execute(q, {"i": i}).scalar()
        return None if v is None else float(v)

    return probe


def _idx_range(conn: Connection, pk: int, end: int, x_axis: str, min_x: float | None,
               max_x: float | None) -> tuple[int, int]:
    """The index range ``[lo, hi)`` whose x lies in ``[min_x, max_x]`` (x non-decreasing; binary search)."""
    if min_x is None and max_x is None:
        return 0, end
    probe = _x_probe(conn, pk, x_axis)

    def first_at_least(x: float, strict: bool) -> int:
        lo, hi = 0, end
        while lo < hi:
            mid = (lo + hi) // 2
            v = probe(mid)
            if v is None or (v > x if strict else v >= x):
                hi = mid
            else:
                lo = mid + 1
        return lo

    lo = first_at_least(min_x, False) if min_x is not None else 0
    hi = first_at_least(max_x, True) if max_x is not None else end
    # Points of a metric key may sit between the x key's rows: widen by one row on each side.
    return max(0, lo - 1), min(end, hi + 1)


def _one_series(conn: Connection, pk: int, final: int, key: str, x_axis: str, samples: int,
                min_x: float | None, max_x: float | None) -> dict[str, Any]:
    cond = (series.c.run == pk, series.c.key == key)
    last = conn.execute(sa.select(series.c.idx).where(*cond).order_by(series.c.idx.desc()).limit(1)).scalar()
    if last is None:
        return {"x": [], "y": [], "y_min": [], "y_max": [], "count": 0}
    first = int(conn.execute(sa.select(series.c.idx).where(*cond).order_by(series.c.idx).limit(1)).scalar_one())
    lo, hi = _idx_range(conn, pk, int(last) + 1, x_axis, min_x, max_x)
    lo, hi = max(lo, first), min(hi, int(last) + 1)
    nb = max(1, samples // 2)
    # items: (first_idx, last_idx, n, min_v, min_idx, max_v, max_idx), min/max over finite values only
    items: list[tuple[int, int, int, float | None, int | None, float | None, int | None]] = []
    span = hi - lo
    level = -1
    if span > _RAW_MAX:
        for lv in range(_LEVELS):
            if span >> (_SHIFT * (lv + 1)) <= 16 * nb:
                level = lv
                break
        else:
            level = _LEVELS - 1
    if level < 0:
        items = _raw_items(conn, cond, lo, hi)
    else:
        width = 1 << (_SHIFT * (level + 1))
        agg_hi = min(hi, final)
        b_lo = -(-lo // width)  # the first bucket starting at or after lo
        b_hi = agg_hi // width if agg_hi < final else -(-final // width)  # buckets wholly in range
        if b_hi <= b_lo:
            items = _raw_items(conn, cond, lo, hi)
        else:
            a = series_agg.c
            rows = conn.execute(sa.select(a.first_idx, a.last_idx, a.n, a.min_v, a.min_idx, a.max_v, a.max_idx).where(
                a.run == pk, a.key == key, a.level == level, a.bucket >= b_lo, a.bucket < b_hi,
            ).order_by(a.bucket)).all()
            items = _raw_items(conn, cond, lo, min(hi, b_lo * width))
            items.extend(tuple(r) for r in rows)  # type: ignore[misc]
            items.extend(_raw_items(conn, cond, max(lo, min(b_hi * width, final)), hi))
    count = sum(it[2] for it in items)
    if count <= samples and level >= 0:
        items = _raw_items(conn, cond, lo, hi)  # few points spread over many indexes: send them all
    points: list[tuple[int, float, float, float]] = _downsample(items, lo, max(1, hi - lo), nb) if count > samples \
        else [(it[0], it[3], it[3], it[3]) for it in items if it[3] is not None]
    xs = _x_values(conn, pk, key, x_axis, [p[0] for p in points])
    kept = []
    for (idx, y, ylo, yhi) in points:
        x = xs.get(idx)
        if x is None or (min_x is not None and x < min_x) or (max_x is not None and x > max_x):
            continue
        kept.append((x, y, ylo, yhi))
    kept.sort(key=lambda p: p[0])  # already so for a non-decreasing x; a wandering epoch axis is sorted
    out_x, out_y, out_lo, out_hi = [], [], [], []
    for x, y, ylo, yhi in kept:
        out_x.append(x)
        out_y.append(y)
        out_lo.append(ylo)
        out_hi.append(yhi)
    return {"x": out_x, "y": out_y, "y_min": out_lo, "y_max": out_hi, "count": count}


def _raw_items(conn: Connection, cond: tuple[Any, ...], lo: int, hi: int) -> list[Any]:
    if hi <= lo:
        return []
    rows = conn.execute(sa.select(series.c.idx, series.c.value).where(*cond, series.c.idx >= lo, series.c.idx < hi)
                        .order_by(series.c.idx)).all()
    out = []
    for idx, v in rows:
        ok = v is not None and math.isfinite(v)
        out.append((idx, idx, 1, v if ok else None, idx if ok else None, v if ok else None, idx if ok else None))
    return out


def _downsample(items: list[Any], lo: int, span: int, nb: int) -> list[tuple[int, float, float, float]]:
    """Group items into ``nb`` index buckets; keep each bucket's min and max point, in index order."""
    out: list[tuple[int, float, float, float]] = []
    cur = -1
    mn: Any = None
    mx: Any = None

    def flush() -> None:
        if mn is None or mx is None:
            return
        if mn[1] == mx[1]:
            out.append((mn[1], mn[0], mn[0], mx[0]))
        else:
            a, b = sorted((mn, mx), key=lambda t: t[1])
            out.append((a[1], a[0], mn[0], mx[0]))
            out.append((b[1], b[0], mn[0], mx[0]))

    for first_idx, _last, _n, min_v, min_idx, max_v, max_idx in items:
        g = (first_idx - lo) * nb // span
        if g != cur:
            flush()
            cur, mn, mx = g, None, None
        if min_v is not None and (mn is None or min_v < mn[0]):
            mn = (min_v, min_idx)
        if max_v is not None and (mx is None or max_v > mx[0]):
            mx = (max_v, max_idx)
    flush()
    return out


def _x_values(conn: Connection, pk: int, key: str, x_axis: str, idxs: list[int]) -> dict[int, float]:
    """x of each history index: a row column, or the x metric's value in that row (finite only)."""
    out: dict[int, float] = {}
    if x_axis in _X_COLUMNS:
        col, cond = series.c[_X_COLUMNS[x_axis]], (series.c.run == pk, series.c.key == key)
    else:
        col, cond = series.c.value, (series.c.run == pk, series.c.key == x_axis)
    uniq = sorted(set(idxs))
    for i in range(0, len(uniq), 500):
        chunk = uniq[i:i + 500]
        for idx, x in conn.execute(sa.select(series.c.idx, col).where(*cond, series.c.idx.in_(chunk))):
            if x is not None and math.isfinite(x):
                out[idx] = x
    return out
