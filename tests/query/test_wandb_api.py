"""``wandb.Api`` notebooks run unchanged: every call of a wandb.Api notebook against a real server and the embedded store.

Three runs with known values are logged with the SDK (history, nested keys, an image, saved files,
an artifact logged by one run and used by another, a failed run), synced with the real ``wandblite
sync`` into a real ``wandblite server`` subprocess on 127.0.0.1 and into an embedded store. A
notebook-style script written for wandb (``import wandb; api = wandb.Api()``) then runs under the
drop-in runner (``python -m wandblite.integrations.run``) against each, and what it prints is compared
with what this test computes from the values it logged.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wandblite
from wandblite.api import iso_time
from wandblite.api_compat import Api as WandbApi

from .conftest import ServerProc, clean_env, cli, uniq

STEPS = 1200
NOTES = "what this run was for\n"
MODEL = bytes(range(256))
DATA_FILES = {"train.csv": "x,y\n1,2\n", "sub/labels.txt": "cat\ndog\n"}


def loss_at(i: int) -> float:
    return 2.0 / (i + 1) + 0.001 * i


FINAL_LOSS = {"a": loss_at(STEPS - 1), "b": 0.7, "c": 0.3}


def _settings() -> Any:
    return wandblite.Settings(console="off", disable_stats=True)


def _write(runs: Path, project: str) -> None:
    run = wandblite.init(project=project, id="a", dir=str(runs), name="alpha", group="g1", job_type="train",
                         notes="first", tags=["base", "x"], config={"lr": 0.1, "opt": {"name": "adam"}},
                         settings=_settings())
    rng = np.random.default_rng(0)
    for i in range(STEPS):
        row: dict[str, Any] = {"loss": loss_at(i), "train": {"acc": i / STEPS}, "epoch": i // 100}
        if i % 400 == 0:
            row["img"] = wandblite.Image(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8))
        run.log(row)
    Path(run.dir, "notes.txt").write_text(NOTES)
    Path(run.dir, "ckpt").mkdir()
    Path(run.dir, "ckpt", "model.bin").write_bytes(MODEL)
    run.save(os.path.join(run.dir, "notes.txt"), policy="now")
    run.save(os.path.join(run.dir, "ckpt", "model.bin"), policy="now")
    art = wandblite.Artifact("dataset", "data", metadata={"rows": 1})
    for name, text in DATA_FILES.items():
        with art.new_file(name, "w") as f:
            f.write(text)
    run.log_artifact(art, aliases=["best"])
    run.finish()
    run = wandblite.init(project=project, id="b", dir=str(runs), name="beta", tags=["y"], config={"lr": 0.01},
                         settings=_settings())
    run.use_artifact("dataset:latest")
    for i in range(30):
        run.log({"loss": 1.0 if i < 29 else FINAL_LOSS["b"]})
    run.finish(exit_code=2)
    run = wandblite.init(project=project, id="c", dir=str(runs), name="gamma", tags=["x", "y"],
                         config={"lr": 0.05}, settings=_settings())
    for i in range(10):
        run.log({"loss": 1.0 if i < 9 else FINAL_LOSS["c"]})
    run.finish()
    wandblite._reset_globals()


# The notebook: wandb code, nothing of wandblite in it. argv: project, output directory, an ISO time.
NOTEBOOK = r'''
import json, os, sys
import wandb

project, out, since = sys.argv[1:4]
api = wandb.Api(timeout=30)
path = f"team/{project}"
R = {"api": f"{type(api).__module__}.{type(api).__name__}", "projects": [p.name for p in api.projects()]}
runs = api.runs(path)
R["len"], R["ids"] = len(runs), [r.id for r in runs]
R["first"] = runs[0].id
ids = lambda **kw: [r.id for r in api.runs(path, **kw)]
R["filters"] = {
    "lr_gt": ids(filters={"config.lr": {"$gt": 0.01}}),
    "finished_y": ids(filters={"$and": [{"state": "finished"}, {"tags": {"$in": ["y"]}}]}),
    "name_or": ids(filters={"$or": [{"display_name": "beta"}, {"name": "a"}]}),
    "since": ids(filters={"createdAt": {"$gte": since}}),
    "group": ids(filters={"group": "g1", "jobType": "train"}),
    "loss_lt": ids(filters={"summary_metrics.loss": {"$lt": 0.5}}),
}
R["orders"] = {o: ids(order=o) for o in ("-created_at", "+summary_metrics.loss", "-config.lr.value")}
paged = api.runs(path, per_page=1)
R["paged"], R["paged_len"] = [r.id for r in paged], len(paged)

run = api.run(f"{path}/a")
R["run"] = {"id": run.id, "name": run.name, "state": run.state, "tags": run.tags, "group": run.group,
            "job_type": run.job_type, "created_at": run.created_at, "url": run.url, "path": run.path,
            "entity": run.entity, "config": run.config, "loss": run.summary["loss"],
            "acc": run.summary["train"]["acc"], "last_step": run.lastHistoryStep}
R["state_b"] = api.run(f"{project}/b").state
# wandb's export snippet: summaries, configs and names of every run of a project
R["export"] = [[r.name, r.summary._json_dict["loss"], {k: v for k, v in r.config.items() if not k.startswith("_")}]
               for r in api.runs(path)]
try:
    run.summary.update({"loss": 0})
    R["summary_update"] = "kept"
except Exception as exc:
    R["summary_update"] = type(exc).__name__
R["same_run"] = api.run(f"{path}/runs/c").name
try:
    api.run(f"{path}/nope")
    R["missing"] = "found"
except wandb.errors.CommError as exc:  # what wandb raises when a request fails
    R["missing"] = exc.status

df = run.history()
R["history"] = {"type": type(df).__name__, "len": len(df), "columns": sorted(df.columns),
                "steps": df["_step"].tolist(), "loss": df["loss"].tolist(), "acc": df["train.acc"].tolist(),
                "img": df["img"].dropna().iloc[0]["_type"]}
R["history_keys"] = run.history(samples=10, keys=["loss"], pandas=False)
ep = run.history(keys=["loss"], x_axis="epoch", samples=2000)
R["history_epoch"] = {"columns": list(ep.columns), "len": len(ep), "epochs": sorted(set(ep["epoch"].tolist()))}
R["scan"] = list(run.scan_history(keys=["loss"], min_step=5, max_step=15, page_size=7))
full = list(run.scan_history(page_size=500))
R["scan_full"] = {"len": len(full), "first": full[0], "last_step": full[-1]["_step"]}

R["files"] = [[f.name, f.size] for f in run.files()]
R["notes"] = run.file("notes.txt").download(root=out).read()
try:
    run.file("notes.txt").download(root=out)
    R["again"] = "no error"
except ValueError:
    R["again"] = "ValueError"
R["replace"] = run.file("notes.txt").download(root=out, replace=True).read()
with open(run.file("ckpt/model.bin").download(root=out, replace=True).name, "rb") as f:
    R["model"] = f.read().hex()

R["logged"] = [[a.name, a.type, a.aliases] for a in run.logged_artifacts()]
R["used_b"] = [[a.name, a.type] for a in api.run(f"{path}/b").used_artifacts()]
art = api.artifact(f"{path}/dataset:latest")
os.chdir(out)
where = art.download()
R["artifact"] = {"name": art.name, "type": art.type, "version": art.version, "metadata": art.metadata,
                 "dir": os.path.relpath(where, out),
                 "files": {p: open(os.path.join(where, p)).read() for p in art.files()}}
print(json.dumps(R))
'''


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    runs = tmp_path_factory.mktemp("wapi") / "runs"
    project = uniq("wapi")
    _write(runs, project)
    return project, runs


@pytest.fixture(scope="module")
def server(logged: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("wapisrv")
    srv = ServerProc(f"sqlite:///{tmp / 's.db'}", tmp / "media", tmp / "home").start()
    try:
        r = cli("sync", str(logged[1]), "--server", srv.url, "--api-key", srv.key, "--json", home=tmp / "synchome")
        assert r.returncode == 0, r.stdout + r.stderr
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def store(logged: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("wapihome")
    r = cli("sync", str(logged[1]), "--json", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    return home


def _notebook(tmp: Path, project: str, since: str, env: dict[str, str]) -> dict[str, Any]:
    nb = tmp / "notebook.py"
    nb.write_text(NOTEBOOK)
    out = tmp / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "wandblite.integrations.run", str(nb), project, str(out), since],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp), env=clean_env(**env))
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("where", ["server", "embedded"])
def test_a_wandb_api_notebook_answers_what_was_logged(where: str, logged: tuple[str, Path],
                                                      request: pytest.FixtureRequest, tmp_path: Path) -> None:
    project, runs = logged
    created = {r: wandblite.replay(runs / r).created_at for r in "abc"}
    since = iso_time(created["b"])  # to the second, as wandb writes times
    assert since is not None
    if where == "server":
        srv: ServerProc = request.getfixturevalue("server")
        env = {"WANDB_BASE_URL": srv.url, "WANDB_API_KEY": srv.key}
        base = srv.url
    else:
        env = {"WANDBLITE_HOME": str(request.getfixturevalue("store"))}
        base = "http://127.0.0.1:8080"
    got = _notebook(tmp_path, project, since, env)

    assert got["api"] == "wandblite.api_compat.Api" and project in got["projects"]
    assert got["len"] == 3 and got["ids"] == ["a", "b", "c"] and got["first"] == "a"  # oldest first
    since_ts = math.floor(created["b"])
    assert got["filters"] == {
        "lr_gt": ["a", "c"], "finished_y": ["c"], "name_or": ["a", "b"],  # wandb's name is the run id
        "since": [r for r in "abc" if created[r] >= since_ts], "group": ["a"],
        "loss_lt": sorted(r for r, v in FINAL_LOSS.items() if v < 0.5),
    }
    assert got["orders"] == {"-created_at": ["c", "b", "a"],
                             "+summary_metrics.loss": sorted("abc", key=FINAL_LOSS.__getitem__),
                             "-config.lr.value": ["a", "c", "b"]}
    assert got["paged"] == ["a", "b", "c"] and got["paged_len"] == 3

    run = got["run"]
    assert {k: run[k] for k in ("id", "name", "state", "tags", "group", "job_type", "entity")} == {
        "id": "a", "name": "alpha", "state": "finished", "tags": ["base", "x"], "group": "g1", "job_type": "train",
        "entity": "team"}
    assert run["created_at"] == iso_time(created["a"]) and run["path"] == ["team", project, "a"]
    assert run["url"] == f"{base}/#/p/{project}/r/a"
    assert {k: v for k, v in run["config"].items() if not k.startswith("_")} == {"lr": 0.1, "opt": {"name": "adam"}}
    assert run["loss"] == loss_at(STEPS - 1) and run["acc"] == (STEPS - 1) / STEPS
    assert run["last_step"] == STEPS - 1
    assert got["state_b"] == "failed" and got["same_run"] == "gamma" and got["missing"] == 404
    assert got["export"] == [["alpha", FINAL_LOSS["a"], {"lr": 0.1, "opt": {"name": "adam"}}],
                             ["beta", FINAL_LOSS["b"], {"lr": 0.01}], ["gamma", FINAL_LOSS["c"], {"lr": 0.05}]]
    assert got["summary_update"] == "Error"  # not written back, and said so

    h = got["history"]
    assert h["type"] == "DataFrame" and h["len"] == 500  # wandb's default: 500 rows of the 1200
    assert {"_step", "_runtime", "_timestamp", "loss", "train.acc", "epoch", "img"} <= set(h["columns"])
    steps = h["steps"]
    assert steps[0] == 0 and steps[-1] == STEPS - 1 and steps == sorted(set(steps))
    assert {b - a for a, b in itertools.pairwise(steps)} <= {2, 3}  # evenly spread over the run
    assert h["loss"] == [loss_at(s) for s in steps] and h["acc"] == [s / STEPS for s in steps]
    assert h["img"] == "image-file"
    keyed = got["history_keys"]
    assert len(keyed) == 10 and all(set(r) == {"_step", "loss"} for r in keyed)
    assert keyed[0]["_step"] == 0 and keyed[-1]["_step"] == STEPS - 1
    assert all(r["loss"] == loss_at(r["_step"]) for r in keyed)
    assert got["history_epoch"] == {"columns": ["epoch", "loss"], "len": STEPS, "epochs": list(range(12))}
    assert got["scan"] == [{"loss": loss_at(s)} for s in range(5, 15)]
    full = got["scan_full"]
    assert full["len"] == STEPS and full["last_step"] == STEPS - 1
    assert full["first"]["train.acc"] == 0.0 and full["first"]["img"]["_type"] == "image-file"

    assert got["files"] == [["ckpt/model.bin", len(MODEL)], ["notes.txt", len(NOTES)]]
    assert got["notes"] == got["replace"] == NOTES and got["again"] == "ValueError"
    assert bytes.fromhex(got["model"]) == MODEL

    assert got["logged"] == [["dataset:v0", "data", ["best", "latest"]]]
    assert got["used_b"] == [["dataset:v0", "data"]]
    assert got["artifact"] == {"name": "dataset:v0", "type": "data", "version": "v0", "metadata": {"rows": 1},
                               "dir": os.path.join("artifacts", "dataset:v0"), "files": DATA_FILES}


# --------------------------------------------------------------------------- the plain install

#: The modules of the server extra (and pandas, a test extra): the plain install has none of them.
BLOCKER = r'''
import sys

REFUSED = {"sqlalchemy", "starlette", "uvicorn", "psycopg", "psycopg2", "anyio", "pandas", "plotly", "trimesh",
           "httpx"}


class RefuseServerExtra:
    """Import nothing of the server extra: the interpreter looks like ``pip install wandblite``."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, RefuseServerExtra())
