"""Concurrency benchmark: many ``wandblite sync`` clients at once into two replicas on PostgreSQL
(and into one SQLite server), through a round-robin forwarder standing where nginx would.

Run: ``python tests/bench/bench_concurrency.py [--clients 100] [--steps 20000] [--distinct 10]
[--media-runs 1] [--batch-size 1000] [--sqlite-clients 16] [--media disk|s3] [--s3-endpoint URL]``.
The full size (the acceptance size of the server-at-scale work) is the
default: 100 clients of 20k steps, 10 of them with media (``--distinct`` runs are written, each
synced by ``clients / distinct`` clients into their own projects; the first ``--media-runs`` of them
log an image every 100 steps, so ``clients / distinct * media_runs`` clients upload media).
``--media s3`` keeps the blobs of the replicas (and of the SQLite server) in a bucket of an
S3-compatible server: the one at ``--s3-endpoint`` (credentials from the AWS variables), else moto's
standalone server started here as the tests' ``s3`` fixture does. ``--media disk`` (the default): a
media directory the replicas share.
Not a test: nothing here asserts a time. Printed:

  (a) aggregate rows/s of all clients at once (rows stored / wall time from the first start to
      the last exit), against the floor measured in the same run: ONE client alone syncing the
      same run into the same replicas (the ratio is the scaling of concurrent ingest);
  (b) the p50 / p99 / max latency of a batch request (``POST .../batch``, as the forwarder timed
      its upstream call), and how many answers of the upstreams were >= 500 (must be 0);
  (c) PostgreSQL's count of deadlocks detected in the database during the run (must be 0);
  (d) every run checked: each client's run holds exactly ``steps`` final rows, and one client's
      copy of each distinct run equals the local replay row for row; every image of one copy of each
      run with media is served by every replica as the same bytes, whose sha256 is its name;
  (e) the same with ``--sqlite-clients`` clients into one SQLite server (0 skips it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.server.conftest import (  # noqa: E402
    CLI,
    S3Server,
    canon,
    clean_env,
    free_port,
    fresh_postgres_database,
    local_rows,
    moto_server,
)
from tests.server.proxy import RoundRobinProxy  # noqa: E402
from tests.server.test_replicas import write_runs  # noqa: E402


class Media:
    """Where the servers keep their blobs: new media directories under ``tmp``, or new buckets of ``s3``."""

    def __init__(self, tmp: Path, s3: S3Server | None) -> None:
        self.tmp, self.s3 = tmp, s3

    def location(self, name: str) -> str:
        """A new blob store for the servers of one phase: ``s3://<new bucket>/blobs`` or a directory."""
        if self.s3 is not None:
            return f"s3://{self.s3.bucket()}/blobs"
        return str(self.tmp / f"media-{name}")

    def server_args(self) -> list[str]:
        return self.s3.server_args() if self.s3 is not None else []

    def env(self) -> dict[str, str]:
        return dict(self.s3.env) if self.s3 is not None else {}


@contextlib.contextmanager
def s3_server(kind: str, endpoint: str | None, tmp: Path) -> Iterator[S3Server | None]:
    """None for ``disk``; for ``s3`` the endpoint given, else moto's server for the block."""
    if kind != "s3":
        yield None
    elif endpoint:
        yield S3Server(endpoint)
    else:
        with moto_server(tmp) as server:
            yield server


