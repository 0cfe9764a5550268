"""Fixtures for the interop tests: runs made by the real SDK, a real MLflow server, wandb offline.

The optional packages (``wandb``, ``mlflow``, ``tensorboard``) are needed only here. ``need(name)``
imports one or skips the test with the reason; with ``WANDBLITE_REQUIRE_INTEROP=1`` in the
environment (read when this file is imported, before the per-test fixtures clear ``WANDBLITE_*``)
a missing package FAILS the test instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wandblite
from tests.conftest import run_script

REQUIRE_INTEROP = os.environ.get("WANDBLITE_REQUIRE_INTEROP", "").strip() in ("1", "true", "yes")


def need(module: str, pip_name: str | None = None) -> Any:
    """Import ``module`` or skip (fail under WANDBLITE_REQUIRE_INTEROP=1) naming the pip package."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{module} is not installed ({exc}); pip install {pip_name or module}"
        if REQUIRE_INTEROP:
            pytest.fail(f"WANDBLITE_REQUIRE_INTEROP=1 but {msg}", pytrace=False)
        pytest.skip(msg)


@pytest.fixture(autouse=True)
def _interop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state files ($WANDBLITE_HOME/interop)."""
    home = tmp_path / "home"
    monkeypatch.setenv("WANDBLITE_HOME", str(home))
    monkeypatch.setenv("WANDBLITE_SILENT", "true")
    return home


# ------------------------------------------------------------------------------------------ runs


def _finish(run: Any) -> Path:
    path = Path(run.dir).parent if Path(run.dir).name == "files" else Path(run.dir)
    run.finish()
    return path


@pytest.fixture
def make_scalar_run(tmp_path: Path) -> Callable[..., Path]:
    def make(run_id: str = "scalar1", rows: int = 20, **kwargs: Any) -> Path:
        run = wandblite.init(project="proj", id=run_id, dir=str(tmp_path / "runs"), reinit=True,
                             name=f"name-{run_id}", config={"lr": 0.01, "opt": {"name": "adam", "betas": [0.9, 0.99]},
                                                            "layers": 3},
                             tags=["baseline", "v1"], notes="a scalar run", group="grp", job_type="train", **kwargs)
        run.define_metric("loss", summary="min,max")
        for i in range(rows):
            run.log({"loss": 1.0 / (i + 1), "acc": {"top1": i / rows, "top5": min(1.0, 2 * i / rows)},
                     "epoch": i // 5, "lr": 0.01 * 0.9**i})
            if i % 7 == 0:
                print(f"step {i}: loss {1.0 / (i + 1):.4f}")
        run.summary["best_note"] = "converged"
        return _finish(run)

    return make


@pytest.fixture
def make_step_run(tmp_path: Path) -> Callable[..., Path]:
    """commit=False merges, explicit steps with gaps, a finish() flush of a pending row."""

    def make(run_id: str = "steps1") -> Path:
        run = wandblite.init(project="proj", id=run_id, dir=str(tmp_path / "runs"), reinit=True, config={"k": 1})
        run.log({"a": 1.5}, commit=False)
        run.log({"b": 2})  # same row as a: step 0
        run.log({"c": 3}, step=5)
        run.log({"d": 4}, step=5)  # merges into step 5
        run.log({"e": 5.25}, step=7, commit=True)
        run.log({"f": {"g": 6}})  # step 8
        run.log({"h": -1.0}, step=20)  # pending until finish
        return _finish(run)

    return make


@pytest.fixture
def make_media_run(tmp_path: Path) -> Callable[..., Path]:
    def make(run_id: str = "media1") -> Path:
        rng = np.random.default_rng(0)
        run = wandblite.init(project="proj", id=run_id, dir=str(tmp_path / "runs"), reinit=True, config={"k": "v"})
        for i in range(3):
            img = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
            run.log({"img": wandblite.Image(img, caption=f"sample {i}"),
                     "hist": wandblite.Histogram(rng.normal(size=200), num_bins=16),
                     "loss": 0.5 / (i + 1)})
        run.log({"table": wandblite.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]]), "loss": 0.1})
        return _finish(run)

    return make


@pytest.fixture
def make_crashed_run(tmp_path: Path) -> Callable[..., Path]:
    """A run whose process was SIGKILLed mid-run, with a pending (uncommitted) row."""

    def make(run_id: str = "crash1") -> Path:
        root = tmp_path / "runs"
        code = f"""
            import os, signal, wandblite
            run = wandblite.init(project="proj", id={run_id!r}, dir={str(root)!r}, config={{"seed": 7}})
            for i in range(10):
                run.log({{"loss": 10.0 - i, "nested": {{"v": i * 2}}}})
            run.log({{"partial": 1.0}}, commit=False)
            print("about to die", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
        res = run_script(code)
        assert res.returncode == -signal.SIGKILL, res.stderr
        # The writer is dead (its lock is free), so the run reads as crashed at once.
        return root / run_id

    return make


class CrashThenResume:
    """One run in two processes: the first logs 5 rows and a pending row, then is SIGKILLed; the
    second resumes it, logs into that pending row (which commits it, with a changed and a new
    value), logs two more rows and finishes. ``final_rows`` is the history the finished run has."""

    run_id = "resumed1"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / self.run_id

    def crash(self) -> Path:
        code = f"""
            import os, signal, wandblite
            run = wandblite.init(project="proj", id={self.run_id!r}, dir={str(self.root)!r}, config={{"seed": 7}})
            for i in range(5):
                run.log({{"loss": 10.0 - i, "nested": {{"v": i}}}})
            run.log({{"partial": 1.0, "nested": {{"w": 1.0}}}}, commit=False)  # step 5, pending
            os.kill(os.getpid(), signal.SIGKILL)
        """
        res = run_script(code)
        assert res.returncode == -signal.SIGKILL, res.stderr
        return self.path

    def resume(self) -> Path:
        code = f"""
            import wandblite
            run = wandblite.init(project="proj", id={self.run_id!r}, dir={str(self.root)!r}, resume="allow")
            run.log({{"partial": 1.5, "more": 2.0}})  # into the crashed attempt's pending row: commits step 5
            for i in range(6, 8):
                run.log({{"loss": 10.0 - i}})
            run.finish()
        """
        res = run_script(code)
        assert res.returncode == 0, res.stderr
        rows = list(wandblite.replay(self.path).scan_history())
        assert [r["_step"] for r in rows] == list(range(8))
        assert (rows[5]["partial"], rows[5]["more"], rows[5]["nested"]) == (1.5, 2.0, {"w": 1.0})
        return self.path


@pytest.fixture
def crash_then_resume(tmp_path: Path) -> CrashThenResume:
    return CrashThenResume(tmp_path / "runs")


def sync_cli(*args: str) -> list[dict[str, Any]]:
    """``wandblite sync ARGS --json`` in a fresh process (this test's environment): one dict per run."""
    proc = subprocess.run([sys.executable, "-c", "import sys; from wandblite_cli.main import main; main(sys.argv[1:])",
                           "sync", *args, "--json"], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and out, proc.stdout + proc.stderr
    return out


@pytest.fixture
def make_failed_run(tmp_path: Path) -> Callable[..., Path]:
    def make(run_id: str = "fail1") -> Path:
        root = tmp_path / "runs"
        code = f"""
            import wandblite
            run = wandblite.init(project="proj", id={run_id!r}, dir={str(root)!r})
            run.log({{"loss": 1.0}})
            raise RuntimeError("boom")
        """
        res = run_script(code)
        assert res.returncode == 1, res.stderr
        return root / run_id

    return make


class LiveRun:
    """A run written by a child process that waits for ``release()`` before finishing."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.path = root / run_id
        self.go = root / f".{run_id}.go"
        self.ready = root / f".{run_id}.ready"
        code = f"""
            import os, time, wandblite
            run = wandblite.init(project="proj", id={run_id!r}, dir={str(root)!r})
            for i in range(5):
                run.log({{"loss": float(i)}})
            open({str(self.ready)!r}, "w").close()
            while not os.path.exists({str(self.go)!r}):
                time.sleep(0.05)
            run.log({{"loss": 99.0}})
            run.finish()
        """
        import textwrap

        env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
        self.proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env)
        deadline = time.time() + 30
        while not self.ready.exists():
            assert self.proc.poll() is None, "the live run's process died"
            assert time.time() < deadline, "the live run did not start"
            time.sleep(0.05)

    def release(self) -> None:
        self.go.touch()
        assert self.proc.wait(timeout=30) == 0


@pytest.fixture
def live_run(tmp_path: Path) -> Iterator[Callable[[str], LiveRun]]:
    started: list[LiveRun] = []

    def start(run_id: str = "live1") -> LiveRun:
        (tmp_path / "runs").mkdir(exist_ok=True)
        lr = LiveRun(tmp_path / "runs", run_id)
        started.append(lr)
        return lr

    yield start
    for lr in started:
        if lr.proc.poll() is None:
            lr.proc.kill()
            lr.proc.wait()


# ------------------------------------------------------------------------------------------ MLflow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend and proxied artifacts."""
    need("mlflow")
    d = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(d / "server.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{d / 'mlflow.db'}", "--artifacts-destination", str(d / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=d, env=env, start_new_session=True,
    )
    try:
        deadline = time.time() + 120  # first start migrates the database: several seconds
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(d / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"mlflow server did not become healthy: {(d / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (uvicorn workers)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# ------------------------------------------------------------------------------------------ W&B


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """wandb in offline mode writing under tmp_path/wandb-dir: no network at all."""
    wandb = need("wandb")
    d = tmp_path / "wandb-dir"
    d.mkdir()
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(d), "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
                 "WANDB__DISABLE_STATS": "true", "WANDB_X_DISABLE_STATS": "true", "WANDB_CONSOLE": "off",
                 "WANDB_API_KEY": "", "WANDB_BASE_URL": "http://127.0.0.1:9"}.items():
        if v:
            monkeypatch.setenv(k, v)
    yield d
    # wandb keeps its settings (WANDB_DIR, ...) in a per-process singleton: drop it so the next
    # test's environment is read afresh.
    wandb.teardown()
