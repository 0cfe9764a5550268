"""Inputs that used to reach a 500, and the login and proxy rules, against a real server process.

* A filter nested thousands of levels deep, and a body nested past ``MAX_JSON_DEPTH``: 400 ``too_deep``.
* An artifact version beyond a 64-bit integer (or written in other digits): 404, not an overflow.
* A media extension that is not plain ASCII (or carries a header break) is stored as none, and a bad
  extension already in the store (written by an older server) never breaks a GET of its blob.
* Login takes JSON only: a form or ``text/plain`` post (what a cross-site page can send) is a 415.
* Behind a TLS-terminating proxy (``--forwarded-allow-ips``; by default one on this host) the
  session cookie is ``Secure``; the forwarded headers of an untrusted peer change nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import requests
import sqlalchemy as sa

from wandblite.server.wire import MAX_JSON_DEPTH

from .conftest import ServerProc, uniq


def _code(r: requests.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


def test_deep_filters_and_bodies_are_400_too_deep(fresh_server: ServerProc) -> None:
    srv = fresh_server.start()
    project = uniq()
    body = {"run": {"state": "running"}, "rows": [{"idx": 0, "row": {"_step": 0, "x": 1.0}}]}
    assert srv.post(f"/api/v1/projects/{project}/runs/r/batch", body).status_code == 200
    for depth in (65, 900, 4000):  # past the filter's limit, near and past the JSON parser's recursion limit
        f = '{"config.a": ' + "[" * depth + "]" * depth + "}"
        _code(srv.get(f"/api/v1/projects/{project}/runs", params={"filters": f}), 400, "too_deep")
    f = json.dumps({"config.x": [[[[1]]]]})  # shallow: still answered
    assert srv.get(f"/api/v1/projects/{project}/runs", params={"filters": f}).json()["total"] == 0
    deep = '{"run":' * 5000 + "{}" + "}" * 5000
    _code(srv.post(f"/api/v1/projects/{project}/runs/r/batch", data=deep.encode()), 400, "too_deep")
    row: dict[str, object] = {"_step": 1}
    cur = row
    for _ in range(MAX_JSON_DEPTH):
        cur["a"] = {}
        cur = cur["a"]  # type: ignore[assignment]
    raw = json.dumps({"rows": [{"idx": 1, "row": row}]}).encode()
    _code(srv.post(f"/api/v1/projects/{project}/runs/r/batch", data=raw), 400, "too_deep")
    assert srv.position(project, "r")["rows"] == 1  # nothing of it stored
    assert srv.alive()


def test_an_artifact_version_beyond_64_bits_is_a_404(fresh_server: ServerProc) -> None:
    srv = fresh_server.start()
    project = uniq()
    assert srv.post(f"/api/v1/projects/{project}/runs/r/batch", {"run": {"state": "running"}}).status_code == 200
    for ref in ("v99999999999999999999999999", f"v{1 << 63}", "v2147483648", "v²", "v٣"):
        _code(srv.get(f"/api/v1/projects/{project}/artifacts/model/{ref}"), 404, "not_found")


def test_media_extensions_are_normalised_and_stored_ones_never_break_a_get(fresh_server: ServerProc,
                                                                          tmp_path: Path) -> None:
    srv = fresh_server.start()
    for i, ext in enumerate(("bïn", "p\r\nX-Evil: 1", "a" * 80, ".hidden", "png")):
        data = f"blob {i}".encode()
        sha = hashlib.sha256(data).hexdigest()
        r = requests.put(f"{srv.url}/api/v1/media/{sha}", params={"ext": ext}, data=data, headers=srv.h(), timeout=10)
        assert r.status_code == 200, r.text
        got = srv.get(f"/api/v1/media/{sha}")
        assert got.status_code == 200 and got.content == data
        if ext == "png":
            assert got.headers["content-type"] == "image/png"
        else:
            assert got.headers["content-type"] == "application/octet-stream"
            assert got.headers["content-disposition"] == f'attachment; filename="{sha}.bin"'
            assert "X-Evil" not in got.headers
    # A value an older server stored as it came: served as .bin, never a broken answer.
    data = b"stored by an older server"
    sha = hashlib.sha256(data).hexdigest()
    assert requests.put(f"{srv.url}/api/v1/media/{sha}", data=data, headers=srv.h(), timeout=10).status_code == 200
    engine = sa.create_engine(str(srv.db))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE media SET ext = :e WHERE sha256 = :s"), {"e": "ü\r\nSet-Cookie: x=1", "s": sha})
    engine.dispose()
    got = srv.get(f"/api/v1/media/{sha}")
    assert got.status_code == 200 and got.content == data and "set-cookie" not in got.headers
    assert got.headers["content-disposition"] == f'attachment; filename="{sha}.bin"'


def test_login_takes_json_only(fresh_server: ServerProc) -> None:
    srv = fresh_server.start()
    url = srv.url + "/api/v1/session"
    for ctype, data in (("application/x-www-form-urlencoded", f"api_key={srv.key}"),
                        ("text/plain", json.dumps({"api_key": srv.key})),
                        ("multipart/form-data; boundary=x", "--x--")):
        r = requests.post(url, data=data, headers={"Content-Type": ctype}, timeout=10)
        _code(r, 415, "unsupported_media_type")
        assert "set-cookie" not in r.headers
    r = requests.post(url, json={"api_key": srv.key}, timeout=10)
    assert r.status_code == 200 and r.json()["authenticated"] and "wandblite_session=" in r.headers["set-cookie"]


def _cookie_after_login(srv: ServerProc) -> str:
    r = requests.post(srv.url + "/api/v1/session", json={"api_key": srv.key}, timeout=10,
                      headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"})
    assert r.status_code == 200, r.text
    return str(r.headers["set-cookie"])


def test_behind_a_trusted_proxy_the_session_cookie_is_secure(tmp_path: Path) -> None:
    trusted = ServerProc(f"sqlite:///{tmp_path / 't.db'}", tmp_path / "tm", tmp_path / "th",
                         extra_args=["--forwarded-allow-ips", "127.0.0.1"]).start()
    # A proxy on another host (192.0.2.1): this test's own requests come from an untrusted peer.
    untrusted = ServerProc(f"sqlite:///{tmp_path / 'u.db'}", tmp_path / "um", tmp_path / "uh",
                           extra_args=["--forwarded-allow-ips", "192.0.2.1"]).start()
    default = ServerProc(f"sqlite:///{tmp_path / 'd.db'}", tmp_path / "dm", tmp_path / "dh").start()
    try:
        assert "; secure" in _cookie_after_login(trusted).lower()
        assert "; secure" not in _cookie_after_login(untrusted).lower()
        assert "; secure" in _cookie_after_login(default).lower()  # a proxy on this host, trusted by default
        plain = requests.post(default.url + "/api/v1/session", json={"api_key": default.key}, timeout=10)
        assert "; secure" not in plain.headers["set-cookie"].lower()  # plain HTTP, no proxy: not Secure
    finally:
        for srv in (trusted, untrusted, default):
            srv.stop()
