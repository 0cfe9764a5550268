"""What one record of a run file says: the event kinds, their payloads, and the version rules.

Layer 1: may import msgpack and ``wandblite.format``/``errors``; nothing else.

A record is ``(kind, payload)``; the framing (length, checksum) is ``wandblite.format``'s. The payload
is msgpack, packed with ``use_bin_type=False`` so that ``bytes`` values logged by the user read back
as text (wandb's history decodes bytes as UTF-8); invalid UTF-8 reads back with U+FFFD.

Payloads by kind (``ts`` is ``time.time()`` of the call that made the record, a float):

=========  ====  =================================================================================
kind       code  payload
=========  ====  =================================================================================
START      1     map: ``v`` (event schema version), ``id``, ``project``, ``entity``, ``name``,
                 ``group``, ``job_type``, ``tags``, ``notes``, ``ts``, ``attempt`` (0 for a new
                 run, n for its n-th resume), ``resumed``, ``host``, ``pid``, ``heartbeat``
                 (seconds between heartbeats), ``context`` (job context: map); in a shared
                 run's writer stream also ``writer``: map ``label``, ``primary`` (bool),
                 ``update_finish_state`` (bool) (absent in a single-writer run)
LOG        2     array ``[ts, data, step, commit]``: one ``run.log`` call; data is a map whose
                 values are already normalised (media are reference maps with ``_type``)
CONFIG     3     array ``[ts, updates]``: config keys set (validated before writing)
SUMMARY    4     array ``[ts, updates, removed]``: explicit ``run.summary`` writes and deletions
METRIC     5     array ``[ts, spec]``: one ``define_metric`` call, already validated
EXIT       6     map: ``ts``, ``exit_code``, ``error`` (map: type, message, traceback) or nil,
                 ``signal`` (name of the signal that ended the run) or nil
HEARTBEAT  7     array ``[ts]``
CONSOLE    8     array ``[ts, stream, text]``: captured stdout/stderr text. A text not ending
                 with a newline leaves the stream's line open (a partial line recorded early,
                 so a crash keeps it); the stream's next record continues that line, appended,
                 or replacing it if that text starts with ``"\\r"`` (the only place a ``"\\r"``
                 appears). ``wandblite.console.join_records`` applies the rule.
SYSTEM     9     array ``[ts, metrics]``: one system-metrics sample (kept apart from history)
RUN        10    array ``[ts, changes]``: run attributes changed after init (name, tags, notes…)
FILES      11    array ``[ts, files]``: files kept with the run (``wandblite.save``); files is a list
                 of maps ``name`` (path relative to the save's base), ``path`` (``files/<name>``,
                 relative to the run directory), ``size``, ``sha256``, ``policy`` (live/now/end);
                 a later record for the same name replaces the earlier one
ARTIFACT   12    array ``[ts, artifact]``: a logged artifact manifest, a map ``name``, ``type``,
                 ``version`` (int), ``digest`` (sha256 hex), ``aliases`` (list, with "latest"),
                 ``description``, ``metadata``, ``size``, ``run`` (logging run id), ``entries``
                 (map path -> ``{sha256, size, object}`` with object
                 ``artifacts/objects/<sha256>`` in the run directory, or ``{ref[, sha256, size]}``)
ALERT      13    array ``[ts, alert]``: ``run.alert(...)``; a map ``title``, ``text``, ``level``
                 (INFO/WARN/ERROR), ``wait_duration`` (seconds or nil)
USE        14    array ``[ts, ref]``: ``run.use_artifact(...)``; a map ``name``, ``version``,
                 ``digest``, ``type``, ``run`` (the id of the run that logged it)
LOGS       15    as LOG, with the promise that every value of ``data`` is a str, int, float or
                 bool (no dict, list, None or media): the writer knows this for free, and the
                 fold then skips per-leaf work (most training steps log only scalars)
=========  ====  =================================================================================

Version rules: kinds are never renumbered and a payload only ever gains optional fields (new map
keys, or new trailing array elements). A reader ignores kinds it does not know and fields it does
not know, so an old reader folds a newer file's known part, and a newer reader folds an old file.
An incompatible change bumps ``wandblite.format.FORMAT_VERSION`` instead.
"""

from __future__ import annotations

from typing import Any

import msgpack

__all__ = [
    "ALERT",
    "ARTIFACT",
    "CONFIG",
    "CONSOLE",
    "EVENT_SCHEMA_VERSION",
    "EXIT",
    "FILES",
    "HEARTBEAT",
    "KIND_NAMES",
    "LOG",
    "LOG_SCALARS",
    "METRIC",
    "RUN",
    "START",
    "SUMMARY",
    "SYSTEM",
    "USE",
    "decode",
    "encode",
]

EVENT_SCHEMA_VERSION = 1

START = 1
LOG = 2
CONFIG = 3
SUMMARY = 4
METRIC = 5
EXIT = 6
HEARTBEAT = 7
CONSOLE = 8
SYSTEM = 9
RUN = 10
FILES = 11
ARTIFACT = 12
ALERT = 13
USE = 14
LOG_SCALARS = 15

KIND_NAMES = {
    START: "start",
    LOG: "log",
    CONFIG: "config",
    SUMMARY: "summary",
    METRIC: "metric",
    EXIT: "exit",
    HEARTBEAT: "heartbeat",
    CONSOLE: "console",
    SYSTEM: "system",
    RUN: "run",
    FILES: "files",
    ARTIFACT: "artifact",
    ALERT: "alert",
    USE: "use",
    LOG_SCALARS: "log",
}



def new_packer() -> msgpack.Packer:
    """A packer configured for event payloads (not thread-safe: one per writer)."""
    return msgpack.Packer(use_bin_type=False, autoreset=True)


def encode(obj: Any) -> bytes:
    """Pack one payload. Raises TypeError/ValueError/OverflowError for values msgpack refuses."""
    return msgpack.packb(obj, use_bin_type=False)


def decode(payload: bytes) -> Any:
    """Unpack one payload. Raises ``ValueError`` (msgpack's exceptions derive from it) if corrupt."""
    return msgpack.unpackb(payload, raw=False, strict_map_key=False, unicode_errors="replace")
