"""Saved workspaces in a real Chromium against a real server (SQLite and PostgreSQL): arrange a view
(collapse and move a section, hide and resize panels, x-axis, smoothing, filter, selected runs),
save it, open its shareable URL in a new browser context as another user and see the same view;
another user sees the project default, never the first user's own; reset to default; hostile
strings inside a saved document stay text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.dashboard.conftest import database, shot
from tests.server.conftest import ServerProc

PROJECT = "wsproj"
RUNS = {"r1": 0.1, "r2": 0.03, "r3": 0.001}  # run id -> config.lr
KEYS = ("train/loss", "train/acc", "eval/loss", "eval/acc", "lr")
WIDE = 90  # panels of the lazily drawn workspace
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def _batch(srv: ServerProc, key: str, run_id: str, lr: float) -> None:
    rows = [{"idx": i, "final": True, "row": {"_step": i, "_runtime": 2.0 * i, "_timestamp": 1.7e9 + i,
                                              **{k: (j + 1) * lr * (i + 1) for j, k in enumerate(KEYS)}}}
            for i in range(30)]
    body = {"run": {"name": f"run {run_id}", "state": "finished", "config": {"lr": lr}, "created_at": 1.7e9},
            "rows": rows}
    r = requests.post(f"{srv.url}/api/v1/projects/{PROJECT}/runs/{run_id}/batch", data=json.dumps(body),
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200, r.text


class Team:
    def __init__(self, srv: ServerProc, keys: dict[str, str]) -> None:
        self.srv, self.keys = srv, keys


@pytest.fixture(scope="module")
def team(dash_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A private server: alice (writer of the project), bob (a viewer), the runs of the project."""
    from wandblite.server.store import Store

    tmp: Path = tmp_path_factory.mktemp(f"ws-{dash_backend}")
    with database(dash_backend, tmp / "store.db") as url:
        srv = ServerProc(url, tmp / "media", tmp / "home").start()
        try:
            store = Store(url)
            keys = {}
            for name in ("alice", "bob"):
                store.create_user(name)
                keys[name] = store.create_key(name, user=name)[1]
            for run_id, lr in RUNS.items():
                _batch(srv, srv.key, run_id, lr)
            wide = [{"idx": i, "final": True, "row": {"_step": i, **{f"s{k % 6}/m{k:02d}": i * k for k in range(WIDE)}}}
                    for i in range(20)]
            r = requests.post(f"{srv.url}/api/v1/projects/wideproj/runs/wide/batch", data=json.dumps({"rows": wide}),
                              headers={"Authorization": f"Bearer {srv.key}", "Content-Type": "application/json"},
                              timeout=30)
            assert r.status_code == 200, r.text
            store.set_visibility(PROJECT, "private")
            store.set_member(PROJECT, "alice", "writer")
            store.set_member(PROJECT, "bob", "viewer")
            store.close()
            yield Team(srv, keys)
        finally:
            srv.stop()


def _login(page: Any, team: Team, who: str, hash_: str) -> None:
    page.goto(f"{team.srv.url}/#/")
    page.wait_for_selector("#login-form")
    page.fill("#api-key", team.keys[who])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#logout:not([hidden])")
    page.goto(f"{team.srv.url}/{hash_}")
    try:
        page.wait_for_selector("#workspace-bar #workspace-source")
    except Exception:
        shot(page, f"ws-login-failed-{who}")
        raise


def _charts_ready(page: Any, panels: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('#project-charts .panel').length >= {panels}")
    page.wait_for_selector("#project-charts .js-plotly-plot")


def _view(page: Any) -> dict[str, Any]:
    """What the page shows, read from the DOM."""
    return dict(page.evaluate("""() => ({
      filter: document.querySelector('#run-filter')?.value,
      search: document.querySelector('#run-search')?.value,
      checked: [...document.querySelectorAll('#runs-table tbody tr')].filter((tr) => tr.querySelector('input').checked)
        .map((tr) => tr.dataset.run).sort(),
      rows: [...document.querySelectorAll('#runs-table tbody tr')].map((tr) => tr.dataset.run).sort(),
      sections: [...document.querySelectorAll('#project-charts details.section')].map((d) => d.dataset.section),
      collapsed: [...document.querySelectorAll('#project-charts details.section:not([open])')].map((d) => d.dataset.section),
      hidden: [...document.querySelectorAll('#project-charts .panel')].filter((p) => p.hidden).map((p) => p.dataset.key),
      large: [...document.querySelectorAll('#project-charts .panel[data-size=large]')].map((p) => p.dataset.key),
      x: document.querySelector('#x-axis') && document.querySelector('#x-axis')?.value,
      smoothing: document.querySelector('#smoothing') && document.querySelector('#smoothing')?.value,
      logY: document.querySelector('#log-y') && document.querySelector('#log-y').checked,
    })"""))


def _set_range(page: Any, selector: str, value: str) -> None:
    page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
                          value)


