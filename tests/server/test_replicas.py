"""Stateless replicas and concurrency: real ``wandblite server`` processes on one PostgreSQL database
and one S3 bucket (moto's server, the ``s3`` fixture) behind a round-robin forwarder (``proxy.py``,
where nginx would be).

* Replicas started together on an empty database make one admin key between them.
* A browser session opened through one replica works through the other; ended on one, it is gone
  on both; a key revoked through one is refused by both.
* A sync whose requests alternate between the replicas, one replica SIGKILLed and restarted at
  random moments (10 trials, each a run of its own with its own images and one image above the
  multipart threshold): the run on the server equals the local replay, a re-sync sends nothing,
  both replicas give the same answers for the runs and the dashboard's JSON endpoints, and serve
  the same bytes for every image, the bytes the bucket holds under the image's sha256.
* 20 concurrent ``wandblite sync`` clients into two replicas on PostgreSQL and the bucket (5 of
  them upload images, the same images at once), and 16 into one SQLite server on a media
  directory: every run exact, every image served alike by both replicas, no upstream answer >= 500,
  no deadlock (PostgreSQL's own count).
* Two stores on one database and one bucket storing the same blob at once: stored once, no error.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import (
    CLI,
    ROOT,
    S3Server,
    ServerProc,
    canon,
    clean_env,
    cli,
    fresh_postgres_database,
    local_rows,
    uniq,
)
from .proxy import RoundRobinProxy

#: A run with scalars, nested values, console lines, (every ``media_every`` steps) an image whose
#: pixels are the run's own (seeded by its id and step), and at step ``big_at`` (-1: never) a noise
#: image whose PNG is larger than the S3 multipart threshold of the tests (``S3_THRESHOLD``).
WRITER = r"""
import os, sys, zlib
import numpy as np
import wandblite
root, run_id, steps, media_every, big_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
seed = zlib.crc32(run_id.encode())
run = wandblite.init(project="orig", id=run_id, dir=root, config={"lr": 0.1, "kind": run_id},
                     settings=wandblite.Settings(disable_stats=True))
for i in range(steps):
    row = {"loss": 1.0 / (i + 1), "acc": i * 0.5, "deep": {"x": i, "inf": float("inf") if i % 7 == 0 else -1.5}}
    if media_every and i % media_every == 0:
        px = np.random.default_rng([seed, i]).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        row["img"] = wandblite.Image(px, caption=f"step {i}")
    if i == big_at:
        noise = np.random.default_rng([seed, i, 1]).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
        row["big"] = wandblite.Image(noise)
    run.log(row)
    if i % 500 == 0:
        print(f"at {i}", flush=True)
