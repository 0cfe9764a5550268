"""The shared vocabulary: the names and small rules that the fold, replay, sync, the server, interop,
the CLI and the dashboard must agree on, each stated once.

Layer 0: the standard library only; it imports nothing of wandblite, so every module may import it.
Everything here is either a constant or a pure function of its argument (the home directory reads
the environment when asked). The dashboard's JavaScript gets these values from the server
(``/static/vocab.js``, made by ``wandblite.server.dashboard`` from ``js_constants()``), never from
a copy written by hand.

What it holds:

* history keys: ``_step``, ``_runtime``, ``_timestamp`` (set by the fold on every row, never user
  data), and ``_wandb`` (the summary's bookkeeping); a top-level key starting with ``_`` is
  wandb's own, never a user metric;
* values: what a subtree is (a dict without ``_type``), what a typed value is (a mapping with
  ``_type``: media, histograms, tables, charts), what counts as a number;
* run states, and the ones after which a run's files no longer grow;
* the run directory's names: segment files ``events-NNN.wlr``, ``.lock``, ``files/``, ``media/``;
  a shared run's writer streams ``events-<label>-NNN.wlr`` with their locks ``.lock-<label>``;
* the home directory (``$WANDBLITE_HOME``, else ``~/.wandblite``);
* the default wait between two alerts of one title;
* the wandb version the drop-in alias reports;
* the file-name rule: what a saved file's name or an artifact entry's path may be;
* which rows a sampled history keeps (``spread``: evenly spaced, the first and the last).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_ALERT_WAIT",
    "PANEL_SIZES",
    "WORKSPACE_VERSION",
    "FILES_DIR",
    "FILE_NAME_MAX",
    "FILE_NAME_PATTERN",
    "FINAL_STATES",
    "HOME_ENV",
    "INTERNAL_PREFIX",
    "LOCK_NAME",
    "MAX_SAMPLED_ROWS",
    "WRITER_FOLD_FIELDS",
    "WRITER_LABEL_RE",
    "WRITER_LOCK_PREFIX",
    "WRITER_SEGMENT_RE",
    "MEDIA_DIR",
    "PREEMPTING_KEY",
    "PROCESS_RSS_KEY",
    "RESERVED",
    "RESERVED_KEYS",
    "RUNTIME",
    "RUN_STATES",
    "SEGMENT_RE",
    "STEP",
    "SUMMARY_BOOKKEEPING",
    "TIMESTAMP",
    "TYPE_KEY",
    "WANDB_KEY",
    "WANDB_VERSION",
    "file_name_problem",
    "home_dir",
    "is_internal_key",
    "json_text",
    "key_text",
    "is_number",
    "is_plain_number",
    "is_subtree",
    "is_typed_value",
    "js_constants",
    "is_segment_name",
    "parse_segment",
    "segment_name",
    "segment_number",
    "spread",
    "writer_label_problem",
    "writer_lock_name",
    "writer_segment_name",
]

# --------------------------------------------------------------------------- history keys

#: The step of a history row: 0, 1, 2, ... in the order rows are committed (set by the fold).
STEP = "_step"
#: Seconds the run had been running when the row was committed, across resumes (set by the fold).
RUNTIME = "_runtime"
#: Wall-clock time (``time.time()``) of the ``log`` call, unless the user logged their own.
TIMESTAMP = "_timestamp"
#: The history columns wandb sets itself on every row, in the order they are shown (the x-axis
#: choices of a chart). Never sent to another tracker as user data; a name in a ``keys=`` list that
#: is one of them is a column, not a dotted path.
RESERVED_KEYS: tuple[str, ...] = (STEP, RUNTIME, TIMESTAMP)
#: ``RESERVED_KEYS`` as a set, for membership tests.
RESERVED: frozenset[str] = frozenset(RESERVED_KEYS)
#: The summary's own bookkeeping map (``{"runtime": ...}`` at exit), as wandb writes it.
WANDB_KEY = "_wandb"
#: Summary keys that are bookkeeping rather than the user's values.
SUMMARY_BOOKKEEPING: frozenset[str] = RESERVED | {WANDB_KEY}
#: A top-level history or summary key that starts with this is wandb's own (the reserved keys,
#: ``_wandb``), not a user metric, and so is any key a user logs under such a name:
#: ``define_metric`` never applies to it (no glob matches it; its summary stays its last value),
#: as wandb's run metric handler skips it, and the dashboard neither charts it nor makes it a
#: runs-table column.
INTERNAL_PREFIX = "_"


_JSON_TEXT = json.JSONEncoder(allow_nan=True, ensure_ascii=True, separators=(",", ":"))  # built once: hot path


def json_text(obj: Any) -> str:
    """The JSON text sync sends and the store keeps: compact, ASCII only, NaN and +-Infinity as the
    tokens ``NaN``/``Infinity``/``-Infinity`` (the extended JSON Python's json module and wandb's
    history use), so a NUL or a lone surrogate never reaches a database's text encoding."""
    return _JSON_TEXT.encode(obj)


