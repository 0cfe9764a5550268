"""Every read call over REST and through ``wandblite.Api``, on SQLite and PostgreSQL, against the replay.

The data set (``conftest.write_dataset``) is synced once per backend; every test reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import requests

import wandblite

from .conftest import DIP_STEP, SPIKE_STEP, STEPS_A, Dataset, canon, loss_at, plain


def _replay(data: Dataset, run_id: str) -> Any:
    return wandblite.replay(data.runs / run_id)


def _runs(data: Dataset, **params: Any) -> list[str]:
    q = {k: (json.dumps(v) if k == "filters" else v) for k, v in params.items()}
    return [r["id"] for r in data.get("/runs", params=q)["runs"]]


# --------------------------------------------------------------------------- projects and runs


def test_projects_list_the_project_with_its_run_count(data: Dataset) -> None:
    got = {p["name"]: p for p in data.srv.get("/api/v1/projects").json()["projects"]}
    p = got[data.project]
    assert p["runs"] == 4 and p["updated_at"] >= p["created_at"]
    api = {p.name: p for p in data.api().projects()}
    assert api[data.project].run_count == 4


def test_runs_table_rows_carry_every_column_and_match_the_replay(data: Dataset) -> None:
    body = data.get("/runs", params={"order": "created_at"})
    assert body["total"] == 4 and [r["id"] for r in body["runs"]] == ["a", "b", "c", "crash"]
    cols = {"id", "name", "state", "tags", "group", "job_type", "notes", "created_at", "updated_at", "heartbeat_at",
            "runtime", "host", "exit_code", "rows", "config", "summary"}
    for r in body["runs"]:
        assert cols <= set(r)
        local = _replay(data, r["id"])
        assert (r["state"], r["name"], r["tags"], r["group"], r["notes"]) == (
            local.state, local.name, local.tags, local.group, local.notes)
        assert canon(r["config"]) == canon(plain(local.config))
        assert canon(r["summary"]) == canon(plain(local.summary))
        assert r["runtime"] == pytest.approx(local.summary["_runtime"])
    states = {r["id"]: (r["state"], r["exit_code"]) for r in body["runs"]}
    assert states["b"] == ("failed", 3) and states["crash"][0] == "crashed"


@pytest.mark.parametrize(("filters", "want"), [
    ({"state": "finished"}, ["a", "c"]),
    ({"config.lr": {"$gt": 0.01}}, ["a", "c", "crash"]),
    ({"config.lr": {"$gte": 0.01, "$lt": 0.1}}, ["b", "c"]),
    ({"config.opt.name": "adam"}, ["a"]),
    ({"config.lr.value": 0.05}, ["c"]),  # wandb's form
    ({"tags": {"$in": ["y"]}}, ["b", "c"]),
    ({"tags": "base"}, ["a"]),
    ({"tags": {"$nin": ["x"]}}, ["b", "crash"]),
    ({"$or": [{"state": "failed"}, {"name": {"$regex": "^GAMMA", "$options": "i"}}]}, ["b", "c"]),
    ({"$and": [{"tags": "x"}, {"state": {"$ne": "crashed"}}]}, ["a", "c"]),
    ({"summary.acc": {"$gte": 0.9}}, ["c", "crash"]),  # a's acc summary is {"max": ...} (define_metric)
    ({"summary.acc.max": {"$gt": 0.99}}, ["a"]),
    ({"group": {"$exists": True}}, ["a"]),
    ({"group": {"$exists": False}}, ["b", "c", "crash"]),
    ({"display_name": "beta"}, ["b"]),
    ({"exit_code": {"$in": [3]}}, ["b"]),
    ({"config.bs": {"$not": {"$gt": 16}}}, ["b", "c", "crash"]),
])
def test_runs_filters_in_the_mongodb_like_language(data: Dataset, filters: dict[str, Any], want: list[str]) -> None:
    assert _runs(data, filters=filters, order="created_at") == want
    assert [r.id for r in data.api().runs(data.project, filters=filters, order="created_at")] == want


@pytest.mark.parametrize(("order", "want"), [
    ("created_at", ["a", "b", "c", "crash"]),
    ("-created_at", ["crash", "c", "b", "a"]),
    ("config.lr", ["b", "c", "a", "crash"]),  # crash has lr 0.1 too: ties keep creation order
    ("-config.lr", ["a", "crash", "c", "b"]),
    ("name", None),  # by the names (crash's is generated)
    ("-summary.acc", ["crash", "c", "b", "a"]),  # a's is an object: no order, last
    ("state", ["crash", "b", "a", "c"]),
])
def test_runs_order_by_column_summary_or_config(data: Dataset, order: str, want: list[str] | None) -> None:
    if want is None:
        want = sorted(["a", "b", "c", "crash"], key=lambda r: (_replay(data, r).name or "").lower())
    assert _runs(data, order=order) == want
    assert [r.id for r in data.api().runs(data.project, order=order)] == want


def test_runs_search_limit_and_offset(data: Dataset) -> None:
    assert _runs(data, search="here") == ["c"]  # notes, case-insensitively
    assert _runs(data, search="BASE", order="created_at") == ["a"]  # a tag and the name
    assert _runs(data, search="crash") == ["crash"]  # the id
    page = data.get("/runs", params={"order": "created_at", "limit": 2, "offset": 1})
    assert [r["id"] for r in page["runs"]] == ["b", "c"] and page["total"] == 4
    assert [r.id for r in data.api().runs(data.project, order="created_at", per_page=1)] == ["a", "b", "c", "crash"]


@pytest.mark.parametrize("params", [
    {"filters": "{not json"}, {"filters": "[1]"}, {"filters": json.dumps({"lr": {"$where": "1"}})},
    {"filters": json.dumps({"$or": {}})}, {"filters": json.dumps({"name": {"$regex": "("}})},
    {"order": "password"}, {"limit": "0"}, {"limit": "x"},
])
def test_bad_run_queries_are_400_with_the_error_shape(data: Dataset, params: dict[str, str]) -> None:
    r = data.srv.get(f"/api/v1/projects/{data.project}/runs", params=params)
    assert r.status_code == 400 and set(r.json()["error"]) >= {"code", "message"}


def test_run_detail_adds_metrics_context_and_position(data: Dataset) -> None:
    d = data.get("/runs/a")
    local = _replay(data, "a")
    assert d["id"] == "a" and d["metrics"] == plain(local.metrics) and d["metrics"]["acc"]["summary"] == ["max"]
    assert d["position"]["rows"] == STEPS_A and d["context"]["host"] == local.context["host"]
    assert "error" in d and "signal" in d
    run = data.api().run(f"{data.project}/a")
    assert (run.id, run.name, run.project, run.state, run.group, run.job_type, run.notes, run.tags) == (
        "a", "alpha-base", data.project, "finished", "g1", None, "first run", ["base", "x"])
    assert run.created_at == pytest.approx(local.created_at)
    assert canon(run.config) == canon(plain(local.config)) and canon(run.summary) == canon(plain(local.summary))
    assert run.metrics == d["metrics"]
    assert data.srv.get(f"/api/v1/projects/{data.project}/runs/nope").status_code == 404
    with pytest.raises(wandblite.Error) as err:
        data.api().run(f"{data.project}/nope")
    assert err.value.status == 404  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- history


@pytest.mark.parametrize("run_id", ["a", "b", "crash"])
def test_scan_history_equals_the_replay(data: Dataset, run_id: str) -> None:
    want = plain(list(_replay(data, run_id).scan_history()))
    run = data.api().run(f"{data.project}/{run_id}")
    got = plain(list(run.scan_history(page_size=700)))
    assert len(got) == len(want) and canon(got) == canon(want)
    keys = ["loss", "train.inner"] if run_id == "a" else ["loss"]
    assert canon(plain(list(run.scan_history(keys=keys)))) == canon(
        plain(list(_replay(data, run_id).scan_history(keys=keys))))


def test_scan_history_media_values_give_their_bytes(data: Dataset) -> None:
    local = [r for r in _replay(data, "a").scan_history(keys=["img"])]
    remote = list(data.api().run(f"{data.project}/a").scan_history(keys=["img"]))
    assert len(remote) == len(local) == STEPS_A // 500
    assert remote[1]["img"].bytes() == local[1]["img"].bytes()
    assert remote[1]["img"]["caption"] == "step 500"


# --------------------------------------------------------------------------- keys


def test_keys_list_numbers_and_media_by_kind(data: Dataset) -> None:
    keys = {k["key"]: k for k in data.get("/runs/a/keys")["keys"]}
    assert keys["loss"] == {"key": "loss", "kind": "number", "count": STEPS_A, "first_step": 0, "last_step": STEPS_A - 1}
    assert keys["train.inner"]["kind"] == "number" and keys["train/loss"]["count"] == STEPS_A
    assert keys["noisy"]["count"] == STEPS_A // 3  # NaN and inf points are logged points
    assert (keys["img"]["kind"], keys["img"]["count"], keys["img"]["last_step"]) == ("image-file", 6, 2500)
    assert (keys["hist"]["kind"], keys["hist"]["count"]) == ("histogram", 3)
    assert keys["cloud"]["kind"] == keys["mesh"]["kind"] == "object3D-file"
    assert keys["table"]["kind"] == "table-file"
    crash = {k["key"]: k for k in data.get("/runs/crash/keys")["keys"]}
    assert crash["pending_only"]["count"] == 1  # from the provisional row
    assert [k["key"] for k in data.api().run(f"{data.project}/a").list_keys()] == list(keys)


# --------------------------------------------------------------------------- series


def _series(data: Dataset, run_id: str, **params: Any) -> dict[str, Any]:
    return dict(data.get(f"/runs/{run_id}/series", params=params))


@pytest.mark.parametrize("samples", [40, 300, 1500])
def test_series_is_at_most_samples_points_and_keeps_the_global_min_and_max(data: Dataset, samples: int) -> None:
    s = _series(data, "a", keys="loss", samples=samples)["series"]["loss"]
    assert s["count"] == STEPS_A
    assert len(s["x"]) == len(s["y"]) == len(s["y_min"]) == len(s["y_max"])
    assert len(s["x"]) <= samples
    assert max(s["y"]) == 100.0 and min(s["y"]) == -50.0
    assert s["x"][s["y"].index(100.0)] == SPIKE_STEP and s["x"][s["y"].index(-50.0)] == DIP_STEP
    assert s["x"] == sorted(s["x"])
    for x, y, lo, hi in zip(s["x"], s["y"], s["y_min"], s["y_max"]):
        assert y == loss_at(x) and lo <= y <= hi  # every point is a logged point at its own step


def test_series_with_room_for_every_point_returns_them_all(data: Dataset) -> None:
    s = _series(data, "b", keys="loss,acc", samples=1000)["series"]
    local = list(_replay(data, "b").scan_history())
    assert s["loss"]["x"] == [r["_step"] for r in local] and s["loss"]["y"] == [r["loss"] for r in local]
    assert s["loss"]["y"] == s["loss"]["y_min"] == s["loss"]["y_max"]


@pytest.mark.parametrize("x_axis", ["_runtime", "_timestamp", "epoch"])
def test_series_x_axis_pairs_each_value_with_the_same_rows_x(data: Dataset, x_axis: str) -> None:
    by_step = {r["_step"]: r for r in _replay(data, "a").scan_history(keys=["loss", "epoch"])}
    s = _series(data, "a", keys="loss", x_axis=x_axis, samples=200)
    assert s["x_axis"] == x_axis
    pts = list(zip(s["series"]["loss"]["x"], s["series"]["loss"]["y"]))
    want = {(r.get(x_axis) if x_axis != "epoch" else r["epoch"], r["loss"]) for r in by_step.values()}
    if x_axis != "epoch":
        want = {(full[x_axis], full["loss"]) for full in _replay(data, "a").scan_history(keys=["loss", x_axis])}
    assert pts and set(pts) <= want
    assert (SPIKE_STEP // 100, 100.0) in pts if x_axis == "epoch" else 100.0 in [y for _, y in pts]


def test_series_zoom_keeps_points_inside_the_x_range(data: Dataset) -> None:
    s = _series(data, "a", keys="loss", samples=100, min_x=1000, max_x=1500)["series"]["loss"]
    assert s["x"] and min(s["x"]) >= 1000 and max(s["x"]) <= 1500 and 100.0 in s["y"]
    assert 450 <= s["count"] <= 510


def test_series_skips_nan_and_infinity(data: Dataset) -> None:
    s = _series(data, "a", keys="noisy", samples=5000)["series"]["noisy"]
    want = [(r["_step"], r["noisy"]) for r in _replay(data, "a").scan_history(keys=["noisy"])
            if math.isfinite(r["noisy"])]
    assert list(zip(s["x"], s["y"])) == want and s["count"] == STEPS_A // 3


def test_series_of_a_crashed_run_includes_its_provisional_row(data: Dataset) -> None:
    s = _series(data, "crash", keys="pending_only,loss")["series"]
    assert s["pending_only"]["y"] == [42.0] and s["pending_only"]["x"] == [120]
    assert s["loss"]["count"] == 120


def test_series_unknown_key_is_empty_and_bad_params_are_400(data: Dataset) -> None:
    assert _series(data, "a", keys="nope")["series"]["nope"] == {"x": [], "y": [], "y_min": [], "y_max": [], "count": 0}
    for params in ({}, {"keys": "loss", "samples": "1"}, {"keys": "loss", "min_x": "abc"}, {"keys": "_step"}):
        r = data.srv.get(f"/api/v1/projects/{data.project}/runs/a/series", params=params)
        assert r.status_code == 400, params


def test_api_history_is_downsampled_and_pandas_optional(data: Dataset) -> None:
    run = data.api().run(f"{data.project}/a")
    rows = run.history(keys=["loss", "acc"], samples=100, pandas=False)
    assert 0 < len(rows) <= 200 and all("_step" in r for r in rows)
    assert max(r["loss"] for r in rows if "loss" in r) == 100.0
    df = run.history(keys=["loss"], samples=100, x_axis="epoch")
    assert list(df.columns) == ["epoch", "loss"] and df["loss"].max() == 100.0 and len(df) <= 100
    assert df["epoch"].is_monotonic_increasing and (df["epoch"] == SPIKE_STEP // 100).sum() >= 2
    every = run.history(samples=50, pandas=False)
    assert {"loss", "acc", "epoch", "train.inner", "train/loss"} <= set().union(*every)


# --------------------------------------------------------------------------- media


def test_media_lists_every_step_of_a_key_with_its_value(data: Dataset) -> None:
    m = data.get("/runs/a/media", params={"key": "img"})
    local = list(_replay(data, "a").scan_history(keys=["img"]))
    assert m["key"] == "img" and m["count"] == 6
    assert [s["step"] for s in m["steps"]] == [r["_step"] for r in local] == [0, 500, 1000, 1500, 2000, 2500]
    assert [s["value"] for s in m["steps"]] == plain([r["img"] for r in local])
    assert "boxes" in m["steps"][0]["value"] and m["steps"][0]["value"]["caption"] == "step 0"
    hist = data.get("/runs/a/media", params={"key": "hist"})["steps"]
    assert [h["step"] for h in hist] == [0, 1000, 2000] and len(hist[0]["value"]["bins"]) == 65
    api = data.api()
    steps = api.run(f"{data.project}/a").media("img")
    assert steps[2]["value"].bytes() == local[2]["img"].bytes() == api.media_bytes(local[2]["img"]["sha256"])
    assert steps[2]["value"].open().size == (8, 8)
    thin = data.get("/runs/a/media", params={"key": "img", "limit": 3})
    assert thin["count"] == 6 and [s["step"] for s in thin["steps"]][::2] == [0, 2500]


def test_mesh_and_point_cloud_as_json(data: Dataset) -> None:
    row = next(r for r in _replay(data, "a").scan_history(keys=["cloud", "mesh"]))
    cube = data.srv.get(f"/api/v1/media/{row['mesh']['sha256']}/mesh").json()
    assert len(cube["vertices"]) == 8 and len(cube["faces"]) == 12 and not cube["truncated"]
    assert all(0 <= i < 8 for f in cube["faces"] for i in f)
    cloud = data.srv.get(f"/api/v1/media/{row['cloud']['sha256']}/mesh").json()
    assert len(cloud["points"]) == 50 and len(cloud["points"][0]) == 3
    img = next(r for r in _replay(data, "a").scan_history(keys=["img"]))
    r = data.srv.get(f"/api/v1/media/{img['img']['sha256']}/mesh")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_media"
    assert data.srv.get(f"/api/v1/media/{'0' * 64}/mesh").status_code == 404


def test_reads_need_auth(data: Dataset) -> None:
    for path in ("/runs", "/runs/a/keys", "/runs/a/series?keys=loss", "/runs/a/media?key=img"):
        r = requests.get(f"{data.srv.url}/api/v1/projects/{data.project}{path}", timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_api_reads_the_embedded_store_with_no_server(dataset_files: tuple[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import cli

    project, runs = dataset_files
    home = tmp_path / "home"
    r = cli("sync", str(runs), "--json", home=home)
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv("WANDBLITE_HOME", str(home))
    api = wandblite.Api()
    try:
        assert api.server is None and [p.name for p in api.projects()] == [project]
        assert [r.id for r in api.runs(project, filters={"tags": "x"})] == ["c", "a"]
        a, local = api.run(f"{project}/a"), wandblite.replay(runs / "a")
        assert canon(plain(list(a.scan_history()))) == canon(plain(list(local.scan_history())))
        assert canon(a.summary) == canon(plain(local.summary)) and a.state == "finished"
        rows = a.history(keys=["loss"], samples=300, pandas=False)
        assert len(rows) <= 300 and max(r["loss"] for r in rows) == 100.0
        assert {k["key"] for k in a.list_keys()} >= {"loss", "img", "hist"}
        img = next(local.scan_history(keys=["img"]))["img"]
        assert a.media("img")[0]["value"].bytes() == img.bytes()
    finally:
        api.close()


def test_api_without_server_or_store_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDBLITE_HOME", str(tmp_path / "empty"))
    with pytest.raises(wandblite.Error, match="wandblite sync"):
        wandblite.Api()
    assert not (tmp_path / "empty" / "store.db").exists()
