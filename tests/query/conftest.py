"""Fixtures for the query API tests: one data set of real runs, synced once per backend.

The runs are written with the real SDK (and one crashed writer process), synced with the real
``wandblite sync`` CLI into a real ``wandblite server`` process on SQLite and on PostgreSQL
(``tests/server/conftest.py``'s ``ServerProc`` and ``postgres_url``: without PostgreSQL those
tests skip, or FAIL when ``WANDBLITE_REQUIRE_POSTGRES=1``), then read back over REST and through
``wandblite.Api`` and compared with ``wandblite.replay`` of the same files.
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wandblite
from tests.server.conftest import ServerProc, clean_env, cli, postgres_url, uniq, write_run

__all__ = ["Dataset", "ServerProc", "cli", "clean_env", "postgres_url", "uniq"]

CUBE_OBJ = """v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 0 0 1
v 1 0 1
v 1 1 1
v 0 1 1
f 1 2 3
f 1 3 4
f 5 6 7
f 5 7 8
f 1 2 6
f 1 6 5
f 2 3 7
f 2 7 6
f 3 4 8
f 3 8 7
f 4 1 5
f 4 5 8
"""

STEPS_A = 3000
SPIKE_STEP, DIP_STEP = 1234, 2222


def loss_at(i: int) -> float:
    """Run a's ``loss``: a smooth curve with one spike and one dip the downsampling must keep."""
    if i == SPIKE_STEP:
        return 100.0
    if i == DIP_STEP:
        return -50.0
    return 1.0 / (i + 1) + 0.01 * math.sin(i / 7)


def _settings() -> Any:
    return wandblite.Settings(console="off", disable_stats=True)


def write_dataset(runs: Path, project: str, tmp: Path) -> None:
    """Runs a (long, with media), b (failed), c (short, named) and crash (killed with a pending row)."""
    obj = tmp / "cube.obj"
    obj.write_text(CUBE_OBJ)
    run = wandblite.init(project=project, id="a", dir=str(runs), name="alpha-base", group="g1", notes="first run",
                         tags=["base", "x"], config={"lr": 0.1, "opt": {"name": "adam"}, "bs": 32},
                         settings=_settings())
    run.define_metric("acc", summary="max")
    rng = np.random.default_rng(0)
    for i in range(STEPS_A):
        row: dict[str, Any] = {"loss": loss_at(i), "acc": i / STEPS_A, "epoch": i // 100,
                               "train": {"inner": float(i % 10)}, "train/loss": 2.0 - i / STEPS_A}
        if i % 3 == 0:
            row["noisy"] = float("nan") if i % 2 == 0 else (float("inf") if i % 5 == 0 else float(i))
        if i % 500 == 0:
            img = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            row["img"] = wandblite.Image(img, caption=f"step {i}", boxes={"pred": {"box_data": [
                {"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.1, "maxY": 0.5}, "class_id": 1}]}})
        if i % 1000 == 0:
            row["hist"] = wandblite.Histogram(rng.normal(size=100))
        if i == 10:
            row["cloud"] = wandblite.Object3D(rng.random((50, 3)))
            row["mesh"] = wandblite.Object3D(str(obj))
            row["table"] = wandblite.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]])
        run.log(row)
    run.finish()
    run = wandblite.init(project=project, id="b", dir=str(runs), name="beta", tags=["y"],
                         config={"lr": 0.01, "opt": {"name": "sgd"}}, settings=_settings())
    for i in range(200):
        run.log({"loss": 2.0 - i / 200, "acc": 0.2})
    run.finish(exit_code=3)
    run = wandblite.init(project=project, id="c", dir=str(runs), name="gamma-search", tags=["x", "y"],
                         config={"lr": 0.05}, notes="Look HERE", settings=_settings())
    for i in range(50):
        run.log({"loss": 0.5, "acc": 0.9 if i == 49 else 0.5})
    run.finish()
    proc = write_run(runs, project, "crash", 120, mode="pending")
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@dataclass
class Dataset:
    """A server holding the synced data set: ``project``, the ``runs`` directory, the ``backend`` name."""

    srv: ServerProc
    project: str
    runs: Path
    backend: str

    def get(self, path: str, **kw: Any) -> Any:
        r = self.srv.get(f"/api/v1/projects/{self.project}{path}", **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def api(self) -> wandblite.Api:
        return wandblite.Api(server=self.srv.url, api_key=self.srv.key)


@pytest.fixture(scope="session")
def dataset_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("qdata")
    project = uniq("q")
    write_dataset(tmp / "runs", project, tmp)
    wandblite._reset_globals()
    return project, tmp / "runs"


_SERVERS: list[ServerProc] = []


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def data(request: pytest.FixtureRequest, dataset_files: tuple[str, Path],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    """The data set synced into a real server on SQLite, then on PostgreSQL."""
    project, runs = dataset_files
    tmp = tmp_path_factory.mktemp(f"qsrv-{request.param}")
    db = str(request.getfixturevalue("postgres_url")) if request.param == "postgres" else f"sqlite:///{tmp / 's.db'}"
    srv = ServerProc(db, tmp / "media", tmp / "home").start()
    try:
        r = cli("sync", str(runs), "--server", srv.url, "--api-key", srv.key, "--json", home=tmp / "synchome")
        assert r.returncode == 0, r.stdout + r.stderr
        assert all(json.loads(line)["ok"] for line in r.stdout.splitlines() if line.strip())
        yield Dataset(srv, project, runs, request.param)
    finally:
        srv.stop()


def plain(rows: Any) -> Any:
    """Rows (with media mappings) as plain JSON values; NaN stays NaN."""
    return json.loads(json.dumps(rows, default=dict, allow_nan=True))


def canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, allow_nan=True)
