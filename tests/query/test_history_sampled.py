"""``GET .../history/sampled``: wandb's sampled history (whole rows, or the rows holding given keys), over REST.

The data set (``conftest.write_dataset``) is synced once per backend (SQLite, PostgreSQL); what comes
back is compared with ``wandblite.replay`` of the same files, flattened as the endpoint promises.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import wandblite
from wandblite.replay import flatten

from .conftest import STEPS_A, Dataset, canon, plain


def _sampled(data: Dataset, run_id: str, samples: int | None = None, keys: list[str] | None = None) -> Any:
    params: dict[str, Any] = {"key": keys or []}
    if samples is not None:
        params["samples"] = samples
    return data.get(f"/runs/{run_id}/history/sampled", params=params)


def _local(data: Dataset, run_id: str) -> list[dict[str, Any]]:
    return [flatten(r) for r in plain(list(wandblite.replay(data.runs / run_id).scan_history()))]


def test_whole_rows_are_spread_evenly_with_the_first_and_last_kept(data: Dataset) -> None:
    body = _sampled(data, "a", samples=500)
    local = _local(data, "a")
    assert body["matched"] == STEPS_A and len(body["rows"]) == 500
    steps = [r["_step"] for r in body["rows"]]
    assert steps[0] == 0 and steps[-1] == STEPS_A - 1 and steps == sorted(set(steps))
    gaps = {b - a for a, b in itertools.pairwise(steps)}
    assert gaps <= {6, 7}  # 2999 / 499 = 6.01: evenly spaced
    assert canon([local[s] for s in steps]) == canon(body["rows"])  # flat: "train.inner", media whole
    assert "train.inner" in body["rows"][1] and body["rows"][0]["img"]["_type"] == "image-file"


def test_default_is_500_rows_and_a_short_run_comes_back_whole(data: Dataset) -> None:
    assert len(_sampled(data, "a")["rows"]) == 500
    body = _sampled(data, "b", samples=500)
    assert body["matched"] == 200 and canon(body["rows"]) == canon(_local(data, "b"))


def test_keys_keep_only_rows_holding_every_key_reduced_to_them(data: Dataset) -> None:
    local = [r for r in _local(data, "a") if "noisy" in r]
    body = _sampled(data, "a", samples=100, keys=["_step", "noisy", "train.inner"])
    assert body["matched"] == len(local) == STEPS_A // 3 and len(body["rows"]) == 100
    assert all(set(r) == {"_step", "noisy", "train.inner"} for r in body["rows"])
    by_step = {r["_step"]: r for r in local}
    for r in body["rows"]:
        assert canon(r) == canon({k: by_step[r["_step"]][k] for k in ("_step", "noisy", "train.inner")})
    assert body["rows"][0]["_step"] == 0 and body["rows"][-1]["_step"] == local[-1]["_step"]
    media = _sampled(data, "a", keys=["_step", "img", "hist"])
    assert [r["_step"] for r in media["rows"]] == [0, 1000, 2000] and media["rows"][1]["hist"]["_type"] == "histogram"
    assert _sampled(data, "a", keys=["img", "nope"]) == {"rows": [], "matched": 0}


def test_a_literal_dotted_key_and_a_nested_one_are_both_found(data: Dataset) -> None:
    # "train/loss" is a plain key; "train.inner" is {"train": {"inner": ...}}: flat, both are one name
    body = _sampled(data, "a", samples=3, keys=["train/loss", "train.inner"])
    assert [sorted(r) for r in body["rows"]] == [["train.inner", "train/loss"]] * 3


def test_a_crashed_runs_provisional_row_is_sampled_too(data: Dataset) -> None:
    body = _sampled(data, "crash", samples=1000, keys=["pending_only"])
    assert body == {"rows": [{"pending_only": 42.0}], "matched": 1}


@pytest.mark.parametrize("params", [{"samples": "0"}, {"samples": "x"}, {"samples": "100001"}, {"key": ""}])
def test_bad_sampled_queries_are_400(data: Dataset, params: dict[str, str]) -> None:
    r = data.srv.get(f"/api/v1/projects/{data.project}/runs/a/history/sampled", params=params)
    assert r.status_code == 400 and set(r.json()["error"]) >= {"code", "message"}
    assert data.srv.get(f"/api/v1/projects/{data.project}/runs/nope/history/sampled").status_code == 404


def test_rows_without_nesting_are_held_by_their_text_and_still_exact(data: Dataset) -> None:
    local = _local(data, "b")  # flat rows of loss and acc: held without decoding
    body = _sampled(data, "b", samples=1000, keys=["acc", "_step"])
    assert body["matched"] == 200 and body["rows"] == [{"acc": r["acc"], "_step": r["_step"]} for r in local]
    assert _sampled(data, "b", keys=["acc", "los"]) == {"rows": [], "matched": 0}  # a prefix is not the key


def test_a_flat_name_is_found_as_a_literal_key_or_below_a_subtree() -> None:
    from wandblite.server.read import _flat_get

    row = {"a.b": 1, "c": {"d": {"e": 2}, "f.g": 3}, "img": {"_type": "image-file"}, "t": {"x": 4}}
    for key, want in [("a.b", (True, 1)), ("c.d.e", (True, 2)), ("c.f.g", (True, 3)), ("img", (True, row["img"])),
                      ("c", (False, None)), ("c.d", (False, None)), ("a", (False, None)), ("img._type", (False, None)),
                      ("t.x", (True, 4)), ("t.y", (False, None))]:
        assert _flat_get(row, key) == want, key
        assert (key in flatten(row)) == want[0], key


def test_a_read_only_connection_gives_the_servers_sampled_rows(data: Dataset) -> None:
    """Through a PostgreSQL role that may only SELECT (a read-only SQLite file): the same answers."""
    from wandblite.server import read
    from wandblite.server.store import Store

    from .test_reads_never_write import _read_only_url

    cleanup: list[Any] = []
    assert data.srv.db is not None
    ro = Store(_read_only_url(data.srv.db, cleanup), media_dir=data.srv.media, migrate=False)
    try:
        for run, keys in (("a", None), ("a", ["_step", "noisy"]), ("b", ["acc"]), ("crash", ["pending_only"])):
            want = _sampled(data, run, samples=50, keys=keys)
            assert canon(read.sample_history(ro, data.project, run, 50, keys)) == canon(want), (run, keys)
    finally:
        ro.close()
        for fn in cleanup:
            fn()
