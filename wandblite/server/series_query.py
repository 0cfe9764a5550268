"""What a run's charts read: its keys, and each metric's series downsampled for a chart.

Layer 5 (server). Plain functions over a ``Store`` returning JSON-able dicts, each reading one
snapshot (``Store.snapshot``) and writing nothing, so they serve from a read-only database user or
replica. ``series_args`` turns the query string of ``GET .../series`` into ``get_series``'s arguments.

What it promises
----------------
* ``run_keys`` lists the numeric keys (dotted leaf paths, from ``store.series_chunks``) with their point
  counts and first/last steps, then the media and other ``_type`` keys (from ``store.media_rows``,
  written with the final rows, plus a crashed run's provisional row read raw), each with its
  ``kind`` (one of ``KINDS``).
* ``get_series`` downsamples a metric for charts: at most ``samples`` points that keep, for each
  of about ``samples / 2`` buckets of the run's index range, the bucket's minimum and maximum point
  (the spikes), in x order. NaN and +-Infinity values are skipped in ``y`` (they have no place on
  a chart); ``count`` still counts them (every point logged in the range). The x of a point is its
  row's ``_step``, ``_runtime``, ``_timestamp``, or the value another metric (``epoch``) has in the
  same history row (points whose row lacks that metric are dropped).
* Speed: a metric is stored in chunks of 2,048 history indexes, each with its count, minimum and
  maximum (``history_store``, ``store.series_chunks``), written as each sync batch is stored. A chart
  takes a chunk's statistics when the chunk lies inside one chart bucket and decodes only the
  chunks a bucket boundary cuts, so the minimum and maximum of every bucket are exact. Buckets
  have equal widths; when they are at least a chunk wide, each inner bucket boundary is moved to
  the nearest chunk boundary (``_Buckets``: widths then differ by at most a chunk), so no inner
  chunk is cut: a 10M-point series reads its 4,883 statistics rows and decodes at most the two
  chunks the range's ends cut. A crashed run's provisional row is read raw.
* ``min_x``/``max_x`` (zoom) locate the index range by binary search, which assumes x does not
  decrease along the run (true for ``_step``, ``_runtime``, ``_timestamp`` and usual epoch
  counters); the points returned are then filtered exactly by x.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.chunks import CHUNK_ROWS, CHUNK_SHIFT
from wandblite.server.errors import bad_request
from wandblite.server.history_store import key_chunks, key_points, key_summaries, pending_row, row_values
from wandblite.server.indexes import numeric_leaves, typed_leaves
from wandblite.server.read import run_row, tail_rows
from wandblite.server.schema import media_rows
from wandblite.server.store import Store
from wandblite.vocab import RESERVED, RUNTIME, STEP, TIMESTAMP, TYPE_KEY

__all__ = ["KINDS", "MAX_SAMPLES", "get_series", "run_keys", "series_args"]

#: ``kind`` values of ``run_keys``; other ``_type`` values (collections such as ``videos``) are "other".
KINDS = ("number", "image-file", "images/separated", "video-file", "audio-file", "histogram", "table-file",
         "chart", "object3D-file", "html-file", "other")
MAX_SAMPLES = 100_000
#: The reserved keys (``vocab.RESERVED_KEYS``), each with the row column that holds it
#: (``history_store.row_values``): an x-axis read from a column rather than from another metric's series.
_X_COLUMNS = {STEP: "step", RUNTIME: "runtime", TIMESTAMP: "timestamp"}


# --------------------------------------------------------------------------- keys


def _kind(t: str) -> str:
    return t if t in KINDS else "other"


def run_keys(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """``{"keys": [{"key", "kind", "count", "first_step", "last_step"}]}``: numeric keys (dotted
    leaf paths, from the series chunks) then media and other ``_type`` keys (from the media index)."""
    out: list[dict[str, Any]] = []
    with store.snapshot() as conn:
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        numbers = key_summaries(conn, pk)
        pend = pending_row(conn, pk)
        if pend is not None and pend[0] >= final:  # a provisional row's points count, and its step is the last
            for k, _v in numeric_leaves(pend[4]):
                n, lo, _hi = numbers.get(k, (0, pend[1], None))
                numbers[k] = (n + 1, lo, pend[1])
        for key in sorted(numbers):
            count, first, last = numbers[key]
            out.append({"key": key, "kind": "number", "count": count, "first_step": first, "last_step": last})
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
    with store.snapshot() as conn:  # the position and the chunks as of one moment
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        for key in keys:
            out[key] = _one_series(conn, pk, final, key, x_axis, samples, min_x, max_x)
    return {"x_axis": x_axis, "series": out}


class _Points:
    """One key's points (final rows from its chunks, plus a provisional row's) as a chart reads them."""

    def __init__(self, conn: Connection, pk: int, final: int, key: str) -> None:
        self.conn, self.pk, self.key = conn, pk, key
        # (chunk, first_idx, last_idx, n, min_v, min_idx, max_v, max_idx) per chunk, in index order
        self.chunks: list[tuple[Any, ...]] = key_chunks(conn, pk, key)
        self.pending: tuple[int, float] | None = None  # (idx, value; NaN for a NaN)
        pend = pending_row(conn, pk)
        if pend is not None and pend[0] >= final:
            for k, v in numeric_leaves(pend[4]):
                if k == key:
                    self.pending = (pend[0], math.nan if v is None else v)
        self._decoded: dict[int, tuple[Any, Any]] = {}

    def first_last(self) -> tuple[int, int] | None:
        if not self.chunks and self.pending is None:
            return None
        first = self.chunks[0][1] if self.chunks else self.pending[0]  # type: ignore[index]
        last = self.pending[0] if self.pending is not None else self.chunks[-1][2]
        return first, last

    def decoded(self, chunks: list[int]) -> dict[int, tuple[Any, Any]]:
        """``chunk -> (indexes, values)``, each chunk decoded once."""
        need = [c for c in chunks if c not in self._decoded]
        if need:
            self._decoded.update(key_points(self.conn, self.pk, self.key, need))
        return {c: self._decoded[c] for c in chunks if c in self._decoded}

    def in_range(self, lo: int, hi: int) -> list[Any]:
        """The chunks' statistics rows overlapping ``[lo, hi)``."""
        return [st for st in self.chunks if st[2] >= lo and st[1] < hi]

    def raw(self, lo: int, hi: int) -> tuple[Any, Any]:
        """Every point in ``[lo, hi)``: (indexes, values) as numpy arrays."""
        import numpy as np

        parts = self.decoded([st[0] for st in self.in_range(lo, hi)])
        idx = [parts[c][0] for c in sorted(parts)]
        val = [parts[c][1] for c in sorted(parts)]
        if self.pending is not None and lo <= self.pending[0] < hi:
            idx.append(np.array([self.pending[0]], dtype=np.int64))
            val.append(np.array([self.pending[1]], dtype=np.float64))
        if not idx:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        i, v = np.concatenate(idx), np.concatenate(val)
        keep = (i >= lo) & (i < hi)
        return i[keep], v[keep]

    def first_at_or_after(self, i: int) -> tuple[int, float] | None:
        """The first point with an index >= ``i`` whose value is not NaN."""
        import numpy as np

        for st in self.chunks:
            if st[2] < i:
                continue
            idx, val = self.decoded([st[0]])[st[0]]
            ok = np.flatnonzero((idx >= i) & ~np.isnan(val))
            if len(ok):
                return int(idx[ok[0]]), float(val[ok[0]])
        if self.pending is not None and self.pending[0] >= i and not math.isnan(self.pending[1]):
            return self.pending
        return None


