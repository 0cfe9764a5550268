"""The fold's own contract: events in, state out, with no SDK, no run directory and no files.

Each test builds event payloads the way ``wandblite/events.py`` lays them out (``LOG`` is
``[ts, data, step, commit]``, ``SUMMARY`` is ``[ts, updates, removed]``, ``START`` and ``EXIT`` are
maps, ...) and feeds them to ``wandblite.fold.Fold``, the pure reducer. The rules it checks are
the ones docs/semantics.md states; the SDK-level tests of the same rules are in
tests/core/test_semantics.py.

The fold owns the payloads it is given (it may edit a LOG payload's dict in place and hand it back
as the flushed row), so every test builds fresh payloads for every fold.
"""

from __future__ import annotations

import ast
import builtins
import math
import os
import random
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from wandblite import events as ev
from wandblite import fold as fold_module
from wandblite.errors import Error
from wandblite.fold import Fold, parse_metric, plan_log, run_state, step_drop_warning

T0 = 1_000.0

Event = tuple[int, Any]


# ------------------------------------------------------------------------------ event builders


def start(ts: float = T0, attempt: int = 0, **meta: Any) -> Event:
    payload = {
        "v": ev.EVENT_SCHEMA_VERSION,
        "id": "abc123",
        "project": "p",
        "entity": None,
        "name": None,
        "ts": ts,
        "attempt": attempt,
        "resumed": attempt > 0,
        "host": "h",
        "pid": 42,
        "heartbeat": 30.0,
        "context": {},
    }
    payload.update(meta)
    return ev.START, payload


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None, ts: float = T0) -> Event:
    return ev.LOG, [ts, data, step, commit]


def log_scalars(data: dict[str, Any], ts: float = T0) -> Event:
    return ev.LOG_SCALARS, [ts, data, None, None]


def summary(updates: dict[str, Any], removed: list[str] | None = None, ts: float = T0) -> Event:
    return ev.SUMMARY, [ts, updates, removed or []]


def metric(name: str, ts: float = T0, **kwargs: Any) -> Event:
    return ev.METRIC, [ts, parse_metric(name, **kwargs)]


def config(updates: dict[str, Any], ts: float = T0) -> Event:
    return ev.CONFIG, [ts, updates]


def exit_(code: int = 0, ts: float = T0) -> Event:
    return ev.EXIT, {"ts": ts, "exit_code": code, "error": None, "signal": None}


def fold_all(events: Iterable[Event]) -> tuple[Fold, list[dict[str, Any]]]:
    """A fresh fold after ``events``, and every history row they flushed, in order."""
    f = Fold()
    rows: list[dict[str, Any]] = []
    for kind, payload in events:
        rows.extend(f.apply(kind, payload))
    return f, rows


def user(d: dict[str, Any]) -> dict[str, Any]:
    """A row or summary without the time columns (their presence is checked where it matters)."""
    return {k: v for k, v in d.items() if k not in ("_runtime", "_timestamp", "_wandb")}


def steps(rows: list[dict[str, Any]]) -> list[int]:
    return [r["_step"] for r in rows]


# ------------------------------------------------------------------------------ step and commit


@pytest.mark.parametrize(
    ("cur", "pending", "step", "commit", "expected"),
    [
        (3, False, None, None, (False, False, 3, True)),
        (3, True, None, None, (False, False, 3, True)),
        (3, True, None, False, (False, False, 3, False)),
        (3, True, None, True, (False, False, 3, True)),
        (3, True, 7, None, (False, True, 7, False)),
        (3, False, 7, None, (False, False, 7, False)),
        (3, True, 7, True, (False, True, 7, True)),
        (3, True, 3, None, (False, False, 3, False)),
        (3, True, 3, True, (False, False, 3, True)),
        (3, True, 2, None, (True, False, 3, False)),
        (3, True, 2, True, (True, False, 3, False)),
        (0, False, -1, None, (True, False, 0, False)),
    ],
)
def test_plan_log_decides_drop_flush_before_merge_step_and_flush_after(
    cur: int, pending: bool, step: int | None, commit: bool | None, expected: tuple[bool, bool, int, bool]
) -> None:
    assert plan_log(cur, pending, step, commit) == expected


