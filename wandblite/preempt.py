"""``run.mark_preempting()`` / ``wandblite.mark_preempting()``: the run says it is about to be preempted.

wandb tells its server at once, so a run that then dies shows as *preempted* rather than crashed.
Offline, the mark is recorded in the run file as a RUN record ``[ts, {"preempting": ts}]`` (the
event schema's "run attributes changed after init"; the fold keeps it in the run's meta), so
``replay(path).preempting`` is the time of the last mark and ``wandblite show`` prints it.

Layer 4. Stdlib, ``events``, ``env``; it works with a run through its ``RunSurface``.
"""

from __future__ import annotations

import time

from wandblite import events as ev
from wandblite.env import active_run
from wandblite.surface import RunSurface
from wandblite.vocab import PREEMPTING_KEY

__all__ = ["mark_preempting", "mark_preempting_run"]


def mark_preempting_run(run: RunSurface) -> None:
    """Record that ``run`` is being preempted (wandb's ``UsageError`` on a finished run)."""
    now = time.time()
    run.append_event(ev.RUN, [now, {PREEMPTING_KEY: now}], call="mark_preempting")


def mark_preempting() -> None:
    """wandb's module-level ``mark_preempting``: mark the active run (pre-init error without one)."""
    mark_preempting_run(active_run("wandb.mark_preempting()"))
