"""Blobs larger than the old 64 MiB limit: streamed from disk by the client, streamed to disk by the
server, never held in memory by either; a wrong hash, a refused size or an interrupted upload
leaves nothing behind, and a re-sync completes.

The blobs are 80 MiB files with a random first and last MiB around a sparse hole: quick to make,
and not something a transport could compress away.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import CLI, ROOT, ServerProc, clean_env, cli, uniq

MiB = 1 << 20
BIG = 80 * MiB  # over the 64 MiB that used to be the limit

WRITER = r"""
import os, sys, wandblite
project, root, saved, obj, video = sys.argv[1:6]  # "-": none
run = wandblite.init(project=project, id="big", dir=root)
if saved != "-":
    run.save(saved, policy="now")
if obj != "-":
    art = wandblite.Artifact("ckpt", "model")
    art.add_file(obj, name="model.bin")
    run.log_artifact(art)
run.log({"loss": 1.0, **({"clip": wandblite.Video(video)} if video != "-" else {})})
run.finish()
"""

SLOW_PUT = r"""
import socket, sys, time
port, sha, key, path, send = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
data = open(path, "rb")
size = data.seek(0, 2)
data.seek(0)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(f"PUT /api/v1/media/{sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
          f"Content-Length: {size}\r\n\r\n".encode())
s.sendall(data.read(send))
print("sent", flush=True)
time.sleep(600)  # mid-PUT until killed
"""


def make_blob(path: Path, size: int = BIG, seed: int = 0) -> str:
    """A sparse file of ``size`` bytes with a random first and last MiB; returns its sha256."""
    import random

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(rng.randbytes(MiB))
        f.truncate(size - MiB)
        f.seek(size - MiB)
        f.write(rng.randbytes(MiB))
    return file_sha(path)


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def response_sha(resp: requests.Response) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    for chunk in resp.iter_content(4 * MiB):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def reset_peak_rss(pid: int) -> None:
    """Start the peak (VmHWM) over at the current RSS (Linux >= 4.0); without it the peak only grows."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def tmp_files(srv: ServerProc) -> list[Path]:
    assert srv.media is not None
    d = srv.media / "tmp"
    return sorted(d.iterdir()) if d.is_dir() else []


