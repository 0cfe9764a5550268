"""A group of runs drawn as one line: their metrics aligned on x buckets, aggregated on the server.

Layer 5 (server). One plain function over a ``Store`` (``grouped_series``) returning a JSON-able dict
from one snapshot, and ``grouped_args`` for the query string of ``GET /projects/{project}/grouped-series``.
It writes nothing, so it serves from a read-only database user or a replica. The dashboard groups the
runs table by ``group``, ``job_type`` or config keys and asks this once per group for its charts.

What a grouped point means (the definition the tests compute by brute force)
-------------------------------------------------------------------------------
A point of a member run is a history row holding the metric with a finite value and a finite x (x is
the row's ``_step``, ``_runtime``, ``_timestamp``, or the value another metric has in the same row,
as in ``series_query``; a provisional last row counts). For each metric:

1. The x range ``[lo, hi]``: ``min_x``/``max_x`` when given, else from the lowest first x to the
   highest last x of the member runs (x does not decrease along a run, as ``series_query``'s zoom
   assumes; a point outside the range is left out).
2. ``buckets`` equal-width buckets cut the range: point x falls in bucket
   ``b = floor((x - lo) * buckets / (hi - lo))``, the last bucket closed at ``hi`` (every point in
   bucket 0 when ``hi == lo``). Runs logged at different steps are aligned by their buckets: with
   integer steps and fewer distinct steps than buckets, a bucket holds one step, and a group's value
   at a step is computed from the runs' values at that step.
   *Aligned buckets*: on ``_step`` with ``hi - lo >= buckets * SUM_BLOCK`` (a bucket at least a
   block of the stored sums wide, ``chunks.SUM_BLOCK`` = 256), bucket ``g > 0`` starts at
   ``lo + g * (hi - lo) / buckets`` rounded to the nearest multiple of ``SUM_BLOCK`` (within
   ``[lo, hi]``) and point x falls in the last bucket starting at or before x.
3. A run's value in a bucket is the mean of its points there (its x, the mean of their x): a run
   logged every step and one logged every tenth step weigh the same in the group.
4. Over the runs that have a value in the bucket (``n`` of them): ``mean``, ``median``, ``min``,
   ``max``, ``std`` (population standard deviation, ``ddof=0``; 0 for one run) and ``stderr``
   (``std / sqrt(n)``); the bucket's ``x`` is the mean of those runs' x. A bucket no run has a value
   in is left out. The dashboard draws ``mean`` or ``median`` with a band of ``min``..``max`` or
   ``mean +- std``, and smooths (when asked) the drawn line and both band edges alike, as W&B
   smooths a grouped line after aggregating.

Speed: with aligned buckets, a chunk whose steps are regular (``history_chunks.step0``) and whose
every block holding a point lies inside one bucket and the range is not decoded: its stored block
sums (``chunks.point_sums``: count, sum of values, sum of positions, so the sum of x is
``count * step0 + sum of positions``) are added to the buckets; a chunk a boundary cuts, with
irregular steps, or stored before its sums were (``series_chunks.sums`` NULL) is decoded as below.
A run's first and last chunks are decoded for the range, so a run of a million points reads a few
chunks' points and the rest as sums. Otherwise each member run's points are decoded once from its series chunks (``history_store.key_points``,
numpy throughout) and folded into the buckets with ``bincount``; x comes from the row chunks, not
decoded when the chunk's steps are regular (``history_chunks.step0``). The range needs the runs' first
and last points only (one or two chunks each). The cost is linear in the points of the group (as
``series_query``'s full view of each member run) and memory holds one run's points at a time.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.chunks import (
    CHUNK_ROWS,
    CHUNK_SHIFT,
    SUM_BLOCK,
    SUM_BLOCKS,
    SUM_DTYPE,
    SUM_SHIFT,
    decode_rows,
)
from wandblite.server.errors import bad_request
from wandblite.server.history_store import key_chunks, key_points, key_sums, pending_row
from wandblite.server.indexes import numeric_leaves
from wandblite.server.read import run_row
from wandblite.server.schema import history_chunks
from wandblite.server.store import Store
from wandblite.vocab import RUNTIME, STEP, TIMESTAMP

__all__ = ["DEFAULT_BUCKETS", "MAX_BUCKETS", "MAX_GROUP_KEYS", "MAX_GROUP_RUNS", "grouped_args", "grouped_series"]

DEFAULT_BUCKETS = 500
MAX_BUCKETS = 10_000
MAX_GROUP_RUNS = 1000
MAX_GROUP_KEYS = 20
#: The reserved x axes, each with the ``chunks.RowColumns`` attribute (and provisional-row position) holding it.
_X_COLUMNS = {STEP: ("step", 1), RUNTIME: ("runtime", 2), TIMESTAMP: ("timestamp", 3)}
_STATS = ("mean", "median", "min", "max", "std", "stderr")
#: A stored sums blob's first byte (its mask) -> the blocks it has an entry for (``chunks.point_sums``).
_BLOCKS_OF = [tuple(k for k in range(SUM_BLOCKS) if m >> k & 1) for m in range(1 << SUM_BLOCKS)]


def grouped_args(params: Any) -> dict[str, Any]:
    """Validate the query string of ``GET .../grouped-series`` into ``grouped_series`` kwargs."""
    runs = [r for r in (params.get("runs") or "").split(",") if r]
    keys = [k for k in (params.get("keys") or "").split(",") if k]
    if not runs:
        raise bad_request("runs is required: the comma-separated ids of the group's runs")
    if not keys:
        raise bad_request("keys is required: a comma-separated list of metric keys")
    if len(set(runs)) > MAX_GROUP_RUNS:
        raise bad_request(f"at most {MAX_GROUP_RUNS} runs per group")
    if len(set(keys)) > MAX_GROUP_KEYS:
        raise bad_request(f"at most {MAX_GROUP_KEYS} keys per request")
    out: dict[str, Any] = {"runs": list(dict.fromkeys(runs)), "keys": list(dict.fromkeys(keys)),
                           "x_axis": params.get("x_axis") or STEP}
    try:
        out["buckets"] = int(params.get("buckets") or DEFAULT_BUCKETS)
        for name in ("min_x", "max_x"):
            v = params.get(name)
            out[name] = float(v) if v not in (None, "") else None
    except ValueError:
        raise bad_request("buckets must be an integer and min_x/max_x numbers")
    return out


def grouped_series(store: Store, project: str, runs: list[str], keys: list[str], x_axis: str = STEP,
                   buckets: int = DEFAULT_BUCKETS, min_x: float | None = None,
                   max_x: float | None = None) -> dict[str, Any]:
    """``{"x_axis", "buckets", "runs", "series": {key: {"x", "mean", "median", "min", "max", "std",
    "stderr", "n", "runs", "lo", "hi"}}}``: per key, one entry per bucket some run has a value in, in x
    order (``n``: how many runs; ``runs``: how many member runs have a point in the range). An unknown
    run is a 404; a key no member logged gives empty lists."""
    import numpy as np

    if not 1 <= buckets <= MAX_BUCKETS:
        raise bad_request(f"buckets must be between 1 and {MAX_BUCKETS}")
    for v in (min_x, max_x):
        if v is not None and not math.isfinite(v):
            raise bad_request("min_x and max_x must be finite numbers")
    if min_x is not None and max_x is not None and min_x > max_x:
        raise bad_request("min_x must not be greater than max_x")
    for key in keys:
        if key in _X_COLUMNS:
            raise bad_request(f"{key} is an x axis, not a metric key")
    with store.snapshot() as conn:
        members = [_Member(conn, run_row(conn, project, rid), x_axis) for rid in runs]
        ranges: dict[str, tuple[float, float] | None] = {}
        for key in keys:  # pass 1: the range, from each run's first and last points
            lo, hi = min_x, max_x
            if lo is None or hi is None:
                ends = [e for e in (m.ends(key) for m in members) if e is not None]
                if lo is None and ends:
                    lo = min(e[0] for e in ends)
                if hi is None and ends:
                    hi = max(e[1] for e in ends)
            ranges[key] = None if lo is None or hi is None or lo > hi else (lo, hi)
        sums = {k: np.full((len(members), buckets), np.nan) for k in keys}  # per run: mean y per bucket
        xs = {k: np.full((len(members), buckets), np.nan) for k in keys}  # per run: mean x per bucket
        present = dict.fromkeys(keys, 0)
        starts = {k: _aligned_starts(x_axis, ranges[k], buckets) for k in keys}
        for r, m in enumerate(members):  # pass 2: each run's points into the buckets
            for key in keys:
                rng = ranges[key]
                if rng is None:
                    continue
                lo, hi = rng
                st = starts[key]
                if st is None:
                    x, y = m.points(key)
                    whole = None
                else:
                    x, y, whole = m.points_and_sums(key, lo, hi, st)
                keep = (x >= lo) & (x <= hi)
                if not keep.all():
                    x, y = x[keep], y[keep]
                b = _bucket_of(x, lo, hi, buckets) if st is None else _aligned_bucket_of(x, st)
                cnt = np.bincount(b, minlength=buckets).astype(np.float64)
                sy = np.bincount(b, weights=y, minlength=buckets).astype(np.float64, copy=False)
                sx = np.bincount(b, weights=x, minlength=buckets).astype(np.float64, copy=False)
                if whole is not None:  # the blocks lying inside one bucket, from their stored sums
                    cnt += whole[0]
                    sy += whole[1]
                    sx += whole[2]
                has = cnt > 0
                if not has.any():
                    continue
                present[key] += 1
                sums[key][r, has] = sy[has] / cnt[has]
                xs[key][r, has] = sx[has] / cnt[has]
            m.forget()
        series = {key: _aggregate(sums[key], xs[key], present[key], ranges[key]) for key in keys}
    return {"x_axis": x_axis, "buckets": buckets, "runs": len(members), "series": series}


def _bucket_of(x: Any, lo: float, hi: float, buckets: int) -> Any:
    """The bucket of each x in ``[lo, hi]`` (the module docstring's rule)."""
    import numpy as np

    if hi == lo:
        return np.zeros(len(x), dtype=np.int64)
    b = np.floor((x - lo) * buckets / (hi - lo)).astype(np.int64)
    return np.clip(b, 0, buckets - 1)


def _aligned_starts(x_axis: str, rng: tuple[float, float] | None, buckets: int) -> Any:
    """The aligned buckets' starts (module docstring), or None when the buckets are not aligned."""
    import numpy as np

    if x_axis != STEP or rng is None or rng[1] - rng[0] < buckets * SUM_BLOCK:
        return None
    lo, hi = rng
    g = np.arange(buckets, dtype=np.float64)
    starts = np.floor((lo + g * (hi - lo) / buckets) / SUM_BLOCK + 0.5) * SUM_BLOCK
    starts = np.clip(starts, lo, hi)
    starts[0] = lo
    return starts


def _aligned_bucket_of(x: Any, starts: Any) -> Any:
    """The bucket of each x in ``[lo, hi]`` under aligned starts (the last bucket closed at ``hi``)."""
    import numpy as np

    return np.clip(np.searchsorted(starts, x, side="right") - 1, 0, len(starts) - 1)


def _aggregate(vals: Any, xs: Any, present: int, rng: tuple[float, float] | None) -> dict[str, Any]:
    import warnings

    import numpy as np

    n = np.sum(~np.isnan(vals), axis=0)
    cols = np.flatnonzero(n > 0)
    v, xv, nn = vals[:, cols], xs[:, cols], n[cols]
    with warnings.catch_warnings():  # no column here is all-NaN; numpy warns about nothing real
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(v, axis=0)
        std = np.sqrt(np.nanmean((v - mean) ** 2, axis=0))
        stats = {"mean": mean, "median": np.nanmedian(v, axis=0), "min": np.nanmin(v, axis=0),
                 "max": np.nanmax(v, axis=0), "std": std, "stderr": std / np.sqrt(nn)}
        x = np.nanmean(xv, axis=0)
    order = np.argsort(x, kind="stable")  # bucket order is x order; the sort only settles float ties
    out: dict[str, Any] = {"x": x[order].tolist(), "n": nn[order].tolist(), "runs": present,
                           "lo": rng[0] if rng else None, "hi": rng[1] if rng else None}
    for name in _STATS:
        out[name] = stats[name][order].tolist()
    return out


class _Member:
    """One member run's points of a metric, with their x, read from one snapshot."""

    def __init__(self, conn: Connection, row: Any, x_axis: str) -> None:
        self.conn, self.pk, self.final, self.x_axis = conn, int(row.id), int(row.rows_final), x_axis
        pend = pending_row(conn, self.pk)
        self.pending = pend if pend is not None and pend[0] >= self.final else None
        # chunk -> x by position in the chunk (NaN where none), or for regular steps the float
        # shift that makes a point's index its x
        self._x: dict[int, Any] = {}
        self._chunks: dict[str, list[int]] = {}

    def forget(self) -> None:
        self._x.clear()

    def chunks(self, key: str) -> list[int]:
        if key not in self._chunks:
            self._chunks[key] = [int(r[0]) for r in key_chunks(self.conn, self.pk, key)]
        return self._chunks[key]

    def _pending_value(self, key: str) -> tuple[float, float] | None:
        """(x, y) of the provisional row, when it holds the metric (and x)."""
        if self.pending is None:
            return None
        leaves = dict(numeric_leaves(self.pending[4]))
        y = leaves.get(key)
        if y is None:
            return None
        x: Any
        if self.x_axis in _X_COLUMNS:
            x = self.pending[_X_COLUMNS[self.x_axis][1]]
        else:
            x = leaves.get(self.x_axis)
        return None if x is None else (float(x), float(y))

    def _load_x(self, chunks: list[int]) -> None:
        import numpy as np

        need = sorted(set(chunks) - set(self._x))
        if not need:
            return
        if self.x_axis not in _X_COLUMNS:
            for c, (idx, val) in key_points(self.conn, self.pk, self.x_axis, need).items():
                dense = np.full(CHUNK_ROWS, np.nan)
                dense[idx - (c << CHUNK_SHIFT)] = val
                self._x[c] = dense
        else:
            attr = _X_COLUMNS[self.x_axis][0]
            h = history_chunks.c
            for i in range(0, len(need), 500):
                part = need[i:i + 500]
                regular: set[int] = set()
                if attr == "step":  # regular steps: no decode
                    for c, s0 in self.conn.execute(sa.select(h.chunk, h.step0).where(
                            h.run == self.pk, h.chunk.in_(part), h.step0.is_not(None))):
                        # x = index + shift (a point's row exists, so its index is below the chunk's end)
                        self._x[int(c)] = float(int(s0) - (int(c) << CHUNK_SHIFT))
                        regular.add(int(c))
                rest = [c for c in part if c not in regular]
                for c, blob in self.conn.execute(sa.select(h.chunk, h.data).where(h.run == self.pk,
                                                                                  h.chunk.in_(rest))):
                    col = getattr(decode_rows(int(c) << CHUNK_SHIFT, blob), attr)
                    dense = np.full(CHUNK_ROWS, np.nan)
                    dense[:len(col)] = np.fromiter((math.nan if v is None else v for v in col), np.float64, len(col))
                    self._x[int(c)] = dense
        for c in need:
            self._x.setdefault(c, np.full(CHUNK_ROWS, np.nan))

    def _chunk_points(self, key: str, chunks: list[int]) -> tuple[Any, Any]:
        """(x, y) of the points in these chunks with a finite x and y, in index order."""
        import numpy as np

        got = key_points(self.conn, self.pk, key, chunks)
        self._load_x(chunks)
        xs, ys = [], []
        for c in sorted(got):
            idx, val = got[c]
            col = self._x[c]
            xs.append(idx + col if isinstance(col, float) else col[idx - (c << CHUNK_SHIFT)])
            ys.append(val)
        if not xs:
            return np.zeros(0), np.zeros(0)
        x, y = np.concatenate(xs), np.concatenate(ys)
        ok = np.isfinite(x) & np.isfinite(y)
        return (x, y) if ok.all() else (x[ok], y[ok])

    def _step0(self, chunks: list[int]) -> dict[int, int]:
        """``chunk -> step0`` of the chunks whose steps are regular."""
        h = history_chunks.c
        out: dict[int, int] = {}
        for i in range(0, len(chunks), 500):
            for c, s0 in self.conn.execute(sa.select(h.chunk, h.step0).where(
                    h.run == self.pk, h.chunk.in_(chunks[i:i + 500]), h.step0.is_not(None))):
                out[int(c)] = int(s0)
        return out

    def points_and_sums(self, key: str, lo: float, hi: float, starts: Any) -> tuple[Any, Any, Any]:
        """For aligned buckets on ``_step``: ``(x, y, (count, sum y, sum x) per bucket)``, the sums
        from the stored block sums of each block lying inside one bucket and ``[lo, hi]``, the
        points (as ``points``) of every chunk holding any other block, or without stored sums."""
        import numpy as np

        nb = len(starts)
        cnt, sy, sx = np.zeros(nb), np.zeros(nb), np.zeros(nb)
        chunks = self.chunks(key)
        stored = key_sums(self.conn, self.pk, key)
        step0 = self._step0([c for c in chunks if stored.get(c) is not None])
        decode = [c for c in chunks if stored.get(c) is None or c not in step0]
        summed = [c for c in chunks if stored.get(c) is not None and c in step0]
        if summed:  # every summed chunk's blocks at once: one numpy pass, not one per chunk
            blobs = [stored[c] or b"" for c in summed]
            per = [_BLOCKS_OF[bl[0]] for bl in blobs]
            counts = np.fromiter((len(p) for p in per), np.int64, len(per))
            blocks = np.fromiter((k for p in per for k in p), np.int64, int(counts.sum()))
            rec = np.frombuffer(b"".join(bl[1:] for bl in blobs), dtype=SUM_DTYPE)
            s0 = np.repeat(np.array([step0[c] for c in summed], dtype=np.int64), counts)
            first = s0 + (blocks << SUM_SHIFT)  # x of each block's first and last positions
            last = first + (SUM_BLOCK - 1)
            bf = _aligned_bucket_of(first, starts)
            ok = (first >= lo) & (last <= hi) & (bf == _aligned_bucket_of(last, starts))
            owner = np.repeat(np.arange(len(summed)), counts)
            bad = np.bincount(owner, weights=~ok, minlength=len(summed)) > 0
            use = ~bad[owner]
            n = rec["f0"][use].astype(np.float64)
            cnt += np.bincount(bf[use], weights=n, minlength=nb)
            sy += np.bincount(bf[use], weights=rec["f2"][use], minlength=nb)
            sx += np.bincount(bf[use], weights=rec["f1"][use] + n * s0[use], minlength=nb)  # x = step0 + position
            decode = sorted(decode + [summed[i] for i in np.flatnonzero(bad).tolist()])
        x, y = self._chunk_points(key, decode) if decode else (np.zeros(0), np.zeros(0))
        pend = self._pending_value(key)
        if pend is not None and math.isfinite(pend[0]) and math.isfinite(pend[1]):
            x, y = np.append(x, pend[0]), np.append(y, pend[1])
        return x, y, (cnt, sy, sx)

    def points(self, key: str) -> tuple[Any, Any]:
        """Every point of the metric (final rows, then a provisional row's) with a finite x and y."""
        import numpy as np

        x, y = self._chunk_points(key, self.chunks(key))
        pend = self._pending_value(key)
        if pend is not None and math.isfinite(pend[0]) and math.isfinite(pend[1]):
            x, y = np.append(x, pend[0]), np.append(y, pend[1])
        return x, y

    def ends(self, key: str) -> tuple[float, float] | None:
        """x of the run's first and last points (the first and last chunks holding one)."""
        chunks = self.chunks(key)
        first = last = None
        for c in chunks:
            x, _ = self._chunk_points(key, [c])
            if len(x):
                first = float(x[0])
                break
        pend = self._pending_value(key)
        if pend is not None and math.isfinite(pend[0]) and math.isfinite(pend[1]):
            last = pend[0]
        else:
            for c in reversed(chunks):
                x, _ = self._chunk_points(key, [c])
                if len(x):
                    last = float(x[-1])
                    break
        if first is None:
            first = last
        return None if first is None or last is None else (min(first, last), max(first, last))
