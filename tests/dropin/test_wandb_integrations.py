"""wandb's own integrations under the drop-in runner (``python -m wandblite.integrations.run``):
``wandb.integration.keras`` (Keras 3 on the torch backend), ``.sb3``, ``.lightgbm``, ``.xgboost``,
each with the real library on tiny in-memory data, checked against the keys and steps wandb's
integration logs (wandb/integration/*/ in wandb 0.31). Each training runs in its own interpreter."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wandblite


def _run_dropin(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(script))
    full = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    full.update({"WANDBLITE_DIR": str(tmp_path / "runs"), "WANDBLITE_CONSOLE": "off",
                 "WANDBLITE_DISABLE_STATS": "1", "PYTHONHASHSEED": "0", **env})
    res = subprocess.run([sys.executable, "-m", "wandblite.integrations.run", str(path)], capture_output=True,
                         text=True, timeout=600, cwd=tmp_path, env=full)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def _rows(tmp_path: Path, run_id: str) -> list[dict]:
    return list(wandblite.replay(tmp_path / "runs" / run_id).scan_history())


KERAS = """
import numpy as np
import keras
import wandb
from wandb.integration.keras import WandbCallback, WandbEvalCallback, WandbMetricsLogger, WandbModelCheckpoint

rng = np.random.default_rng(0)
x, y = rng.random((48, 4)).astype("float32"), rng.random((48, 1)).astype("float32")

def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(1, name="out")])
    m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return m

run = wandb.init(project="keras", id="k-epoch")
hist = model().fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                   callbacks=[WandbMetricsLogger(), WandbModelCheckpoint("ckpt/model-{epoch:02d}.keras",
                                                                         monitor="val_loss")])
run.finish()
print(json.dumps(hist.history))

run = wandb.init(project="keras", id="k-batch")
model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[WandbMetricsLogger(log_freq=2)])
run.finish()

class Eval(WandbEvalCallback):
    def add_ground_truth(self, logs=None):
        for i in range(3):
            self.data_table.add_data(i, float(y[i, 0]))

    def add_model_predictions(self, epoch, logs=None):
        preds = self.model.predict(x[:3], verbose=0)
        for i in range(3):
            self.pred_table.add_data(epoch, self.data_table_ref.data[i][0], float(preds[i, 0]))

run = wandb.init(project="keras", id="k-eval")
model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Eval(["idx", "y"], ["epoch", "idx", "pred"])])
run.finish()