class _RowX:
    """x from a row column (``_step``, ``_runtime``, ``_timestamp``): final rows, then a provisional row."""

    def __init__(self, conn: Connection, pk: int, final: int, x_axis: str) -> None:
        self.final = final
        self.column = _X_COLUMNS[x_axis]
        self.values = row_values(conn, pk, self.column)
        self.pending: tuple[int, Any] | None = None
        pend = pending_row(conn, pk)
        if pend is not None and pend[0] >= final:
            self.pending = (pend[0], pend[1 + ("step", "runtime", "timestamp").index(self.column)])

    def get(self, idx: int) -> Any:
        if idx < self.final:
            return self.values.get(idx)
        return self.pending[1] if self.pending is not None and self.pending[0] == idx else None

    def first_at_or_after(self, i: int) -> float | None:
        """x at the first row with an index >= ``i`` that has one (None past the end)."""
        while i < self.final:
            v = self.values.get(i)
            if v is not None:
                return float(v)
            i += 1
        if self.pending is not None and self.pending[0] >= i and self.pending[1] is not None:
            return float(self.pending[1])
        return None


def _x_probe(conn: Connection, pk: int, final: int, x_axis: str) -> Callable[[int], float | None]:
    """x at the first row with an index >= i that has one (None past the end)."""
    if x_axis in _X_COLUMNS:
        rows = _RowX(conn, pk, final, x_axis)
        return rows.first_at_or_after
    pts = _Points(conn, pk, final, x_axis)

    def probe(i: int) -> float | None:
        got = pts.first_at_or_after(i)
        return None if got is None else got[1]

    return probe


