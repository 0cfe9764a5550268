"""Files, artifacts and alerts (``save``, ``log_artifact``/``use_artifact``, ``alert``) through sync:
stored once, listed and served by a real server on SQLite and PostgreSQL and by the embedded store;
``use_artifact`` in another root falls back to the server; bad records are refused with the JSON
error shape and store nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import ServerProc, clean_env, cli, uniq

#: Every test here runs with the blobs on disk and in an S3-compatible bucket (``--media s3://...``).
MEDIA_KINDS = ("disk", "s3")

WRITER = r"""
import os, sys, wandblite
project, root = sys.argv[1], sys.argv[2]
os.makedirs("data", exist_ok=True)
open("data/now.txt", "w").write("saved now")
run = wandblite.init(project=project, id="fa", dir=root)
run.save("data/now.txt", policy="now")
run.save("data/end.bin", policy="end")
with open("data/end.bin", "wb") as f:
    f.write(bytes(range(256)) * 4)  # written after save(): policy "end" keeps it at finish
art = wandblite.Artifact("model", "model", metadata={"layers": 2})
with art.new_file("weights.txt", "w") as f:
    f.write("v0 weights")
run.log_artifact(art, aliases=["best"])
art = wandblite.Artifact("model", "model")
with art.new_file("weights.txt", "w") as f:
    f.write("v1 weights")