def key_text(key: Any) -> str:
    """A map key as JSON text writes it: a ``str`` as it is; ``True``, ``False``, ``None`` as
    ``true``, ``false``, ``null``; anything else (an int or float) by ``str()``. Nested history keys
    are these texts in the run file, the fold and every reader."""
    if type(key) is str:
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return str(key)


def is_internal_key(key: str) -> bool:
    """Whether a top-level key is wandb's own (starts with ``INTERNAL_PREFIX``), not a user metric.

    The fold inlines this test (``key[:1] == "_"``) on its per-leaf path.
    """
    return key[:1] == INTERNAL_PREFIX


# --------------------------------------------------------------------------- values

#: The key that makes a dict one value (media, histogram, table, chart, ...) instead of a subtree.
TYPE_KEY = "_type"


def is_subtree(v: Any) -> bool:
    """A dict without ``_type``: a subtree of nested keys, merged leaf by leaf and flattened to
    dotted names; a dict with ``_type`` is one value.

    The exact type ``dict`` is tested: rows, summaries and configs are plain dicts wherever this
    rule applies (``encode_value`` and the decoders make nothing else), and a media wrapper
    (``wandblite.media.MediaValue``, a mapping that is not a dict) is a value. Hot loops (the
    fold, the store's ingest) inline this test rather than call it.
    """
    return type(v) is dict and TYPE_KEY not in v


def is_typed_value(v: Any) -> bool:
    """A mapping with ``_type``: one stored value (media, histogram, table, chart), not a subtree.

    Any mapping counts, so a ``MediaValue`` that wraps a stored media value is one too.
    """
    return isinstance(v, Mapping) and TYPE_KEY in v


def is_number(v: Any) -> bool:
    """An int or a float, subclasses included (``numpy.float64`` is a float, an ``IntEnum`` an int);
    never a bool: a flag is not a measurement. NaN and infinities are numbers here; where a finite
    value is needed the caller says so.

    For values that did not come from a decoder (a user's object, an argument).
    """
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_plain_number(v: Any) -> bool:
    """``is_number`` for decoded values: exactly ``int`` or ``float`` (so never a bool).

    msgpack and JSON decoders, and ``encode_value``, give only these two types for numbers, so on
    their output this is the same answer as ``is_number``, found faster; a subclass instance (which
    never reaches these places) is not counted.
    """
    t = type(v)
    return t is float or t is int


# --------------------------------------------------------------------------- run states

#: Every state a run can be in (``wandblite.fold.run_state`` decides which).
RUN_STATES: tuple[str, ...] = ("running", "finished", "failed", "crashed")
#: States after which a run's files no longer grow (until a resume starts a new attempt).
FINAL_STATES: frozenset[str] = frozenset({"finished", "failed", "crashed"})

# --------------------------------------------------------------------------- the run directory

#: flock()ed by the run's one live writer; holds "pid host" for error messages.
LOCK_NAME = ".lock"
#: ``run.dir``: the user's own files, and the bytes of saved files (``files/<name>``).
PREEMPTING_KEY = "preempting"  # the RUN record field of run.mark_preempting(); replay(path).preempting

FILES_DIR = "files"
#: Media blobs (``wandblite.media``).
MEDIA_DIR = "media"
#: A segment file: ``events-NNN.wlr``, one per attempt (0 for the first process, n for the n-th
#: resume), at least three digits.
SEGMENT_RE = re.compile(r"^events-(\d{3,})\.wlr$")


def segment_name(attempt: int) -> str:
    """The file name of attempt ``attempt``'s segment: ``events-000.wlr``, ``events-001.wlr``, ..."""
    return f"events-{attempt:03d}.wlr"


def segment_number(name: str) -> int | None:
    """The attempt number of a segment file name, or None if ``name`` names no segment."""
    m = SEGMENT_RE.match(name)
    return int(m.group(1)) if m else None