'''

PLAIN = r'''
import json, sys
try:
    import sqlalchemy  # noqa: F401
    sys.exit("the blocker did not work")
except ImportError:
    pass
import wandblite

url, key, project, out, home = sys.argv[1:6]
api = wandblite.Api(server=url, api_key=key)
R = {"runs": [r.id for r in api.runs(project)]}
run = api.run(f"team/{project}/a")
rows = run.history(keys=["loss"], samples=50)
R["history_type"], R["history_len"] = type(rows).__name__, len(rows)
R["scan"] = list(run.scan_history(keys=["loss"], max_step=3))
R["notes"] = run.file("notes.txt").download(root=out).read()
R["art"] = sorted(api.artifact(f"{project}/dataset:v0").files())
api.close()
import wandblite.integrations
wandblite.integrations.as_wandb()
import wandb
wapi = wandb.Api(overrides={"base_url": url}, api_key=key)
R["wandb_history"] = wapi.run(f"team/{project}/c").history(keys=["loss"], samples=3, pandas=False)
try:
    wandblite.api.Api(home=home)
    R["embedded"] = "opened"
except wandblite.Error as exc:
    R["embedded"] = str(exc)
R["loaded"] = sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "starlette", "pandas", "anyio"})
print(json.dumps(R))
'''


def test_api_over_http_needs_only_the_plain_install(server: ServerProc, store: Path, logged: tuple[str, Path],
                                                    tmp_path: Path) -> None:
    project, _runs = logged
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "out").mkdir()
    proc = subprocess.run([sys.executable, "-c", PLAIN, server.url, server.key, project, str(tmp_path / "out"),
                           str(store)], capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
                          env=clean_env(PYTHONPATH=str(site), WANDBLITE_SILENT="0"))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["runs"] == ["c", "b", "a"]  # wandblite.Api: newest first
    assert got["history_type"] == "list" and 0 < got["history_len"] <= 50  # no pandas: the rows, and a warning
    assert "needs pandas" in proc.stderr and proc.stderr.count("needs pandas") == 1
    assert got["scan"] == [{"_step": s, "loss": loss_at(s)} for s in range(3)]
    assert got["notes"] == NOTES and got["art"] == sorted(DATA_FILES)
    assert got["wandb_history"] == [{"_step": s, "loss": 1.0 if s < 9 else FINAL_LOSS["c"]} for s in (0, 4, 9)]
    # the embedded store needs the server extra, and says so in one line
    assert "\n" not in got["embedded"] and "pip install 'wandblite[server]'" in got["embedded"]
    assert "sqlalchemy" in got["embedded"] and "server=" in got["embedded"]
    assert got["loaded"] == []


# --------------------------------------------------------------------------- wandblite.Api, in process


def test_wandblite_api_lists_files_and_artifacts_and_pages_runs_lazily(server: ServerProc, store: Path,
                                                                      logged: tuple[str, Path],
                                                                      tmp_path: Path) -> None:
    project, runs = logged
    for api in (wandblite.Api(server=server.url, api_key=server.key), wandblite.Api(home=store)):
        with api:
            lazy = api.runs(f"team/{project}", per_page=2, order="+created_at")
            assert lazy.total == 3 and len(lazy._runs) == 2  # one page read so far
            assert [r.id for r in lazy] == ["a", "b", "c"] and lazy[2].id == "c" and [r.id for r in lazy[1:]] == ["b", "c"]
            assert [r.id for r in api.runs(project, filters={"name": "gamma"})] == ["c"]  # ours: the run's name
            a = api.run(f"{project}/a")
            assert a.created_at == pytest.approx(wandblite.replay(runs / "a").created_at)
            assert a.path == f"{project}/a" and a.entity is None  # no entity logged, none in the path
            assert api.run(f"team/{project}/a").entity == "team"
            files = a.files()
            assert [(f.name, f.size, f.mimetype) for f in files] == [
                ("ckpt/model.bin", len(MODEL), "application/octet-stream"), ("notes.txt", len(NOTES), "text/plain")]
            assert [f.name for f in a.files(pattern="%.txt")] == ["notes.txt"]
            url = files[0].url
            if api.server:
                assert url == f"{server.url}/api/v1/projects/{project}/runs/a/files/ckpt/model.bin"
            else:
                assert url.startswith("file://") and Path(url[len("file://"):]).read_bytes() == MODEL
            assert [f.name for f in a.files(names=["ckpt/model.bin"])] == ["ckpt/model.bin"]
            with pytest.raises(wandblite.Error) as err:
                a.file("nope.txt")
            assert err.value.status == 404  # type: ignore[attr-defined]
            dest = tmp_path / api.__repr__().replace("/", "_")
            with a.file("ckpt/model.bin").download(root=dest) as f:
                assert Path(f.name).read_bytes() == MODEL
            with a.file("ckpt/model.bin").download(root=dest, exist_ok=True) as f:
                assert Path(f.name) == dest / "ckpt" / "model.bin"
            art = api.artifact(f"{project}/dataset:best", type="data")
            assert (art.name, art.version, art.aliases, art.source_run) == ("dataset:v0", "v0", ["best", "latest"], "a")
            assert sorted(art.manifest.entries) == sorted(DATA_FILES) and art.logged_by().id == "a"  # type: ignore[union-attr]
            one = art.get_entry("sub/labels.txt").download(root=dest / "one")
            assert Path(one).read_text() == DATA_FILES["sub/labels.txt"] and not (dest / "one" / "train.csv").exists()
            with pytest.raises(ValueError):
                api.artifact(f"{project}/dataset:v0", type="model")
            assert [x.name for x in api.run(f"{project}/b").used_artifacts()] == ["dataset:v0"]
            wa = WandbApi(server=api.server, api_key=server.key) if api.server else WandbApi(home=store)
            wrun = wa.run(f"team/{project}/a")
            many = wrun.history(samples=500_000, keys=["loss"], pandas=False)  # over one request's limit
            assert many == wrun.history(samples=STEPS, keys=["loss"], pandas=False)
            assert many == [{"_step": s, "loss": loss_at(s)} for s in range(STEPS)]
            assert len(wrun.history(samples=200_000, pandas=False)) == STEPS
            wa.close()
            sysrows = a.history(stream="system", pandas=False)
            assert isinstance(sysrows, list)  # the runs were logged with disable_stats: no system records


def test_wandb_filter_and_order_names_map_onto_the_servers() -> None:
    from wandblite.api import _run_path, wandb_filters, wandb_order

    t = "2026-01-02T03:04:05Z"
    ts = 1767323045.0
    assert wandb_filters({"$or": [{"createdAt": {"$gte": t}}, {"duration": {"$lt": 5}}],
                          "summary_metrics.loss": {"$lt": 1}, "config.lr.value": 0.1, "name": "x",
                          "display_name": {"$regex": "^a"}, "tags": {"$in": ["a"]}}, name_is_id=True) == {
        "$or": [{"created_at": {"$gte": ts}}, {"runtime": {"$lt": 5}}], "summary.loss": {"$lt": 1},
        "config.lr": 0.1, "id": "x", "name": {"$regex": "^a"}, "tags": {"$in": ["a"]}}
    assert wandb_filters({"name": "x", "heartbeatAt": "2026-01-02T03:04:05"}) == {"name": "x", "heartbeat_at": ts}
    with pytest.raises(wandblite.Error, match="ISO 8601"):
        wandb_filters({"createdAt": {"$gt": "yesterday"}})
    assert [wandb_order(o, True) for o in ("+created_at", "-summary_metrics.loss", "config.lr.value", "name",
                                           "-heartbeatAt")] == [
        "created_at", "-summary.loss", "config.lr", "id", "-heartbeat_at"]
    assert wandb_order("display_name") == wandb_order("name") == "name"
    assert [_run_path(p, "dp") for p in ("e/p/runs/r", "e/p/r", "e/p:r", "p/r", "p:r", "r")] == [
        ("e", "p", "r"), ("e", "p", "r"), ("e", "p", "r"), (None, "p", "r"), (None, "p", "r"), (None, "dp", "r")]
    with pytest.raises(wandblite.Error):
        _run_path("r", None)