def test_log_without_step_or_commit_flushes_one_row_and_advances_the_step() -> None:
    f, rows = fold_all([start(), log({"a": 1}), log({"a": 2})])
    assert [user(r) for r in rows] == [{"a": 1, "_step": 0}, {"a": 2, "_step": 1}]
    assert f.step == 2 and f.rows == 2 and f.pending is None


def test_commit_false_keeps_the_row_pending_until_a_committing_call() -> None:
    f, rows = fold_all([start(), log({"a": 1}, commit=False), log({"b": 2}, commit=False)])
    assert rows == [] and f.step == 0
    assert f.pending is not None and user(f.pending) == {"a": 1, "b": 2}
    rows = list(f.apply(*log({"c": 3})))
    assert [user(r) for r in rows] == [{"a": 1, "b": 2, "c": 3, "_step": 0}]
    assert f.step == 1


def test_larger_step_flushes_the_pending_row_at_the_old_step_and_leaves_the_new_one_pending() -> None:
    f, rows = fold_all([start(), log({"a": 1}, commit=False), log({"b": 2}, step=5)])
    assert [user(r) for r in rows] == [{"a": 1, "_step": 0}]
    assert f.step == 5 and f.pending is not None and user(f.pending) == {"b": 2}


def test_larger_step_with_nothing_pending_writes_no_row_before_it() -> None:
    f, rows = fold_all([start(), log({"a": 1}, step=10, commit=True)])
    assert [user(r) for r in rows] == [{"a": 1, "_step": 10}]
    assert f.step == 11


def test_equal_step_merges_into_the_pending_row() -> None:
    f, rows = fold_all(
        [start(), log({"a": 1}, step=0), log({"b": 2}, step=0), log({"c": 3}, step=0, commit=True)]
    )
    assert [user(r) for r in rows] == [{"a": 1, "b": 2, "c": 3, "_step": 0}]
    assert f.step == 1


def test_smaller_step_is_dropped_whole_with_wandbs_warning_even_with_commit_true() -> None:
    f, rows = fold_all([start(), log({"a": 1}), log({"a": 2}), log({"x": 9}, step=0, commit=True)])
    assert [user(r) for r in rows] == [{"a": 1, "_step": 0}, {"a": 2, "_step": 1}]
    assert f.step == 2 and f.pending is None
    assert f.warnings == [step_drop_warning(0, 2)]
    assert "x" not in f.summary


def test_every_drop_adds_its_own_warning() -> None:
    f, _ = fold_all([start(), log({"a": 1}), log({"a": 2}, step=0), log({"a": 3}, step=-4)])
    assert f.warnings == [step_drop_warning(0, 1), step_drop_warning(-4, 1)]


def test_step_drop_warning_is_wandbs_text() -> None:
    assert step_drop_warning(1, 3) == (
        "Tried to log to step 1 that is less than the current step 3. Steps must be monotonically "
        "increasing, so this data will be ignored. See https://wandb.me/define-metric to log data out of order."
    )


def test_committed_step_is_never_reused() -> None:
    f, rows = fold_all([start(), log({"a": 1}, step=0, commit=True), log({"b": 2}, step=0)])
    assert steps(rows) == [0] and f.pending is None
    assert f.warnings == [step_drop_warning(0, 1)]


def test_empty_log_still_writes_a_row_of_reserved_columns() -> None:
    f, rows = fold_all([start(ts=T0), log({}, ts=T0 + 2)])
    assert rows == [{"_timestamp": T0 + 2, "_step": 0, "_runtime": 2.0}]
    assert f.step == 1


def test_nested_dict_without_leaves_adds_nothing_but_the_row_is_still_written() -> None:
    _, rows = fold_all([start(), log({"e": {}, "n": {"m": {}}})])
    assert [user(r) for r in rows] == [{"_step": 0}]


# ------------------------------------------------------------------------------ reserved columns and keys


def test_user_step_is_removed_user_timestamp_kept_and_runtime_overwritten() -> None:
    _, rows = fold_all(
        [start(ts=T0), log({"_step": 99, "_timestamp": 5.0, "_runtime": 77, "a": 1}, ts=T0 + 3)]
    )
    assert rows == [{"a": 1, "_timestamp": 5.0, "_step": 0, "_runtime": 3.0}]


