"""Fixtures for the server and sync tests: real server processes on 127.0.0.1, real SQLite and PostgreSQL.

* ``backend`` is parametrised over ``sqlite`` and ``postgres``. PostgreSQL is the server on
  127.0.0.1:5432 (trust auth, user ``postgres``); one uniquely named database is created per test
  session and dropped at its end. Unreachable PostgreSQL skips those tests with the reason, or
  FAILS them when ``WANDBLITE_REQUIRE_POSTGRES=1`` (CI).
* ``ServerProc`` runs ``wandblite server`` (plus any ``extra_args``) as a subprocess on a free
  port and can SIGKILL and restart it on the same port and database.
* ``cli`` runs ``wandblite ...`` in a fresh interpreter, as a user would.
* ``s3`` is a real S3-compatible server on 127.0.0.1: moto's standalone server started as a
  subprocess for the session (``moto_server``, which the benchmarks use too), or the one at
  ``$WANDBLITE_TEST_S3_ENDPOINT`` when CI started it.
  Never skipped. ``media_kind`` (``disk`` or ``s3``) says where a ``server``'s blobs live; a test
  module that sets ``MEDIA_KINDS = ("disk", "s3")`` runs its tests against both.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
#: An S3-compatible endpoint CI started (read at import: the autouse fixture clears WANDBLITE_* in tests).
S3_ENDPOINT = os.environ.get("WANDBLITE_TEST_S3_ENDPOINT", "").strip()
#: Credentials moto accepts (any); a real endpoint from CI brings its own through the AWS variables.
S3_ENV = {"AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
          "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
          "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
#: The smallest multipart threshold S3 allows: blobs above it test the multipart path.
S3_THRESHOLD = 5 << 20
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from wandblite_cli.main import main; main(sys.argv[1:])"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    env["WANDBLITE_SILENT"] = "1"
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, home: Path | None = None,
        ) -> subprocess.CompletedProcess[str]:
    e = env or clean_env()
    if home is not None:
        e = {**e, "WANDBLITE_HOME": str(home)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=e, cwd=str(ROOT))


def uniq(prefix: str = "p") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class ServerProc:
    """``wandblite server`` in a subprocess; ``key`` is a valid API key for it; ``env``: extra settings."""

    def __init__(self, db: str | None, media: Path | str | None, home: Path, public_read: bool = False,
                 port: int | None = None, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.db, self.media, self.home, self.public_read = db, media, home, public_read
        self.env = dict(env or {})
        self.extra_args = list(extra_args or [])
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.admin_key: str | None = None
        self.key: str = ""

    def start(self, timeout: float = 30) -> ServerProc:
        args = [*CLI, "server", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.db is not None:  # None: the embedded store of $WANDBLITE_HOME
            args += ["--db", self.db, "--media", str(self.media)]
        if self.public_read:
            args.append("--public-read")
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=clean_env(WANDBLITE_HOME=str(self.home), **self.env), cwd=str(ROOT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        if self.admin_key is None and not self.key:
            # Non-blocking read of the first stdout line: the admin key of a fresh store.
            os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
            line = self.proc.stdout.readline() or ""  # type: ignore[union-attr]
            if "admin API key" in line:
                self.admin_key = line.strip().rsplit(" ", 1)[-1]
        if not self.key:
            self.key = self.admin_key or self.create_key("tests")
        return self

    def create_key(self, name: str) -> str:
        db = ("--db", self.db) if self.db else ()
        r = cli("server", "keys", "create", "--name", name, *db, home=self.home)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        for f in (self.proc.stdout, self.proc.stderr) if self.proc else ():
            if f:
                f.close()

    # -- HTTP helpers -------------------------------------------------------------------------
    def h(self, key: str | None = "") -> dict[str, str]:
        k = self.key if key == "" else key
        return {"Authorization": f"Bearer {k}"} if k else {}

    def get(self, path: str, key: str | None = "", **kw: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self.h(key), timeout=30, **kw)

    def post(self, path: str, body: Any = None, key: str | None = "", data: bytes | None = None) -> requests.Response:
        raw = data if data is not None else json.dumps(body).encode()
        return requests.post(self.url + path, data=raw, headers={**self.h(key), "Content-Type": "application/json"},
                             timeout=30)

    def history(self, project: str, run_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        start: int | None = 0
        while start is not None:
            r = self.get(f"/api/v1/projects/{project}/runs/{run_id}/history?start={start}&limit=10000")
            assert r.status_code == 200, r.text
            page = r.json()
            out.extend(page["rows"])
            start = page["next"]
        return out

    def position(self, project: str, run_id: str) -> dict[str, Any]:
        r = self.get(f"/api/v1/projects/{project}/runs/{run_id}/position")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def alive(self) -> bool:
        return requests.get(self.url + "/api/v1/health", timeout=5).status_code == 200


# --------------------------------------------------------------------------- databases


@contextlib.contextmanager
def backend_store(backend: str, tmp_path: Path, prefix: str) -> Iterator[Any]:
    """A ``Store`` on a fresh PostgreSQL database (``backend == "postgres"``) or a SQLite file under
    ``tmp_path``, with its media directory there too; closed afterwards."""
    from wandblite.server.store import Store

    if backend == "postgres":
        with fresh_postgres_database(prefix) as url:
            s = Store(url, media_dir=tmp_path / "media")
            try:
                yield s
            finally:
                s.close()
    else:
        s = Store(f"sqlite:///{tmp_path / 'store.db'}", media_dir=tmp_path / "media")
        try:
            yield s
        finally:
            s.close()


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "wl_test") -> Iterator[str]:
    """A new, uniquely named database on the local PostgreSQL, dropped afterwards.

    Unreachable PostgreSQL fails the test when ``WANDBLITE_REQUIRE_POSTGRES=1`` (CI), else skips.
    """
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except Exception as exc:  # noqa: BLE001
        msg = f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc})"
        if os.environ.get("WANDBLITE_REQUIRE_POSTGRES") == "1":
            pytest.fail(msg + " and WANDBLITE_REQUIRE_POSTGRES=1")
        pytest.skip(msg + "; set WANDBLITE_REQUIRE_POSTGRES=1 to make this a failure")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database URL: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'store.db'}"


# --------------------------------------------------------------------------- an S3-compatible server


class S3Server:
    """An S3-compatible endpoint on 127.0.0.1 (moto's server, or CI's); ``client()`` talks to it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.env = dict(S3_ENV)

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name=self.env["AWS_DEFAULT_REGION"])

    def bucket(self) -> str:
        """A new, empty bucket of this test's own."""
        name = f"wl-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def uploads(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's unfinished multipart uploads."""
        return list(self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    def server_args(self, threshold: int = S3_THRESHOLD) -> list[str]:
        return ["--s3-endpoint-url", self.endpoint, "--s3-multipart-threshold", str(threshold)]


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[S3Server]:
    """moto's standalone S3 server (``moto[server]``, the test extra) as a subprocess on a free port
    of 127.0.0.1 for the ``with`` block; its log goes to ``log_dir/moto.log``."""
    port = free_port()
    # Its log goes to a file: a pipe nobody reads fills up and stops the server mid-request.
    log_path = log_dir / "moto.log"
    log = open(log_path, "wb")  # noqa: SIM115 - open for the block, closed below
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto's server exited {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(endpoint + "/moto-api/", timeout=1).status_code < 500:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("moto's server did not start within 60 s")
            time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The S3-compatible server: ``$WANDBLITE_TEST_S3_ENDPOINT`` if CI started one, else moto's own
    standalone server as a subprocess (``moto_server``). Never skips."""
    if S3_ENDPOINT:
        yield S3Server(S3_ENDPOINT)
        return
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a module's ``server`` tests against each of its ``MEDIA_KINDS`` (default: the disk only)."""
    if "media_kind" in metafunc.fixturenames:
        metafunc.parametrize("media_kind", getattr(metafunc.module, "MEDIA_KINDS", ("disk",)))


_SERVERS: dict[tuple[str, str], ServerProc] = {}


@pytest.fixture
def server(backend: str, media_kind: str, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    """A running server on ``backend`` with its blobs on ``media_kind`` (shared by the tests of a
    backend and media kind: every test uses its own projects)."""
    kind = "postgres" if backend.startswith("postgres") else "sqlite"
    srv = _SERVERS.get((kind, media_kind))
    if srv is None or srv.proc is None or srv.proc.poll() is not None:
        tmp = tmp_path_factory.mktemp(f"srv-{kind}-{media_kind}")
        if media_kind == "s3":
            s3: S3Server = request.getfixturevalue("s3")
            srv = ServerProc(backend, f"s3://{s3.bucket()}/blobs", tmp / "home", env=s3.env,
                             extra_args=s3.server_args()).start()
        else:
            srv = ServerProc(backend, tmp / "media", tmp / "home").start()
        _SERVERS[(kind, media_kind)] = srv
    yield srv


@pytest.fixture(scope="session", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    for srv in _SERVERS.values():
        srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProc]:
    """A server of its own on a fresh SQLite store (for tests that kill or reconfigure it)."""
    srv = ServerProc(f"sqlite:///{tmp_path / 'own.db'}", tmp_path / "media", tmp_path / "home")
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- runs


WRITER = r"""
import os, sys, time, math
import wandblite
project, run_id, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "finish"
run = wandblite.init(project=project, id=run_id, dir=os.environ["RUNS"], resume="allow", config={"lr": 0.1, "bad": float("nan")},
                      allow_val_change=True)  # NaN != NaN: a resume would see a "changed" value
start = run.step
for i in range(start, start + steps):
    run.log({"loss": 1.0 / (i + 1), "acc": i * 0.5, "deep": {"x": i, "inf": float("inf") if i % 7 == 0 else -1.5}})
    if i % 250 == 0:
        print(f"at {i}", flush=True)
if mode == "pending":
    run.log({"pending_only": 42.0}, commit=False)
    print("pending logged", flush=True)
    time.sleep(600)
if mode == "fail":
    run.finish(exit_code=3)
else:
    run.finish()
"""


def write_run(runs: Path, project: str, run_id: str, steps: int, mode: str = "finish") -> subprocess.Popen[str] | None:
    """Write a run with a real writer process (``mode="pending"`` leaves it alive with a pending row)."""
    env = clean_env(RUNS=str(runs), WANDBLITE_CONSOLE="off", WANDBLITE_DISABLE_STATS="1")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, project, run_id, str(steps), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if mode == "pending":
        assert proc.stdout is not None
        for line in proc.stdout:
            if "pending logged" in line:
                return proc
        raise AssertionError(proc.stderr.read() if proc.stderr else "writer died")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return None


def local_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The run's history as the core replay gives it, as plain JSON values."""
    import wandblite

    return [json.loads(json.dumps(r, default=dict)) for r in wandblite.replay(run_dir).scan_history()]


def canon(rows: list[Any]) -> str:
    """Rows as comparable text (NaN equals NaN here)."""
    return json.dumps(rows, sort_keys=True, allow_nan=True)


def assert_same_history(srv: ServerProc, project: str, run_id: str, run_dir: Path) -> None:
    got = srv.history(project, run_id)
    assert [r["idx"] for r in got] == list(range(len(got))), "gaps or duplicates in the server's history"
    want = local_rows(run_dir)
    assert len(got) == len(want)
    assert canon([r["row"] for r in got]) == canon(want)