# A shared run (several processes writing one run, ``mode="shared"``) gives each writer its own
# stream of segments and its own lock, named by the writer's label; a single-writer run's names
# above are unchanged, and an old reader (which knows only ``SEGMENT_RE``) does not see them.

#: A writer's label: 1-64 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit
#: (``rank0``, ``node017-rank37``). It names files, so it holds no separator.
WRITER_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: A shared run's writer segment: ``events-<label>-NNN.wlr``, one per attempt of that writer. The
#: label is the longest match, so a label may itself end in ``-<digits>``.
WRITER_SEGMENT_RE = re.compile(r"^events-([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})-(\d{3,})\.wlr$")
#: A writer's lock file is this prefix and its label: ``.lock-rank0``.
WRITER_LOCK_PREFIX = LOCK_NAME + "-"


#: What a shared run's writer sends of its fold besides its rows (the ``writer.fold`` of a sync
#: batch, ``wandblite/server/PROTOCOL.md``): everything ``wandblite.merge`` reads of a writer's fold.
WRITER_FOLD_FIELDS = ("meta", "attempts", "config", "summary", "summary_set", "metric_log", "files", "exit",
                      "step", "events", "first_ts", "last_ts", "last_heartbeat", "heartbeat_interval", "writer")


def writer_label_problem(label: object) -> str | None:
    """None if ``label`` may label a writer of a shared run, else what was expected."""
    if not isinstance(label, str) or not WRITER_LABEL_RE.match(label):
        return ("1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, expected "
                f"(got {label!r})")
    return None


def writer_segment_name(label: str | None, attempt: int) -> str:
    """The segment of ``label``'s attempt ``attempt``: ``events-rank0-000.wlr``; ``label`` None is
    the single-writer stream (``segment_name``)."""
    if label is None:
        return segment_name(attempt)
    return f"events-{label}-{attempt:03d}.wlr"


def writer_lock_name(label: str | None) -> str:
    """The lock file of writer ``label`` (``.lock-rank0``); ``label`` None: the run's ``.lock``."""
    return LOCK_NAME if label is None else WRITER_LOCK_PREFIX + label


def parse_segment(name: str) -> tuple[str | None, int] | None:
    """``(label, attempt)`` of a segment file name (label None for ``events-NNN.wlr``), or None if
    ``name`` names no segment."""
    m = SEGMENT_RE.match(name)
    if m:
        return None, int(m.group(1))
    m = WRITER_SEGMENT_RE.match(name)
    if m:
        return m.group(1), int(m.group(2))
    return None


def is_segment_name(name: str) -> bool:
    """Whether ``name`` is a segment of any stream (single-writer or a shared run's writer)."""
    return parse_segment(name) is not None


#: The system-metrics key of the writing process's resident memory in MB (``wandblite.system``);
#: a shared run's crash report follows it per writer.
PROCESS_RSS_KEY = "proc.memory.rssMB"


# --------------------------------------------------------------------------- the home directory

#: The environment variable naming wandblite's home directory.
HOME_ENV = "WANDBLITE_HOME"


def home_dir() -> Path:
    """``$WANDBLITE_HOME``, else ``~/.wandblite`` (an empty value counts as unset).

    It holds the login settings (``settings``), the embedded store (``store.db``, ``media/``), the
    sync cache (``sync-state/``) and the interop state (``interop/``). Read at each call, so a test
    or a notebook that changes the variable is followed.
    """
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".wandblite")


# --------------------------------------------------------------------------- alerts

#: wandb's wait, in seconds, between two alerts of one title when ``wait_duration`` is not given
#: (or 0): an alert within it of the last sent alert of that title is not sent.
DEFAULT_ALERT_WAIT = 60.0

# --------------------------------------------------------------------------- the wandb alias

#: The wandb version whose API wandblite follows: what ``importlib.metadata.version("wandb")``
#: answers under the drop-in alias (``wandblite.integrations.as_wandb``).
WANDB_VERSION = "0.31.0"

# --------------------------------------------------------------------------- file names

#: The longest file name (in characters) a run's saved file or an artifact entry may have.
FILE_NAME_MAX = 1024
_SEGMENT_CHAR = r"[^/\\\x00-\x1f\x7f]"
#: A file name's shape, as a regular expression valid in Python and JavaScript alike (match it
#: against the whole name: ``re.fullmatch``, or ``^(?:...)$`` in JavaScript): ``/``-separated
#: segments, none empty, ``.`` or ``..``; no backslash or control character; so not absolute.
FILE_NAME_PATTERN = rf"(?!(?:[^/]*/)*\.\.?(?![^/])){_SEGMENT_CHAR}+(?:/{_SEGMENT_CHAR}+)*"
_FILE_NAME_RE = re.compile(FILE_NAME_PATTERN)


