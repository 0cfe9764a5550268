"""Storage faults meet a clear answer, and the next sync after the fault is cleared is exact.

Real faults on a real server process:

* the media directory turns read-only (``chattr +i``, which binds root too): uploads are a 503
  ``storage_read_only`` saying what to do, reads of stored blobs go on, nothing of the run is stored;
* the media store is full (the server process runs under ``RLIMIT_FSIZE``: a file may not grow past
  the limit, as on a full disk): a 507 ``insufficient_storage``, no debris left behind;
* PostgreSQL terminates the server's connections (``pg_terminate_backend`` from another connection),
  one of them while a batch waits inside its transaction: the request is answered (stored after the
  store's retry, or a 503 ``busy``), never a 500.

After each fault is cleared, a sync of the same run directory stores it exactly.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from wandblite.server import blobs
from wandblite.server.errors import ApiError
from wandblite.sync.client import Syncer
from wandblite.sync.transport import HttpTransport

from . import conftest
from .conftest import ServerProc, assert_same_history, clean_env, fresh_postgres_database, uniq

WRITER = r"""
import os, sys, numpy as np, wandblite
project, run_id, root, big = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = np.random.default_rng(abs(hash(run_id)) % 2**32)
run = wandblite.init(project=project, id=run_id, dir=root)
for i in range(20):
    run.log({"loss": 1.0 / (i + 1)})
run.log({"img": wandblite.Image(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))})
if big:
    os.makedirs("data", exist_ok=True)
    with open("data/big.bin", "wb") as f:
        f.write(rng.bytes(big))
    run.save("data/big.bin", policy="now")
