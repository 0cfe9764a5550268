"""``wandb.integration.lightgbm``: ``wandb_callback()`` and ``log_summary(booster)``, as wandb's.

Layer 5 (an integration): imports ``lightgbm`` and the ``wandblite`` package. Under the drop-in
alias this module is ``wandb.integration.lightgbm``.

* ``wandb_callback(log_params=True, define_metric=True)``: a LightGBM callback. At the first
  iteration the booster's params go into the config and each eval metric gets its summary
  direction (``<data>_<metric>``; ``min`` for losses and the error metrics, ``max`` for auc, map
  and average_precision). Each iteration is one row: ``<data>_<metric>`` for every eval result
  (``-mean``/``-stdv`` for ``lightgbm.cv``) and ``iteration``.
* ``log_summary(model, feature_importance=True, save_model_checkpoint=False)``: the summary's
  ``best_iteration`` and ``best_score``; the ``Feature Importance`` bar chart (on the next row,
  as wandb logs it with ``commit=False``); with ``save_model_checkpoint``, the booster saved at
  its best iteration to ``<run.dir>/model_ckpt_<n>.txt`` and logged as the artifact
  ``model_<run id>`` with alias ``best``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightgbm import Booster

import wandblite
from wandblite.integrations._boosting import define_metric_by_name, log_feature_importance

__all__ = ["log_summary", "wandb_callback"]

MINIMIZE_METRICS = ["l1", "l2", "rmse", "mape", "huber", "fair", "poisson", "gamma", "binary_logloss"]
MAXIMIZE_METRICS = ["map", "auc", "average_precision"]


def _define(data: str, metric: str) -> None:
    define_metric_by_name(f"{data}_{metric}", metric, MINIMIZE_METRICS, MAXIMIZE_METRICS)


class _WandbCallback:
    """The callable LightGBM calls after each iteration (``order`` 20, after the built-in ones)."""

    def __init__(self, log_params: bool = True, define_metric: bool = True) -> None:
        self.order = 20
        self.before_iteration = False
        self.log_params = log_params
        self.define_metric_bool = define_metric

    def _init(self, env: Any) -> None:
        if self.log_params:
            wandblite.config.update(env.params)
        if not self.define_metric_bool:
            return
        for item in env.evaluation_result_list:
            if len(item) == 4:
                _define(item[0], item[1])
            else:  # lightgbm.cv: ("cv_agg", "<data> <metric>", mean, higher_better, stdv)
                data, metric = item[1].split()
                _define(data, f"{metric}-mean")
                _define(data, f"{metric}-stdv")

    def __call__(self, env: Any) -> None:
        if env.iteration == env.begin_iteration:
            self._init(env)
        row: dict[str, Any] = {}
        for item in env.evaluation_result_list:
            if len(item) == 4:
                row[f"{item[0]}_{item[1]}"] = item[2]
            else:
                data, metric = item[1].split()
                row[f"{data}_{metric}-mean"] = item[2]
                row[f"{data}_{metric}-stdv"] = item[4]
        row["iteration"] = env.iteration
        wandblite.log(row)


def wandb_callback(log_params: bool = True, define_metric: bool = True) -> Callable[..., None]:
    """The LightGBM callback that logs each iteration's eval results (see the module docstring)."""
    return _WandbCallback(log_params, define_metric)


def log_summary(model: Booster, feature_importance: bool = True, save_model_checkpoint: bool = False) -> None:
    """Best iteration and score into the summary, the feature importance chart, optionally the model."""
    if wandblite.run is None:
        raise wandblite.Error("You must call wandb.init() before WandbCallback()")
    if not isinstance(model, Booster):
        raise wandblite.Error("Model should be an instance of lightgbm.basic.Booster")
    wandblite.run.summary["best_iteration"] = model.best_iteration
    wandblite.run.summary["best_score"] = {k: dict(v) for k, v in model.best_score.items()}
    if feature_importance:
        log_feature_importance(zip(model.feature_name(), model.feature_importance().tolist()), commit=False)
    if save_model_checkpoint:
        path = Path(wandblite.run.dir) / f"model_ckpt_{model.best_iteration}.txt"
        model.save_model(str(path), num_iteration=model.best_iteration)
        art = wandblite.Artifact(f"model_{wandblite.run.id}", type="model")
        art.add_file(str(path))
        wandblite.log_artifact(art, aliases=["best"])
