"""The API's OpenAPI contract: generated from the route table, served, and held by the clients and a fuzzer.

* The document the server serves at ``/api/v1/openapi.json`` names exactly the API routes the app
  serves; an operation without a route, or a route without an operation, stops the app from being made.
* ``wandblite.Api`` and the sync client, talking to a real server process, make only requests the
  contract describes (path, query, body) and get only answers it describes (status, type, schema):
  every exchange of a session that syncs and reads a run with metrics, media, files, artifacts and
  alerts is checked.
* schemathesis fuzzes every operation of the served contract against a real server process with a
  valid key, on SQLite and PostgreSQL: no answer >= 500, every answer in its schema (status, content
  type, headers, body).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema
import msgpack
import pytest
import requests
from starlette.routing import Route

import wandblite
from wandblite.server import openapi
from wandblite.server.app import create_app
from wandblite.server.store import Store
from wandblite.sync.client import Syncer
from wandblite.sync.transport import HttpTransport
from wandblite.vocab import BATCH_MSGPACK

from .conftest import ServerProc, clean_env, uniq

WRITER = r"""
import os, sys, numpy as np, wandblite
project, root = sys.argv[1], sys.argv[2]
os.makedirs("data", exist_ok=True)
open("data/notes.txt", "w").write("notes")
run = wandblite.init(project=project, id="contract", dir=root, config={"lr": 0.1, "layers": [1, 2]})
run.save("data/notes.txt", policy="now")
for i in range(40):
    run.log({"loss": 1.0 / (i + 1), "epoch": i // 10, "nested": {"acc": i * 0.1}})
run.log({"img": wandblite.Image(np.zeros((4, 4, 3), dtype=np.uint8)), "hist": wandblite.Histogram([1, 2, 2, 3])})
art = wandblite.Artifact("data", "dataset", metadata={"rows": 3})
with art.new_file("table.csv", "w") as f:
    f.write("a,b\n1,2\n")
run.log_artifact(art, aliases=["best"])
run.use_artifact("data:best")
run.alert("loss spike", "loss went up", level="WARN")
print("console line", flush=True)
run.finish()
"""


# ------------------------------------------------------------------------------ the contract as JSON Schema


def _json_schema(s: Any) -> Any:
    """OpenAPI 3.0's schema dialect as JSON Schema: ``nullable: true`` becomes a ``null`` type."""
    if isinstance(s, list):
        return [_json_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {k: _json_schema(v) for k, v in s.items() if k not in ("nullable", "format")}
    if s.get("nullable") and "type" in s:
        out["type"] = [s["type"], "null"]
    return out


def _valid(schema: dict[str, Any], value: Any, what: str) -> None:
    errors = list(jsonschema.Draft7Validator(_json_schema(schema)).iter_errors(value))
    assert not errors, f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}"


class Contract:
    """The served document, and the check of one exchange against it."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.paths: list[tuple[re.Pattern[str], str]] = []
        for p in doc["paths"]:
            rx = re.escape(p)
            rx = rx.replace(r"\{name\}", "(?P<name>.+)") if "/files/" in p else rx
            rx = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", rx)
            self.paths.append((re.compile(rx + "$"), p))
        # A literal path (/media/missing) before a template that would also match it.
        self.paths.sort(key=lambda t: "{" in t[1])

    def operation(self, method: str, path: str) -> tuple[dict[str, Any], dict[str, str]]:
        for rx, template in self.paths:
            m = rx.match(path)
            if m and method.lower() in self.doc["paths"][template]:
                return self.doc["paths"][template][method.lower()], {k: unquote(v) for k, v in m.groupdict().items()}
        raise AssertionError(f"{method} {path}: no operation of the contract")

    def check(self, method: str, url: str, content_type: str | None, body: Any, status: int,
              answer_type: str, answer: bytes) -> None:
        parts = urlsplit(url)
        op, path_values = self.operation(method, parts.path)
        what = f"{method} {parts.path}"
        declared = {p["name"]: p for p in op["parameters"]}
        for name, value in path_values.items():
            _valid(declared[name]["schema"], value, f"{what}: path parameter {name}")
        query: dict[str, list[str]] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(k, []).append(v)
        for name, values in query.items():
            assert name in declared and declared[name]["in"] == "query", f"{what}: undeclared query parameter {name}"
            schema = declared[name]["schema"]
            if schema.get("type") == "array":
                _valid(schema, values, f"{what}: query {name}")
                continue
            raw: Any = values[-1]
            if schema.get("type") == "integer":
                raw = int(raw)
            elif schema.get("type") == "number":
                raw = float(raw)
            _valid(schema, raw, f"{what}: query {name}")
        for name, p in declared.items():
            if p["in"] == "query" and p["required"]:
                assert name in query, f"{what}: required query parameter {name} missing"
        if "requestBody" in op:
            content = op["requestBody"]["content"]
            media_type = (content_type or "").split(";")[0]
            assert media_type in content, f"{what}: body sent as {content_type}, the contract says {list(content)}"
            if media_type == "application/json":
                _valid(content[media_type]["schema"], json.loads(body), f"{what}: body")
            elif media_type == BATCH_MSGPACK:  # the JSON body's object, as msgpack
                _valid(content["application/json"]["schema"], msgpack.unpackb(body), f"{what}: body")
        else:
            assert not body, f"{what}: a body the contract does not describe"
        responses = op["responses"]
        spec = responses.get(str(status)) or responses["default"]
        assert status < 500, f"{what}: {status} {answer[:200]!r}"
        if status >= 400:
            spec = responses["default"]
        ctype = answer_type.split(";")[0]
        if spec.get("content"):
            assert ctype in spec["content"], f"{what}: answered {ctype}, the contract says {list(spec['content'])}"
            if ctype == "application/json":
                _valid(spec["content"][ctype]["schema"], json.loads(answer), f"{what}: answer {status}")


# ------------------------------------------------------------------------------ generated from the routes


def _api_pairs(app: Any) -> set[tuple[str, str]]:
    out = set()
    for r in app.routes:
        if isinstance(r, Route) and r.path.startswith("/api/v1/"):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)
            out.update((m.lower(), path) for m in r.methods or () if m != "HEAD")
    return out


def test_the_served_contract_names_exactly_the_routes_the_app_serves(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}", media_dir=tmp_path / "media")
    app = create_app(store)
    doc = app.state.openapi
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert described == _api_pairs(app)
    assert ("get", "/api/v1/openapi.json") in described
    # every operation answers the one error shape by default
    assert all(op["responses"]["default"]["content"]["application/json"]["schema"] == openapi.ERROR
               for ops in doc["paths"].values() for op in ops.values())
    store.close()


def test_a_route_without_an_operation_or_an_operation_without_a_route_stops_the_app(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}", media_dir=tmp_path / "media")
    ops = dict(openapi.OPERATIONS)
    del ops[("GET", "/api/v1/projects")]
    monkeypatch.setattr(openapi, "OPERATIONS", ops)
    with pytest.raises(LookupError, match=r"routes without an operation \[\('GET', '/api/v1/projects'\)\]"):
        create_app(store)
    ops = dict(openapi.OPERATIONS)
    ops[("GET", "/api/v1/projects")] = openapi.Operation("again")
    ops[("GET", "/api/v1/nowhere")] = openapi.Operation("a route nobody serves")
    monkeypatch.setattr(openapi, "OPERATIONS", ops)
    with pytest.raises(LookupError, match=r"operations without a route \[\('GET', '/api/v1/nowhere'\)\]"):
        create_app(store)
    store.close()


def test_query_strings_are_checked_against_the_contract(fresh_server: ServerProc) -> None:
    srv = fresh_server.start()
    base = "/api/v1/projects/p/runs/r"
    for path, code in [(base + "/history?limit=abc", "bad_request"), (base + "/history?limit=0", "bad_request"),
                       (base + "/history?start=-1", "bad_request"), (base + "/series", "bad_request"),
                       (base + "/series?keys=a&min_x=nan", "bad_request"), (base + "/media?key=a%00b", "bad_request"),
                       ("/api/v1/projects/p/runs?order=nonsense", "bad_request"),
                       ("/api/v1/projects/p/runs?limit=99999999999999999999999", "bad_request")]:
        r = srv.get(path)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (path, r.text)
    r = srv.get(base + "/history?limit=10&unknown=1")  # an undeclared parameter is ignored
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# ------------------------------------------------------------------------------ the clients hold it


class _Recorder:
    """Every request ``requests`` sends in this process, with its answer (patched into HTTPAdapter.send)."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, str, str | None, Any, int, str, bytes]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = requests.adapters.HTTPAdapter.send
        recorder = self

        def send(adapter: Any, request: requests.PreparedRequest, *args: Any, **kw: Any) -> requests.Response:
            resp = original(adapter, request, *args, **kw)
            body = request.body if isinstance(request.body, (bytes, str)) else None
            if request.headers.get("Content-Type", "").startswith("application/octet-stream"):
                body = None  # a blob's bytes: the contract says only "binary"
            if kw.get("stream"):
                content = b""  # a streamed download is read by its caller; its status and type are checked
            else:
                content = resp.content
            recorder.exchanges.append((str(request.method), str(request.url), request.headers.get("Content-Type"),
                                       body, resp.status_code, resp.headers.get("Content-Type", ""), content))
            return resp

        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)


def test_the_api_and_the_sync_client_hold_the_contract(fresh_server: ServerProc, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    srv = fresh_server.start()
    contract = Contract(requests.get(srv.url + "/api/v1/openapi.json", timeout=10).json())
    project = uniq()
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", WRITER, project, str(tmp_path / "runs")], capture_output=True,
                          text=True, timeout=120, cwd=str(work),
                          env=clean_env(WANDBLITE_DISABLE_STATS="1"))
    assert proc.returncode == 0, proc.stderr
    rec = _Recorder()
    rec.install(monkeypatch)
    res = Syncer(HttpTransport(srv.url, srv.key), use_cache=False).sync_path(tmp_path / "runs" / "contract")
    assert res.ok and res.rows == 41, res
    synced = len(rec.exchanges)
    with wandblite.Api(server=srv.url, api_key=srv.key) as api:
        assert [p.name for p in api.projects()] == [project]
        (run,) = api.runs(project, filters={"config.lr": {"$gt": 0.01}}, order="-created_at")
        assert run.summary["loss"] == pytest.approx(1 / 40)
        assert len(list(run.scan_history(page_size=7))) == 41
        h = run.history(samples=10)
        assert h["_step"].iloc[0] == 0 and h["loss"].iloc[-1] == pytest.approx(1 / 40)
        assert run.history(keys=["loss"], samples=5)["loss"].iloc[-1] == pytest.approx(1 / 40)
        assert len(run.history(keys=["loss"], x_axis="epoch", samples=5)) > 0
        assert {k["key"] for k in run.list_keys()} >= {"loss", "epoch", "nested.acc", "img", "hist"}
        (img,) = run.media("img")
        assert img["value"]["_type"] == "image-file"
        assert run.system_history() == []  # the writer ran without the system sampler
        (f,) = run.files()
        f.download(root=str(tmp_path / "dl"))
        assert (tmp_path / "dl" / "data" / "notes.txt").read_text() == "notes"
        (logged,) = run.logged_artifacts()
        art = api.artifact(f"{project}/data:best")
        assert art.version == logged.version == "v0"
        art.download(root=str(tmp_path / "art"))
        assert (tmp_path / "art" / "table.csv").read_text() == "a,b\n1,2\n"
        assert [a["title"] for a in run.alerts()] == ["loss spike"]
    assert synced >= 3 and len(rec.exchanges) > synced + 10
    for method, url, ctype, body, status, answer_type, answer in rec.exchanges:
        contract.check(method, url, ctype, body, status, answer_type, answer)
    used = {contract.operation(m, urlsplit(u).path)[0]["operationId"] for m, u, *_rest in rec.exchanges}
    assert used >= {"get_projects_project_runs_run_id_position", "post_projects_project_runs_run_id_batch",
                    "post_media_missing", "put_media_sha256", "get_projects_project_runs",
                    "get_projects_project_runs_run_id_history", "get_projects_project_runs_run_id_series",
                    "get_projects_project_runs_run_id_media", "get_projects_project_runs_run_id_files_name",
                    "get_projects_project_artifacts_name_ref", "get_media_sha256"}, sorted(used)


# ------------------------------------------------------------------------------ fuzzed


def test_schemathesis_finds_no_500_and_no_answer_outside_the_contract(backend: str, tmp_path: Path) -> None:
    """Every operation, positive and negative examples (bounded), with a valid key: schemathesis's
    checks all pass but ``positive_data_acceptance``, whose premise (a request the schema admits is
    accepted) the API cannot meet for rules no JSON Schema says: a blob's sha256 must be its body's
    hash, a batch's indexes must follow the store's position, a name must exist to be read.
    One worker: CPython 3.11's ``ast`` is not safe across threads, and hypothesis parses lambdas
    (a "recursion depth mismatch" SystemError inside the fuzzer, not the server)."""
    srv = ServerProc(backend, tmp_path / "media", tmp_path / "home").start()
    try:
        _fuzz(srv, tmp_path)
    finally:
        srv.stop()


def test_schemathesis_against_an_empty_store_without_a_key(tmp_path: Path) -> None:
    """The same fuzzing, fewer examples, as the anonymous against a fresh server on a fresh SQLite file
    (no project, run or blob): every answer (mostly 401 and 404, the blob reads' included) is one the
    contract names, and none is a 500."""
    srv = ServerProc(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "media", tmp_path / "home").start()
    try:
        _fuzz(srv, tmp_path, key=None, examples=5)
    finally:
        srv.stop()


def _fuzz(srv: ServerProc, tmp_path: Path, key: str | None = "", examples: int = 10) -> None:
    auth = ["-H", f"Authorization: Bearer {srv.key if key == '' else key}"] if key is not None else []
    proc = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", srv.url + "/api/v1/openapi.json", *auth,
         "--checks", "all", "--exclude-checks", "positive_data_acceptance", "--max-examples", str(examples),
         "--workers", "1", "--seed", "1717", "--suppress-health-check", "all", "--generation-database", "none",
         "--no-color", "--output-truncate", "true", "--report", "junit", "--report-dir", str(tmp_path / "st")],
        capture_output=True, text=True, timeout=1200, env=clean_env(), cwd=str(tmp_path))  # its cache stays there
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    (report,) = (tmp_path / "st").glob("junit*.xml")
    tested = set(re.findall(r'testcase name="([A-Z]+ /api/v1/[^"]*)"', report.read_text()))
    # every operation, but the document's own (schemathesis leaves out the URL it read the schema from)
    assert tested == {f"{m} {p}" for m, p in openapi.OPERATIONS if p != "/api/v1/openapi.json"}, out[-3000:]
    assert srv.alive()
