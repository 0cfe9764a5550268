"""Import layers at run time: the server never imports sync or requests; sync never loads the server
(the embedded store is joined to sync by ``wandblite.embedded``, above both); `wandblite --help` loads
neither. The static twin of these checks, over every import in the source, is ``tests/test_layers.py``."""

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


def test_all_of_sync_loads_no_server() -> None:
    mods = _modules_after("import wandblite.sync, wandblite.sync.client, wandblite.sync.transport")
    assert not {m for m in mods if m.startswith(("wandblite.server", "sqlalchemy", "starlette"))}
