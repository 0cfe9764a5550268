"""Small helpers shared by the drop-in modules: the active run, and ``WANDBLITE_*``/``WANDB_*`` lookups.

Layer 4 (beside ``run``). Stdlib only. ``active_run(what)`` is how every module-level call of the
drop-in (``wandblite.save``, ``watch``, ``alert``, ``log_artifact``, ...) finds the run it acts on,
and raises wandb's pre-init error when there is none.
"""

from __future__ import annotations

import os
from typing import Any

from wandblite.errors import Error

__all__ = ["active_run", "env_first", "is_truthy", "on_finish", "set_entity", "set_project"]


def env_first(*names: str) -> str | None:
    """The first non-empty value among the environment variables ``names`` (WANDBLITE_* first)."""
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def is_truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def active_run(what: str) -> Any:
    """The active run (a ``Run`` or a ``DisabledRun``), or wandb's ``Error`` before ``init``."""
    import wandblite

    run = wandblite.run
    if run is None:
        raise Error(f"You must call wandb.init() before {what}")
    return run


def on_finish(run: Any, callback: Any) -> None:
    """Call ``callback()`` when ``run`` finishes, before its exit record is written.

    ``Run.finish`` runs its callbacks on every path that ends a run (``run.finish()``,
    ``wandblite.finish()``, ``with run:``, the atexit and excepthook handlers, SIGTERM), once each.
    A failing callback becomes one warning; the run still finishes.
    """
    callbacks = getattr(run, "_finish_callbacks", None)
    if callbacks is not None:
        callbacks.append(callback)


# wandb.env's setters (Transformers' hyperparameter search calls them through the alias).
PROJECT = "WANDB_PROJECT"
ENTITY = "WANDB_ENTITY"


def set_project(value: str, env: Any = None) -> None:
    """wandb's ``env.set_project``: the default project of later ``init`` calls."""
    (os.environ if env is None else env)[PROJECT] = value or "uncategorized"


def set_entity(value: str, env: Any = None) -> None:
    """wandb's ``env.set_entity``: the default entity of later ``init`` calls."""
    (os.environ if env is None else env)[ENTITY] = value
