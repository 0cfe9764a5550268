"""What old wandb scripts pass to ``init`` and ``config``, and the ``WANDB_*`` variables job scripts set."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import pytest

import wandblite


class FakeAbslFlags:
    """absl's FLAGS as wandb reads it: an object with ``flag_values_dict()``."""

    def flag_values_dict(self) -> dict[str, Any]:
        return {"batch_size": 32, "model": "cnn"}


# ---------------------------------------------------------------------------- config


def test_config_accepts_dicts_namespaces_and_absl_flags(runs_dir: Path) -> None:
    ns = argparse.Namespace(lr=0.1, epochs=3)
    run = wandblite.init(dir=str(runs_dir), id="c1", config=ns)
    run.config.update(FakeAbslFlags())
    wandblite.config.update({"extra": [1, 2]})
    run.config.update(argparse.Namespace(seed=7), allow_val_change=True)
    run.finish()
    assert wandblite.replay(runs_dir / "c1").config == {
        "lr": 0.1, "epochs": 3, "batch_size": 32, "model": "cnn", "extra": [1, 2], "seed": 7}


def test_config_include_and_exclude_keys(runs_dir: Path) -> None:
    cfg = {"lr": 0.1, "secret": "x", "epochs": 3}
    wandblite.init(dir=str(runs_dir), id="c2", config=cfg, config_exclude_keys=["secret"]).finish()
    assert wandblite.replay(runs_dir / "c2").config == {"lr": 0.1, "epochs": 3}
    wandblite.init(dir=str(runs_dir), id="c3", config=argparse.Namespace(**cfg), config_include_keys=["lr"]).finish()
    assert wandblite.replay(runs_dir / "c3").config == {"lr": 0.1}


def test_config_update_setdefaults_as_dict_and_item_access(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="c4", config={"lr": 0.1})
    run.config.setdefaults({"lr": 0.5, "momentum": 0.9})
    run.config["model/num_parameters"] = 1234
    run.config.dropout = 0.2
    assert run.config.as_dict() == {"lr": 0.1, "momentum": 0.9, "model/num_parameters": 1234, "dropout": 0.2}
    assert run.config.lr == 0.1 and run.config.get("missing", "d") == "d"
    with pytest.raises(wandblite.ConfigError, match="allow_val_change=True"):
        run.config.update({"lr": 0.2})
    run.config.update({"lr": 0.2}, allow_val_change=True)
    run.finish()
    assert wandblite.replay(runs_dir / "c4").config["lr"] == 0.2


# ---------------------------------------------------------------------------- log()


def test_log_with_no_data_commits_the_pending_row(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="l1")
    wandblite.log({"a": 1}, commit=False)
    wandblite.log({"b": 2}, commit=False)
    wandblite.log()
    run.log({"c": 3})
    run.finish()
    rows = [{k: v for k, v in r.items() if not k.startswith("_") or k == "_step"}
            for r in wandblite.replay(runs_dir / "l1").scan_history()]
    assert rows == [{"a": 1, "b": 2, "_step": 0}, {"c": 3, "_step": 1}]


# ---------------------------------------------------------------------------- modes, settings


def test_online_says_once_that_wandblite_logs_offline_first(runs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    importlib.import_module("wandblite.term")._warned_once.clear()  # the once-per-process memory
    wandblite.init(dir=str(runs_dir), id="m1", mode="online").finish()
    wandblite.init(dir=str(runs_dir), id="m2", mode="online").finish()
    err = capsys.readouterr().err
    assert err.count("logs offline first") == 1
    assert wandblite.replay(runs_dir / "m1").state == "finished"
    assert wandblite.replay(runs_dir / "m2").state == "finished"
    wandblite.init(dir=str(runs_dir), id="m3", mode="offline").finish()
    assert "logs offline first" not in capsys.readouterr().err


def test_settings_setup_and_require_are_accepted(runs_dir: Path) -> None:
    wandblite.setup(settings=wandblite.Settings(silent=True))
    assert wandblite.require("service") is None
    run = wandblite.init(dir=str(runs_dir), id="s1",
                         settings=wandblite.Settings(start_method="thread", _disable_meta=True, console="off"))
    run.log({"x": 1})
    run.finish()
    assert wandblite.replay(runs_dir / "s1").summary["x"] == 1


# ---------------------------------------------------------------------------- WANDB_* variables


def test_wandb_env_vars_set_every_run_attribute(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "WANDB_PROJECT": "proj", "WANDB_ENTITY": "team", "WANDB_NAME": "nice-name", "WANDB_RUN_ID": "envid",
        "WANDB_DIR": str(runs_dir), "WANDB_TAGS": "a,b", "WANDB_NOTES": "some notes",
        "WANDB_RUN_GROUP": "grp", "WANDB_JOB_TYPE": "train", "WANDB_MODE": "dryrun",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    run = wandblite.init()
    assert run.path == str(runs_dir / "envid")
    run.finish()
    r = wandblite.replay(runs_dir / "envid")
    assert (r.project, r.entity, r.name, r.id, list(r.tags), r.notes, r.group, r.job_type) == (
        "proj", "team", "nice-name", "envid", ["a", "b"], "some notes", "grp", "train")


def test_wandblite_env_vars_win_over_wandb_ones(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-wandb")
    monkeypatch.setenv("WANDBLITE_PROJECT", "from-lite")
    monkeypatch.setenv("WANDB_DIR", str(runs_dir / "nope"))
    monkeypatch.setenv("WANDBLITE_DIR", str(runs_dir))
    run = wandblite.init(id="both")
    run.finish()
    assert wandblite.replay(runs_dir / "both").project == "from-lite"


def test_wandb_resume_and_run_id_resume_the_same_run(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_DIR", str(runs_dir))
    monkeypatch.setenv("WANDB_RUN_ID", "again")
    wandblite.init().finish()
    with pytest.raises(wandblite.Error):
        wandblite.init()  # without resume an existing id is refused
    monkeypatch.setenv("WANDB_RESUME", "allow")
    run = wandblite.init()
    run.log({"x": 1})
    run.finish()
    r = wandblite.replay(runs_dir / "again")
    assert len(r.attempts) == 2 and r.summary["x"] == 1


def test_wandb_mode_offline_and_disabled(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_DIR", str(runs_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    wandblite.init(id="off").finish()
    assert wandblite.replay(runs_dir / "off").state == "finished"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandblite.init(id="dis").disabled
    assert not (runs_dir / "dis").exists()


def test_wandb_silent_hides_wandblite_messages(runs_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from wandblite.term import termwarn

    monkeypatch.setenv("WANDB_SILENT", "true")
    termwarn("you should not see this")
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("WANDB_SILENT")
    termwarn("now you do")
    assert "now you do" in capsys.readouterr().err


def test_wandb_api_key_and_base_url_reach_the_sync_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from wandblite.login import credentials

    monkeypatch.setenv("WANDB_API_KEY", "key123")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    assert credentials() == {"server": "http://127.0.0.1:9", "api_key": "key123"}
