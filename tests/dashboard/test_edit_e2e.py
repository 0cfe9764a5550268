"""Editing runs and the config diff in the dashboard, end to end: a real ``wandblite server`` (SQLite, then
PostgreSQL), a real headless Chromium logged in with a session cookie, each test's runs in its own project.

What is pinned down: an edit (name, tags, notes) made in the page shows after a reload and in
``wandblite.Api``; archiving hides a run from the runs table until the archived filter shows it, and
restoring brings it back; moving takes the run to another project; deleting asks for the run id first,
then the run is gone from every endpoint with the blobs only it used, while a blob another run shares
stays; the config diff of selected runs lists exactly the keys whose values differ (all with the
toggle); hostile names, tags, notes, config keys and values are shown as text, never run.
Screenshots go to ``test-artifacts/dashboard/[postgres/]edit-*.png``.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.dashboard.conftest import Dash, shot

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__pwned=1">'
XSS_SCRIPT = "<script>window.__pwned=2</script>"


def _project(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _headers(dash: Dash) -> dict[str, str]:
    return {"Authorization": f"Bearer {dash.server.key}", "Content-Type": "application/json"}


def _batch(dash: Dash, project: str, run_id: str, body: dict[str, Any]) -> None:
    import json

    r = requests.post(f"{dash.url}/api/v1/projects/{project}/runs/{run_id}/batch", data=json.dumps(body),
                      headers=_headers(dash), timeout=30)
    assert r.status_code == 200, r.text


def _blob(dash: Dash, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    r = requests.put(f"{dash.url}/api/v1/media/{sha}?ext=png", data=data,
                     headers={"Authorization": f"Bearer {dash.server.key}"}, timeout=30)
    assert r.status_code == 200, r.text
    return sha


def _image(sha: str) -> dict[str, Any]:
    return {"_type": "image-file", "path": f"media/images/img_0_{sha[:20]}.png", "sha256": sha, "size": 10,
            "format": "png", "width": 1, "height": 1}


def _login(page: Any, dash: Dash) -> None:
    r = page.request.post(f"{dash.url}/api/v1/session", data={"api_key": dash.server.key})
    assert r.status == 200, r.text()
    page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"a dialog opened: {d.message}")))


def _not_pwned(page: Any) -> None:
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator("img[src='x']").count() == 0


def _api_get(dash: Dash, path: str) -> requests.Response:
    return requests.get(dash.url + path, headers={"Authorization": f"Bearer {dash.server.key}"}, timeout=30)


def test_an_edit_shows_after_reload_and_in_the_api_and_archive_move_work(dash: Dash, page: Any) -> None:
    import wandblite

    project, other = _project("edit"), _project("moved")
    _batch(dash, project, "r1", {"run": {"name": "plain", "tags": ["a"], "state": "finished"},
                                 "rows": [{"idx": 0, "row": {"_step": 0, "loss": 1.0}, "final": True}]})
    _batch(dash, project, "r2", {"run": {"name": "neighbour", "state": "finished"}})
    _batch(dash, other, "seed", {})
    _login(page, dash)
    page.goto(f"{dash.url}/#/p/{project}/r/r1")
    page.wait_for_selector(".tab-body")
    page.click("#edit-run > summary")
    page.fill("#edit-name", XSS)
    page.fill("#edit-tags", f"good, {XSS_SCRIPT}, good")
    page.fill("#edit-notes", f"notes {XSS}")
    page.click("#edit-save")
    page.wait_for_function("() => document.querySelector('#edit-done').textContent === 'saved'")
    assert page.text_content(".run-header .run-name") == XSS
    shot(page, "edit-saved")

    page.reload()
    page.wait_for_selector(".run-header .run-name")
    assert page.text_content(".run-header .run-name") == XSS
    assert [t.text_content() for t in page.query_selector_all(".run-header .tag")] == ["good", XSS_SCRIPT]
    assert page.text_content(".run-header .notes") == f"notes {XSS}"
    _not_pwned(page)
    run = wandblite.Api(server=dash.url, api_key=dash.server.key).run(f"{project}/r1")
    assert (run.name, run.tags, run.notes) == (XSS, ["good", XSS_SCRIPT], f"notes {XSS}")

    # Archive: gone from the runs table, back with the filter, restored from its page.
    page.click("#edit-run > summary")
    page.click("#edit-archive")
    page.wait_for_function("() => document.querySelector('#edit-archive').textContent.startsWith('restore')")
    page.goto(f"{dash.url}/#/p/{project}")
    page.wait_for_selector("#runs-table")
    assert page.eval_on_selector_all("#runs-table tbody tr", "rs => rs.map(r => r.dataset.run)") == ["r2"]
    page.select_option("#archived-filter", "include")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 2")
    assert page.text_content("#runs-table tr[data-run='r1'] .tag.archived") == "archived"
    assert page.text_content("#runs-table tr[data-run='r1'] .run-link") == XSS
    _not_pwned(page)
    shot(page, "edit-archived-shown")
    page.click("#runs-table tr[data-run='r1'] .run-link")
    page.wait_for_selector("#edit-run")
    page.click("#edit-run > summary")
    page.click("#edit-archive")
    page.wait_for_function("() => document.querySelector('#edit-archive').textContent === 'archive'")
    assert sorted(r["id"] for r in _api_get(dash, f"/api/v1/projects/{project}/runs").json()["runs"]) == ["r1", "r2"]

    # Move to another project.
    page.fill("#move-target", other)
    page.click("#move-run")
    page.wait_for_function(f"() => location.hash === '#/p/{other}/r/r1'")
    page.wait_for_selector(".run-header .run-name")
    assert page.text_content(".run-header .run-name") == XSS
    assert _api_get(dash, f"/api/v1/projects/{project}/runs/r1").status_code == 404
    assert _api_get(dash, f"/api/v1/projects/{other}/runs/r1/history").json()["rows"][0]["row"]["loss"] == 1.0
    actions = [e["action"] for e in _api_get(dash, f"/api/v1/audit?project={project}").json()["entries"]]
    assert actions[:4] == ["run.moved", "run.edited", "run.edited", "run.edited"]


def test_a_refused_edit_shows_the_servers_reason(dash: Dash, page: Any) -> None:
    from wandblite.server.store import Store

    project = _project("refuse")
    _batch(dash, project, "r1", {"run": {"name": "mine"}})
    assert dash.server.db is not None
    _kid, read_key = Store(dash.server.db).create_key("dashboard reader", scope="read")
    r = page.request.post(f"{dash.url}/api/v1/session", data={"api_key": read_key})
    assert r.status == 200, r.text()
    page.goto(f"{dash.url}/#/p/{project}/r/r1")
    page.wait_for_selector("#edit-run")
    page.click("#edit-run > summary")
    page.fill("#edit-name", "theirs")
    page.click("#edit-save")
    page.wait_for_function("() => document.querySelector('#edit-msg').textContent.startsWith('saving:')")
    assert "write scope" in page.text_content("#edit-msg")
    page.click("#delete-run")
    page.fill("#delete-typed", "r1")
    page.click("#delete-yes")
    page.wait_for_function("() => document.querySelector('#edit-msg').textContent.startsWith('deleting:')")
    shot(page, "edit-refused")
    got = _api_get(dash, f"/api/v1/projects/{project}/runs/r1")
    assert got.status_code == 200 and got.json()["name"] == "mine"


def test_delete_asks_then_removes_the_run_everywhere_with_its_own_blobs(dash: Dash, page: Any) -> None:
    project = _project("del")
    own = _blob(dash, b"own " + uuid.uuid4().bytes)
    shared = _blob(dash, b"shared " + uuid.uuid4().bytes)
    _batch(dash, project, "doomed", {
        "run": {"name": "doomed run", "config": {"lr": 0.1}},
        "rows": [{"idx": 0, "row": {"_step": 0, "loss": 1.0, "img": _image(own)}, "final": True},
                 {"idx": 1, "row": {"_step": 1, "loss": 0.5, "img": _image(shared)}, "final": True}],
        "console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "bye\n"}],
        "system": [{"idx": 0, "ts": 1.0, "metrics": {"cpu": 1.0}}]})
    _batch(dash, project, "keeper", {"rows": [{"idx": 0, "row": {"_step": 0, "img": _image(shared)}, "final": True}]})
    _login(page, dash)
    page.goto(f"{dash.url}/#/p/{project}/r/doomed")
    page.wait_for_selector("#edit-run")
    page.click("#edit-run > summary")
    page.click("#delete-run")
    page.wait_for_selector("#delete-confirm:not([hidden])")
    assert page.is_disabled("#delete-yes")
    page.click("#delete-no")  # cancelling deletes nothing
    assert _api_get(dash, f"/api/v1/projects/{project}/runs/doomed").status_code == 200
    page.click("#delete-run")
    page.fill("#delete-typed", "wrong")
    assert page.is_disabled("#delete-yes")
    page.fill("#delete-typed", "doomed")
    shot(page, "edit-delete-confirm")
    page.click("#delete-yes")
    page.wait_for_function(f"() => location.hash === '#/p/{project}'")
    page.wait_for_selector("#runs-table")
    assert page.eval_on_selector_all("#runs-table tbody tr", "rs => rs.map(r => r.dataset.run)") == ["keeper"]
    shot(page, "edit-deleted")

    base = f"/api/v1/projects/{project}/runs/doomed"
    for suffix in ("", "/keys", "/series?keys=loss", "/media?key=img", "/history", "/history/sampled", "/console",
                   "/console/lines", "/system", "/files", "/alerts", "/artifacts"):
        assert _api_get(dash, base + suffix).status_code == 404, suffix
    media = Path(str(dash.server.media))
    assert _api_get(dash, f"/api/v1/media/{own}").status_code == 404
    assert not (media / own[:2] / own[2:4] / own).exists()
    assert _api_get(dash, f"/api/v1/media/{shared}").status_code == 200
    assert (media / shared[:2] / shared[2:4] / shared).exists()
    assert _api_get(dash, f"/api/v1/projects/{project}/runs/keeper/media?key=img").json()["count"] == 1


def _cells(page: Any, key: str) -> list[str]:
    """The texts of the diff table's row of ``key`` (one cell per run)."""
    return list(page.evaluate("k => [...[...document.querySelectorAll('#diff-table tbody tr')]"
                              ".find(r => r.dataset.key === k).querySelectorAll('td')].map(t => t.textContent)", key))