def test_with_commit_false_the_last_calls_timestamp_wins() -> None:
    _, rows = fold_all(
        [start(), log({"a": 1, "_timestamp": 5.0}, commit=False, ts=T0 + 1), log({"b": 2}, ts=T0 + 2)]
    )
    assert rows[0]["_timestamp"] == T0 + 2


def test_runtime_is_zero_before_any_start_record() -> None:
    _, rows = fold_all([log({"a": 1}, ts=T0 + 50)])
    assert rows[0]["_runtime"] == 0.0


def test_empty_top_level_and_nested_keys_are_dropped() -> None:
    _, rows = fold_all([start(), log({"": 1, "a": {"": 2, "b": 3}})])
    assert [user(r) for r in rows] == [{"a": {"b": 3}, "_step": 0}]


def test_nested_dicts_merge_per_leaf_within_a_pending_row() -> None:
    _, rows = fold_all(
        [start(), log({"m": {"x": 1, "k": {"p": 1}}}, commit=False), log({"m": {"y": 2, "k": {"q": 2}}})]
    )
    assert [user(r) for r in rows] == [{"m": {"x": 1, "y": 2, "k": {"p": 1, "q": 2}}, "_step": 0}]


def test_nested_non_string_keys_are_written_as_json_would_write_them() -> None:
    _, rows = fold_all([start(), log({"n": {1: "i", False: "f", None: "z", 2.5: "x"}})])
    assert user(rows[0])["n"] == {"1": "i", "false": "f", "null": "z", "2.5": "x"}


def test_lists_and_media_dicts_are_leaves_not_subtrees() -> None:
    img = {"_type": "image-file", "path": "media/images/i.png", "sha256": "s", "size": 1}
    f, rows = fold_all([start(), log({"l": [{"a": 1}], "img": img})])
    assert user(rows[0]) == {"l": [{"a": 1}], "img": img, "_step": 0}
    assert f.summary["img"] == img


# ------------------------------------------------------------------------------ summary


def test_summary_is_the_last_value_of_each_leaf_and_nested_dicts_merge_across_rows() -> None:
    f, _ = fold_all(
        [
            start(),
            log({"loss": 3, "obj": {"a": 1, "b": 1}}),
            log({"loss": 2, "obj": {"a": 2}}),
            log({"acc": 1}),
        ]
    )
    assert user(f.summary) == {"loss": 2, "obj": {"a": 2, "b": 1}, "acc": 1, "_step": 2}


def test_none_never_reaches_the_summary() -> None:
    f, rows = fold_all([start(), log({"loss": 2}), log({"loss": None, "only_none": None, "n": {"x": None}})])
    assert user(rows[1]) == {"loss": None, "only_none": None, "n": {"x": None}, "_step": 1}
    assert f.summary["loss"] == 2 and "only_none" not in f.summary and "n" not in f.summary


def test_a_new_media_value_replaces_the_old_one_whole_in_the_summary() -> None:
    first = {"_type": "image-file", "path": "a.png", "sha256": "1", "size": 1, "caption": "first"}
    second = {"_type": "image-file", "path": "b.png", "sha256": "2", "size": 2}
    f, _ = fold_all([start(), log({"img": first}), log({"img": second})])
    assert f.summary["img"] == second


def test_summary_record_sets_keys_whole_and_removes_keys() -> None:
    f, _ = fold_all(
        [
            start(),
            log({"a": 1, "n": {"x": 1, "y": 2}}),
            summary({"n": {"z": 3}, "extra": "e"}),
            summary({}, ["a"]),
        ]
    )
    assert user(f.summary) == {"n": {"z": 3}, "extra": "e", "_step": 0}


def test_explicit_summary_resets_the_define_metric_ops_so_the_next_log_is_a_plain_last_value() -> None:
    f, _ = fold_all([start(), metric("loss", summary="min"), log({"loss": 5}), log({"loss": 1})])
    assert f.summary["loss"] == {"min": 1}
    f.apply(*summary({"loss": 100}))
    assert f.summary["loss"] == 100
    f.apply(*log({"loss": 2}))
    assert f.summary["loss"] == 2


