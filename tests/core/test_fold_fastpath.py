"""The replay fast paths give exactly what the general path gives.

Replay folds runs of plain scalar log records (``LOG_SCALARS``) without going through
``Fold.apply`` one event at a time: ``Fold.fold_records`` folds them with the fold's state in
locals, in C when the accelerator is built (``wandblite/_speedups.c``'s ``fold_scalars``), and a
shared run's writers' rows are combined a window at a time (``wandblite.merge.merge_windows``).
These tests write random runs to real files (scalar logs with and without explicit steps and
commits, steps that go back or do not fit 64 bits, reserved and empty keys, NaN and integer
timestamps, ``commit=False`` partials, nested keys, media-like values, metric definitions,
summary and config writes, resumes and exits, from one writer or several) and check, value by
value and key order included:

* the fold: C scanner + C fold, Python scanner + C fold, everything in Python, and ``apply`` on
  each decoded event in turn all give the same rows, summary and counters;
* a shared run: ``Replay`` with the accelerator, ``Replay`` with everything in Python, and a
  general merge (each writer folded event by event with ``apply``, merged row by row with
  ``merge_rows`` and ``SharedRun.add_row``) give the same history, summary, config, state,
  writers and damage.

Under ``WANDBLITE_NO_SPEEDUPS=1`` the accelerated and the Python paths are the same code, and the
comparison with the general path is what is left.
"""

from __future__ import annotations

import contextlib
import math
import random
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wandblite.format as format_module
from wandblite import events as ev
from wandblite.fold import Fold, run_state
from wandblite.format import RecordReader
from wandblite.merge import SharedRun, merge_rows, rank_key
from wandblite.replay import Replay
from wandblite.runfile import RunFileWriter, segment_path

NOW = 10_000.0
GRACE = 60.0
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# What a LOG_SCALARS record holds (events.py): str, int, float and bool values; never None.
scalar_keys = st.sampled_from(["a", "b", "c", "train/loss", "_step", "_timestamp", "_runtime", "", "x" * 70])
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.5, 2**63 - 1, -(2**63), 0, 7, True, False, "s", "é" * 3]),
    st.integers(-(2**63), 2**64 - 1),
)


@contextlib.contextmanager
def pure_python(scan: bool = True, fold: bool = True) -> Iterator[None]:
    """Switch off the C scanner (``scan``) and/or the C fold (``fold``: ``fold_scalars``, the
    summary updates ``update_rows`` and the shared run's fused merge ``merge_scalars``) for the block."""
    with pytest.MonkeyPatch.context() as mp:
        if scan:
            mp.setattr(format_module, "_scan_c", None)
        if fold:
            mp.setattr(format_module, "fold_scalars", None)
            mp.setattr(format_module, "update_rows", None)
            mp.setattr(format_module, "merge_scalars", None)
        yield


def canon(x: Any) -> Any:
    """A comparable form that keeps dict key order, float bits (NaN, -0.0) and the int/bool/float
    distinction; a replayed media value compares as its JSON dict."""
    if isinstance(x, Mapping):
        return ("d", [(k, canon(v)) for k, v in x.items()])
    if isinstance(x, list | tuple):
        return ("l", [canon(v) for v in x])
    if type(x) is float:
        return ("f", struct.pack("<d", x))
    return (type(x).__name__, x)