run = wandb.init(project="keras", id="k-legacy")
hist = model().fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                   callbacks=[WandbCallback(log_weights=True, log_gradients=True)])
run.finish()
print(json.dumps(hist.history))
""".replace("import numpy as np", "import json\nimport numpy as np", 1)


def test_keras_metrics_logger_checkpoint_and_legacy_callback(tmp_path: Path) -> None:
    if importlib.util.find_spec("keras") is None:  # not imported here: Keras picks its backend at import
        pytest.skip("keras is not installed")
    res = _run_dropin(KERAS, tmp_path, KERAS_BACKEND="torch")
    epoch_hist, legacy_hist = (json.loads(line) for line in res.stdout.strip().splitlines()[-2:])

    # WandbMetricsLogger, epoch-wise: one row per epoch, epoch/<metric> of Keras' logs, epoch/epoch, lr
    rows = _rows(tmp_path, "k-epoch")
    assert [r["epoch/epoch"] for r in rows] == [0, 1, 2]
    for key in ("loss", "mae", "val_loss", "val_mae"):
        assert [r[f"epoch/{key}"] for r in rows] == pytest.approx(epoch_hist[key], rel=1e-6)
    assert all(r["epoch/learning_rate"] == pytest.approx(0.05) for r in rows)
    rec = wandblite.replay(tmp_path / "runs" / "k-epoch")
    assert {k: m["step_metric"] for k, m in rec.metrics.items() if k != "epoch/epoch"} == {
        f"epoch/{k}": "epoch/epoch" for k in ("loss", "mae", "val_loss", "val_mae", "learning_rate")}
    # WandbModelCheckpoint: one artifact version per epoch, aliases latest + epoch_<n>
    arts = rec.artifacts
    assert [a["name"] for a in arts] == ["run_k-epoch_model"] * 3
    assert [a["aliases"] for a in arts] == [["latest", f"epoch_{i}"] for i in range(3)]
    assert [list(a["entries"]) for a in arts] == [[f"model-{i + 1:02d}.keras"] for i in range(3)]

    # batch-wise: every 2nd batch (3 batches an epoch: batches 0 and 2), batch_step counting by 2
    # (and, as wandb's does, still one epoch/ row at each epoch end)
    all_rows = _rows(tmp_path, "k-batch")
    batch_rows = [r for r in all_rows if "batch/batch_step" in r]
    assert [r["batch/batch_step"] for r in batch_rows] == [0, 2, 4, 6]
    assert [r["epoch/epoch"] for r in all_rows if "epoch/epoch" in r] == [0, 1]
    assert all("batch/loss" in r and "batch/learning_rate" in r for r in batch_rows)

    # WandbEvalCallback: the ground-truth table used as artifact "val", one prediction table per epoch
    ev = wandblite.replay(tmp_path / "runs" / "k-eval")
    assert [(a["name"], a["type"]) for a in ev.artifacts] == [("val", "dataset"), ("run_k-eval_pred", "evaluation"),
                                                              ("run_k-eval_pred", "evaluation")]
    assert [u["name"] for u in ev.uses] == ["val"]
    assert set(ev.artifacts[1]["entries"]) == {"eval_data.table.json"}

    # legacy WandbCallback: epoch + logs per row, best_val_loss / best_epoch, weights histograms
    legacy = _rows(tmp_path, "k-legacy")
    assert [r["epoch"] for r in legacy] == [0, 1, 2]
    assert [r["val_loss"] for r in legacy] == pytest.approx(legacy_hist["val_loss"], rel=1e-6)
    assert legacy[0]["parameters/hidden.weights"]["_type"] == "histogram"
    assert sum(legacy[0]["parameters/out.bias"]["values"]) == 1
    summary = wandblite.replay(tmp_path / "runs" / "k-legacy").summary
    best = min(range(3), key=lambda i: legacy_hist["val_loss"][i])
    assert summary["best_val_loss"] == pytest.approx(legacy_hist["val_loss"][best], rel=1e-6)
    assert summary["best_epoch"] == best
    assert (tmp_path / "runs" / "k-legacy" / "files" / "model-best.keras").is_file()
    assert res.stderr.count("WandbCallback(log_gradients=...) is not offered") == 1


SB3 = """
import wandb
from stable_baselines3 import PPO
from wandb.integration.sb3 import WandbCallback

run = wandb.init(project="sb3", id="sb3", sync_tensorboard=True, config={"policy_type": "MlpPolicy"})
model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0, verbose=0,
            tensorboard_log="tb", policy_kwargs={"net_arch": [8]})
model.learn(total_timesteps=128, callback=WandbCallback(model_save_path="models", model_save_freq=64,
                                                        gradient_save_freq=2, verbose=2))
run.finish()
"""


def test_sb3_callback_config_model_and_tensorboard_metrics(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    _run_dropin(SB3, tmp_path)
    rec = wandblite.replay(tmp_path / "runs" / "sb3")
    cfg = rec.config
    assert cfg["algo"] == "PPO" and cfg["policy_type"] == "MlpPolicy"
    assert cfg["n_steps"] == 64 and cfg["batch_size"] == 32 and isinstance(cfg["policy"], str)
    assert rec.files["model.zip"]["size"] > 0  # model.zip kept with the run, named under model_save_path
    rows = list(rec.scan_history())
    # SB3's own TensorBoard scalars, synced at their global steps (wandb: sync_tensorboard=True)
    tb_rows = [r for r in rows if "global_step" in r]
    assert [r["global_step"] for r in tb_rows] == [64, 128]
    assert "time/fps" in tb_rows[0] and "train/value_loss" in tb_rows[1]
    # watch(model.policy, log_freq=2, log="all"): gradient histograms ride on rows
    assert any(k.startswith("gradients/") for r in rows for k in r)
    assert any(k.startswith("parameters/") for r in rows for k in r)


LIGHTGBM = """
import numpy as np
import lightgbm as lgb
import wandb
from wandb.integration.lightgbm import log_summary, wandb_callback

rng = np.random.default_rng(0)
x = rng.random((200, 3))
y = (x[:, 0] + 0.1 * rng.random(200) > 0.5).astype(int)
train, valid = lgb.Dataset(x[:150], y[:150]), lgb.Dataset(x[150:], y[150:])
run = wandb.init(project="lgb", id="lgb")
params = {"objective": "binary", "metric": ["binary_logloss", "auc"], "num_leaves": 4, "verbose": -1, "seed": 0}
evals = {}
booster = lgb.train(params, train, num_boost_round=5, valid_sets=[train, valid], valid_names=["train", "valid"],
                    callbacks=[wandb_callback(), lgb.record_evaluation(evals)])
