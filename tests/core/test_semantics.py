"""One test per rule of docs/semantics.md (sections 1-3, 5 and 7-11), and every seed example.

Each test drives the real SDK (``wandblite.init`` into tmp_path, ``run.log``, ``run.finish``) and
asserts what a fresh ``wandblite.replay`` of the run's files gives back: the history rows and the
summary, and where the rule says so the live ``run.step``/``run.summary`` and the exact warning and
error texts (warnings are ``wandblite: WARNING <text>`` lines on stderr).
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
import types
from typing import Any

import numpy as np
import pytest

import wandblite

RESERVED = ("_runtime", "_timestamp")
SUMMARY_RESERVED = ("_step", "_runtime", "_timestamp", "_wandb")


def drop_warning(step: int, cur: int) -> str:
    return (
        f"wandblite: WARNING Tried to log to step {step} that is less than the current step {cur}. "
        "Steps must be monotonically increasing, so this data will be ignored. "
        "See https://wandb.me/define-metric to log data out of order."
    )


def replayed(run: Any) -> Any:
    """Finish the run and read it back from its files."""
    run.finish()
    return wandblite.replay(run.path)


def rows_of(r: Any) -> list[dict[str, Any]]:
    """History rows without the time columns (their presence is checked, their values vary)."""
    out = []
    for row in r.history():
        for k in ("_step", *RESERVED):
            assert k in row, f"row {row} lacks {k}"
        out.append({k: v for k, v in row.items() if k not in RESERVED})
    return out


def user_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in SUMMARY_RESERVED}


def history_and_summary(run: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    r = replayed(run)
    return rows_of(r), user_summary(r.summary)


def stderr_warnings(captured: str) -> list[str]:
    return [line for line in captured.splitlines() if line.startswith("wandblite: WARNING ")]


# =============================================================================== seed examples


def test_seed_scalars_logged_each_step_give_one_row_per_call(run: Any) -> None:
    for i in range(3):
        run.log({"loss": 1.0 / (i + 1), "acc": i * 0.25, "epoch": i})
    rows, summary = history_and_summary(run)
    assert rows == [
        {"loss": 1.0, "acc": 0.0, "epoch": 0, "_step": 0},
        {"loss": 0.5, "acc": 0.25, "epoch": 1, "_step": 1},
        {"loss": 1.0 / 3, "acc": 0.5, "epoch": 2, "_step": 2},
    ]
    assert summary == {"loss": 1.0 / 3, "acc": 0.5, "epoch": 2}


def test_seed_slash_sections_are_kept_as_flat_keys(run: Any) -> None:
    run.log({"train/loss": 0.5, "train/acc": 0.8, "val/loss": 0.6})
    run.log({"train/loss": 0.4, "train/acc": 0.9, "val/loss": 0.55})
    rows, summary = history_and_summary(run)
    assert rows == [
        {"train/loss": 0.5, "train/acc": 0.8, "val/loss": 0.6, "_step": 0},
        {"train/loss": 0.4, "train/acc": 0.9, "val/loss": 0.55, "_step": 1},
    ]
    assert summary == {"train/loss": 0.4, "train/acc": 0.9, "val/loss": 0.55}


def _idiom_log_twice(run: Any) -> None:
    run.log({"loss": 0.5, "acc": 0.1})
    run.log({"loss": 0.4, "acc": 0.2})


def _idiom_commit_false_then_log(run: Any) -> None:
    run.log({"loss": 0.5}, commit=False)
    run.log({"acc": 0.1})
    run.log({"loss": 0.4}, commit=False)
    run.log({"acc": 0.2})


def _idiom_explicit_step_commit_true_last(run: Any) -> None:
    run.log({"loss": 0.5}, step=0)
    run.log({"acc": 0.1}, step=0, commit=True)
    run.log({"loss": 0.4}, step=1)
    run.log({"acc": 0.2}, step=1, commit=True)


@pytest.mark.parametrize(
    "idiom", [_idiom_log_twice, _idiom_commit_false_then_log, _idiom_explicit_step_commit_true_last]
)
def test_seed_three_step_commit_idioms_give_identical_history(new_run: Any, idiom: Any) -> None:
    run = new_run()
    idiom(run)
    assert run.step == 2
    rows, summary = history_and_summary(run)
    assert rows == [
        {"loss": 0.5, "acc": 0.1, "_step": 0},
        {"loss": 0.4, "acc": 0.2, "_step": 1},
    ]
    assert summary == {"loss": 0.4, "acc": 0.2}


def test_seed_incremental_logging_builds_one_row_from_many_calls(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    run.log({"c": 3}, commit=False)
    assert run.step == 0
    run.log({"d": 4})
    assert run.step == 1
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "b": 2, "c": 3, "d": 4, "_step": 0}]
    assert summary == {"a": 1, "b": 2, "c": 3, "d": 4}


# =============================================================================== 1. steps and commit


def test_run_step_starts_at_zero(run: Any) -> None:
    assert run.step == 0


def test_log_without_step_or_commit_flushes_row_and_advances(run: Any) -> None:
    run.log({"a": 1})
    assert run.step == 1
    # The row is flushed at once: a replay of the still-running run already shows it.
    assert rows_of(wandblite.replay(run.path)) == [{"a": 1, "_step": 0}]
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}]
    assert summary == {"a": 1}


def test_commit_false_merges_into_pending_row_without_advancing(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    assert run.step == 0
    assert wandblite.replay(run.path).history() == []  # still pending
    run.log({"b": 2}, commit=False)
    assert run.step == 0
    run.log({"c": 3})
    assert run.step == 1
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "b": 2, "c": 3, "_step": 0}]
    assert summary == {"a": 1, "b": 2, "c": 3}


def test_commit_false_same_key_later_value_wins_in_the_row(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    run.log({"a": 2})
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 2, "_step": 0}]
    assert summary == {"a": 2}


def test_commit_true_flushes_and_advances(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=True)
    assert run.step == 1
    run.log({"c": 3}, commit=True)
    assert run.step == 2
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "b": 2, "_step": 0}, {"c": 3, "_step": 1}]


def test_step_greater_than_current_flushes_pending_row_at_old_step(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, step=5)
    assert run.step == 5
    # the old pending row is flushed at step 0; the new data stays pending at step 5
    assert rows_of(wandblite.replay(run.path)) == [{"a": 1, "_step": 0}]
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}, {"b": 2, "_step": 5}]
    assert summary == {"a": 1, "b": 2}


def test_step_greater_than_current_with_nothing_pending_writes_no_row_before(run: Any) -> None:
    run.log({"a": 1})  # row 0, cur = 1, nothing pending
    run.log({"b": 2}, step=4)
    assert run.step == 4
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}, {"b": 2, "_step": 4}]


def test_first_call_with_large_step_writes_only_that_row(run: Any) -> None:
    run.log({"b": 2}, step=3)
    assert run.step == 3
    rows, _ = history_and_summary(run)
    assert rows == [{"b": 2, "_step": 3}]


def test_step_given_defaults_commit_to_false_so_row_stays_pending(run: Any) -> None:
    run.log({"a": 1}, step=2)
    assert run.step == 2
    assert wandblite.replay(run.path).history() == []
    run.log({"b": 2}, step=2)
    assert run.step == 2
    run.log({"c": 3}, step=3)  # flushes step 2
    assert run.step == 3
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "b": 2, "_step": 2}, {"c": 3, "_step": 3}]


def test_step_equal_to_current_merges_into_pending_row(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, step=0)
    assert run.step == 0
    run.log({"c": 3})
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "b": 2, "c": 3, "_step": 0}]


def test_step_equal_to_current_after_implicit_log_starts_new_row(run: Any) -> None:
    run.log({"a": 1})  # cur = 1
    run.log({"b": 2}, step=1)
    assert run.step == 1
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}, {"b": 2, "_step": 1}]


def test_step_with_commit_true_flushes_at_that_step_and_advances(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, step=3, commit=True)
    assert run.step == 4
    run.log({"c": 3})
    assert run.step == 5
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}, {"b": 2, "_step": 3}, {"c": 3, "_step": 4}]


def test_step_smaller_than_current_drops_whole_call_with_warning(run: Any, capsys: Any) -> None:
    run.log({"a": 1})
    run.log({"a": 2})
    capsys.readouterr()
    run.log({"a": 99, "z": 1}, step=1)
    err = capsys.readouterr().err
    assert stderr_warnings(err) == [drop_warning(1, 2)]
    assert run.step == 2
    assert "z" not in run.summary
    assert run.summary["a"] == 2
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}, {"a": 2, "_step": 1}]
    assert summary == {"a": 2}


def test_step_smaller_than_current_drops_call_even_with_commit_true(run: Any, capsys: Any) -> None:
    run.log({"a": 1}, step=5)  # pending at 5
    capsys.readouterr()
    run.log({"b": 2}, step=3, commit=True)
    assert stderr_warnings(capsys.readouterr().err) == [drop_warning(3, 5)]
    assert run.step == 5
    # the pending row was neither flushed nor merged into
    assert wandblite.replay(run.path).history() == []
    run.log({"c": 3}, step=5)
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "c": 3, "_step": 5}]
    assert summary == {"a": 1, "c": 3}


def test_step_smaller_than_current_warning_is_printed_on_every_drop(run: Any, capsys: Any) -> None:
    run.log({"a": 1}, step=10)
    capsys.readouterr()
    run.log({"a": 2}, step=3)
    run.log({"a": 3}, step=3)
    run.log({"a": 4}, step=9, commit=True)
    assert stderr_warnings(capsys.readouterr().err) == [
        drop_warning(3, 10),
        drop_warning(3, 10),
        drop_warning(9, 10),
    ]
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 10}]


def test_negative_step_is_dropped_with_warning(run: Any, capsys: Any) -> None:
    run.log({"a": 1}, step=-1)
    assert stderr_warnings(capsys.readouterr().err) == [drop_warning(-1, 0)]
    assert run.step == 0
    run.log({"b": 2}, step=-5, commit=True)
    assert stderr_warnings(capsys.readouterr().err) == [drop_warning(-5, 0)]
    assert run.step == 0
    rows, summary = history_and_summary(run)
    assert rows == []
    assert summary == {}


def test_committed_step_can_never_be_reused(run: Any, capsys: Any) -> None:
    run.log({"x": 1}, step=0, commit=True)
    assert run.step == 1
    capsys.readouterr()
    run.log({"y": 2}, step=0)
    assert stderr_warnings(capsys.readouterr().err) == [drop_warning(0, 1)]
    rows, summary = history_and_summary(run)
    assert rows == [{"x": 1, "_step": 0}]
    assert summary == {"x": 1}


def test_finish_flushes_pending_row_at_current_step(run: Any) -> None:
    run.log({"a": 1})
    run.log({"b": 2}, step=7)
    run.log({"c": 3}, commit=False, step=7)
    r = replayed(run)
    assert r.state == "finished"
    assert rows_of(r) == [{"a": 1, "_step": 0}, {"b": 2, "c": 3, "_step": 7}]
    assert user_summary(r.summary) == {"a": 1, "b": 2, "c": 3}
    assert r.summary["_step"] == 7


def test_finish_flushes_commit_false_row_at_step_zero(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}]
    assert summary == {"a": 1}


@pytest.mark.parametrize(
    ("bad_step", "type_name"), [(1.5, "float"), (2.0, "float"), ("3", "str"), ([1], "list")]
)
def test_step_not_an_int_raises_data_error_and_logs_nothing(run: Any, bad_step: Any, type_name: str) -> None:
    run.log({"a": 1}, commit=False)
    with pytest.raises(wandblite.DataError) as info:
        run.log({"b": 2}, step=bad_step, commit=True)
    assert str(info.value) == f"'{type_name}' object cannot be interpreted as an integer"
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)
    assert run.step == 0
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}]
    assert summary == {"a": 1}


def test_float_step_is_caught_as_type_error(run: Any) -> None:
    with pytest.raises(TypeError, match="'float' object cannot be interpreted as an integer"):
        run.log({"a": 1}, step=1.5)
    with pytest.raises(ValueError, match="'float' object cannot be interpreted as an integer"):
        run.log({"a": 1}, step=1.5)


@pytest.mark.parametrize("np_int", [np.int64, np.int32, np.uint8])
def test_numpy_int_step_is_accepted(run: Any, np_int: Any) -> None:
    run.log({"a": 1}, step=np_int(3))
    assert run.step == 3
    run.log({"b": 2}, step=np_int(4), commit=True)
    assert run.step == 5
    rows, _ = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 3}, {"b": 2, "_step": 4}]
    assert all(type(row["_step"]) is int for row in rows)


def test_log_empty_dict_writes_row_with_only_reserved_columns_and_advances(run: Any) -> None:
    run.log({})
    assert run.step == 1
    run.log({})
    assert run.step == 2
    r = replayed(run)
    hist = r.history()
    assert [sorted(row) for row in hist] == [["_runtime", "_step", "_timestamp"]] * 2
    assert [row["_step"] for row in hist] == [0, 1]
    assert user_summary(r.summary) == {}
    assert r.summary["_step"] == 1


def test_log_dict_with_empty_nested_dict_writes_row_with_only_reserved_columns(run: Any) -> None:
    run.log({"e": {}})
    assert run.step == 1
    r = replayed(run)
    hist = r.history()
    assert [sorted(row) for row in hist] == [["_runtime", "_step", "_timestamp"]]
    assert hist[0]["_step"] == 0
    assert user_summary(r.summary) == {}


def test_log_empty_dict_with_commit_false_still_makes_a_pending_row(run: Any) -> None:
    run.log({}, commit=False)
    run.log({"b": 1}, step=2)  # the pending row is not empty: it is flushed at 0
    rows, _ = history_and_summary(run)
    assert rows == [{"_step": 0}, {"b": 1, "_step": 2}]


class _Unserializable:
    pass


@pytest.mark.parametrize(
    "bad_call",
    [
        lambda run: run.log({"ok": 5, "bad": _Unserializable()}, commit=True),
        lambda run: run.log({"ok": 5, "bad": {"deep": range(3)}}),
        lambda run: run.log({"ok": 5, 3: 1}),
        lambda run: run.log([("ok", 5)]),
        lambda run: run.log({"ok": 5}, step=0.5, commit=True),
        lambda run: run.log({"ok": 5, "bad": _Unserializable()}, step=9),
    ],
    ids=["unserializable", "nested-range", "bad-key", "not-a-dict", "bad-step", "unserializable-larger-step"],
)
def test_call_that_raises_has_no_effect_and_does_not_advance(run: Any, bad_call: Any) -> None:
    run.log({"a": 1})
    run.log({"p": 1}, commit=False)
    with pytest.raises(wandblite.DataError):
        bad_call(run)
    assert run.step == 1
    assert "ok" not in run.summary
    run.log({"q": 2})
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}, {"p": 1, "q": 2, "_step": 1}]
    assert summary == {"a": 1, "p": 1, "q": 2}


# =============================================================================== 2. reserved columns


def test_user_step_key_is_silently_removed(run: Any, capsys: Any) -> None:
    data = {"_step": 100, "a": 1}
    run.log(data)
    assert run.step == 1
    assert data == {"_step": 100, "a": 1}  # the caller's dict is left alone
    r = replayed(run)
    assert rows_of(r) == [{"a": 1, "_step": 0}]
    assert r.summary["_step"] == 0
    assert stderr_warnings(capsys.readouterr().err) == []


def test_user_runtime_is_overwritten(run: Any) -> None:
    run.log({"_runtime": 12345.0, "a": 1})
    r = replayed(run)
    (row,) = r.history()
    assert type(row["_runtime"]) is float
    assert 0.0 <= row["_runtime"] < 600.0
    assert r.summary["_runtime"] != 12345.0


def test_timestamp_is_added_at_call_time(run: Any) -> None:
    before = time.time()
    run.log({"a": 1})
    after = time.time()
    (row,) = replayed(run).history()
    assert before <= row["_timestamp"] <= after


def test_user_timestamp_is_kept_verbatim(run: Any) -> None:
    run.log({"_timestamp": 5, "a": 1})
    run.log({"_timestamp": 1700000000.25, "a": 2})
    r = replayed(run)
    assert [row["_timestamp"] for row in r.history()] == [5, 1700000000.25]
    assert r.summary["_timestamp"] == 1700000000.25


def test_commit_false_last_calls_user_timestamp_wins(run: Any) -> None:
    run.log({"_timestamp": 1.0, "a": 1}, commit=False)
    run.log({"_timestamp": 2.0, "b": 2})
    (row,) = replayed(run).history()
    assert row["_timestamp"] == 2.0


def test_commit_false_last_calls_automatic_timestamp_wins_over_earlier_user_value(run: Any) -> None:
    run.log({"_timestamp": 1.0, "a": 1}, commit=False)
    before = time.time()
    run.log({"b": 2})
    after = time.time()
    (row,) = replayed(run).history()
    assert before <= row["_timestamp"] <= after


def test_commit_false_last_calls_automatic_timestamp_wins(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    time.sleep(0.01)
    mid = time.time()
    run.log({"b": 2})
    (row,) = replayed(run).history()
    assert row["_timestamp"] >= mid


def test_other_underscore_keys_are_stored_like_any_key(run: Any) -> None:
    run.log({"_x": 1, "_private/y": "s", "a": 2})
    rows, summary = history_and_summary(run)
    assert rows == [{"_x": 1, "_private/y": "s", "a": 2, "_step": 0}]
    assert summary == {"_x": 1, "_private/y": "s", "a": 2}


def test_underscore_keys_are_excluded_from_glob_metrics(run: Any) -> None:
    run.define_metric("*", summary="max")
    run.log({"_x": 5, "y": 5})
    run.log({"_x": 1, "y": 1})
    rows, summary = history_and_summary(run)
    assert rows == [{"_x": 5, "y": 5, "_step": 0}, {"_x": 1, "y": 1, "_step": 1}]
    assert summary == {"_x": 1, "y": {"max": 5}}


def test_summary_has_step_runtime_timestamp_and_wandb_runtime(run: Any) -> None:
    run.log({"a": 1})
    run.log({"a": 2})
    r = replayed(run)
    last = r.history()[-1]
    assert r.summary["_step"] == 1
    assert r.summary["_timestamp"] == last["_timestamp"]
    assert type(r.summary["_runtime"]) is int
    assert r.summary["_wandb"] == {"runtime": r.summary["_runtime"]}
    assert type(r.summary["_wandb"]["runtime"]) is int


# =============================================================================== 3. keys and nesting


@pytest.mark.parametrize(
    "payload",
    [[("a", 1)], "abc", None, 3, ("a", 1), {"a", "b"}],
    ids=["list", "str", "None", "int", "tuple", "set"],
)
def test_non_mapping_payload_raises_with_wandb_text(run: Any, payload: Any) -> None:
    with pytest.raises(wandblite.DataError) as info:
        run.log(payload)
    assert str(info.value) == "wandb.log must be passed a dictionary"
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    rows, _ = history_and_summary(run)
    assert rows == []


def test_non_dict_mapping_payload_is_accepted(run: Any) -> None:
    run.log(types.MappingProxyType({"a": 1}))
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 1, "_step": 0}]
    assert summary == {"a": 1}


@pytest.mark.parametrize("key", [1, None, ("a",), 1.5, b"a"], ids=["int", "None", "tuple", "float", "bytes"])
def test_non_str_top_level_key_raises_with_wandb_text(run: Any, key: Any) -> None:
    with pytest.raises(wandblite.DataError) as info:
        run.log({"ok": 1, key: 2})
    assert str(info.value) == "Key values passed to `wandb.log` must be strings."
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert run.step == 0
    rows, _ = history_and_summary(run)
    assert rows == []


def test_nested_non_str_key_is_written_as_string(run: Any) -> None:
    run.log({"n": {1: 2}})
    rows, summary = history_and_summary(run)
    assert rows == [{"n": {"1": 2}, "_step": 0}]
    assert summary == {"n": {"1": 2}}


def test_empty_top_level_key_is_silently_dropped(run: Any, capsys: Any) -> None:
    run.log({"": 1, "a": 2})
    run.log({"": 3})
    rows, summary = history_and_summary(run)
    assert rows == [{"a": 2, "_step": 0}, {"_step": 1}]
    assert summary == {"a": 2}
    assert stderr_warnings(capsys.readouterr().err) == []


@pytest.mark.parametrize(
    "key", ["train/loss", "a/b/c", "dot.key", "with space", " lead", "ünïcødé/λ", "日本語", "a.b/c d"]
)
def test_special_characters_in_key_are_kept_verbatim_as_one_key(run: Any, key: str) -> None:
    run.log({key: 1})
    run.log({key: 2})
    rows, summary = history_and_summary(run)
    assert rows == [{key: 1, "_step": 0}, {key: 2, "_step": 1}]
    assert summary == {key: 2}


def test_nested_dicts_become_path_tree_and_replay_nested(run: Any) -> None:
    run.log({"a": {"b": 1, "c": {"d": 2}}})
    rows, summary = history_and_summary(run)
    assert rows == [{"a": {"b": 1, "c": {"d": 2}}, "_step": 0}]
    assert summary == {"a": {"b": 1, "c": {"d": 2}}}


def test_nested_dicts_merge_per_leaf_across_commit_false_calls(run: Any) -> None:
    run.log({"m": {"x": 1, "deep": {"p": 1}}}, commit=False)
    run.log({"m": {"y": 2, "deep": {"q": 2}}}, commit=False)
    run.log({"m": {"x": 3}})
    rows, summary = history_and_summary(run)
    assert rows == [{"m": {"x": 3, "y": 2, "deep": {"p": 1, "q": 2}}, "_step": 0}]
    assert summary == {"m": {"x": 3, "y": 2, "deep": {"p": 1, "q": 2}}}


def test_nested_dicts_merge_per_leaf_when_step_given(run: Any) -> None:
    run.log({"m": {"x": 1}}, step=2)
    run.log({"m": {"y": 2}}, step=2, commit=True)
    rows, _ = history_and_summary(run)
    assert rows == [{"m": {"x": 1, "y": 2}, "_step": 2}]


def test_lists_are_leaves_including_lists_of_dicts(run: Any) -> None:
    run.log({"l": [1, 2, 3], "ld": [{"a": 1}, {"b": 2}]}, commit=False)
    run.log({"l": [9], "ld": [{"c": 3}]})
    rows, summary = history_and_summary(run)
    assert rows == [{"l": [9], "ld": [{"c": 3}], "_step": 0}]
    assert summary == {"l": [9], "ld": [{"c": 3}]}


def test_literal_dotted_key_and_nested_path_are_distinct(run: Any) -> None:
    run.log({"a.b": 1, "a": {"b": 2}})
    rows, summary = history_and_summary(run)
    assert rows == [{"a.b": 1, "a": {"b": 2}, "_step": 0}]
    assert summary == {"a.b": 1, "a": {"b": 2}}


def test_callers_nested_dicts_are_never_mutated(run: Any) -> None:
    arr = np.arange(40)
    small = np.arange(3)
    f32 = np.float32(1.5)
    tup = (1, 2)
    inner = {"h": arr, "s": small, "f": f32, "t": tup, "deep": {"r": {1: 2}}}
    data = {"a": inner, "_step": 3, "x": 1}
    run.log(data)
    assert data["a"] is inner
    assert set(data) == {"a", "_step", "x"}
    assert inner["h"] is arr and inner["s"] is small and inner["f"] is f32 and inner["t"] is tup
    assert inner["deep"] == {"r": {1: 2}}
    assert set(inner) == {"h", "s", "f", "t", "deep"}
    (row,) = replayed(run).history()
    assert row["a"]["s"] == [0, 1, 2]
    assert row["a"]["h"]["_type"] == "histogram"
    assert row["a"]["deep"] == {"r": {"1": 2}}


# =============================================================================== 5. value encoding


def _logged(run: Any, value: Any) -> Any:
    run.log({"v": value})
    (row,) = replayed(run).history()
    return row["v"]


@pytest.mark.parametrize(
    ("value", "expected", "expected_type"),
    [
        (0, 0, int),
        (-7, -7, int),
        (2**63 - 1, 2**63 - 1, int),
        (-(2**63), -(2**63), int),
        (2**70, 1.1805916207174113e21, float),
        (2**63, float(2**63), float),
        (-(2**64), -float(2**64), float),
        (1.0, 1.0, float),
        (0.1, 0.1, float),
        (True, True, bool),
        (False, False, bool),
        (None, None, type(None)),
        ("héllo ✓ 日本", "héllo ✓ 日本", str),
        ("", "", str),
    ],
)
def test_plain_values_are_stored_as_wandb_stores_them(
    run: Any, value: Any, expected: Any, expected_type: type
) -> None:
    got = _logged(run, value)
    assert got == expected
    assert type(got) is expected_type


def test_negative_zero_float_is_kept(run: Any) -> None:
    got = _logged(run, -0.0)
    assert got == 0.0 and math.copysign(1.0, got) == -1.0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_kept_in_history(run: Any, value: float) -> None:
    got = _logged(run, value)
    assert type(got) is float
    if math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value


@pytest.mark.parametrize(
    ("value", "expected", "expected_type"),
    [
        (np.int64(5), 5, int),
        (np.int8(-3), -3, int),
        (np.uint64(2**64 - 1), float(2**64 - 1), float),
        (np.float64(0.25), 0.25, float),
        (np.float32(0.5), 0.5, float),
        (np.float32(0.1), float(np.float32(0.1)), float),
        (np.float16(0.25), 0.25, float),
        (np.bool_(True), True, bool),
        (np.array(3.5), 3.5, float),
        (np.array([7]), 7, int),
        (np.array([[7.5]]), 7.5, float),
        (np.arange(32), list(range(32)), list),
        (np.arange(6).reshape(2, 3), [[0, 1, 2], [3, 4, 5]], list),
        (np.array([0.5, 1.5], dtype=np.float32), [0.5, 1.5], list),
    ],
)
def test_numpy_values_are_converted(run: Any, value: Any, expected: Any, expected_type: type) -> None:
    got = _logged(run, value)
    assert got == expected
    assert type(got) is expected_type


@pytest.mark.parametrize("value", [np.float64("nan"), np.float32("nan"), np.array([np.nan])])
def test_numpy_nan_is_kept_as_nan(run: Any, value: Any) -> None:
    got = _logged(run, value)
    assert type(got) is float and math.isnan(got)


def test_numpy_array_of_more_than_32_elements_becomes_32_bin_histogram(run: Any) -> None:
    arr = np.arange(33, dtype=np.float64)
    got = _logged(run, arr)
    assert set(got) == {"_type", "values", "bins"}
    assert got["_type"] == "histogram"
    assert len(got["values"]) == 32
    assert len(got["bins"]) == 33
    assert sum(got["values"]) == 33
    assert got["bins"][0] == 0.0 and got["bins"][-1] == 32.0
    expected_values, expected_bins = np.histogram(arr, bins=32)
    assert got["values"] == expected_values.tolist()
    assert got["bins"] == pytest.approx(expected_bins.tolist())


def test_two_dimensional_array_over_32_elements_becomes_histogram(run: Any) -> None:
    got = _logged(run, np.ones((6, 6)))
    assert got["_type"] == "histogram"
    assert len(got["values"]) == 32 and len(got["bins"]) == 33
    assert sum(got["values"]) == 36


@pytest.mark.parametrize(
    ("value", "expected"),
    [((1, 2.5, "x"), [1, 2.5, "x"]), ({3}, [3]), (frozenset({"a"}), ["a"]), ([1, [2, (3,)]], [1, [2, [3]]])],
)
def test_tuples_and_sets_become_lists(run: Any, value: Any, expected: list[Any]) -> None:
    assert _logged(run, value) == expected


def test_set_becomes_list_in_iteration_order(run: Any) -> None:
    s = {5, 1, 3}
    assert _logged(run, s) == list(s)


def test_range_is_not_serializable(run: Any) -> None:
    with pytest.raises(wandblite.DataError) as info:
        run.log({"r": range(3)})
    assert str(info.value).startswith("Object of type range is not JSON serializable")
    assert isinstance(info.value, TypeError)
    assert run.step == 0
    rows, _ = history_and_summary(run)
    assert rows == []


def test_bytes_become_utf8_string(run: Any) -> None:
    assert _logged(run, "héllo".encode()) == "héllo"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 6000), "2024-01-02T03:04:05.006000"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "2024-01-02T03:04:05Z"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=dt.timezone.utc), "2024-01-02T03:04:05.006000Z"),
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2024-01-02T03:04:05+02:00",
        ),
        (dt.date(2024, 1, 2), "2024-01-02"),
    ],
)
def test_datetimes_become_iso_strings_with_z_for_utc(run: Any, value: Any, expected: str) -> None:
    assert _logged(run, value) == expected


class Foo:
    pass


def test_arbitrary_object_is_not_serializable(run: Any) -> None:
    with pytest.raises(wandblite.DataError) as info:
        run.log({"o": Foo()})
    assert str(info.value).startswith("Object of type Foo is not JSON serializable")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_arbitrary_object_nested_in_list_is_not_serializable(run: Any) -> None:
    with pytest.raises(TypeError, match=r"^Object of type Foo is not JSON serializable"):
        run.log({"o": [1, {"x": Foo()}]})
    rows, _ = history_and_summary(run)
    assert rows == []


def test_values_nested_in_dicts_and_lists_are_encoded(run: Any) -> None:
    run.log({"n": {"a": np.int64(1), "l": [np.float32(0.5), (1, 2)], "d": dt.date(2024, 1, 2)}})
    rows, _ = history_and_summary(run)
    assert rows == [{"n": {"a": 1, "l": [0.5, [1, 2]], "d": "2024-01-02"}, "_step": 0}]


def test_object_over_100000_bytes_warns_serializing(run: Any, capsys: Any, recwarn: Any) -> None:
    big = list(range(20000))
    size = sys.getsizeof(big)
    assert size > 100000
    run.log({"big": big})
    text = f"Serializing object of type list that is {size} bytes"
    shown = [f"wandblite: WARNING {text}" in capsys.readouterr().err] + [
        text in str(w.message) for w in recwarn
    ]
    assert any(shown)
    rows, _ = history_and_summary(run)
    assert rows[0]["big"] == big


# =============================================================================== 7. summary


def test_summary_is_last_value_of_each_key(run: Any) -> None:
    run.log({"a": 1, "b": "x"})
    run.log({"a": 2})
    run.log({"a": 3.5, "c": True})
    assert run.summary["a"] == 3.5
    _, summary = history_and_summary(run)
    assert summary == {"a": 3.5, "b": "x", "c": True}


def test_summary_keeps_value_of_key_not_logged_again(run: Any) -> None:
    run.log({"a": 1, "b": 1})
    for _ in range(3):
        run.log({"a": 2})
    _, summary = history_and_summary(run)
    assert summary == {"a": 2, "b": 1}


def test_summary_nested_dicts_merge_across_steps(run: Any) -> None:
    run.log({"obj": {"a": 1, "b": 1}})
    run.log({"obj": {"a": 2}})
    assert run.summary["obj"] == {"a": 2, "b": 1}
    rows, summary = history_and_summary(run)
    assert rows == [{"obj": {"a": 1, "b": 1}, "_step": 0}, {"obj": {"a": 2}, "_step": 1}]
    assert summary == {"obj": {"a": 2, "b": 1}}


def test_none_never_reaches_the_summary(run: Any) -> None:
    run.log({"loss": 2})
    run.log({"loss": None, "only_none": None, "n": {"x": None, "y": 1}})
    assert run.summary["loss"] == 2
    rows, summary = history_and_summary(run)
    assert rows[1] == {"loss": None, "only_none": None, "n": {"x": None, "y": 1}, "_step": 1}
    assert summary == {"loss": 2, "n": {"y": 1}}


def test_media_value_in_summary_is_replaced_whole(run: Any) -> None:
    img1 = {"_type": "image-file", "path": "media/images/a.png", "caption": "first", "width": 2}
    img2 = {"_type": "image-file", "path": "media/images/b.png", "width": 3}
    run.log({"img": img1})
    run.log({"img": img2})
    assert run.summary["img"] == img2
    rows, summary = history_and_summary(run)
    assert summary == {"img": img2}
    assert [row["img"] for row in rows] == [img1, img2]


def test_nested_media_value_in_summary_is_replaced_whole(run: Any) -> None:
    img1 = {"_type": "image-file", "path": "a.png", "caption": "first"}
    img2 = {"_type": "image-file", "path": "b.png"}
    run.log({"g": {"img": img1, "k": 1}})
    run.log({"g": {"img": img2}})
    _, summary = history_and_summary(run)
    assert summary == {"g": {"img": img2, "k": 1}}


def test_explicit_summary_nan_becomes_none(run: Any) -> None:
    run.summary["s"] = math.nan
    run.summary["n"] = {"x": np.float64("nan"), "y": 1.5}
    assert run.summary["s"] is None
    assert run.summary["n"] == {"x": None, "y": 1.5}
    r = replayed(run)
    assert r.summary["s"] is None
    assert r.summary["n"] == {"x": None, "y": 1.5}


def test_logged_nan_stays_nan_in_summary_via_history(run: Any) -> None:
    run.log({"v": math.nan})
    r = replayed(run)
    assert math.isnan(r.history()[0]["v"])


def test_explicit_summary_large_array_becomes_stats_dict(run: Any) -> None:
    arr = np.arange(100, dtype=np.float64)
    run.summary["arr"] = arr
    r = replayed(run)
    got = r.summary["arr"]
    assert set(got) == {"_type", "var", "mean", "min", "max", "10%", "25%", "75%", "90%", "size"}
    assert got["_type"] == "numpy.ndarray"
    assert got["size"] == 100
    assert got["mean"] == pytest.approx(49.5)
    assert got["min"] == 0.0 and got["max"] == 99.0
    assert got["var"] == pytest.approx(float(np.var(arr)))
    assert got["10%"] == pytest.approx(float(np.percentile(arr, 10)))
    assert got["90%"] == pytest.approx(float(np.percentile(arr, 90)))


def test_explicit_summary_small_array_becomes_list(run: Any) -> None:
    run.summary["arr"] = np.arange(3)
    r = replayed(run)
    assert r.summary["arr"] == [0, 1, 2]


def test_explicit_summary_set_overrides_then_next_log_overwrites(run: Any) -> None:
    run.log({"a": 1})
    run.summary["a"] = 100
    assert run.summary["a"] == 100
    assert wandblite.replay(run.path).summary["a"] == 100
    run.log({"a": 2})
    assert run.summary["a"] == 2
    _, summary = history_and_summary(run)
    assert summary == {"a": 2}


def test_explicit_summary_set_resets_define_metric_ops(run: Any) -> None:
    run.define_metric("loss", summary="min")
    run.log({"loss": 5})
    run.log({"loss": 3})
    assert run.summary["loss"] == {"min": 3}
    run.summary["loss"] = 100
    assert run.summary["loss"] == 100
    run.log({"loss": 2})
    assert run.summary["loss"] == 2
    run.log({"loss": 7})
    rows, summary = history_and_summary(run)
    assert summary == {"loss": 7}
    assert [row["loss"] for row in rows] == [5, 3, 2, 7]


def test_explicit_summary_value_stays_if_key_not_logged_again(run: Any) -> None:
    run.define_metric("loss", summary="min")
    run.log({"loss": 3})
    run.summary["loss"] = 100
    run.log({"other": 1})
    _, summary = history_and_summary(run)
    assert summary == {"loss": 100, "other": 1}


def test_explicit_nested_summary_is_stored_nested_and_readable_during_run(run: Any) -> None:
    run.summary["n"] = {"x": 1, "y": {"z": 2}}
    assert run.summary["n"] == {"x": 1, "y": {"z": 2}}
    assert wandblite.replay(run.path).summary["n"] == {"x": 1, "y": {"z": 2}}
    _, summary = history_and_summary(run)
    assert summary == {"n": {"x": 1, "y": {"z": 2}}}


def test_explicit_summary_of_key_never_logged(run: Any) -> None:
    run.summary["best_acc"] = 0.9
    run.summary.update({"best_loss": 0.1})
    run.log({"a": 1})
    _, summary = history_and_summary(run)
    assert summary == {"best_acc": 0.9, "best_loss": 0.1, "a": 1}


def test_summary_key_deleted_is_absent_live_and_after_replay(run: Any) -> None:
    run.log({"a": 1, "b": 2})
    del run.summary["a"]
    assert "a" not in run.summary
    assert "a" not in wandblite.replay(run.path).summary
    _, summary = history_and_summary(run)
    assert summary == {"b": 2}


def test_summary_read_back_during_run_matches_replay(run: Any) -> None:
    run.log({"a": 1, "n": {"x": 2}})
    run.log({"a": 3}, commit=False)  # pending: not yet in the summary
    assert run.summary["a"] == 1
    assert run.summary["n"] == {"x": 2}
    assert dict(run.summary.as_dict()) == wandblite.replay(run.path).summary


# =============================================================================== 8. define_metric


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
        ("min,max,mean", None, {"min": 1, "max": 5, "mean": 3.0}),
        ("MIN,Max", None, {"min": 1, "max": 5}),
        ("first,last", None, {"first": 3, "last": 1}),
    ],
)
def test_define_metric_summary_ops_give_dict_of_stats(
    run: Any, ops: str, goal: str | None, expected: dict[str, Any]
) -> None:
    run.define_metric("loss", summary=ops, goal=goal)
    for v in (3, 5, 1):
        run.log({"loss": v})
    rows, summary = history_and_summary(run)
    assert [row["loss"] for row in rows] == [3, 5, 1]
    assert summary == {"loss": expected}


def test_define_metric_last_gives_dict_not_bare_value(run: Any) -> None:
    run.define_metric("acc", summary="last")
    run.log({"acc": 0.5})
    assert run.summary["acc"] == {"last": 0.5}
    _, summary = history_and_summary(run)
    assert summary == {"acc": {"last": 0.5}}


def test_define_metric_none_leaves_key_out_of_summary(run: Any) -> None:
    run.define_metric("loss", summary="none")
    run.log({"loss": 1, "acc": 2})
    rows, summary = history_and_summary(run)
    assert rows == [{"loss": 1, "acc": 2, "_step": 0}]
    assert summary == {"acc": 2}


def test_define_metric_copy_is_accepted_with_deprecation_warning(run: Any, capsys: Any) -> None:
    run.define_metric("loss", summary="copy")
    assert stderr_warnings(capsys.readouterr().err) == [
        "wandblite: WARNING define_metric(summary='copy') is deprecated and will be removed."
    ]
    run.log({"loss": 1})
    rows, _ = history_and_summary(run)
    assert rows == [{"loss": 1, "_step": 0}]


def test_min_max_mean_count_numbers_only(run: Any) -> None:
    run.define_metric("v", summary="min,max,mean")
    for v in (2, "text", None, 4):
        run.log({"v": v})
    _, summary = history_and_summary(run)
    assert summary == {"v": {"min": 2, "max": 4, "mean": 3.0}}


def test_mean_is_total_over_count(run: Any) -> None:
    run.define_metric("v", summary="mean")
    for v in (1, 2, 4):
        run.log({"v": v})
    _, summary = history_and_summary(run)
    assert summary["v"]["mean"] == pytest.approx(7 / 3)


def test_repeated_definitions_merge_summary_ops(run: Any) -> None:
    run.define_metric("loss", summary="min")
    run.define_metric("loss", summary="max")
    for v in (3, 5, 1):
        run.log({"loss": v})
    _, summary = history_and_summary(run)
    assert summary == {"loss": {"min": 1, "max": 5}}


def test_overwrite_replaces_previous_definition(run: Any) -> None:
    run.define_metric("loss", summary="min")
    run.define_metric("loss", summary="max", overwrite=True)
    for v in (3, 5, 1):
        run.log({"loss": v})
    _, summary = history_and_summary(run)
    assert summary == {"loss": {"max": 5}}


@pytest.mark.parametrize("name", ["a*b", "*a", "a**", "tr*ain/*"])
def test_glob_with_star_not_at_end_raises(run: Any, name: str) -> None:
    with pytest.raises(wandblite.Error) as info:
        run.define_metric(name)
    assert str(info.value) == f"Unhandled define_metric() arg: name (glob suffixes only): {name}"


def test_glob_is_a_plain_string_prefix_match(run: Any) -> None:
    run.define_metric("val*", summary="max")
    run.define_metric("train/*", summary="max")
    for v in (1, 0):
        run.log({"validity": v, "trainer": v, "train/loss": v})
    _, summary = history_and_summary(run)
    assert summary == {"validity": {"max": 1}, "trainer": 0, "train/loss": {"max": 1}}


def test_glob_matches_dotted_path_of_nested_key(run: Any) -> None:
    run.define_metric("n.*", summary="max")
    run.log({"n": {"x": 1}, "nx": 1})
    run.log({"n": {"x": 0}, "nx": 0})
    _, summary = history_and_summary(run)
    assert summary == {"n": {"x": {"max": 1}}, "nx": 0}


def test_glob_defined_before_key_first_logged_applies(run: Any) -> None:
    run.log({"other": 1})
    run.define_metric("lo*", summary="min")
    run.log({"loss": 4})
    run.log({"loss": 2})
    _, summary = history_and_summary(run)
    assert summary == {"other": 1, "loss": {"min": 2}}


def test_first_glob_match_creates_concrete_metric_that_later_globs_do_not_change(run: Any) -> None:
    run.define_metric("a*", summary="min")
    run.log({"abc": 5})
    run.define_metric("ab*", summary="max")  # longer, but "abc" is already a concrete metric
    run.log({"abc": 9, "abd": 5})
    run.log({"abc": 1, "abd": 9})
    _, summary = history_and_summary(run)
    assert summary == {"abc": {"min": 1}, "abd": {"max": 9}}


@pytest.mark.parametrize("order", ["short-first", "long-first"])
def test_overlapping_globs_longest_prefix_wins(new_run: Any, order: str) -> None:
    run = new_run()
    defs = [("a*", "min"), ("ab*", "max")]
    if order == "long-first":
        defs.reverse()
    for name, op in defs:
        run.define_metric(name, summary=op)
    for v in (1, 3):
        run.log({"abc": v, "ax": v})
    _, summary = history_and_summary(run)
    assert summary == {"abc": {"max": 3}, "ax": {"min": 1}}


def test_dotted_define_metric_name_means_nesting(run: Any) -> None:
    run.define_metric("a.b", summary="max")
    run.log({"a": {"b": 1}, "a.b": 1})
    run.log({"a": {"b": 0}, "a.b": 0})
    _, summary = history_and_summary(run)
    assert summary == {"a": {"b": {"max": 1}}, "a.b": 0}


def test_escaped_dot_in_define_metric_name_means_literal_key(run: Any) -> None:
    run.define_metric("a\\.b", summary="max")
    run.log({"a": {"b": 1}, "a.b": 1})
    run.log({"a": {"b": 0}, "a.b": 0})
    _, summary = history_and_summary(run)
    assert summary == {"a": {"b": 0}, "a.b": {"max": 1}}


def test_step_metric_with_sync_inserts_latest_value_or_zero(run: Any) -> None:
    run.define_metric("epoch")
    run.define_metric("loss", step_metric="epoch")
    run.log({"loss": 1.0})  # epoch never logged: 0 is inserted
    run.log({"epoch": 3})
    run.log({"loss": 0.5})  # latest epoch inserted
    run.log({"loss": 0.25, "epoch": 9})  # present: kept
    run.log({"other": 1})  # not a synced key: nothing inserted
    rows, summary = history_and_summary(run)
    assert rows == [
        {"loss": 1.0, "epoch": 0, "_step": 0},
        {"epoch": 3, "_step": 1},
        {"loss": 0.5, "epoch": 3, "_step": 2},
        {"loss": 0.25, "epoch": 9, "_step": 3},
        {"other": 1, "_step": 4},
    ]
    assert summary == {"loss": 0.25, "epoch": 9, "other": 1}


def test_step_metric_applies_to_glob_matches(run: Any) -> None:
    run.define_metric("val/*", step_metric="epoch")
    run.log({"epoch": 2})
    run.log({"val/acc": 0.5})
    rows, _ = history_and_summary(run)
    assert rows == [{"epoch": 2, "_step": 0}, {"val/acc": 0.5, "epoch": 2, "_step": 1}]


def test_step_sync_false_inserts_nothing(run: Any) -> None:
    run.define_metric("loss", step_metric="epoch", step_sync=False)
    run.log({"epoch": 3})
    run.log({"loss": 1})
    rows, _ = history_and_summary(run)
    assert rows == [{"epoch": 3, "_step": 0}, {"loss": 1, "_step": 1}]


def test_hidden_does_not_affect_history_or_summary(run: Any) -> None:
    run.define_metric("h", hidden=True)
    run.log({"h": 1})
    run.log({"h": 2})
    rows, summary = history_and_summary(run)
    assert rows == [{"h": 1, "_step": 0}, {"h": 2, "_step": 1}]
    assert summary == {"h": 2}


def test_define_metric_empty_name_raises(run: Any) -> None:
    with pytest.raises(wandblite.Error) as info:
        run.define_metric("")
    assert str(info.value) == "define_metric() requires non-empty name argument"


def test_define_metric_unknown_summary_op_raises(run: Any) -> None:
    with pytest.raises(wandblite.Error) as info:
        run.define_metric("loss", summary="bogus")
    assert str(info.value) == "Unhandled define_metric() arg: summary op: bogus"
    with pytest.raises(wandblite.Error) as info:
        run.define_metric("loss", summary="min,bogus")
    assert str(info.value) == "Unhandled define_metric() arg: summary op: bogus"


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"summary": ["min"]}, "Unhandled define_metric() arg: summary type: list"),
        ({"step_metric": 1}, "Unhandled define_metric() arg: step_metric type: int"),
    ],
)
def test_define_metric_wrong_argument_type_raises(run: Any, kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(wandblite.Error) as info:
        run.define_metric("loss", **kwargs)
    assert str(info.value) == text


def test_define_metric_error_records_nothing(run: Any) -> None:
    with pytest.raises(wandblite.Error):
        run.define_metric("loss", summary="bogus")
    run.log({"loss": 1})
    r = replayed(run)
    assert r.metrics == {}
    assert user_summary(r.summary) == {"loss": 1}


def test_define_metric_returns_metric_named_after_definition(run: Any) -> None:
    m = run.define_metric("loss", summary="min", step_metric="epoch")
    assert m.name == "loss"
    assert m.step_metric == "epoch"
    r = replayed(run)
    assert "loss" in r.metrics


# ======================================================================= 9-10. config and lifecycle errors


def test_module_log_before_init_raises() -> None:
    with pytest.raises(wandblite.Error) as info:
        wandblite.log({"a": 1})
    assert str(info.value) == "You must call wandb.init() before wandb.log()"


def test_module_summary_set_before_init_raises() -> None:
    with pytest.raises(wandblite.Error) as info:
        wandblite.summary["k"] = 1
    assert str(info.value) == "You must call wandb.init() before wandb.summary['k']"


def test_module_config_attribute_set_before_init_raises() -> None:
    with pytest.raises(wandblite.Error) as info:
        wandblite.config.x = 1
    assert str(info.value) == "You must call wandb.init() before wandb.config.x"


def test_module_define_metric_before_init_raises() -> None:
    with pytest.raises(wandblite.Error) as info:
        wandblite.define_metric("loss")
    assert str(info.value) == "You must call wandb.init() before wandb.define_metric()"


def test_module_level_names_use_the_active_run(run: Any) -> None:
    assert wandblite.run is run
    wandblite.log({"a": 1})
    wandblite.summary["s"] = 2
    wandblite.config.lr = 0.1
    wandblite.define_metric("a", summary="max")
    wandblite.log({"a": 0})
    r = replayed(run)
    assert rows_of(r) == [{"a": 1, "_step": 0}, {"a": 0, "_step": 1}]
    assert user_summary(r.summary) == {"a": {"max": 0}, "s": 2}
    assert r.config == {"lr": 0.1}


def test_run_log_after_finish_raises_usage_error(run: Any) -> None:
    run.log({"a": 1})
    run.finish()
    with pytest.raises(wandblite.UsageError) as info:
        run.log({"a": 2})
    assert str(info.value) == (
        f"Run ({run.id}) is finished. The call to `log` will be ignored. "
        "Please make sure that you are using an active run."
    )
    assert isinstance(info.value, wandblite.Error)
    assert rows_of(wandblite.replay(run.path)) == [{"a": 1, "_step": 0}]


def test_run_define_metric_after_finish_raises_usage_error(run: Any) -> None:
    run.finish()
    with pytest.raises(wandblite.UsageError) as info:
        run.define_metric("loss", summary="min")
    assert str(info.value) == (
        f"Run ({run.id}) is finished. The call to `define_metric` will be ignored. "
        "Please make sure that you are using an active run."
    )


def test_module_log_after_finish_raises_preinit_error(run: Any) -> None:
    run.finish()
    assert wandblite.run is None
    with pytest.raises(wandblite.Error) as info:
        wandblite.log({"a": 1})
    assert not isinstance(info.value, wandblite.UsageError)
    assert str(info.value) == "You must call wandb.init() before wandb.log()"


def test_finish_twice_is_a_noop(run: Any) -> None:
    run.log({"a": 1}, commit=False)
    run.finish()
    run.finish()
    wandblite.finish()
    r = wandblite.replay(run.path)
    assert r.state == "finished"
    assert rows_of(r) == [{"a": 1, "_step": 0}]
    assert [kind for kind, _ in r.events()].count("exit") == 1


def test_config_update_changing_value_raises_config_error(new_run: Any) -> None:
    run = new_run(config={"lr": 0.1})
    run.config.update({"lr": 0.1})  # same value: fine
    with pytest.raises(wandblite.ConfigError) as info:
        run.config.update({"lr": 0.2})
    assert str(info.value) == (
        'Attempted to change value of key "lr" from 0.1 to 0.2\n'
        "If you really want to do this, pass allow_val_change=True to config.update()"
    )
    assert isinstance(info.value, wandblite.Error)
    assert run.config["lr"] == 0.1
    assert replayed(run).config == {"lr": 0.1}


def test_config_update_with_allow_val_change_changes_value(new_run: Any) -> None:
    run = new_run(config={"lr": 0.1})
    run.config.update({"lr": 0.2}, allow_val_change=True)
    assert run.config.lr == 0.2
    assert replayed(run).config == {"lr": 0.2}


def test_config_attribute_and_item_access(new_run: Any) -> None:
    run = new_run(config={"lr": 0.1, "layers": [64, 32]})
    assert run.config.lr == 0.1
    assert run.config["layers"] == [64, 32]
    run.config.bs = 16
    run.config["opt"] = "adam"
    assert run.config.bs == 16 and run.config["opt"] == "adam"
    assert "bs" in run.config
    assert wandblite.config is run.config
    assert replayed(run).config == {"lr": 0.1, "layers": [64, 32], "bs": 16, "opt": "adam"}
