"""``wandblite.vocab``: the shared vocabulary says what the modules that use it relied on before.

Each rule is checked against its statement written out longhand (the spec), over a grid of cases
that covers its edges, and the projection shared by replay and sync is pinned to its wire order.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

import wandblite
from wandblite import vocab
from wandblite.fold import Fold, parse_metric
from wandblite.media import MediaValue
from wandblite.replay import run_record, segment_sizes
from wandblite.runfile import segment_path, segments


def _file_name_ok_longhand(name: object) -> bool:
    """The file-name rule as the server's validator spelled it out before it had one home."""
    if not isinstance(name, str) or not 0 < len(name) <= 1024:
        return False
    if (name.startswith("/") or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name)
            or any(seg in ("", ".", "..") for seg in name.split("/"))):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_file_name_rule_is_the_longhand_rule_on_every_short_name_over_its_edge_characters() -> None:
    alphabet = ["a", ".", "/", "\\", "\n", "\x7f", "\x00", "é", "\ud800", " ", "..", "\u2028"]
    for n in range(5):
        for parts in itertools.product(alphabet, repeat=n):
            name = "".join(parts)
            assert (vocab.file_name_problem(name) is None) == _file_name_ok_longhand(name), repr(name)
    for name in ["a" * 1024, "a" * 1025, "a/" * 511 + "b", "...", "a/.../b", None, 3, b"a"]:
        assert (vocab.file_name_problem(name) is None) == _file_name_ok_longhand(name), repr(name)


def test_file_name_problem_says_what_was_expected() -> None:
    assert vocab.file_name_problem("") == "a string of 1-1024 characters expected"
    assert vocab.file_name_problem("a/../b") == (
        "a relative path without '..', '.', empty segments, backslashes or control characters expected")
    assert vocab.file_name_problem("a\ud800") == "not encodable as UTF-8"


def test_number_rules_exclude_bools_and_differ_only_on_subclasses() -> None:
    for v in (0, 1, -3, 1.5, float("nan"), float("inf"), 1 << 80):
        assert vocab.is_number(v) and vocab.is_plain_number(v)
    for v in (True, False, None, "1", [1], {"a": 1}, np.bool_(True)):
        assert not vocab.is_number(v) and not vocab.is_plain_number(v)
    # numpy.float64 subclasses float: a number for values from user code, not a decoded value.
    assert vocab.is_number(np.float64(2.0)) and not vocab.is_plain_number(np.float64(2.0))


def test_subtree_and_typed_value(tmp_path: Path) -> None:
    assert vocab.is_subtree({}) and vocab.is_subtree({"a": 1})
    assert not vocab.is_subtree({"_type": "histogram"}) and vocab.is_typed_value({"_type": "histogram"})
    assert not vocab.is_subtree([1]) and not vocab.is_typed_value([1]) and not vocab.is_typed_value({"a": 1})
    media = MediaValue({"_type": "image-file", "path": "x.png", "sha256": "0" * 64}, tmp_path)
    assert not vocab.is_subtree(media) and vocab.is_typed_value(media)


def test_segment_names_round_trip_and_match_the_run_files(tmp_path: Path) -> None:
    for attempt in (0, 1, 42, 999, 1000, 12345):
        name = vocab.segment_name(attempt)
        assert vocab.segment_number(name) == attempt
        assert segment_path(tmp_path, attempt).name == name
    for other in ("events-01.wlr", "events-x.wlr", "events-000.wlr.tmp", "xevents-000.wlr", "events-000.wl"):
        assert vocab.segment_number(other) is None
    run = wandblite.init(project="p", id="seg", dir=str(tmp_path))
    run.log({"a": 1})
    run.finish()
    names = [p.name for p in segments(run.path)]
    assert names == [vocab.segment_name(0)]
    assert segment_sizes(run.path) == {names[0]: (Path(run.path) / names[0]).stat().st_size}


def test_home_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(vocab.HOME_ENV, str(tmp_path))
    assert vocab.home_dir() == tmp_path
    monkeypatch.setenv(vocab.HOME_ENV, "")
    assert vocab.home_dir() == Path.home() / ".wandblite"
    monkeypatch.delenv(vocab.HOME_ENV)
    assert vocab.home_dir() == Path(os.path.expanduser("~")) / ".wandblite"


def test_reserved_keys_are_what_the_fold_sets_on_every_row() -> None:
    fold = Fold()
    fold.apply(1, {"ts": 10.0, "id": "r", "project": "p"})
    rows = fold.apply(2, [11.0, {"a": 1}, None, None])
    assert set(rows[0]) - {"a"} == vocab.RESERVED
    assert vocab.RESERVED | {"_wandb"} == vocab.SUMMARY_BOOKKEEPING


def test_run_record_keys_are_in_the_sync_wire_order() -> None:
    fold = Fold()
    fold.apply(1, {"ts": 10.0, "id": "r", "project": "p", "name": "n", "tags": ["t"], "context": {"pid": 1}})
    rec = run_record(fold, "running")
    assert list(rec) == ["name", "group", "job_type", "entity", "tags", "notes", "host", "created_at", "config",
                         "summary", "state", "exit_code", "error", "signal", "ended_at", "heartbeat_at", "context",
                         "metrics"]
    assert rec["context"] == {"pid": 1} and rec["tags"] == ["t"] and rec["state"] == "running"
    assert rec["summary"] is fold.summary and rec["config"] is fold.config


def test_js_constants_are_json() -> None:
    consts = vocab.js_constants()
    assert json.loads(json.dumps(consts)) == consts
    assert consts["RESERVED_KEYS"] == list(vocab.RESERVED_KEYS)
    assert consts["DEFAULT_ALERT_WAIT"] == vocab.DEFAULT_ALERT_WAIT == 60


def test_keys_of_wandbs_own_are_out_of_define_metric() -> None:
    assert all(vocab.is_internal_key(k) for k in vocab.SUMMARY_BOOKKEEPING)
    assert not any(vocab.is_internal_key(k) for k in ("", "loss", "a_b", "x._y"))
    fold = Fold()
    fold.apply(5, [1.0, parse_metric("*", summary="max")])  # METRIC: define_metric("*", summary="max")
    fold.apply(2, [11.0, {"_mine": 3.0, "loss": 3.0}, None, True])
    fold.apply(2, [12.0, {"_mine": 1.0, "loss": 1.0}, None, True])
    assert fold.summary["_mine"] == 1.0  # the last value: no glob reaches a key of wandb's own
    assert fold.summary["loss"] == {"max": 3.0}


def test_a_map_key_is_its_json_text() -> None:
    from wandblite.vocab import key_text

    assert [key_text(k) for k in ("a", True, False, None, 3, 2.5)] == ["a", "true", "false", "null", "3", "2.5"]
    assert json.loads(json.dumps({True: 1, None: 2, 3: 3, 2.5: 4})) == {key_text(k): v for k, v in
                                                                       {True: 1, None: 2, 3: 3, 2.5: 4}.items()}
