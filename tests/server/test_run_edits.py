"""Editing stored runs over HTTP (``server/edits.py``), on SQLite and PostgreSQL, blobs on disk and S3:
rename, tags, notes, archive and restore, move, delete with the blobs no other run names; each in the
audit log; a later sync and an edit; a deleted run synced again. (Who may do each: the role matrix,
``test_roles.py``.)"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.server.conftest import S3Server, ServerProc
from tests.server.teams import cast

MEDIA_KINDS = ("disk", "s3")


def _project() -> str:
    return f"edits{uuid.uuid4().hex[:10]}"


def _call(srv: ServerProc, method: str, path: str, body: Any = None, key: str | None = "") -> requests.Response:
    headers = srv.h(key)
    if body is not None:
        headers["Content-Type"] = "application/json"
    import json

    return requests.request(method, srv.url + path, headers=headers, timeout=30,
                            data=None if body is None else json.dumps(body).encode())


def _put_blob(srv: ServerProc, data: bytes, ext: str = "png") -> str:
    sha = hashlib.sha256(data).hexdigest()
    r = requests.put(f"{srv.url}/api/v1/media/{sha}?ext={ext}", data=data, headers=srv.h(""), timeout=30)
    assert r.status_code == 200, r.text
    return sha


def _image(sha: str) -> dict[str, Any]:
    return {"_type": "image-file", "path": f"media/images/img_0_{sha[:20]}.png", "sha256": sha, "size": 3,
            "format": "png", "width": 1, "height": 1}


def _meta(name: str, tags: list[str], notes: str | None = None, **more: Any) -> dict[str, Any]:
    return {"name": name, "tags": tags, "notes": notes, "state": "running", **more}


def _blob_present(srv: ServerProc, media_kind: str, request: pytest.FixtureRequest, sha: str) -> bool:
    """Whether the blob's bytes are in the server's blob store itself (the directory or the bucket)."""
    if media_kind == "disk":
        return (Path(str(srv.media)) / sha[:2] / sha[2:4] / sha).exists()
    s3: S3Server = request.getfixturevalue("s3")
    bucket, _, prefix = str(srv.media)[len("s3://"):].partition("/")
    return any(k.endswith("/" + sha) for k in s3.keys(bucket, prefix))


def test_rename_tags_notes_are_stored_audited_and_validated(server: ServerProc) -> None:
    p = _project()
    run = f"/api/v1/projects/{p}/runs/r1"
    assert server.post(run + "/batch", {"run": _meta("first", ["a"])}).status_code == 200
    r = _call(server, "PATCH", run, {"name": "<b>renamed</b>", "tags": ["x", "y", "x"], "notes": "n\u00e9"})
    assert r.status_code == 200, r.text
    got = server.get(run).json()
    assert (got["name"], got["tags"], got["notes"], got["archived"]) == ("<b>renamed</b>", ["x", "y"], "n\u00e9", False)
    assert r.json()["name"] == "<b>renamed</b>"
    entry = server.get(f"/api/v1/audit?project={p}").json()["entries"][0]
    assert entry["action"] == "run.edited" and entry["run_id"] == "r1"
    assert entry["detail"] == {"name": {"from": "first", "to": "<b>renamed</b>"}, "tags": {"from": ["a"], "to": ["x", "y"]},
                               "notes": {"from": None, "to": "n\u00e9"}}
    # Nothing changed: no entry.
    assert _call(server, "PATCH", run, {"name": "<b>renamed</b>"}).status_code == 200
    assert server.get(f"/api/v1/audit?project={p}").json()["entries"][0]["id"] == entry["id"]
    for bad in ({}, {"colour": "red"}, {"name": 5}, {"tags": "x"}, {"tags": [""]}, {"tags": [1]},
                {"archived": "yes"}, [], {"name": "x" * 5000}):
        r = _call(server, "PATCH", run, bad)
        assert r.status_code == 400, (bad, r.text)
        assert set(r.json()["error"]) >= {"code", "message"}
    assert server.get(run).json()["name"] == "<b>renamed</b>"
    assert _call(server, "PATCH", f"/api/v1/projects/{p}/runs/nope", {"name": "x"}).status_code == 404


def test_archived_runs_leave_the_default_list_and_come_back(server: ServerProc) -> None:
    p = _project()
    for rid in ("keep", "old"):
        assert server.post(f"/api/v1/projects/{p}/runs/{rid}/batch", {"run": _meta(rid, [])}).status_code == 200
    runs = f"/api/v1/projects/{p}/runs"

    def ids(q: str = "") -> list[str]:
        return sorted(x["id"] for x in server.get(runs + q).json()["runs"])

    assert _call(server, "PATCH", runs + "/old", {"archived": True}).json()["archived"] is True
    assert ids() == ["keep"]
    assert ids("?archived=include") == ["keep", "old"]
    assert ids("?archived=only") == ["old"]
    assert server.get(runs + "?archived=maybe").status_code == 400
    assert server.get(runs + "/old").json()["archived"] is True  # still readable by its id
    # A sync of the archived run stores its records and leaves it archived.
    r = server.post(runs + "/old/batch", {"rows": [{"idx": 0, "row": {"_step": 0, "x": 1.0}, "final": True}]})
    assert r.status_code == 200, r.text
    assert ids() == ["keep"]
    assert _call(server, "PATCH", runs + "/old", {"archived": False}).status_code == 200
    assert ids() == ["keep", "old"]
    actions = [(e["action"], e["detail"]) for e in server.get(f"/api/v1/audit?project={p}").json()["entries"][:3]]
    assert ("run.edited", {"archived": False}) in actions and ("run.edited", {"archived": True}) in actions


def test_an_edit_sticks_until_the_file_itself_changes_the_field(server: ServerProc) -> None:
    p = _project()
    run = f"/api/v1/projects/{p}/runs/r1"
    assert server.post(run + "/batch", {"run": _meta("from-file", ["t1"], "file notes")}).status_code == 200
    assert _call(server, "PATCH", run, {"name": "from-ui", "tags": ["ui"]}).status_code == 200
    # The run grows: the file sends its unchanged name and tags with the new summary. The edit stands.
    r = server.post(run + "/batch", {"run": _meta("from-file", ["t1"], "file notes", summary={"loss": 0.5})})
    assert r.status_code == 200, r.text
    got = server.get(run).json()
    assert (got["name"], got["tags"], got["notes"], got["summary"]) == ("from-ui", ["ui"], "file notes", {"loss": 0.5})
    # A resume that sets a new name: the file wins for the name; the tags' edit still stands.
    assert server.post(run + "/batch", {"run": _meta("resumed", ["t1"], "file notes")}).status_code == 200
    got = server.get(run).json()
    assert (got["name"], got["tags"]) == ("resumed", ["ui"])
    # ... and from then on the file's name is taken as it comes.
    assert server.post(run + "/batch", {"run": _meta("resumed-again", ["t1"], "file notes")}).status_code == 200
    assert server.get(run).json()["name"] == "resumed-again"
    # Editing a field back to what the file says forgets the edit: the file's next tags are taken.
    assert _call(server, "PATCH", run, {"tags": ["t1"]}).status_code == 200
    assert server.post(run + "/batch", {"run": _meta("resumed-again", ["t2"], "file notes")}).status_code == 200
    assert server.get(run).json()["tags"] == ["t2"]


def test_move_needs_a_writer_in_the_target_and_a_free_run_id(server: ServerProc) -> None:
    c = cast(server)
    target = c.project + "t"
    assert server.post(f"/api/v1/projects/{target}/runs/taken/batch", {}, key=c.keys["server admin"]).status_code == 200
    c.store.set_visibility(target, "private")
    c.store.set_member(target, c.users["owner"], "viewer")
    move = f"/api/v1/projects/{c.project}/runs/{c.run_id}/move"
    r = _call(server, "POST", move, {"project": target}, key=c.keys["owner"])
    assert r.status_code == 403 and target in r.json()["error"]["message"]
    c.store.set_member(target, c.users["owner"], "writer")
    assert _call(server, "POST", move, {"project": "no-such-project"}, key=c.keys["owner"]).status_code == 404
    assert _call(server, "POST", move, {"project": "bad/name"}, key=c.keys["owner"]).status_code == 400
    assert _call(server, "POST", move, {"to": target}, key=c.keys["owner"]).status_code == 400
    r = _call(server, "POST", move, {"project": target}, key=c.keys["owner"])
    assert r.status_code == 200, r.text
    assert r.json()["project"] == target
    assert server.get(f"/api/v1/projects/{c.project}/runs/{c.run_id}", key=c.keys["owner"]).status_code == 404
    hist = server.get(f"/api/v1/projects/{target}/runs/{c.run_id}/history", key=c.keys["owner"]).json()
    assert [row["row"]["loss"] for row in hist["rows"]] == [1.0]  # its records went with it
    for project in (c.project, target):
        e = c.store.audit(project)["entries"][0]
        assert (e["action"], e["detail"], e["user"]) == ("run.moved", {"from": c.project, "to": target},
                                                          c.users["owner"])
    # A run id already in the target: 409, nothing moved.
    assert server.post(f"/api/v1/projects/{c.project}/runs/taken/batch", {}, key=c.keys["owner"]).status_code == 200
    r = _call(server, "POST", f"/api/v1/projects/{c.project}/runs/taken/move", {"project": target}, key=c.keys["owner"])
    assert r.status_code == 409, r.text
    assert server.get(f"/api/v1/projects/{c.project}/runs/taken", key=c.keys["owner"]).status_code == 200


def test_delete_removes_every_record_and_only_unshared_blobs(server: ServerProc, media_kind: str,
                                                             request: pytest.FixtureRequest) -> None:
    p = _project()
    own = _put_blob(server, b"only-mine-" + uuid.uuid4().bytes)
    shared = _put_blob(server, b"shared-" + uuid.uuid4().bytes)
    saved = _put_blob(server, b"my saved file " + uuid.uuid4().bytes, ext="txt")
    base = f"/api/v1/projects/{p}/runs"
    doomed = {
        "run": _meta("doomed", ["x"], config={"lr": 0.1}, summary={"loss": 0.1}),
        "rows": [{"idx": 0, "row": {"_step": 0, "loss": 1.0, "img": _image(own)}, "final": True},
                 {"idx": 1, "row": {"_step": 1, "loss": 0.5, "img": _image(shared)}, "final": True},
                 {"idx": 2, "row": {"_step": 2, "loss": 0.2}, "final": False}],
        "console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "hello\n"}],
        "system": [{"idx": 0, "ts": 1.0, "metrics": {"cpu": 3.0}}],
        "files": [{"idx": 0, "name": "notes.txt", "sha256": saved, "size": 40}],
        "alerts": [{"idx": 0, "ts": 1.0, "title": "t", "text": "x", "level": "INFO"}],
    }
    r = server.post(f"{base}/doomed/batch", doomed)
    assert r.status_code == 200, r.text
    other = {"rows": [{"idx": 0, "row": {"_step": 0, "img": _image(shared)}, "final": True}]}
    assert server.post(f"{base}/other/batch", other).status_code == 200
    assert server.get(f"{base}/doomed/media?key=img").json()["count"] == 2

    r = _call(server, "DELETE", f"{base}/doomed")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["deleted"] is True and sorted(answer["blobs_deleted"]) == sorted([own, saved])
    assert answer["blobs_left"] == []
    for suffix in ("", "/keys", "/series?keys=loss", "/media?key=img", "/history", "/history/sampled", "/console",
                   "/console/lines", "/system", "/files", "/files/notes.txt", "/alerts", "/artifacts"):
        got = server.get(f"{base}/doomed{suffix}")
        assert got.status_code == 404, (suffix, got.status_code, got.text[:200])
    assert [x["id"] for x in server.get(f"{base}?archived=include").json()["runs"]] == ["other"]
    assert server.get(f"{base}/doomed/position").json()["rows"] == 0
    for sha in (own, saved):
        assert server.get(f"/api/v1/media/{sha}").status_code == 404
        assert not _blob_present(server, media_kind, request, sha)
    assert server.post("/api/v1/media/missing", {"sha256": [own, shared]}).json()["missing"] == [own]
    assert server.get(f"/api/v1/media/{shared}").status_code == 200  # the other run still names it
    assert _blob_present(server, media_kind, request, shared)
    assert server.get(f"{base}/other/media?key=img").json()["count"] == 1
    e = server.get(f"/api/v1/audit?project={p}").json()["entries"][0]
    assert (e["action"], e["run_id"]) == ("run.deleted", "doomed")
    assert e["detail"] == {"rows": 2, "console": 1, "system": 1, "blobs": 2}
    assert _call(server, "DELETE", f"{base}/doomed").status_code == 404

    # Synced again after its deletion, the run comes back as a new run (the sync resends from zero).
    r = server.post(f"{base}/doomed/batch", {**doomed, "files": []})
    assert r.status_code == 200, r.text
    assert server.get(f"{base}/doomed").json()["rows"] == 2
    assert server.get(f"/api/v1/audit?project={p}").json()["entries"][-1]["action"] != "run.deleted"
    created = [e for e in server.get(f"/api/v1/audit?project={p}").json()["entries"]
               if e["action"] == "run.created" and e["run_id"] == "doomed"]
    assert len(created) == 2


def test_api_run_update_and_delete_as_wandb_writes_them(server: ServerProc) -> None:
    import wandblite
    from wandblite.api import ApiRequestError
    from wandblite.api_compat import Api as CompatApi
    from wandblite.errors import Error

    p = _project()
    for rid in ("a", "b"):
        assert server.post(f"/api/v1/projects/{p}/runs/{rid}/batch",
                           {"run": _meta(rid, ["t"], config={"lr": 0.1}, summary={"loss": float("nan")})}).status_code == 200
    api = wandblite.Api(server=server.url, api_key=server.key)
    run = api.run(f"{p}/a")
    run.name, run.tags, run.notes = "renamed", ["t", "new"], "from the api"
    run.update()
    assert (run.name, run.tags, run.notes) == ("renamed", ["t", "new"], "from the api")
    fresh = api.run(f"{p}/a")
    assert (fresh.name, fresh.tags, fresh.notes) == ("renamed", ["t", "new"], "from the api")
    edits = [e for e in server.get(f"/api/v1/audit?project={p}").json()["entries"] if e["action"] == "run.edited"]
    assert len(edits) == 1 and sorted(edits[0]["detail"]) == ["name", "notes", "tags"]
    fresh.config["lr"] = 1.0
    with pytest.raises(Error, match="config and summary"):
        fresh.update()
    fresh.archived = True
    fresh.config["lr"] = 0.1
    fresh.update()
    assert [r.id for r in api.runs(p)] == ["b"]
    assert sorted(r.id for r in api.runs(p, archived="include")) == ["a", "b"]
    # wandb's own spelling, through the drop-in Api.
    compat = CompatApi(overrides={"base_url": server.url}, api_key=server.key)
    b = compat.run(f"someone/{p}/b")
    b.notes = "compat notes"
    b.update()
    assert api.run(f"{p}/b").notes == "compat notes"
    with pytest.raises(Error, match="delete_artifacts"):
        b.delete(delete_artifacts=True)
    b.delete()
    with pytest.raises(ApiRequestError) as err:
        api.run(f"{p}/b")
    assert err.value.status == 404
    # A read key cannot.
    from wandblite.server.store import Store

    assert server.db is not None
    _kid, viewer_key = Store(server.db).create_key("ro", scope="read")
    ro = wandblite.Api(server=server.url, api_key=viewer_key).run(f"{p}/a")
    ro.name = "nope"
    with pytest.raises(ApiRequestError) as err:
        ro.update()
    assert err.value.status == 403
    assert api.run(f"{p}/a").name == "renamed"


def test_wandblite_sync_after_an_edit_and_after_a_delete(server: ServerProc, tmp_path: Path) -> None:
    """The real sync client: an edit survives a re-sync of the unchanged file (fresh cache, so the
    metadata is sent again); a deleted run is uploaded again whole, as a new run."""
    from tests.server.conftest import cli, write_run

    p = _project()
    write_run(tmp_path / "runs", p, "r1", 30)

    def sync(home: str) -> None:
        r = cli("sync", str(tmp_path / "runs"), "--server", server.url, "--api-key", server.key,
                home=tmp_path / home)
        assert r.returncode == 0, r.stdout + r.stderr

    sync("h1")
    run = f"/api/v1/projects/{p}/runs/r1"
    file_name = server.get(run).json()["name"]
    assert _call(server, "PATCH", run, {"name": "edited on the server", "tags": ["ui"]}).status_code == 200
    sync("h2")  # another cache: the client sends the run's metadata again, unchanged
    got = server.get(run).json()
    assert (got["name"], got["tags"], got["rows"]) == ("edited on the server", ["ui"], 30)
    assert got["name"] != file_name
    assert _call(server, "DELETE", run).status_code == 200
    assert server.get(run).status_code == 404
    sync("h1")  # the cache that saw it acknowledged: the server's position decides, so all of it again
    got = server.get(run).json()
    assert got["rows"] == 30 and got["name"] == file_name
    assert len(server.history(p, "r1")) == 30


def test_api_edits_the_embedded_store_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandblite
    from wandblite.server.store import Store

    monkeypatch.delenv("WANDBLITE_SERVER", raising=False)
    store = Store.embedded(tmp_path)
    shared = hashlib.sha256(b"x").hexdigest()
    store.put_media(shared, [b"x"], "png", 1 << 20)
    for rid in ("a", "b"):
        store.apply_batch("local", rid, {"run": _meta(rid, []),
                                         "rows": [{"idx": 0, "row": {"_step": 0, "img": _image(shared)}, "final": True}]})
    api = wandblite.Api(home=tmp_path)
    run = api.run("local/a")
    run.name, run.tags = "renamed locally", ["here"]
    run.update()
    assert (api.run("local/a").name, api.run("local/a").tags) == ("renamed locally", ["here"])
    assert store.audit("local")["entries"][0]["action"] == "run.edited"
    api.run("local/a").delete()
    assert [r.id for r in api.runs("local", archived="include")] == ["b"]
    assert (tmp_path / "media" / shared[:2] / shared[2:4] / shared).exists()  # run b still names it
    api.run("local/b").delete()
    assert not (tmp_path / "media" / shared[:2] / shared[2:4] / shared).exists()