@st.composite
def writer_events(draw: Any, label: str | None = None, primary: bool = False, lockstep: int = 0) -> list[tuple[int, Any]]:
    """One writer's events. ``lockstep``: that many steps logged the bench's way (10 scalars with
    an explicit step, commit=True), the other events mixed in between."""
    t: Any = draw(st.sampled_from([100.0, 100, 1e9 + 0.25]))
    start: dict[str, Any] = {"v": 1, "ts": t, "id": "r", "project": "p", "attempt": 0, "host": "h", "pid": 1,
                             "heartbeat": 15.0}
    if label is not None:
        start["writer"] = {"label": label, "primary": primary}
    out: list[tuple[int, Any]] = [(ev.START, start)]
    ops = draw(st.lists(st.sampled_from(["scalars"] * 6 + ["partial", "nested", "media", "metric", "summary",
                                                            "config", "resume", "exit", "odd_ts"]),
                        max_size=30))
    plan: list[Any] = [("lock", s) for s in range(lockstep)]
    for op in ops:  # the other events at random places among the lockstep logs
        plan.insert(draw(st.integers(0, len(plan))), op)
    step = 0
    own = f"own_{label}"
    for op in plan:
        t = float(t) + draw(st.sampled_from([0.25, 0.5, 1.0, -0.5]))
        if isinstance(op, tuple):
            s = op[1]
            out.append((ev.LOG_SCALARS, [t, {f"{own}_m{k}": s * 0.001 + k for k in range(10)}, s, True]))
        elif op == "scalars":
            data = draw(st.dictionaries(scalar_keys, scalars, max_size=5))
            if draw(st.booleans()):
                data[own] = draw(scalars)
            s = draw(st.one_of(st.none(), st.integers(max(0, step - 2), step + 3),
                               st.sampled_from([True, 2**63, 2**64 - 1, -1])))
            if type(s) is int and step < s < 2**62:
                step = s
            commit = draw(st.sampled_from([None, None, True, True, False]))
            ts = draw(st.sampled_from([t, t, t, int(t), math.nan]))
            out.append((ev.LOG_SCALARS, [ts, data, s, commit]))
        elif op in ("partial", "nested", "media"):
            data = {"a": draw(st.integers(-3, 3))}
            if op == "nested":
                data["n"] = {draw(st.sampled_from(["x", "y"])): draw(st.floats(-1, 1))}
            if op == "media":
                data["img"] = {"_type": "image-file", "path": f"media/images/img_{step}.png", "sha256": "0" * 64,
                               "size": 1, "width": 1, "height": 1, "format": "png"}
            commit = False if op == "partial" else draw(st.sampled_from([None, True, False]))
            out.append((ev.LOG, [t, data, draw(st.one_of(st.none(), st.just(step))), commit]))
        elif op == "metric":
            out.append((ev.METRIC, [t, {"name": draw(st.sampled_from(["a", "b", "n.*", f"{own}_m1"])),
                                        "step_metric": None, "step_sync": None, "hidden": None,
                                        "summary": [draw(st.sampled_from(["min", "max", "mean", "last"]))],
                                        "goal": None, "overwrite": False}]))
        elif op == "summary":
            out.append((ev.SUMMARY, [t, {draw(st.sampled_from(["best", "a"])): draw(st.integers(0, 9))},
                                     draw(st.sampled_from([[], ["b"]]))]))
        elif op == "config":
            out.append((ev.CONFIG, [t, {draw(st.sampled_from(["lr", "bs"])): draw(st.integers(0, 3))}]))
        elif op == "resume":
            out.append((ev.START, {**start, "ts": t, "attempt": 1, "resumed": True}))
        elif op == "exit":
            out.append((ev.EXIT, {"ts": t, "exit_code": draw(st.sampled_from([0, 1])), "error": None,
                                  "signal": None}))
        else:  # a record whose timestamp is no number: the fold keeps its last one
            out.append((ev.CONSOLE, [t, "stdout", "hi\n"]))
            out.append((ev.HEARTBEAT, [draw(st.sampled_from([t, int(t)]))]))
    return out


def _write(path: Path, events: list[tuple[int, Any]]) -> None:
    w = RunFileWriter(path)
    for kind, payload in events:
        w.append(kind, ev.encode(payload))
    w.close()


def _fold_state(f: Fold) -> Any:
    return canon([f.step, f.rows, f.events, f.last_ts, f.first_ts, f.last_flat, f.pending, f.summary, f.config,
                  f.meta, f.exit, f.metric_log, f.warnings, sorted(f.summary_set)])


def _fold_file(path: Path) -> tuple[Any, Any, list[int]]:
    f = Fold()
    rows: list[dict[str, Any]] = []
    unflat: list[int] = []
    for batch in RecordReader(path, decode_kind=ev.LOG_SCALARS).batches():
        new, idx = f.fold_records(batch, ev.decode, lambda *_a: None, format_module.fold_scalars)
        unflat.extend(len(rows) + i for i in idx)
        rows.extend(new)
    return canon(rows), _fold_state(f), unflat


