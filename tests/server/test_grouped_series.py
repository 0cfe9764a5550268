"""The grouped-series endpoint's numbers equal a brute-force computation over the rows sent.

Random runs (different first steps, strides, lengths across chunk boundaries, rows without the
metric, NaN and Infinity values, a crashed run's provisional last row) are stored on SQLite and
PostgreSQL; ``group_query.grouped_series`` is compared, bucket by bucket, with the definition in its
module docstring computed here point by point in plain Python, for every x axis and a zoom, and
for buckets aligned to the stored sums' blocks (at least a block wide on ``_step``), where the
grouped answer reads the sums of the blocks inside a bucket and decodes only the chunks others cut.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from wandblite.server import group_query
from wandblite.server.chunks import SUM_BLOCK
from wandblite.server.errors import ApiError
from wandblite.server.group_query import grouped_args, grouped_series
from wandblite.server.history_store import fill_sums
from wandblite.server.schema import series_chunks
from wandblite.server.store import Store

from .conftest import backend_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with backend_store(request.param, tmp_path, "wl_group") as s:
        yield s


def _make_run(rnd: random.Random, n: int) -> list[dict[str, Any]]:
    step = rnd.randint(0, 40)
    stride = rnd.choice([1, 1, 2, 3, 7])
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"_step": step, "_runtime": 0.5 * i + rnd.random() * 0.1, "_timestamp": 1.7e9 + i}
        if rnd.random() < 0.9:
            row["loss"] = rnd.gauss(1.0, 0.5)
        if rnd.random() < 0.02:
            row["loss"] = rnd.choice([float("nan"), float("inf")])
        if i % 3 == 0:
            row["acc"] = rnd.random()
        if i % 5 != 4:
            row["epoch"] = i // 50
        rows.append(row)
        step += stride
    return rows


def _store_runs(store: Store, rnd: random.Random) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in range(6):
        rid = f"run{r}"
        rows = _make_run(rnd, rnd.choice([0, 1, 40, 900, 2500, 4300]) if r else 2100)
        runs[rid] = rows
        items = [{"idx": i, "row": row} for i, row in enumerate(rows)]
        if r == 2 and items:  # a crashed run: its last row provisional
            items[-1]["final"] = False
        for i in range(0, max(1, len(items)), 1500):
            store.apply_batch("p", rid, {"run": {"name": rid}, "rows": items[i:i + 1500]})
    return runs


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _brute(runs: dict[str, list[dict[str, Any]]], key: str, x_axis: str, buckets: int,
           min_x: float | None = None, max_x: float | None = None) -> dict[str, Any]:
    pts = {rid: [(float(r[x_axis]), float(r[key])) for r in rows
                 if _finite(r.get(key)) and _finite(r.get(x_axis))] for rid, rows in runs.items()}
    all_x = [x for p in pts.values() for x, _ in p]
    lo = min_x if min_x is not None else min(all_x)
    hi = max_x if max_x is not None else max(all_x)
    per_bucket: dict[int, list[tuple[float, float]]] = {}
    present = 0
    starts = None  # aligned buckets: inner starts at the nearest multiple of SUM_BLOCK
    if x_axis == "_step" and hi - lo >= buckets * SUM_BLOCK:
        starts = [lo] + [min(hi, max(lo, math.floor((lo + g * (hi - lo) / buckets) / SUM_BLOCK + 0.5) * SUM_BLOCK))
                         for g in range(1, buckets)]
    for p in pts.values():
        got: dict[int, list[tuple[float, float]]] = {}
        for x, y in p:
            if not lo <= x <= hi:
                continue
            if starts is not None:
                b = bisect.bisect_right(starts, x) - 1
            else:
                b = 0 if hi == lo else min(buckets - 1, max(0, math.floor((x - lo) * buckets / (hi - lo))))
            got.setdefault(b, []).append((x, y))
        present += bool(got)
        for b, xy in got.items():
            per_bucket.setdefault(b, []).append((sum(x for x, _ in xy) / len(xy), sum(y for _, y in xy) / len(xy)))
    out: dict[str, list[float]] = {k: [] for k in ("x", "mean", "median", "min", "max", "std", "n")}
    for b in sorted(per_bucket):
        xs = [x for x, _ in per_bucket[b]]
        ys = [y for _, y in per_bucket[b]]
        out["x"].append(sum(xs) / len(xs))
        out["mean"].append(statistics.fmean(ys))
        out["median"].append(statistics.median(ys))
        out["min"].append(min(ys))
        out["max"].append(max(ys))
        out["std"].append(statistics.pstdev(ys))
        out["n"].append(len(ys))
    return {"series": out, "runs": present, "lo": lo, "hi": hi}


def _check(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["runs"] == want["runs"]
    assert got["lo"] == pytest.approx(want["lo"]) and got["hi"] == pytest.approx(want["hi"])
    w = want["series"]
    assert got["n"] == w["n"]
    for name in ("x", "mean", "median", "min", "max", "std"):
        assert got[name] == pytest.approx(w[name], rel=1e-9, abs=1e-9), name
    assert got["stderr"] == pytest.approx([s / math.sqrt(n) for s, n in zip(w["std"], w["n"])], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("x_axis", ["_step", "_runtime", "epoch"])
def test_grouped_series_equals_brute_force_over_random_runs(store: Store, x_axis: str) -> None:
    rnd = random.Random(18 + len(x_axis))
    runs = _store_runs(store, rnd)
    ids = list(runs)
    for buckets in (1, 7, 300):
        got = grouped_series(store, "p", ids, ["loss", "acc"], x_axis=x_axis, buckets=buckets)
        assert got["runs"] == len(ids) and got["buckets"] == buckets
        for key in ("loss", "acc"):
            _check(got["series"][key], _brute(runs, key, x_axis, buckets))
    # A zoom: the range is the one asked for, points outside it are left out.
    whole = _brute(runs, "loss", x_axis, 50)
    a = whole["lo"] + (whole["hi"] - whole["lo"]) * 0.3
    b = whole["lo"] + (whole["hi"] - whole["lo"]) * 0.6
    got = grouped_series(store, "p", ids, ["loss"], x_axis=x_axis, buckets=50, min_x=a, max_x=b)
    _check(got["series"]["loss"], _brute(runs, "loss", x_axis, 50, a, b))
    # A subset of the runs is a group of its own.
    got = grouped_series(store, "p", ids[:2], ["loss"], x_axis=x_axis, buckets=40)
    _check(got["series"]["loss"], _brute({k: runs[k] for k in ids[:2]}, "loss", x_axis, 40))


def test_runs_logged_at_the_same_steps_give_each_steps_mean(store: Store) -> None:
    # W&B's reading of a group: at each step, the mean of the runs' values there.
    values = {"a": [1.0, 2.0, 3.0], "b": [3.0, 6.0, 9.0], "c": [2.0, 1.0, 0.0]}
    for rid, ys in values.items():
        store.apply_batch("p", rid, {"rows": [{"idx": i, "row": {"_step": 10 * i, "m": y}} for i, y in enumerate(ys)]})
    s = grouped_series(store, "p", list(values), ["m"])["series"]["m"]
    assert s["x"] == [0.0, 10.0, 20.0] and s["n"] == [3, 3, 3]
    assert s["mean"] == pytest.approx([2.0, 3.0, 4.0]) and s["median"] == [2.0, 2.0, 3.0]
    assert s["min"] == [1.0, 1.0, 0.0] and s["max"] == [3.0, 6.0, 9.0]
    assert s["std"] == pytest.approx([statistics.pstdev(c) for c in zip(*values.values())])


def test_a_key_nobody_logged_is_empty_and_bad_requests_are_400s(store: Store) -> None:
    store.apply_batch("p", "a", {"rows": [{"idx": 0, "row": {"_step": 0, "m": 1.0}}]})
    s = grouped_series(store, "p", ["a"], ["nothing"])["series"]["nothing"]
    assert s["x"] == [] and s["mean"] == [] and s["runs"] == 0 and s["lo"] is None
    with pytest.raises(ApiError) as e:
        grouped_series(store, "p", ["a", "missing"], ["m"])
    assert e.value.status == 404
    for bad in ({"keys": "m"}, {"runs": "a"}, {"runs": "a", "keys": "m", "buckets": "x"},
                {"runs": ",".join(f"r{i}" for i in range(1001)), "keys": "m"}):
        with pytest.raises(ApiError) as e:
            grouped_args(bad)
        assert e.value.status == 400
    for kw in ({"buckets": 0}, {"min_x": 5.0, "max_x": 1.0}, {"min_x": float("inf")}):
        with pytest.raises(ApiError) as e:
            grouped_series(store, "p", ["a"], ["m"], **kw)  # type: ignore[arg-type]
        assert e.value.status == 400
    with pytest.raises(ApiError) as e:
        grouped_series(store, "p", ["a"], ["_step"])
    assert e.value.status == 400


def _store_long_runs(store: Store, rnd: random.Random) -> dict[str, list[dict[str, Any]]]:
    """Runs long enough for aligned buckets: logged at every step from 0 (their blocks lie on the
    aligned boundaries), from step 100, every second step, with gaps and NaNs, and a crashed one."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for r, (first, stride, n) in enumerate([(0, 1, 9000), (0, 1, 7000), (100, 1, 8500), (0, 2, 4600), (0, 1, 6200)]):
        rows = []
        for i in range(n):
            row: dict[str, Any] = {"_step": first + stride * i}
            if not (r == 1 and 3000 <= i < 3600) and rnd.random() < 0.97:
                row["loss"] = rnd.gauss(r, 1.0)
            if rnd.random() < 0.01:
                row["loss"] = rnd.choice([float("nan"), float("-inf")])
            rows.append(row)
        items = [{"idx": i, "row": row} for i, row in enumerate(rows)]
        if r == 4:
            items[-1]["final"] = False
        for a in range(0, n, 3000):
            store.apply_batch("p", f"long{r}", {"rows": items[a:a + 3000]})
        runs[f"long{r}"] = rows
    return runs


