"""``$regex`` in run filters cannot pin a server worker: slow patterns are refused, the rest still match.

Python's ``re`` backtracks, and a match in progress cannot be interrupted, so the server checks a
pattern's parse tree before it runs it (``wandblite.server.regex_guard.check_regex``), matches each value
on its first ``REGEX_SUBJECT`` characters only and gives a request ``REGEX_SECONDS`` of matching.
The HTTP tests run against a real server (SQLite and PostgreSQL) holding runs whose notes are
thousands of characters long, the input that makes ``(a+)+$`` run for longer than the universe has
existed; requests carry a generous timeout, so a pattern that pinned the worker fails the test
instead of hanging it.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

import wandblite
from wandblite.server import regex_guard, runs_query
from wandblite.server.errors import ApiError

from .conftest import Dataset, cli, uniq

LONG = "a" * 5000 + "!"  # defeats every backtracking trap below; the notes of run "long"

# Patterns a user filtering runs writes, each with the runs it selects in ``_project``.
ORDINARY = [
    ({"name": {"$regex": "^run-\\d+$"}}, ["r1", "r2"]),
    ({"name": {"$regex": "^RUN", "$options": "i"}}, ["r1", "r2", "r3"]),
    ({"name": {"$regex": ".*-x.*"}}, ["r3"]),
    ({"name": {"$regex": "(adam|sgd)"}}, ["long"]),
    ({"tags": {"$regex": "^base"}}, ["r1"]),
    ({"notes": {"$regex": "^a+$"}}, ["long"]),  # the first 1,000 characters are a's
    ({"notes": {"$regex": "^(?!a)"}}, ["r1"]),  # r2's empty notes and r3's none are no value
    ({"config.host": {"$regex": "^(\\d+\\.){3}\\d+$"}}, ["r2"]),
    ({"name": {"$not": {"$regex": "^run"}}}, ["long", "r3"]),  # "Run-x": case matters without "i"
]

# Backtracking traps: exponential (nested repeats, overlapping alternatives, backreferences) and
# polynomial (several open-ended repeats that can split the same text).
PATHOLOGICAL = ["(a+)+$", "(a|a)*b", "(a|aa)+$", "(\\w+)*!!", "(.*)*x", "a*a*a*b", ".*a.*a.*b", "(a)\\1",
                "(?P<x>a+)(?P=x)b", "(a+){10}", "(a?){30}a{30}"]


def _write_runs(root: Path, project: str) -> None:
    specs = [("r1", "run-1", ["base"], "short", {"host": "n/a"}),
             ("r2", "run-22", ["x"], "", {"host": "10.0.0.12"}),
             ("r3", "Run-x", [], None, {}),
             ("long", "adam-long", ["y"], LONG, {"host": LONG})]
    for run_id, name, tags, notes, config in specs:
        run = wandblite.init(project=project, id=run_id, dir=str(root), name=name, tags=tags, notes=notes,
                             config=config, settings=wandblite.Settings(console="off", disable_stats=True))
        run.log({"loss": 1.0})
        run.finish()
    wandblite._reset_globals()


@pytest.fixture
def project(data: Dataset, tmp_path: Path) -> str:
    """A project of four runs, one with 5,001-character notes, synced into the data set's server."""
    name = uniq("rx")
    _write_runs(tmp_path / "runs", name)
    r = cli("sync", str(tmp_path / "runs"), "--server", data.srv.url, "--api-key", data.srv.key, "--json",
            home=tmp_path / "synchome")
    assert r.returncode == 0, r.stdout + r.stderr
    return name


def _get_runs(data: Dataset, project: str, filters: Any) -> requests.Response:
    # Generous, not a timing assertion: a pinned worker turns into a ReadTimeout and a failure.
    return requests.get(f"{data.srv.url}/api/v1/projects/{project}/runs", headers=data.srv.h(),
                        params={"filters": json.dumps(filters), "order": "name"}, timeout=120)


