"""End-to-end benchmark: one long run logged, synced, charted and scanned, each phase timed.

Run: ``python tests/bench/bench_e2e.py [--steps 10000000] [--keys 10] [--db sqlite|postgres]``. Not a
test: nothing here asserts a time. The phases, each printed with its wall time and its rate:

  log    ``wandblite.init`` + ``run.log`` of ``--steps`` rows of ``--keys`` scalars (a random walk)
         + ``finish``, into a run file
  sync   ``Syncer`` over HTTP into a ``wandblite server`` subprocess on 127.0.0.1 (SQLite file, or a
         fresh PostgreSQL database on 127.0.0.1:5432)
  chart  ``GET .../series`` of one key, 1500 samples (best and median of 5); floor: the SELECT of
         that key's chunk statistics, the least a chart of the whole run reads
  scan   ``wandblite.Api(...).run(...).scan_history(page_size=10_000)`` of every row over HTTP
         (target >= 100k rows/s); floor: ``wandblite.replay(run).scan_history()`` of the run file
         on this machine, measured in the same run
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_store import drop_pg, fresh_pg, sync  # noqa: E402
from tests.bench.bench_sync import start_server  # noqa: E402


def log_run(root: Path, steps: int, keys: int) -> Path:
    import numpy as np

    import wandblite

    rng = np.random.default_rng(16)
    run = wandblite.init(project="bench", id="e2e", dir=str(root),
                         settings=wandblite.Settings(console="off", disable_stats=True))
    log = run.log
    names = [f"metric_{k}" for k in range(keys)]
    level = np.zeros(keys)
    for start in range(0, steps, 100_000):  # the values in slices: memory stays flat for 10M steps
        n = min(100_000, steps - start)
        walk = level + np.cumsum(rng.normal(size=(n, keys)), axis=0)
        level = walk[-1]
        for row in walk.tolist():
            log(dict(zip(names, row)))
    run.finish()
    return root / "e2e"


def stats_floor(db: str) -> float:
    """Seconds of one SELECT of metric_0's chunk statistics (chunk, n, min, max): what a chart must read."""
    import sqlalchemy as sa

    from wandblite.server.schema import series_chunks
    from wandblite.server.store import Store

    store = Store(db)
    try:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            with store.read_engine.connect() as conn:
                s = series_chunks.c
                conn.execute(sa.select(s.chunk, s.n, s.first_idx, s.last_idx, s.min_v, s.max_v)
                             .where(s.key == "metric_0")).all()
            best = min(best, time.perf_counter() - t0)
        return best
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    import requests

    import wandblite

    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-e2e-"))
    os.environ["WANDBLITE_HOME"] = str(tmp / "client-home")
    pg_name = f"wl_bench_e2e_{os.getpid()}"
    db = fresh_pg(pg_name) if args.db == "postgres" else f"sqlite:///{tmp / 'server.db'}"
    proc = None
    phases: list[tuple[str, float, str]] = []
    try:
        t0 = time.perf_counter()
        run_dir = log_run(tmp / "runs", args.steps, args.keys)
        dt = time.perf_counter() - t0
        phases.append(("log", dt, f"{args.steps / dt:,.0f} rows/s"))
        print(f"log   {dt:8.1f} s", flush=True)

        proc, url, key = start_server(tmp, db)
        dt, rows = sync(run_dir, url, key, None)
        assert rows == args.steps, rows
        phases.append(("sync", dt, f"{rows / dt:,.0f} rows/s, {rows * args.keys / dt:,.0f} points/s"))
        print(f"sync  {dt:8.1f} s", flush=True)

        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        times = []
        for _ in range(5):
            t = time.perf_counter()
            r = http.get(url + "/api/v1/projects/bench/runs/e2e/series", params={"keys": "metric_0", "samples": "1500"},
                         timeout=600)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json()["series"]["metric_0"]["count"] == args.steps
        floor = stats_floor(db)
        phases.append(("chart", statistics.median(times),
                       f"best {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms "
                       f"(target <= 100 ms); floor: SELECT of the key's chunk statistics {floor * 1000:.0f} ms"))
        print(f"chart {statistics.median(times):8.3f} s", flush=True)

        t = time.perf_counter()
        n = sum(1 for _ in wandblite.Api(server=url, api_key=key).run("bench/e2e").scan_history(page_size=10_000))
        dt = time.perf_counter() - t
        assert n == args.steps, n
        t = time.perf_counter()
        m = sum(1 for _ in wandblite.replay(run_dir).scan_history())
        local = m / (time.perf_counter() - t)
        phases.append(("scan", dt, f"{n / dt:,.0f} rows/s over HTTP (target >= 100k rows/s); floor: replay of the "
                                   f"run file {local:,.0f} rows/s: {n / dt / local:.2f}x"))
        print(f"scan  {dt:8.1f} s", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if args.db == "postgres":
            drop_pg(pg_name)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.steps:,} steps x {args.keys} keys into {args.db}:")
    for name, secs, note in phases:
        print(f"  {name:6s}{secs:9.2f} s   {note}")


if __name__ == "__main__":
    main()
