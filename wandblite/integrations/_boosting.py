"""What the LightGBM and XGBoost integrations share: the summary direction of a metric by its name,
and the feature-importance bar chart.

Layer 5. The ``wandblite`` package only; neither booster library is imported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import wandblite

__all__ = ["define_metric_by_name", "log_feature_importance"]


def define_metric_by_name(key: str, metric_name: str, minimize: Iterable[str], maximize: Iterable[str]) -> None:
    """``define_metric(key, summary="min"|"max")`` when the metric's name says which way is better
    (a name holding ``loss``, or one of ``minimize``: min; one of ``maximize``: max); else nothing."""
    name = metric_name.lower()
    if "loss" in name or name in minimize:
        wandblite.define_metric(key, summary="min")
    elif name in maximize:
        wandblite.define_metric(key, summary="max")


def log_feature_importance(pairs: Iterable[tuple[Any, Any]], commit: bool | None = None) -> None:
    """One ``Feature Importance`` bar chart (columns ``Feature``, ``Importance``), as wandb logs it."""
    table = wandblite.Table(data=[[f, v] for f, v in pairs], columns=["Feature", "Importance"])
    chart = wandblite.plot.bar(table, "Feature", "Importance", title="Feature Importance")
    wandblite.log({"Feature Importance": chart}, commit=commit)
