"""Run ownership, with real writers and real ``wandblite sync`` processes, on SQLite and PostgreSQL:
two users syncing runs with the same id into one project: the second is refused with a 403 naming
the run and its owner, nothing of it is stored and the first run is intact; a project admin may
append to the owner's run; a key the owner granted may; nobody else may."""

from __future__ import annotations

from pathlib import Path

from tests.server.conftest import ServerProc, assert_same_history, cli, uniq, write_run
from tests.server.teams import uniq_user


def _sync(srv: ServerProc, runs: Path, key: str, home: Path) -> tuple[int, str]:
    r = cli("sync", str(runs), "--server", srv.url, "--api-key", key, home=home)
    return r.returncode, r.stdout + r.stderr


def _batches_by(store: object, project: str, user: str) -> list[dict[str, object]]:
    entries = store.audit(project)["entries"]  # type: ignore[attr-defined]
    return [e for e in entries if e["user"] == user and e["action"] in ("batch.stored", "run.created")]


def test_the_second_user_is_refused_and_nothing_of_theirs_is_stored(server: ServerProc, tmp_path: Path) -> None:
    from wandblite.server.store import Store

    assert server.db is not None
    store = Store(server.db)
    alice, bob, carol = uniq_user("alice"), uniq_user("bob"), uniq_user("carol")
    for name in (alice, bob, carol):
        store.create_user(name)
    _aid, alice_key = store.create_key("a", user=alice)
    bob_id, bob_key = store.create_key("b", user=bob)
    _cid, carol_key = store.create_key("c", user=carol)
    project, run_id = uniq("own"), "same"
    runs_a, runs_b = tmp_path / "alice", tmp_path / "bob"
    write_run(runs_a, project, run_id, 30)
    rc, out = _sync(server, runs_a, alice_key, tmp_path / "ha")
    assert rc == 0, out
    assert_same_history(server, project, run_id, next(runs_a.iterdir()))
    store.set_member(project, bob, "writer")
    store.set_member(project, carol, "admin")
    before = server.position(project, run_id)

    # Bob's own run, same id, more rows: refused, named, nothing stored.
    write_run(runs_b, project, run_id, 60)
    rc, out = _sync(server, runs_b, bob_key, tmp_path / "hb")
    assert rc != 0, out
    assert "403" in out or "forbidden" in out, out
    assert f"{project}/{run_id}" in out and alice in out, out
    assert server.position(project, run_id) == before
    assert_same_history(server, project, run_id, next(runs_a.iterdir()))
    assert _batches_by(store, project, bob) == []

    # Alice's run grows (a resume); Bob syncing her grown run is refused too.
    write_run(runs_a, project, run_id, 20)
    rc, out = _sync(server, runs_a, bob_key, tmp_path / "hb2")
    assert rc != 0 and alice in out, out
    assert server.position(project, run_id) == before

    # The project admin may append to it.
    rc, out = _sync(server, runs_a, carol_key, tmp_path / "hc")
    assert rc == 0, out
    assert_same_history(server, project, run_id, next(runs_a.iterdir()))
    assert _batches_by(store, project, carol)

    # A key the owner granted may: Alice grants Bob's key over HTTP.
    write_run(runs_a, project, run_id, 20)
    r = server.post(f"/api/v1/projects/{project}/runs/{run_id}/grants", {"key_id": bob_id}, key=alice_key)
    assert r.status_code == 200, r.text
    rc, out = _sync(server, runs_a, bob_key, tmp_path / "hb3")
    assert rc == 0, out
    assert_same_history(server, project, run_id, next(runs_a.iterdir()))
    assert server.history(project, run_id)[-1]["row"]["_step"] == 69
    grants = [e for e in store.audit(project)["entries"] if e["action"] == "grant.added"]
    assert [(e["user"], e["run_id"], e["detail"]) for e in grants] == [(alice, run_id, {"key_id": bob_id})]
