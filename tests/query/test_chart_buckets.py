"""Chart buckets against a brute-force computation over the raw points, on SQLite and PostgreSQL.

``series_query.get_series`` keeps, for every bucket of the index range, the bucket's minimum and
maximum point (the first index holding each). Here the same buckets (``series_query._Buckets``) are
computed again from the raw values and the answer compared exactly, for random run lengths, sample
counts and zooms: both the equal-width buckets and the chunk-aligned ones of a long range (where a
chart reads the chunks' statistics and decodes at most the two chunks its range's ends cut).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.server.conftest import backend_store
from wandblite.server import series_query
from wandblite.server.chunks import CHUNK_ROWS
from wandblite.server.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with backend_store(request.param, tmp_path, "wl_chart_buckets") as s:
        yield s


def _put(store: Store, project: str, vals: np.ndarray, holes: set[int]) -> None:
    rows = []
    for i, v in enumerate(vals.tolist()):
        row: dict[str, Any] = {"_step": 2 * i, "other": i}
        if i not in holes:  # rows without the key: its points are not every index
            row["v"] = v
        rows.append({"idx": i, "row": row})
    for i in range(0, len(rows), 10_000):
        store.apply_batch(project, "r", {"rows": rows[i:i + 10_000]})


def _brute(vals: np.ndarray, holes: set[int], lo: int, hi: int, starts: list[int]) -> list[tuple[int, float, float, float]]:
    """Per bucket, its min and max point over finite values (first index on ties), as get_series gives them."""
    out = []
    bounds = [*starts, hi]
    for g in range(len(starts)):
        a, b = max(bounds[g], lo), min(bounds[g + 1], hi)
        pts = [(float(vals[i]), i) for i in range(a, b) if i not in holes and np.isfinite(vals[i])]
        if not pts:
            continue
        mn = min(pts, key=lambda p: (p[0], p[1]))
        mx = min(pts, key=lambda p: (-p[0], p[1]))
        if mn[1] == mx[1]:
            out.append((mn[1], mn[0], mn[0], mx[0]))
        else:
            for v, i in sorted((mn, mx), key=lambda p: p[1]):
                out.append((i, v, mn[0], mx[0]))
    return out


def test_every_buckets_min_and_max_is_the_brute_force_answer(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    rnd = random.Random(7)
    n = 23 * CHUNK_ROWS + 517  # a partial last chunk
    vals = np.cumsum(rng.normal(size=n))
    vals[rng.integers(0, n, 40)] = np.nan
    vals[rng.integers(0, n, 5)] = np.inf
    vals[1000:1010] = vals[999]  # ties: the first index wins
    holes = set(rng.integers(0, n, 300).tolist())
    _put(store, "cb", vals, holes)
    decoded: list[int] = []
    real = series_query._Points.decoded

    def counting(self: Any, chunks: list[int]) -> Any:
        decoded.extend(c for c in chunks if c not in self._decoded)
        return real(self, chunks)

    monkeypatch.setattr(series_query._Points, "decoded", counting)
    cases = [(samples, None, None) for samples in (4, 10, 16, 100, 1500)]
    for _ in range(12):
        a = rnd.randrange(0, n)
        b = rnd.randrange(a, n + 5)
        cases.append((rnd.choice([2, 6, 10, 40, 300]), 2 * a, 2 * b))  # x is 2 * idx
    for samples, min_x, max_x in cases:
        decoded.clear()
        got = series_query.get_series(store, "cb", "r", ["v"], samples=samples, min_x=min_x, max_x=max_x)
        s = got["series"]["v"]
        lo = 0 if min_x is None else min_x // 2
        hi = n if max_x is None else min(n, max_x // 2 + 1)
        count = sum(1 for i in range(lo, hi) if i not in holes)
        # The index range the server chose is its x range widened by a row each side; the points
        # outside [min_x, max_x] are then dropped. Rebuild the same buckets and compare.
        r_lo, r_hi = (0, n) if min_x is None else (max(0, lo - 1), min(n, hi + 1))
        first = min(i for i in range(n) if i not in holes)
        last = max(i for i in range(n) if i not in holes)
        r_lo, r_hi = max(r_lo, first), min(r_hi, last + 1)
        bk = series_query._Buckets(r_lo, r_hi, max(1, samples // 2))
        assert len(bk.starts) <= samples // 2
        in_range = sum(1 for i in range(r_lo, r_hi) if i not in holes)
        if in_range > samples:
            want = _brute(vals, holes, r_lo, r_hi, bk.starts)
        else:
            want = [(i, float(vals[i]), float(vals[i]), float(vals[i])) for i in range(r_lo, r_hi)
                    if i not in holes and np.isfinite(vals[i])]
        want = [w for w in want if (min_x is None or 2 * w[0] >= min_x) and (max_x is None or 2 * w[0] <= max_x)]
        assert s["x"] == [2.0 * w[0] for w in want], (samples, min_x, max_x)
        assert s["y"] == [w[1] for w in want]
        assert s["y_min"] == [w[2] for w in want] and s["y_max"] == [w[3] for w in want]
        assert len(s["x"]) <= samples
        if min_x is None:
            assert s["count"] == count
        if r_hi - r_lo >= (samples // 2) * CHUNK_ROWS:
            # chunk-aligned buckets: every inner chunk by its statistics; only the ends' chunks decoded
            assert len(set(decoded)) <= 2, (samples, min_x, max_x, sorted(set(decoded)))
