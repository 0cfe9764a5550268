"""Fixtures for the dashboard's end-to-end tests: a real server, real runs, a real headless Chromium.

* ``dash`` (session): runs written by the real SDK in a subprocess (``make_runs.py``), a real
  ``wandblite server --public-read`` on 127.0.0.1 over a fresh store (``dash_backend``), and the runs
  uploaded with ``wandblite sync`` as a user would.
* ``dash_backend`` (session, parametrised): the database under ``dash`` and the login test's
  server: ``sqlite``, then ``postgres`` (a fresh database on 127.0.0.1:5432, as in
  ``tests/server/conftest.py``: unreachable skips, or fails with ``WANDBLITE_REQUIRE_POSTGRES=1``).
  The PostgreSQL pass adds about 30 s; its screenshots go to ``test-artifacts/dashboard/postgres/``.
* ``browser`` (session): Debian's Chromium (``/usr/bin/chromium``) driven by Python playwright.
  Its own browser downloads are never used (``playwright install`` cannot run here). A missing
  Chromium or playwright FAILS the tests with what to install: CI forbids skipped tests.
* ``page``: a fresh browser context and page; uncaught page errors and CSP violations fail the test.
* ``shot(page, name)`` keeps a full-page screenshot in ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import ServerProc, clean_env, cli, fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
MAKE_RUNS = Path(__file__).with_name("make_runs.py")
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session", params=BACKENDS)
def dash_backend(request: pytest.FixtureRequest) -> str:
    """The database under the servers of a test: every dashboard test runs on each."""
    return str(request.param)


@contextmanager
def database(backend: str, path: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file at ``path``, or a new PostgreSQL database (dropped after)."""
    if backend == "postgres":
        with fresh_postgres_database("wl_dash") as url:
            yield url
    else:
        yield f"sqlite:///{path}"


@dataclass
class Dash:
    """A running public-read server holding the test runs, and what was logged into them."""

    server: ServerProc
    runs_dir: Path
    logged: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def run(self, run_id: str) -> dict[str, Any]:
        return next(r for r in self.logged["runs"] if r["id"] == run_id)

    def sync(self, *paths: Path) -> None:
        r = cli("sync", *(str(p) for p in paths or (self.runs_dir,)), "--server", self.url,
                "--api-key", self.server.key, home=self.server.home)
        assert r.returncode == 0, r.stderr


def write_runs(runs_dir: Path) -> dict[str, Any]:
    env = clean_env(WANDBLITE_DISABLE_STATS="1")
    p = subprocess.run([sys.executable, str(MAKE_RUNS), str(runs_dir)], capture_output=True, text=True,
                       timeout=180, env=env, cwd=str(ROOT))
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="session")
def dash_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The test runs, written once for every backend."""
    runs = tmp_path_factory.mktemp("dash-runs") / "runs"
    return runs, write_runs(runs)


@pytest.fixture(scope="session")
def dash(dash_backend: str, dash_runs: tuple[Path, dict[str, Any]],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    tmp = tmp_path_factory.mktemp(f"dash-{dash_backend}")
    runs, logged = dash_runs
    with database(dash_backend, tmp / "store.db") as url:
        srv = ServerProc(url, tmp / "media", tmp / "home", public_read=True).start()
        try:
            d = Dash(srv, runs, logged)
            d.sync()
            yield d
        finally:
            srv.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the dashboard tests need Python playwright: pip install playwright "
                    "(never `playwright install`: they drive Debian's chromium)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the dashboard tests need Debian's Chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    callspec = getattr(request.node, "callspec", None)
    _SHOT_DIRS[id(pg)] = ARTIFACTS / "postgres" if callspec and callspec.params.get("dash_backend") == "postgres" \
        else ARTIFACTS
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # The page's own CSP must never have to refuse something the app or plotly does.
    pg.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        yield pg
    finally:
        ctx.close()
        _SHOT_DIRS.pop(id(pg), None)
    assert not errors, f"uncaught errors or CSP violations in the page: {errors}"


_SHOT_DIRS: dict[int, Path] = {}  # id(page) -> where its screenshots go


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/dashboard/[postgres/]<name>.png``."""
    where = _SHOT_DIRS.get(id(page), ARTIFACTS)
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{name}.png"
    # Sticky bars would be painted in the middle of a full-page capture: unstick them for it.
    page.screenshot(path=str(path), full_page=True, style="#topbar, .workspace-toolbar { position: static !important; }")
    return path
