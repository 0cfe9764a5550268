"""Fixtures for the core semantics tests: a fresh run in tmp_path, and a clean module state after.

Every test that starts a run gets it from ``run`` (or ``new_run`` for more than one). Whatever a test
leaves behind, the module-level ``wandblite.run`` is finished and the pre-init stubs are restored, so
no test sees another test's run. The once-per-process warning memory is cleared too, so a test that
expects a ``repeat=False`` warning sees it whatever ran before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wandblite

_run_module = importlib.import_module("wandblite.run")  # `wandblite.run` is the active Run, not the module
_term_module = importlib.import_module("wandblite.term")


def _cleanup() -> None:
    active = getattr(wandblite, "run", None)
    if active is not None:
        try:
            active.finish()
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's own failure
            pass
    for r in list(getattr(_run_module, "_active", [])):
        try:
            r.finish()
        except Exception:  # noqa: BLE001
            pass
    wandblite._reset_globals()


@pytest.fixture(autouse=True)
def _clean_wandblite_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WANDBLITE_SILENT", raising=False)
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    _cleanup()
    _term_module._warned_once.clear()
    yield
    _cleanup()
    _term_module._warned_once.clear()


@pytest.fixture
def new_run(tmp_path: Path) -> Callable[..., Any]:
    """Start a run under tmp_path (the run directory is tmp_path/<run.id>)."""

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("project", "p")
        return wandblite.init(dir=str(tmp_path), reinit=True, **kwargs)

    return start


@pytest.fixture
def run(new_run: Callable[..., Any]) -> Any:
    """A fresh active run."""
    return new_run()
