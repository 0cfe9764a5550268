"""``wandb.integration.xgboost``: XGBoost's ``WandbCallback``, logging through the active run.

Layer 5 (an integration): imports ``xgboost`` and the ``wandblite`` package. Under the drop-in
alias this module is ``wandb.integration.xgboost``. What it logs, as wandb's does:

* before training, the booster's whole config (``save_config()``, parsed) into the run's config;
* each iteration one row: ``<data>-<metric>`` (the last value of each eval metric) and ``epoch``;
  at the first, each metric's summary direction (``min`` for losses and error metrics, ``max``
  for auc, aucpr, ndcg and map);
* after training: with ``log_model``, the booster saved as ``<run.dir>/<run id>_model.json`` and
  logged as an artifact of that name (type ``model``); with ``log_feature_importance`` (the
  default), a row with the ``Feature Importance`` bar chart (``get_score(importance_type)``);
  after early stopping, a row with ``best_score`` and ``best_iteration``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import xgboost

import wandblite
from wandblite.integrations._boosting import define_metric_by_name, log_feature_importance

__all__ = ["WandbCallback"]

MINIMIZE_METRICS = ["rmse", "rmsle", "mae", "mape", "mphe", "logloss", "error", "error@t", "merror"]
MAXIMIZE_METRICS = ["auc", "aucpr", "ndcg", "map", "ndcg@n", "map@n"]


class WandbCallback(xgboost.callback.TrainingCallback):
    """Log an XGBoost training's config, eval metrics per iteration, feature importance and model."""

    def __init__(self, log_model: bool = False, log_feature_importance: bool = True, importance_type: str = "gain",
                 define_metric: bool = True) -> None:
        super().__init__()
        self.log_model = log_model
        self.log_feature_importance = log_feature_importance
        self.importance_type = importance_type
        self.define_metric = define_metric
        if wandblite.run is None:
            raise wandblite.Error("You must call wandb.init() before WandbCallback()")

    def before_training(self, model: Any) -> Any:
        wandblite.config.update(json.loads(model.save_config()))
        return model

    def after_training(self, model: Any) -> Any:
        if self.log_model:
            name = f"{wandblite.run.id}_model.json"
            path = Path(wandblite.run.dir) / name
            model.save_model(str(path))
            art = wandblite.Artifact(name=name, type="model")
            art.add_file(str(path))
            wandblite.log_artifact(art)
        if self.log_feature_importance:
            scores = model.get_score(importance_type=self.importance_type)
            log_feature_importance(scores.items())
        if model.attr("best_score") is not None:
            wandblite.log({"best_score": float(model.attr("best_score")),
                           "best_iteration": int(model.attr("best_iteration"))})
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, Any]]) -> bool:
        row: dict[str, Any] = {}
        for data, metrics in evals_log.items():
            for metric_name, values in metrics.items():
                if self.define_metric:
                    define_metric_by_name(f"{data}-{metric_name}", metric_name, MINIMIZE_METRICS, MAXIMIZE_METRICS)
                row[f"{data}-{metric_name}"] = values[-1]  # xgboost.cv: a (mean, std) pair, as wandb logs it
        row["epoch"] = epoch
        wandblite.log(row)
        self.define_metric = False
        return False
