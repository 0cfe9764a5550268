"""Query benchmark: chart data of a 1M-step series and the runs table of 1,000 runs, on SQLite.

Run: ``python tests/bench/bench_query.py [--steps 1000000] [--runs 1000] [--repeat 21]``. Not a
test: nothing here asserts a time. The data goes straight into the store's tables (a sync of 1M
rows through HTTP is ``bench_sync.py``'s job). Printed, as medians, each beside a floor measured
in the same run on the same database:

  (a) ``series_query.get_series`` of the 1M-point key, ``samples=1500`` (at most 1,500 points, each
      bucket's min and max), called directly and over HTTP from a ``wandblite server`` process
      on 127.0.0.1                                                             target <= 100 ms
      floor: reading the key's 1M raw values with one SELECT (what a naive server would do);
      also shown: the first call (reads only: the pyramid is built as rows are stored), a
      zoomed call, and what building the two keys' pyramids over the 1M rows cost at ingest
  (b) ``runs_query.list_runs`` of 1,000 runs with 20 config and 20 summary values each, ordered by a
      summary value, directly and over HTTP                                   target <= 300 ms
      floor: the one SELECT of those 1,000 rows
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def build(store: Any, steps: int, nruns: int) -> float:
    """One run ``big`` with ``steps`` rows of ``loss`` and ``epoch``; ``nruns`` small runs beside it."""
    import sqlalchemy as sa

    from wandblite.server.db import dumps
    from wandblite.server.indexes import backfill_read_indexes
    from wandblite.server.schema import history, runs, series

    store.apply_batch("bench", "big", {"run": {"state": "finished", "created_at": 1.7e9}, "rows": []})
    with store.write_engine.begin() as conn:
        pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == "big")).scalar_one()
        chunk = 100_000
        for start in range(0, steps, chunk):
            hist, ser = [], []
            for i in range(start, min(steps, start + chunk)):
                loss = 1.0 / (1 + i * 1e-4) + 0.05 * math.sin(i / 50) + (3.0 if i % 99_991 == 0 else 0.0)
                rt, ts = i * 0.01, 1.7e9 + i * 0.01
                hist.append({"run": pk, "idx": i, "step": i, "runtime": rt, "timestamp": ts, "final": True,
                             "row": dumps({"loss": loss, "epoch": i // 1000, "_step": i, "_runtime": rt,
                                           "_timestamp": ts})})
                ser.append({"run": pk, "key": "loss", "idx": i, "step": i, "runtime": rt, "timestamp": ts,
                            "value": loss})
                ser.append({"run": pk, "key": "epoch", "idx": i, "step": i, "runtime": rt, "timestamp": ts,
                            "value": float(i // 1000)})
            conn.execute(history.insert(), hist)
            conn.execute(series.insert(), ser)
        conn.execute(runs.update().where(runs.c.id == pk).values(rows_final=steps))
    for r in range(nruns):
        meta = {"state": ["finished", "failed", "crashed"][r % 3], "name": f"run-{r}", "tags": ["t", f"g{r % 7}"],
                "created_at": 1.7e9 + r, "config": {f"c{k}": r * k * 0.1 for k in range(20)},
                "summary": {f"s{k}": math.sin(r + k) for k in range(20)} | {"_runtime": r * 1.5}}
        store.apply_batch("bench", f"r{r:04d}", {"run": meta})
    # The rows bypassed apply_batch, which builds the read indexes as it stores rows: build them the
    # way migration 0004 does for such rows, and time it (the ingest-side cost of the pyramid).
    t = time.perf_counter()
    with store.write_engine.begin() as conn:
        backfill_read_indexes(conn, pk, steps)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--dir", default=None, help="where the database goes (default: a temporary directory)")
    args = ap.parse_args()

    import requests
    import sqlalchemy as sa

    from wandblite.server import runs_query, series_query
    from wandblite.server.schema import runs, series
    from wandblite.server.store import Store

    tmp = Path(args.dir or tempfile.mkdtemp(prefix="wl-bench-query-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    store = Store(url, media_dir=tmp / "media")
    t = time.perf_counter()
    pyramid_s = build(store, args.steps, args.runs)
    print(f"built {args.steps:,} rows and {args.runs:,} runs in {time.perf_counter() - t:.1f} s ({tmp})")
    _, key = store.create_key("bench")

    with store.read_engine.connect() as conn:
        pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == "big")).scalar_one()

    def raw_floor() -> int:
        with store.read_engine.connect() as conn:
            return len(conn.execute(sa.select(series.c.value).where(series.c.run == pk, series.c.key == "loss")).all())

    def chart() -> Any:
        return series_query.get_series(store, "bench", "big", ["loss"], samples=1500)

    t = time.perf_counter()
    first = chart()["series"]["loss"]
    build_s = time.perf_counter() - t
    assert len(first["x"]) <= 1500 and first["count"] == args.steps
    direct = _median_ms(chart, args.repeat)
    zoom = _median_ms(lambda: series_query.get_series(store, "bench", "big", ["loss"], samples=1500, min_x=args.steps * 0.3,
                                               max_x=args.steps * 0.7), args.repeat)
    epoch = _median_ms(lambda: series_query.get_series(store, "bench", "big", ["loss"], samples=1500, x_axis="epoch"),
                       args.repeat)
    floor = _median_ms(raw_floor, max(3, args.repeat // 4))

    def table() -> Any:
        return runs_query.list_runs(store, "bench", order="-summary.s3", limit=1000)

    assert len(table()["runs"]) == min(1000, args.runs + 1)
    tbl = _median_ms(table, args.repeat)
    tbl_filtered = _median_ms(lambda: runs_query.list_runs(store, "bench", filters={"config.c3": {"$gt": 10},
                                                                                "tags": {"$in": ["g1", "g2"]}},
                                                     order="name", search="run", limit=1000), args.repeat)

    def tbl_floor() -> int:
        with store.read_engine.connect() as conn:
            return len(conn.execute(sa.select(runs)).all())

    tfloor = _median_ms(tbl_floor, args.repeat)

    port = _port()
    env = {**os.environ, "WANDBLITE_SILENT": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from wandblite_cli.main import main; main(sys.argv[1:])",
                             "server", "--host", "127.0.0.1", "--port", str(port), "--db", url, "--media",
                             str(tmp / "media")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        base = f"http://127.0.0.1:{port}/api/v1/projects/bench"
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {key}"
        for _ in range(200):
            try:
                if s.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)

        def http_chart() -> None:
            r = s.get(base + "/runs/big/series", params={"keys": "loss", "samples": 1500}, timeout=30)
            assert r.ok and len(json.loads(r.content)["series"]["loss"]["x"]) <= 1500

        def http_table() -> None:
            r = s.get(base + "/runs", params={"order": "-summary.s3", "limit": 1000}, timeout=30)
            assert r.ok and len(json.loads(r.content)["runs"]) == min(1000, args.runs + 1)

        http_chart()
        hchart = _median_ms(http_chart, args.repeat)
        htable = _median_ms(http_table, args.repeat)
    finally:
        proc.terminate()
        proc.wait(10)

    print(f"\n(a) chart data, {args.steps:,}-point series -> {len(first['x'])} points (samples=1500), median of "
          f"{args.repeat}:")
    print(f"    series_query.get_series direct      {direct:8.1f} ms   target <= 100 ms   "
          f"({floor / direct:.0f}x faster than the floor)")
    print(f"    over HTTP (client-observed)  {hchart:8.1f} ms")
    print(f"    zoomed to 40% of the x range {zoom:8.1f} ms;  x_axis=epoch {epoch:8.1f} ms")
    print(f"    floor: SELECT of the 1M raw values {floor:8.1f} ms")
    print(f"    first call: {build_s * 1000:.0f} ms (reads only; the min/max pyramid is built as rows are stored: "
          f"{pyramid_s:.1f} s for the 2 keys x {args.steps:,} rows here, in one go)")
    print(f"\n(b) runs table, {args.runs + 1:,} runs (20 config + 20 summary values each), median of {args.repeat}:")
    print(f"    runs_query.list_runs direct, ordered by summary.s3   {tbl:8.1f} ms   target <= 300 ms")
    print(f"    with a filter, a search and ordered by name      {tbl_filtered:8.1f} ms")
    print(f"    over HTTP (client-observed)                      {htable:8.1f} ms")
    print(f"    floor: the SELECT of those rows                  {tfloor:8.1f} ms  ({tbl / tfloor:.1f}x the floor)")
    store.close()


if __name__ == "__main__":
    main()