def file_name_problem(name: Any) -> str | None:
    """None if ``name`` may name a run's saved file or an artifact entry, else what was expected.

    The rule: a string of 1-``FILE_NAME_MAX`` characters, a relative ``/``-separated path whose
    segments are never empty, ``.`` or ``..``, without backslashes or control characters, and
    encodable as UTF-8. Such a name can be joined under a directory without leaving it. The text
    returned completes "invalid file name 'x': ...".
    """
    if not isinstance(name, str) or not 0 < len(name) <= FILE_NAME_MAX:
        return f"a string of 1-{FILE_NAME_MAX} characters expected"
    if not _FILE_NAME_RE.fullmatch(name):
        return ("a relative path without '..', '.', empty segments, backslashes or control characters "
                "expected")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not encodable as UTF-8"
    return None


# --------------------------------------------------------------------------- sampled history


#: The most rows one sampled-history request asks the server for (``GET .../history/sampled``); a
#: larger ``samples`` is answered by the client from a scan of every row.
MAX_SAMPLED_ROWS = 100_000

#: The media type of ``GET .../history`` answered as msgpack (``Accept`` asks for it; a client that does
#: not ask gets JSON): ``{"blocks", "pending", "next"}``, a flat template's rows as columns (PROTOCOL.md).
HISTORY_MSGPACK = "application/vnd.wandblite.history+msgpack"
#: The media type of a sync batch (``POST .../batch``) sent as msgpack: the object its JSON would be,
#: packed and parsed several times faster than JSON's text of floats (PROTOCOL.md, "The batch").
BATCH_MSGPACK = "application/vnd.wandblite.batch+msgpack"


def spread(n: int, k: int) -> list[int]:
    """``k`` of the positions ``0 .. n-1``, evenly spaced, the first and the last among them (all when
    ``n <= k``): the rows wandb's sampled history keeps (the server's and the client's sampling)."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [0] if k == 1 else []
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


# --------------------------------------------------------------------------- for the dashboard

#: The version of a saved workspace document (``server/workspaces.py`` validates it).
WORKSPACE_VERSION = 1
#: A workspace panel's sizes, smallest first (the grid columns it spans).
PANEL_SIZES = ("small", "medium", "large")


def js_constants() -> dict[str, Any]:
    """The vocabulary the dashboard's JavaScript uses, as JSON-able values (``/static/vocab.js``)."""
    return {
        "STEP": STEP,
        "RESERVED_KEYS": list(RESERVED_KEYS),
        "INTERNAL_PREFIX": INTERNAL_PREFIX,
        "RUN_STATES": list(RUN_STATES),
        "TYPE_KEY": TYPE_KEY,
        "DEFAULT_ALERT_WAIT": DEFAULT_ALERT_WAIT,
        "FILE_NAME_MAX": FILE_NAME_MAX,
        "FILE_NAME_PATTERN": FILE_NAME_PATTERN,
        "ROLES": list(ROLES),
        "VISIBILITIES": list(VISIBILITIES),
        "WORKSPACE_VERSION": WORKSPACE_VERSION,
        "PANEL_SIZES": list(PANEL_SIZES),
    }


# --------------------------------------------------------------------------- the server's users and roles

#: The server's administrator: holds the first-start key and every key made before users existed.
ADMIN_USER = "admin"
#: What a key may do, least first: read only; read and write (as its user's project roles allow);
#: also administer (users, keys, members, the audit log; only a server admin's key may hold it).
KEY_SCOPES = ("read", "write", "admin")
#: A project member's roles, least first: read; also create runs and append to their own; also
#: append to anyone's run, grant, and manage the project's members and visibility.
ROLES = ("viewer", "writer", "admin")
#: Who may read a project: its members only; every user of the server; anyone, without a key.
VISIBILITIES = ("private", "internal", "public")
#: A new project's visibility (and an upgraded store's projects').
DEFAULT_VISIBILITY = "internal"
#: What the audit log records, one name per kind of write.
AUDIT_ACTIONS = ("run.created", "batch.stored", "key.created", "key.revoked", "user.created", "user.disabled",
                 "member.added", "role.changed", "member.removed", "visibility.changed", "grant.added",
                 "session.opened", "login.failed", "run.edited", "run.moved", "run.deleted",
                 "workspace.saved", "workspace.reset", "workspace.shared")