def start_server(db: str, media: Media, location: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import requests

    port = free_port()
    proc = subprocess.Popen([*CLI, "server", "--host", "127.0.0.1", "--port", str(port), "--db", db, "--media",
                             location, *media.server_args()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env(WANDBLITE_HOME=str(home), **media.env()), cwd=str(ROOT))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def make_key(db: str) -> str:
    from wandblite.server.store import Store

    store = Store(db)
    try:
        return store.create_key("bench")[1]
    finally:
        store.close()


def run_clients(url: str, key: str, tmp: Path, jobs: list[tuple[Path, str]], batch: int) -> float:
    """Sync each (run directory, project) in its own process at once; the wall time of all."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*CLI, "sync", str(path), "--server", url, "--api-key", key, "--project", project,
                               "--batch-size", str(batch), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=clean_env(WANDBLITE_HOME=str(tmp / f"client{i}")), cwd=str(ROOT))
             for i, (path, project) in enumerate(jobs)]
    for p in procs:
        _out, err = p.communicate(timeout=7200)
        if p.returncode != 0:
            raise SystemExit(f"a sync client failed: {err.strip()[-2000:]}")
    return time.perf_counter() - t0


def same_media(upstreams: list[str], key: str, project: str, run_id: str) -> int:
    """Every image of the run, listed alike by every upstream and served by each as the same bytes,
    whose sha256 is the image's name; returns how many images."""
    import requests

    h = {"Authorization": f"Bearer {key}"}
    listed = []
    for url in upstreams:
        r = requests.get(f"{url}/api/v1/projects/{project}/runs/{run_id}/media?key=img", headers=h, timeout=120)
        assert r.status_code == 200, r.text
        listed.append(sorted(set(re.findall(r"[0-9a-f]{64}", json.dumps(r.json())))))
    assert all(got == listed[0] for got in listed), (project, run_id)
    for sha in listed[0]:
        bodies = []
        for url in upstreams:
            r = requests.get(f"{url}/api/v1/media/{sha}", headers=h, timeout=120)
            assert r.status_code == 200, (url, sha, r.status_code)
            bodies.append(r.content)
        assert all(b == bodies[0] for b in bodies) and hashlib.sha256(bodies[0]).hexdigest() == sha, sha
    return len(listed[0])


def check(url: str, key: str, jobs: list[tuple[str, str]], steps: int, want: dict[str, str]) -> None:
    import requests

    h = {"Authorization": f"Bearer {key}"}
    compared: set[str] = set()
    for run_id, project in jobs:
        base = f"{url}/api/v1/projects/{project}/runs/{run_id}"
        pos = requests.get(base + "/position", headers=h, timeout=60).json()
        assert pos["rows"] == steps and not pos["pending"], (project, run_id, pos)
        if run_id in compared:
            continue
        rows: list[Any] = []
        start: int | None = 0
        while start is not None:
            page = requests.get(f"{base}/history?start={start}&limit=10000", headers=h, timeout=120).json()
            rows.extend(page["rows"])
            start = page["next"]
        assert [r["idx"] for r in rows] == list(range(steps)), (project, run_id)
        assert canon([r["row"] for r in rows]) == want[run_id], (project, run_id)
        compared.add(run_id)


def pg_deadlocks(db: str) -> int:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (db.rsplit("/", 1)[-1],))
        return int(row.fetchone()[0])  # type: ignore[index]


def latencies(proxy: RoundRobinProxy) -> str:
    lat = sorted(h.seconds for h in proxy.hops if h.path.endswith("/batch") and h.from_upstream)
    if not lat:
        return "no batches"
    p = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    return (f"{len(lat)} batches: p50 {p[49] * 1000:.0f} ms, p99 {p[98] * 1000:.0f} ms, "
            f"max {lat[-1] * 1000:.0f} ms")


def phase(name: str, upstreams: list[str], key: str, tmp: Path, runs: dict[str, Path], clients: int,
          distinct: int, steps: int, batch: int, want: dict[str, str], media_runs: int) -> dict[str, Any]:
    ids = sorted(runs, key=lambda r: int(r[1:]))
    solo_project = f"{name}solo"
    with RoundRobinProxy(upstreams) as proxy:
        solo = run_clients(proxy.url, key, tmp / f"{name}-solo", [(runs[ids[-1]], solo_project)], batch)
    floor = steps / solo
    jobs = [(ids[i % distinct], f"{name}p{i // distinct}") for i in range(clients)]
    with RoundRobinProxy(upstreams) as proxy:
        wall = run_clients(proxy.url, key, tmp / name, [(runs[r], p) for r, p in jobs], batch)
        errors = proxy.upstream_errors()
        lat = latencies(proxy)
    check(upstreams[0], key, [*jobs, (ids[-1], solo_project)], steps, want)
    media_ids = set(ids[:media_runs])
    images = sum(same_media(upstreams, key, p, r) for r, p in dict((r, p) for r, p in jobs if r in media_ids).items())
    agg = clients * steps / wall
    print(f"[{name}] one client alone: {floor:,.0f} rows/s (floor)")
    print(f"[{name}] {clients} clients x {steps:,} steps at once: {wall:.1f} s, {agg:,.0f} rows/s aggregate "
          f"= {agg / floor:.2f}x the floor")
    print(f"[{name}] {lat}; upstream answers >= 500: {len(errors)}")
    print(f"[{name}] every run exact: {clients} positions checked, {distinct} histories compared row for row; "
          f"{images} images served alike by {len(upstreams)} server(s)")
    return {"wall": wall, "rows_per_s": agg, "floor": floor, "errors": len(errors), "latency": lat, "images": images}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--distinct", type=int, default=10, help="distinct runs written (each synced by several clients)")
    ap.add_argument("--media-runs", type=int, default=1, help="how many of the distinct runs log images")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--sqlite-clients", type=int, default=16)
    ap.add_argument("--media", choices=("disk", "s3"), default="disk",
                    help="where the servers keep blobs: a shared directory, or a bucket (s3)")
    ap.add_argument("--s3-endpoint", default=None,
                    help="with --media s3: an S3-compatible endpoint to use (else moto's server is started)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-conc-"))
    t0 = time.perf_counter()
    specs = [(f"r{i}", args.steps, 100 if i < args.media_runs else 0) for i in range(args.distinct)]
    runs = write_runs(tmp / "runs", specs)
    want = {run_id: canon(local_rows(path / run_id)) for run_id, path in runs.items()}
    media_clients = sum(1 for i in range(args.clients) if i % args.distinct < args.media_runs)
    print(f"wrote {args.distinct} runs of {args.steps:,} steps in {time.perf_counter() - t0:.1f} s; "
          f"{args.clients} clients, {media_clients} of them with media, batches of {args.batch_size}; "
          f"blobs on {args.media}")
    results: dict[str, Any] = {"media": args.media}
    with s3_server(args.media, args.s3_endpoint, tmp) as s3, fresh_postgres_database("wl_bench_conc") as db:
        media = Media(tmp, s3)
        key = make_key(db)
        location = media.location("pg")  # ONE blob store for both replicas
        servers = [start_server(db, media, location, tmp / f"home{i}") for i in range(2)]
        try:
            before = pg_deadlocks(db)
            results["postgres"] = phase("pg", [u for _p, u in servers], key, tmp, runs, args.clients, args.distinct,
                                        args.steps, args.batch_size, want, args.media_runs)
            results["postgres"]["deadlocks"] = pg_deadlocks(db) - before
            print(f"[pg] deadlocks PostgreSQL detected during the run: {results['postgres']['deadlocks']}")
        finally:
            for p, _u in servers:
                p.terminate()
                p.wait(30)
        if args.sqlite_clients:
            sqlite_db = f"sqlite:///{tmp / 'store.db'}"
            key = make_key(sqlite_db)
            proc, url = start_server(sqlite_db, media, media.location("sqlite"), tmp / "home-sqlite")
            try:
                results["sqlite"] = phase("sqlite", [url], key, tmp, runs, args.sqlite_clients,
                                          min(args.distinct, args.sqlite_clients), args.steps, args.batch_size, want,
                                          args.media_runs)
            finally:
                proc.terminate()
                proc.wait(30)
    print(json.dumps(results))
    if os.environ.get("WANDBLITE_BENCH_KEEP") != "1":
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
