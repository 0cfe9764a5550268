"""Store benchmark at scale: bytes per point, sync rate against the databases' bulk floors, read speed.

Run: ``python tests/bench/bench_store.py [--steps 1000000] [--chart-points 10000000] [--runs 10000]``,
or ``--quick`` for small sizes. Not a test: nothing here asserts a time. Printed, each against its
target or a floor measured in the same run on the same machine:

  (a) bytes per stored point of a ``--steps`` x 10-key run (values: a noisy random walk, the hard
      case for compression), SQLite (the file, WAL checkpointed) and PostgreSQL (every table's
      ``pg_total_relation_size``: heap, TOAST and indexes), synced by ``Syncer`` over HTTP  <= 16
  (b) sync points/s of that run into a ``wandblite server`` on PostgreSQL over loopback, against
      PostgreSQL ``COPY`` (psycopg 3 ``cursor.copy``) of the same (run, step, key, value) tuples
      into a plain table                                                                   >= 0.3x
      and into SQLite, against one ``executemany`` of the same tuples into a plain table
  (c) a chart (``GET .../series``, 1500 samples) of a ``--chart-points`` series            <= 100 ms
      ``scan_history`` over HTTP (``wandblite.Api``) of the ``--steps`` run                >= 100k rows/s
      the runs table (``GET .../runs``) of a ``--runs``-run project                         <= 300 ms
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_sync import start_server  # noqa: E402

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
KEYS = 10


def make_run(root: Path, steps: int) -> Path:
    import numpy as np

    import wandblite

    rng = np.random.default_rng(16)
    walk = np.cumsum(rng.normal(size=(steps, KEYS)), axis=0) + rng.normal(scale=0.1, size=(steps, KEYS))
    run = wandblite.init(project="bench", id="big", dir=str(root),
                         settings=wandblite.Settings(console="off", disable_stats=True))
    log = run.log
    names = [f"metric_{k}" for k in range(KEYS)]
    for row in walk.tolist():
        log(dict(zip(names, row)))
    run.finish()
    return root / "big"


def fresh_pg(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_bytes(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as c:
        return int(c.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                             "JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchone()[0])


def sqlite_bytes(path: Path) -> int:
    c = sqlite3.connect(path)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return path.stat().st_size


def tuples(run_dir: Path) -> list[tuple[int, int, str, float]]:
    import wandblite

    out = []
    for r in wandblite.replay(run_dir).scan_history():
        step = r["_step"]
        out.extend((1, step, k, v) for k, v in r.items() if k[0] != "_")
    return out


def copy_floor(url: str, pts: list[tuple[int, int, str, float]]) -> float:
    import psycopg

    with psycopg.connect(url) as c:
        c.execute("CREATE TABLE plain (run integer, step bigint, key text, value double precision)")
        t0 = time.perf_counter()
        with c.cursor() as cur, cur.copy("COPY plain (run, step, key, value) FROM STDIN") as cp:
            for p in pts:
                cp.write_row(p)
        c.commit()
        return len(pts) / (time.perf_counter() - t0)


def executemany_floor(path: Path, pts: list[tuple[int, int, str, float]]) -> float:
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("CREATE TABLE plain (run integer, step integer, key text, value real)")
    t0 = time.perf_counter()
    c.executemany("INSERT INTO plain VALUES (?, ?, ?, ?)", pts)
    c.commit()
    dt = time.perf_counter() - t0
    c.close()
    return len(pts) / dt


def sync(run_dir: Path, url: str, key: str, batch: int | None) -> tuple[float, int]:
    from wandblite.sync.client import Syncer
    from wandblite.sync.transport import HttpTransport

    t0 = time.perf_counter()
    kw: dict[str, Any] = {} if batch is None else {"batch_size": batch}
    res = Syncer(HttpTransport(url, key), **kw).sync_path(run_dir)
    dt = time.perf_counter() - t0
    assert res.ok, res
    return dt, res.rows


def timed_get(url: str, key: str, path: str, params: dict[str, str], repeat: int = 5) -> tuple[float, Any]:
    import requests

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    best, body = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = http.get(url + path, params=params, timeout=600)
        best = min(best, time.perf_counter() - t0)
        assert r.status_code == 200, r.text[:300]
        body = r.json()
    return best, body


def chart_store(db: str, points: int) -> None:
    """A run ``chart`` with one metric of ``points`` points, stored through ``apply_batch``."""
    from wandblite.server.store import Store

    store = Store(db)
    step = 50_000
    import numpy as np

    rng = np.random.default_rng(3)
    for b in range(0, points, step):
        vals = np.cumsum(rng.normal(size=min(step, points - b))).tolist()
        store.apply_batch("bench", "chart", {"rows": [{"idx": b + i, "row": {"_step": b + i, "loss": v}}
                                                      for i, v in enumerate(vals)]})
    store.close()


def runs_store(db: str, n: int) -> None:
    from wandblite.server.store import Store

    store = Store(db)
    for i in range(n):
        store.apply_batch("many", f"run-{i:05d}", {"run": {
            "state": "finished", "name": f"run {i}", "config": {"lr": 0.001 * (i % 17), "layers": i % 5},
            "summary": {"loss": 1.0 / (i + 1), "acc": (i % 100) / 100}, "tags": ["bench"]}})
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--chart-points", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=None, help="the sync client's batch (default: its own)")
    ap.add_argument("--quick", action="store_true", help="100k steps, a 1M-point chart, 1,000 runs")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.chart_points, args.runs = 100_000, 1_000_000, 1_000
    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-store-"))
    os.environ["WANDBLITE_HOME"] = str(tmp / "client-home")
    pg_name = f"wl_bench_{os.getpid()}"
    procs = []
    try:
        t0 = time.perf_counter()
        run_dir = make_run(tmp / "runs", args.steps)
        print(f"wrote a {args.steps:,}-step run of {KEYS} noisy scalars in {time.perf_counter() - t0:.1f}s")
        pts = tuples(run_dir)
        npts = len(pts)

        # SQLite: the floor, then the server.
        sq_floor = executemany_floor(tmp / "floor.db", pts)
        sq_db = tmp / "server.db"
        proc, url, key = start_server(tmp, f"sqlite:///{sq_db}")
        procs.append(proc)
        dt, rows = sync(run_dir, url, key, args.batch_size)
        sq_rate = npts / dt
        sq_bpp = sqlite_bytes(sq_db) / npts
        t_scan = time.perf_counter()
        import wandblite

        scanned = 0
        for _row in wandblite.Api(server=url, api_key=key).run("bench/big").scan_history(page_size=10_000):
            scanned += 1
        t_scan = time.perf_counter() - t_scan
        t_local = time.perf_counter()
        local = sum(1 for _row in wandblite.replay(run_dir).scan_history())
        local_rate = local / (time.perf_counter() - t_local)
        print(f"(b) SQLite: sync {rows:,} rows = {npts:,} points in {dt:.1f}s: {rows / dt:,.0f} rows/s, "
              f"{sq_rate:,.0f} points/s; executemany floor {sq_floor:,.0f} points/s: ratio {sq_rate / sq_floor:.2f}x")
        print(f"(a) SQLite: {sq_bpp:.2f} bytes per point (target <= 16)")
        if True:
            print(f"(c) scan_history over HTTP: {scanned:,} rows in {t_scan:.1f}s = {scanned / t_scan:,.0f} rows/s "
                  f"(target >= 100k rows/s); floor: replay of the run file {local_rate:,.0f} rows/s, "
                  f"{scanned / t_scan / local_rate:.2f}x")

        chart_store(f"sqlite:///{sq_db}", args.chart_points)
        t_chart, body = timed_get(url, key, "/api/v1/projects/bench/runs/chart/series",
                                  {"keys": "loss", "samples": "1500"})
        assert body["series"]["loss"]["count"] == args.chart_points
        print(f"(c) chart of a {args.chart_points:,}-point series: {t_chart * 1000:.0f} ms (target <= 100 ms)")
        runs_store(f"sqlite:///{sq_db}", args.runs)
        t_runs, body = timed_get(url, key, "/api/v1/projects/many/runs", {})
        print(f"(c) runs table of a {args.runs:,}-run project: {t_runs * 1000:.0f} ms (target <= 300 ms)")
        proc.terminate()
        proc.wait(10)
        procs.clear()

        # PostgreSQL: the COPY floor in one database, the server in another.
        floor_url = fresh_pg(pg_name + "_floor")
        pg_floor = copy_floor(floor_url, pts)
        drop_pg(pg_name + "_floor")
        pg_url = fresh_pg(pg_name)
        proc, url, key = start_server(tmp, pg_url)
        procs.append(proc)
        base = pg_bytes(pg_url)
        dt, rows = sync(run_dir, url, key, args.batch_size)
        pg_rate = npts / dt
        pg_bpp = (pg_bytes(pg_url) - base) / npts
        print(f"(b) PostgreSQL: sync {rows:,} rows in {dt:.1f}s: {rows / dt:,.0f} rows/s, {pg_rate:,.0f} points/s; "
              f"COPY floor {pg_floor:,.0f} points/s: ratio {pg_rate / pg_floor:.2f}x (target >= 0.3x)")
        print(f"(a) PostgreSQL: {pg_bpp:.2f} bytes per point (target <= 16)")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        drop_pg(pg_name)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
