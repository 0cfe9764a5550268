"""Import layers: the server never imports sync or requests; sync reaches the server only for the
embedded store; `wandblite --help` loads neither."""

from __future__ import annotations

import subprocess
import sys

from .conftest import clean_env


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, env=clean_env(), check=True).stdout
    return set(out.split())


def test_server_imports_neither_sync_nor_requests() -> None:
    mods = _modules_after("import wandblite.server.app, wandblite.server.serve, wandblite.server.read")
    assert not {m for m in mods if m.startswith("wandblite.sync")}
    assert "requests" not in mods


def test_sync_over_http_does_not_load_the_server_or_sqlalchemy() -> None:
    mods = _modules_after("from wandblite.sync.client import Syncer\nfrom wandblite.sync.transport import HttpTransport")
    assert not {m for m in mods if m.startswith(("wandblite.server", "sqlalchemy", "starlette"))}


def test_cli_help_loads_neither() -> None:
    mods = _modules_after("from wandblite_cli.main import cli\ncli.main(['--help'], standalone_mode=False)")
    assert not {m for m in mods if m.startswith(("wandblite.server", "wandblite.sync", "requests", "sqlalchemy"))}