def _click_bar(page: Any, button: str, says: str) -> None:
    page.click(f"#{button}")
    page.wait_for_function("(s) => document.querySelector('#workspace-message')?.textContent.includes(s)", arg=says)


def test_a_saved_view_is_restored_by_its_shareable_url_in_a_new_context(browser: Any, team: Team) -> None:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, team, "alice", f"#/p/{PROJECT}")
    page.wait_for_selector("#runs-table")
    # Arrange: filter, select two runs, collapse a section, move one, hide and resize panels, x-axis, smoothing.
    page.fill("#run-filter", "config.lr >= 0.01")
    page.press("#run-filter", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 2")
    for run_id in ("r1", "r2"):
        page.check(f"#runs-table tr[data-run={run_id}] input[type=checkbox]")
    _charts_ready(page, len(KEYS))
    page.click("#project-charts details.section[data-section=eval] > summary .section-name")
    page.click("#project-charts details.section[data-section=train] .section-move[title='move section up']")
    page.click("#project-charts .panel[data-key='train/acc'] .panel-hide")
    page.select_option("#project-charts .panel[data-key='train/loss'] .panel-size", "large")
    page.select_option("#x-axis", "_runtime")
    _set_range(page, "#smoothing", "0.6")
    page.check("#log-y")
    arranged = _view(page)
    assert arranged["checked"] == ["r1", "r2"] and arranged["rows"] == ["r1", "r2"]
    assert arranged["collapsed"] == ["eval"] and arranged["hidden"] == ["train/acc"]
    assert arranged["large"] == ["train/loss"] and arranged["x"] == "_runtime" and arranged["smoothing"] == "0.6"
    assert arranged["sections"] == ["", "train", "eval"]  # train moved above eval
    _click_bar(page, "save-view", "saved")
    assert "your saved view" in page.text_content("#workspace-source")
    _click_bar(page, "share-view", "link")
    url = page.input_value("#share-url")
    assert f"#/p/{PROJECT}/w/" in url
    shot(page, "ws-01-arranged-and-shared")

    # Bob, in a new browser context, opens the link: the same view.
    ctx2 = browser.new_context(viewport={"width": 1400, "height": 900})
    bob = ctx2.new_page()
    bob.on("pageerror", lambda e: errors.append(str(e)))
    _login(bob, team, "bob", url[len(team.srv.url) + 1:])
    _charts_ready(bob, len(KEYS))
    bob.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 2")
    bob.wait_for_function("() => document.querySelector('#x-axis')?.value === '_runtime'")
    assert _view(bob) == arranged
    assert "a shared view (saved by alice)" in bob.text_content("#workspace-source")
    # The smoothed traces are drawn (the smoothing is applied, not only shown).
    bob.wait_for_function("() => [...document.querySelectorAll('#project-charts .js-plotly-plot')].some((p) => "
                          "(p.data || []).some((t) => t.meta && t.meta.role === 'smoothed'))")
    shot(bob, "ws-02-shared-view-new-context")

    # Bob's own project page shows the project default (none yet), not alice's own view.
    bob.goto(f"{team.srv.url}/#/p/{PROJECT}")
    bob.reload()
    bob.wait_for_selector("#runs-table")
    bob.wait_for_function("() => document.querySelector('#workspace-source')?.textContent.includes('not saved')")
    v = _view(bob)
    assert v["filter"] == "" and v["checked"] == [] and len(v["rows"]) == 3

    # Alice makes a project default; bob sees it, still not alice's own.
    page.fill("#run-filter", "")
    page.press("#run-filter", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 3")
    page.check("#runs-table tr[data-run=r3] input[type=checkbox]")
    _set_range(page, "#smoothing", "0.3")
    _click_bar(page, "save-default", "project default")
    bob.reload()
    bob.wait_for_function("() => document.querySelector('#workspace-source')?.textContent.includes('project default')")
    _charts_ready(bob, len(KEYS))
    v = _view(bob)
    assert v["checked"] == ["r1", "r2", "r3"] and v["smoothing"] == "0.3" and v["filter"] == ""
    default_view = v
    shot(bob, "ws-03-other-user-sees-default")
    # A viewer may not change the default: the bar says so.
    bob.click("#save-default")
    bob.wait_for_function("() => document.querySelector('#workspace-message')?.textContent.includes('not allowed')")

    # Alice's own view is still hers; resetting brings the project default.
    page.reload()
    page.wait_for_function("() => document.querySelector('#workspace-source')?.textContent.includes('your saved view')")
    _charts_ready(page, len(KEYS))
    assert _view(page)["smoothing"] == "0.6"
    _click_bar(page, "reset-view", "reset")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody input:checked').length === 3")
    page.wait_for_function("() => document.querySelector('#smoothing')?.value === '0.3'")
    _charts_ready(page, len(KEYS))
    assert "project default" in page.text_content("#workspace-source")
    assert _view(page) == default_view  # the same view bob sees
    shot(page, "ws-04-reset-to-default")
    ctx.close()
    ctx2.close()
    assert not errors, errors


def test_hostile_strings_in_a_saved_view_stay_text(browser: Any, team: Team) -> None:
    doc = {"version": 1, "runs": {"filter": HOSTILE, "search": HOSTILE}, "selection": ["r1"],
           "charts": {"x_axis": HOSTILE, "smoothing": 0.2, "panel_filter": HOSTILE.lower()[:40]},
           "sections": {"order": [HOSTILE, "eval"], "collapsed": [HOSTILE]},
           "panels": {"hidden": [HOSTILE, "eval/acc"], "sizes": {HOSTILE: "large"}}}
    r = requests.post(f"{team.srv.url}/api/v1/projects/{PROJECT}/workspace/views", data=json.dumps(doc),
                      headers={"Authorization": f"Bearer {team.keys['alice']}", "Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 200, r.text
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
    _login(page, team, "bob", f"#/p/{PROJECT}/w/{r.json()['id']}")
    page.wait_for_selector("#project-charts .workspace-toolbar")
    page.wait_for_function("() => document.querySelector('#x-axis')?.value.includes('onerror')")
    assert page.input_value("#run-filter") == HOSTILE and page.input_value("#run-search") == HOSTILE
    assert page.input_value("#x-axis") == HOSTILE
    hidden_text = page.text_content("#hidden-panels")
    assert HOSTILE in hidden_text  # shown as text in the hidden panels list
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__xss") is None
    assert page.evaluate("() => document.querySelectorAll('img[src=x], #main script').length") == 0
    assert page.text_content("#compare") == "compare 1 selected"  # labelled even when the filter is refused
    shot(page, "ws-05-hostile-view")
    ctx.close()
    assert not errors, errors


def test_a_wide_workspace_draws_only_the_panels_near_the_screen(browser: Any, team: Team) -> None:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.goto(f"{team.srv.url}/#/")
    page.wait_for_selector("#login-form")
    page.fill("#api-key", team.keys["alice"])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#logout:not([hidden])")
    page.goto(f"{team.srv.url}/#/p/wideproj/r/wide")
    page.wait_for_function(f"() => document.querySelectorAll('.sections .panel').length === {WIDE}")
    page.wait_for_selector(".sections .panel .main-svg")
    drawn = "() => document.querySelectorAll('.sections .panel .main-svg').length"
    first = page.evaluate(drawn)
    assert 0 < first < WIDE / 2, first
    # Scroll to the bottom a screen at a time: the last panels are drawn, the first undrawn.
    for _ in range(200):
        if page.evaluate("() => { scrollBy(0, 700); return scrollY + innerHeight >= document.documentElement.scrollHeight - 2; }"):
            break
        page.wait_for_timeout(60)
    last = ".sections .panel:last-child"
    page.wait_for_function(f"() => [...document.querySelectorAll('{last}')].some((p) => p.querySelector('.main-svg'))")
    assert page.evaluate(drawn) < WIDE / 2
    top = page.query_selector(".sections .section .panel")
    assert top is not None and top.query_selector(".main-svg") is None, "a panel far above the screen stays drawn"
    shot(page, "ws-06-wide-workspace-bottom")
    page.evaluate("() => scrollTo(0, 0)")
    page.wait_for_function("() => document.querySelector('.sections .section .panel .main-svg') !== null")
    ctx.close()
