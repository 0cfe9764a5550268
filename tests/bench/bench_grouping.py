"""Grouping benchmark: the grouped-series endpoint over a group of 100 runs of 1M points each.

Run: ``python tests/bench/bench_grouping.py [--runs 100] [--points 1000000] [--seeds 2] [--repeat 3]
[--postgres URL] [--browser]``. Not a test: nothing here asserts a time. Printed, as medians, each
beside a floor measured in the same run on the same database:

  (a) ``group_query.grouped_series`` of one metric over all ``--runs`` runs (500 buckets), called
      directly: its time, its rate in points per second, and its ratio to
      floor: ``series_query.get_series`` of one run's metric (``samples=1500``: what a chart of one
      run reads), times the number of runs: drawing every member run one by one, as a dashboard
      without server-side grouping would have to.
  (b) with ``--browser``: the grouped page in headless Chromium (runs split into 4 groups by a
      config key), from setting the group-by to the chart holding every group's line, against
      floor: the same 4 grouped-series requests over HTTP from Python, one after another.

Data: ``--seeds`` runs are stored through ``Store.apply_batch`` (random walks, regular steps); the
others are copies of their chunk rows made with one INSERT ... SELECT each (storing 100M rows through
the ingest path would take the machine's afternoon, and the read cost depends on the chunks, not on
the values in them). The store is SQLite in a temporary directory unless ``--postgres`` names a
PostgreSQL database (an empty one: the runs are added to it and left there).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "bench"
GROUPS = 4


def _median_s(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def build(store: Any, nruns: int, points: int, seeds: int) -> tuple[list[str], float]:
    """``nruns`` runs of ``points`` rows of ``loss``; returns their ids and the seconds ingest took."""
    import sqlalchemy as sa

    from wandblite.server.schema import history_chunks, runs, series_chunks

    ids = [f"r{i:04d}" for i in range(nruns)]
    t0 = time.perf_counter()
    rnd = random.Random(7)
    for s in range(min(seeds, nruns)):
        v = 0.0
        batch = 50_000
        for lo in range(0, points, batch):
            rows = []
            for i in range(lo, min(points, lo + batch)):
                v += rnd.gauss(0, 1)
                rows.append({"idx": i, "row": {"_step": i, "loss": v}})
            meta = {"state": "finished", "config": {"g": s % GROUPS, "lr": 0.001 * (s + 1)}, "summary": {"loss": v}}
            store.apply_batch(PROJECT, ids[s], {"run": meta, "rows": rows})
    ingest = time.perf_counter() - t0
    with store.write_engine.begin() as conn:
        pks = {r.run_id: int(r.id) for r in conn.execute(sa.select(runs.c.run_id, runs.c.id))}
    for i in range(seeds, nruns):
        meta = {"state": "finished", "config": {"g": i % GROUPS, "lr": 0.001 * (i + 1)}, "summary": {"loss": 0.0}}
        store.apply_batch(PROJECT, ids[i], {"run": meta})
        with store.write_engine.begin() as conn:
            pk = int(conn.execute(sa.select(runs.c.id).where(runs.c.run_id == ids[i])).scalar_one())
            src = pks[ids[i % seeds]]
            for table in (history_chunks, series_chunks):
                cols = [c for c in table.c if c.name != "run"]
                conn.execute(table.insert().from_select(
                    ["run", *[c.name for c in cols]],
                    sa.select(sa.literal(pk).label("run"), *cols).where(table.c.run == src)))
            conn.execute(runs.update().where(runs.c.id == pk).values(rows_final=points))
    return ids, ingest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgres", default=None)
    ap.add_argument("--browser", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    from wandblite.server.group_query import grouped_series
    from wandblite.server.series_query import get_series
    from wandblite.server.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-group-"))
    url = args.postgres or f"sqlite:///{tmp / 'store.db'}"
    store = Store(url, media_dir=tmp / "media")
    ids, ingest = build(store, args.runs, args.points, args.seeds)
    total = args.runs * args.points
    print(f"{args.runs} runs x {args.points:,} points ({total:,} points; {args.seeds} ingested in {ingest:.1f} s, "
          f"the rest copied) on {url.split(':', 1)[0]}")

    grouped = _median_s(lambda: grouped_series(store, PROJECT, ids, ["loss"], buckets=500), args.repeat)
    one = _median_s(lambda: get_series(store, PROJECT, ids[0], ["loss"], samples=1500), max(3, args.repeat))
    floor = one * args.runs
    ans = grouped_series(store, PROJECT, ids, ["loss"], buckets=500)["series"]["loss"]
    assert ans["runs"] == args.runs and len(ans["x"]) == 500 and max(ans["n"]) == args.runs
    print(f"(a) grouped-series, {args.runs} runs, 500 buckets    {grouped * 1000:9.1f} ms  "
          f"({total / grouped / 1e6:.1f} M points/s)")
    print(f"    floor: get_series of one run x {args.runs}         {floor * 1000:9.1f} ms  "
          f"(one run: {one * 1000:.1f} ms)   ratio {grouped / floor:.2f}x the floor")
    store.close()
    if args.browser:
        _browser(url, tmp, ids, args.repeat)


def _browser(url: str, tmp: Path, ids: list[str], repeat: int) -> None:
    import requests

    from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.server.conftest import ServerProc

    srv = ServerProc(url, tmp / "media", tmp / "home", public_read=True).start()
    try:
        groups = [[rid for i, rid in enumerate(ids) if i % GROUPS == g] for g in range(GROUPS)]

        def http() -> None:
            for members in groups:
                r = requests.get(f"{srv.url}/api/v1/projects/{PROJECT}/grouped-series",
                                 params={"runs": ",".join(members), "keys": "loss", "buckets": "500"}, timeout=600)
                r.raise_for_status()

        floor = _median_s(http, repeat)
        from playwright.sync_api import sync_playwright

        times = []
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for _ in range(repeat):
                page = b.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(600_000)
                page.goto(f"{srv.url}/#/p/{PROJECT}/groups")
                page.wait_for_selector("#group-by-1")
                # The ungrouped view draws the runs one by one first: let it finish.
                page.wait_for_function(
                    "() => { const g = document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot');"
                    " return g && g.data && g.data.length > 0; }")
                t = time.perf_counter()
                page.evaluate("() => import('/static/grouping.js').then(m => m.setGroupingState({groupBy: ['config.g']}))")
                page.wait_for_function(
                    "n => { const g = document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot');"
                    " return g && g.data && g.data.filter(t => t.meta && t.meta.role === 'aggregate').length === n; }",
                    arg=GROUPS)
                times.append(time.perf_counter() - t)
                page.close()
            b.close()
        page_s = statistics.median(times)
        print(f"(b) Chromium: group by config.g, {GROUPS} lines drawn  {page_s * 1000:9.1f} ms")
        print(f"    floor: the {GROUPS} grouped-series requests over HTTP  {floor * 1000:9.1f} ms   "
              f"ratio {page_s / floor:.2f}x the floor")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
