"""wandblite.plot: curves checked against a brute-force definition, chart JSON, and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandblite import plot
from wandblite.data_types import Media, Table
from wandblite.errors import DataError
from wandblite.media import MediaStore


def _brute(pos: np.ndarray, s: np.ndarray) -> list[tuple[float, float, float, float]]:
    """(recall, precision, fpr, tpr) at each distinct threshold, high to low: by definition."""
    out = []
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        tp = int((pred & pos).sum())
        fp = int((pred & ~pos).sum())
        out.append((tp / pos.sum(), tp / (tp + fp), fp / (~pos).sum(), tp / pos.sum()))
    return out


def _rows(store: MediaStore, run_dir: Path, chart: Any, table: Any) -> tuple[dict[str, Any], list[list[Any]]]:
    j = chart.to_json(store, "curve", 3)
    return j, table(run_dir, j["table"])["data"]


def test_pr_and_roc_curves_match_the_definition(store: MediaStore, run_dir: Path, table: Any) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    p = rng.random((60, 3)).round(2)  # ties on purpose
    p /= p.sum(axis=1, keepdims=True)
    j, rows = _rows(store, run_dir, plot.pr_curve(y, p, labels=["a", "b", "c"]), table)
    assert j["_type"] == "chart" and j["kind"] == "pr_curve"
    assert j["fields"] == {"x": "recall", "y": "precision", "class": "class"}
    assert j["table"]["_type"] == "table-file" and j["table"]["path"].startswith("media/table/curve_table_3_")
    assert table(run_dir, j["table"])["columns"] == ["class", "precision", "recall"]
    for c, name in enumerate(["a", "b", "c"]):
        expect = _brute(y == c, p[:, c])
        got = [(r[2], r[1]) for r in rows if r[0] == name]
        assert got[0] == (0.0, 1.0)
        assert np.allclose(got[1:], [(e[0], e[1]) for e in expect], atol=1e-6)
    j, rows = _rows(store, run_dir, plot.roc_curve(y, p), table)
    assert j["kind"] == "roc_curve" and j["fields"]["x"] == "fpr"
    for c in range(3):
        expect = _brute(y == c, p[:, c])
        got = [(r[1], r[2]) for r in rows if r[0] == str(c)]
        assert got[0] == (0.0, 0.0)
        assert np.allclose(got[1:], [(e[2], e[3]) for e in expect], atol=1e-6)
        assert got[-1] == (1.0, 1.0)


def test_curves_are_thinned_keeping_both_ends(store: MediaStore, run_dir: Path, table: Any) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    p = rng.random(5000)
    _, rows = _rows(store, run_dir, plot.roc_curve(y, p, classes_to_plot=[1]), table)
    assert {r[0] for r in rows} == {"1"}
    assert len(rows) <= plot.MAX_POINTS_PER_CLASS
    assert rows[0][1:] == [0.0, 0.0] and rows[-1][1:] == [1.0, 1.0]


def test_string_labels_and_missing_class_are_handled(store: MediaStore, run_dir: Path, table: Any) -> None:
    y = np.array(["cat", "dog", "cat", "dog"])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    _, rows = _rows(store, run_dir, plot.pr_curve(y, p), table)
    assert {r[0] for r in rows} == {"cat", "dog"}
    # class 2 never occurs in y_true: skipped with a warning, the others kept
    _, rows = _rows(store, run_dir, plot.pr_curve([0, 1, 0], np.eye(3)[[0, 1, 0]]), table)
    assert {r[0] for r in rows} == {"0", "1"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plot.pr_curve([0, 1], [[0.5, 0.5]]), "y_true has 2 samples but y_probas has 1"),
        (lambda: plot.pr_curve(["a", "b", "c"], [[0.5, 0.5]] * 3), "2 columns but y_true has 3 distinct"),
        (lambda: plot.roc_curve([0, 1], [[np.nan, 1], [0, 1]]), "NaN or inf"),
        (lambda: plot.roc_curve([[0], [1]], [[0, 1], [0, 1]]), "y_true must be 1-D"),
        (lambda: plot.pr_curve([0, 1]), "needs y_probas"),
        (lambda: plot.pr_curve([0, 2], [[0, 1, 0], [0, 0, 1]], labels=["a"]), "labels has 1 names"),
    ],
)
def test_curve_errors(call: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        call()


def test_confusion_matrix_counts(store: MediaStore, run_dir: Path, table: Any) -> None:
    y = [0, 1, 2, 2, 1]
    preds = [0, 2, 2, 2, 1]
    j, rows = _rows(store, run_dir, plot.confusion_matrix(y_true=y, preds=preds, class_names=["a", "b", "c"]), table)
    assert j["kind"] == "confusion_matrix"
    counts = {(r[0], r[1]): r[2] for r in rows}
    assert len(rows) == 9 and counts[("c", "c")] == 2 and counts[("b", "c")] == 1 and counts[("a", "b")] == 0
    probs = np.eye(3)[preds]
    _, rows2 = _rows(store, run_dir, plot.confusion_matrix(probs=probs, y_true=y, class_names=["a", "b", "c"]), table)
    assert rows2 == rows
    _, rows3 = _rows(store, run_dir, plot.confusion_matrix(y_true=[5, 7], preds=[7, 7]), table)
    assert {(r[0], r[1]): r[2] for r in rows3}[("Class_2", "Class_2")] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"probs": [[1, 0]], "preds": [0], "y_true": [0]}, "Only one of probs or preds should be passed in"),
        ({"y_true": [0, 1], "preds": [0]}, "Number of predictions and label indices must match"),
        ({"y_true": [0, 3], "preds": [0, 1], "class_names": ["a", "b"]}, "class indices 0..1"),
        ({"probs": [[1, 0, 0]], "y_true": [0], "class_names": ["a", "b"]}, "probs has 3 classes"),
        ({"y_true": [0]}, "needs probs or preds"),
        ({"preds": [0]}, "needs y_true"),
    ],
)
def test_confusion_matrix_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        plot.confusion_matrix(**kwargs)


def test_table_charts_carry_kind_fields_and_table(store: MediaStore, run_dir: Path, table: Any) -> None:
    t = Table(columns=["step", "loss", "run"], data=[[i, 1 / (i + 1), "a"] for i in range(5)])
    cases = [
        (plot.line(t, "step", "loss", stroke="run", title="L"), "line", {"x": "step", "y": "loss", "stroke": "run"}),
        (plot.scatter(t, "step", "loss"), "scatter", {"x": "step", "y": "loss"}),
        (plot.bar(t, "run", "loss"), "bar", {"label": "run", "value": "loss"}),
        (plot.histogram(t, "loss"), "histogram", {"value": "loss"}),
    ]
    for chart, kind, fields in cases:
        assert isinstance(chart, Media)
        j = chart.to_json(store, "c", 0)
        assert (j["kind"], j["fields"]) == (kind, fields)
        assert table(run_dir, j["table"])["data"] == [[i, 1 / (i + 1), "a"] for i in range(5)]
    assert plot.line(t, "step", "loss", title="L").to_json(store, "c", 0)["title"] == "L"
    with pytest.raises(DataError, match="x='nope' is not a column"):
        plot.line(t, "nope", "loss")
    with pytest.raises(DataError, match=r"needs a wandb\.Table"):
        plot.scatter([[1, 2]], "a", "b")  # type: ignore[arg-type]


def test_line_series(store: MediaStore, run_dir: Path, table: Any) -> None:
    j, rows = _rows(store, run_dir, plot.line_series([0, 1, 2], [[1, 2, 3], [4, 5, 6]], keys=["a", "b"], title="T", xname="epoch"), table)
    assert j["kind"] == "line_series" and j["string_fields"] == {"xname": "epoch"} and j["title"] == "T"
    assert rows[:3] == [["a", 1, 0], ["a", 2, 1], ["a", 3, 2]] and rows[3] == ["b", 4, 0]
    _, rows = _rows(store, run_dir, plot.line_series([[0, 1], [5]], [[1, 2], [3]]), table)
    assert rows == [["key_0", 1, 0], ["key_0", 2, 1], ["key_1", 3, 5]]
    with pytest.raises(DataError, match="2 keys for 1 series"):
        plot.line_series([0], [[1]], keys=["a", "b"])
    with pytest.raises(DataError, match="3 x values but 2 y values"):
        plot.line_series([0, 1, 2], [[1, 2]])


def test_plot_needs_no_sklearn_or_pandas() -> None:
    """In a fresh interpreter: other tests (the LightGBM and XGBoost integrations) import sklearn."""
    code = ("import sys; from wandblite import plot; plot.pr_curve([0, 1], [[0.2, 0.8], [0.3, 0.7]]); "
            "plot.roc_curve([0, 1], [[0.2, 0.8], [0.3, 0.7]]); "
            "print(sorted(m for m in ('sklearn', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
