"""Messages for the person at the terminal: ``termwarn``, ``termlog`` and the summary's lines.

Layer 0: standard library only. In the training process a logging failure never kills training:
it becomes one ``wandblite: WARNING <message>`` line on stderr and the run goes on. Every module
of the SDK warns through ``termwarn``, so one setting silences them all.

Promises: ``$WANDBLITE_SILENT`` (else wandb's ``$WANDB_SILENT``) set to ``1``/``true`` prints
nothing; ``repeat=False`` prints a given message at most once per process; a closed or broken
stderr never raises. Every line goes to stderr, never stdout: a script's stdout stays its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["is_silent", "summary_lines", "termerror", "termlog", "termwarn"]

SUMMARY_MAX_KEYS = 10  # wandb's footer shows a few keys, then "+N ..."

_warned_once: set[str] = set()


def termwarn(message: str, repeat: bool = True, newline: bool = True, prefix: bool = True) -> None:
    """Print ``wandblite: WARNING <message>`` on stderr (``repeat=False``: once per process).

    ``newline`` and ``prefix`` are wandb's ``termwarn`` keywords: without the newline the line is left
    open; without the prefix the ``wandblite: `` label is left out."""
    _say("WARNING ", message, repeat, newline, prefix)


def termerror(message: str, repeat: bool = True, newline: bool = True, prefix: bool = True) -> None:
    """Print ``wandblite: ERROR <message>`` on stderr (wandb's ``termerror``; the same keywords)."""
    _say("ERROR ", message, repeat, newline, prefix)


def _say(level: str, message: str, repeat: bool, newline: bool, prefix: bool) -> None:
    message = str(message)
    if not repeat:
        if level + message in _warned_once:
            return
        _warned_once.add(level + message)
    if is_silent():
        return
    if newline and prefix:
        _write([f"{level}{line}" for line in message.split("\n")])
        return
    text = "\n".join(f"{'wandblite: ' if prefix else ''}{level}{line}" for line in message.split("\n"))
    _write_raw(text + ("\n" if newline else ""))


def is_silent() -> bool:
    """``$WANDBLITE_SILENT`` (else ``$WANDB_SILENT``) is ``1``/``true``: print nothing."""
    return os.environ.get("WANDBLITE_SILENT", os.environ.get("WANDB_SILENT", "")).lower() in ("1", "true")


def termlog(lines: Iterable[str] | str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print each line as ``wandblite: <line>`` on stderr, unless silenced (``is_silent``).

    A string is wandb's ``termlog(string, newline, repeat, prefix)``: its lines (split at ``\\n``)
    are printed, once per process with ``repeat=False``."""
    if isinstance(lines, str):
        _say("", lines, repeat, newline, prefix)
    elif not is_silent():
        _write(lines)


def _write(lines: Iterable[str]) -> None:
    _write_raw("".join(f"wandblite: {line}\n" for line in lines))


def _write_raw(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stderr must not break logging
        pass


def summary_lines(summary: Mapping[str, Any], max_keys: int = SUMMARY_MAX_KEYS) -> list[str]:
    """The run's summary as wandb's footer prints it: scalar keys not starting with ``_``, sorted,
    numbers compact (6 significant digits), strings cut at 20 characters, at most ``max_keys`` rows
    and then ``+N ...``. No scalar key: no lines."""
    rows: list[tuple[str, str]] = []
    for key in sorted(k for k in summary if isinstance(k, str) and not k.startswith("_")):
        value = summary[key]
        if isinstance(value, int):  # bool too: True, as wandb prints it
            rows.append((key, str(value)))
        elif isinstance(value, float):
            rows.append((key, f"{value:.6g}"))
        elif isinstance(value, str):
            rows.append((key, value[:20] + "..." * (len(value) >= 20)))
    if not rows:
        return []
    shown = rows[:max_keys]
    width = max(len(k) for k, _ in shown)
    lines = ["Run summary:", *(f"  {k.rjust(width)} {v}" for k, v in shown)]
    if len(rows) > len(shown):
        lines.append(f"  {f'+{len(rows) - len(shown):,d}'.rjust(width)} ...")
    return lines
