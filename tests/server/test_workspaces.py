"""Saved workspaces over HTTP, on SQLite and PostgreSQL: a user's own view, the project default, shared
views; the document's validation (400 naming the field, 413 over the cap, 415 for a non-JSON body);
the dashboard's cookie may save a workspace but never anything else; every save is audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.server.conftest import ServerProc
from tests.server.teams import Cast, cast
from wandblite.server.app import PAGE_HEADER
from wandblite.server.workspaces import MAX_WORKSPACE_BYTES, WORKSPACE_VERSION

HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>\u202e"\'&amp;'


def _doc(**pieces: Any) -> dict[str, Any]:
    return {"version": WORKSPACE_VERSION, **pieces}


def _ws(c: Cast) -> str:
    return f"/api/v1/projects/{c.project}/workspace"


def _send(srv: ServerProc, method: str, path: str, key: str | None, body: Any = None,
          ctype: str = "application/json", cookies: dict[str, str] | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if cookies is not None:
        headers[PAGE_HEADER[0]] = PAGE_HEADER[1]  # as the dashboard sends its writes
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = ctype
    return requests.request(method, srv.url + path, data=data, headers=headers, cookies=cookies, timeout=30)


def test_own_view_default_and_reset_per_user(server: ServerProc) -> None:
    c = cast(server)
    mine = _doc(charts={"x_axis": "_runtime", "smoothing": 0.6, "log_y": True, "panel_filter": "loss"},
                sections={"order": ["train", "eval"], "collapsed": ["eval"]},
                panels={"hidden": ["eval/acc"], "sizes": {"train/loss": "large"}},
                runs={"search": "a", "filter": "config.lr >= 0.1", "state": "finished", "order": "-created_at"},
                selection=[c.run_id], grouping={"by": ["config.lr"], "aggregate": "mean"})
    default = _doc(charts={"smoothing": 0.2})
    r = _send(server, "GET", _ws(c), c.keys["viewer"])
    assert r.status_code == 200 and r.json()["user"] is None and r.json()["default"] is None, r.text
    r = _send(server, "PUT", _ws(c) + "/user", c.keys["viewer"], mine)
    assert r.status_code == 200, r.text
    assert r.json()["workspace"] == mine and r.json()["updated_by"] == c.users["viewer"]
    assert _send(server, "PUT", _ws(c) + "/default", c.keys["writer"], default).status_code == 200
    seen = _send(server, "GET", _ws(c), c.keys["viewer"]).json()
    assert seen["user"]["workspace"] == mine and seen["default"]["workspace"] == default
    other = _send(server, "GET", _ws(c), c.keys["owner"]).json()
    assert other["user"] is None, "another user must not see the first user's own view"
    assert other["default"]["workspace"] == default and other["default"]["updated_by"] == c.users["writer"]
    # Saving again replaces; resetting shows the default again.
    again = _doc(charts={"smoothing": 0.1})
    assert _send(server, "PUT", _ws(c) + "/user", c.keys["viewer"], again).json()["workspace"] == again
    r = _send(server, "DELETE", _ws(c) + "/user", c.keys["viewer"])
    assert r.json() == {"project": c.project, "slot": "user", "reset": True}
    assert _send(server, "DELETE", _ws(c) + "/user", c.keys["viewer"]).json()["reset"] is False
    seen = _send(server, "GET", _ws(c), c.keys["viewer"]).json()
    assert seen["user"] is None and seen["default"]["workspace"] == default
    # A viewer may not change the default; a writer may reset it.
    assert _send(server, "PUT", _ws(c) + "/default", c.keys["viewer"], mine).status_code == 403
    assert _send(server, "DELETE", _ws(c) + "/default", c.keys["viewer"]).status_code == 403
    assert _send(server, "DELETE", _ws(c) + "/default", c.keys["writer"]).json()["reset"] is True
    assert _send(server, "GET", _ws(c), c.keys["viewer"]).json()["default"] is None
    actions = [e["action"] for e in c.store.audit(c.project)["entries"] if e["action"].startswith("workspace.")]
    assert actions.count("workspace.saved") == 3 and actions.count("workspace.reset") == 2


def test_a_shared_view_opens_for_whoever_reads_the_project(server: ServerProc) -> None:
    c = cast(server)
    doc = _doc(sections={"order": [HOSTILE], "collapsed": [HOSTILE]}, runs={"filter": HOSTILE})
    r = _send(server, "POST", _ws(c) + "/views", c.keys["viewer"], doc)
    assert r.status_code == 200, r.text
    view_id = r.json()["id"]
    for column in ("writer", "owner", "read key", "server admin"):
        got = _send(server, "GET", f"{_ws(c)}/views/{view_id}", c.keys[column])
        assert got.status_code == 200, (column, got.text)
        assert got.json()["workspace"] == doc  # hostile strings come back exactly as saved
    assert _send(server, "GET", f"{_ws(c)}/views/{view_id}", c.keys["outsider"]).status_code == 403
    assert _send(server, "GET", f"{_ws(c)}/views/{view_id}", None).status_code == 401
    c.store.set_visibility(c.project, "public")
    assert _send(server, "GET", f"{_ws(c)}/views/{view_id}", None).json()["workspace"] == doc
    assert _send(server, "POST", _ws(c) + "/views", None, doc).status_code == 401  # reading is not saving
    assert _send(server, "PUT", _ws(c) + "/user", None, doc).status_code == 401
    for missing in ("A" * 16, "short", view_id[:-1] + ("A" if view_id[-1] != "A" else "B")):
        r = _send(server, "GET", f"{_ws(c)}/views/{missing}", c.keys["viewer"])
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    other = cast(server)
    assert _send(server, "GET", f"/api/v1/projects/{other.project}/workspace/views/{view_id}",
                 other.keys["owner"]).status_code == 404  # an id is a view of its own project only


@pytest.mark.parametrize(("body", "code", "says"), [
    ({"charts": {}}, "invalid_workspace", "version"),
    (_doc(colour="red"), "invalid_workspace", "'colour'"),
    (_doc(charts={"smoothing": 0.5, "script": "x"}), "invalid_workspace", "'script'"),
    (_doc(charts={"smoothing": 1.5}), "invalid_workspace", "workspace.charts.smoothing"),
    (_doc(charts={"smoothing": True}), "invalid_workspace", "workspace.charts.smoothing"),
    (_doc(charts={"log_y": "yes"}), "invalid_workspace", "workspace.charts.log_y"),
    (_doc(charts={"x_axis": 5}), "invalid_workspace", "workspace.charts.x_axis"),
    (_doc(charts={"x_axis": "a\x00b"}), "invalid_workspace", "control character"),
    (_doc(runs={"state": "exploded"}), "invalid_workspace", "workspace.runs.state"),
    (_doc(selection=["../etc"]), "invalid_workspace", "workspace.selection[0]"),
    (_doc(selection="r1"), "invalid_workspace", "workspace.selection"),
    (_doc(selection=["r1", "r1"]), "invalid_workspace", "twice"),
    (_doc(panels={"sizes": {"loss": "huge"}}), "invalid_workspace", "small, medium, large"),
    (_doc(panels={"hidden": ["x" * 5000]}), "invalid_workspace", "longer than"),
    (_doc(sections={"order": [str(i) for i in range(2001)]}), "invalid_workspace", "more than 2000"),
    (_doc(grouping=[1]), "invalid_workspace", "workspace.grouping must be an object"),
    (_doc(grouping={"a": {"b": {"c": {"d": {"e": {"f": {"g": {}}}}}}}}), "invalid_workspace", "nests"),
    ({"version": 2}, "unsupported_version", "version"),
    ([1, 2], "invalid_workspace", "expected a workspace"),
])
def test_a_bad_document_is_a_400_naming_what_is_wrong(server: ServerProc, body: Any, code: str, says: str) -> None:
    c = _one_cast(server)
    for method, path in (("PUT", "/user"), ("PUT", "/default"), ("POST", "/views")):
        r = _send(server, method, _ws(c) + path, c.keys["writer"], body)
        assert r.status_code == 400, (method, path, r.text)
        err = r.json()["error"]
        assert err["code"] == code and says in err["message"], err
    assert _send(server, "GET", _ws(c), c.keys["writer"]).json()["user"] is None  # nothing was stored


_CASTS: dict[str, Cast] = {}


def _one_cast(server: ServerProc) -> Cast:
    """One project per server for the many validation cases (nothing of theirs is stored)."""
    if server.url not in _CASTS:
        _CASTS[server.url] = cast(server)
    return _CASTS[server.url]


def test_size_content_type_and_unknown_project(server: ServerProc) -> None:
    c = _one_cast(server)
    big = _doc(panels={"hidden": [f"{i:04d}" + "k" * 900 for i in range(100)]})
    r = _send(server, "PUT", _ws(c) + "/user", c.keys["viewer"], big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
    assert str(MAX_WORKSPACE_BYTES) in r.json()["error"]["message"]
    r = _send(server, "PUT", _ws(c) + "/user", c.keys["viewer"], b"version=1", ctype="application/x-www-form-urlencoded")
    assert r.status_code == 415, r.text
    r = _send(server, "POST", _ws(c) + "/views", c.keys["viewer"], b'{"version": 1}', ctype="text/plain")
    assert r.status_code == 415, r.text
    r = _send(server, "PUT", _ws(c) + "/user", c.keys["viewer"], b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    r = _send(server, "PUT", "/api/v1/projects/no-such-project-xyz/workspace/user", c.keys["server admin"], _doc())
    assert r.status_code == 404, r.text
    r = _send(server, "GET", "/api/v1/projects/no-such-project-xyz/workspace", c.keys["server admin"])
    assert r.status_code == 404, r.text


def test_the_session_cookie_saves_a_workspace_and_nothing_else(server: ServerProc) -> None:
    c = cast(server)
    login = requests.post(server.url + "/api/v1/session", json={"api_key": c.keys["viewer"]}, timeout=30)
    assert login.status_code == 200, login.text
    jar = dict(login.cookies)
    doc = _doc(charts={"smoothing": 0.3})
    bare = requests.put(server.url + _ws(c) + "/user", json=doc, cookies=jar, timeout=30)
    assert bare.status_code == 403 and "X-Requested-With" in bare.json()["error"]["message"]  # not the page's
    r = _send(server, "PUT", _ws(c) + "/user", None, doc, cookies=jar)
    assert r.status_code == 200 and r.json()["updated_by"] == c.users["viewer"], r.text
    assert _send(server, "GET", _ws(c), None, cookies=jar).json()["user"]["workspace"] == doc
    r = _send(server, "PUT", _ws(c) + "/user", None, b'{"version": 1}', ctype="text/plain", cookies=jar)
    assert r.status_code == 415  # what a cross-site form could send
    assert _send(server, "POST", _ws(c) + "/views", None, doc, cookies=jar).status_code == 200
    assert _send(server, "DELETE", _ws(c) + "/user", None, cookies=jar).json()["reset"] is True
    # The cookie still authorises no other write.
    r = _send(server, "POST", f"/api/v1/projects/{c.project}/runs/cookie/batch", None, {}, cookies=jar)
    assert r.status_code == 401, r.text
    # A viewer's session cannot set the default; a writer's can.
    assert _send(server, "PUT", _ws(c) + "/default", None, doc, cookies=jar).status_code == 403
    wjar = dict(requests.post(server.url + "/api/v1/session", json={"api_key": c.keys["writer"]}, timeout=30).cookies)
    assert _send(server, "PUT", _ws(c) + "/default", None, doc, cookies=wjar).status_code == 200