log_summary(booster, save_model_checkpoint=True)
run.finish()
import json
print(json.dumps(evals))
"""


def test_lightgbm_callback_and_log_summary(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    res = _run_dropin(LIGHTGBM, tmp_path)
    evals = json.loads(res.stdout.strip().splitlines()[-1])
    rec = wandblite.replay(tmp_path / "runs" / "lgb")
    rows = list(rec.scan_history())
    it_rows = [r for r in rows if "iteration" in r]
    assert [r["iteration"] for r in it_rows] == list(range(5))
    for data in ("train", "valid"):
        for metric in ("binary_logloss", "auc"):
            assert [r[f"{data}_{metric}"] for r in it_rows] == pytest.approx(evals[data][metric])
    assert rec.config["objective"] == "binary" and rec.config["num_leaves"] == 4
    assert rec.metrics["valid_binary_logloss"]["summary"] == ["min"]
    assert rec.metrics["valid_auc"]["summary"] == ["max"]
    assert rec.summary["best_iteration"] == 0
    assert rec.summary["valid_auc"] == {"max": max(evals["valid"]["auc"])}
    fi = rows[-1]["Feature Importance"]  # on the next row (commit=False), the finish's pending row
    assert fi["kind"] == "bar" and fi["fields"] == {"label": "Feature", "value": "Importance"}
    assert [a["aliases"] for a in rec.artifacts] == [["latest", "best"]]
    assert rec.artifacts[0]["name"] == "model_lgb"


XGBOOST = """
import json
import numpy as np
import xgboost as xgb
import wandb
from wandb.integration.xgboost import WandbCallback

rng = np.random.default_rng(0)
x = rng.random((200, 3))
y = (x[:, 1] > 0.5).astype(int)
dtrain, dvalid = xgb.DMatrix(x[:150], y[:150]), xgb.DMatrix(x[150:], y[150:])
run = wandb.init(project="xgb", id="xgb")
evals = {}
booster = xgb.train({"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": 2, "seed": 0},
                    dtrain, num_boost_round=6, evals=[(dtrain, "train"), (dvalid, "valid")], evals_result=evals,
                    early_stopping_rounds=3, verbose_eval=False, callbacks=[WandbCallback(log_model=True)])
run.finish()
print(json.dumps({"evals": evals, "best_iteration": booster.best_iteration, "best_score": booster.best_score}))
"""


def test_xgboost_callback(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    res = _run_dropin(XGBOOST, tmp_path)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    evals = out["evals"]
    rec = wandblite.replay(tmp_path / "runs" / "xgb")
    rows = list(rec.scan_history())
    n = len(evals["valid"]["auc"])
    it_rows = rows[:n]
    assert [r["epoch"] for r in it_rows] == list(range(n))
    for data in ("train", "valid"):
        for metric in ("logloss", "auc"):
            assert [r[f"{data}-{metric}"] for r in it_rows] == pytest.approx(evals[data][metric])
    assert rec.metrics["valid-logloss"]["summary"] == ["min"] and rec.metrics["valid-auc"]["summary"] == ["max"]
    assert "learner" in rec.config  # the booster's save_config(), parsed
    fi_row, best_row = rows[n], rows[n + 1]
    assert fi_row["Feature Importance"]["kind"] == "bar"
    assert best_row["best_iteration"] == out["best_iteration"]
    assert best_row["best_score"] == pytest.approx(out["best_score"])
    assert [a["name"] for a in rec.artifacts] == ["xgb_model.json"]


def test_integration_modules_are_importable_under_the_alias_only_with_wandb_names(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    res = _run_dropin("""
        import wandb.integration.xgboost as a
        from wandb.xgboost import WandbCallback
        import wandb
        print(a.__name__, WandbCallback is a.WandbCallback, wandb.integration.xgboost is a)
    """, tmp_path)
    assert res.stdout.split() == ["wandblite.integrations.xgboost", "True", "True"]


def test_keras_module_picks_an_installed_backend_when_tensorflow_is_missing(tmp_path: Path) -> None:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("needs keras without tensorflow")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")  # no keras.json: Keras' default would be TensorFlow
    code = "import wandblite.integrations.keras, keras; print(keras.backend.backend())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "torch"
    assert res.stderr.count("Keras runs on torch") == 1
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**env, "KERAS_BACKEND": "torch"})
    assert res.stdout.strip() == "torch" and "Keras runs on" not in res.stderr  # a chosen backend: no word
