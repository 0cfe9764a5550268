"""The audit log: every write is recorded with its user, key id, time, client address and what
changed; ``wandblite server audit [--project] [--json]`` prints it; ``GET /api/v1/audit`` answers it
to the server admin (all) and to a project's admins (their project's part), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.server.conftest import ServerProc, cli
from tests.server.teams import uniq_user


def test_every_write_is_recorded_with_who_when_where_and_what(server: ServerProc, tmp_path: Path) -> None:
    from wandblite.server.store import Store

    assert server.db is not None
    store = Store(server.db)
    t0 = time.time()
    db = ["--db", server.db]
    alice, bob = uniq_user("alice"), uniq_user("bob")
    assert cli("server", "users", "create", alice, *db, home=tmp_path).returncode == 0
    assert cli("server", "users", "create", bob, *db, home=tmp_path).returncode == 0
    r = cli("server", "keys", "create", "--user", alice, "--name", "laptop", *db, home=tmp_path)
    assert r.returncode == 0, r.stderr
    alice_key = r.stdout.strip()
    alice_key_id = next(k["id"] for k in store.list_keys(alice))
    project = f"audit{uniq_user('p').replace('-', '')}"
    base = f"/api/v1/projects/{project}/runs/r1"
    rows = [{"idx": i, "row": {"loss": i / 2, "_step": i}, "final": True} for i in range(3)]
    assert server.post(base + "/batch", {"rows": rows}, key=alice_key).status_code == 200
    assert server.post(base + "/batch", {"rows": rows}, key=alice_key).status_code == 200  # a retry: stores nothing
    assert server.post(base + "/batch", {"console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "hi"}]},
                       key=alice_key).status_code == 200
    assert cli("server", "members", "set", project, bob, "viewer", *db, home=tmp_path).returncode == 0
    assert cli("server", "members", "set", project, bob, "writer", *db, home=tmp_path).returncode == 0
    assert cli("server", "visibility", project, "private", *db, home=tmp_path).returncode == 0
    assert cli("server", "keys", "revoke", str(alice_key_id), *db, home=tmp_path).returncode == 0
    assert cli("server", "users", "disable", bob, *db, home=tmp_path).returncode == 0

    out = cli("server", "audit", "--project", project, "--json", *db, home=tmp_path)
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()][::-1]  # oldest first
    assert [(e["action"], e["user"], e["key_id"], e["client"], e["run_id"], e["detail"]) for e in got] == [
        ("member.added", alice, alice_key_id, "127.0.0.1", None, {"user": alice, "role": "admin", "new_project": True}),
        ("run.created", alice, alice_key_id, "127.0.0.1", "r1", {"owner": alice}),
        ("batch.stored", alice, alice_key_id, "127.0.0.1", "r1", {"rows": [0, 3], "run": []}),
        ("batch.stored", alice, alice_key_id, "127.0.0.1", "r1", {"console": [0, 1], "run": []}),
        ("member.added", None, None, "cli", None, {"user": bob, "role": "viewer"}),
        ("role.changed", None, None, "cli", None, {"user": bob, "from": "viewer", "to": "writer"}),
        ("visibility.changed", None, None, "cli", None, {"from": "internal", "to": "private"}),
    ]
    assert all(t0 - 1 <= e["ts"] <= time.time() + 1 for e in got)
    everything = [e for e in store.audit(limit=10_000)["entries"] if e["ts"] >= t0 - 1]
    mine = [(e["action"], e["detail"]) for e in everything if e["client"] == "cli"]
    assert ("user.created", {"user": alice, "admin": False, "password": False}) in mine
    assert ("key.created", {"key_id": alice_key_id, "user": alice, "scope": "write", "name": "laptop",
                            "expires_at": None}) in mine
    assert ("key.revoked", {"key_id": alice_key_id}) in mine
    assert ("user.disabled", {"user": bob}) in mine
    text = cli("server", "audit", "--project", project, *db, home=tmp_path).stdout.splitlines()
    assert len(text) == 7 and "role.changed" in text[1] and alice in text[-1] and "127.0.0.1" in text[-1]


def test_the_audit_endpoint_answers_admins_only_and_pages(server: ServerProc) -> None:
    from wandblite.server.store import Store

    assert server.db is not None
    store = Store(server.db)
    owner, other = uniq_user("owner"), uniq_user("other")
    store.create_user(owner)
    store.create_user(other)
    _oid, owner_key = store.create_key(user=owner)
    _xid, other_key = store.create_key(user=other)
    _aid, admin_key = store.create_key(scope="admin")
    project = f"auditapi{uniq_user('p').replace('-', '')}"
    for i in range(5):
        assert server.post(f"/api/v1/projects/{project}/runs/r{i}/batch", {}, key=owner_key).status_code == 200
    r = server.get(f"/api/v1/audit?project={project}&limit=4", key=owner_key)  # the creator is its admin
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["action"] for e in page["entries"]] == ["run.created"] * 4 and page["next"] is not None
    rest = server.get(f"/api/v1/audit?project={project}&limit=4&before={page['next']}", key=owner_key).json()
    assert [e["run_id"] for e in page["entries"] + rest["entries"]] == ["r4", "r3", "r2", "r1", "r0", None]
    assert rest["next"] is None
    # beyond any id (and PostgreSQL's 32-bit integer, which schemathesis found as a 500): every entry
    beyond = server.get(f"/api/v1/audit?project={project}&limit=10&before={1 << 40}", key=owner_key)
    assert beyond.status_code == 200, beyond.text
    assert [e["run_id"] for e in beyond.json()["entries"]] == ["r4", "r3", "r2", "r1", "r0", None]
    assert server.get(f"/api/v1/audit?project={project}", key=other_key).status_code == 403
    assert server.get("/api/v1/audit", key=owner_key).status_code == 403
    assert server.get("/api/v1/audit", key=None).status_code == 401
    assert server.get("/api/v1/audit?limit=0", key=admin_key).status_code == 400
    whole = server.get("/api/v1/audit?limit=50", key=admin_key).json()["entries"]
    assert any(e["project"] == project for e in whole)
