"""Browser sessions: a cookie reads, never writes, and dies with its API key."""

from __future__ import annotations

from pathlib import Path

import requests

from .conftest import ServerProc, cli


def _batch(srv: ServerProc, key: str | None = None, cookies: dict[str, str] | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{srv.url}/api/v1/projects/sp/runs/r/batch", json={"rows": [{"idx": 0, "row": {"a": 1}}]},
                         headers=headers, cookies=cookies, timeout=10)


def test_cookie_session_reads_but_never_writes_and_revocation_ends_it(tmp_path: Path) -> None:
    srv = ServerProc(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "media", tmp_path / "home").start()
    try:
        key = srv.create_key("browser")
        assert _batch(srv, key=srv.key).status_code == 200
        s = requests.Session()
        assert s.get(srv.url + "/api/v1/session", timeout=10).json() == {"authenticated": False, "public_read": False}
        bad = s.post(srv.url + "/api/v1/session", json={"api_key": "wl_wrong"}, timeout=10)
        assert bad.status_code == 401 and "set-cookie" not in bad.headers
        assert s.post(srv.url + "/api/v1/session", json={}, timeout=10).status_code == 400
        r = s.post(srv.url + "/api/v1/session", json={"api_key": key}, timeout=10)
        assert r.status_code == 200 and r.json()["authenticated"] is True
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
        assert key not in cookie  # a random token, not the key
        assert s.get(srv.url + "/api/v1/session", timeout=10).json()["authenticated"] is True
        assert s.get(srv.url + "/api/v1/projects/sp/runs", timeout=10).status_code == 200
        assert s.get(srv.url + "/api/v1/projects/sp/runs/r/series?keys=a", timeout=10).status_code == 200
        # Writes take the Bearer header only: the cookie alone is refused and changes nothing.
        w = s.post(srv.url + "/api/v1/projects/sp/runs/r/batch", json={"rows": [{"idx": 1, "row": {"a": 2}}]},
                   timeout=10)
        assert w.status_code == 401 and srv.position("sp", "r")["rows"] == 1
        assert s.post(srv.url + "/api/v1/media/missing", json={"sha256": []}, timeout=10).status_code == 401
        # Revoking the key ends its sessions.
        listed = cli("server", "keys", "list", "--json", "--db", str(srv.db), home=srv.home)
        kid = next(line for line in listed.stdout.splitlines() if '"browser"' in line)
        import json

        assert cli("server", "keys", "revoke", str(json.loads(kid)["id"]), "--db", str(srv.db),
                   home=srv.home).returncode == 0
        assert s.get(srv.url + "/api/v1/projects/sp/runs", timeout=10).status_code == 401
        assert s.get(srv.url + "/api/v1/session", timeout=10).json()["authenticated"] is False
        # Logout forgets the session of a live key.
        s2 = requests.Session()
        assert s2.post(srv.url + "/api/v1/session", json={"api_key": srv.key}, timeout=10).status_code == 200
        assert s2.get(srv.url + "/api/v1/projects", timeout=10).status_code == 200
        token = s2.cookies.get("wandblite_session")
        assert s2.delete(srv.url + "/api/v1/session", timeout=10).json()["authenticated"] is False
        assert requests.get(srv.url + "/api/v1/projects", cookies={"wandblite_session": token},
                            timeout=10).status_code == 401
    finally:
        srv.stop()


def test_public_read_server_says_so(tmp_path: Path) -> None:
    srv = ServerProc(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "media", tmp_path / "home", public_read=True).start()
    try:
        assert requests.get(srv.url + "/api/v1/session", timeout=10).json() == {"authenticated": False,
                                                                                 "public_read": True}
        assert requests.get(srv.url + "/api/v1/projects", timeout=10).status_code == 200
        assert _batch(srv).status_code == 401
    finally:
        srv.stop()