def test_aligned_buckets_read_block_sums_and_equal_brute_force(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _store_long_runs(store, random.Random(7))
    ids = list(runs)
    decoded: set[tuple[int, int]] = set()
    real = group_query.key_points

    def counting(conn: Any, pk: int, key: str, chunks: Any) -> Any:
        got = real(conn, pk, key, chunks)
        decoded.update((pk, c) for c in got)
        return got

    monkeypatch.setattr(group_query, "key_points", counting)
    with store.snapshot() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(series_chunks)).scalar_one()
    for buckets in (1, 3, 8, 35):  # 9,000 steps: buckets of at least a block
        decoded.clear()
        got = grouped_series(store, "p", ids, ["loss"], buckets=buckets)
        _check(got["series"]["loss"], _brute(runs, "loss", "_step", buckets))
        # Not every chunk: a run's first and last (the range), and those whose blocks a boundary cuts.
        assert len(decoded) <= 2 * len(ids) + buckets and len(decoded) < total
    got = grouped_series(store, "p", ids[:2], ["loss"], buckets=20)
    _check(got["series"]["loss"], _brute({k: runs[k] for k in ids[:2]}, "loss", "_step", 20))
    # A zoom still aligned, and one whose buckets are narrower than a block (the unaligned rule).
    for a, b, nb in ((1000.0, 7999.5, 12), (1000.0, 3000.0, 50)):
        got = grouped_series(store, "p", ids, ["loss"], buckets=nb, min_x=a, max_x=b)
        _check(got["series"]["loss"], _brute(runs, "loss", "_step", nb, a, b))


def test_chunks_without_sums_are_decoded_and_the_migration_fills_them(store: Store) -> None:
    runs = _store_long_runs(store, random.Random(8))
    ids = list(runs)
    want = grouped_series(store, "p", ids, ["loss"], buckets=9)
    _check(want["series"]["loss"], _brute(runs, "loss", "_step", 9))
    with store.write_engine.begin() as conn:  # a half-migrated store: every other chunk not summed
        stored = conn.execute(sa.select(series_chunks.c.run, series_chunks.c.key, series_chunks.c.chunk,
                                        series_chunks.c.sums)).all()
        conn.execute(series_chunks.update().where(series_chunks.c.chunk % 2 == 0).values(sums=None))
    half = grouped_series(store, "p", ids, ["loss"], buckets=9)
    _check(half["series"]["loss"], _brute(runs, "loss", "_step", 9))
    with store.write_engine.begin() as conn:
        assert fill_sums(conn, 3) == 3  # a piece at a time
        while fill_sums(conn, 3):
            pass
        again = conn.execute(sa.select(series_chunks.c.run, series_chunks.c.key, series_chunks.c.chunk,
                                       series_chunks.c.sums)).all()
    assert sorted(map(tuple, again)) == sorted(map(tuple, stored))