@pytest.mark.parametrize("pattern", PATHOLOGICAL)
def test_a_backtracking_trap_is_refused_with_a_400_naming_the_key(data: Dataset, project: str, pattern: str) -> None:
    r = _get_runs(data, project, {"notes": {"$regex": pattern}})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "unsafe_regex" and set(err) == {"code", "message"}
    assert "'notes'" in err["message"] and repr(pattern) in err["message"]
    assert any(hint in err["message"] for hint in ("instead", "simplify", "bound it"))  # says what to do
    with pytest.raises(wandblite.Error) as exc:  # the same through wandblite.Api
        data.api().runs(project, filters={"$or": [{"state": "x"}, {"notes": {"$not": {"$regex": pattern}}}]})
    assert exc.value.status == 400 and "'notes'" in str(exc.value)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("filters", "want"), ORDINARY)
def test_ordinary_regexes_still_match(data: Dataset, project: str, filters: dict[str, Any], want: list[str]) -> None:
    r = _get_runs(data, project, filters)
    assert r.status_code == 200, r.text
    assert sorted(x["id"] for x in r.json()["runs"]) == want
    assert sorted(run.id for run in data.api().runs(project, filters=filters)) == want


def test_a_value_is_searched_in_its_first_1000_characters(data: Dataset, project: str) -> None:
    assert regex_guard.REGEX_SUBJECT == 1000
    assert [x["id"] for x in _get_runs(data, project, {"notes": {"$regex": "^a{1000}"}}).json()["runs"]] == ["long"]
    assert _get_runs(data, project, {"notes": {"$regex": "a{1001}"}}).json()["runs"] == []
    assert _get_runs(data, project, {"notes": {"$regex": "!"}}).json()["runs"] == []  # at character 5,001


def test_the_server_answers_other_requests_while_and_after_refusing(data: Dataset, project: str) -> None:
    results: list[int] = []

    def hammer() -> None:
        for p in PATHOLOGICAL:
            results.append(_get_runs(data, project, {"notes": {"$regex": p}}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    ok = _get_runs(data, project, {"name": {"$regex": "^run-\\d+$"}})
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive()
    assert ok.status_code == 200 and results == [400] * (4 * len(PATHOLOGICAL))


def test_the_slowest_accepted_pattern_on_long_values_finishes(data: Dataset, project: str) -> None:
    # Among patterns check_regex accepts, these do the most work on a run of a's (see the fuzz test).
    for pattern in ["a{1,5}a+(?:ba)+", ".*a{1,5}$", "\\w*\\d+", "[^b]*(a)?\\bb", "^(?:[a-z]+-)*[a-z]+$"]:
        r = _get_runs(data, project, {"notes": {"$regex": pattern}, "config.host": {"$regex": pattern}})
        assert r.status_code == 200, (pattern, r.text)


# --------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize("pattern", [
    "^GAMMA", "^sweep-\\d+$", ".*foo.*", "lr=0\\.0?1", "(adam|sgd)_lr\\d+", "v\\d+\\.\\d+\\.\\d+", "\\d{4}-\\d{2}-\\d{2}",
    "^(?!test)", "foo.*?bar", "[a-z]+_[0-9]+", "\\w+ \\w+", "\\S+@\\S+", "(\\d+\\.){3}\\d+", "^exp-\\d+-lr\\d+$",
    "(?i)resnet(18|34|50)", "^[^-]*-[^-]*-seed\\d+$", "base|x", ".*", "\\bfoo\\b", "model-(a|b)?", "é+", "gamma-\\w+$",
    "^(?:[a-z]+-)*[a-z]+$",
])
def test_check_regex_accepts_everyday_patterns(pattern: str) -> None:
    regex_guard.check_regex("name", pattern)
    regex_guard.check_regex("name", pattern, "i")


