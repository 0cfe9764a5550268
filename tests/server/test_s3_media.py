"""``wandblite server --media s3://bucket/prefix``: real server processes on a real S3-compatible server
(moto's, the ``s3`` fixture). The sync contract itself runs against a bucket in ``test_contract.py``
and ``test_files_artifacts_alerts.py`` (``MEDIA_KINDS``); here: uploads killed mid-way (the client,
the server), presigned downloads, the dashboard's media endpoints, and storage faults.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from .conftest import S3_THRESHOLD, S3Server, ServerProc, clean_env, cli, uniq
from .test_files_artifacts_alerts import USER, _python, _sync, _write

SLOW_PUT = r"""
import socket, sys, time
port, sha, key, path, send = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
data = open(path, "rb").read()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(f"PUT /api/v1/media/{sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
          f"Content-Length: {len(data)}\r\n\r\n".encode())
s.sendall(data[:send])
print("sent", flush=True)
time.sleep(600)  # mid-PUT until killed
"""


def s3_server(s3: S3Server, tmp: Path, *extra: str, bucket: str | None = None) -> tuple[ServerProc, str]:
    bucket = bucket or s3.bucket()
    srv = ServerProc(f"sqlite:///{tmp / 'store.db'}", f"s3://{bucket}/wl", tmp / "home", env=s3.env,
                     extra_args=[*s3.server_args(), *extra])
    return srv, bucket


def wait_for(cond: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def big_blob(path: Path, size: int = 3 * S3_THRESHOLD) -> str:
    path.write_bytes(random.Random(size).randbytes(size))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_slow_put(srv: ServerProc, sha: str, path: Path, send: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PUT, str(srv.port), sha, srv.key, str(path), str(send)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "sent"
    return proc


def parts_uploaded(s3: S3Server, bucket: str) -> int:
    """How many parts the bucket's unfinished multipart uploads hold."""
    c = s3.client()
    return sum(len(c.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
               for u in s3.uploads(bucket))


def missing(srv: ServerProc, sha: str) -> bool:
    r = srv.post("/api/v1/media/missing", {"sha256": [sha]})
    assert r.status_code == 200, r.text
    return bool(r.json()["missing"] == [sha])


def test_a_client_killed_mid_multipart_upload_leaves_no_object_and_no_upload(s3: S3Server, tmp_path: Path) -> None:
    srv, bucket = s3_server(s3, tmp_path)
    srv.start()
    try:
        blob = tmp_path / "big.bin"
        sha = big_blob(blob)
        client = start_slow_put(srv, sha, blob, 2 * S3_THRESHOLD)
        # The server has sent at least one part of a multipart upload under the blob's final key.
        assert wait_for(lambda: parts_uploaded(s3, bucket) >= 1), s3.uploads(bucket)
        assert s3.keys(bucket) == []  # nothing visible meanwhile
        client.send_signal(signal.SIGKILL)
        client.wait(10)
        # The server sees the connection drop and aborts the upload: no parts stay behind.
        assert wait_for(lambda: s3.uploads(bucket) == []), s3.uploads(bucket)
        assert s3.keys(bucket) == [] and missing(srv, sha)
        assert srv.get(f"/api/v1/media/{sha}").status_code == 404
        # The next attempt goes through whole.
        put = requests.put(f"{srv.url}/api/v1/media/{sha}", data=blob.read_bytes(), headers=srv.h(), timeout=120)
        assert put.status_code == 200, put.text
        assert s3.keys(bucket) == [f"wl/{sha[:2]}/{sha[2:4]}/{sha}"] and s3.uploads(bucket) == []
        assert srv.get(f"/api/v1/media/{sha}").content == blob.read_bytes()
    finally:
        srv.stop()


def test_a_server_killed_mid_upload_leaves_no_object_and_the_next_start_aborts_the_parts(s3: S3Server,
                                                                                        tmp_path: Path) -> None:
    srv, bucket = s3_server(s3, tmp_path)
    srv.start()
    blob = tmp_path / "big.bin"
    sha = big_blob(blob)
    client = start_slow_put(srv, sha, blob, 2 * S3_THRESHOLD)
    try:
        assert wait_for(lambda: parts_uploaded(s3, bucket) >= 1), s3.uploads(bucket)
        srv.kill()
    finally:
        client.kill()
        client.wait(10)
        srv.stop()
    (dangling,) = s3.uploads(bucket)  # what a killed process leaves: parts nobody can see
    assert dangling["Key"] == f"wl/{sha[:2]}/{sha[2:4]}/{sha}" and s3.keys(bucket) == []
    # A restart with the default age keeps an upload this young (it might be another server's)...
    patient = ServerProc(srv.db, srv.media, srv.home, port=srv.port, env=s3.env, extra_args=s3.server_args())
    patient.key = srv.key
    patient.start()
    patient.stop()
    assert [u["UploadId"] for u in s3.uploads(bucket)] == [dangling["UploadId"]]
    # ...one that counts every untouched upload as dead aborts it before it serves.
    time.sleep(1.1)  # S3 times have whole seconds
    sweeping = ServerProc(srv.db, srv.media, srv.home, port=srv.port, env=s3.env,
                          extra_args=[*s3.server_args(), "--stale-upload-minutes", "0"])
    sweeping.key = srv.key
    sweeping.start()
    try:
        assert s3.uploads(bucket) == [] and s3.keys(bucket) == []
        assert missing(sweeping, sha)
        put = requests.put(f"{sweeping.url}/api/v1/media/{sha}", data=blob.read_bytes(), headers=sweeping.h(),
                           timeout=120)
        assert put.status_code == 200, put.text
        assert sweeping.get(f"/api/v1/media/{sha}").content == blob.read_bytes()
    finally:
        sweeping.stop()


def test_presigned_downloads_redirect_to_the_bucket(s3: S3Server, tmp_path: Path) -> None:
    srv, bucket = s3_server(s3, tmp_path, "--s3-presign")
    srv.start()
    try:
        project = uniq("ps")
        run_dir = _write(tmp_path, project)
        first = _sync(tmp_path / "runs", srv, tmp_path / "h")
        assert first["files"] == 2 and first["media"] == 4
        import wandblite

        rep = wandblite.replay(run_dir)
        base = f"/api/v1/projects/{project}/runs/fa"
        for f in srv.get(base + "/files").json()["files"]:
            hop = srv.get(f"{base}/files/{f['name']}", allow_redirects=False)
            assert hop.status_code == 302 and hop.headers["location"].startswith(s3.endpoint + f"/{bucket}/wl/")
            assert hop.headers["cache-control"] == "private, no-store"
            got = requests.get(hop.headers["location"], timeout=30)  # no key: the URL is the permission
            assert got.content == (run_dir / rep.files[f["name"]]["path"]).read_bytes()
            name = f["name"].rsplit("/", 1)[-1]
            assert got.headers["content-disposition"] == f'attachment; filename="{name}"'
            assert got.headers["content-type"] == "application/octet-stream"
        # A media GET is refused without a key before any redirect.
        sha = rep.files["data/now.txt"]["sha256"]
        assert srv.get(f"/api/v1/media/{sha}", key=None, allow_redirects=False).status_code == 401
        # use_artifact from another root downloads the objects through the redirect.
        other = tmp_path / "other"
        other.mkdir()
        env = {"WANDBLITE_SERVER": srv.url, "WANDBLITE_API_KEY": srv.key, "WANDBLITE_HOME": str(tmp_path / "h3")}
        out = json.loads(_python(USER, project, str(other / "runs"), "model:latest", str(other / "dl"), cwd=other,
                                 **env))
        assert (Path(out["path"]) / "weights.txt").read_text() == "v1 weights"
        assert (Path(out["path"]) / "sub" / "now.txt").read_text() == "saved now"
    finally:
        srv.stop()


def ranged(srv: ServerProc, sha: str, header: str) -> requests.Response:
    return requests.get(f"{srv.url}/api/v1/media/{sha}", headers={**srv.h(), "Range": header}, timeout=30)


def test_the_dashboards_media_endpoints_stream_from_the_bucket(s3: S3Server, tmp_path: Path) -> None:
    srv, bucket = s3_server(s3, tmp_path)
    srv.start()
    try:
        cloud = json.dumps({"type": "lidar/beta", "points": [[0, 0, 0], [1, 2, 3]], "boxes": []}).encode()
        html = b"<script>alert(1)</script>"
        big = random.Random(5).randbytes(S3_THRESHOLD + 17)
        for data, ext in ((cloud, "pts.json"), (html, "html"), (big, "png"), (b"", "bin")):
            sha = hashlib.sha256(data).hexdigest()
            put = requests.put(f"{srv.url}/api/v1/media/{sha}?ext={ext}", data=data, headers=srv.h(), timeout=60)
            assert put.status_code == 200, put.text
            got = srv.get(f"/api/v1/media/{sha}")
            assert got.status_code == 200 and got.content == data
            assert got.headers["content-length"] == str(len(data))
            assert got.headers["x-content-type-options"] == "nosniff"
            assert got.headers["content-security-policy"] == "sandbox"
            if ext == "html":  # never rendered in the server's origin
                assert got.headers["content-type"] == "application/octet-stream"
                assert got.headers["content-disposition"] == f'attachment; filename="{sha}.html"'
            if ext == "png":
                assert got.headers["content-type"] == "image/png"
                # One byte range at a time, as a video player seeks.
                for header, start, stop in (("bytes=10-19", 10, 20), ("bytes=-5", len(data) - 5, len(data)),
                                            (f"bytes={S3_THRESHOLD}-", S3_THRESHOLD, len(data)),
                                            ("bytes=3-999999999", 3, len(data))):
                    part = ranged(srv, sha, header)
                    assert part.status_code == 206 and part.content == data[start:stop], header
                    assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(data)}"
                beyond = ranged(srv, sha, f"bytes={len(data)}-")
                assert beyond.status_code == 416 and beyond.json()["error"]["code"] == "range_not_satisfiable"
                assert beyond.headers["content-range"] == f"bytes */{len(data)}"
                whole = ranged(srv, sha, "bytes=0-1,5-6")  # several: all of it
                assert whole.status_code == 200 and whole.content == data
        # A saved file whose name is not ASCII: the header says it as RFC 5987 does (headers are latin-1).
        name = "数据 v1.txt"
        project = uniq("nm")
        sha = hashlib.sha256(html).hexdigest()
        batch = {"files": [{"idx": 0, "name": name, "sha256": sha, "size": len(html)}]}
        assert srv.post(f"/api/v1/projects/{project}/runs/r/batch", batch).status_code == 200
        saved = srv.get(f"/api/v1/projects/{project}/runs/r/files/{quote(name)}")
        assert saved.status_code == 200 and saved.content == html
        assert saved.headers["content-disposition"] == f"attachment; filename*=utf-8''{quote(name)}"
        mesh = srv.get(f"/api/v1/media/{hashlib.sha256(cloud).hexdigest()}/mesh")
        assert mesh.status_code == 200 and mesh.json()["points"] == [[0, 0, 0], [1, 2, 3]]
        assert len(s3.keys(bucket, "wl/")) == 4 and s3.uploads(bucket) == []
    finally:
        srv.stop()


