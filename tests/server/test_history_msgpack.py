"""``GET .../history`` as msgpack (``Accept: vocab.HISTORY_MSGPACK``) against the JSON answer, on a real
server on SQLite and PostgreSQL.

The rows are every shape the chunk codec keeps (``test_history_chunks._row``: nested values, media,
NaN and infinities, -0.0, ints beyond a double's and beyond 64 bits, lone surrogates, templates that
change from row to row, a float ``_step``) plus long runs of flat rows, and a provisional last row.
``wandblite.Api().run().scan_history()`` (which asks for msgpack) must give exactly the rows the
JSON pages give; a client that does not ask gets JSON; a page msgpack cannot carry comes as JSON.
"""

from __future__ import annotations

import json
import random
from typing import Any

import msgpack
import requests

import wandblite
from wandblite.api import RemoteMedia
from wandblite.server.chunks import CHUNK_ROWS
from wandblite.vocab import HISTORY_MSGPACK, json_text

from .conftest import ServerProc, uniq
from .test_history_chunks import _row, _sent


def _json_rows(server: ServerProc, project: str, run: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start: Any = 0
    while start is not None:
        r = requests.get(f"{server.url}/api/v1/projects/{project}/runs/{run}/history", params={"start": start, "limit": 700},
                         headers={"Authorization": f"Bearer {server.key}"}, timeout=60)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        page = json.loads(r.content)
        out.extend(item["row"] for item in page["rows"])
        start = page["next"]
    return out


def test_msgpack_scan_gives_the_json_rows_exactly(server: ServerProc) -> None:
    project = uniq("hm")
    rnd = random.Random(3)
    mixed = _sent([_row(i, rnd) for i in range(2500)])
    flat = [{"_step": 2500 + i, "_runtime": i * 0.5, "_timestamp": 1.7e9 + i, "loss": rnd.gauss(0, 1), "n": i,
             "tag": "x", "ok": True, "nan": float("nan") if i % 7 == 0 else 1.5} for i in range(5000)]
    rows = mixed + _sent(flat)
    items: list[dict[str, Any]] = [{"idx": i, "row": r} for i, r in enumerate(rows)]
    items.append({"idx": len(rows), "final": False, "row": {"_step": 10**6, "loss": 0.25, "deep": {"x": [1, {"y": 2}]}}})
    for i in range(0, len(items), 3000):
        wandblite_batch = {"rows": items[i:i + 3000]}
        r = requests.post(f"{server.url}/api/v1/projects/{project}/runs/r/batch", data=json_text(wandblite_batch),
                          headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
                          timeout=60)
        assert r.status_code == 200, r.text
    want = _json_rows(server, project, "r")
    assert len(want) == len(items)
    api = wandblite.Api(server=server.url, api_key=server.key)
    for page_size in (1, 999, 10_000):
        got = list(api.run(f"{project}/r").scan_history(page_size=page_size))
        # the same rows, values and types (NaN has no ==: compare as the store's JSON text)
        assert [json_text(_plain(g)) for g in got] == [json_text(w) for w in want], page_size
        assert [[type(v) for v in _plain(g).values()] for g in got] == [[type(v) for v in w.values()] for w in want]
    # Rows reduced to keys and a step range go through the same filters as before.
    some = list(api.run(f"{project}/r").scan_history(keys=["loss"], min_step=3000, max_step=4000, page_size=500))
    assert some == [{"_step": w["_step"], "loss": w["loss"]} for w in want
                    if "loss" in w and isinstance(w["_step"], (int, float)) and 3000 <= w["_step"] < 4000]

    auth = {"Authorization": f"Bearer {server.key}"}
    url = f"{server.url}/api/v1/projects/{project}/runs/r/history"
    r = requests.get(url, params={"start": 3000, "limit": 2000}, headers={**auth, "Accept": HISTORY_MSGPACK}, timeout=60)
    assert r.headers["content-type"] == HISTORY_MSGPACK
    page = msgpack.unpackb(r.content, ext_hook=lambda code, data: (code, len(data)))
    assert page["next"] == 5000 and page["pending"] is None
    first, keys, cols = page["blocks"][0]  # rows 3000.. up to the end of their chunk
    m = 2 * CHUNK_ROWS - 3000
    assert first == 3000 and keys[:4] == ["_step", "_runtime", "_timestamp", "loss"]
    assert cols[0] == (2, 8 * m) and cols[3] == (1, 8 * m) and cols[5] == ["x"] * m  # int64, float64, constant
    assert sum(c[1] // 8 if isinstance(c, tuple) else len(c) for _f, _k, (c, *_rest) in page["blocks"]) == 2000
    r = requests.get(url, params={"start": 3000, "limit": 2000}, headers=auth, timeout=60)
    assert r.headers["content-type"].startswith("application/json") and len(r.json()["rows"]) == 2000
    # A page holding 10**400 (kind 3 rows) cannot be msgpack: JSON comes back, and the client reads it.
    big = next(i for i, w in enumerate(want) if w.get("huge") == 10**400)
    r = requests.get(url, params={"start": big, "limit": 1}, headers={**auth, "Accept": HISTORY_MSGPACK}, timeout=60)
    assert r.headers["content-type"].startswith("application/json") and r.json()["rows"][0]["row"]["huge"] == 10**400


def _plain(row: Any) -> Any:
    """A scanned row as stored: a media value (``RemoteMedia``, a mapping) back to its dict."""
    if isinstance(row, RemoteMedia):
        return dict(row)
    if isinstance(row, dict):
        return {k: _plain(v) for k, v in row.items()}
    if isinstance(row, list):
        return [_plain(v) for v in row]
    return row
