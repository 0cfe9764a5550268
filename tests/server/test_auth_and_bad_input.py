"""Auth and bad input: every refusal is a 4xx in the one JSON error shape, stores nothing, and the
server keeps serving. Run against SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
import requests

from .conftest import ServerProc, cli, uniq


def _assert_error(resp: requests.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code


def _batch(project: str, run: str = "r") -> str:
    return f"/api/v1/projects/{project}/runs/{run}/batch"


GOOD = {"rows": [{"idx": 0, "row": {"a": 1}}]}


@pytest.mark.parametrize("key", [None, "wl_wrong", "not even a key"])
def test_missing_or_wrong_key_is_401_and_stores_nothing(server: ServerProc, key: str | None) -> None:
    project = uniq()
    _assert_error(server.post(_batch(project), GOOD, key=key), 401, "unauthorized")
    _assert_error(server.get(f"/api/v1/projects/{project}/runs/r/position", key=key), 401)
    assert server.position(project, "r")["rows"] == 0
    assert server.get(f"/api/v1/projects/{project}/runs").status_code == 404


def test_revoked_key_is_401(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    key = server.create_key("to-revoke")
    assert server.post(_batch(project), GOOD, key=key).status_code == 200
    listed = cli("server", "keys", "list", "--json", "--db", server.db, home=server.home)
    ours = [json.loads(line) for line in listed.stdout.splitlines() if json.loads(line)["name"] == "to-revoke"]
    assert len(ours) == 1 and key.startswith(ours[0]["prefix"]) and key not in listed.stdout
    r = cli("server", "keys", "revoke", str(ours[0]["id"]), "--db", server.db, home=server.home)
    assert r.returncode == 0, r.stderr
    _assert_error(server.post(_batch(project), {"rows": [{"idx": 1, "row": {"a": 2}}]}, key=key), 401)
    assert server.position(project, "r")["rows"] == 1
    # The sync client reports the refusal and exits 1.
    assert cli("server", "keys", "revoke", "nope", "--db", server.db, home=server.home).returncode == 1


def test_reads_need_a_key_unless_public_read(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'pub.db'}"
    private = ServerProc(db, tmp_path / "media", tmp_path / "home").start()
    try:
        assert private.admin_key and private.admin_key.startswith("wl_")
        assert private.post(_batch("pp"), GOOD).status_code == 200
        _assert_error(private.get("/api/v1/projects", key=None), 401)
        _assert_error(private.get("/api/v1/projects/pp/runs/r/history", key=None), 401)
        assert private.get("/api/v1/projects").status_code == 200
    finally:
        private.stop()
    public = ServerProc(db, tmp_path / "media", tmp_path / "home", public_read=True)
    public.key = private.key
    public.start()
    try:
        assert public.admin_key is None  # shown once: the key table is not empty any more
        r = public.get("/api/v1/projects/pp/runs/r/history", key=None)
        assert r.status_code == 200 and r.json()["rows"][0]["row"] == {"a": 1}
        _assert_error(public.post(_batch("pp"), {"rows": [{"idx": 1, "row": {}}]}, key=None), 401)
        assert public.position("pp", "r")["rows"] == 1
    finally:
        public.stop()


@pytest.mark.parametrize("body", [
    b"{not json",
    b"",
    b"[1, 2, 3]",
    b'{"rows": {"idx": 0}}',
    b'{"rows": [{"idx": "0", "row": {}}]}',
    b'{"rows": [{"idx": -1, "row": {}}]}',
    b'{"rows": [{"idx": 0, "row": [1]}]}',
    b'{"rows": [{"idx": 0, "row": {}, "final": "yes"}]}',
    b'{"rows": [{"idx": 0, "row": {}, "final": false}, {"idx": 1, "row": {}}]}',
    b'{"rows": [{"idx": 0, "row": {}}, {"idx": 2, "row": {}}]}',
    b'{"rows": [{"idx": 0, "row": {}}], "run": {"state": "exploded"}}',
    b'{"rows": [{"idx": 0, "row": {}}], "run": {"exit_code": "zero"}}',
    b'{"rows": [{"idx": 0, "row": {}}], "run": {"tags": "a,b"}}',
    b'{"rows": [{"idx": 0, "row": {}}], "console": [{"idx": 0, "text": 5}]}',
    b'{"rows": [{"idx": 0, "row": {}}], "system": [{"idx": 0, "metrics": 1}]}',
    b"\xff\xfe\x00garbage",
    b"[" * 100000,
], ids=lambda b: b[:30].decode("latin-1"))
def test_malformed_or_mistyped_batches_are_400_and_store_nothing(server: ServerProc, body: bytes) -> None:
    project = uniq()
    r = server.post(_batch(project), data=body)
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()) == {"error"} and {"code", "message"} <= set(r.json()["error"])
    assert server.position(project, "r")["rows"] == 0
    assert server.alive()


_BAD_FOR_BOTH = ["..", "../x", ".hidden", "x" * 200, "a\x00b", "-flag", "a:b", "a\\b", "a%b"]


@pytest.mark.parametrize(
    "name, where",
    [(n, "project") for n in _BAD_FOR_BOTH] + [(n, "run") for n in [*_BAD_FOR_BOTH, "a b", "ä"]],
)
def test_path_tricks_in_names_are_rejected(server: ServerProc, name: str, where: str) -> None:
    from urllib.parse import quote

    q = quote(name, safe="")
    path = f"/api/v1/projects/{q}/runs/r/batch" if where == "project" else f"/api/v1/projects/ok/runs/{q}/batch"
    r = server.post(path, GOOD)
    assert 400 <= r.status_code < 500, (path, r.text)
    assert "error" in r.json()
    assert server.alive()


def test_project_names_with_spaces_and_unicode_are_accepted(server: ServerProc) -> None:
    from urllib.parse import quote

    for name in ("my project", "Ünïcode proj"):
        r = server.post(f"/api/v1/projects/{quote(name, safe='')}/runs/r/batch", GOOD)
        assert r.status_code == 200, r.text


def test_slash_in_a_name_never_reaches_another_route(server: ServerProc) -> None:
    r = server.post("/api/v1/projects/a%2Fb/runs/r/batch", GOOD)
    assert 400 <= r.status_code < 500 and "error" in r.json()
    r = server.post("/api/v1/projects/a/b/runs/r/batch", GOOD)
    _assert_error(r, 404, "not_found")


def test_oversized_bodies_are_413_before_they_are_read(server: ServerProc) -> None:
    host, port = "127.0.0.1", server.port
    with socket.create_connection((host, port), timeout=10) as s:
        head = (f"POST {_batch(uniq())} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {64 << 20}\r\n\r\n").encode()
        s.sendall(head + b'{"rows": [')
        data = b""
        while True:  # read the whole answer: headers, then Content-Length bytes of body
            chunk = s.recv(65536)
            data += chunk
            if not chunk:
                break
            if b"\r\n\r\n" in data:
                headers, _, rest = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":", 1)[1]) for line in headers.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
    status = int(data.split(b" ", 2)[1])
    body = data.split(b"\r\n\r\n", 1)[1]
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"
    # A chunked body (no length declared) is cut off at the limit too.
    def chunks():  # type: ignore[no-untyped-def]
        block = b" " * (1 << 20)
        for _ in range(40):
            yield block

    try:
        r = requests.post(server.url + _batch(uniq()), data=chunks(), headers=server.h(), timeout=60)
        _assert_error(r, 413, "too_large")
    except requests.ConnectionError:
        pass  # the server may close the connection while the client still sends; it answered 413 first
    assert server.alive()


def test_media_whose_bytes_do_not_match_their_hash_is_refused(server: ServerProc) -> None:
    data = b"some image bytes"
    sha = hashlib.sha256(data).hexdigest()
    r = requests.put(f"{server.url}/api/v1/media/{sha}", data=b"other bytes", headers=server.h(), timeout=10)
    _assert_error(r, 400, "hash_mismatch")
    assert server.post("/api/v1/media/missing", {"sha256": [sha]}).json()["missing"] == [sha]
    _assert_error(server.get(f"/api/v1/media/{sha}"), 404)
    _assert_error(requests.put(f"{server.url}/api/v1/media/../../etc", data=data, headers=server.h(), timeout=10), 404)
    _assert_error(requests.put(f"{server.url}/api/v1/media/{'g' * 64}", data=data, headers=server.h(), timeout=10), 400)
    _assert_error(server.post("/api/v1/media/missing", {"sha256": "abc"}), 400)
    _assert_error(requests.put(f"{server.url}/api/v1/media/{sha}", data=data, timeout=10), 401)
    assert server.post("/api/v1/media/missing", {"sha256": [sha]}).json()["missing"] == [sha]
    ok = requests.put(f"{server.url}/api/v1/media/{sha}", data=data, headers=server.h(), timeout=10)
    assert ok.status_code == 200 and server.get(f"/api/v1/media/{sha}").content == data


def test_a_batch_names_its_run_by_project_and_id(server: ServerProc) -> None:
    a, b = uniq(), uniq()
    assert server.post(_batch(a, "same"), {"rows": [{"idx": 0, "row": {"who": "a"}}]}).status_code == 200
    assert server.post(_batch(b, "same"), {"rows": [{"idx": 0, "row": {"who": "b"}}, {"idx": 1, "row": {}}]}).status_code == 200
    assert [r["row"] for r in server.history(a, "same")] == [{"who": "a"}]
    assert server.position(a, "same")["rows"] == 1 and server.position(b, "same")["rows"] == 2


def test_unknown_routes_and_methods_use_the_error_shape(server: ServerProc) -> None:
    _assert_error(server.get("/api/v1/nothing-here"), 404, "not_found")
    _assert_error(requests.delete(server.url + "/api/v1/projects", headers=server.h(), timeout=10), 405)
    _assert_error(server.get("/api/v1/projects/x/runs/y/history?start=abc"), 400)
