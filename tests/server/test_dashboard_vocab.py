"""The dashboard's JavaScript takes the shared vocabulary from the server, never from a copy of its own."""

from __future__ import annotations

import json
import re

from wandblite import vocab
from wandblite.server.dashboard import STATIC_DIR, dashboard_routes, vocab_js


def test_vocab_js_exports_every_constant_as_json() -> None:
    text = vocab_js()
    exported = dict(re.findall(r"^export const (\w+) = (.*);$", text, flags=re.M))
    assert {k: json.loads(v) for k, v in exported.items()} == vocab.js_constants()


def test_vocab_js_is_served_before_the_static_files() -> None:
    paths = [r.path for r in dashboard_routes()]
    assert "/static/vocab.js" in paths
    assert paths.index("/static/vocab.js") < paths.index("/static/{name}")
    assert not (STATIC_DIR / "vocab.js").exists()  # made from wandblite/vocab.py, never a file


def test_no_static_module_restates_the_vocabulary() -> None:
    for path in STATIC_DIR.glob("*.js"):
        code = path.read_text("utf-8")
        for literal in ('"_runtime"', '"_timestamp"', '"crashed"', "DEFAULT_ALERT_WAIT = ", "name.length > 1024"):
            assert literal not in code, f"{path.name} restates {literal}: import it from ./vocab.js"
