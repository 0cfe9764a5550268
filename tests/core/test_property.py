"""Property tests: random call sequences give the same state live, after replay, and in a model.

Two properties (docs/semantics.md sections 1, 2, 3, 5 and 7):

* any random sequence of ``log``, ``define_metric`` and summary set/delete calls leaves the live
  ``run.summary`` and ``run.step`` equal to a fresh ``wandblite.replay`` of the run's files, at
  random points during the run and at its end before ``finish`` (and the summary after it too);
* without ``define_metric``, the replayed history and summary equal ``Model``: a small
  straightforward implementation of the step/commit rules and the last-value summary written from
  docs/semantics.md alone, sharing no code with wandblite.

Comparison is exact and NaN-aware: ``same(a, b)`` treats NaN as equal to NaN and tells bool, int
and float apart.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wandblite

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------------------ strategies

TOP_KEYS = ["a", "b", "loss", "train/acc", "dot.key", "n", "m", "_p", "_step", ""]
NESTED_KEYS = ["x", "y", "z", "1 2", "ü"]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([2**63, 2**64 - 1, 2**70, -(2**63) - 1]),  # beyond int64: stored as floats
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(math.nan),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
)

# Nested dicts may be empty: an empty subtree has no leaves, so it adds nothing to a row.
nested = st.recursive(
    scalars,
    lambda inner: st.dictionaries(st.sampled_from(NESTED_KEYS), inner, min_size=0, max_size=3),
    max_leaves=5,
)
payloads = st.dictionaries(st.sampled_from(TOP_KEYS), nested, max_size=4)
steps = st.one_of(st.none(), st.none(), st.integers(min_value=-1, max_value=8))
commits = st.sampled_from([None, None, True, False])

log_calls = st.tuples(st.just("log"), payloads, steps, commits)
summary_sets = st.tuples(st.just("sum_set"), st.sampled_from(TOP_KEYS[:-1]), nested)
summary_dels = st.tuples(st.just("sum_del"), st.sampled_from(TOP_KEYS[:-1]))
checks = st.tuples(st.just("check"))

METRIC_NAMES = [
    "a",
    "b",
    "loss",
    "train/acc",
    "dot\\.key",
    "n.x",
    "m.y.z",
    "*",
    "a*",
    "n.*",
    "tr*",
    "train/*",
    "_p",
]
OPS = ["min", "max", "mean", "first", "last", "none", "copy", "min,max", "last,mean", "best"]
define_calls = st.tuples(
    st.just("define"),
    st.sampled_from(METRIC_NAMES),
    st.one_of(st.none(), st.sampled_from(OPS)),
    st.one_of(st.none(), st.sampled_from(["a", "b", "n.y", "epoch"])),
    st.one_of(st.none(), st.booleans()),  # step_sync
    st.one_of(st.none(), st.just(True)),  # overwrite
)

calls_without_metrics = st.lists(st.one_of(log_calls, log_calls, summary_sets, summary_dels), max_size=14)
calls_with_metrics = st.lists(
    st.one_of(log_calls, log_calls, define_calls, summary_sets, summary_dels, checks), max_size=16
)


# ------------------------------------------------------------------------------ comparison


def same(a: Any, b: Any) -> bool:
    if type(a) is float and type(b) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def assert_same(actual: Any, expected: Any, what: str) -> None:
    assert same(actual, expected), f"{what} differs:\n  actual:   {actual!r}\n  expected: {expected!r}"


def strip_time(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("_runtime", "_timestamp", "_wandb")}


# ------------------------------------------------------------------------------ the reference model


def _set_path(d: dict[str, Any], path: tuple[str, ...], v: Any) -> None:
    for k in path[:-1]:
        if type(d.get(k)) is not dict:
            d[k] = {}
        d = d[k]
    d[path[-1]] = v


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for k, v in d.items():
        if type(v) is dict:
            out.extend(_leaves(v, (*prefix, k)))
        else:
            out.append(((*prefix, k), v))
    return out


def _history_value(v: Any) -> Any:
    """Value encoding (docs/semantics.md section 5) for the strategies' values: big ints become floats."""
    if type(v) is int and not -(2**63) <= v < 2**63:
        return float(v)
    if type(v) is dict:
        return {k: _history_value(x) for k, x in v.items()}
    return v


def _summary_value(v: Any) -> Any:
    """An explicit summary value: NaN becomes None (docs/semantics.md section 5)."""
    if type(v) is float and math.isnan(v):
        return None
    if type(v) is dict:
        return {k: _summary_value(x) for k, x in v.items()}
    return _history_value(v)