def test_exit_sets_integer_runtime_in_summary_and_under_wandb() -> None:
    f, _ = fold_all([start(ts=T0), log({"a": 1}, ts=T0 + 1), exit_(ts=T0 + 7.9)])
    assert f.summary["_runtime"] == 7 and f.summary["_wandb"] == {"runtime": 7}
    assert type(f.summary["_runtime"]) is int


# ------------------------------------------------------------------------------ define_metric


@pytest.mark.parametrize(
    ("ops", "goal", "expected"),
    [
        ("min", None, {"min": 1}),
        ("max", None, {"max": 5}),
        ("mean", None, {"mean": 3.0}),
        ("first", None, {"first": 3}),
        ("last", None, {"last": 1}),
        ("best", "minimize", {"best": 1}),
        ("best", "maximize", {"best": 5}),
        ("min,MAX, mean", None, {"min": 1, "max": 5, "mean": 3.0}),
    ],
)
def test_summary_ops_give_a_dict_of_the_requested_stats(
    ops: str, goal: str | None, expected: dict[str, Any]
) -> None:
    f, rows = fold_all(
        [start(), metric("loss", summary=ops, goal=goal), *(log({"loss": v}) for v in (3, 5, 1))]
    )
    assert [r["loss"] for r in rows] == [3, 5, 1]
    assert f.summary["loss"] == expected


def test_summary_none_keeps_the_key_out_of_the_summary_but_in_the_rows() -> None:
    f, rows = fold_all([start(), metric("loss", summary="none"), log({"loss": 1, "acc": 2})])
    assert rows[0]["loss"] == 1 and "loss" not in f.summary and f.summary["acc"] == 2


def test_summary_copy_alone_is_the_plain_last_value() -> None:
    f, _ = fold_all([start(), metric("loss", summary="copy"), log({"loss": 4}), log({"loss": 2})])
    assert f.summary["loss"] == 2


def test_min_max_mean_count_numbers_only_while_first_and_last_take_any_value() -> None:
    events = [start(), metric("v", summary="min,max,mean,first,last")]
    events += [log({"v": v}) for v in ("text", 2, True, 4, "end")]
    f, _ = fold_all(events)
    assert f.summary["v"] == {"min": 2, "max": 4, "mean": 3.0, "first": "text", "last": "end"}


def test_nan_makes_the_mean_nan_but_is_never_the_min_or_max() -> None:
    f, _ = fold_all(
        [start(), metric("v", summary="min,max,mean"), *(log({"v": v}) for v in (2.0, math.nan, 4.0))]
    )
    s = f.summary["v"]
    assert s["min"] == 2.0 and s["max"] == 4.0 and math.isnan(s["mean"])


def test_repeated_definitions_merge_their_ops_and_overwrite_replaces_them() -> None:
    f, _ = fold_all(
        [start(), metric("a", summary="min"), metric("a", summary="max"), log({"a": 1}), log({"a": 3})]
    )
    assert f.summary["a"] == {"min": 1, "max": 3}
    g, _ = fold_all(
        [
            start(),
            metric("a", summary="min"),
            metric("a", summary="max", overwrite=True),
            log({"a": 1}),
            log({"a": 3}),
        ]
    )
    assert g.summary["a"] == {"max": 3}


def test_glob_is_a_string_prefix_and_the_longest_matching_prefix_wins_whatever_the_order() -> None:
    for order in ((("val*", "min"), ("validation/*", "max")), (("validation/*", "max"), ("val*", "min"))):
        defs = [metric(name, summary=ops) for name, ops in order]
        f, _ = fold_all(
            [
                start(),
                *defs,
                log({"validity": 1, "validation/loss": 1}),
                log({"validity": 2, "validation/loss": 2}),
            ]
        )
        assert f.summary["validity"] == {"min": 1}
        assert f.summary["validation/loss"] == {"max": 2}


def test_first_glob_match_makes_a_concrete_metric_that_later_globs_do_not_change() -> None:
    f, _ = fold_all(
        [start(), metric("a*", summary="min"), log({"ab": 2}), metric("ab*", summary="max"), log({"ab": 1})]
    )
    assert f.summary["ab"] == {"min": 1}
    assert f.metrics[("ab",)].ops == {"min"}


