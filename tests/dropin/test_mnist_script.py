"""A wandb script in PyTorch MNIST style (``examples/mnist_torch.py``, synthetic data) run unchanged under
the drop-in runner: lists of ``wandb.Image(tensor)``, ``wandb.watch(model, log_freq=k)``, a Table of image
tensors. Its history has exactly the rows and keys wandb's rules give, and the same as the real wandb's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wandblite

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "mnist_torch.py"
PARAMS = ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc1.bias", "fc1.weight", "fc2.bias",
          "fc2.weight"]
ARGS = ["--epochs", "2", "--batch-size", "8", "--train-size", "48", "--log-freq", "5"]


def _expected_keys() -> list[list[str]]:
    """The rules, applied by hand: 6 batches an epoch, each a backward and a ``loss`` row; the 5th and
    the 10th backward (log_freq=5, counted as wandb counts) put gradient histograms on their batch's row;
    each epoch ends with a test row; the table is the last row."""
    rows: list[list[str]] = []
    backward = 0
    for _epoch in range(2):
        for _batch in range(6):
            backward += 1
            grads = [f"gradients/{p}" for p in PARAMS] if backward % 5 == 0 else []
            rows.append(sorted(["loss", *grads]))
        rows.append(["accuracy", "examples", "test_loss"])
    rows.append(["predictions"])
    return rows


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    env.update({"WANDBLITE_CONSOLE": "off", "WANDBLITE_DISABLE_STATS": "1", "CUDA_VISIBLE_DEVICES": "", **extra})
    return env


def _run(argv: list[str], tmp_path: Path, env: dict[str, str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]


def _wandblite_history(tmp_path: Path) -> tuple[Any, list[dict[str, Any]]]:
    from wandblite.runfile import find_runs

    _run([sys.executable, "-m", "wandblite.integrations.run", str(SCRIPT), *ARGS], tmp_path,
         _env(tmp_path, WANDB_DIR=str(tmp_path / "runs")))
    (run_dir,) = find_runs(tmp_path / "runs")
    r = wandblite.replay(run_dir)
    return r, list(r.scan_history())


def _user_keys(row: dict[str, Any]) -> list[str]:
    return sorted(k for k in row if not k.startswith("_"))


def test_mnist_style_script_has_exactly_the_rows_and_keys_the_rules_give(tmp_path: Path) -> None:
    r, rows = _wandblite_history(tmp_path)
    assert r.state == "finished" and r.config["log_freq"] == 5
    assert [row["_step"] for row in rows] == list(range(15))
    assert [_user_keys(row) for row in rows] == _expected_keys()
    assert [row["_step"] for row in rows if "gradients/fc1.weight" in row] == [4, 10]  # backward 5 and 10
    h = rows[4]["gradients/conv1.weight"]
    assert h["_type"] == "histogram" and len(h["values"]) == 64 and sum(h["values"]) == 4 * 1 * 3 * 3
    examples = rows[6]["examples"]
    assert (examples["_type"], examples["count"], examples["width"], examples["height"]) == (
        "images/separated", 4, 28, 28)
    assert all(c.startswith("Pred: ") for c in examples["captions"])
    from wandblite.media import wrap_media

    table = wrap_media(rows[14]["predictions"], r.path).open()
    assert table["columns"] == ["image", "prediction", "truth"] and len(table["data"]) == 5
    for image, pred, truth in table["data"]:  # tensor cells are plain ints, images are image files
        assert image["_type"] == "image-file" and (image["width"], image["height"]) == (28, 28)
        assert isinstance(pred, int) and isinstance(truth, int)


def test_the_real_wandb_writes_the_same_history(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    from tests.interop import wandb_log

    _r, ours = _wandblite_history(tmp_path)
    real_dir = tmp_path / "real"
    _run([sys.executable, str(SCRIPT), *ARGS], tmp_path,
         _env(tmp_path, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(real_dir)))
    (log_file,) = real_dir.glob("wandb/offline-run-*/run-*.wandb")
    theirs = wandb_log.read_run(log_file)["history"]
    assert [(row["_step"], _user_keys(row)) for row in theirs] == [(row["_step"], _user_keys(row)) for row in ours]
    assert [row.get("loss") for row in theirs] == [row.get("loss") for row in ours]  # same seed, same numbers
    for step in (4, 10):
        for p in PARAMS:
            a, b = theirs[step][f"gradients/{p}"], ours[step][f"gradients/{p}"]
            assert a["values"] == b["values"]  # the same counts (wandb writes them as floats)
            assert a["bins"] == b["bins"]  # the same float32 edges
