"""Sync benchmark: upload rate of a long scalar run over loopback HTTP, against a SQL insert floor.

Run: ``python tests/bench/bench_sync.py [--steps 1000000] [--batch-size 2000]``. Not a test: nothing
here asserts a time. Printed, each against a floor measured in the same run on the same disk:

  (a) rows/s of ``wandblite sync`` of a run of 10 scalars per step, from its run file into a
      ``wandblite server`` subprocess on 127.0.0.1 with SQLite
      / rows/s of inserting the same rows' points (run, step, key, value) into a plain table with
      sqlite3 executemany, parameters prepared in advance, one transaction per batch      >= 0.5x
  (b) seconds of a re-sync of the unchanged run (new process state, the server asked)        < 1 s
      (also shown: a re-sync that cannot use the sync-state cache and reads the whole run)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_run(root: Path, steps: int) -> Path:
    import wandblite

    run = wandblite.init(project="bench", id="big", dir=str(root),
                         settings=wandblite.Settings(console="off", disable_stats=True))
    log = run.log
    for i in range(steps):
        log({f"metric_{k}": (i + k) * 0.001 for k in range(10)})
    run.finish()
    return root / "big"


def start_server(tmp: Path, db: str) -> tuple[subprocess.Popen[bytes], str, str]:
    import requests

    from wandblite.server.store import Store

    store = Store(db)
    key = store.create_key("bench")[1]
    store.close()
    port = _port()
    env = {**os.environ, "WANDBLITE_HOME": str(tmp / "home")}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from wandblite_cli.main import main; main(sys.argv[1:])",
                             "server", "--port", str(port), "--db", db, "--media", str(tmp / "media")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(url + "/api/v1/health", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    return proc, url, key


def floor(run_dir: Path, db: str, batch: int) -> tuple[float, int]:
    """Rows/s of one executemany per batch of the run's (run, step, key, value) points into a plain
    SQLite table (the store's own tables are chunked since migration 0006: the floor of a plain table)."""
    import sqlite3

    import wandblite

    rows = list(wandblite.replay(run_dir).scan_history())
    path = db[len("sqlite:///"):]
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("CREATE TABLE plain (run integer, step integer, key text, value real)")
    batches = [[(1, r["_step"], k, v) for r in rows[b:b + batch] for k, v in r.items() if k[0] != "_"]
               for b in range(0, len(rows), batch)]
    t0 = time.perf_counter()
    for pts in batches:
        c.executemany("INSERT INTO plain VALUES (?, ?, ?, ?)", pts)
        c.commit()
    dt = time.perf_counter() - t0
    c.close()
    return len(rows) / dt, len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-sync-"))
    os.environ["WANDBLITE_HOME"] = str(tmp / "client-home")
    try:
        t0 = time.perf_counter()
        run_dir = make_run(tmp / "runs", args.steps)
        print(f"wrote a {args.steps:,}-step run of 10 scalars in {time.perf_counter() - t0:.1f}s "
              f"({sum(p.stat().st_size for p in run_dir.glob('events-*.wlr')) / 1e6:.0f} MB)")

        floor_rps, n = floor(run_dir, f"sqlite:///{tmp / 'floor.db'}", args.batch_size)

        from wandblite.sync.client import Syncer
        from wandblite.sync.transport import HttpTransport

        proc, url, key = start_server(tmp, f"sqlite:///{tmp / 'server.db'}")
        try:
            transport = HttpTransport(url, key)
            t0 = time.perf_counter()
            res = Syncer(transport, batch_size=args.batch_size).sync_path(run_dir)
            dt = time.perf_counter() - t0
            assert res.ok and res.rows == n, res
            sync_rps = n / dt
            t0 = time.perf_counter()
            again = Syncer(HttpTransport(url, key), batch_size=args.batch_size).sync_path(run_dir)
            resync = time.perf_counter() - t0
            assert again.ok and again.rows == 0 and again.unchanged, again
            t0 = time.perf_counter()
            full = Syncer(HttpTransport(url, key), batch_size=args.batch_size, use_cache=False).sync_path(run_dir)
            resync_full = time.perf_counter() - t0
            assert full.ok and full.rows == 0, full
        finally:
            proc.terminate()
            proc.wait(10)
        print(f"(a) sync {n:>9,} rows  {sync_rps:9,.0f} rows/s  floor {floor_rps:9,.0f} rows/s  "
              f"ratio {sync_rps / floor_rps:5.2f}x  (target >= 0.5x; batch {args.batch_size}; {dt:.1f}s)")
        print(f"(b) re-sync of the unchanged run  {resync:6.3f}s  (target < 1s)   "
              f"without the sync-state cache (full re-read): {resync_full:6.3f}s")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
