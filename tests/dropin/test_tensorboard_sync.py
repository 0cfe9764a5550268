"""``init(sync_tensorboard=True)`` / ``wandb.tensorboard.patch()``: what a TensorBoard SummaryWriter
writes is also in the run's history, one row per TensorBoard step with ``global_step``, as wandb's
sync does (wandb/integration/tensorboard). The event files are still written, and kept with the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import wandblite

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")


@pytest.fixture(autouse=True)
def _unpatched() -> Iterator[None]:
    yield
    wandblite.tensorboard.unpatch()


# A cleanrl-style loop (ppo.py's shape): episodic returns at irregular global steps, losses each update.
CLEANRL = """
import json, sys
import numpy as np
import wandblite as wandb
from torch.utils.tensorboard import SummaryWriter

runs, tb = sys.argv[1], sys.argv[2]
wandb.init(project="cleanrl", sync_tensorboard=True, config={"lr": 2.5e-4}, name="ppo", id="rl1", dir=runs,
           save_code=True, monitor_gym=True)
writer = SummaryWriter(tb)
writer.add_text("hyperparameters", "|param|value|\\n|-|-|\\n|lr|0.00025|")
rng = np.random.default_rng(0)
written = []
global_step = 0
for update in range(1, 6):
    for _ in range(3):
        global_step += 4
        if rng.random() < 0.5:
            ret = float(rng.integers(5, 50))
            writer.add_scalar("charts/episodic_return", ret, global_step)
            written.append([global_step, "charts/episodic_return", ret])
    lr, vloss = 2.5e-4 * (1 - update / 6), float(rng.random())
    writer.add_scalar("charts/learning_rate", lr, global_step)
    writer.add_scalar("losses/value_loss", vloss, global_step)
    written += [[global_step, "charts/learning_rate", lr], [global_step, "losses/value_loss", vloss]]
