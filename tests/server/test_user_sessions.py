"""Dashboard sessions owned by a user, on a real server over SQLite and PostgreSQL: a password login
acts with the user's roles and ends when the user is disabled; a key's session keeps working; failed
logins answer alike for unknown users and wrong passwords, are audited and throttled per name in the
database; the dashboard's session may change members and visibility only with its page header;
runs carry their owner's name; migration 0008 keeps the sessions a store already had."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.server.conftest import ServerProc, fresh_postgres_database
from tests.server.teams import cast, uniq_user
from wandblite.server.app import PAGE_HEADER, SESSION_COOKIE
from wandblite.server.login import LOGIN_MAX_FAILURES

PASSWORD = "correct horse battery staple"
PAGE = {PAGE_HEADER[0]: PAGE_HEADER[1]}


def _login(srv: ServerProc, body: object, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).post(srv.url + "/api/v1/session", json=body, timeout=30)


def _logged_in(srv: ServerProc, user: str, password: str = PASSWORD) -> requests.Session:
    s = requests.Session()
    r = _login(srv, {"user": user, "password": password}, s)
    assert r.status_code == 200, r.text
    assert r.json()["authenticated"] is True
    assert SESSION_COOKIE in s.cookies
    return s


def test_a_password_session_acts_with_the_users_roles_and_ends_when_the_user_is_disabled(server: ServerProc) -> None:
    c = cast(server)
    for column in ("viewer", "outsider", "project admin"):
        c.store.set_password(c.users[column], PASSWORD)
    runs = f"{server.url}/api/v1/projects/{c.project}/runs"

    viewer = _logged_in(server, c.users["viewer"])
    me = viewer.get(server.url + f"/api/v1/me?project={c.project}", timeout=30).json()
    assert me == {"user": c.users["viewer"], "key_id": None, "scope": "write", "admin": False, "audit": False,
                  "role": "viewer", "manage": False}
    listed = viewer.get(runs, timeout=30)
    assert listed.status_code == 200
    assert [(r["id"], r["owner"]) for r in listed.json()["runs"]] == [(c.run_id, c.users["owner"])]
    assert viewer.get(f"{runs}/{c.run_id}", timeout=30).json()["owner"] == c.users["owner"]
    # A cookie never writes a batch, whatever header comes with it.
    assert viewer.post(f"{runs}/{c.run_id}/batch", json={}, headers=PAGE, timeout=30).status_code == 401

    outsider = _logged_in(server, c.users["outsider"])
    assert outsider.get(runs, timeout=30).status_code == 403  # a private project: not a member

    admin = _logged_in(server, c.users["project admin"])
    assert admin.get(server.url + f"/api/v1/me?project={c.project}", timeout=30).json()["manage"] is True
    # The page's header lets the session change members; without it the cookie is no credential.
    member = f"{server.url}/api/v1/projects/{c.project}/members/{c.users['outsider']}"
    assert admin.put(member, json={"role": "viewer"}, timeout=30).status_code == 401
    r = admin.put(member, json={"role": "viewer"}, headers=PAGE, timeout=30)
    assert r.status_code == 200, r.text
    assert {"user": c.users["outsider"], "role": "viewer"} in r.json()["members"]
    assert outsider.get(runs, timeout=30).status_code == 200  # the new role holds at once
    forbidden = viewer.put(f"{server.url}/api/v1/projects/{c.project}/visibility", json={"visibility": "public"},
                           headers=PAGE, timeout=30)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    changed = [e for e in c.store.audit(c.project)["entries"] if e["action"] == "member.added"
               and e["detail"]["user"] == c.users["outsider"]]
    assert [(e["user"], e["key_id"]) for e in changed] == [(c.users["project admin"], None)]
    opened = [e for e in c.store.audit()["entries"] if e["action"] == "session.opened"
              and e["user"] == c.users["viewer"]]
    assert opened and opened[0]["detail"] == {"method": "password"} and opened[0]["client"] == "127.0.0.1"

    assert c.store.disable_user(c.users["viewer"])
    assert viewer.get(server.url + "/api/v1/me", timeout=30).status_code == 401
    assert viewer.get(server.url + "/api/v1/session", timeout=30).json()["authenticated"] is False
    assert _login(server, {"user": c.users["viewer"], "password": PASSWORD}).status_code == 401

    # Logging out ends the session in the database.
    assert admin.delete(server.url + "/api/v1/session", timeout=30).status_code == 200
    again = requests.get(server.url + "/api/v1/me", cookies={SESSION_COOKIE: "wls_" + "x" * 43}, timeout=30)
    assert again.status_code == 401


def test_a_key_session_keeps_working_and_ends_with_its_key(server: ServerProc) -> None:
    c = cast(server)
    kid, key = c.store.create_key("browser", user=c.users["writer"], scope="read")
    s = requests.Session()
    assert _login(server, {"api_key": key}, s).status_code == 200
    me = s.get(server.url + "/api/v1/me", timeout=30).json()
    assert (me["user"], me["key_id"], me["scope"]) == (c.users["writer"], kid, "read")
    assert s.get(f"{server.url}/api/v1/projects/{c.project}/runs", timeout=30).status_code == 200
    # A read key's session reads but never changes a project, even with the page's header.
    r = s.put(f"{server.url}/api/v1/projects/{c.project}/visibility", json={"visibility": "public"}, headers=PAGE,
              timeout=30)
    assert r.status_code == 403
    c.store.revoke_key(str(kid))
    assert s.get(server.url + "/api/v1/me", timeout=30).status_code == 401


def test_failed_logins_answer_alike_are_audited_and_throttled_per_name(server: ServerProc) -> None:
    c = cast(server)
    user = c.users["writer"]
    c.store.set_password(user, PASSWORD)
    unknown = uniq_user("nobody")
    wrong = _login(server, {"user": user, "password": "not it"})
    missing = _login(server, {"user": unknown, "password": "not it"})
    nopass = _login(server, {"user": c.users["viewer"], "password": "not it"})  # a user without a password
    invalid = _login(server, {"user": "<script>alert(1)</script>", "password": "x"})
    for r in (wrong, missing, nopass, invalid):
        assert r.status_code == 401
        assert r.json() == wrong.json()
    assert "password" in wrong.json()["error"]["message"]
    bad_key = _login(server, {"api_key": "wl_" + "y" * 43})
    assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "unauthorized"

    failed = [e for e in c.store.audit()["entries"] if e["action"] == "login.failed"]
    tried = {e["detail"].get("user") for e in failed}
    assert {user, unknown, "<script>alert(1)</script>"} <= tried
    assert all(e["user"] is None and e["client"] == "127.0.0.1" for e in failed)
    assert not any("not it" in str(e["detail"]) for e in failed)  # never the password
    assert any(e["detail"] == {"method": "key"} for e in failed)

    # The throttle: LOGIN_MAX_FAILURES failures of one name, then 429 even for the right password;
    # an unknown name is throttled the same way (the 429 says nothing about who exists).
    for name in (user, unknown):
        for _ in range(LOGIN_MAX_FAILURES - 1):  # one failure each above
            assert _login(server, {"user": name, "password": "still not it"}).status_code == 401
        for pw in ("still not it", PASSWORD):
            r = _login(server, {"user": name, "password": pw})
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "too_many_attempts"
            assert 1 <= int(r.headers["Retry-After"]) <= 901
    # Another name is not held back; a success clears its count.
    c.store.set_password(c.users["viewer"], PASSWORD)
    assert _login(server, {"user": c.users["viewer"], "password": PASSWORD}).status_code == 200
    from wandblite.server.schema import login_failures

    with c.store.read_engine.connect() as conn:
        counted = dict(conn.execute(sa.select(login_failures.c.name, login_failures.c.failures)).all())
    assert counted[user] == LOGIN_MAX_FAILURES and counted[unknown] == LOGIN_MAX_FAILURES
    assert c.users["viewer"] not in counted and "<script>alert(1)</script>" not in counted


def test_login_refuses_bodies_of_neither_shape_and_non_json(server: ServerProc) -> None:
    url = server.url + "/api/v1/session"
    for body in ({"user": "a"}, {"password": "a"}, {"api_key": "wl_x", "user": "a", "password": "b"}, [], "x",
                 {"user": "a", "password": "b" * 5000}):
        r = requests.post(url, json=body, timeout=30)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "bad_request"
    r = requests.post(url, data="user=a&password=b", headers={"Content-Type": "application/x-www-form-urlencoded"},
                      timeout=30)
    assert r.status_code == 415


def test_the_password_check_costs_the_same_for_unknown_and_known_users(tmp_path: Path) -> None:
    """No timing oracle: an unknown user costs an argon2 verify as a wrong password does."""
    from wandblite.server.store import Store

    store = Store(f"sqlite:///{tmp_path / 's.db'}", media_dir=tmp_path / "m")
    store.create_user("known", password=PASSWORD)

    def cost(name: str) -> float:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            assert not store.check_password(name, "wrong")
            best = min(best, time.perf_counter() - t)
        return best

    known, unknown = cost("known"), cost("unknown-user")
    # Both spend argon2's work (milliseconds), not a dictionary miss (microseconds).
    assert unknown > known / 4, (known, unknown)
    store.close()


def _old_sessions_store(url: str, tmp_media: Path) -> str:
    """A store as 0007 left it: the old ``sessions`` table (key_id NOT NULL, no user_id) holding a
    key's session; returns the session token."""
    from wandblite.server import auth, migrations
    from wandblite.server.store import Store

    before = migrations.MIGRATIONS[:]
    migrations.MIGRATIONS[:] = [m for m in before if m[0] != "0008_user_sessions"]
    try:
        s = Store(url, media_dir=tmp_media)
    finally:
        migrations.MIGRATIONS[:] = before
    with s.write_engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE sessions"))
        conn.execute(sa.text("CREATE TABLE sessions (token_hash VARCHAR(64) PRIMARY KEY, key_id INTEGER NOT NULL "
                             "REFERENCES api_keys (id), created_at FLOAT NOT NULL, expires_at FLOAT NOT NULL)"))
    kid, _key = s.create_key("old")
    with s.write_engine.begin() as conn:
        now = time.time()
        token = "wls_old_session_token"
        conn.execute(sa.text("INSERT INTO sessions VALUES (:h, :k, :c, :e)"),
                     {"h": auth._hash(token), "k": kid, "c": now, "e": now + 3600})
    s.close()
    return token


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_migration_0008_keeps_open_sessions_and_allows_user_sessions(kind: str, tmp_path: Path) -> None:
    from wandblite.server.store import Store

    def check(url: str) -> None:
        token = _old_sessions_store(url, tmp_path / "m")
        s = Store(url, media_dir=tmp_path / "m")
        assert "0008_user_sessions" in s.applied_migrations()
        who = s.principal_of_session(token)
        assert who is not None and who.user == "admin" and who.key_id is not None
        cols = {c["name"]: c for c in sa.inspect(s.write_engine).get_columns("sessions")}
        assert cols["key_id"]["nullable"] and "user_id" in cols
        s.create_user("newcomer", password=PASSWORD)
        opened = s.open_session({"user": "newcomer", "password": PASSWORD}, "127.0.0.1")
        assert s.principal_of_session(opened).user == "newcomer"  # type: ignore[union-attr]
        assert s.migrate() == []
        s.close()

    if kind == "postgres":
        with fresh_postgres_database("wl_0008") as url:
            check(url)
    else:
        check(f"sqlite:///{tmp_path / 'old.db'}")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_runs_table_names_owners_with_one_query_however_many_runs(kind: str, tmp_path: Path) -> None:
    """The owner comes by a join: listing 40 runs of 4 owners costs the statements listing 1 does."""
    from wandblite.server import runs_query
    from wandblite.server.auth import Principal
    from wandblite.server.store import Store

    def check(url: str) -> None:
        s = Store(url, media_dir=tmp_path / "m")
        names = [uniq_user(f"o{i}") for i in range(4)]
        project = "owners" + uniq_user("p").replace("-", "")
        for i, name in enumerate(names):
            uid = s.create_user(name)
            who = Principal(uid, name, None, "write", False)
            if i:
                s.set_member(project, name, "writer")
            for j in range(10 if i else 1):
                s.apply_batch(project, f"r{i}-{j}", {}, who)

        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        sa.event.listen(s.read_engine, "before_cursor_execute", count)
        try:
            one = runs_query.list_runs(s, project, filters={"id": "r0-0"})
            n_one = len(statements)
            statements.clear()
            every = runs_query.list_runs(s, project, filters={"state": {"$ne": "no such state"}})
            n_every = len(statements)
            statements.clear()
            first = runs_query.list_runs(s, project, order="created_at", limit=1)  # the page-by-column path
            n_first = len(statements)
            statements.clear()
            page = runs_query.list_runs(s, project, order="created_at")
            n_page = len(statements)
        finally:
            sa.event.remove(s.read_engine, "before_cursor_execute", count)
        assert [r["owner"] for r in one["runs"]] == [names[0]]
        assert every["total"] == 31
        assert sorted({r["owner"] for r in every["runs"]}) == sorted(names)
        assert n_every == n_one, statements
        assert [r["owner"] for r in first["runs"]] == [names[0]]
        assert sorted({r["owner"] for r in page["runs"]}) == sorted(names)
        assert n_page == n_first, statements
        s.close()

    if kind == "postgres":
        with fresh_postgres_database("wl_owner") as url:
            check(url)
    else:
        check(f"sqlite:///{tmp_path / 'owners.db'}")
