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
* the home directory (``$WANDBLITE_HOME``, else ``~/.wandblite``);
* the default wait between two alerts of one title;
* the wandb version the drop-in alias reports;
* the file-name rule: what a saved file's name or an artifact entry's path may be.
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
    "FILES_DIR",
    "FILE_NAME_MAX",
    "FILE_NAME_PATTERN",
    "FINAL_STATES",
    "HOME_ENV",
    "INTERNAL_PREFIX",
    "LOCK_NAME",
    "MEDIA_DIR",
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
    "segment_name",
    "segment_number",
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


# --------------------------------------------------------------------------- for the dashboard


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
    }
