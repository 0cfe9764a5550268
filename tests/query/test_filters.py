"""The runs filter language and the ``$regex`` guard as pure functions: no server, no database.

``runs_query.match_filter`` takes a run dict (``read.run_dict``'s shape) and a filter and answers
a bool; ``check_filter`` refuses a malformed filter with a 400 before any database work;
``order_key`` sorts runs with the ones that have no orderable value last. ``regex_guard``
refuses slow patterns. The same rules are exercised end to end (REST and ``wandblite.Api`` on
SQLite and PostgreSQL) in test_rest_and_api.py and test_regex_guard.py; here each rule is pinned
on its own, with the inputs that tell the cases apart.
"""

from __future__ import annotations

from typing import Any

import pytest

from wandblite.server.errors import ApiError
from wandblite.server.regex_guard import REGEX_MAX_LEN, REGEX_SUBJECT, check_regex
from wandblite.server.runs_query import ORDER_COLUMNS, check_filter, match_filter, order_key


def _run(run_id: str, **over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": run_id, "name": f"name-{run_id}", "state": "finished", "tags": [], "group": None, "job_type": None,
        "notes": None, "created_at": 0.0, "updated_at": 0.0, "heartbeat_at": None, "runtime": None, "host": None,
        "exit_code": 0, "rows": 0, "config": {}, "summary": {},
    }
    d.update(over)
    return d


RUN = _run("a", name="Alpha-1", tags=["base", "x"], group="g1", notes="", config={
    "lr": 0.01, "bs": 32, "opt": {"name": "adam"}, "a.b": 7, "flag": True, "wd": None,
}, summary={"acc": 0.9, "loss": {"min": 0.1}, "_runtime": 12.0})


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(("f", "want"), [
    ({}, True),
    ({"state": "finished"}, True),
    ({"state": "running"}, False),
    ({"config.lr": 0.01}, True),
    ({"config.opt.name": "adam"}, True),  # a nested dict is walked
    ({"config.a.b": 7}, True),  # a key with a dot of its own is found too
    ({"config.lr.value": 0.01}, True),  # wandb's {"config.<key>.value": ...}
    ({"config.missing": None}, False),  # an absent key equals nothing, not even None
    ({"summary.loss.min": {"$lt": 0.5}}, True),
    ({"summary_metrics.acc": 0.9}, True),  # wandb's names read the same columns
    ({"displayName": "Alpha-1"}, True),
    ({"display_name": "Alpha-1"}, True),
    ({"run_id": "a"}, True),
    ({"createdAt": 0.0}, True),
])
def test_equality_on_columns_config_and_summary_paths(f: dict[str, Any], want: bool) -> None:
    assert match_filter(RUN, f) is want


@pytest.mark.parametrize(("f", "want"), [
    ({"tags": "base"}, True),  # a list matches when any element does
    ({"tags": "y"}, False),
    ({"tags": {"$in": ["y", "x"]}}, True),
    ({"tags": {"$nin": ["x"]}}, False),
    ({"tags": {"$ne": "y"}}, True),
    ({"tags": {"$regex": "^ba"}}, True),
    ({"tags": ["base", "x"]}, True),  # a list compared whole to a list
    ({"tags": ["x", "base"]}, False),
])
def test_a_list_value_matches_when_any_element_does(f: dict[str, Any], want: bool) -> None:
    assert match_filter(RUN, f) is want


@pytest.mark.parametrize(("f", "want"), [
    ({"config.lr": {"$gt": 0.001}}, True),
    ({"config.lr": {"$gt": 0.01}}, False),
    ({"config.lr": {"$gte": 0.01, "$lt": 0.1}}, True),  # every operator of a condition must hold
    ({"config.bs": {"$lte": 32}}, True),
    ({"config.bs": {"$gt": "1"}}, False),  # a number never compares with a string
    ({"name": {"$gt": "A"}}, True),  # strings compare with strings
    ({"config.flag": {"$gt": 0}}, False),  # a boolean is not a number
    ({"config.flag": 1}, False),  # nor equal to one
    ({"config.flag": True}, True),
    ({"config.bs": 32.0}, True),  # 32 == 32.0
    ({"config.missing": {"$lt": 1}}, False),
])
def test_comparisons_keep_numbers_strings_and_booleans_apart(f: dict[str, Any], want: bool) -> None:
    assert match_filter(RUN, f) is want


