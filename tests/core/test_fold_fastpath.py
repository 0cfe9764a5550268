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
