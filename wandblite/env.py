"""Small helpers shared by the drop-in modules: the active run, and ``WANDBLITE_*``/``WANDB_*`` lookups.

Layer 4 (beside ``run``, below it). Stdlib, ``errors`` and ``surface`` only; it imports neither
``run`` nor the package. The active run lives here: ``init`` sets it (``set_active_run``), a run
that finishes clears it, and the package's module-level names (``wandblite.run``, ``.log``,
``.config``, ...) follow it through the callback the package registers with
``on_active_run_change``. ``active_run(what)`` is how every module-level call of the drop-in
(``wandblite.save``, ``watch``, ``alert``, ``log_artifact``, ...) finds the run it acts on, and
raises wandb's pre-init error when there is none.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from wandblite.errors import Error
from wandblite.surface import RunSurface

__all__ = [
    "active_run",
    "current_run",
    "env_first",
    "is_truthy",
    "on_active_run_change",
    "set_active_run",
    "set_entity",
    "set_project",
]

_active: RunSurface | None = None
_listeners: list[Callable[[RunSurface | None], None]] = []


def env_first(*names: str) -> str | None:
    """The first non-empty value among the environment variables ``names`` (WANDBLITE_* first)."""
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def is_truthy(value: str | None) -> bool:
    """Whether an environment value switches something on: ``1``, ``true``, ``yes`` or ``on`` (any case)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def active_run(what: str) -> RunSurface:
    """The active run (a ``Run`` or a ``DisabledRun``), or wandb's ``Error`` before ``init``."""
    run = _active
    if run is None:
        raise Error(f"You must call wandb.init() before {what}")
    return run


def current_run() -> RunSurface | None:
    """The active run, or None before ``init`` and after the active run finished."""
    return _active


def set_active_run(run: RunSurface | None) -> None:
    """Make ``run`` the active run (None: there is none) and tell every ``on_active_run_change`` callback."""
    global _active
    _active = run
    for callback in _listeners:
        callback(run)


def on_active_run_change(callback: Callable[[RunSurface | None], None]) -> None:
    """Call ``callback(run)`` whenever the active run changes (``run`` None: no active run)."""
    _listeners.append(callback)


# wandb.env's setters (Transformers' hyperparameter search calls them through the alias).
PROJECT = "WANDB_PROJECT"
ENTITY = "WANDB_ENTITY"


def set_project(value: str, env: Any = None) -> None:
    """wandb's ``env.set_project``: the default project of later ``init`` calls."""
    (os.environ if env is None else env)[PROJECT] = value or "uncategorized"


def set_entity(value: str, env: Any = None) -> None:
    """wandb's ``env.set_entity``: the default entity of later ``init`` calls."""
    (os.environ if env is None else env)[ENTITY] = value