art.add_file("data/now.txt", name="sub/now.txt")
run.log_artifact(art, aliases=["prod"])
run.use_artifact("model:best")
run.alert("loss spike", "loss went to 3.2", level="WARN")
run.log({"loss": 1.0})
run.finish()
"""

USER = r"""
import json, sys, wandblite
project, root, spec, dest = sys.argv[1:5]
run = wandblite.init(project=project, id="user", dir=root)
art = run.use_artifact(spec)
path = art.download(root=dest)
run.finish()
print(json.dumps({"path": path, "version": art.version, "aliases": art.aliases}))
"""


def _python(script: str, *args: str, cwd: Path, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                          cwd=str(cwd), env=clean_env(WANDBLITE_CONSOLE="off", WANDBLITE_DISABLE_STATS="1", **env))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _write(tmp: Path, project: str) -> Path:
    work = tmp / "work"
    work.mkdir()
    _python(WRITER, project, str(tmp / "runs"), cwd=work)
    return tmp / "runs" / "fa"


def _sync(runs: Path, srv: ServerProc | None, home: Path) -> dict[str, Any]:
    args = ["sync", str(runs), "--json"] + (["--server", srv.url, "--api-key", srv.key] if srv else [])
    r = cli(*args, home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = [json.loads(line) for line in r.stdout.splitlines()]
    return dict(res)


def _assert_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["message"]


def _check_served(srv: ServerProc, project: str, run_dir: Path) -> None:
    """What the server lists and serves equals what replay shows of ``run_dir``."""
    import wandblite

    rep = wandblite.replay(run_dir)
    base = f"/api/v1/projects/{project}/runs/fa"
    files = srv.get(base + "/files").json()["files"]
    assert [(f["name"], f["policy"], f["lost"]) for f in files] == [("data/end.bin", "end", False),
                                                                     ("data/now.txt", "now", False)]
    for f in files:
        local = rep.files[f["name"]]
        assert (f["sha256"], f["size"]) == (local["sha256"], local["size"])
        got = srv.get(f"{base}/files/{f['name']}")
        assert got.status_code == 200 and got.content == (run_dir / local["path"]).read_bytes()
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"] == "sandbox"
        assert got.headers["content-disposition"].startswith("attachment")
    _assert_error(srv.get(base + "/files/data/none.txt"), 404, "not_found")

    (model,) = srv.get(f"/api/v1/projects/{project}/artifacts").json()["artifacts"]
    assert model["name"] == "model" and model["type"] == "model"
    assert [(v["version"], v["aliases"]) for v in model["versions"]] == [(0, ["best"]), (1, ["latest", "prod"])]
    assert model["aliases"] == {"best": 0, "latest": 1, "prod": 1}
    for ref, local in (("best", rep.artifacts[0]), ("v0", rep.artifacts[0]), ("latest", rep.artifacts[1]),
                       ("v1", rep.artifacts[1])):
        man = srv.get(f"/api/v1/projects/{project}/artifacts/model/{ref}").json()
        assert (man["version"], man["digest"], man["run"]) == (local["version"], local["digest"], "fa")
        assert sorted(man["entries"]) == sorted(local["entries"])
        for path, e in man["entries"].items():
            blob = srv.get(f"/api/v1/media/{e['sha256']}")
            assert blob.status_code == 200
            assert blob.content == (run_dir / local["entries"][path]["object"]).read_bytes()
    assert srv.get(f"/api/v1/projects/{project}/artifacts/model/v0").json()["metadata"] == {"layers": 2}
    _assert_error(srv.get(f"/api/v1/projects/{project}/artifacts/model/nope"), 404, "not_found")

    alerts = srv.get(base + "/alerts").json()
    assert [(a["idx"], a["title"], a["text"], a["level"]) for a in alerts["alerts"]] == [
        (0, "loss spike", "loss went to 3.2", "WARN")]
    arts = srv.get(base + "/artifacts").json()
    assert [(a["name"], a["version"], a["aliases"]) for a in arts["logged"]] == [
        ("model", 0, ["latest", "best"]), ("model", 1, ["latest", "prod"])]
    assert [(u["name"], u["version"], u["digest"]) for u in arts["used"]] == [
        ("model", 0, rep.artifacts[0]["digest"])]


def test_files_artifacts_alerts_sync_once_and_are_served(server: ServerProc, tmp_path: Path) -> None:
    project = uniq("fa")
    run_dir = _write(tmp_path, project)
    first = _sync(tmp_path / "runs", server, tmp_path / "home")
    assert (first["files"], first["artifacts"], first["uses"], first["alerts"]) == (2, 2, 1, 1)
    assert first["media"] == 4  # now.txt (also an artifact object), end.bin, two weights: each once
    pos = server.position(project, "fa")
    assert {k: pos[k] for k in ("files", "artifacts", "uses", "alerts")} == {"files": 2, "artifacts": 2, "uses": 1,
                                                                            "alerts": 1}
    _check_served(server, project, run_dir)
    # A second sync (without the sync-state cache: a fresh home) reads the run and sends nothing.
    again = _sync(tmp_path / "runs", server, tmp_path / "home2")
    assert (again["rows"], again["files"], again["artifacts"], again["uses"], again["alerts"], again["media"],
            again["meta_updated"]) == (0, 0, 0, 0, 0, 0, False)
    assert server.position(project, "fa") == pos
    _check_served(server, project, run_dir)

    # use_artifact in a new run under another root: not found locally, so fetched from the server.
    other = tmp_path / "other"
    other.mkdir()
    env = {"WANDBLITE_SERVER": server.url, "WANDBLITE_API_KEY": server.key, "WANDBLITE_HOME": str(tmp_path / "h3")}
    out = json.loads(_python(USER, project, str(other / "runs"), "model:best", str(other / "dl"), cwd=other, **env))
    assert out["version"] == "v0" and out["aliases"] == ["best"]
    assert (Path(out["path"]) / "weights.txt").read_text() == "v0 weights"
    out = json.loads(_python(USER, project, str(other / "runs2"), f"someone/{project}/model:latest",
                             str(other / "dl2"), cwd=other, **env))
    assert out["version"] == "v1"
    assert (Path(out["path"]) / "weights.txt").read_text() == "v1 weights"
    assert (Path(out["path"]) / "sub" / "now.txt").read_text() == "saved now"
    import wandblite

    (use,) = wandblite.replay(other / "runs" / "user").uses
    assert use["name"] == "model" and use["version"] == 0 and use["run"] == "fa"
    # Without a server the same call fails as before: not found among the local runs.
    proc = subprocess.run([sys.executable, "-c", USER, project, str(other / "runs3"), "model:best", str(other / "x")],
                          capture_output=True, text=True, timeout=120, cwd=str(other),
                          env=clean_env(WANDBLITE_CONSOLE="off", WANDBLITE_HOME=str(tmp_path / "h4")))
    assert proc.returncode != 0 and "ArtifactNotFoundError" in proc.stderr


def test_embedded_store_keeps_and_serves_files_artifacts_alerts(tmp_path: Path) -> None:
    project = uniq("emb")
    run_dir = _write(tmp_path, project)
    home = tmp_path / "home"
    first = _sync(tmp_path / "runs", None, home)
    assert (first["files"], first["artifacts"], first["uses"], first["alerts"]) == (2, 2, 1, 1)
    again = _sync(tmp_path / "runs", None, home)
    assert (again["files"], again["artifacts"], again["uses"], again["alerts"]) == (0, 0, 0, 0)
    srv = ServerProc(None, None, home).start()
    try:
        _check_served(srv, project, run_dir)
    finally:
        srv.stop()


SHA = hashlib.sha256(b"stored").hexdigest()
NEVER = hashlib.sha256(b"never uploaded").hexdigest()


def _artifact(name: str = "m", path: str = "a.txt", digest: str | None = None) -> dict[str, Any]:
    from wandblite.server.wire import artifact_digest

    entries = {path: {"sha256": SHA, "size": 6}}
    return {"idx": 0, "name": name, "type": "model", "version": 0, "aliases": ["latest"], "entries": entries,
            "digest": digest or artifact_digest(entries)}


BAD = [
    ({"files": [{"idx": 0, "name": "../x", "sha256": SHA, "size": 6}]}, "invalid_name"),
    ({"files": [{"idx": 0, "name": "/etc/passwd", "sha256": SHA, "size": 6}]}, "invalid_name"),
    ({"files": [{"idx": 0, "name": "a//b", "sha256": SHA, "size": 6}]}, "invalid_name"),
    ({"files": [{"idx": 0, "name": "a\\..\\b", "sha256": SHA, "size": 6}]}, "invalid_name"),
    ({"files": [{"idx": 0, "name": "x.txt", "sha256": NEVER, "size": 6}]}, "missing_blob"),
    ({"files": [{"idx": 0, "name": "x.txt", "sha256": "abc", "size": 6}]}, "invalid_sha256"),
    ({"artifacts": [_artifact(name="a/b")]}, "invalid_name"),
    ({"artifacts": [_artifact(name="a:b")]}, "invalid_name"),
    ({"artifacts": [_artifact(path="../escape.txt")]}, "invalid_name"),
    ({"artifacts": [_artifact(digest=NEVER)]}, "hash_mismatch"),
    ({"artifacts": [{**_artifact(), "aliases": ["v3"]}]}, "invalid_name"),
    ({"uses": [{"idx": 0, "name": "x/y"}]}, "invalid_name"),
    ({"alerts": [{"idx": 0, "title": "t", "text": "x", "level": "PANIC"}]}, "bad_request"),
    ({"alerts": [{"idx": 0, "title": "", "text": "x"}]}, "bad_request"),
    ({"alerts": [{"idx": 0, "title": "a", "text": "x"}, {"idx": 2, "title": "b", "text": "y"}]}, "bad_request"),
]


@pytest.mark.parametrize(("body", "code"), BAD, ids=[c + str(i) for i, (_b, c) in enumerate(BAD)])
def test_bad_records_are_refused_and_store_nothing(server: ServerProc, body: dict[str, Any], code: str) -> None:
    project = uniq("bad")
    put = requests.put(f"{server.url}/api/v1/media/{SHA}", data=b"stored", headers=server.h(), timeout=30)
    assert put.status_code == 200, put.text
    batch = f"/api/v1/projects/{project}/runs/r/batch"
    _assert_error(server.post(batch, {"rows": [{"idx": 0, "row": {"a": 1}}], **body}), 400, code)
    pos = server.position(project, "r")
    assert (pos["rows"], pos["files"], pos["artifacts"], pos["uses"], pos["alerts"]) == (0, 0, 0, 0, 0)
    _assert_error(server.get(f"/api/v1/projects/{project}/artifacts"), 404, "not_found")  # no project either


def test_mismatched_bytes_unknown_names_and_gaps(server: ServerProc) -> None:
    project = uniq("mis")
    put = requests.put(f"{server.url}/api/v1/media/{NEVER}", data=b"other bytes", headers=server.h(), timeout=30)
    _assert_error(put, 400, "hash_mismatch")
    assert requests.post(f"{server.url}/api/v1/media/missing", json={"sha256": [NEVER]}, headers=server.h(),
                         timeout=30).json()["missing"] == [NEVER]
    requests.put(f"{server.url}/api/v1/media/{SHA}", data=b"stored", headers=server.h(), timeout=30)
    batch = f"/api/v1/projects/{project}/runs/r/batch"
    ok = {"files": [{"idx": 0, "name": "a.txt", "sha256": SHA, "size": 6}],
          "alerts": [{"idx": 0, "title": "t", "text": "x"}]}
    assert server.post(batch, ok).status_code == 200
    assert server.post(batch, ok).status_code == 200  # a retry changes nothing
    assert server.position(project, "r")["files"] == 1 and server.position(project, "r")["alerts"] == 1
    gap = server.post(batch, {"alerts": [{"idx": 3, "title": "t", "text": "x"}]})
    _assert_error(gap, 409, "gap")
    assert gap.json()["error"]["position"]["alerts"] == 1
    base = f"/api/v1/projects/{project}/runs/r"
    assert server.get(base + "/files/a.txt").content == b"stored"
    _assert_error(server.get(base + "/files/..%2Fa.txt"), 400, "invalid_name")
    _assert_error(server.get(base + "/files/a.txt", key="wl_wrong"), 401, "unauthorized")
    _assert_error(server.post(batch, {"alerts": [{"idx": 1, "title": "t", "text": "x"}]}, key=None), 401,
                  "unauthorized")
    assert server.position(project, "r")["alerts"] == 1