@pytest.mark.parametrize(("pattern", "says"), [
    ("(a+)+$", "repeats a group that itself contains a repeat"),
    ("(a|ab)*c", "repeats a group that itself contains a repeat"),
    ("(?:a*)+", "repeats a group that itself contains a repeat"),
    ("(x+x+)+y", "repeats a group that itself contains a repeat"),
    ("(a)\\1", "refers back to a group"),
    ("a*a*a*b", "can take too long to match"),
    ("\\w*\\w*\\w*\\d", "can take too long to match"),
    ("foo.*bar.*baz", "can take too long to match"),
    ("(?:.*,){11}P", "can take too long to match"),
    ("a*?a?(a)*x", "can take too long to match"),
])
def test_check_regex_refuses_traps_and_says_why(pattern: str, says: str) -> None:
    with pytest.raises(ApiError) as exc:
        regex_guard.check_regex("config.name", pattern)
    assert exc.value.status == 400 and exc.value.code == "unsafe_regex"
    assert says in exc.value.message and "'config.name'" in exc.value.message


def test_check_regex_keeps_the_length_and_syntax_errors() -> None:
    with pytest.raises(ApiError, match="at most 500 characters"):
        regex_guard.check_regex("name", "a" * 501)
    with pytest.raises(ApiError, match="bad \\$regex for 'name'"):
        regex_guard.check_regex("name", "(")
    with pytest.raises(ApiError, match="at most 500"):
        regex_guard.check_regex("name", 42)


def test_accepted_patterns_match_long_values_in_bounded_time_fuzz() -> None:
    """Random patterns from pieces that combine into traps: every accepted one finishes its worst
    search on a 1,000-character subject. Run in a thread with a generous deadline (a trap that
    slipped through would take minutes to hours, not this)."""
    import random

    rng = random.Random(7)
    pieces = ["a", "b", "a*", "a+", ".*", "(a)*", "a?", "(a)?", "[ab]*", "(?:ab)*", "\\w*", "\\w+", "a{1,5}", "$",
              "(a|b)", "(?:a|ab)", "a*?", "\\d+", "(?:aa)?", "[^b]*", "(?:ba)+", "\\s*", "a{0,40}", "(?=a)", "\\b", "x"]
    subjects = ["a" * 1000, "a" * 999 + "b", "ab" * 500, "aab" * 333, " " * 1000, "a" * 999 + "x"]
    accepted: list[str] = []
    for _ in range(400):
        p = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        try:
            regex_guard.check_regex("k", p)
        except ApiError:
            continue
        accepted.append(p)
    done = threading.Event()

    def run_all() -> None:
        for p in accepted:
            for s in subjects:
                re.search(p, s)
        done.set()

    threading.Thread(target=run_all, daemon=True).start()
    assert len(accepted) > 100
    assert done.wait(timeout=600), "an accepted pattern did not finish: a trap got through check_regex"


def test_a_request_gets_a_bounded_time_for_regex_matching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past REGEX_SECONDS the request stops between runs with a 400 (here: a budget already spent)."""
    from wandblite.server.store import Store

    name = uniq("rxt")
    _write_runs(tmp_path / "runs", name)
    r = cli("sync", str(tmp_path / "runs"), home=tmp_path / "home")  # no server: the embedded store
    assert r.returncode == 0, r.stderr
    store = Store.embedded(tmp_path / "home")
    assert runs_query.list_runs(store, name, filters={"name": {"$regex": "^run"}})["total"] == 2
    monkeypatch.setattr(runs_query, "REGEX_SECONDS", -1.0)
    with pytest.raises(ApiError) as exc:
        runs_query.list_runs(store, name, filters={"$and": [{"state": "finished"}, {"name": {"$regex": "^run"}}]})
    assert exc.value.status == 400 and exc.value.code == "filter_too_slow"
    assert f"project {name!r}" in exc.value.message and "0 of the 4 runs" in exc.value.message
    assert runs_query.list_runs(store, name, filters={"state": "finished"})["total"] == 4  # no $regex: no budget