run.finish()
"""


def _write(tmp: Path, project: str, run_id: str, big: int = 0) -> Path:
    work = tmp / f"work-{run_id}"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", WRITER, project, run_id, str(tmp / "runs"), str(big)],
                          capture_output=True, text=True, timeout=120, cwd=str(work),
                          env=clean_env(WANDBLITE_CONSOLE="off", WANDBLITE_DISABLE_STATS="1"))
    assert proc.returncode == 0, proc.stderr
    return tmp / "runs" / run_id


def _sync(srv: ServerProc, run_dir: Path, retries: int = 1) -> Any:
    return Syncer(HttpTransport(srv.url, srv.key, retries=retries), use_cache=False).sync_path(run_dir)


def _error(r: requests.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and set(err) >= {"code", "message"}, err
    return str(err["message"])


def _immutable(path: Path, on: bool) -> None:
    """``chattr -R +i``/``-i``: no entry may be created, renamed or removed below ``path``, root or not."""
    proc = subprocess.run(["chattr", "-R", "+i" if on else "-i", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, f"chattr failed on {path} (the file system must support it): {proc.stderr}"


def test_a_read_only_media_directory_is_a_503_saying_what_to_do_and_the_next_sync_is_exact(
        fresh_server: ServerProc, tmp_path: Path) -> None:
    srv = fresh_server.start()
    project = uniq()
    before = _write(tmp_path, project, "before")
    assert _sync(srv, before).ok
    (img,) = requests.get(f"{srv.url}/api/v1/projects/{project}/runs/before/media?key=img", headers=srv.h(),
                          timeout=10).json()["steps"]
    stored_sha = img["value"]["sha256"]
    run_dir = _write(tmp_path, project, "during")
    media = Path(str(srv.media))
    _immutable(media, True)
    try:
        data = b"bytes for a read-only store"
        sha = hashlib.sha256(data).hexdigest()
        r = requests.put(f"{srv.url}/api/v1/media/{sha}?ext=bin", data=data, headers=srv.h(), timeout=10)
        message = _error(r, 503, "storage_read_only")
        assert str(media) in message and "writable" in message and "nothing was stored" in message
        res = _sync(srv, run_dir)
        assert not res.ok and "cannot be written" in str(res.error) and "writable" in str(res.error), res
        assert srv.get(f"/api/v1/projects/{project}/runs/during").status_code == 404  # nothing of it stored
        assert srv.get(f"/api/v1/media/{stored_sha}").status_code == 200  # reads go on
    finally:
        _immutable(media, False)
    res = _sync(srv, run_dir)
    assert res.ok and res.media == 1, res
    assert_same_history(srv, project, "during", run_dir)
    assert srv.alive()


def test_a_full_media_store_is_a_507_and_the_next_sync_after_space_is_made_is_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 2 << 20
    srv = ServerProc(f"sqlite:///{tmp_path / 'full.db'}", tmp_path / "media", tmp_path / "home")
    # The server process may not grow a file past `limit` bytes (EFBIG, as ENOSPC on a full disk;
    # Python ignores SIGXFSZ). The store's database stays far below it.
    limited = [sys.executable, "-c", "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, "
               f"({limit}, {limit})); from wandblite_cli.main import main; main(sys.argv[1:])"]
    with monkeypatch.context() as m:
        m.setattr(conftest, "CLI", limited)
        srv.start()
    try:
        project = uniq()
        run_dir = _write(tmp_path, project, "big", big=3 << 20)
        blob = (run_dir.parent.parent / "work-big" / "data" / "big.bin").read_bytes()
        sha = hashlib.sha256(blob).hexdigest()
        r = requests.put(f"{srv.url}/api/v1/media/{sha}?ext=bin", data=blob, headers=srv.h(), timeout=30)
        message = _error(r, 507, "insufficient_storage")
        assert "full" in message and "free space" in message and "nothing was stored" in message
        assert not list((tmp_path / "media" / "tmp").iterdir())  # the unfinished upload was removed
        res = _sync(srv, run_dir)
        assert not res.ok and "full" in str(res.error), res
        assert srv.get(f"/api/v1/projects/{project}/runs/big").status_code == 404
        srv.stop()
        srv.proc = None
        srv.start()  # space made: the same store, without the limit
        res = _sync(srv, run_dir)
        assert res.ok and res.files == 1, res
        assert_same_history(srv, project, "big", run_dir)
        got = srv.get(f"/api/v1/projects/{project}/runs/big/files/data/big.bin")
        assert got.status_code == 200 and got.content == blob
    finally:
        srv.stop()


def _backends_waiting_on_a_lock(admin: Any, db: str) -> list[int]:
    rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
                         "AND pid <> pg_backend_pid()", (db,)).fetchall()
    return [int(r[0]) for r in rows]


def test_postgres_connections_terminated_mid_request_are_answered_and_the_next_sync_is_exact(
        tmp_path: Path) -> None:
    import psycopg

    with fresh_postgres_database("wl_fault") as url:
        db = url.rsplit("/", 1)[-1]
        srv = ServerProc(url, tmp_path / "media", tmp_path / "home").start()
        try:
            project = uniq()
            first = _write(tmp_path, project, "first")
            assert _sync(srv, first).ok
            admin = psycopg.connect(url, autocommit=True)
            locker = psycopg.connect(url)
            try:
                # 1. Between requests: every pooled connection of the server is terminated.
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                              "AND pid <> pg_backend_pid() AND pid <> %s", (db, locker.info.backend_pid))
                assert srv.get(f"/api/v1/projects/{project}/runs/first").status_code == 200
                # 2. Mid-request: a batch waits for a lock inside its transaction; its connection is terminated.
                locker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
                answer: dict[str, requests.Response] = {}
                body = {"run": {"state": "running"}, "rows": [{"idx": 0, "row": {"_step": 0, "x": 1.0}}]}
                t = threading.Thread(target=lambda: answer.setdefault("r", srv.post(
                    f"/api/v1/projects/{project}/runs/mid/batch", body)))
                t.start()
                deadline = time.monotonic() + 30
                while not (pids := _backends_waiting_on_a_lock(admin, db)):
                    assert time.monotonic() < deadline, "the batch never waited for the lock"
                    time.sleep(0.05)
                for pid in pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                time.sleep(0.2)
                locker.rollback()  # the lock is released: a retry may go through
                t.join(60)
                r = answer["r"]
                assert r.status_code in (200, 503), r.text  # stored after the store's retry, or retry later
                if r.status_code == 503:
                    assert _error(r, 503, "busy") and r.headers.get("Retry-After")
                else:
                    assert r.json()["rows"] == 1
            finally:
                locker.close()
                admin.close()
            # 3. The fault cleared: the next sync is exact, the earlier run intact.
            later = _write(tmp_path, project, "later")
            assert _sync(srv, later, retries=3).ok
            assert_same_history(srv, project, "later", later)
            assert_same_history(srv, project, "first", first)
            assert srv.alive()
        finally:
            srv.stop()
            if srv.proc is not None and srv.proc.poll() is None:
                os.kill(srv.proc.pid, 9)


def test_a_database_that_accepts_no_connections_is_a_503_and_the_next_sync_is_exact(tmp_path: Path) -> None:
    import psycopg

    from .conftest import PG_ADMIN

    with fresh_postgres_database("wl_down") as url:
        db = url.rsplit("/", 1)[-1]
        srv = ServerProc(url, tmp_path / "media", tmp_path / "home").start()
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
        try:
            project = uniq()
            run_dir = _write(tmp_path, project, "down")
            # The database goes away for this server: no new connection, the open ones ended.
            admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))
            r = srv.get(f"/api/v1/projects/{project}/runs/down/position")
            message = _error(r, 503, "database_unavailable")
            assert "database" in message and "running" in message and r.headers.get("Retry-After")
            res = _sync(srv, run_dir)
            assert not res.ok and "503" in str(res.error), res
            admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
            res = _sync(srv, run_dir, retries=3)
            assert res.ok, res
            assert_same_history(srv, project, "down", run_dir)
        finally:
            admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
            admin.close()
            srv.stop()


def test_a_disk_that_fills_mid_upload_is_a_507_and_leaves_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC itself (the RLIMIT test above meets EFBIG): the second write of an upload finds the disk full."""
    store = blobs.DiskBlobStore(tmp_path / "media")
    data = os.urandom(3 << 20)
    sha = hashlib.sha256(data).hexdigest()
    real_write = os.write
    calls = [0]

    def write(fd: int, b: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "media")):
            calls[0] += 1
            if calls[0] > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, b)

    monkeypatch.setattr(blobs.os, "write", write)
    with pytest.raises(ApiError) as err:
        store.put(sha, (data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)), 1 << 30)
    assert err.value.status == 507 and err.value.code == "insufficient_storage", err.value.body()
    assert "full" in err.value.message and "with 2097152 bytes of the blob received" in err.value.message
    assert not store.exists(sha) and not list((tmp_path / "media" / "tmp").iterdir())
    monkeypatch.setattr(blobs.os, "write", real_write)
    assert store.put(sha, [data], 1 << 30) == len(data) and store.read_bytes(sha) == data
