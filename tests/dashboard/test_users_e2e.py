"""The dashboard's users, end to end in a real headless Chromium against a real private server (SQLite
and PostgreSQL): a user logs in with a name and password and sees their name in the header, then logs
out; a project admin changes a member's role, adds and removes a member and changes the visibility
in the settings page, and the API reflects each change; a viewer sees the page without a control;
the runs table and the run overview show the run's owner; the server admin's audit page lists the
changes, and a hostile name tried at the login shows there as text, never as markup."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.dashboard.conftest import database, shot
from tests.server.conftest import ServerProc
from wandblite.server.app import SESSION_COOKIE

PASSWORD = "a long dashboard password"
HOSTILE = '<img src=x onerror="window.__xss=1">'


@dataclass
class Team:
    srv: ServerProc
    store: Any
    project: str
    run_id: str
    users: dict[str, str]  # role in the story -> user name


@pytest.fixture(scope="module")
def team(dash_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    from wandblite.server.store import Store

    tmp = tmp_path_factory.mktemp(f"users-{dash_backend}")
    with database(dash_backend, tmp / "store.db") as url:
        srv = ServerProc(url, tmp / "media", tmp / "home").start()
        # The server gzips plotly.js on its first request: done here, not inside a page load's timeout
        # on a busy machine.
        warm = requests.get(srv.url + "/static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"}, timeout=300)
        assert warm.status_code == 200
        store = Store(url)
        try:
            tag = uuid.uuid4().hex[:6]
            users = {k: f"{k}.{tag}@lab-x" for k in ("alice", "bob", "carol", "dave")}
            for name in users.values():
                store.create_user(name, password=PASSWORD)
            store.set_password("admin", PASSWORD)
            _kid, alice_key = store.create_key("alice", user=users["alice"])
            project, run_id = f"team{tag}", "r1"
            r = srv.post(f"/api/v1/projects/{project}/runs/{run_id}/batch",
                         {"rows": [{"idx": 0, "row": {"loss": 1.0, "_step": 0}, "final": True}]}, key=alice_key)
            assert r.status_code == 200, r.text  # alice's first batch makes the project: she is its admin
            store.set_visibility(project, "private")
            store.set_member(project, users["bob"], "viewer")
            store.set_member(project, users["dave"], "viewer")
            yield Team(srv, store, project, run_id, users)
        finally:
            store.close()
            srv.stop()


def _log_in(page: Any, t: Team, user: str, password: str = PASSWORD) -> None:
    page.goto(t.srv.url + "/")
    page.wait_for_selector("#login-form")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")


def _until(cond: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_log_in_with_a_password_see_the_name_and_the_owner_then_log_out(page: Any, team: Team) -> None:
    alice = team.users["alice"]
    _log_in(page, team, alice, "not the password")
    page.wait_for_function("() => document.querySelector('#login-form [role=alert]').textContent.length > 0")
    assert "Wrong user name or password" in page.locator("#login-form [role=alert]").text_content()
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("h1:has-text('Projects')")
    assert page.locator("#whoami").text_content() == alice
    assert page.locator("#whoami").is_visible() and page.locator("#logout").is_visible()
    assert page.locator("#audit-link").is_hidden()  # alice is not the server's admin
    shot(page, "30-user-logged-in")

    page.goto(f"{team.srv.url}/#/p/{team.project}")
    page.wait_for_selector("#runs-table")
    assert page.locator(f"#runs-table tr[data-run='{team.run_id}'] td.owner").text_content() == alice
    assert "owner" in page.locator("#runs-table thead").text_content()
    shot(page, "31-runs-with-owner")
    page.goto(f"{team.srv.url}/#/p/{team.project}/r/{team.run_id}/overview")
    page.wait_for_selector("#run-meta")
    owner_row = page.locator("#run-meta tr", has_text="owner")
    assert owner_row.locator("td").text_content() == alice

    page.click("#logout")
    page.wait_for_selector("#login-form")
    assert page.locator("#whoami").is_hidden()
    cookie = [c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    if cookie:  # whatever the browser kept, the server has forgotten the session
        r = requests.get(team.srv.url + "/api/v1/me", cookies={SESSION_COOKIE: cookie[0]}, timeout=30)
        assert r.status_code == 401
    page.reload()
    page.wait_for_selector("#login-form")


def test_an_admin_changes_members_and_visibility_and_the_api_reflects_it(page: Any, team: Team) -> None:
    u = team.users
    _log_in(page, team, u["alice"])
    page.wait_for_selector("h1:has-text('Projects')")
    page.goto(f"{team.srv.url}/#/p/{team.project}/settings")
    page.wait_for_selector("#members-table")
    assert page.locator("#project-settings").get_attribute("data-manage") == "true"

    def role(user: str) -> str | None:
        return next((m["role"] for m in team.store.list_members(team.project)["members"] if m["user"] == user), None)

    page.select_option(f"tr[data-user='{u['dave']}'] select", "writer")
    _until(lambda: role(u["dave"]) == "writer", "dave's new role never reached the server")
    page.fill("#new-member", u["carol"])
    page.select_option("#new-member-role", "viewer")
    page.click("#add-member button[type=submit]")
    page.wait_for_selector(f"tr[data-user='{u['carol']}']")
    assert role(u["carol"]) == "viewer"
    page.fill("#new-member", "no-such-user")
    page.click("#add-member button[type=submit]")
    page.wait_for_function("() => document.querySelector('#settings-error').textContent.includes('no-such-user')")
    page.click(f"tr[data-user='{u['carol']}'] button.remove")
    page.wait_for_selector(f"tr[data-user='{u['carol']}']", state="detached")
    assert role(u["carol"]) is None
    page.select_option("#visibility", "internal")
    _until(lambda: team.store.list_members(team.project)["visibility"] == "internal", "the visibility never changed")
    shot(page, "32-project-settings-admin")
    # The changes are the admin's, through her session (no key), in the audit log.
    changes = {e["action"]: e for e in team.store.audit(team.project)["entries"] if e["user"] == u["alice"]}
    assert {"role.changed", "member.added", "member.removed", "visibility.changed"} <= set(changes)
    assert changes["role.changed"]["key_id"] is None
    team.store.set_visibility(team.project, "private")


def test_a_viewer_sees_the_settings_without_controls(page: Any, team: Team) -> None:
    _log_in(page, team, team.users["bob"])
    page.wait_for_selector("h1:has-text('Projects')")
    page.goto(f"{team.srv.url}/#/p/{team.project}/settings")
    page.wait_for_selector("#members-table")
    assert page.locator("#project-settings").get_attribute("data-manage") == "false"
    assert page.locator("#project-settings select, #project-settings button, #add-member").count() == 0
    assert page.locator("#settings-readonly").is_visible()
    assert page.locator(f"tr[data-user='{team.users['alice']}'] .role").text_content() == "admin"
    shot(page, "33-project-settings-viewer")


def test_the_audit_page_lists_the_changes_and_shows_a_hostile_name_as_text(page: Any, team: Team) -> None:
    r = requests.post(team.srv.url + "/api/v1/session", json={"user": HOSTILE, "password": "x"}, timeout=30)
    assert r.status_code == 401
    # A project change made through the API, so that this test does not depend on another's.
    _kid, key = team.store.create_key("audit-test")
    r = requests.put(f"{team.srv.url}/api/v1/projects/{team.project}/members/{team.users['carol']}",
                     json={"role": "writer"}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    _log_in(page, team, "admin")
    page.wait_for_selector("#audit-link:not([hidden])")
    assert page.locator("#whoami").text_content() == "admin"
    page.click("#audit-link")
    page.wait_for_selector("#audit-table tbody tr")
    actions = page.locator("#audit-table td.action").all_text_contents()
    assert {"member.added", "login.failed", "session.opened"} <= set(actions)
    hostile = page.locator("#audit-table tr[data-action='login.failed'] td.detail", has_text="<img").first
    assert HOSTILE in hostile.text_content()
    assert page.locator("#audit-table img").count() == 0
    assert page.evaluate("window.__xss") is None
    shot(page, "34-audit-log")
    page.fill("#audit-project", team.project)
    page.click("#audit-filter button[type=submit]")
    page.wait_for_selector(f"h1:has-text('Audit log of {team.project}')")
    page.wait_for_selector("#audit-table tbody tr")
    projects = set(page.locator("#audit-table tbody tr td:nth-child(6)").all_text_contents())
    assert projects == {team.project}
    shot(page, "35-audit-log-project")
    team.store.remove_member(team.project, team.users["carol"])


def test_a_non_admin_is_refused_the_whole_audit_log(page: Any, team: Team, tmp_path: Path) -> None:
    _log_in(page, team, team.users["bob"])
    page.wait_for_selector("h1:has-text('Projects')")
    page.goto(f"{team.srv.url}/#/audit")
    page.wait_for_selector(".error-box")
    assert "admin" in page.locator(".error-box").text_content()
