"""``wandblite sync --to wandb|mlflow`` and the functions it and ``export --format tensorboard`` call."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from wandblite_cli.interop import sync_to
from wandblite_cli.main import cli

from tests.interop.conftest import need
from wandblite.interop.common import InteropError


def test_sync_has_the_to_option() -> None:
    res = CliRunner().invoke(cli, ["sync", "--help"])
    assert "--to [wandb|mlflow]" in res.output and "--tracking-uri" in res.output


def test_unreachable_mlflow_fails_every_run_fast_with_one_line_each(
        make_scalar_run: Callable[..., Path], tmp_path: Path) -> None:
    need("mlflow")
    make_scalar_run(run_id="r1", rows=2)
    make_scalar_run(run_id="r2", rows=2)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "from wandblite_cli.main import main; main()", "sync", str(tmp_path / "runs"), "--to", "mlflow",
                           "--tracking-uri", "http://127.0.0.1:1"], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WANDBLITE_HOME": str(tmp_path / "h")})
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"wandblite: run {rid}: cannot reach MLflow at http://127.0.0.1:1 (connection refused); "
                     "start the tracking server or fix --tracking-uri" for rid in ("r1", "r2")]


def test_json_output_and_a_second_call_sends_nothing(mlflow_server: str, make_scalar_run: Callable[..., Path],
                                                     tmp_path: Path) -> None:
    make_scalar_run(run_id="c1", rows=3)
    make_scalar_run(run_id="c2", rows=3)
    args = ["sync", str(tmp_path / "runs"), "--to", "mlflow", "--tracking-uri", mlflow_server, "--experiment", "cli",
            "--json"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    objs = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(o["run_id"], o["status"], o["rows"]) for o in objs] == [("c1", "synced", 3), ("c2", "synced", 3)]
    second = CliRunner().invoke(cli, args)
    assert [json.loads(line)["status"] for line in second.stdout.splitlines()] == ["unchanged", "unchanged"]


def test_one_failing_run_never_blocks_the_others(mlflow_server: str, make_scalar_run: Callable[..., Path],
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wandblite.interop import mlflow_target

    make_scalar_run(run_id="bad", rows=2)
    make_scalar_run(run_id="good", rows=2)
    real = mlflow_target.sync_run

    def flaky(run_dir: Path, target: mlflow_target.MlflowTarget) -> mlflow_target.SyncOutcome:
        if Path(run_dir).name == "bad":
            raise InteropError("injected failure")
        return real(run_dir, target)

    monkeypatch.setattr(mlflow_target, "sync_run", flaky)
    lines: list[str] = []
    code = sync_to("mlflow", [tmp_path / "runs"], tracking_uri=mlflow_server, experiment="flaky", log=lines.append)
    assert code == 1
    assert lines[0] == "run bad: unexpected InteropError: injected failure"
    assert lines[1].startswith("run good (finished): sent 2 rows")


def test_usage_errors_exit_2(make_scalar_run: Callable[..., Path], tmp_path: Path) -> None:
    make_scalar_run(rows=1)
    lines: list[str] = []
    assert sync_to("mlflow", [tmp_path / "runs"], log=lines.append) == 2
    assert "--tracking-uri" in lines[-1]
    assert sync_to("neptune", [tmp_path / "runs"], log=lines.append) == 2
    res = CliRunner().invoke(cli, ["sync", str(tmp_path / "runs"), "--to", "neptune"])
    assert res.exit_code == 2


def test_wandb_offline_through_the_cli(wandb_offline: Path, make_scalar_run: Callable[..., Path],
                                       tmp_path: Path) -> None:
    make_scalar_run(run_id="w1", rows=3)
    lines: list[str] = []
    assert sync_to("wandb", [tmp_path / "runs"], log=lines.append, project="elsewhere") == 0
    assert lines[0].startswith("run w1 (finished): sent 3 rows")
    assert list((wandb_offline / "wandb").glob("offline-run-*-w1/run-w1.wandb"))