@pytest.mark.parametrize(("f", "want"), [
    ({"group": {"$exists": True}}, True),
    ({"job_type": {"$exists": True}}, False),  # a NULL column does not exist
    ({"job_type": {"$exists": False}}, True),
    ({"config.wd": {"$exists": True}}, False),  # nor does a None value
    ({"config.missing": {"$exists": False}}, True),
    ({"config.missing": {"$ne": 1}}, True),
    ({"config.missing": {"$nin": [1]}}, True),
    ({"config.missing": {"$in": [None]}}, False),
])
def test_exists_ne_and_nin_on_absent_values(f: dict[str, Any], want: bool) -> None:
    assert match_filter(RUN, f) is want


@pytest.mark.parametrize(("f", "want"), [
    ({"config.bs": {"$not": {"$gt": 16}}}, False),
    ({"config.bs": {"$not": {"$gt": 64}}}, True),
    ({"config.bs": {"$not": 32}}, False),  # a plain $not operand means $eq
    ({"$and": [{"state": "finished"}, {"tags": "x"}]}, True),
    ({"$and": [{"state": "finished"}, {"tags": "y"}]}, False),
    ({"$or": [{"state": "failed"}, {"tags": "x"}]}, True),
    ({"$or": [{"state": "failed"}, {"tags": "y"}]}, False),
    ({"$nor": [{"state": "failed"}, {"tags": "y"}]}, True),
    ({"$nor": [{"state": "failed"}, {"tags": "x"}]}, False),
    ({"state": "finished", "$or": [{"tags": "y"}]}, False),  # top-level keys are and-ed
])
def test_not_and_the_logical_operators(f: dict[str, Any], want: bool) -> None:
    assert match_filter(RUN, f) is want


def test_regex_searches_strings_only_and_honours_the_i_option() -> None:
    assert match_filter(RUN, {"name": {"$regex": "pha-\\d"}})
    assert not match_filter(RUN, {"name": {"$regex": "^alpha"}})
    assert match_filter(RUN, {"name": {"$regex": "^alpha", "$options": "i"}})
    assert not match_filter(RUN, {"config.bs": {"$regex": "32"}})  # a number is not searched
    assert not match_filter(RUN, {"notes": {"$regex": "^$", "$not": {"$exists": True}}})


def test_regex_sees_only_the_first_characters_of_a_value() -> None:
    run = _run("long", notes="a" * REGEX_SUBJECT + "!")
    assert match_filter(run, {"notes": {"$regex": f"^a{{{REGEX_SUBJECT}}}$"}})
    assert not match_filter(run, {"notes": {"$regex": "!"}})


# --------------------------------------------------------------------------- refusing malformed filters


@pytest.mark.parametrize(("f", "says"), [
    ([{"state": "finished"}], "a filter must be a JSON object"),
    ({"$where": "1"}, "unknown filter operator '$where' at the top level"),
    ({"lr": {"$where": "1"}}, "unknown filter operator '$where' for 'lr'"),
    ({"$or": {}}, "$or needs a non-empty list of filters"),
    ({"$and": []}, "$and needs a non-empty list of filters"),
    ({"$nor": [1]}, "a filter must be a JSON object"),
    ({"tags": {"$in": "x"}}, "$in for 'tags' needs a list"),
    ({"tags": {"$nin": 1}}, "$nin for 'tags' needs a list"),
    ({"name": {"$not": {"$bad": 1}}}, "unknown filter operator '$bad' for 'name'"),
    ({"name": {"$regex": "("}}, "bad $regex for 'name'"),
    ({"name": {"$regex": "(a+)+$"}}, "repeats a group that itself contains a repeat"),
])
def test_check_filter_refuses_with_a_400_that_says_what(f: Any, says: str) -> None:
    with pytest.raises(ApiError) as exc:
        check_filter(f)
    assert exc.value.status == 400 and says in exc.value.message


