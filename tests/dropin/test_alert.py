"""``run.alert`` / ``wandblite.alert``: recorded with the run, listed by replay, shown by ``wandblite show``."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from wandblite_cli.main import cli

import wandblite


def test_alerts_are_recorded_and_replayed(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="a1")
    run.alert("loss diverged", "loss is nan at step 3", level="ERROR", wait_duration=datetime.timedelta(minutes=5))
    wandblite.alert(title="done", text="training finished")
    wandblite.alert("careful", "lr high", level=wandblite.AlertLevel.WARN, wait_duration=30)
    run.finish()
    alerts = wandblite.replay(runs_dir / "a1").alerts
    assert alerts == [
        {"title": "loss diverged", "text": "loss is nan at step 3", "level": "ERROR", "wait_duration": 300.0},
        {"title": "done", "text": "training finished", "level": "INFO", "wait_duration": None},
        {"title": "careful", "text": "lr high", "level": "WARN", "wait_duration": 30.0},
    ]


def test_bad_level_raises_and_records_nothing(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="a2")
    with pytest.raises(wandblite.DataError):
        run.alert("t", "x", level="LOUD")
    run.finish()
    assert wandblite.replay(runs_dir / "a2").alerts == []


def test_alert_before_init_is_wandbs_preinit_error() -> None:
    with pytest.raises(wandblite.Error, match=r"before wandb\.alert\(\)"):
        wandblite.alert("t", "x")


def test_show_prints_alerts_files_and_artifacts(runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 10)
    run = wandblite.init(dir=str(runs_dir), id="s1")
    run.alert("slow", "epoch took 2h", level="WARN")
    run.save("weights.bin", policy="now")
    art = wandblite.Artifact("model", type="model")
    art.add_file(str(tmp_path / "weights.bin"))
    run.log_artifact(art, aliases=["best"])
    run.finish()
    result = CliRunner().invoke(cli, ["show", str(runs_dir / "s1")])
    assert result.exit_code == 0, result.output
    assert "[WARN] slow: epoch took 2h" in result.output
    assert "weights.bin  10 bytes  (now)" in result.output
    assert "model:v0  model  1 file(s)  aliases latest, best" in result.output
    result = CliRunner().invoke(cli, ["show", str(runs_dir / "s1"), "--json"])
    doc = json.loads(result.output)
    assert doc["alerts"][0]["title"] == "slow"
    assert doc["files"]["weights.bin"]["size"] == 10
    assert doc["artifacts"][0]["name"] == "model"
