"""Blob benchmark: media upload and download through ``wandblite server`` on a media directory and on
an S3-compatible bucket (moto's standalone server on 127.0.0.1), each beside a floor measured in the
same run.

Run: ``python tests/bench/bench_blobs.py [--mib 256] [--repeat 3] [--threshold 16M]``. Not a test:
nothing here asserts a time. Printed, as medians in MiB/s:

  disk   PUT and GET of one blob through the server (HTTP, sha256 checked, fsync, rename)
         floor: writing the same bytes to a file and fsyncing it; reading it back
  s3     PUT and GET of one blob through the server (multipart above the threshold, sha256
         checked before it completes), and GET as a 302 to a presigned URL followed by the client
         floor: boto3's own ``put_object``/``upload_part`` of the same bytes straight to the
         bucket (same part size), and ``get_object``
The ratio (server / floor) is what the server's streaming, hashing and relaying cost.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from wandblite_cli.main import main; main(sys.argv[1:])"]
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def _median(fn: Callable[[], Any], repeat: int, mib: float) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return mib / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threshold", default="16M")
    args = ap.parse_args()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}, **ENV,
           "WANDBLITE_SILENT": "1"}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        blob = tmp / "blob.bin"
        blob.write_bytes(os.urandom(args.mib << 20))
        data = blob.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            moto_port = _port()
            endpoint = f"http://127.0.0.1:{moto_port}"
            procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait(endpoint, procs[-1])
            import boto3

            s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                                                aws_secret_access_key="bench", region_name="us-east-1")
            results: dict[str, float] = {}

            # -- floors
            def disk_write() -> None:
                with open(tmp / "floor.bin", "wb") as f:
                    f.write(data)
                    os.fsync(f.fileno())

            results["disk floor write"] = _median(disk_write, args.repeat, args.mib)
            results["disk floor read"] = _median(lambda: (tmp / "floor.bin").read_bytes(), args.repeat, args.mib)
            from wandblite.server.blobs import parse_size

            part = parse_size(args.threshold, "")
            s3.create_bucket(Bucket="floor")

            def s3_put() -> None:
                key = "read"  # overwritten each time; the read floor reads it
                up = s3.create_multipart_upload(Bucket="floor", Key=key)["UploadId"]
                parts = []
                for i in range(0, len(data), part):
                    r = s3.upload_part(Bucket="floor", Key=key, UploadId=up, PartNumber=len(parts) + 1,
                                       Body=data[i:i + part])
                    parts.append({"PartNumber": len(parts) + 1, "ETag": r["ETag"]})
                s3.complete_multipart_upload(Bucket="floor", Key=key, UploadId=up, MultipartUpload={"Parts": parts})

            results["s3 floor write"] = _median(s3_put, args.repeat, args.mib)
            results["s3 floor read"] = _median(lambda: s3.get_object(Bucket="floor", Key="read")["Body"].read(),
                                               args.repeat, args.mib)

            # -- through the server
            for kind in ("disk", "s3", "s3-presign"):
                port = _port()
                url = f"http://127.0.0.1:{port}"
                extra: list[str] = []
                if kind == "disk":
                    media = str(tmp / f"media-{uuid.uuid4().hex}")
                else:
                    bucket = f"b{uuid.uuid4().hex[:12]}"
                    s3.create_bucket(Bucket=bucket)
                    media = f"s3://{bucket}/wl"
                    extra = ["--s3-endpoint-url", endpoint, "--s3-multipart-threshold", args.threshold]
                    extra += ["--s3-presign"] if kind == "s3-presign" else []
                home = tmp / f"home-{kind}"
                srv = subprocess.Popen([*CLI, "server", "--port", str(port), "--db", f"sqlite:///{home}/s.db",
                                        "--media", media, *extra], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, env={**env, "WANDBLITE_HOME": str(home)},
                                       cwd=str(ROOT))
                procs.append(srv)
                _wait(url + "/api/v1/health", srv)
                assert srv.stdout is not None
                key = srv.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
                h = {"Authorization": f"Bearer {key}"}

                def put(h: dict[str, str] = h, url: str = url, media: str = media) -> None:
                    # A new name each time would need new bytes; drop the stored blob instead so each
                    # PUT writes (the disk file, or the object through a fresh server-side upload).
                    with open(blob, "rb") as f:
                        r = requests.put(f"{url}/api/v1/media/{sha}?ext=bin", data=f, headers=h, timeout=600)
                    assert r.status_code == 200, r.text
                    if media.startswith("s3://"):
                        b, _, p = media[5:].partition("/")
                        s3.delete_object(Bucket=b, Key=f"{p}/{sha[:2]}/{sha[2:4]}/{sha}")
                    else:
                        os.unlink(Path(media) / sha[:2] / sha[2:4] / sha)

                def get(h: dict[str, str] = h, url: str = url) -> None:
                    r = requests.get(f"{url}/api/v1/media/{sha}", headers=h, timeout=600)
                    assert r.status_code == 200 and len(r.content) == len(data)

                if kind != "s3-presign":
                    results[f"{kind} server PUT"] = _median(put, args.repeat, args.mib)
                with open(blob, "rb") as f:
                    assert requests.put(f"{url}/api/v1/media/{sha}?ext=bin", data=f, headers=h, timeout=600).ok
                results[f"{kind} server GET"] = _median(get, args.repeat, args.mib)
                srv.terminate()
                srv.wait(30)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(30)
    print(f"blob of {args.mib} MiB, median of {args.repeat}, multipart threshold {args.threshold} (MiB/s)")
    for name, floor in (("disk server PUT", "disk floor write"), ("disk server GET", "disk floor read"),
                        ("s3 server PUT", "s3 floor write"), ("s3 server GET", "s3 floor read"),
                        ("s3-presign server GET", "s3 floor read")):
        print(f"  {name:24s} {results[name]:8.1f}   floor {results[floor]:8.1f}   ratio {results[name] / results[floor]:.2f}")


if __name__ == "__main__":
    main()