def _idx_range(conn: Connection, pk: int, final: int, end: int, x_axis: str, min_x: float | None,
               max_x: float | None) -> tuple[int, int]:
    """The index range ``[lo, hi)`` whose x lies in ``[min_x, max_x]`` (x non-decreasing; binary search)."""
    if min_x is None and max_x is None:
        return 0, end
    probe = _x_probe(conn, pk, final, x_axis)

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


#: An item a chart is downsampled from: (first_idx, last_idx, n, min_v, min_idx, max_v, max_idx),
#: min/max over finite values only (None when there is none).
_Item = tuple[int, int, int, Any, Any, Any, Any]


def _one_series(conn: Connection, pk: int, final: int, key: str, x_axis: str, samples: int,
                min_x: float | None, max_x: float | None) -> dict[str, Any]:
    pts = _Points(conn, pk, final, key)
    ends = pts.first_last()
    if ends is None:
        return {"x": [], "y": [], "y_min": [], "y_max": [], "count": 0}
    first, last = ends
    lo, hi = _idx_range(conn, pk, final, last + 1, x_axis, min_x, max_x)
    lo, hi = max(lo, first), min(hi, last + 1)
    bk = _Buckets(lo, hi, max(1, samples // 2))
    items = _bucket_items(pts, lo, hi, bk)
    count = sum(it[2] for it in items)
    points: list[tuple[int, float, float, float]]
    if count > samples:
        points = _downsample(items, bk)
    else:  # few points: send them all
        import numpy as np

        idx, val = pts.raw(lo, hi)
        ok = np.isfinite(val)
        points = [(i, v, v, v) for i, v in zip(idx[ok].tolist(), val[ok].tolist())]
    xs = _x_values(conn, pk, final, x_axis, [p[0] for p in points])
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


class _Buckets:
    """The chart buckets of the index range ``[lo, hi)``: ``nb`` consecutive ranges, bucket ``g``
    starting at ``starts[g]``. Bucket ``g`` starts at ``lo + ceil(g * span / nb)`` (equal widths);
    when a bucket is at least a chunk wide, each inner start is moved to the nearest chunk boundary
    (widths then differ by at most a chunk), so that every chunk inside the range lies in one bucket
    and is answered by its statistics: a chart of any length decodes at most the two chunks its
    range's ends cut."""

    def __init__(self, lo: int, hi: int, nb: int) -> None:
        span = max(1, hi - lo)
        starts = [lo + -(-g * span // nb) for g in range(nb)]
        if span >= nb * CHUNK_ROWS:
            half = CHUNK_ROWS >> 1
            starts = [lo] + [min(hi, max(lo, ((b + half) >> CHUNK_SHIFT) << CHUNK_SHIFT)) for b in starts[1:]]
        self.lo, self.hi, self.nb, self.starts = lo, hi, nb, starts

    def of(self, i: int) -> int:
        """The bucket of index ``i`` (``lo <= i < hi``)."""
        return bisect.bisect_right(self.starts, i) - 1

    def of_array(self, idx: Any) -> Any:
        import numpy as np

        return np.searchsorted(np.asarray(self.starts, dtype=np.int64), idx, side="right") - 1


def _bucket_items(pts: _Points, lo: int, hi: int, bk: _Buckets) -> list[_Item]:
    """Items covering every point in ``[lo, hi)``, none across a chart bucket's boundary
    (``_Buckets``): a chunk's statistics when the chunk lies inside one bucket, else its decoded
    points cut at the boundaries."""
    import numpy as np

    items: list[_Item] = []
    cut: list[int] = []
    inside = pts.in_range(lo, hi)
    if inside:  # a chunk lies in one bucket when its first and last index do (one numpy pass)
        ends = np.array([(st[1], st[2]) for st in inside], dtype=np.int64).reshape(-1, 2)
        g = bk.of_array(ends)
        whole = ((ends[:, 0] >= lo) & (ends[:, 1] < hi) & (g[:, 0] == g[:, 1])).tolist()
        for st, ok in zip(inside, whole):
            if ok:
                items.append(st[1:])
            else:
                cut.append(st[0])
    decoded = pts.decoded(cut)
    idx_parts = [decoded[c][0] for c in cut if c in decoded]
    val_parts = [decoded[c][1] for c in cut if c in decoded]
    if pts.pending is not None and lo <= pts.pending[0] < hi:
        idx_parts.append(np.array([pts.pending[0]], dtype=np.int64))
        val_parts.append(np.array([pts.pending[1]]))
    if idx_parts:  # every cut chunk's points at once: one pass of numpy, not one per chunk
        idx, val = np.concatenate(idx_parts), np.concatenate(val_parts)
        keep = (idx >= lo) & (idx < hi)
        items.extend(_segments(idx[keep], val[keep], bk))
        items.sort(key=lambda it: it[0])
    return items


def _segments(idx: Any, val: Any, bk: _Buckets) -> list[_Item]:
    """Points in index order as one item per run of points in one chart bucket (the first index
    holding the minimum and the maximum). Runs of one bucket may enclose a chunk taken by its
    statistics: ``_downsample`` breaks ties by index, so the answer is a point-by-point scan's."""
    import numpy as np

    if not len(idx):
        return []
    g = bk.of_array(idx)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(idx)]
    finite = np.isfinite(val)
    vmin = np.where(finite, val, np.inf)
    vmax = np.where(finite, val, -np.inf)
    mins = np.minimum.reduceat(vmin, starts)
    maxs = np.maximum.reduceat(vmax, starts)
    counts = ends - starts
    pos = np.arange(len(idx))
    big = len(idx)
    min_pos = np.minimum.reduceat(np.where(vmin == np.repeat(mins, counts), pos, big), starts)
    max_pos = np.minimum.reduceat(np.where(vmax == np.repeat(maxs, counts), pos, big), starts)
    ok = np.isfinite(mins).tolist()
    cols = zip(ok, idx[starts].tolist(), idx[ends - 1].tolist(), counts.tolist(), mins.tolist(),
               idx[np.minimum(min_pos, big - 1)].tolist(), maxs.tolist(), idx[np.minimum(max_pos, big - 1)].tolist())
    return [(a, b, n, mn if f else None, mn_i if f else None, mx if f else None, mx_i if f else None)
            for f, a, b, n, mn, mn_i, mx, mx_i in cols]


def _downsample(items: list[Any], bk: _Buckets) -> list[tuple[int, float, float, float]]:
    """Group items into the chart's index buckets; keep each bucket's min and max point, in index order."""
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

    import numpy as np

    buckets = bk.of_array(np.fromiter((it[0] for it in items), dtype=np.int64, count=len(items))).tolist()
    for g, (_first, _last, _n, min_v, min_idx, max_v, max_idx) in zip(buckets, items):
        if g != cur:
            flush()
            cur, mn, mx = g, None, None
        # Ties go to the lower index, whatever order the items come in (a point-by-point scan's answer).
        if min_v is not None and (mn is None or min_v < mn[0] or (min_v == mn[0] and min_idx < mn[1])):
            mn = (min_v, min_idx)
        if max_v is not None and (mx is None or max_v > mx[0] or (max_v == mx[0] and max_idx < mx[1])):
            mx = (max_v, max_idx)
    flush()
    return out


def _x_values(conn: Connection, pk: int, final: int, x_axis: str, idxs: list[int]) -> dict[int, float]:
    """x of each history index: a row column, or the x metric's value in that row (finite only)."""
    out: dict[int, float] = {}
    if x_axis in _X_COLUMNS:
        rows = _RowX(conn, pk, final, x_axis)
        rows.values.preload(i for i in idxs if i < final)
        for i in idxs:
            x = rows.get(i)
            if x is not None and math.isfinite(x):
                out[i] = x
        return out
    import numpy as np

    pts = _Points(conn, pk, final, x_axis)
    want = np.asarray(sorted(set(idxs)), dtype=np.int64)
    for idx, val in pts.decoded(sorted({int(i) >> CHUNK_SHIFT for i in want.tolist()})).values():
        pos = np.searchsorted(idx, want)
        hit = (pos < len(idx)) & (idx[np.minimum(pos, len(idx) - 1)] == want)
        for i, v in zip(want[hit].tolist(), val[pos[hit]].tolist()):
            if math.isfinite(v):
                out[i] = v
    if pts.pending is not None and math.isfinite(pts.pending[1]):
        out[pts.pending[0]] = pts.pending[1]
    return out
