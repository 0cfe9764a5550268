"""wandb's module-level odds and ends: ``alert``/``AlertLevel``, ``setup``, ``require``, ``_attach``.

Layer 4. Stdlib only. Each module-level call acts on the active run (``wandblite.env.active_run``)
and raises wandb's pre-init ``Error`` before ``init``, as wandb's do.

An alert is recorded as an ALERT record ``[ts, {"title", "text", "level", "wait_duration"}]``:
``level`` is ``"INFO"``, ``"WARN"`` or ``"ERROR"``; ``wait_duration`` is in seconds (a
``timedelta`` is converted) or nil. wandb's server uses it to throttle repeated alerts of the
same title; offline every alert is kept, and the wandblite server applies it when the run is synced:
an alert within its ``wait_duration`` (default ``vocab.DEFAULT_ALERT_WAIT``, 60 s) of the last sent
alert of the same title is marked ``throttled`` (``wandblite.throttle``; the dashboard,
``wandblite.Api`` and ``wandblite show`` show it as suppressed).
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

from wandblite.env import active_run, current_run
from wandblite.errors import DataError, Error
from wandblite.vocab import is_number

__all__ = ["AlertLevel", "alert", "alert_record", "require", "setup"]


class AlertLevel(str, enum.Enum):
    """wandb's ``AlertLevel``."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


def alert_record(title: str, text: str, level: Any = None, wait_duration: Any = None) -> dict[str, Any]:
    """Validate one ``alert`` call and return its ALERT payload."""
    if not isinstance(title, str) or not title:
        raise DataError("alert title must be a non-empty string")
    if not isinstance(text, str):
        raise DataError("alert text must be a string")
    lvl = "INFO" if level is None else (level.value if isinstance(level, AlertLevel) else str(level).upper())
    if lvl == "WARNING":
        lvl = "WARN"
    if lvl not in ("INFO", "WARN", "ERROR"):
        raise DataError(f"alert level must be INFO, WARN or ERROR, not {level!r}")
    wait: float | None
    if wait_duration is None:
        wait = None
    elif isinstance(wait_duration, datetime.timedelta):
        wait = wait_duration.total_seconds()
    elif is_number(wait_duration):
        wait = float(wait_duration)
    else:
        raise DataError("alert wait_duration must be seconds (int or float) or a datetime.timedelta")
    return {"title": title, "text": text, "level": lvl, "wait_duration": wait}


def alert(title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
    """wandb's ``alert``: record an alert with the active run."""
    active_run("wandb.alert()").alert(title=title, text=text, level=level, wait_duration=wait_duration)


class _Setup:
    """What ``setup()`` returns (wandb's ``_WandbSetup``): holds the settings, does nothing else."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def teardown(self) -> None:
        """Nothing to tear down: there is no service process."""


def setup(settings: Any = None) -> _Setup:
    """wandb's ``setup``: prepares wandb's service process; wandblite has none, so it is accepted."""
    return _Setup(settings)


def require(requirement: Any = None, experiment: Any = None) -> None:
    """wandb's ``require("service")`` and friends: accepted, nothing is needed offline."""


def _attach(attach_id: Any = None, run_id: Any = None, run: Any = None) -> Any:
    """wandb's ``_attach`` (Lightning's pickling path): the active run of this process, if any."""
    run = current_run()
    if run is None:
        raise Error("wandblite cannot attach to a run of another process; init(id=..., resume='allow') instead")
    return run