def test_check_filter_refuses_deep_nesting_and_accepts_the_rest() -> None:
    deep: dict[str, Any] = {"state": "finished"}
    for _ in range(40):
        deep = {"$and": [deep]}
    with pytest.raises(ApiError, match="nested too deeply"):
        check_filter(deep)
    check_filter({"$or": [{"config.lr": {"$gt": 0.1, "$lte": 1}}, {"tags": {"$nin": ["x"]}}],
                  "name": {"$regex": "^run-\\d+$", "$options": "i"}, "group": {"$exists": False},
                  "config": {"plain": "dict"}})  # a dict without operators is a value to compare


# --------------------------------------------------------------------------- ordering


def test_order_puts_runs_without_an_orderable_value_last_either_way() -> None:
    runs = [_run("n", config={"lr": None}), _run("o", config={"lr": {"x": 1}}), _run("f", config={"lr": float("nan")}),
            _run("m"), _run("b", config={"lr": 0.2}), _run("a", config={"lr": 0.1})]
    assert [d["id"] for d in order_key("config.lr")(runs)] == ["a", "b", "n", "o", "f", "m"]
    assert [d["id"] for d in order_key("-config.lr")(runs)] == ["b", "a", "n", "o", "f", "m"]


def test_order_ranks_booleans_then_numbers_then_strings_case_insensitively_and_is_stable() -> None:
    runs = [_run("s2", summary={"v": "b"}), _run("s1", summary={"v": "A"}), _run("n", summary={"v": 5}),
            _run("t", summary={"v": True}), _run("n2", summary={"v": 5.0})]
    assert [d["id"] for d in order_key("summary.v")(runs)] == ["t", "n", "n2", "s1", "s2"]
    assert [d["id"] for d in order_key("+summary.v")(runs)] == ["t", "n", "n2", "s1", "s2"]


def test_order_by_every_column_is_accepted_and_anything_else_is_a_400() -> None:
    for col in ORDER_COLUMNS:
        order_key(col)
        order_key("-" + col)
    with pytest.raises(ApiError, match="cannot order by 'password'") as exc:
        order_key("password")
    assert exc.value.status == 400


# --------------------------------------------------------------------------- the $regex guard's edges


def test_regex_guard_length_limit_and_codes() -> None:
    check_regex("k", "a" * REGEX_MAX_LEN)
    for bad in ("a" * (REGEX_MAX_LEN + 1), None, ["a"]):
        with pytest.raises(ApiError) as exc:
            check_regex("k", bad)
        assert exc.value.code == "bad_request" and f"at most {REGEX_MAX_LEN} characters" in exc.value.message
    with pytest.raises(ApiError) as exc:
        check_regex("k", "a{2,1}")
    assert exc.value.code == "bad_request" and exc.value.message.startswith("bad $regex for 'k'")


@pytest.mark.parametrize(("pattern", "ok"), [
    ("^a*a*b", True),  # anchored: tried at one start position only
    ("a*a*b", False),  # the same, searched from every position
    ("(?m)^a*a*a*b", False),  # ^ under MULTILINE matches at every line: not anchored
    ("\\Aa*a*b", True),
    ("(?>.*)a.*b", True),  # an atomic group never gives back what it took
    (".*a.*b", False),
    ("a*+a*+a*+b", True),  # nor does a possessive repeat
    ("a*a*a*b", False),
    ("(?=.*a.*b)", False),  # a lookahead's own work counts too
    ("[^,]*,[^,]*,x", True),  # each repeat's end is fixed by the character after it
    (".*,.*,x", False),
])
def test_regex_guard_anchors_atomic_groups_and_fixed_ends(pattern: str, ok: bool) -> None:
    if ok:
        check_regex("k", pattern)
    else:
        with pytest.raises(ApiError) as exc:
            check_regex("k", pattern)
        assert exc.value.code == "unsafe_regex"