def wait_for(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def missing(srv: ServerProc, sha: str) -> bool:
    r = srv.post("/api/v1/media/missing", {"sha256": [sha]})
    assert r.status_code == 200, r.text
    return bool(r.json()["missing"] == [sha])


def write_big_run(tmp: Path, project: str, saved: int = BIG, obj: int = BIG, video: int = 0) -> tuple[Path, str, str]:
    """A finished run under ``tmp/runs`` that saved a file of ``saved`` bytes, logged one of ``obj``
    bytes as an artifact and a video of ``video`` bytes as a media value (0: not at all); returns
    the runs directory and the sha256s of the saved file and the artifact object."""
    work = tmp / "work"
    work.mkdir(parents=True, exist_ok=True)
    saved_sha = make_blob(work / "ckpt" / "last.pt", saved, seed=1) if saved else ""
    obj_sha = make_blob(work / "ckpt" / "model.bin", obj, seed=2) if obj else ""
    if video:
        make_blob(work / "clip.mp4", video, seed=7)
    args = ["ckpt/last.pt" if saved else "-", "ckpt/model.bin" if obj else "-", "clip.mp4" if video else "-"]
    proc = subprocess.run([sys.executable, "-c", WRITER, project, str(tmp / "runs"), *args], capture_output=True,
                          text=True, timeout=300, cwd=str(work),
                          env=clean_env(WANDBLITE_CONSOLE="off", WANDBLITE_DISABLE_STATS="1"))
    assert proc.returncode == 0, proc.stderr
    for name in args:
        if name != "-":
            (work / name).unlink()  # only the run directory's copies remain
    return tmp / "runs", saved_sha, obj_sha


def sync_measured(srv: ServerProc | None, runs: Path, home: Path) -> tuple[dict[str, Any], float, str]:
    """``wandblite sync --json`` in a child process: its result, its peak RSS in MiB, and its stderr."""
    target = ["--server", srv.url, "--api-key", srv.key] if srv is not None else []
    proc = subprocess.Popen([*CLI, "sync", str(runs), "--json", *target], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env(WANDBLITE_HOME=str(home)), cwd=str(ROOT))
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, out.decode() + err.decode()
    (res,) = [json.loads(line) for line in out.decode().splitlines()]
    return dict(res), usage.ru_maxrss / 1024, err.decode()


def test_blobs_over_64_mib_sync_streamed_and_arrive_intact(fresh_server: ServerProc, tmp_path: Path) -> None:
    srv = fresh_server.start()
    project = uniq("big")
    video_sha = make_blob(tmp_path / "work" / "clip.mp4", BIG, seed=7)  # what write_big_run logs as a Video
    runs, saved_sha, art_sha = write_big_run(tmp_path, project, video=BIG)
    # The client's baseline: the same sync of a run without big files.
    _small, client_base, _err = sync_measured(srv, write_big_run(tmp_path / "small", uniq("small"), 0, 0)[0],
                                              tmp_path / "h0")

    pid = srv.proc.pid  # type: ignore[union-attr]
    reset_peak_rss(pid)
    server_before = peak_rss_mib(pid)
    t0 = time.monotonic()
    res, client_peak, _err = sync_measured(srv, runs, tmp_path / "h1")
    elapsed = time.monotonic() - t0
    server_growth = peak_rss_mib(pid) - server_before
    print(f"\n3 x {BIG // MiB} MiB synced in {elapsed:.2f}s ({3 * BIG / MiB / elapsed:.0f} MiB/s with the run's "
          f"other work); server peak RSS +{server_growth:.1f} MiB; client peak {client_peak:.0f} MiB "
          f"(baseline {client_base:.0f} MiB)")
    assert res["ok"] and (res["files"], res["artifacts"], res["media"]) == (1, 1, 3), res
    assert server_growth < 40, f"the server's peak RSS grew by {server_growth:.1f} MiB receiving 3 x 80 MiB"
    assert client_peak - client_base < 40, f"the client peaked at {client_peak:.0f} MiB, baseline {client_base:.0f}"

    base = f"/api/v1/projects/{project}/runs/big"
    (f,) = srv.get(base + "/files").json()["files"]
    assert (f["name"], f["sha256"], f["size"], f["lost"]) == ("ckpt/last.pt", saved_sha, BIG, False)
    with requests.get(srv.url + base + "/files/ckpt/last.pt", headers=srv.h(), stream=True, timeout=60) as r:
        assert r.status_code == 200 and response_sha(r) == (saved_sha, BIG)
    man = srv.get(f"/api/v1/projects/{project}/artifacts/ckpt/latest").json()
    assert man["entries"] == {"model.bin": {"sha256": art_sha, "size": BIG}}
    for sha in (art_sha, video_sha):
        with requests.get(f"{srv.url}/api/v1/media/{sha}", headers=srv.h(), stream=True, timeout=60) as r:
            assert r.status_code == 200 and response_sha(r) == (sha, BIG)
    (row,) = srv.history(project, "big")
    assert row["row"]["clip"]["sha256"] == video_sha
    assert tmp_files(srv) == []

    # A second sync (no sync-state cache) finds everything there and uploads nothing.
    again, _peak, _err = sync_measured(srv, runs, tmp_path / "h2")
    assert (again["files"], again["artifacts"], again["media"]) == (0, 0, 0)

    # The embedded store (no server) streams the same way.
    emb, _peak, _err = sync_measured(None, runs, tmp_path / "h3")
    assert emb["ok"] and emb["media"] == 3
    for sha in (saved_sha, art_sha, video_sha):
        assert file_sha(tmp_path / "h3" / "media" / sha[:2] / sha[2:4] / sha) == sha


def _put(srv: ServerProc, sha: str, data: Any) -> requests.Response:
    return requests.put(f"{srv.url}/api/v1/media/{sha}", data=data, headers=srv.h(), timeout=120)


def test_a_large_body_with_the_wrong_hash_stores_nothing_and_leaves_no_temporary_file(
        server: ServerProc, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    sha = make_blob(blob, 16 * MiB, seed=3)
    wrong = hashlib.sha256(sha.encode()).hexdigest()
    with open(blob, "rb") as f:
        r = _put(server, wrong, f)
    assert r.status_code == 400 and r.json()["error"]["code"] == "hash_mismatch", r.text
    assert tmp_files(server) == []
    assert missing(server, wrong)
    assert server.get(f"/api/v1/media/{wrong}").status_code == 404

    # A blob the server holds: a PUT is a no-op (not rewritten), a wrong body for it still a mismatch.
    with open(blob, "rb") as f:
        assert _put(server, sha, f).json() == {"sha256": sha, "size": 16 * MiB}
    assert server.media is not None
    stored = server.media / sha[:2] / sha[2:4] / sha
    inode = stored.stat().st_ino
    with open(blob, "rb") as f:
        assert _put(server, sha, f).json() == {"sha256": sha, "size": 16 * MiB}
    assert stored.stat().st_ino == inode, "an existing blob was written again"
    r = _put(server, sha, b"not those bytes")
    assert r.status_code == 400 and r.json()["error"]["code"] == "hash_mismatch"
    assert file_sha(stored) == sha and tmp_files(server) == []


def test_the_size_limit_is_413_while_streaming_and_configurable(tmp_path: Path) -> None:
    srv = ServerProc(f"sqlite:///{tmp_path / 'db'}", tmp_path / "media", tmp_path / "home",
                     env={"WANDBLITE_MAX_BLOB_SIZE": "4M"}).start()
    try:
        assert srv.post("/api/v1/media/missing", {"sha256": []}).json()["max_size"] == 4 * MiB
        blob = tmp_path / "blob"
        sha = make_blob(blob, 6 * MiB, seed=4)
        with open(blob, "rb") as f:  # a declared Content-Length over the limit: refused before the body
            r = _put(srv, sha, f)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
        # ... saying the size, the limit and how to raise it, as the streamed cut-off does.
        assert r.json()["error"]["message"] == (
            "the media blob of 6291456 bytes is larger than this server's limit of 4194304 bytes (raise it with "
            "`wandblite server --max-blob-size` or $WANDBLITE_MAX_BLOB_SIZE on the server); nothing was stored")

        def chunks() -> Any:  # no length declared: cut off when the limit is passed
            with open(blob, "rb") as f:
                while chunk := f.read(MiB):
                    yield chunk

        try:
            r = _put(srv, sha, chunks())
            assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
        except requests.ConnectionError:
            pass  # the server may close the connection while the client still sends; it answered 413 first
        assert wait_for(lambda: tmp_files(srv) == []), tmp_files(srv)
        assert missing(srv, sha)
        small = make_blob(tmp_path / "small", 4 * MiB, seed=5)  # exactly the limit is allowed
        with open(tmp_path / "small", "rb") as f:
            assert _put(srv, small, f).status_code == 200

        # Through sync: a saved file over the limit is listed as lost (with one line saying why) and the
        # rest of the run syncs; an artifact object over the limit stops that run's sync with the reason.
        runs1, _saved, _obj = write_big_run(tmp_path / "file", "lim", 6 * MiB, 0)
        r1 = cli("sync", str(runs1), "--server", srv.url, "--api-key", srv.key, home=tmp_path / "h1")
        assert r1.returncode == 0, r1.stderr
        assert "are 6291456 bytes, over the server's blob limit of 4194304 bytes" in r1.stderr
        assert "listed as lost" in r1.stderr
        (f,) = srv.get("/api/v1/projects/lim/runs/big/files").json()["files"]
        assert f["lost"] is True and f["size"] == 6 * MiB

        runs2, _saved, _obj = write_big_run(tmp_path / "obj", "lim2", 0, 6 * MiB)
        r2 = cli("sync", str(runs2), "--server", srv.url, "--api-key", srv.key, home=tmp_path / "h2")
        assert r2.returncode == 1
        assert "artifact ckpt:v0" in r2.stderr and "over the server's blob limit" in r2.stderr
        assert tmp_files(srv) == []
    finally:
        srv.stop()
    bad = ServerProc(f"sqlite:///{tmp_path / 'db'}", tmp_path / "media", tmp_path / "home",
                     env={"WANDBLITE_MAX_BLOB_SIZE": "lots"})
    with pytest.raises(RuntimeError, match="WANDBLITE_MAX_BLOB_SIZE='lots' is not a size"):
        bad.start()
    bad.stop()


def test_the_max_blob_size_flag_sets_the_limit_and_overrides_the_environment(tmp_path: Path) -> None:
    srv = ServerProc(f"sqlite:///{tmp_path / 'db'}", tmp_path / "media", tmp_path / "home",
                     env={"WANDBLITE_MAX_BLOB_SIZE": "16M"}, extra_args=["--max-blob-size", "1M"]).start()
    try:
        assert srv.post("/api/v1/media/missing", {"sha256": []}).json()["max_size"] == MiB
        big = make_blob(tmp_path / "big", MiB + 1, seed=6)
        with open(tmp_path / "big", "rb") as f:
            r = _put(srv, big, f)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
        assert f"of {MiB + 1} bytes" in r.json()["error"]["message"] and f"limit of {MiB} bytes" in r.text
        assert missing(srv, big) and tmp_files(srv) == []
        small = make_blob(tmp_path / "small", MiB, seed=7)  # exactly the limit is allowed
        with open(tmp_path / "small", "rb") as f:
            assert _put(srv, small, f).status_code == 200
    finally:
        srv.stop()
    for bad in ("lots", "0", "-5M", "5X"):  # a usage error: exit 2 with the value named, before any start
        r = cli("server", "--max-blob-size", bad, "--db", f"sqlite:///{tmp_path / 'db'}", home=tmp_path / "home")
        assert r.returncode == 2 and f"{bad!r} is not a size" in r.stderr, (bad, r.stderr)
    ok = cli("server", "--max-blob-size", "2G", "keys", "list", "--db", f"sqlite:///{tmp_path / 'db'}",
             home=tmp_path / "home")
    assert ok.returncode == 0, ok.stderr


def _slow_put(srv: ServerProc, sha: str, blob: Path, send: int) -> subprocess.Popen[str]:
    """A client process that sends the headers and ``send`` bytes of the body, then hangs mid-PUT."""
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PUT, str(srv.port), sha, srv.key, str(blob), str(send)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "sent"
    assert wait_for(lambda: sum(p.stat().st_size for p in tmp_files(srv)) > 0), "the upload never reached the disk"
    return proc


def test_interrupted_uploads_leave_no_partial_blob_and_a_resync_completes(
        fresh_server: ServerProc, tmp_path: Path) -> None:
    srv = fresh_server.start()
    project = uniq("cut")
    runs, saved_sha, art_sha = write_big_run(tmp_path, project)
    saved = runs / "big" / "files" / "ckpt" / "last.pt"
    assert file_sha(saved) == saved_sha

    # 1. The connection closes mid-body.
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(f"PUT /api/v1/media/{saved_sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.key}\r\n"
                  f"Content-Length: {BIG}\r\n\r\n".encode())
        with open(saved, "rb") as f:
            s.sendall(f.read(10 * MiB))
        assert wait_for(lambda: tmp_files(srv) != [])
    assert wait_for(lambda: tmp_files(srv) == []), tmp_files(srv)
    assert missing(srv, saved_sha) and srv.get(f"/api/v1/media/{saved_sha}").status_code == 404

    # 2. The client is SIGKILLed mid-PUT.
    proc = _slow_put(srv, saved_sha, saved, 30 * MiB)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert wait_for(lambda: tmp_files(srv) == []), tmp_files(srv)
    assert missing(srv, saved_sha) and srv.get(f"/api/v1/media/{saved_sha}").status_code == 404

    # 3. The server is SIGKILLed mid-PUT: its temporary file stays (nobody to remove it), the blob is
    #    not visible after the restart, and once stale the temporary file goes with the next upload.
    proc = _slow_put(srv, saved_sha, saved, 30 * MiB)
    srv.kill()
    proc.kill()
    proc.wait(10)
    srv.start()
    (left,) = tmp_files(srv)
    assert missing(srv, saved_sha) and srv.get(f"/api/v1/media/{saved_sha}").status_code == 404
    old = time.time() - 2 * 3600
    os.utime(left, (old, old))

    res, _peak, _err = sync_measured(srv, runs, tmp_path / "h")
    assert res["ok"] and (res["files"], res["artifacts"], res["media"]) == (1, 1, 2), res
    assert tmp_files(srv) == []
    for sha in (saved_sha, art_sha):
        with requests.get(f"{srv.url}/api/v1/media/{sha}", headers=srv.h(), stream=True, timeout=60) as r:
            assert r.status_code == 200 and response_sha(r) == (sha, BIG)
    (f,) = srv.get(f"/api/v1/projects/{project}/runs/big/files").json()["files"]
    assert f["lost"] is False and f["sha256"] == saved_sha
