"""Which run names which blob (``media_refs``, migration ``0012_media_refs``) and who may fetch a blob
(``access.check_media_read``), on SQLite and PostgreSQL: a public project's images to the anonymous,
a private one's to its members only (404 to another user, 401 to the anonymous), an internal one's to
every user; the references follow a moved run and go with a deleted one; the migration builds the
index for a store made before it, resumably, the same as ingest would have."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.server.conftest import ServerProc, backend_store
from tests.server.teams import cast


def _put(srv: ServerProc, data: bytes, key: str | None, ext: str = "png") -> str:
    sha = hashlib.sha256(data).hexdigest()
    r = requests.put(f"{srv.url}/api/v1/media/{sha}?ext={ext}", data=data, headers=srv.h(key), timeout=30)
    assert r.status_code == 200, r.text
    return sha


def _image(sha: str) -> dict[str, Any]:
    return {"_type": "image-file", "path": f"media/images/img_0_{sha[:20]}.png", "sha256": sha, "size": 3,
            "format": "png", "width": 1, "height": 1}


def _fetch(srv: ServerProc, sha: str, key: str | None, mesh: bool = False) -> requests.Response:
    return srv.get(f"/api/v1/media/{sha}" + ("/mesh" if mesh else ""), key=key)


def _call(srv: ServerProc, method: str, path: str, body: Any, key: str | None) -> requests.Response:
    return requests.request(method, srv.url + path, data=json.dumps(body).encode(), timeout=30,
                            headers={**srv.h(key), "Content-Type": "application/json"})


def test_a_blob_is_served_to_whoever_may_read_a_project_naming_it(server: ServerProc) -> None:
    c = cast(server)  # private project P, run R by "owner"; a key per kind of caller
    owner, outsider, viewer = c.keys["owner"], c.keys["outsider"], c.keys["viewer"]
    data = b"\x89PNG" + os.urandom(32)
    sha = _put(server, data, owner)
    run = f"/api/v1/projects/{c.project}/runs/{c.run_id}/batch"
    r = server.post(run, {"rows": [{"idx": 1, "row": {"img": _image(sha), "_step": 1}, "final": True}]}, key=owner)
    assert r.status_code == 200, r.text

    # Private: its members (and the server admin) only; another user learns nothing (404, as for no blob).
    assert _fetch(server, sha, None).status_code == 401
    assert _fetch(server, sha, None, mesh=True).status_code == 401
    assert _fetch(server, sha, outsider).status_code == 404
    assert _fetch(server, sha, outsider, mesh=True).status_code == 404
    for who in ("viewer", "read key", "owner", "server admin"):
        got = _fetch(server, sha, c.keys[who])
        assert got.status_code == 200 and got.content == data, (who, got.status_code)
    assert _fetch(server, sha, c.keys["bad key"]).status_code == 401
    # Internal: every user, still not the anonymous.
    c.store.set_visibility(c.project, "internal")
    assert _fetch(server, sha, None).status_code == 401
    assert _fetch(server, sha, outsider).content == data
    # Public: anyone, the bytes as stored; the mesh route lets the anonymous through to its own answer.
    c.store.set_visibility(c.project, "public")
    got = _fetch(server, sha, None)
    assert got.status_code == 200 and got.content == data
    assert _fetch(server, sha, None, mesh=True).json()["error"]["code"] == "bad_media"  # a png is no mesh
    c.store.set_visibility(c.project, "private")
    assert _fetch(server, sha, None).status_code == 401

    # A saved file and an artifact version's file are named by the run that stored them.
    fdata, adata = os.urandom(40), os.urandom(41)
    fsha, asha = _put(server, fdata, owner, "txt"), _put(server, adata, owner, "bin")
    from wandblite.server.wire import artifact_digest

    entries = {"w.bin": {"sha256": asha, "size": len(adata)}}
    r = server.post(run, {"files": [{"idx": 0, "name": "notes.txt", "sha256": fsha, "size": len(fdata)}],
                          "artifacts": [{"idx": 0, "name": "m", "type": "model", "version": 0, "aliases": ["latest"],
                                         "entries": entries, "digest": artifact_digest(entries)}]}, key=owner)
    assert r.status_code == 200, r.text
    for s, d in ((fsha, fdata), (asha, adata)):
        assert _fetch(server, s, outsider).status_code == 404
        assert _fetch(server, s, viewer).content == d

    # A blob no run names yet (uploaded before its batch, or inside a table's blob): as before the index.
    loose = _put(server, os.urandom(20), owner)
    assert _fetch(server, loose, None).status_code == 401
    assert _fetch(server, loose, outsider).status_code == 200

    # The same blob named by a private run and a public one: the public one opens it.
    pub = f"pub{uuid.uuid4().hex[:10]}"
    r = server.post(f"/api/v1/projects/{pub}/runs/p1/batch",
                    {"rows": [{"idx": 0, "row": {"img": _image(sha), "_step": 0}, "final": True}]}, key=owner)
    assert r.status_code == 200, r.text
    assert _fetch(server, sha, None).status_code == 401  # the new project is internal
    c.store.set_visibility(pub, "public")
    assert _fetch(server, sha, None).content == data
    c.store.set_visibility(pub, "private")  # the owner is its admin: still one project the viewer reads
    assert _fetch(server, sha, viewer).content == data

    # References follow a moved run: R moves into the public project, its file goes with it.
    c.store.set_visibility(pub, "public")
    assert _fetch(server, fsha, None).status_code == 401
    r = _call(server, "POST", f"/api/v1/projects/{c.project}/runs/{c.run_id}/move", {"project": pub}, owner)
    assert r.status_code == 200, r.text
    assert _fetch(server, fsha, None).content == fdata
    assert _fetch(server, asha, None).content == adata


def _refs(store: Any) -> set[tuple[str, str, str]]:
    from wandblite.server.schema import media_refs, projects, runs

    q = (sa.select(projects.c.name, runs.c.run_id, media_refs.c.sha256)
         .select_from(media_refs.join(runs, runs.c.id == media_refs.c.run)
                      .join(projects, projects.c.id == runs.c.project_id)))
    with store.read_engine.connect() as conn:
        return {(str(p), str(r), str(s)) for p, r, s in conn.execute(q)}


def test_deleting_a_run_drops_its_references_and_only_unnamed_blobs(server: ServerProc) -> None:
    from wandblite.server.store import Store

    p = f"mrdel{uuid.uuid4().hex[:10]}"
    shared, own = _put(server, os.urandom(30), ""), _put(server, os.urandom(31), "")
    for run_id, shas in (("a", (shared, own)), ("b", (shared,))):
        row = {f"img{i}": _image(s) for i, s in enumerate(shas)}
        r = server.post(f"/api/v1/projects/{p}/runs/{run_id}/batch",
                        {"rows": [{"idx": 0, "row": {**row, "_step": 0}, "final": True}]})
        assert r.status_code == 200, r.text
    assert server.db is not None
    store = Store(server.db, migrate=False)
    try:
        assert {x for x in _refs(store) if x[0] == p} == {(p, "a", shared), (p, "a", own), (p, "b", shared)}
        r = _call(server, "DELETE", f"/api/v1/projects/{p}/runs/a", None, "")
        assert r.status_code == 200, r.text
        assert r.json()["blobs_deleted"] == [own]
        assert {x for x in _refs(store) if x[0] == p} == {(p, "b", shared)}
        assert _fetch(server, own, "").status_code == 404
        assert _fetch(server, shared, "").status_code == 200
        r = _call(server, "DELETE", f"/api/v1/projects/{p}/runs/b", None, "")
        assert r.json()["blobs_deleted"] == [shared]
        assert not {x for x in _refs(store) if x[0] == p}
    finally:
        store.close()


def _old_store(store: Any) -> None:
    """Turn the store back into the layout before ``0012_media_refs``: no ``media_refs``, the step forgotten."""
    from wandblite.server.schema import schema_migrations

    with store.write_engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE media_refs"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.name == "0012_media_refs"))


@pytest.mark.parametrize("interrupted", [False, True])
def test_the_migration_indexes_what_a_store_made_before_it_holds(backend: str, tmp_path: Path,
                                                                 interrupted: bool) -> None:
    from wandblite.server.schema import media_refs, runs
    from wandblite.server.store import Store
    from wandblite.server.wire import artifact_digest

    with backend_store(backend, tmp_path, "wl_mrefs") as store:
        def put(data: bytes) -> str:
            sha = hashlib.sha256(data).hexdigest()
            store.put_media(sha, [data], "png", 1 << 20)
            return sha

        img, img2, pend, f, a = (put(os.urandom(16 + i)) for i in range(5))
        rows: list[dict[str, Any]] = [{"idx": i, "row": {"loss": 0.5, "_step": i}, "final": True} for i in range(3000)]
        rows[5]["row"]["img"] = _image(img)
        rows[2999]["row"]["img"] = _image(img2)  # in another chunk than the first
        store.apply_batch("old", "media", {"rows": rows})
        store.apply_batch("old", "media", {"rows": [{"idx": 3000, "row": {"p": _image(pend), "_step": 3000},
                                                     "final": False}]})  # a crashed run's provisional row
        store.apply_batch("old", "files", {"files": [{"idx": 0, "name": "x.txt", "sha256": f, "size": 18}]})
        entries = {"w.bin": {"sha256": a, "size": 20}, "far": {"ref": "s3://b/k", "sha256": "e" * 64, "size": 1}}
        store.apply_batch("old", "art", {"artifacts": [{"idx": 0, "name": "m", "type": "model", "version": 0,
                                                        "aliases": [], "entries": entries,
                                                        "digest": artifact_digest(entries)}]})
        store.apply_batch("old", "plain", {"rows": [{"idx": 0, "row": {"loss": 1.0, "_step": 0}, "final": True}]})
        at_ingest = _refs(store)
        assert at_ingest == {("old", "media", img), ("old", "media", img2), ("old", "media", pend),
                             ("old", "files", f), ("old", "art", a)}
        _old_store(store)
        if interrupted:
            # A server killed half-way: the table made and one run done, the step not recorded.
            with store.write_engine.begin() as conn:
                media_refs.create(conn)
                pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == "files")).scalar_one()
                conn.execute(media_refs.insert().values(run=pk, sha256=f))
        url = str(store.write_engine.url.render_as_string(hide_password=False))
        said: list[str] = []
        from wandblite.server.migrations import migrate

        assert migrate(store.write_engine, said.append) == ["0012_media_refs"]
        n = 2 if interrupted else 3  # the runs naming something, less the one done before the kill
        assert said and said[-1].endswith(f"run {n}/{n}")
        assert _refs(store) == at_ingest
        again = Store(url, media_dir=tmp_path / "media")  # a later start applies nothing and changes nothing
        try:
            assert _refs(again) == at_ingest
        finally:
            again.close()
