"""``wandblite.plot``: wandb's preset charts, computed with numpy alone (no scikit-learn, no pandas).

Every function returns a ``Chart`` (a ``Media``): logging it stores its data table as a table
blob and writes ``{"_type": "chart", "kind", "fields", "title", "table": <table-file ref>}``, so a
dashboard draws it from the table without recomputing (docs/semantics.md section 11).

Curves (``pr_curve``, ``roc_curve``) are one-vs-rest per class, with one point per distinct score
threshold (scores sorted descending; ties form one point), exactly as sklearn's
``precision_recall_curve`` / ``roc_curve`` would give, plus the start point (recall 0, precision 1)
or (fpr 0, tpr 0). Each class's curve is then thinned to at most ``MAX_POINTS_PER_CLASS`` (101)
points, evenly spaced along the threshold sequence and keeping both ends, and to at most
``Table.MAX_ROWS`` rows in all. (wandb samples 20 points per class; 101 keeps the curve's shape.)
A class with no positive samples (or, for ROC, no negative ones) has no curve and is skipped with
a warning.

Class columns: if ``y_true`` holds ints in ``0..C-1`` for ``y_probas`` of shape (N, C), column i is
class i (``labels[i]`` names it); otherwise column i is the i-th of the sorted distinct values of
``y_true``, which must number C.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from wandblite.data_types import Chart, Table
from wandblite.data_types._base import log
from wandblite.errors import DataError
from wandblite.term import termwarn

__all__ = [
    "Chart",
    "bar",
    "confusion_matrix",
    "histogram",
    "line",
    "line_series",
    "plot_table",
    "pr_curve",
    "roc_curve",
    "scatter",
]

MAX_POINTS_PER_CLASS = 101


def line(table: Table, x: str, y: str, stroke: str | None = None, title: str = "", split_table: bool = False) -> Chart:
    """A line chart of column ``y`` against column ``x`` (one line per ``stroke`` value)."""
    return Chart("line", table, {"x": x, "y": y, "stroke": stroke}, title)


def scatter(table: Table, x: str, y: str, title: str = "", split_table: bool = False) -> Chart:
    """A scatter plot of column ``y`` against column ``x``."""
    return Chart("scatter", table, {"x": x, "y": y}, title)


def bar(table: Table, label: str, value: str, title: str = "", split_table: bool = False) -> Chart:
    """A bar per row: ``label`` column names the bar, ``value`` column its height."""
    return Chart("bar", table, {"label": label, "value": value}, title)


# wandb's built-in Vega specs that name one of our chart kinds (their fields are the same roles).
_VEGA_KINDS = {"wandb/line/v0": "line", "wandb/scatter/v0": "scatter", "wandb/bar/v0": "bar",
               "wandb/histogram/v0": "histogram", "wandb/lineseries/v0": "line_series",
               "wandb/area-under-curve/v0": "pr_curve", "wandb/confusion_matrix/v1": "confusion_matrix"}


def plot_table(vega_spec_name: str, data_table: Table, fields: dict[str, Any],
               string_fields: dict[str, Any] | None = None, split_table: bool = False) -> Chart:
    """wandb's ``plot_table``: a chart of ``data_table`` drawn by the Vega spec ``vega_spec_name``.

    wandb's built-in specs (``wandb/line/v0``, ``wandb/scatter/v0``, ``wandb/bar/v0``,
    ``wandb/histogram/v0``, ...) are the chart kinds of this module. Any other spec lives in W&B's
    cloud: the chart is kept (kind ``custom``, the spec's name in ``string_fields["vega_spec"]``,
    the table whole) and one line on stderr says the spec itself is not available offline."""
    kind = _VEGA_KINDS.get(vega_spec_name)
    extra = dict(string_fields or {})
    if kind is None:
        kind = "custom"
        extra["vega_spec"] = vega_spec_name
        termwarn(f"plot_table: the Vega spec {vega_spec_name!r} is stored in W&B's cloud; offline the chart keeps "
                 "its table, fields and spec name, and is drawn as a table", repeat=False)
    title = str(extra.pop("title", "")) if kind != "custom" else str(extra.get("title", ""))
    return Chart(kind, data_table, {str(k): v for k, v in fields.items()}, title, extra or None)


def histogram(table: Table, value: str, title: str = "", split_table: bool = False) -> Chart:
    """A histogram of the values of one column (binned by the dashboard)."""
    return Chart("histogram", table, {"value": value}, title)


def line_series(
    xs: Sequence[Any],
    ys: Sequence[Sequence[Any]],
    keys: Sequence[str] | None = None,
    title: str | None = None,
    xname: str | None = None,
    split_table: bool = False,
) -> Chart:
    """Several lines: ``ys[i]`` against ``xs`` (shared) or ``xs[i]``; named by ``keys[i]``."""
    ys_l = [list(np.asarray(y).ravel().tolist()) for y in ys]
    if not ys_l:
        raise DataError("line_series needs at least one series in ys")
    xs_a = list(xs)
    if xs_a and isinstance(xs_a[0], (list, tuple, np.ndarray)):
        xs_l = [list(np.asarray(x).ravel().tolist()) for x in xs_a]
        if len(xs_l) != len(ys_l):
            raise DataError(f"line_series got {len(xs_l)} x series for {len(ys_l)} y series")
    else:
        shared = list(np.asarray(xs_a).ravel().tolist())
        xs_l = [shared] * len(ys_l)
    if keys is None:
        names = [f"key_{i}" for i in range(len(ys_l))]
    else:
        names = [str(k) for k in keys]
        if len(names) != len(ys_l):
            raise DataError(f"line_series got {len(names)} keys for {len(ys_l)} series")
    rows: list[list[Any]] = []
    for name, x, y in zip(names, xs_l, ys_l, strict=True):
        if len(x) != len(y):
            raise DataError(f"line_series series {name!r}: {len(x)} x values but {len(y)} y values")
        rows.extend([name, yv, xv] for xv, yv in zip(x, y, strict=True))
    table = Table(columns=["lineKey", "lineVal", "step"], data=rows)
    fields: dict[str, str | None] = {"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"}
    return Chart("line_series", table, fields, title or "", {"xname": xname or "x"})


def _curve_inputs(y_true: Any, y_probas: Any, what: str) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """(y_true, probas (N, C), class value of each column)."""
    yt = np.asarray(y_true)
    pr = np.asarray(y_probas, dtype=np.float64) if y_probas is not None else None
    if pr is None:
        raise DataError(f"{what} needs y_probas")
    if yt.ndim != 1:
        raise DataError(f"{what}: y_true must be 1-D (one class per sample), got shape {list(yt.shape)}")
    if pr.ndim == 1:
        pr = np.stack([1 - pr, pr], axis=1)
    if pr.ndim != 2:
        raise DataError(f"{what}: y_probas must be (samples, classes), got shape {list(pr.shape)}")
    if pr.shape[0] != yt.shape[0]:
        raise DataError(f"{what}: y_true has {yt.shape[0]} samples but y_probas has {pr.shape[0]}")
    if not np.all(np.isfinite(pr)):
        raise DataError(f"{what}: y_probas contains NaN or inf")
    n_cols = pr.shape[1]
    if yt.dtype == np.bool_:
        yt = yt.astype(np.int64)
    if np.issubdtype(yt.dtype, np.integer) and (yt.size == 0 or (yt.min() >= 0 and yt.max() < n_cols)):
        return yt, pr, list(range(n_cols))
    classes = np.unique(yt).tolist()
    if len(classes) != n_cols:
        raise DataError(
            f"{what}: y_probas has {n_cols} columns but y_true has {len(classes)} distinct classes; "
            "give integer class ids 0..C-1 or one column per distinct class"
        )
    return yt, pr, classes


def _class_names(classes: list[Any], labels: Sequence[Any] | None, what: str) -> list[str]:
    if labels is None:
        return [str(c) for c in classes]
    labels = list(labels)
    names = []
    for i, c in enumerate(classes):
        idx = c if isinstance(c, int) else i
        if idx >= len(labels):
            raise DataError(f"{what}: labels has {len(labels)} names but class {c!r} needs index {idx}")
        names.append(str(labels[idx]))
    return names


def _binary_counts(pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (false positives, true positives) at each distinct threshold, high to low."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], pos[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y, dtype=np.int64)[ends]
    fps = ends + 1 - tps
    return fps, tps


def _thin(n: int, cap: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def _curve_chart(
    kind: str,
    y_true: Any,
    y_probas: Any,
    labels: Sequence[Any] | None,
    classes_to_plot: Sequence[Any] | None,
    title: str,
) -> Chart:
    yt, pr, classes = _curve_inputs(y_true, y_probas, kind)
    names = _class_names(classes, labels, kind)
    wanted = [i for i, c in enumerate(classes) if classes_to_plot is None or c in list(classes_to_plot)]
    cap = max(2, min(MAX_POINTS_PER_CLASS, Table.MAX_ROWS // max(1, len(wanted))))
    rows: list[list[Any]] = []
    for i in wanted:
        pos = yt == classes[i]
        n_pos = int(pos.sum())
        n_neg = int(pos.size - n_pos)
        if n_pos == 0 or (kind == "roc_curve" and n_neg == 0):
            log.warning(f"{kind}: class {names[i]!r} has no {'positive' if n_pos == 0 else 'negative'} samples; skipped")
            continue
        fps, tps = _binary_counts(pos, pr[:, i])
        if kind == "pr_curve":
            a = np.r_[0.0, tps / n_pos]  # recall
            b = np.r_[1.0, tps / (tps + fps)]  # precision
        else:
            a = np.r_[0.0, fps / n_neg]  # fpr
            b = np.r_[0.0, tps / n_pos]  # tpr
        for k in _thin(a.size, cap):
            if kind == "pr_curve":
                rows.append([names[i], round(float(b[k]), 6), round(float(a[k]), 6)])
            else:
                rows.append([names[i], round(float(a[k]), 6), round(float(b[k]), 6)])
    if kind == "pr_curve":
        table = Table(columns=["class", "precision", "recall"], data=rows)
        fields = {"x": "recall", "y": "precision", "class": "class"}
    else:
        table = Table(columns=["class", "fpr", "tpr"], data=rows)
        fields = {"x": "fpr", "y": "tpr", "class": "class"}
    return Chart(kind, table, dict(fields), title)


def pr_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[Any] | None = None,
    classes_to_plot: Sequence[Any] | None = None,
    title: str = "Precision-Recall Curve",
    split_table: bool = False,
) -> Chart:
    """Precision against recall for each class (one-vs-rest); table ``class, precision, recall``."""
    return _curve_chart("pr_curve", y_true, y_probas, labels, classes_to_plot, title)


def roc_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[Any] | None = None,
    classes_to_plot: Sequence[Any] | None = None,
    title: str = "ROC Curve",
    split_table: bool = False,
) -> Chart:
    """True positive rate against false positive rate per class; table ``class, fpr, tpr``."""
    return _curve_chart("roc_curve", y_true, y_probas, labels, classes_to_plot, title)


def confusion_matrix(
    probs: Any = None,
    y_true: Any = None,
    preds: Any = None,
    class_names: Sequence[str] | None = None,
    title: str = "Confusion Matrix Curve",
    split_table: bool = False,
) -> Chart:
    """Counts of (actual, predicted) class pairs; table ``Actual, Predicted, nPredictions``."""
    if probs is not None and preds is not None:
        raise DataError("Only one of probs or preds should be passed in")
    if probs is None and preds is None:
        raise DataError("confusion_matrix needs probs or preds")
    if y_true is None:
        raise DataError("confusion_matrix needs y_true")
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2:
            raise DataError(f"probs must be (samples, classes), got shape {list(p.shape)}")
        if class_names is not None and p.shape[1] != len(class_names):
            raise DataError(f"probs has {p.shape[1]} classes but class_names has {len(class_names)}")
        pred = np.argmax(p, axis=1)
    else:
        pred = np.asarray(preds)
    truth = np.asarray(y_true)
    if pred.ndim != 1 or truth.ndim != 1:
        raise DataError("y_true and preds must be 1-D sequences of class indices")
    if pred.shape[0] != truth.shape[0]:
        raise DataError("Number of predictions and label indices must match")
    if class_names is not None:
        names = [str(c) for c in class_names]
        n = len(names)
        for what, a in (("y_true", truth), ("preds", pred)):
            if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= n):
                raise DataError(f"{what} must hold class indices 0..{n - 1} to match class_names")
        ti, pi = truth.astype(np.int64), pred.astype(np.int64)
    else:
        values = sorted(set(truth.tolist()) | set(pred.tolist()))
        index = {v: i for i, v in enumerate(values)}
        n = len(values)
        names = [f"Class_{i + 1}" for i in range(n)]
        ti = np.array([index[v] for v in truth.tolist()], dtype=np.int64)
        pi = np.array([index[v] for v in pred.tolist()], dtype=np.int64)
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (ti, pi), 1)
    rows = [[names[i], names[j], int(counts[i, j])] for i in range(n) for j in range(n)]
    table = Table(columns=["Actual", "Predicted", "nPredictions"], data=rows)
    fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
    return Chart("confusion_matrix", table, dict(fields), title)
