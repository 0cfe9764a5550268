"""Messages for the person at the terminal: ``termwarn``.

Layer 0: standard library only. In the training process a logging failure never kills training:
it becomes one ``wandblite: WARNING <message>`` line on stderr and the run goes on. Every module
of the SDK warns through ``termwarn``, so one setting silences them all.

Promises: ``$WANDBLITE_SILENT`` (else wandb's ``$WANDB_SILENT``) set to ``1``/``true`` prints
nothing; ``repeat=False`` prints a given message at most once per process; a closed or broken
stderr never raises.
"""

from __future__ import annotations

import os
import sys

__all__ = ["termwarn"]

_warned_once: set[str] = set()


def termwarn(message: str, repeat: bool = True) -> None:
    """Print ``wandblite: WARNING <message>`` on stderr (``repeat=False``: once per process)."""
    if not repeat:
        if message in _warned_once:
            return
        _warned_once.add(message)
    if os.environ.get("WANDBLITE_SILENT", os.environ.get("WANDB_SILENT", "")).lower() in ("1", "true"):
        return
    try:
        sys.stderr.write(f"wandblite: WARNING {message}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed stderr must not break logging
        pass
