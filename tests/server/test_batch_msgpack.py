"""A sync batch sent as msgpack (``vocab.BATCH_MSGPACK``) is the batch its JSON is, on SQLite and PostgreSQL.

* The same body posted as JSON and as msgpack to two runs stores the same rows, console and system
  records, metadata and position (NaN, infinities, -0.0, 64-bit ints, nested values, non-ASCII text).
* A msgpack body JSON could not have given (bytes, an extension type, a map key that is not a string)
  is 400 ``not_json``; broken msgpack is 400 ``malformed_msgpack``; nesting is refused where the
  same body as JSON is (``too_deep``); a refused body stores nothing.
* The sync client sends msgpack, and JSON when msgpack cannot carry a batch exactly (an int beyond
  64 bits) or the server refuses it (``not_json``); through a forwarder that drops the
  ``Content-Type`` (the server then reads the body as JSON, as a server that predates msgpack
  batches did: 400 ``malformed_json``) it sends JSON from then on, and the run arrives whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
import requests

import wandblite
from wandblite.server.wire import MAX_JSON_DEPTH
from wandblite.sync.client import Syncer
from wandblite.sync.transport import HttpTransport
from wandblite.vocab import BATCH_MSGPACK

from . import proxy as proxy_module
from .conftest import ServerProc, assert_same_history, canon, uniq


def _post(srv: ServerProc, project: str, run_id: str, raw: bytes, media_type: str) -> requests.Response:
    return requests.post(f"{srv.url}/api/v1/projects/{project}/runs/{run_id}/batch", data=raw,
                         headers={**srv.h(), "Content-Type": media_type}, timeout=30)


def _packed(body: Any) -> bytes:
    return bytes(msgpack.packb(body, use_bin_type=True))


def _error(r: requests.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else ""


BODY: dict[str, Any] = {
    "run": {"name": "n\u00e9", "state": "finished", "config": {"lr": 0.1, "inf": float("inf"), "deep": {"a": [1, None]}},
            "summary": {"loss": float("nan"), "z": -0.0}, "tags": ["t\u2713"], "exit_code": 0},
    "base": {"rows": 0, "console": 0, "system": 0},
    "rows": [{"idx": i, "final": True, "row": {"_step": i, "_runtime": 0.5 * i, "_timestamp": 1.7e9 + i,
                                               "loss": 1.0 / (i + 1), "acc": i, "big": 2**63 - 1, "neg": -(2**63),
                                               "nan": float("nan"), "ninf": -float("inf"), "zero": -0.0,
                                               "nested": {"x": i * 0.25, "s": "\u00e9\U0001f600", "b": True, "n": None}}}
             for i in range(5)],
    "console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "line \u00e9\n"}],
    "system": [{"idx": 0, "ts": 2.0, "metrics": {"cpu": 12.5}}],
}


def test_a_msgpack_batch_stores_what_its_json_stores(server: ServerProc) -> None:
    project = uniq()
    a = _post(server, project, "as-json", json.dumps(BODY).encode(), "application/json")
    b = _post(server, project, "as-msgpack", _packed(BODY), BATCH_MSGPACK)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json() == b.json()
    assert canon(server.history(project, "as-json")) == canon(server.history(project, "as-msgpack"))
    assert canon([r["row"] for r in server.history(project, "as-msgpack")]) == canon([r["row"] for r in BODY["rows"]])
    for tail in ("", "/console", "/system"):
        got = [server.get(f"/api/v1/projects/{project}/runs/{run}{tail}").json() for run in ("as-json", "as-msgpack")]
        for g in got:
            g.pop("id", None)
            g.pop("updated_at", None)
        assert canon(got[0]) == canon(got[1]), tail


def test_msgpack_bodies_json_cannot_give_are_refused_and_store_nothing(fresh_server: ServerProc) -> None:
    srv = fresh_server.start()
    project = uniq()
    row = {"idx": 0, "row": {"_step": 0, "x": 1.0}}
    refused: list[tuple[bytes, tuple[int, str]]] = [
        (_packed({"rows": [{"idx": 0, "row": {"_step": 0, "blob": b"\x00\x01"}}]}), (400, "not_json")),
        (_packed({"rows": [{"idx": 0, "row": {"_step": 0, "empty": b""}}]}), (400, "not_json")),
        (_packed({"rows": [{"idx": 0, "row": {"_step": 0, 1: 2.0}}]}), (400, "not_json")),
        (_packed({"rows": [row], b"run": {}}), (400, "not_json")),
        (_packed({"rows": [{"idx": 0, "row": {"_step": 0, "e": msgpack.ExtType(5, b"xy")}}]}), (400, "not_json")),
        (_packed({"rows": [{"idx": 0, "row": {"_step": 0, "t": msgpack.Timestamp(1, 0)}}]}), (400, "not_json")),
        (_packed({"rows": [row]})[:-3], (400, "malformed_msgpack")),  # cut short
        (_packed({"rows": [row]}) + b"\x01", (400, "malformed_msgpack")),  # trailing bytes
        (b"\xa3\xff\xfe\xfd", (400, "malformed_msgpack")),  # a str that is not UTF-8
        (b"\xc1", (400, "malformed_msgpack")),  # a byte msgpack never uses
        (b"\x91" * 5000 + b"\x90", (400, "too_deep")),  # past the unpacker's own stack
    ]
    for raw, want in refused:
        assert _error(_post(srv, project, "r", raw, BATCH_MSGPACK)) == want, raw[:40]
    assert srv.position(project, "r")["rows"] == 0
    # Nesting is refused exactly where JSON's is; a body that is not an object is refused the same way.
    for depth in (MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH + 1, 700):
        nested: Any = 1.0
        for _ in range(depth):
            nested = [nested]
        body = {"rows": [{"idx": 0, "row": {"_step": 0, "deep": nested}}]}
        got = _error(_post(srv, project, f"d{depth}", _packed(body), BATCH_MSGPACK))
        assert got == _error(_post(srv, project, f"j{depth}", json.dumps(body).encode(), "application/json")), depth
        assert got[1] in ("", "too_deep")
    assert {_error(_post(srv, project, "d", _packed(x), BATCH_MSGPACK)) for x in (5, "s", [1], None)} == {(400, "bad_request")}


def _write_run(runs: Path, project: str, run_id: str, rows: list[dict[str, Any]]) -> Path:
    run = wandblite.init(project=project, id=run_id, dir=str(runs),
                         settings=wandblite.Settings(console="off", disable_stats=True))
    for r in rows:
        run.log(r)
    run.finish()
    return runs / run_id


def test_sync_falls_back_to_json_for_a_server_that_takes_no_msgpack_batches(
        server: ServerProc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = uniq()
    run_dir = _write_run(tmp_path / "runs", project, "old", [{"loss": 1.0 / (i + 1)} for i in range(40)])
    # A forwarder that drops the Content-Type: the server reads each body as JSON, as one that
    # predates msgpack batches does, and answers the first msgpack batch 400 malformed_json.
    monkeypatch.setattr(proxy_module, "_FORWARDED_REQUEST", ("authorization", "user-agent"))
    with proxy_module.RoundRobinProxy([server.url]) as fwd:
        transport = HttpTransport(fwd.url, server.key)
        res = Syncer(transport, batch_size=10).sync_path(run_dir)
    assert res.ok and res.rows == 40, res
    assert transport.msgpack_batches is False
    batches = [h.status for h in fwd.hops if h.method == "POST" and h.path.endswith("/batch")]
    # the first one refused, then every batch (4 of rows, the last with the metadata) as JSON
    assert batches == [400] + [200] * 5, batches
    assert_same_history(server, project, "old", run_dir)


def test_sync_sends_a_batch_msgpack_cannot_carry_as_json(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    rows = [{"loss": 0.5, "step_id": i} for i in range(12)]
    rows[7]["huge"] = 2**70  # beyond 64 bits: that batch goes as JSON, the others as msgpack
    run_dir = _write_run(tmp_path / "runs", project, "big", rows)
    with proxy_module.RoundRobinProxy([server.url]) as fwd:
        transport = HttpTransport(fwd.url, server.key)
        res = Syncer(transport, batch_size=4).sync_path(run_dir)
    assert res.ok and res.rows == 12, res
    assert transport.msgpack_batches is True
    assert all(h.status == 200 for h in fwd.hops), fwd.hops
    assert_same_history(server, project, "big", run_dir)
    # A map key that is not a string: the server says not_json, the transport sends that batch as
    # JSON (which writes the key as text), and keeps sending msgpack.
    pos = transport.batch(project, "keys", {"rows": [{"idx": 0, "row": {"_step": 0, "d": {1: 0.5, None: 2}}}]})
    assert pos["rows"] == 1 and transport.msgpack_batches is True
    assert server.history(project, "keys")[0]["row"] == {"_step": 0, "d": {"1": 0.5, "null": 2}}
