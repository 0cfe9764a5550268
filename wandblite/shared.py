"""Shared mode: how one process of a distributed job joins the run that all its processes write.

Layer 4: reads the environment and ``init``'s settings; may write one small file (the run id
rendezvous) in the runs directory. ``wandblite.run`` calls ``writer_setup`` from ``init``; the
files a writer appends are ``wandblite.runfile``'s, and how the writers become one run is
``wandblite.merge``'s.

A process is a writer of a shared run when ``init`` gets wandb's ``mode="shared"`` (as
``settings=Settings(mode="shared", ...)`` or ``init(mode="shared")``) or the environment sets
``WANDBLITE_SHARED=1``. It then appends its own stream (``events-<label>-NNN.wlr``, lock
``.lock-<label>``), and:

* its **label** is ``settings.x_label``, else ``rank<N>`` from the first of ``RANK``,
  ``SLURM_PROCID``, ``PMI_RANK``, ``OMPI_COMM_WORLD_RANK`` that is set, else ``<host>-<pid>``;
  characters a file name cannot hold become ``_``;
* it is the **primary** when ``settings.x_primary`` says so, else when its rank is 0;
* it **decides the run's exit state** when ``settings.x_update_finish_state`` says so, else when it
  is the primary;
* the **run id**, when neither ``id=`` nor ``$WANDBLITE_RUN_ID``/``$WANDB_RUN_ID`` gives one, comes
  from what every rank of the job shares: ``slurm-<SLURM_JOB_ID>-<SLURM_STEP_ID>``, else
  ``torchelastic-<TORCHELASTIC_RUN_ID>`` (unless it is torchrun's default ``none``), else a file in
  the runs directory (``.shared-<hash of MASTER_ADDR:MASTER_PORT>``) that rank 0 writes with a new
  id and the other ranks wait for (up to ``$WANDBLITE_SHARED_WAIT`` seconds, default 120; a file
  older than that is a previous job's and is not used).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from wandblite.env import env_first
from wandblite.errors import UsageError
from wandblite.vocab import writer_label_problem

__all__ = ["RANK_VARS", "WriterSetup", "env_rank", "shared_requested", "shared_run_id", "writer_setup"]

#: The environment variables that carry a process's rank, first match wins.
RANK_VARS = ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK")
_RENDEZVOUS_PREFIX = ".shared-"
_BAD_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


class WriterSetup(NamedTuple):
    """Who this process is among the writers of a shared run (the ``writer`` map of its start)."""

    label: str
    primary: bool
    update_finish_state: bool

    def record(self) -> dict[str, Any]:
        """The ``writer`` map of the start record (``wandblite.events``)."""
        return {"label": self.label, "primary": self.primary, "update_finish_state": self.update_finish_state}


def _setting(settings: Any, name: str) -> Any:
    if settings is None:
        return None
    if isinstance(settings, dict):
        return settings.get(name)
    return getattr(settings, name, None)


def shared_requested(mode: str | None, settings: Any) -> bool:
    """Whether ``init`` joins a shared run: ``mode="shared"`` (argument or setting) or ``WANDBLITE_SHARED``."""
    if mode == "shared" or _setting(settings, "mode") == "shared" or _setting(settings, "x_shared"):
        return True
    return (env_first("WANDBLITE_SHARED") or "").lower() in ("1", "true", "yes")


def env_rank() -> int | None:
    """This process's rank from the launcher's environment (``RANK_VARS``), or None."""
    for name in RANK_VARS:
        v = os.environ.get(name)
        if v is not None and v.strip().lstrip("-").isdigit():
            return int(v)
    return None


def _clean_label(text: str) -> str:
    label = _BAD_LABEL_CHARS.sub("_", text)[:64]
    if not label or not label[0].isalnum():
        label = ("w" + label)[:64]
    return label


def writer_setup(settings: Any) -> WriterSetup:
    """This process's label, primary flag and whether it decides the exit state (module docstring)."""
    rank = env_rank()
    label = _setting(settings, "x_label")
    if label is None:
        label = f"rank{rank}" if rank is not None else _clean_label(f"{socket.gethostname()}-{os.getpid()}")
    else:
        label = str(label)
    problem = writer_label_problem(label)
    if problem is not None:
        raise UsageError(f"invalid shared-mode label (settings x_label) {label!r}: {problem}")
    primary = _setting(settings, "x_primary")
    primary = bool(primary) if primary is not None else rank == 0
    ufs = _setting(settings, "x_update_finish_state")
    ufs = bool(ufs) if ufs is not None else primary
    return WriterSetup(label, primary, ufs)


def shared_run_id(root: Path, new_id: Callable[[], str], now: Callable[[], float] = time.time) -> str:
    """The run id every rank of this job shares, when none was given (module docstring)."""
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        return _clean_label(f"slurm-{job}-{os.environ.get('SLURM_STEP_ID') or '0'}")
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    if elastic and elastic != "none":
        return _clean_label(f"torchelastic-{elastic}")
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not (addr and port):
        raise UsageError(
            "shared mode needs a run id all processes share: pass id=... to init, or set "
            "WANDBLITE_RUN_ID (no SLURM_JOB_ID, TORCHELASTIC_RUN_ID or MASTER_ADDR/MASTER_PORT to derive one)"
        )
    key = hashlib.sha256(f"{addr}:{port}:{elastic or ''}".encode()).hexdigest()[:16]
    path = root / f"{_RENDEZVOUS_PREFIX}{key}"
    wait = float(env_first("WANDBLITE_SHARED_WAIT") or 120.0)
    rank = env_rank()
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        run_id = new_id()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"id": run_id, "ts": now()}))
        os.replace(tmp, path)
        return run_id
    deadline = now() + wait
    while True:
        try:
            data = json.loads(path.read_text())
            if now() - float(data["ts"]) <= wait:
                return str(data["id"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if now() >= deadline:
            raise UsageError(
                f"shared mode: no run id from rank 0 in {path} after {wait:g} s; pass id=... to init or set "
                "WANDBLITE_RUN_ID on every rank"
            )
        time.sleep(0.05)