run.finish()
"""


def write_runs(root: Path, specs: list[tuple[str, int, int]], big_at: int = -1) -> dict[str, Path]:
    """Write runs ``(run_id, steps, media_every)`` in parallel writer processes, each in its own
    directory ``root/<run_id>/<run_id>`` (``big_at``: the step of the large image in every run, -1
    none); returns run id -> the directory to sync."""
    env = clean_env(WANDBLITE_CONSOLE="wrap")
    procs = []
    for run_id, steps, media_every in specs:
        parent = root / run_id
        parent.mkdir(parents=True)
        procs.append(subprocess.Popen([sys.executable, "-c", WRITER, str(parent), run_id, str(steps), str(media_every),
                                       str(big_at)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env))
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    return {run_id: root / run_id for run_id, _s, _m in specs}


def sync_proc(url: str, key: str, path: Path, project: str, home: Path, batch: int) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "sync", str(path), "--server", url, "--api-key", key, "--project", project,
                             "--batch-size", str(batch), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=clean_env(WANDBLITE_HOME=str(home)), cwd=str(ROOT))


def finished(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    (res,) = [json.loads(line) for line in out.splitlines()]
    return dict(res)


def resync_sends_nothing(url: str, key: str, path: Path, project: str, home: Path) -> None:
    """A sync from a fresh home (no sync-state cache: it reads the run and asks the server) sends nothing."""
    again = finished(sync_proc(url, key, path, project, home, 1000))
    assert (again["rows"], again["media"], again["meta_updated"]) == (0, 0, False), again


def assert_exact(srv: ServerProc, project: str, run_id: str, want: str) -> None:
    got = srv.history(project, run_id)
    assert [r["idx"] for r in got] == list(range(len(got))), "gaps or duplicates in the server's history"
    assert canon([r["row"] for r in got]) == want
    pos = srv.position(project, run_id)
    assert pos["rows"] == len(got) and not pos["pending"]


def answers(srv: ServerProc, project: str, run_id: str) -> dict[str, Any]:
    """What the dashboard reads for a project and a run, as JSON, through one replica."""
    run = f"/api/v1/projects/{project}/runs/{run_id}"
    paths = [f"/api/v1/projects/{project}/runs", run, run + "/keys", run + "/series?keys=loss,acc&samples=200",
             run + "/series?keys=loss&x_axis=acc&samples=50", run + "/history?start=0&limit=10000",
             run + "/console?start=0&limit=10000", run + "/system?start=0&limit=1000", run + "/media?key=img",
             run + "/files", run + "/alerts", run + "/artifacts", "/api/v1/projects", run + "/position"]
    out = {}
    for p in paths:
        r = srv.get(p)
        assert r.status_code == 200, (p, r.text)
        out[p] = r.json()
    return out


def start_together(servers: list[ServerProc]) -> None:
    errors: list[BaseException] = []

    def start(s: ServerProc) -> None:
        try:
            s.start(timeout=60)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


class Replicas:
    """Two replicas on the database ``db`` with their blobs in one new bucket of ``s3`` (``s3://<bucket>/blobs``)."""

    def __init__(self, db: str, root: Path, s3: S3Server) -> None:
        self.db, self.s3 = db, s3
        self.bucket = s3.bucket()
        self.servers = [ServerProc(db, f"s3://{self.bucket}/{BLOB_PREFIX}", root / f"home{i}", env=s3.env,
                                   extra_args=s3.server_args()) for i in range(2)]
        start_together(self.servers)
        admin = [s.admin_key for s in self.servers if s.admin_key]
        self.admin_keys_shown = len(admin)
        self.key = admin[0] if admin else self.servers[0].key
        for s in self.servers:
            s.key = self.key

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def stored_bytes(self, sha: str) -> bytes:
        """The blob's bytes as the bucket holds them (the object under the blob layout's key)."""
        obj = self.s3.client().get_object(Bucket=self.bucket, Key=f"{BLOB_PREFIX}/{sha[:2]}/{sha[2:4]}/{sha}")
        return bytes(obj["Body"].read())

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


#: Where the replicas keep their blobs in the bucket.
BLOB_PREFIX = "blobs"


@pytest.fixture(scope="module")
def replicas(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    with fresh_postgres_database("wl_replicas") as db:
        reps = Replicas(db, tmp_path_factory.mktemp("replicas"), s3)
        try:
            yield reps
        finally:
            reps.stop()


def media_shas(srv: ServerProc, project: str, run_id: str, key: str) -> list[str]:
    """The sha256s of the images the dashboard lists for ``key`` of a run, through one replica."""
    r = srv.get(f"/api/v1/projects/{project}/runs/{run_id}/media?key={key}")
    assert r.status_code == 200, r.text
    return sorted(set(re.findall(r"[0-9a-f]{64}", json.dumps(r.json()))))


def assert_same_media(reps: Replicas, project: str, run_id: str, keys: dict[str, int]) -> None:
    """Both replicas list ``keys[key]`` images for each key and serve every one as the bytes whose
    sha256 names it, which are the bytes the blob store (the bucket) holds."""
    for key, count in keys.items():
        a, b = (media_shas(srv, project, run_id, key) for srv in reps.servers)
        assert a == b and len(a) == count, (key, a, b)
        for sha in a:
            got = [srv.get(f"/api/v1/media/{sha}") for srv in reps.servers]
            assert [g.status_code for g in got] == [200, 200], [g.text for g in got]
            assert got[0].content == got[1].content == reps.stored_bytes(sha)
            assert hashlib.sha256(got[0].content).hexdigest() == sha


def test_replicas_started_together_on_an_empty_database_make_one_admin_key(replicas: Replicas) -> None:
    assert replicas.admin_keys_shown == 1
    from wandblite.server.store import Store

    store = Store(replicas.db, migrate=False)
    try:
        names = [k["name"] for k in store.list_keys()]
    finally:
        store.close()
    assert names.count("admin") == 1, names


def test_a_session_opened_on_one_replica_works_on_the_other(replicas: Replicas) -> None:
    a, b = replicas.servers
    r = requests.post(a.url + "/api/v1/session", json={"api_key": replicas.key}, timeout=30)
    assert r.status_code == 200, r.text
    cookie = {"wandblite_session": r.cookies["wandblite_session"]}
    for srv in (a, b):
        got = requests.get(srv.url + "/api/v1/projects", cookies=cookie, timeout=30)
        assert got.status_code == 200, got.text
        assert requests.get(srv.url + "/api/v1/session", cookies=cookie, timeout=30).json()["authenticated"]
    # Ended through b: gone on a too.
    assert requests.delete(b.url + "/api/v1/session", cookies=cookie, timeout=30).status_code == 200
    for srv in (a, b):
        assert requests.get(srv.url + "/api/v1/projects", cookies=cookie, timeout=30).status_code == 401
    # A key made and revoked through the command line is refused by both at once.
    key = a.create_key("short-lived")
    for srv in (a, b):
        assert srv.get("/api/v1/projects", key=key).status_code == 200
    r2 = requests.post(b.url + "/api/v1/session", json={"api_key": key}, timeout=30)
    cookie2 = {"wandblite_session": r2.cookies["wandblite_session"]}
    assert cli("server", "keys", "revoke", key[:10], "--db", replicas.db, home=a.home).returncode == 0
    for srv in (a, b):
        assert srv.get("/api/v1/projects", key=key).status_code == 401
        assert requests.get(srv.url + "/api/v1/projects", cookies=cookie2, timeout=30).status_code == 401


STEPS = 2000
#: Every ``MEDIA_EVERY`` steps an image; at step ``BIG_AT`` one above the multipart threshold.
MEDIA_EVERY, BIG_AT = 400, 1000
TRIALS = 10


def test_batches_alternating_between_replicas_one_killed_at_random_are_exact(replicas: Replicas,
                                                                             tmp_path: Path) -> None:
    # A run of its own per trial: its images are new to the bucket, so every trial uploads through
    # replicas being killed (a shared run would upload its images in the first sync only).
    ids = ["cal", *(f"k{t}" for t in range(TRIALS))]
    runs = write_runs(tmp_path / "runs", [(i, STEPS, MEDIA_EVERY) for i in ids], big_at=BIG_AT)
    rng = random.Random(16)
    with RoundRobinProxy(replicas.urls) as proxy:
        # Calibrate: how long one whole sync through the forwarder takes, so kills spread over it.
        t0 = time.monotonic()
        first = finished(sync_proc(proxy.url, replicas.key, runs["cal"], uniq("cal"), tmp_path / "h-cal", 100))
        full = time.monotonic() - t0
        assert first["media"] == STEPS // MEDIA_EVERY + 1, first
        midway = 0
        for trial in range(TRIALS):
            project, run_id = f"rep{trial}", f"k{trial}"
            want = canon(local_rows(runs[run_id] / run_id))
            proc = sync_proc(proxy.url, replicas.key, runs[run_id], project, tmp_path / f"h{trial}", 100)
            for _kill in range(1 + trial % 2):  # odd trials lose a replica twice
                time.sleep(rng.uniform(0.05, full * 0.8))
                victim, other = rng.sample(replicas.servers, 2)
                victim.kill()
                rows = requests.get(other.url + f"/api/v1/projects/{project}/runs/{run_id}/position",
                                    headers=other.h(), timeout=30).json()["rows"]
                midway += 0 < rows < STEPS
                time.sleep(rng.uniform(0.0, 0.5))
                victim.start()
            finished(proc)
            for srv in replicas.servers:
                assert_exact(srv, project, run_id, want)
            resync_sends_nothing(proxy.url, replicas.key, runs[run_id], project, tmp_path / f"again{trial}")
            a, b = (answers(s, project, run_id) for s in replicas.servers)
            assert a == b
            # The images, the large one too, are listed and served alike by both replicas, from the bucket.
            assert_same_media(replicas, project, run_id, {"img": STEPS // MEDIA_EVERY, "big": 1})
        # Alternation really happened, and the upstreams never answered >= 500 (a killed replica's
        # requests are the forwarder's own 502s, which the client retried).
        batches = [h for h in proxy.hops if h.path.endswith("/batch") and h.from_upstream]
        assert {h.upstream for h in batches} == {0, 1}
        assert {h.upstream for h in proxy.hops if h.method == "PUT" and h.from_upstream} == {0, 1}
        assert proxy.upstream_errors() == []
    # The kills must really have landed inside syncs, or this test proves nothing.
    assert midway >= 3, f"only {midway} kills interrupted a sync (a whole sync takes {full:.2f}s)"
    # Every object in the bucket is a whole blob under its own sha256 (a killed upload left none half-made).
    keys = replicas.s3.keys(replicas.bucket, BLOB_PREFIX + "/")
    assert len(keys) == (TRIALS + 1) * (STEPS // MEDIA_EVERY + 1)
    for key in keys:
        sha = key.rsplit("/", 1)[-1]
        assert hashlib.sha256(replicas.stored_bytes(sha)).hexdigest() == sha, key


def _pg_deadlocks(db: str) -> int:
    import psycopg

    name = db.rsplit("/", 1)[-1]
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()[0])


#: In the concurrency tests, the runs with media log an image every ``CC_MEDIA_EVERY`` steps.
CC_MEDIA_EVERY = 250


def many_clients(urls: list[str], key: str, tmp: Path, clients: int, runs_per_project: int, steps: int,
                 batch: int, media_runs: int) -> tuple[RoundRobinProxy, float, list[tuple[str, str]]]:
    """``clients`` concurrent syncs (``runs_per_project`` distinct runs, each synced into
    ``clients / runs_per_project`` projects; ``media_runs`` of them log images) through a forwarder
    over ``urls``; checks every run exactly; returns the forwarder (its hops), the wall time and
    the (run id, project) of every client."""
    specs = [(f"r{i}", steps, CC_MEDIA_EVERY if i < media_runs else 0) for i in range(runs_per_project)]
    runs = write_runs(tmp / "runs", specs)
    want = {run_id: canon(local_rows(path / run_id)) for run_id, path in runs.items()}
    projects = [uniq("cc") for _ in range(-(-clients // runs_per_project))]
    with RoundRobinProxy(urls) as proxy:
        t0 = time.monotonic()
        procs = []
        for i in range(clients):
            run_id, project = f"r{i % runs_per_project}", projects[i // runs_per_project]
            procs.append((run_id, project, sync_proc(proxy.url, key, runs[run_id], project, tmp / f"h{i}", batch)))
        for _run_id, _project, proc in procs:
            res = finished(proc, timeout=600)
            assert res["rows"] == steps, res
        wall = time.monotonic() - t0
    check = ServerProc(None, None, tmp)
    for i, (run_id, project, _proc) in enumerate(procs):
        check.url, check.key = urls[i % len(urls)], key
        assert_exact(check, project, run_id, want[run_id])
    return proxy, wall, [(run_id, project) for run_id, project, _proc in procs]


def test_twenty_clients_into_two_replicas_on_postgres_are_exact(replicas: Replicas, tmp_path: Path) -> None:
    before = _pg_deadlocks(replicas.db)
    proxy, _wall, jobs = many_clients(replicas.urls, replicas.key, tmp_path, clients=20, runs_per_project=4,
                                      steps=STEPS, batch=200, media_runs=1)
    assert proxy.upstream_errors() == []
    assert not [h for h in proxy.hops if not h.from_upstream]  # nobody was killed: every request got through
    assert _pg_deadlocks(replicas.db) == before
    # Five clients uploaded the same images at once through both replicas: every copy of the run
    # lists them, both replicas serve them, and the bucket holds each once.
    media_jobs = [(run_id, project) for run_id, project in jobs if run_id == "r0"]
    assert len(media_jobs) == 5
    for run_id, project in media_jobs:
        assert_same_media(replicas, project, run_id, {"img": STEPS // CC_MEDIA_EVERY})
    assert {h.upstream for h in proxy.hops if h.method == "PUT"} == {0, 1}


def test_sixteen_clients_into_one_sqlite_server_are_exact(tmp_path: Path) -> None:
    srv = ServerProc(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "media", tmp_path / "home").start()
    try:
        proxy, _wall, _jobs = many_clients([srv.url], srv.key, tmp_path, clients=16, runs_per_project=4,
                                           steps=STEPS, batch=200, media_runs=1)
        assert proxy.upstream_errors() == []
        assert srv.alive()
    finally:
        srv.stop()


# --------------------------------------------------------------------------- races, one at a time
# Two ``Store`` objects are two processes' worth of engines and connections; threads released by a
# barrier make the race windows (look, then insert) meet far more often than process start-up does.


def _race(n: int, fn: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def go(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_stores_racing_for_the_first_admin_key_make_exactly_one() -> None:
    from wandblite.server.store import Store

    for _round in range(3):
        with fresh_postgres_database("wl_admin_race") as db:
            stores = [Store(db), Store(db, migrate=False)]
            try:
                _race(12, lambda i, stores=stores: stores[i % 2].list_keys())  # open the pools' connections
                got = _race(12, lambda i, stores=stores: stores[i % 2].ensure_admin_key())
                assert not [g for g in got if isinstance(g, BaseException)], got
                assert len([g for g in got if g]) == 1, got
                assert [k["name"] for k in stores[0].list_keys()] == ["admin"]
            finally:
                for s in stores:
                    s.close()


@pytest.mark.parametrize("where", ["directory", "bucket"])
def test_one_blob_stored_through_two_stores_at_once_is_stored_once_without_error(
        where: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    from wandblite.server.store import Store

    def open_store(db: str, migrate: bool) -> Store:
        if where == "directory":
            return Store(db, media_dir=tmp_path / "media", migrate=migrate)
        from wandblite.server.blobstore_s3 import S3BlobStore

        return Store(db, migrate=migrate, blobs=S3BlobStore(f"s3://{bucket}/{BLOB_PREFIX}", endpoint_url=s3.endpoint))

    if where == "bucket":
        s3: S3Server = request.getfixturevalue("s3")
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        bucket = s3.bucket()
    with fresh_postgres_database("wl_blob_race") as db:
        stores = [open_store(db, True), open_store(db, False)]
        try:
            for n in range(5):
                data = f"the same bytes {n}".encode() * 100
                sha = hashlib.sha256(data).hexdigest()
                _race(12, lambda i, sha=sha: stores[i % 2].missing_media([sha]))  # open the pools' connections
                got = _race(12, lambda i, data=data, sha=sha: stores[i % 2].put_media(sha, [data], "txt", 1 << 20))
                assert got == [len(data)] * 12, got
                assert stores[1].missing_media([sha]) == []
                for store in stores:
                    blob = store.media_blob(sha)
                    assert blob.read_bytes() == data and blob.ext == "txt" and blob.size == len(data)
            if where == "bucket":
                assert len(s3.keys(bucket)) == 5 and s3.uploads(bucket) == []
        finally:
            for s in stores:
                s.close()


def test_a_postgres_deadlock_is_run_again_inside_the_server_not_answered(replicas: Replicas) -> None:
    """Two transactions lock two rows in opposite orders: PostgreSQL kills one as a deadlock victim;
    ``db.retrying`` runs it again and both commit (the server's batch writes go through it)."""
    import sqlalchemy as sa

    from wandblite.server import db as dbmod

    eng = sa.create_engine(dbmod.normalize_url(replicas.db))
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("CREATE TABLE deadlock_pair (id INT PRIMARY KEY, n INT NOT NULL)"))
            conn.execute(sa.text("INSERT INTO deadlock_pair VALUES (1, 0), (2, 0)"))
        attempts = [0, 0]
        both_hold = threading.Barrier(2)

        def txn(i: int) -> str:
            def once() -> str:
                attempts[i] += 1
                with eng.begin() as conn:
                    first, second = (1, 2) if i == 0 else (2, 1)
                    conn.execute(sa.text("UPDATE deadlock_pair SET n = n + 1 WHERE id = :i"), {"i": first})
                    if attempts[i] == 1:
                        both_hold.wait(timeout=30)  # each holds its first row: now cross
                    conn.execute(sa.text("UPDATE deadlock_pair SET n = n + 1 WHERE id = :i"), {"i": second})
                return "done"
            return dbmod.retrying(once, f"transaction {i}")

        got = _race(2, txn)
        assert got == ["done", "done"], got
        assert sorted(attempts) == [1, 2], attempts  # exactly one was the victim, and it was run again
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT sum(n) FROM deadlock_pair")).scalar_one() == 4
    finally:
        eng.dispose()
