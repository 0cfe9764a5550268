"""Every route x every kind of caller answers as the role matrix of docs/roles.md says, on SQLite
and PostgreSQL; visibility opens reads (internal: every user, public: anyone); keys stop passing
when revoked, expired or their user disabled; a new project belongs to its creator."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import requests
import sqlalchemy as sa

from tests.server.conftest import ServerProc
from tests.server.teams import COLUMNS, cast, role_matrix, uniq_user

_ZERO_SHA = "0" * 64


def _bodies(c: Any, column: str, dummy: str) -> dict[str, Any]:
    return {
        f"/runs/{c.run_id}": {"notes": f"edited by {column}"},
        "/move": {"project": c.project + "q"},
        "/batch": {},
        "/grants": {"key_id": c.key_ids["viewer"]},
        "/media/missing": {"sha256": [_ZERO_SHA]},
        f"/members/{dummy}": {"role": "viewer"},
        "/visibility": {"visibility": "private"},
        "/workspace/user": {"version": 1, "charts": {"smoothing": 0.5}},
        "/workspace/default": {"version": 1, "selection": [c.run_id]},
        "/workspace/views": {"version": 1},
    }


def _call(srv: ServerProc, method: str, path: str, key: str | None, body: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if method == "PUT" and "/media/" in path:
        return requests.put(srv.url + path, data=b"not the blob", headers=headers, timeout=30)
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    return requests.request(method, srv.url + path, data=data, headers=headers, timeout=30)


def _own_run(srv: ServerProc, c: Any, column: str) -> str:
    """A fresh run of P made by the owner: the D of the matrix (a delete or a move consumes it)."""
    run_id = f"d-{column.replace(' ', '')}-{uuid.uuid4().hex[:6]}"
    r = srv.post(f"/api/v1/projects/{c.project}/runs/{run_id}/batch",
                 {"rows": [{"idx": 0, "row": {"loss": 2.0, "_step": 0}, "final": True}]}, key=c.keys["owner"])
    assert r.status_code == 200, r.text
    return run_id


def _move_target(srv: ServerProc, c: Any) -> None:
    """Project P + "q", where every caller has the role it has in P (the target of the matrix's moves)."""
    target = c.project + "q"
    r = srv.post(f"/api/v1/projects/{target}/runs/seed/batch", {}, key=c.keys["server admin"])
    assert r.status_code == 200, r.text
    c.store.set_visibility(target, "private")
    for column, role in (("viewer", "viewer"), ("writer", "writer"), ("project admin", "admin"),
                         ("read key", "writer"), ("owner", "writer")):
        c.store.set_member(target, c.users[column], role)


def test_every_route_answers_every_role_as_the_matrix_says(server: ServerProc) -> None:
    c = cast(server)
    dummy = uniq_user("dummy")
    c.store.create_user(dummy)
    _move_target(server, c)
    wrong: list[str] = []
    rows = role_matrix()
    assert len(rows) >= 30
    for method, template, expected in rows:
        for column in COLUMNS:
            path = (template.replace("/P/", f"/{c.project}/").replace("/R/", f"/{c.run_id}/")
                    .replace("/R?", f"/{c.run_id}?").replace("/dummy", f"/{dummy}")
                    .replace("/NEW/", f"/new-{column.replace(' ', '')}/").replace("SHA", _ZERO_SHA)
                    .replace("=P", f"={c.project}").replace("runs=R", f"runs={c.run_id}"))
            if path.endswith("/R"):
                path = path[:-2] + f"/{c.run_id}"
            if "/runs/D" in path:
                path = path.replace("/runs/D", f"/runs/{_own_run(server, c, column)}")
            body = next((b for suffix, b in _bodies(c, column, dummy).items() if path.endswith(suffix)), None)
            if method in ("POST", "PUT", "PATCH") and body is None and "/media/" not in path:
                raise AssertionError(f"no body for {method} {path}")
            r = _call(server, method, path, c.keys[column], body)
            want = expected[column]
            ok = 200 <= r.status_code < 300 if want == "2xx" else r.status_code == int(want)
            if not ok:
                wrong.append(f"{method} {template} as {column}: {r.status_code} (want {want}) {r.text[:160]}")
            if r.status_code >= 400:
                err = r.json()["error"]  # the one error shape
                assert set(err) >= {"code", "message"}
    assert not wrong, "\n".join(wrong)


def test_visibility_opens_reads_and_never_writes(server: ServerProc) -> None:
    c = cast(server, visibility="internal")
    runs = f"/api/v1/projects/{c.project}/runs"
    assert server.get(runs, key=c.keys["outsider"]).status_code == 200
    assert server.get(runs, key=None).status_code == 401
    names = [p["name"] for p in server.get("/api/v1/projects", key=c.keys["outsider"]).json()["projects"]]
    assert c.project in names
    assert server.post(f"{runs}/o1/batch", {}, key=c.keys["outsider"]).status_code == 403
    c.store.set_visibility(c.project, "public")
    assert server.get(runs, key=None).status_code == 200
    assert server.get(f"{runs}/{c.run_id}/history", key=None).status_code == 200
    assert server.post(f"{runs}/a1/batch", {}, key=None).status_code == 401
    c.store.set_visibility(c.project, "private")
    assert server.get(runs, key=None).status_code == 401
    assert server.get(runs, key=c.keys["outsider"]).status_code == 403
    names = [p["name"] for p in server.get("/api/v1/projects", key=c.keys["outsider"]).json()["projects"]]
    assert c.project not in names
    names = [p["name"] for p in server.get("/api/v1/projects", key=c.keys["viewer"]).json()["projects"]]
    assert c.project in names


def test_keys_stop_passing_when_revoked_expired_or_their_user_disabled(server: ServerProc) -> None:
    c = cast(server)
    store = c.store
    me = "/api/v1/me"
    assert server.get(me, key=c.keys["viewer"]).json()["user"] == c.users["viewer"]
    kid, second = store.create_key("second", user=c.users["viewer"], scope="read")
    assert server.get(me, key=second).json() == {"user": c.users["viewer"], "key_id": kid, "scope": "read",
                                                 "admin": False, "audit": False}
    assert store.revoke_key(str(kid)) == 1
    assert server.get(me, key=second).status_code == 401
    assert server.get(me, key=c.keys["viewer"]).status_code == 200  # the user's other key still passes
    _kid, short = store.create_key("short", user=c.users["viewer"], expires_at=time.time() + 1.5)
    assert server.get(me, key=short).status_code == 200
    deadline = time.time() + 30
    while server.get(me, key=short).status_code == 200:
        assert time.time() < deadline, "an expired key still passes"
        time.sleep(0.5)
    assert server.get(me, key=short).status_code == 401
    assert store.disable_user(c.users["viewer"])
    assert server.get(me, key=c.keys["viewer"]).status_code == 401
    assert [u["disabled_at"] is not None for u in store.list_users() if u["name"] == c.users["viewer"]] == [True]


def test_a_project_made_by_sync_belongs_to_its_creator(server: ServerProc) -> None:
    c = cast(server)
    audit = c.store.audit(c.project)["entries"]
    made = [e for e in audit if e["action"] == "member.added" and e["detail"].get("new_project")]
    assert [(e["user"], e["detail"]["role"]) for e in made] == [(c.users["owner"], "admin")]
    project = c.project + "new"
    r = server.post(f"/api/v1/projects/{project}/runs/x/batch", {}, key=c.keys["outsider"])
    assert r.status_code == 200, r.text
    info = c.store.list_members(project)
    assert info == {"project": project, "visibility": "internal",
                    "members": [{"user": c.users["outsider"], "role": "admin"}]}
    from wandblite.server.schema import runs, users

    with c.store.read_engine.connect() as conn:
        owner = conn.execute(sa.select(users.c.name).join(runs, runs.c.owner_id == users.c.id)
                             .where(runs.c.run_id == "x")).scalars().all()
    assert c.users["outsider"] in owner