def test_config_diff_shows_exactly_the_differing_keys_as_text(dash: Dash, page: Any) -> None:
    project = _project("diff")
    configs = {
        "a": {"lr": 0.1, "layers": 3, "opt": {"name": "adam", "beta": 0.9}, XSS: XSS_SCRIPT, "only_a": True},
        "b": {"lr": 0.01, "layers": 3, "opt": {"name": "adam", "beta": 0.99}, XSS: XSS_SCRIPT},
        "c": {"lr": 0.1, "layers": 3, "opt": {"name": "sgd", "beta": 0.9}, XSS: "<b>other</b>"},
    }
    summaries = {"a": {"acc": 0.5, "same": 1}, "b": {"acc": 0.5, "same": 1}, "c": {"acc": 0.75, "same": 1}}
    for rid in configs:
        _batch(dash, project, rid, {"run": {"name": f"run {rid}", "config": configs[rid], "summary": summaries[rid]}})
    page.goto(f"{dash.url}/#/p/{project}")
    page.wait_for_selector("#runs-table")
    assert page.is_disabled("#diff")
    page.check("#runs-table tr[data-run='a'] input[type=checkbox]")
    assert page.is_disabled("#diff")  # one run: nothing to compare
    for rid in ("b", "c"):
        page.check(f"#runs-table tr[data-run='{rid}'] input[type=checkbox]")
    page.click("#diff")
    page.wait_for_selector("#diff-table")
    differing = {"config.lr", "config.opt.name", "config.opt.beta", f"config.{XSS}", "config.only_a", "summary.acc"}
    shown = set(page.eval_on_selector_all("#diff-table tbody tr", "rs => rs.map(r => r.dataset.key)"))
    assert shown == differing
    assert _cells(page, f"config.{XSS}") == [XSS_SCRIPT, XSS_SCRIPT, "<b>other</b>"]
    assert _cells(page, "config.only_a") == ["true", "(absent)", "(absent)"]
    assert _cells(page, "config.lr") == ["0.1", "0.01", "0.1"]
    assert page.text_content("#diff-count") == "6 of 8 keys differ"
    _not_pwned(page)
    shot(page, "edit-config-diff")
    page.check("#diff-show-all")
    everything = set(page.eval_on_selector_all("#diff-table tbody tr", "rs => rs.map(r => r.dataset.key)"))
    assert everything == differing | {"config.layers", "summary.same"}
    shot(page, "edit-config-diff-all")
    # More than ten runs, or one, is refused with a message.
    page.goto(f"{dash.url}/#/p/{project}/diff/a")
    page.wait_for_selector("#diff-error")