def test_a_storage_fault_is_a_5xx_in_the_error_shape_and_a_bad_bucket_stops_the_start(s3: S3Server,
                                                                                      tmp_path: Path) -> None:
    srv, bucket = s3_server(s3, tmp_path)
    srv.start()
    try:
        data = b"stored before the bucket went away"
        sha = hashlib.sha256(data).hexdigest()
        assert requests.put(f"{srv.url}/api/v1/media/{sha}", data=data, headers=srv.h(), timeout=30).status_code == 200
        c = s3.client()
        for key in s3.keys(bucket):
            c.delete_object(Bucket=bucket, Key=key)
        c.delete_bucket(Bucket=bucket)
        other = b"after"
        for resp in (requests.put(f"{srv.url}/api/v1/media/{hashlib.sha256(other).hexdigest()}", data=other,
                                  headers=srv.h(), timeout=60),
                     srv.get(f"/api/v1/media/{sha}"),
                     srv.post("/api/v1/media/missing", {"sha256": [sha]})):
            assert resp.status_code == 502, resp.text
            err = resp.json()["error"]
            assert err["code"] == "storage_error" and f"s3://{bucket}/wl" in err["message"], err
            assert "NoSuchBucket" in err["message"]
        assert srv.alive()
    finally:
        srv.stop()
    r = cli("server", "--port", "1", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--media", f"s3://{bucket}/wl",
            *s3.server_args(), env=clean_env(**s3.env), home=tmp_path / "h")
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert line == (f"wandblite: error: the object store has no bucket {bucket!r} (s3://{bucket}/wl): NoSuchBucket")
