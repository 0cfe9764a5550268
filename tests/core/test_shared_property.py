"""A shared run's merge is deterministic: whatever order its writers' records are folded in and its
streams are read in, the history, summary, config and state are the same, and equal to a
reference merge written here (docs/semantics.md section 15).

The writers' events are random: log calls with and without explicit steps, ``commit=False``
partials, nested keys, config updates, explicit summary writes and deletions, ``define_metric``
summaries, and an exit (clean, failed) or none (a crash). The reference folds each writer alone
with ``wandblite.fold.Fold`` (the single-writer reducer, tested on its own) and then does the
merge in its own words: rows grouped by ``_step`` and combined leaf by leaf in precedence order,
the summary as a fold of the merged rows with the definitions in step order, config by
precedence, the state by the lifecycle rule.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wandblite import events as ev
from wandblite.fold import Fold, run_state
from wandblite.merge import SharedRun, merge_rows, rank_key
from wandblite.replay import Replay
from wandblite.runfile import RunFileWriter, segment_path
from wandblite.vocab import RUNTIME, STEP, WANDB_KEY

NOW = 10_000.0
GRACE = 60.0
KEYS = ("a", "b", "c")


@st.composite
def writer_events(draw: Any, label: str, primary: bool, ufs: bool | None) -> list[tuple[int, Any]]:
    t = 100.0 + draw(st.integers(0, 20))
    writer: dict[str, Any] = {"label": label, "primary": primary}
    if ufs is not None:
        writer["update_finish_state"] = ufs
    out: list[tuple[int, Any]] = [(ev.START, {"v": 1, "ts": t, "id": "r", "project": "p", "name": f"n-{label}",
                                              "attempt": 0, "host": f"h-{label}", "pid": 1, "heartbeat": 15.0,
                                              "writer": writer})]
    step = 0
    for _ in range(draw(st.integers(0, 14))):
        t += draw(st.integers(1, 3)) / 4
        op = draw(st.sampled_from(["log", "log", "log", "log", "config", "summary", "del", "metric"]))
        if op == "log":
            data: dict[str, Any] = {}
            for k in draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True)):
                data[k] = draw(st.integers(-5, 5))
            if draw(st.booleans()):
                data["n"] = {draw(st.sampled_from(["x", "y"])): draw(st.integers(0, 9))}
            if draw(st.booleans()):
                data[f"own_{label}"] = draw(st.integers(0, 9))
            s = draw(st.one_of(st.none(), st.integers(max(0, step - 1), step + 3)))
            commit = draw(st.sampled_from([None, None, True, False]))
            if s is not None:
                step = max(step, s)
            out.append((ev.LOG, [t, data, s, commit]))
        elif op == "config":
            out.append((ev.CONFIG, [t, {draw(st.sampled_from(["lr", "bs", label])): draw(st.integers(0, 3))}]))
        elif op == "summary":
            out.append((ev.SUMMARY, [t, {draw(st.sampled_from(["best", "a"])): draw(st.integers(0, 9))}, []]))
        elif op == "del":
            out.append((ev.SUMMARY, [t, {}, [draw(st.sampled_from(["best", "b"]))]]))
        else:
            out.append((ev.METRIC, [t, {"name": draw(st.sampled_from(["a", "b", "n.*"])), "step_metric": None,
                                        "step_sync": None, "hidden": None,
                                        "summary": [draw(st.sampled_from(["min", "max", "mean", "last"]))],
                                        "goal": None, "overwrite": False}]))
    end = draw(st.sampled_from(["finished", "failed", "crashed"]))
    if end != "crashed":
        out.append((ev.EXIT, {"ts": t + 1, "exit_code": 0 if end == "finished" else 1, "error": None, "signal": None}))
    return out


@st.composite
def shared_runs(draw: Any) -> dict[str, list[tuple[int, Any]]]:
    n = draw(st.integers(2, 4))
    labels = draw(st.lists(st.sampled_from(["r0", "r1", "r2", "r3", "w-7", "x.1"]), min_size=n, max_size=n,
                           unique=True))
    primary = draw(st.one_of(st.none(), st.sampled_from(labels)))  # sometimes no primary at all
    out = {}
    for lab in labels:
        ufs = draw(st.one_of(st.none(), st.booleans()))
        out[lab] = draw(writer_events(lab, lab == primary, ufs))
    return out


# --------------------------------------------------------------------------- through wandblite.merge


def _writer_state(fold: Fold) -> str:
    return run_state(fold.exit, fold.last_alive(), NOW, False, GRACE)


def via_merge(run: dict[str, list[tuple[int, Any]]], interleaving: list[str],
              stream_order: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], str]:
    """Fold the writers' events in the order ``interleaving`` names them; merge the streams given
    in ``stream_order``."""
    folds = {lab: Fold() for lab in run}
    rows: dict[str, list[dict[str, Any]]] = {lab: [] for lab in run}
    cursor = dict.fromkeys(run, 0)
    for lab in interleaving:
        kind, payload = run[lab][cursor[lab]]
        cursor[lab] += 1
        rows[lab].extend(folds[lab].apply(kind, copy.deepcopy(payload)))
    states = {lab: _writer_state(f) for lab, f in folds.items()}
    for lab, f in folds.items():
        if states[lab] == "crashed" and f.pending is not None:
            rows[lab].append(f.flush_pending())
    shared = SharedRun({lab: folds[lab] for lab in stream_order})
    merged = []
    for row in merge_rows([rows[lab] for lab in stream_order],
                          rank=lambda i: rank_key(stream_order[i], folds[stream_order[i]])):
        shared.add_row(row)
        merged.append(row)
    state = shared.finish(states)
    return merged, shared.fold.summary, shared.fold.config, state


# --------------------------------------------------------------------------- the reference merge


def _deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and "_type" not in v and isinstance(dst.get(k), dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def reference(run: dict[str, list[tuple[int, Any]]]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], str]:
    folds: dict[str, Fold] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    defs: list[tuple[int, str, int, dict[str, Any]]] = []
    for lab, events in run.items():
        f = Fold()
        rows[lab] = []
        for i, (kind, payload) in enumerate(events):
            if kind == ev.METRIC:
                defs.append((f.step, lab, i, payload[1]))
            rows[lab].extend(f.apply(kind, copy.deepcopy(payload)))
        folds[lab] = f
    states = {lab: _writer_state(f) for lab, f in folds.items()}
    for lab, f in folds.items():
        if states[lab] == "crashed" and f.pending is not None:
            rows[lab].append(f.flush_pending())
    primary = {lab: bool(run[lab][0][1]["writer"]["primary"]) for lab in run}
    order = sorted(run, key=lambda lab: (not primary[lab], lab))  # highest-ranked first
    by_step: dict[int, dict[str, dict[str, Any]]] = {}
    for lab in run:
        for row in rows[lab]:
            by_step.setdefault(row[STEP], {})[lab] = row
    merged = []
    for step in sorted(by_step):
        out: dict[str, Any] = {}
        for lab in reversed(order):
            if lab in by_step[step]:
                _deep_merge(out, by_step[step][lab])
        merged.append(out)
    # summary: a fold of the merged rows, each definition from its step on (lowest-ranked first)
    s = Fold()
    pos = {lab: i for i, lab in enumerate(order)}
    pending_defs = sorted(defs, key=lambda d: (d[0], -pos[d[1]], d[2]))
    for row in merged:
        while pending_defs and pending_defs[0][0] <= row[STEP]:
            s.apply(ev.METRIC, [0.0, pending_defs.pop(0)[3]])
        s.add_row(copy.deepcopy(row))
    for d in pending_defs:
        s.apply(ev.METRIC, [0.0, d[3]])
    summary = s.summary
    for lab in reversed(order):
        f = folds[lab]
        for k in f.summary_set:
            if k in f.summary:
                summary[k] = f.summary[k]
            else:
                summary.pop(k, None)
    config: dict[str, Any] = {}
    for lab in reversed(order):
        config.update(folds[lab].config)
    # the lifecycle rule
    ufs = {}
    for lab in run:
        w = run[lab][0][1]["writer"]
        ufs[lab] = w.get("update_finish_state", w["primary"])
    deciding = [lab for lab in order if ufs[lab]] or order
    dec = [states[lab] for lab in deciding]
    if "crashed" in dec:
        state = "crashed"
    elif all(x == "finished" for x in dec):
        state = "finished"
    elif "crashed" in states.values():
        state = "crashed"
    elif "failed" in dec:
        state = "failed"
    else:
        state = "running"
    if state in ("finished", "failed"):  # the summary's runtime: from the writer whose exit ended the run
        ended = deciding[0] if state == "finished" else next(lab for lab in deciding if states[lab] == "failed")
        own = folds[ended].summary
        for k in (RUNTIME, WANDB_KEY):
            if k in own:
                summary[k] = own[k]
    return merged, summary, config, state


def _interleave(run: dict[str, list[tuple[int, Any]]], rnd: random.Random) -> list[str]:
    bag = [lab for lab, events in run.items() for _ in events]
    rnd.shuffle(bag)  # each writer's own order is kept: the k-th pick of a label is its k-th event
    return bag


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=shared_runs(), seed=st.integers(0, 2**32 - 1))
def test_every_interleaving_and_read_order_gives_the_reference_merge(run: dict[str, Any], seed: int) -> None:
    rnd = random.Random(seed)
    want = reference(run)
    labels = list(run)
    for _ in range(3):
        order = labels[:]
        rnd.shuffle(order)
        got = via_merge(run, _interleave(run, rnd), order)
        assert got == want


# --------------------------------------------------------------------------- through real files


def _write_streams(run_dir: Path, run: dict[str, list[tuple[int, Any]]], rnd: random.Random) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    writers = {lab: RunFileWriter(segment_path(run_dir, 0, lab)) for lab in run}
    cursor = dict.fromkeys(run, 0)
    for lab in _interleave(run, rnd):  # the files grow interleaved, as live writers make them
        kind, payload = run[lab][cursor[lab]]
        cursor[lab] += 1
        writers[lab].append(kind, ev.encode(payload))
    for w in writers.values():
        w.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(run=shared_runs(), seed=st.integers(0, 2**32 - 1))
def test_replay_of_the_files_gives_the_reference_merge(tmp_path_factory: Any, run: dict[str, Any], seed: int) -> None:
    run_dir = tmp_path_factory.mktemp("shared") / "r"
    _write_streams(run_dir, run, random.Random(seed))
    r = Replay(run_dir, now=NOW, writer_alive=False, grace=GRACE)
    history = r.history()
    rows, summary, config, state = reference(run)
    assert history == rows
    assert r.summary == summary
    assert r.config == config
    assert r.state == state
    assert {w["label"] for w in r.writers} == set(run)
    assert r.rows == len(rows)
