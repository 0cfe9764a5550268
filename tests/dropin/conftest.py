"""Fixtures for the drop-in tests: a runs directory, quiet runs, and a fresh interpreter helper.

The root conftest clears every ``WANDB_*``/``WANDBLITE_*`` variable and finishes any active run
after each test; here console capture and the system sampler are switched off (they are not what
these tests are about), and ``WANDBLITE_HOME`` points into the test's tmp_path so ``login`` never
touches the real home directory.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _quiet_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("WANDBLITE_CONSOLE", "off")
    monkeypatch.setenv("WANDBLITE_DISABLE_STATS", "1")
    monkeypatch.setenv("WANDBLITE_HOME", str(tmp_path / "home"))
    yield
    watch_module = importlib.import_module("wandblite.watch")  # the attribute is the function
    for w in list(watch_module._watched):
        w.remove()
    watch_module._watched.clear()