def test_glob_matches_the_dotted_path_of_a_nested_key_but_never_an_underscore_key() -> None:
    f, _ = fold_all(
        [start(), metric("*", summary="max"), log({"n": {"x": 1}, "_p": 5}), log({"n": {"x": 0}, "_p": 1})]
    )
    assert f.summary["n"] == {"x": {"max": 1}}
    assert f.summary["_p"] == 1


def test_dotted_metric_name_means_nesting_and_an_escaped_dot_a_literal_key() -> None:
    f, _ = fold_all(
        [
            start(),
            metric("a.b", summary="max"),
            metric("c\\.d", summary="min"),
            log({"a": {"b": 2}, "c.d": 2}),
            log({"a": {"b": 1}, "c.d": 1}),
        ]
    )
    assert f.summary["a"] == {"b": {"max": 2}}
    assert f.summary["c.d"] == {"min": 1}


def test_synced_step_metric_inserts_its_latest_value_or_zero_where_a_row_lacks_it() -> None:
    _, rows = fold_all(
        [
            start(),
            metric("epoch"),
            metric("loss", step_metric="epoch"),
            log({"loss": 1}),
            log({"epoch": 3}),
            log({"loss": 2}),
            log({"other": 0}),
        ]
    )
    assert [user(r) for r in rows] == [
        {"loss": 1, "epoch": 0, "_step": 0},
        {"epoch": 3, "_step": 1},
        {"loss": 2, "epoch": 3, "_step": 2},
        {"other": 0, "_step": 3},
    ]


def test_step_sync_false_inserts_nothing() -> None:
    _, rows = fold_all([start(), metric("loss", step_metric="epoch", step_sync=False), log({"loss": 1})])
    assert user(rows[0]) == {"loss": 1, "_step": 0}


def test_glob_step_metric_applies_to_every_matching_key() -> None:
    _, rows = fold_all(
        [
            start(),
            metric("gs"),
            metric("*", step_metric="gs", step_sync=True),
            log({"gs": 7, "a": 1}),
            log({"b": 2}),
        ]
    )
    assert [user(r) for r in rows] == [{"gs": 7, "a": 1, "_step": 0}, {"b": 2, "gs": 7, "_step": 1}]


