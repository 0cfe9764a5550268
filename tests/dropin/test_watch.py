"""``wandblite.watch``: 64-bin gradient/parameter histograms every ``log_freq`` steps, on the next row."""

from __future__ import annotations

from pathlib import Path

import pytest

import wandblite
from tests.conftest import run_script

torch = pytest.importorskip("torch")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))


def _train(model: torch.nn.Module, steps: int, log: bool = True) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log:
            wandblite.log({"loss": loss.item()})


def test_gradient_histograms_every_log_freq_steps_on_the_next_row(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w1")
    model = _model()
    wandblite.watch(model, log_freq=2)  # log="gradients" is the default
    _train(model, 5)
    run.finish()
    rows = list(wandblite.replay(runs_dir / "w1").scan_history())
    grads = ["gradients/0.bias", "gradients/0.weight", "gradients/2.bias", "gradients/2.weight"]
    with_hist = [r["_step"] for r in rows if "gradients/0.weight" in r]
    assert with_hist == [0, 2, 4]  # backward 0, 2, 4
    row = rows[0]
    assert sorted(k for k in row if k.startswith("gradients/")) == grads
    assert not any(k.startswith("parameters/") for r in rows for k in r)
    h = row["gradients/0.weight"]
    assert h["_type"] == "histogram" and len(h["values"]) == 64 and len(h["bins"]) == 65
    assert sum(h["values"]) == 12  # every element of the 3x4 gradient is counted once
    assert "loss" in row


def test_log_all_adds_parameter_histograms_and_prefixes_a_second_model(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w2")
    first, second = _model(), _model()
    run.watch([first, second], log="all", log_freq=1)
    _train(first, 1, log=False)
    _train(second, 1)
    run.finish()
    (row,) = wandblite.replay(runs_dir / "w2").scan_history()
    keys = set(row)
    assert {"parameters/0.weight", "gradients/0.weight", "parameters/graph_10.weight",
            "gradients/graph_12.bias"} <= keys
    assert sum(row["parameters/2.bias"]["values"]) == 1


def test_unwatch_stops_the_histograms_and_user_keys_win(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w3")
    model = _model()
    run.watch(model, log="parameters", log_freq=1)
    model(torch.randn(2, 4))
    run.log({"parameters/0.bias": 7})  # a user key of the same name wins over the histogram
    wandblite.unwatch(model)
    _train(model, 2)
    run.finish()
    rows = list(wandblite.replay(runs_dir / "w3").scan_history())
    assert rows[0]["parameters/0.bias"] == 7 and "parameters/0.weight" in rows[0]
    assert all(not k.startswith(("parameters/", "gradients/")) for r in rows[1:] for k in r)


def test_finish_removes_the_hooks(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w4")
    model = _model()
    run.watch(model, log="all", log_freq=1)
    run.finish()
    _train(model, 1, log=False)  # hooks would touch a finished run
    assert run._pending_hist is None


def test_bad_arguments_and_watch_before_init(runs_dir: Path) -> None:
    with pytest.raises(wandblite.Error, match=r"before wandb\.watch\(\)"):
        wandblite.watch(_model())
    run = wandblite.init(mode="offline", dir=str(runs_dir))
    with pytest.raises(ValueError, match="log must be one of"):
        run.watch(_model(), log="weights")
    with pytest.raises(ValueError, match=r"torch\.nn\.Module"):
        run.watch(object())
    run.finish()


def test_import_wandblite_does_not_import_torch() -> None:
    res = run_script("""
        import sys, wandblite
        assert wandblite.watch and "torch" not in sys.modules
        print("ok")
    """)
    assert res.stdout.strip() == "ok", res.stderr
