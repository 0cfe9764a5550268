"""``init(mode="disabled")``: a run that accepts every call and touches no file.

Layer 4. Imports ``config_input`` and ``env`` (to leave the active run), never ``run``. Scripts
pass ``mode="disabled"`` in their unit tests; every attribute and method a real ``Run`` has works
here and records nothing. ``config`` and ``summary`` still behave as dicts so code that reads back
what it set keeps working.
"""

from __future__ import annotations

import os
from typing import Any

from wandblite.config_input import config_dict
from wandblite.env import current_run, set_active_run

__all__ = ["DisabledRun"]


class _Nothing:
    """Absorbs any call or attribute access."""

    def __call__(self, *args: Any, **kwargs: Any) -> _Nothing:
        return self

    def __getattr__(self, key: str) -> _Nothing:
        if key.startswith("__"):
            raise AttributeError(key)
        return self

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<disabled>"


class _DictNS(dict):  # type: ignore[type-arg]
    """A dict with attribute access and wandb's ``update(..., allow_val_change=)`` signature."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def update(self, d: Any = None, allow_val_change: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(config_dict(d))  # dicts, argparse Namespaces and absl flags alike
        super().update(kwargs)

    def setdefaults(self, d: Any) -> None:
        for k, v in config_dict(d).items():
            self.setdefault(k, v)

    def as_dict(self) -> dict[str, Any]:
        return dict(self)


class DisabledRun:
    """What ``init(mode="disabled")`` returns."""

    disabled = True
    offline = True
    resumed = False
    url = None
    path = None
    _finished = False
    _attach_id = None  # Lightning reads it when pickling its logger

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.id = "disabled"
        self.name = "disabled"
        self.project = "disabled"
        self.entity = None
        self.group = None
        self.job_type = None
        self.tags: tuple[str, ...] = ()
        self.notes = None
        self.dir = "."
        self.step = 0
        self.config = _DictNS(config or {})
        self.summary = _DictNS()
        self._pid = os.getpid()

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def owner_pid(self) -> int:
        return self._pid

    def log(self, data: Any = None, step: Any = None, commit: Any = None, sync: Any = None) -> None:
        return None

    def finish(self, exit_code: Any = None, quiet: Any = None) -> None:
        if not self._finished:
            self._finished = True
            if current_run() is self:
                set_active_run(None)

    def define_metric(self, name: str, *args: Any, **kwargs: Any) -> _Nothing:
        return _Nothing()

    def __enter__(self) -> DisabledRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    def __getattr__(self, key: str) -> _Nothing:
        if key.startswith("__"):
            raise AttributeError(key)
        return _Nothing()