class Model:
    """wandb's step/commit rules and last-value summary, straight from docs/semantics.md."""

    def __init__(self) -> None:
        self.cur = 0
        self.pending: dict[str, Any] | None = None
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.drops: list[tuple[int, int]] = []

    def _flush(self) -> None:
        assert self.pending is not None
        row = self.pending
        self.pending = None
        row["_step"] = self.cur
        self.rows.append(row)
        self.cur += 1
        for path, v in _leaves(row):
            if v is not None:  # None never reaches the summary
                _set_path(self.summary, path, v)

    def log(self, data: dict[str, Any], step: int | None, commit: bool | None) -> None:
        if step is not None and step < self.cur:
            self.drops.append((step, self.cur))
            return
        if step is not None and step > self.cur:
            if self.pending is not None:
                self._flush()
            self.cur = step
        if self.pending is None:
            self.pending = {}
        for k, v in data.items():
            if k in ("", "_step"):
                continue
            for path, leaf in _leaves({k: _history_value(v)}):
                _set_path(self.pending, path, leaf)
        if (step is None and commit is None) or commit is True:
            self._flush()

    def summary_set(self, key: str, value: Any) -> None:
        self.summary[key] = _summary_value(value)

    def summary_del(self, key: str) -> None:
        self.summary.pop(key, None)

    def finish(self) -> None:
        if self.pending is not None:
            self._flush()


# ------------------------------------------------------------------------------ driving a run


def _apply(run: Any, call: tuple[Any, ...]) -> None:
    kind = call[0]
    if kind == "log":
        _, data, step, commit = call
        run.log(data, step=step, commit=commit)
    elif kind == "define":
        _, name, ops, step_metric, step_sync, overwrite = call
        goal = "minimize" if ops == "best" else None
        run.define_metric(
            name, step_metric=step_metric, step_sync=step_sync, summary=ops, goal=goal, overwrite=overwrite
        )
    elif kind == "sum_set":
        run.summary[call[1]] = call[2]
    elif kind == "sum_del":
        if call[1] in run.summary:
            del run.summary[call[1]]
    elif kind == "check":
        _assert_live_equals_replay(run)


def _assert_live_equals_replay(run: Any) -> None:
    live_summary = run.summary.as_dict()
    live_step = run.step
    r = wandblite.replay(run.dir)
    assert r.state == "running"
    assert_same(live_summary, r.summary, "live summary vs replay")
    assert live_step == r.step, f"live step {live_step} vs replay step {r.step}"


@contextlib.contextmanager
def _fresh_run() -> Any:
    with tempfile.TemporaryDirectory() as root, contextlib.redirect_stderr(io.StringIO()) as err:
        run = wandblite.init(project="prop", dir=root, reinit=True)
        try:
            yield run, err
        finally:
            run.finish()
            wandblite._reset_globals()


# ------------------------------------------------------------------------------ properties


@SETTINGS
@given(calls=calls_with_metrics)
def test_random_calls_give_same_state_live_and_after_replay(calls: list[tuple[Any, ...]]) -> None:
    with _fresh_run() as (run, _err):
        for call in calls:
            _apply(run, call)
        _assert_live_equals_replay(run)
        run.finish()
        final = wandblite.replay(run.dir)
        assert final.state == "finished"
        assert_same(run.summary.as_dict(), final.summary, "live summary after finish vs replay")
        steps_written = [row["_step"] for row in final.history()]
        assert steps_written == sorted(set(steps_written))  # strictly increasing


@SETTINGS
@given(calls=calls_without_metrics)
def test_random_log_and_summary_calls_match_reference_model(calls: list[tuple[Any, ...]]) -> None:
    model = Model()
    with _fresh_run() as (run, err):
        for call in calls:
            _apply(run, call)
            if call[0] == "log":
                model.log(*call[1:])
            elif call[0] == "sum_set":
                model.summary_set(call[1], call[2])
            elif call[0] == "sum_del":
                model.summary_del(call[1])
        _assert_live_equals_replay(run)
        assert run.step == model.cur, f"live step {run.step} vs model {model.cur}"
        assert_same(strip_time(run.summary.as_dict()), strip_time(model.summary), "live summary vs model")
        run.finish()
        model.finish()
        warnings = [ln for ln in err.getvalue().splitlines() if "Tried to log to step" in ln]
        expected_warnings = [
            f"wandblite: WARNING Tried to log to step {s} that is less than the current step {c}. Steps must be "
            "monotonically increasing, so this data will be ignored. See https://wandb.me/define-metric to log "
            "data out of order."
            for s, c in model.drops
        ]
        assert warnings == expected_warnings
        r = wandblite.replay(run.path)
        rows = r.history()
        for row in rows:
            assert type(row["_runtime"]) is float
            assert "_timestamp" in row
        assert_same([strip_time(row) for row in rows], model.rows, "replayed history vs model")
        assert_same(strip_time(r.summary), strip_time(model.summary), "replayed summary vs model")
        assert r.step == model.cur
