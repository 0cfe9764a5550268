"""``RunSurface``: the small, typed part of a run that the run's collaborators use.

Layer 4, the lowest module of it: typing and the standard library only. ``files``, ``artifacts``,
``watch``, ``integrations.api`` and the module-level calls of the drop-in (through
``env.active_run``) work with a run through this protocol and nothing else: never through a
run's private attributes, and without importing ``wandblite.run``. ``run.Run`` implements it
(mypy checks that wherever a ``Run`` is passed as a ``RunSurface``), so ``run`` may import its
collaborators and none of them imports ``run`` back: no import cycle.

What the surface promises, member by member:

* ``id``, ``project``: the run's id and project.
* ``path``: the run directory (``<runs root>/<id>``); ``dir``: its ``files/`` directory (wandb's
  ``run.dir``), which exists; ``runs_root``: the directory holding this run and its siblings
  (artifacts look for versions among them).
* ``summary``: ``run.summary`` (a mapping; writes are recorded).
* ``append_event(kind, body, call)``: encode and append one record of ``kind`` (a
  ``wandblite.events`` kind) to the run file; False when the write failed (one warning was
  printed; training goes on); wandb's ``UsageError`` naming ``call`` on a finished run; a
  ``DataError`` when ``body`` cannot be encoded.
* ``add_finish_callback(callback)``: ``callback()`` runs when the run finishes, before its exit
  record, on every path that ends a run (``finish()``, ``with run:``, atexit, excepthook,
  SIGTERM), once; a failing callback becomes one warning and the run still finishes.
* ``add_to_next_row(key, value)``: ``key: value`` rides on the next ``log`` row (the user's own
  keys win on a clash); ``clear_next_row()`` drops what is waiting. ``watch`` sends its
  histograms this way, as wandb's hooks log with ``commit=False``.
* ``save``, ``watch``, ``unwatch``, ``log_artifact``, ``use_artifact``, ``alert``: the run's own
  drop-in methods, which the module-level ``wandblite.save(...)`` and friends call.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, Protocol

__all__ = ["RunSurface"]


class RunSurface(Protocol):
    """What ``files``, ``artifacts``, ``watch`` and the module-level calls may use of a run."""

    id: str
    project: str

    @property
    def path(self) -> str: ...

    @property
    def finished(self) -> bool:
        """True once ``finish`` ran (in this process)."""
        ...

    @property
    def owner_pid(self) -> int:
        """The process that started the run (a forked child sees its parent's run, not its own)."""
        ...

    @property
    def dir(self) -> str: ...

    @property
    def runs_root(self) -> Path: ...

    @property
    def summary(self) -> MutableMapping[str, Any]: ...

    def append_event(self, kind: int, body: Any, call: str) -> bool: ...

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None: ...

    def add_finish_callback(self, callback: Callable[[], None]) -> None: ...

    def add_to_next_row(self, key: str, value: Any) -> None: ...

    def clear_next_row(self) -> None: ...

    def save(self, glob_str: Any = None, base_path: Any = None, policy: str = "live") -> Any: ...

    def watch(self, models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
              idx: int | None = None, log_graph: bool = False) -> Any: ...

    def unwatch(self, models: Any = None) -> None: ...

    def log_artifact(self, artifact_or_path: Any, name: str | None = None, type: str | None = None,  # noqa: A002
                     aliases: list[str] | None = None, tags: list[str] | None = None) -> Any: ...

    def use_artifact(self, artifact_or_name: Any, type: str | None = None,  # noqa: A002
                     aliases: list[str] | None = None, use_as: str | None = None) -> Any: ...

    def alert(self, title: str, text: str, level: Any = None, wait_duration: Any = None) -> None: ...
