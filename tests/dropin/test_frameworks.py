"""Real frameworks that ``import wandb`` themselves, logging into wandblite run files (CPU, no network).

Each training runs in its own interpreter so the opt-in never leaks into the test process. The
models are tiny and built from configs; the data is made in memory; nothing is downloaded
(``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wandblite

HF_SCRIPT = """
import sys
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


class Tiny(torch.utils.data.Dataset):
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 100, (n, 8), generator=g)
        self.y = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "attention_mask": torch.ones(8, dtype=torch.long), "labels": self.y[i]}


torch.manual_seed(0)
cfg = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                 vocab_size=100, num_labels=2)
args = TrainingArguments(output_dir=sys.argv[1], report_to="wandb", run_name="hf-tiny-bert", max_steps=6,
                         logging_steps=2, per_device_train_batch_size=8, use_cpu=True, save_strategy="no",
                         learning_rate=1e-3, disable_tqdm=True)
Trainer(model=BertForSequenceClassification(cfg), args=args, train_dataset=Tiny()).train()
"""

PL_SCRIPT = """
import sys
import wandblite.integrations
wandblite.integrations.as_wandb()
import torch
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger


class TinyMLP(L.LightningModule):
    def __init__(self, lr=0.05, hidden=8):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
ds = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
logger = WandbLogger(name="pl-tiny-mlp", project="lightning-tiny", save_dir=sys.argv[1], offline=True)
model = TinyMLP()
logger.watch(model, log="gradients", log_freq=2)
trainer = L.Trainer(max_steps=8, logger=logger, log_every_n_steps=2, accelerator="cpu", enable_progress_bar=False,
                    enable_checkpointing=False, enable_model_summary=False, callbacks=[LearningRateMonitor()])
trainer.fit(model, torch.utils.data.DataLoader(ds, batch_size=8))
logger.experiment.summary["final_note"] = "done"
print("RUN", logger.experiment.id)
"""


def _run(argv: list[str], tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    full.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
                 "WANDBLITE_CONSOLE": "off", "WANDBLITE_DISABLE_STATS": "1", "CUDA_VISIBLE_DEVICES": "", **env})
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=full)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return res


def _only_run(root: Path) -> wandblite.Replay:
    from wandblite.runfile import find_runs

    (run_dir,) = find_runs(root)
    return wandblite.replay(run_dir)


def test_transformers_trainer_report_to_wandb_logs_into_wandblite(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    script = tmp_path / "hf_train.py"
    script.write_text(textwrap.dedent(HF_SCRIPT))
    # The script never imports wandblite: the runner opts in for it.
    _run([sys.executable, "-m", "wandblite.integrations.run", str(script), str(tmp_path / "out")], tmp_path,
         {"WANDB_DIR": str(tmp_path / "runs"), "WANDB_PROJECT": "hf-proj", "WANDB_WATCH": "gradients",
          "WANDB_LOG_MODEL": "end"})
    r = _only_run(tmp_path / "runs")
    assert (r.project, r.name, r.state) == ("hf-proj", "hf-tiny-bert", "finished")
    assert r.config["learning_rate"] == 1e-3 and r.config["max_steps"] == 6
    assert r.config["model/num_parameters"] > 0 and r.config["hidden_size"] == 32
    rows = list(r.scan_history())
    train = [row for row in rows if "train/loss" in row]
    assert [row["train/global_step"] for row in train] == [2, 4, 6]
    lrs = [row["train/learning_rate"] for row in train]
    assert lrs[0] < 1e-3 and lrs == sorted(lrs, reverse=True)  # linear decay
    # WANDB_WATCH -> wandb.watch(model, log_freq=max(100, logging_steps)): 6 backward passes never reach
    # the 100th, so wandb writes no gradient histograms, and neither does wandblite
    assert not any(k.startswith("gradients/") for row in rows for k in row)
    assert not any(k.startswith("gradients/") for k in r.summary)
    for key in ("train_runtime", "train_loss", "total_flos", "train/loss", "train/learning_rate"):
        assert key in r.summary
    # WANDB_LOG_MODEL=end: the architecture at setup, the model at the end (Artifact.new_file + log_artifact)
    base, final = r.artifacts
    assert (base["name"], base["version"], base["aliases"]) == ("model-hf-tiny-bert", 0, ["latest", "base_model"])
    assert (final["name"], final["version"], final["aliases"]) == ("model-hf-tiny-bert", 1, ["latest", "final_model"])
    assert final["type"] == "model" and {"config.json", "model.safetensors"} <= set(final["entries"])
    assert final["metadata"]["final_model"] is True


def test_lightning_wandb_logger_logs_into_wandblite(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    script = tmp_path / "pl_train.py"
    script.write_text(textwrap.dedent(PL_SCRIPT))
    res = _run([sys.executable, str(script), str(tmp_path / "runs")], tmp_path, {})
    run_id = res.stdout.split("RUN", 1)[1].split()[0]
    r = wandblite.replay(tmp_path / "runs" / run_id)
    assert (r.project, r.name, r.state) == ("lightning-tiny", "pl-tiny-mlp", "finished")
    assert r.config == {"lr": 0.05, "hidden": 8}
    rows = list(r.scan_history())
    losses = [row for row in rows if "train_loss" in row]
    assert [row["trainer/global_step"] for row in losses] == [1, 3, 5, 7]
    assert any(row.get("lr-SGD") == 0.05 for row in rows)  # LearningRateMonitor
    assert any("gradients/net.0.weight" in row for row in rows)  # logger.watch -> run.watch
    assert r.summary["final_note"] == "done" and "train_loss" in r.summary and "lr-SGD" in r.summary
    # WandbLogger.watch passes log_graph=True: the module tree of the first forward pass is graph_0
    from wandblite.media import wrap_media

    graph = wrap_media(r.summary["graph_0"], r.path).open()
    nodes = {n["name"]: n for n in graph["nodes"]}
    assert nodes[""]["class_name"] == "TinyMLP" and nodes[""]["total_parameters"] == 4 * 8 + 8 + 8 + 1
    assert nodes["net.0"]["parameters"] == [["weight", [8, 4]], ["bias", [8]]]
    assert nodes["net"]["input_shape"] == [[8, 4]] and nodes["net.2"]["output_shape"] == [[8, 1]]
