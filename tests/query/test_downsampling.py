"""The min/max pyramid behind chart downsampling, against a brute-force answer, on SQLite and PostgreSQL.

Rows go in through the store's own batch path (as a sync does); spans are long enough that the
pyramid levels, not the raw points, answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from wandblite.server import series_query
from wandblite.server.store import Store

from .conftest import uniq

N = 70_000


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = str(request.getfixturevalue("postgres_url")) if request.param == "postgres" else f"sqlite:///{tmp_path / 's.db'}"
    s = Store(url, media_dir=tmp_path / "media")
    yield s
    s.close()


def _values(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=n))


def _put(store: Store, project: str, start: int, vals: np.ndarray, pending_last: bool = False) -> None:
    rows = []
    for i, v in enumerate(vals, start):
        row = {"_step": i, "_runtime": i * 0.5, "_timestamp": 1.7e9 + i, "v": float(v), "epoch": i // 1000}
        if i % 11 == 0:
            row["v"] = float("nan")
        rows.append({"idx": i, "final": True, "row": row})
    if pending_last:
        rows[-1]["final"] = False
    for i in range(0, len(rows), 10_000):
        store.apply_batch(project, "r", {"rows": rows[i:i + 10_000], "run": {"state": "running"}})


def _finite(vals: np.ndarray, start: int = 0) -> list[tuple[int, float]]:
    return [(i, float(v)) for i, v in enumerate(vals, start) if i % 11 != 0]


def test_pyramid_keeps_every_buckets_extremes_and_grows_with_the_run(store: Store) -> None:
    project = uniq("ds")
    vals = _values(N, 1)
    _put(store, project, 0, vals)
    pts = _finite(vals)
    for samples in (100, 1500):
        s = series_query.get_series(store, project, "r", ["v"], samples=samples)["series"]["v"]
        assert s["count"] == N and len(s["x"]) <= samples
        assert max(s["y"]) == max(v for _, v in pts) and min(s["y"]) == min(v for _, v in pts)
        assert all(vals[x] == y for x, y in zip(s["x"], s["y"]))  # real points at their own steps
        assert s["x"] == sorted(s["x"]) and all(lo <= y <= hi for y, lo, hi in zip(s["y"], s["y_min"], s["y_max"]))
        # Every bucket's min and max is a point: the band covers the data between neighbouring points.
        assert len(s["x"]) >= samples * 0.6
    # The run grows (a live sync): a new spike in the new rows shows up; the pyramid was extended.
    more = _values(30_000, 2)
    more[12_345] = 1e6
    _put(store, project, N, more, pending_last=True)
    s = series_query.get_series(store, project, "r", ["v"], samples=500)["series"]["v"]
    assert s["count"] == N + 30_000 and max(s["y"]) == 1e6 and s["x"][s["y"].index(1e6)] == N + 12_345
    assert s["x"][-1] == N + 30_000 - 1  # the provisional last row is read raw


def test_zoom_and_metric_axis_in_the_pyramid_path(store: Store) -> None:
    project = uniq("dz")
    vals = _values(N, 3)
    _put(store, project, 0, vals)
    lo, hi = 10_000, 60_000
    s = series_query.get_series(store, project, "r", ["v"], samples=300, min_x=lo, max_x=hi)["series"]["v"]
    inside = [v for i, v in _finite(vals) if lo <= i <= hi]
    assert min(s["x"]) >= lo and max(s["x"]) <= hi and len(s["x"]) <= 300
    assert max(s["y"]) == max(inside) and min(s["y"]) == min(inside)
    r = series_query.get_series(store, project, "r", ["v"], samples=200, x_axis="_runtime")["series"]["v"]
    assert all(math.isclose(x, 0.5 * i) for x, i in zip(r["x"], series_query.get_series(
        store, project, "r", ["v"], samples=200)["series"]["v"]["x"]))
    e = series_query.get_series(store, project, "r", ["v"], samples=200, x_axis="epoch")["series"]["v"]
    by_epoch: dict[int, set[float]] = {}
    for i, v in _finite(vals):
        by_epoch.setdefault(i // 1000, set()).add(v)
    assert e["x"] and all(y in by_epoch[int(x)] for x, y in zip(e["x"], e["y"]))
