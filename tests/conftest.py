"""Shared fixtures: a fresh runs directory and a clean module state per test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import wandblite

# Read once at start-up: the autouse fixture below clears WANDBLITE_* variables inside each test.
_NO_SKIP = os.environ.get("WANDBLITE_NO_SKIP") == "1"


@pytest.fixture(autouse=True)
def _clean_wandblite(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith(("WANDB_", "WANDBLITE_")):
            monkeypatch.delenv(var, raising=False)
    yield
    run = wandblite.run
    if run is not None:
        try:
            run.finish()
        except Exception:
            pass
    wandblite._reset_globals()


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


def run_script(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
               check: bool = False, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh interpreter (dedented), returning the completed process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, check=check, **kw,  # type: ignore[arg-type]
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With WANDBLITE_NO_SKIP=1 (CI), a skipped test fails: a missing package or service is a CI bug."""
    report = yield
    if report.skipped and _NO_SKIP and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped, but WANDBLITE_NO_SKIP=1 forbids skips in CI: {reason}"
    return report