writer.close()
wandb.finish()
print(json.dumps(written))
"""


def test_cleanrl_style_script_history_equals_what_the_summary_writer_wrote(tmp_path: Path) -> None:
    runs, tb = tmp_path / "runs", tmp_path / "tb" / "ppo"
    script = tmp_path / "ppo_cleanrl.py"
    script.write_text(CLEANRL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    proc = subprocess.run([sys.executable, str(script), str(runs), str(tb)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**env, "WANDBLITE_CONSOLE": "off"})
    assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout.strip().splitlines()[-1])
    expected: dict[int, dict[str, float]] = {}
    for step, tag, value in written:
        expected.setdefault(step, {})[tag] = float(np.float32(value))  # simple_value is a float32
    rows = list(wandblite.replay(runs / "rl1").scan_history())
    got = {r["global_step"]: {k: v for k, v in r.items() if not k.startswith("_") and k != "global_step"}
           for r in rows}
    assert [r["global_step"] for r in rows] == sorted(expected)  # one row per TensorBoard step, in order
    assert got == expected
    assert [r["_step"] for r in rows] == list(range(len(rows)))
    # the text summary stays in the event file, and says so once
    assert proc.stderr.count("text summaries stay in the event file") == 1
    assert proc.stderr.count("monitor_gym=True is not offered") == 1
    # the event files are kept with the run (wandb uploads them with save=True)
    assert list((runs / "rl1" / "files" / "ppo").glob("events.out.tfevents.*"))
    # save_code=True (cleanrl passes it): the script is kept as files/code/<path>, as wandb keeps it
    assert (runs / "rl1" / "files" / "code" / "ppo_cleanrl.py").read_text() == CLEANRL
    assert "code/ppo_cleanrl.py" in wandblite.replay(runs / "rl1").files


def test_patch_syncs_images_and_histograms_as_wandb_types(runs_dir: Path, tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    wandblite.tensorboard.patch()
    run = wandblite.init(dir=str(runs_dir), id="tb2")
    writer = SummaryWriter(str(tmp_path / "tb"))
    img = np.zeros((3, 8, 6), dtype=np.float32)
    img[0] = 1.0  # a red CHW image
    writer.add_image("samples/input", img, 3)
    data = np.arange(100, dtype=np.float64)
    writer.add_histogram("weights", data, 3)
    writer.add_scalar("loss", 0.5, 3)
    writer.add_scalar("loss", 0.25, 7)
    writer.close()
    run.finish()
    rows = list(wandblite.replay(runs_dir / "tb2").scan_history())
    assert [r["global_step"] for r in rows] == [3, 7]
    first = rows[0]
    assert first["loss"] == 0.5 and rows[1]["loss"] == 0.25
    images = first["samples_input"].media()  # wandb replaces "/" in image tags; a list of one image
    assert len(images) == 1
    pixels = np.asarray(images[0].open().convert("RGB"))
    assert pixels.shape[:2] == (8, 6) and tuple(pixels[0, 0, :3]) == (255, 0, 0)
    hist = first["weights"]
    assert hist["_type"] == "histogram"
    assert sum(hist["values"]) == 100
    assert len(hist["bins"]) == len(hist["values"]) + 1
    assert hist["bins"][0] <= 0.0 and hist["bins"][-1] >= 99.0


def test_patch_twice_raises_as_wandb_and_unpatch_restores_the_writer() -> None:
    import torch.utils.tensorboard.writer as tw

    original = tw.EventFileWriter
    wandblite.tensorboard.patch()
    assert tw.EventFileWriter is not original
    assert ["torch.utils.tensorboard.writer", "EventFileWriter"] in wandblite.patched["tensorboard"]
    with pytest.raises(ValueError, match="already patched"):
        wandblite.tensorboard.patch()
    wandblite.tensorboard.unpatch()
    assert tw.EventFileWriter is original and wandblite.patched["tensorboard"] == []


def test_events_written_before_init_are_not_synced_and_say_so(runs_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    wandblite.tensorboard.patch()
    writer = SummaryWriter(str(tmp_path / "tb"))
    writer.add_scalar("early", 1.0, 0)
    run = wandblite.init(dir=str(runs_dir), id="tb3")
    writer.add_scalar("late", 2.0, 1)
    writer.close()
    run.finish()
    rows = list(wandblite.replay(runs_dir / "tb3").scan_history())
    assert rows == [{**rows[0], "late": 2.0, "global_step": 1}] and "early" not in rows[0]
    assert "no run is active" in capsys.readouterr().err


def test_several_writers_under_a_root_logdir_get_prefixed_tags(runs_dir: Path, tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "tb"
    wandblite.tensorboard.patch(root_logdir=str(root))
    run = wandblite.init(dir=str(runs_dir), id="tb4")
    train, val = SummaryWriter(str(root / "train")), SummaryWriter(str(root / "val"))
    for step in (1, 2):
        train.add_scalar("loss", 1.0 / step, step)
        val.add_scalar("loss", 2.0 / step, step)
    train.close()
    val.close()
    run.finish()
    rows = list(wandblite.replay(runs_dir / "tb4").scan_history())
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    assert clean == [
        {"train/loss": 1.0, "train/global_step": 1, "val/loss": 2.0, "val/global_step": 1, "global_step": 1},
        {"train/loss": 0.5, "train/global_step": 2, "val/loss": 1.0, "val/global_step": 2, "global_step": 2},
    ]


def test_init_without_sync_tensorboard_leaves_the_writer_alone(runs_dir: Path) -> None:
    import torch.utils.tensorboard.writer as tw

    original = tw.EventFileWriter
    wandblite.init(dir=str(runs_dir), id="tb5").finish()
    assert tw.EventFileWriter is original
    run = wandblite.init(dir=str(runs_dir), id="tb6", settings=wandblite.Settings(sync_tensorboard=True))
    assert tw.EventFileWriter is not original
    run.finish()
    assert tw.EventFileWriter is original  # init's patch ends with the run, as wandb's teardown does


def test_tensorboardx_summary_writer_is_synced_too(runs_dir: Path, tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX")
    run = wandblite.init(dir=str(runs_dir), id="tbx1", sync_tensorboard=True)
    writer = tbx.SummaryWriter(str(tmp_path / "tbx"))
    for step in range(3):
        writer.add_scalar("reward", float(step * 10), step)
    writer.add_histogram("actions", np.array([0, 1, 1, 2, 2, 2]), 2)
    writer.close()
    run.finish()
    rows = list(wandblite.replay(runs_dir / "tbx1").scan_history())
    assert [(r["global_step"], r["reward"]) for r in rows] == [(0, 0.0), (1, 10.0), (2, 20.0)]
    assert sum(rows[2]["actions"]["values"]) == 6


def test_add_scalars_and_new_style_scalars(runs_dir: Path, tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = wandblite.init(dir=str(runs_dir), id="tb7", sync_tensorboard=True)
    writer = SummaryWriter(str(tmp_path / "tb"))
    writer.add_scalar("lr", 0.125, 1, new_style=True)  # a tensor of the scalars plugin, not a simple_value
    writer.add_scalars("loss", {"train": 1.0, "val": 2.0}, 1)  # one sub-writer per curve, below the logdir
    writer.close()
    run.finish()
    rows = list(wandblite.replay(runs_dir / "tb7").scan_history())
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    assert clean == [{"lr": 0.125, "global_step": 1, "loss_train/loss": 1.0, "loss_train/global_step": 1,
                      "loss_val/loss": 2.0, "loss_val/global_step": 1}]