@SETTINGS
@given(events=writer_events(), more=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_fold_records_fast_paths_equal_apply(tmp_path: Path, events: list[tuple[int, Any]], more: int,
                                            seed: int) -> None:
    rnd = random.Random(seed)
    step = max((p[2] for k, p in events if k == ev.LOG_SCALARS and type(p[2]) is int and p[2] < 2**62),
               default=0)
    for i in range(more):  # a run of the bench's plain logs, where the C fold takes many records per call
        at = rnd.randrange(len(events) + 1)
        events.insert(at, (ev.LOG_SCALARS, [200.0 + i, {"m0": float(i), "m1": i}, step + 1 + i, True]))
    path = tmp_path / f"events-{seed}.wlr"
    path.unlink(missing_ok=True)
    _write(path, events)
    accelerated = _fold_file(path)
    with pure_python(scan=True, fold=False):
        c_fold_only = _fold_file(path)
    with pure_python():
        python = _fold_file(path)
        general = Fold()  # one event at a time, as the live run folds them
        rows: list[dict[str, Any]] = []
        for _off, kind, payload in RecordReader(path):
            rows.extend(general.apply(kind, ev.decode(payload)))
    assert accelerated == c_fold_only == python
    assert accelerated[:2] == (canon(rows), _fold_state(general))


# --------------------------------------------------------------------------- shared runs


@st.composite
def shared_runs(draw: Any) -> dict[str, list[tuple[int, Any]]]:
    n = draw(st.integers(2, 4))
    labels = draw(st.lists(st.sampled_from(["w0", "w1", "w2", "w3", "x.1"]), min_size=n, max_size=n, unique=True))
    primary = draw(st.one_of(st.none(), st.sampled_from(labels)))
    lockstep = draw(st.integers(0, 300))
    return {lab: draw(writer_events(lab, lab == primary, lockstep)) for lab in labels}


def _replayed(run_dir: Path) -> Any:
    r = Replay(run_dir, now=NOW, writer_alive=False, grace=GRACE)
    history = list(r.scan_history())
    return canon([history, r.summary, r.config, r.state, r.step, r.rows, r.writers, r.damage, r.metrics])


def _general(run: dict[str, list[tuple[int, Any]]]) -> Any:
    """Each writer folded event by event, the rows merged one at a time."""
    folds = {lab: Fold() for lab in sorted(run)}
    rows: dict[str, list[dict[str, Any]]] = {lab: [] for lab in folds}
    for lab, events in run.items():
        for kind, payload in events:
            rows[lab].extend(folds[lab].apply(kind, ev.decode(ev.encode(payload))))
    states = {lab: run_state(f.exit, f.last_alive(), NOW, False, GRACE) for lab, f in folds.items()}
    for lab, f in folds.items():
        if states[lab] == "crashed" and f.pending is not None:
            rows[lab].append(f.flush_pending())
    labels = list(folds)
    shared = SharedRun(dict(folds))
    merged = []
    for row in merge_rows([rows[lab] for lab in labels], rank=lambda i: rank_key(labels[i], folds[labels[i]])):
        shared.add_row(row)
        merged.append(row)
    state = shared.finish(states)
    return canon([merged, shared.fold.summary, shared.fold.config, state])


@SETTINGS
@given(run=shared_runs(), seed=st.integers(0, 2**32 - 1))
def test_shared_replay_fast_paths_equal_the_general_merge(tmp_path_factory: Any, run: dict[str, Any],
                                                           seed: int) -> None:
    run_dir = tmp_path_factory.mktemp("shared") / "r"
    run_dir.mkdir()
    for lab, events in run.items():
        _write(segment_path(run_dir, 0, lab), events)
    accelerated = _replayed(run_dir)
    with pure_python():
        python = _replayed(run_dir)
        general = _general(run)
    assert accelerated == python
    assert ("l", accelerated[1][:4]) == general  # history, summary, config, state


# --------------------------------------------------------------------------- the fused merge of writers logging in step
# Replay folds and merges writers whose next records are plain logs of one step in one C pass
# (format.merge_scalars); each case below is replayed with it, with it switched off (the general
# per-writer fold and merge_windows), and with nothing in C, and must agree to the last key, the
# writers' own folds included. A spy checks the fused pass did take rows, and where it stopped.


def _lockstep(label: str, steps: range, t0: float = 1000.0, width: int = 3,
              extra: Any = None) -> list[tuple[int, Any]]:
    """A writer's start, then one plain log per step (``extra(step)``: more keys, or a whole
    event list to log instead)."""
    out: list[tuple[int, Any]] = [(ev.START, {"v": 1, "ts": t0, "id": "r", "project": "p", "attempt": 0,
                                              "host": "h", "pid": 1, "heartbeat": 15.0,
                                              "writer": {"label": label, "primary": label == "w0"}})]
    for s in steps:
        more = extra(s) if extra is not None else None
        if isinstance(more, list):
            out.extend(more)
            continue
        data = {f"{label}_m{k}": s * 0.5 + k for k in range(width)}
        data.update(more or {})
        out.append((ev.LOG_SCALARS, [t0 + 1.0 + s * 0.25, data, s, True]))
    return out


def _replay_everything(run_dir: Path) -> Any:
    r = Replay(run_dir, now=NOW, writer_alive=False, grace=GRACE)
    history = list(r.scan_history())
    folds = [_fold_state(r._writer_folds[w["label"]]) for w in r.writers]
    return canon([history, r.summary, r.config, r.state, r.step, r.rows, r.writers, r.damage, r.metrics]), folds


def _check_fused(tmp_path: Path, run: dict[str, list[tuple[int, Any]]], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Write ``run``, replay it the three ways, assert they agree; return the fused calls' results."""
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    for lab, events in run.items():
        _write(segment_path(run_dir, 0, lab), events)
    calls: list[Any] = []

    def spy(*args: Any) -> Any:
        out = C_MERGE(*args)  # type: ignore[misc]
        calls.append(out)
        return out

    # the C function even under WANDBLITE_NO_SPEEDUPS (the scanner then is Python's: bytes payloads)
    monkeypatch.setattr(format_module, "merge_scalars", spy if C_MERGE is not None else None)
    fused = _replay_everything(run_dir)
    monkeypatch.setattr(format_module, "merge_scalars", None)
    general = _replay_everything(run_dir)
    with pure_python():
        python = _replay_everything(run_dir)
    assert fused == general == python
    return calls


try:
    from wandblite._speedups import merge_scalars as C_MERGE  # type: ignore[attr-defined]
except ImportError:  # not built: the general path is all there is (CI builds it)
    C_MERGE = None


def _fused_rows(calls: list[Any]) -> int | None:
    """Rows the fused pass made (None when the accelerator is not built)."""
    return sum(call[0] for call in calls) if C_MERGE is not None else None


def test_fused_merge_of_writers_in_step_and_the_primary_winning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = {"loss": -1.0, "_timestamp": 5.0, "_runtime": 7.0, "_step": 99, "": 3}  # one key all write, reserved ones

    def extra(label: str, s: int) -> dict[str, Any]:
        out: dict[str, Any] = {"loss": float(s) + int(label[1])}
        if s % 97 == 0:
            out.update(shared)
        if s % 89 == 0 and label == "w1":  # a reserved key of one writer, not the lowest-ranked one
            out["_runtime"] = 9.0
        if s % 83 == 0 and label in ("w1", "w0"):
            out["_timestamp"] = 11.0 + int(label[1])
        return out

    run = {lab: _lockstep(lab, range(700), extra=lambda s, lab=lab: extra(lab, s)) for lab in ("w0", "w1", "w2")}
    calls = _check_fused(tmp_path, run, monkeypatch)
    assert _fused_rows(calls) in (700, None)
    rows = list(Replay(tmp_path / "r", now=NOW, writer_alive=False, grace=GRACE).scan_history())
    assert rows[3]["loss"] == 3.0  # the primary w0's value
    assert list(rows[3]) == ["w2_m0", "w2_m1", "w2_m2", "loss", "_timestamp", "_step", "_runtime",
                             "w1_m0", "w1_m1", "w1_m2", "w0_m0", "w0_m1", "w0_m2"]


def test_fused_merge_stops_where_steps_stop_lining_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = {"w0": _lockstep("w0", range(300)),
           "w1": _lockstep("w1", [*range(200), *range(201, 400, 2)]),  # a gap, then every other step
           "w2": _lockstep("w2", range(300))}
    calls = _check_fused(tmp_path, run, monkeypatch)
    assert _fused_rows(calls) in (200, None)
    assert C_MERGE is None or calls[-1][1] == 3  # the steps differ


def test_fused_merge_with_a_writer_that_stops_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = {"w0": _lockstep("w0", range(1500)), "w1": _lockstep("w1", range(1100)), "w2": _lockstep("w2", range(1500))}
    run["w1"].append((ev.EXIT, {"ts": 2000.0, "exit_code": 1, "error": None, "signal": None}))
    calls = _check_fused(tmp_path, run, monkeypatch)
    assert _fused_rows(calls) in (1100, None)


def test_fused_merge_goes_on_past_records_that_make_no_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def quiet(s: int) -> Any:
        if s % 50 == 7:  # a console line, a heartbeat and a config change, then the step's log
            return [(ev.CONSOLE, [1000.5 + s, "stdout", f"line {s}\n"]), (ev.HEARTBEAT, [1000.5 + s]),
                    (ev.CONFIG, [1000.5 + s, {"lr": s}]),
                    (ev.LOG_SCALARS, [1001.0 + s * 0.25, {"w1_m0": float(s)}, s, True])]
        return None

    run = {"w0": _lockstep("w0", range(400)), "w1": _lockstep("w1", range(400), extra=quiet)}
    calls = _check_fused(tmp_path, run, monkeypatch)
    assert _fused_rows(calls) in (400, None)


@pytest.mark.parametrize("kind", ["nested", "media", "partial", "metric", "int_ts", "no_step", "bool_step"])
def test_fused_merge_leaves_other_rows_to_the_general_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           kind: str) -> None:
    def odd(s: int) -> Any:
        if s != 150:
            return None
        t = 1001.0 + s * 0.25
        if kind == "nested":
            return [(ev.LOG, [t, {"n": {"x": 1.0}, "w1_m0": 1.0}, s, True])]
        if kind == "media":
            return [(ev.LOG, [t, {"img": {"_type": "image-file", "path": "media/images/a.png", "sha256": "0" * 64,
                                          "size": 1, "width": 1, "height": 1, "format": "png"}}, s, True])]
        if kind == "partial":
            return [(ev.LOG_SCALARS, [t, {"w1_p": 1.0}, s, False]), (ev.LOG_SCALARS, [t, {"w1_q": 2.0}, s, True])]
        if kind == "metric":
            return [(ev.METRIC, [t, {"name": "w1_m0", "step_metric": None, "step_sync": None, "hidden": None,
                                     "summary": ["min"], "goal": None, "overwrite": False}]),
                    (ev.LOG_SCALARS, [t, {"w1_m0": -5.0}, s, True])]
        if kind == "int_ts":
            return [(ev.LOG_SCALARS, [1200, {"w1_m0": 1.0}, s, True])]
        if kind == "no_step":
            return [(ev.LOG_SCALARS, [t, {"w1_m0": 1.0}, None, None])]
        return [(ev.LOG_SCALARS, [t, {"w1_m0": 1.0}, True, True])]

    run = {"w0": _lockstep("w0", range(400)), "w1": _lockstep("w1", range(400), extra=odd),
           "w2": _lockstep("w2", range(400))}
    calls = _check_fused(tmp_path, run, monkeypatch)
    n = _fused_rows(calls)
    if kind == "no_step":  # a log without a step makes its row at the fold's step: the fused pass takes it
        assert n in (400, None)
    else:
        assert n is None or 0 < n <= 150


def test_fused_merge_declines_a_fold_state_it_does_not_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an int start time makes the attempt's start an int: the general path folds everything
    run = {lab: _lockstep(lab, range(300), t0=1000) for lab in ("w0", "w1")}  # type: ignore[arg-type]
    calls = _check_fused(tmp_path, run, monkeypatch)
    assert _fused_rows(calls) in (0, None)
    assert C_MERGE is None or calls[-1][1] == 4