def test_hidden_changes_neither_rows_nor_summary() -> None:
    f, rows = fold_all([start(), metric("h", hidden=True), log({"h": 1})])
    assert user(rows[0]) == {"h": 1, "_step": 0} and f.summary["h"] == 1
    assert f.metrics[("h",)].as_dict()["hidden"] is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "define_metric() requires non-empty name argument"),
        ({"name": 3}, "Unhandled define_metric() arg: name type: int"),
        ({"name": "a*b"}, "Unhandled define_metric() arg: name (glob suffixes only): a*b"),
        ({"name": "a", "summary": "median"}, "Unhandled define_metric() arg: summary op: median"),
        ({"name": "a", "summary": ["min"]}, "Unhandled define_metric() arg: summary type: list"),
        ({"name": "a", "step_metric": 1}, "Unhandled define_metric() arg: step_metric type: int"),
        ({"name": "a", "hidden": "yes"}, "Unhandled define_metric() arg: hidden type: str"),
        ({"name": "a", "goal": "up"}, "Unhandled define_metric() arg: goal: up"),
        (
            {"name": "a", "summary": "best"},
            'define_metric(summary="best") requires goal="minimize" or goal="maximize"',
        ),
    ],
)
def test_parse_metric_rejects_bad_arguments_with_wandbs_texts(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(Error) as info:
        parse_metric(**kwargs)
    assert str(info.value) == message


def test_parse_metric_accepts_short_goals_and_normalises_them() -> None:
    assert parse_metric("a", summary="best", goal="min")["goal"] == "minimize"
    assert parse_metric("a", summary="best", goal="MAX")["goal"] == "maximize"


# ------------------------------------------------------------------------------ config, meta, other records


def test_config_records_set_top_level_keys_and_a_later_record_wins_whole() -> None:
    f, _ = fold_all(
        [
            start(),
            config({"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}),
            config({"opt": {"name": "sgd"}, "bs": 8}),
        ]
    )
    assert f.config == {"lr": 0.1, "opt": {"name": "sgd"}, "bs": 8}


def test_start_fills_meta_and_records_the_attempt() -> None:
    f, _ = fold_all([start(name="first", tags=["x"])])
    assert f.meta["id"] == "abc123" and f.meta["name"] == "first" and f.meta["created_at"] == T0
    assert "pid" not in f.meta and "attempt" not in f.meta
    assert f.attempts == [{"attempt": 0, "ts": T0, "host": "h", "pid": 42, "context": {}}]
    assert f.heartbeat_interval == 30.0


def test_run_record_updates_meta() -> None:
    f, _ = fold_all([start(name="first"), (ev.RUN, [T0 + 1, {"name": "renamed", "tags": ["t"]}])])
    assert f.meta["name"] == "renamed" and f.meta["tags"] == ["t"]


def test_files_artifacts_alerts_uses_console_and_system_records_are_kept() -> None:
    f1 = {"name": "a.txt", "path": "files/a.txt", "size": 1, "sha256": "1", "policy": "now"}
    f2 = {**f1, "size": 2, "sha256": "2"}
    art = {"name": "model", "type": "model", "version": 0}
    alert = {"title": "t", "text": "x", "level": "INFO", "wait_duration": None}
    use = {"name": "data", "version": 1}
    f, rows = fold_all(
        [
            start(),
            (ev.FILES, [T0, [f1]]),
            (ev.FILES, [T0, [f2]]),
            (ev.ARTIFACT, [T0, art]),
            (ev.ALERT, [T0, alert]),
            (ev.USE, [T0, use]),
            (ev.CONSOLE, [T0 + 1, "stdout", "hello\n"]),
            (ev.SYSTEM, [T0 + 2, {"cpu": 5.0}]),
        ]
    )
    assert rows == []
    assert f.files == {"a.txt": f2}
    assert f.artifacts == [art] and f.alerts == [alert] and f.uses == [use]
    assert list(f.console_tail) == [(T0 + 1, "stdout", "hello\n")]
    assert f.last_system == (T0 + 2, {"cpu": 5.0})
    assert f.last_ts == T0 + 2


def test_a_kind_the_fold_does_not_know_is_ignored() -> None:
    _, rows = fold_all([start(), (200, [T0, {"future": True}]), log({"a": 1})])
    assert [user(r) for r in rows] == [{"a": 1, "_step": 0}]


# ------------------------------------------------------------------------------ exit, crash, resume, status


def test_exit_flushes_the_pending_row_at_the_current_step() -> None:
    f, rows = fold_all([start(), log({"a": 1}), log({"b": 2}, commit=False), exit_()])
    assert [user(r) for r in rows] == [{"a": 1, "_step": 0}, {"b": 2, "_step": 1}]
    assert f.exit is not None and f.pending is None


def test_flush_pending_gives_a_crashed_runs_last_row_and_nothing_when_none_is_pending() -> None:
    f, _ = fold_all([start(ts=T0), log({"a": 1}, step=4, ts=T0 + 5)])
    row = f.flush_pending()
    assert row == {"a": 1, "_timestamp": T0 + 5, "_step": 4, "_runtime": 5.0}
    assert f.flush_pending() is None


def _resumed_run() -> list[Event]:
    """An attempt that ran 20 s and failed, then a resume 980 s later that logs 5 s in."""
    return [
        start(ts=T0),
        log({"a": 1}, ts=T0 + 10),
        exit_(1, ts=T0 + 20),
        start(ts=T0 + 1000, attempt=1, name=None),
        log({"a": 2}, ts=T0 + 1005),
    ]


def test_resume_goes_on_with_the_step_and_clears_the_exit() -> None:
    f, rows = fold_all(_resumed_run())
    assert steps(rows) == [0, 1]
    assert f.exit is None and len(f.attempts) == 2 and f.attempts[1]["attempt"] == 1


def test_a_pending_row_left_by_a_crash_stays_pending_into_the_resumed_attempt() -> None:
    _, rows = fold_all(
        [
            start(ts=T0),
            log({"a": 1}),
            log({"p": 1}, commit=False),
            start(ts=T0 + 100, attempt=1),
            log({"q": 2}),
        ]
    )
    assert [user(r) for r in rows] == [{"a": 1, "_step": 0}, {"p": 1, "q": 2, "_step": 1}]


def test_resume_runtime_goes_on_from_what_earlier_attempts_ran_not_from_the_wall_clock_gap() -> None:
    _, rows = fold_all(_resumed_run())
    assert rows[1]["_runtime"] == 25.0


def test_resume_runtime_never_goes_backwards() -> None:
    _, rows = fold_all(_resumed_run())
    assert rows[1]["_runtime"] >= rows[0]["_runtime"]


def test_resume_keeps_meta_that_the_new_start_leaves_empty() -> None:
    f, _ = fold_all([start(name="kept", group="g"), start(ts=T0 + 5, attempt=1, name=None, group="h")])
    assert f.meta["name"] == "kept" and f.meta["group"] == "h" and f.meta["created_at"] == T0


@pytest.mark.parametrize(
    ("exit_record", "last_alive", "writer_alive", "expected"),
    [
        ({"exit_code": 0}, None, None, "finished"),
        ({"exit_code": None}, None, False, "finished"),
        ({"exit_code": 1}, T0, True, "failed"),
        (None, T0 + 95, True, "running"),
        (None, T0 + 95, None, "running"),
        (None, T0 + 95, False, "crashed"),
        (None, T0, None, "crashed"),
        (None, T0, True, "crashed"),
        (None, None, True, "crashed"),
    ],
)
def test_run_state_from_exit_record_liveness_and_heartbeat_age(
    exit_record: dict[str, Any] | None, last_alive: float | None, writer_alive: bool | None, expected: str
) -> None:
    assert run_state(exit_record, last_alive, T0 + 100, writer_alive, grace=60.0) == expected


def test_status_goes_running_then_finished_or_failed_and_running_again_on_resume() -> None:
    f = Fold()
    assert f.state(T0, None, 60.0) == "crashed"  # nothing was ever written: no sign of life
    f.apply(*start(ts=T0))
    assert f.state(T0 + 1, None, 60.0) == "running"
    f.apply(*(ev.HEARTBEAT, [T0 + 50]))
    assert f.last_alive() == T0 + 50
    assert f.state(T0 + 100, None, 60.0) == "running"
    assert f.state(T0 + 200, None, 60.0) == "crashed"
    f.apply(*exit_(1, ts=T0 + 60))
    assert f.state(T0 + 10_000, False, 60.0) == "failed"
    f.apply(*start(ts=T0 + 300, attempt=1))
    assert f.state(T0 + 301, True, 60.0) == "running"
    f.apply(*exit_(0, ts=T0 + 400))
    assert f.state(T0 + 10_000, None, 60.0) == "finished"


# ------------------------------------------------------------------------------ one fold, many paths


def _story() -> list[Event]:
    """Every kind of event, in an order that exercises pending rows, metrics and a resume."""
    return [
        start(ts=T0),
        config({"lr": 0.1}),
        log_scalars({"loss": 3.0, "acc": 0.1}, ts=T0 + 1),
        log_scalars({"loss": 2.0, "acc": 0.2}, ts=T0 + 2),
        log(
            {"img": {"_type": "image-file", "path": "p.png", "sha256": "s", "size": 1}, "n": {"x": 1}},
            ts=T0 + 3,
        ),
        log({"a": 1}, commit=False, ts=T0 + 4),
        log_scalars({"b": 2}, ts=T0 + 5),
        metric("loss", summary="min,mean"),
        metric("*", step_metric="epoch"),
        log_scalars({"loss": 1.0}, ts=T0 + 6),
        log({"epoch": 1, "loss": 5.0}, step=20, ts=T0 + 7),
        log({"late": 1}, step=3, ts=T0 + 8),
        summary({"best": 0.5}),
        (ev.HEARTBEAT, [T0 + 9]),
        (ev.CONSOLE, [T0 + 9, "stderr", "warn\n"]),
        exit_(1, ts=T0 + 10),
        start(ts=T0 + 100, attempt=1),
        log_scalars({"loss": 0.5}, ts=T0 + 101),
        exit_(0, ts=T0 + 102),
    ]


def _snapshot(f: Fold) -> dict[str, Any]:
    return {
        "meta": f.meta,
        "attempts": f.attempts,
        "config": f.config,
        "summary": f.summary,
        "step": f.step,
        "rows": f.rows,
        "pending": f.pending,
        "exit": f.exit,
        "warnings": f.warnings,
        "events": f.events,
        "first_ts": f.first_ts,
        "last_ts": f.last_ts,
        "last_heartbeat": f.last_heartbeat,
        "console": list(f.console_tail),
        "metrics": {p: m.as_dict() for p, m in f.metrics.items()},
    }


def test_same_events_give_the_same_state_and_rows() -> None:
    a, rows_a = fold_all(_story())
    b, rows_b = fold_all(_story())
    assert rows_a == rows_b
    assert repr(_snapshot(a)) == repr(_snapshot(b))
    assert steps(rows_a) == [0, 1, 2, 3, 4, 20, 21]
    assert a.warnings == [step_drop_warning(3, 20)]


def test_log_scalars_folds_exactly_like_log() -> None:
    as_scalars, rows_s = fold_all(_story())
    as_log, rows_l = fold_all((ev.LOG if k == ev.LOG_SCALARS else k, p) for k, p in _story())
    assert rows_s == rows_l
    assert repr(_snapshot(as_scalars)) == repr(_snapshot(as_log))


def test_fold_records_gives_what_apply_gives_event_by_event() -> None:
    by_event, rows_e = fold_all(_story())
    batched = Fold()
    records = [(i, kind, ev.encode(payload)) for i, (kind, payload) in enumerate(_story())]
    failures: list[int] = []
    rows_b, unflat = batched.fold_records(records, ev.decode, lambda off, _p, _e: failures.append(off))
    assert failures == []
    assert rows_b == rows_e
    assert repr(_snapshot(batched)) == repr(_snapshot(by_event))
    assert [rows_b[i]["_step"] for i in unflat] == [2]  # the one row that holds more than scalars


def test_fold_records_reports_an_undecodable_payload_and_folds_the_rest() -> None:
    records = [
        (0, ev.START, ev.encode(start()[1])),
        (40, ev.LOG_SCALARS, b"\xc1"),  # 0xc1 is never valid msgpack
        (50, ev.LOG_SCALARS, ev.encode([T0, {"a": 1}, None, None])),
    ]
    seen: list[tuple[int, bytes]] = []
    f = Fold()
    rows, _ = f.fold_records(records, ev.decode, lambda off, payload, _exc: seen.append((off, payload)))
    assert seen == [(40, b"\xc1")]
    assert [user(r) for r in rows] == [{"a": 1, "_step": 0}]


# ------------------------------------------------------------------------------ purity


def test_the_fold_does_no_io_reads_no_clock_and_draws_no_random_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the fold must not do I/O, read a clock or draw random numbers")

    targets: list[tuple[Any, str]] = [
        (builtins, "open"),
        (builtins, "print"),
        (os, "open"),
        (os, "read"),
        (os, "write"),
        (os, "stat"),
        (os, "getpid"),
        (time, "time"),
        (time, "monotonic"),
        (time, "perf_counter"),
        (random, "random"),
        (socket, "socket"),
    ]
    for module, name in targets:
        monkeypatch.setattr(module, name, forbidden)
    f, rows = fold_all(_story())
    f.flush_pending()
    f.state(T0 + 500, None, 60.0)
    monkeypatch.undo()
    assert len(rows) == 7


def test_the_fold_module_imports_nothing_that_reaches_outside_the_process() -> None:
    tree = ast.parse(Path(fold_module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "wandblite":
            imported |= {f"wandblite.{a.name}" for a in node.names}  # from wandblite import events
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    io_modules = {
        "os",
        "io",
        "sys",
        "time",
        "datetime",
        "random",
        "socket",
        "pathlib",
        "subprocess",
        "threading",
        "tempfile",
        "shutil",
        "uuid",
        "secrets",
        "logging",
        "warnings",
        "mmap",
    }
    roots = {name.split(".")[0] for name in imported}
    assert not roots & io_modules, f"fold.py imports {sorted(roots & io_modules)}"
    own = {name for name in imported if name.startswith("wandblite")}
    lower_layers = {"wandblite.events", "wandblite.errors", "wandblite.vocab"}
    assert own <= lower_layers, f"fold.py imports {sorted(own - lower_layers)}"
