"""The wire contract's validation: what a batch and a name may hold, checked and encoded for SQL.

Layer 5 (the server). Pure functions, no database: each either returns the value in the form the
store writes or raises a 400 ``ApiError`` (``bad_request``) saying which field is wrong and why.
What it promises:

* Project names and run ids follow the run file's rules (``validate_project``/``validate_run``);
  run file names and artifact entry paths are relative ``/`` paths that cannot leave a directory
  (``validate_file_name``); artifact names and aliases are URL-path safe (``validate_artifact_name``);
  sha256s are 64 lowercase hex digits. A name that passes reaches SQL as a bound parameter only.
* Text for a TEXT column (``clean_text``) is None or a str of bounded length, NUL replaced (PostgreSQL
  refuses it) and lone surrogates replaced, so both databases store the same text.
* ``prep_run`` checks a batch's ``run`` object; ``prep_rows`` its ``rows`` (indexes consecutive,
  only the last row provisional), computing each row's JSON text and its series and media leaves;
  ``numbered`` checks one record stream's indexes (consecutive within the batch) and applies an item
  preparation (``prep_console``, ``prep_system``, ``prep_file``, ``prep_artifact``, ``prep_use``,
  ``prep_alert``) to each record. See ``PROTOCOL.md`` for the batch's fields.
* An artifact manifest is checked against its digest by the SDK's one rule (``artifact_digest``).
* ``unpack_body`` reads a batch sent as msgpack (``vocab.BATCH_MSGPACK``) into the object its JSON
  would have given, or refuses it: 400 ``malformed_msgpack``, ``too_deep`` past ``MAX_JSON_DEPTH``
  as for JSON, ``not_json`` for a value JSON cannot hold (bytes, an extension type, a map key that
  is not a string), which the sync client then sends as JSON.
* ``pack_history`` encodes a history page (``read.get_history_blocks``) as the msgpack answer
  (``vocab.HISTORY_MSGPACK``; numpy columns as extension types of their bytes), or gives None when msgpack cannot carry it exactly (an int beyond 64
  bits, a lone surrogate in a string): the caller then answers JSON.

All of it runs before a batch's transaction: bad input never holds the write lock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from itertools import chain
from typing import Any, NamedTuple

from wandblite.errors import Error
from wandblite.runfile import validate_project_name, validate_run_id
from wandblite.server.chunks import split_row
from wandblite.server.db import dumps
from wandblite.server.errors import ApiError, bad_request
from wandblite.server.indexes import media_leaves
from wandblite.vocab import (
    RUN_STATES,
    RUNTIME,
    STEP,
    TIMESTAMP,
    file_name_problem,
    is_plain_number,
    writer_label_problem,
)

__all__ = [
    "ARTIFACT_NAME_PATTERN", "MAX_ARTIFACT_VERSION", "MAX_JSON_DEPTH", "Row", "artifact_digest", "check_depth", "clean_text", "finite_number", "int64", "media_ext",
    "numbered", "prep_alert", "prep_artifact", "unpack_body",
    "pack_history", "prep_console", "prep_file", "prep_writer", "prep_rows", "prep_run", "prep_system", "prep_use", "record_index",
    "validate_artifact_name", "validate_file_name", "validate_project", "validate_run", "validate_sha256",
]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: A media extension the store keeps: ASCII letters, digits and ``. _ + -``, 1-64 characters, not
#: starting with a dot (``png``, ``table.json``, ``boxes2D.json``); it ends up in a file name and a header.
_EXT_RE = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$")
#: An artifact name or alias (the HTTP API's contract publishes it; valid in JavaScript too).
ARTIFACT_NAME_PATTERN = r"^(?!\.\.?$)[^/\\:\x00-\x1f\x7f]{1,128}$"
_ARTIFACT_NAME_RE = re.compile(ARTIFACT_NAME_PATTERN)
#: The deepest nesting of arrays and objects a JSON body may have: the run file's msgpack framing
#: refuses deeper values (its packer stops at 511 levels), so no run can log one, and every reader
#: (``dumps``, the fold, the comparisons of the filter language) stays far from Python's recursion limit.
MAX_JSON_DEPTH = 512
#: The largest artifact version number a batch may record (and so the largest a read can find).
MAX_ARTIFACT_VERSION = (1 << 31) - 1
# Columns of the runs table a batch's "run" object may set, with the Python type each must have.
_RUN_TEXT = ("name", "group", "job_type", "notes", "state", "signal", "host", "entity", "digest")
_RUN_FLOAT = ("created_at", "heartbeat_at", "ended_at")
_RUN_JSON = ("tags", "config", "summary", "error", "context", "metrics")


class Row(NamedTuple):
    """One history row of a batch, ready for the history chunks and the media index (``history_store``)."""

    final: bool  # False: a provisional row (a crashed run's pending row), replaced by the next row sent
    text: str | None  # a provisional row as JSON text (``db.dumps``); None for a final row
    template: str  # the row without its numeric leaves (``chunks.split_row``)
    step: int | None
    runtime: float | None
    timestamp: float | None
    points: dict[str, float]  # numeric leaves: dotted key -> value (NaN kept)
    media: list[tuple[str, str]]  # (dotted key, ``_type``) of its typed values: its ``media_rows``


def clean_text(s: Any, what: str, limit: int = 1 << 20) -> str | None:
    """A value for a TEXT column: None or str, without NUL (PostgreSQL refuses it) or lone surrogates."""
    if s is None:
        return None
    if not isinstance(s, str):
        raise bad_request(f"{what} must be a string or null, not {type(s).__name__}")
    if len(s) > limit:
        raise bad_request(f"{what} is longer than {limit} characters")
    if "\x00" in s:
        s = s.replace("\x00", "\ufffd")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


#: The types of a parsed JSON body's scalars: all a msgpack body may hold besides maps and arrays.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _too_deep(what: str, limit: int) -> ApiError:
    return bad_request(f"{what} nests arrays and objects more than {limit} levels deep", code="too_deep")


def check_depth(obj: Any, limit: int, what: str, json_only: bool = False) -> None:
    """400 ``too_deep`` when arrays and objects nest in ``obj`` more than ``limit`` levels (measured
    without recursion, so any depth the parser produced can be measured). ``json_only`` (a body
    decoded from msgpack): also 400 ``not_json`` for a value or a map key JSON cannot hold.

    One level at a time: the containers at depth ``d``, then their children that are not scalars,
    gathered by C iterators (a sync batch's thousands of rows are one level, not a step per value)."""
    level = [] if type(obj) in _JSON_SCALARS else [obj]
    d = 0
    while level:
        dicts = [v for v in level if isinstance(v, dict)]
        lists = [v for v in level if isinstance(v, list)] if len(dicts) < len(level) else []
        if json_only:
            if len(dicts) + len(lists) < len(level):
                odd = next(v for v in level if not isinstance(v, (dict, list)))
                raise bad_request(f"{what} holds a {type(odd).__name__} value, which JSON cannot: send it as JSON",
                                  code="not_json")
            try:
                "".join(chain.from_iterable(dicts))  # every key a str, else a TypeError
            except TypeError:
                raise bad_request(f"{what} has a map key that is not a string: send it as JSON",
                                  code="not_json") from None
        if not dicts and not lists:
            return
        d += 1
        if d > limit:
            raise _too_deep(what, limit)
        children = chain(chain.from_iterable(map(dict.values, dicts)), chain.from_iterable(lists))
        level = [c for c in children if type(c) not in _JSON_SCALARS]


def unpack_body(raw: bytes, limit: int = MAX_JSON_DEPTH, what: str = "the body") -> Any:
    """The object of a msgpack request body (``vocab.BATCH_MSGPACK``), exactly what the same body
    sent as JSON gives (maps with str keys, lists, str, int, float, bool, None), its nesting checked
    as a JSON body's is (``check_depth``); else a 400 (see the module's docstring)."""
    import msgpack

    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except msgpack.exceptions.StackError:  # nested past the unpacker's own stack (1,024 levels)
        raise _too_deep(what, limit) from None
    except (ValueError, TypeError) as exc:  # truncated, trailing bytes, bad UTF-8, an unhashable key
        raise bad_request(f"{what} is not valid msgpack: {exc}", code="malformed_msgpack")
    check_depth(obj, limit, what, json_only=True)
    return obj


def media_ext(ext: Any) -> str | None:
    """The extension a media blob is stored and served with: ``ext`` when it is a plain ASCII
    extension (``_EXT_RE``), else None (served as ``.bin``, ``application/octet-stream``).

    Normalised rather than refused: the sync client sends the suffix of a saved file's name, which
    may be anything a file system allows, and a run must still sync. Applied again when a stored
    value is read, so a value stored by an older server can never break a response.
    """
    return ext if isinstance(ext, str) and _EXT_RE.match(ext) else None


def validate_project(project: Any) -> str:
    """Project names: 1-128 printable characters without ``/ \\ # ? % :``, not starting with ``.`` or ``-``."""
    try:
        return validate_project_name(project)
    except Error as exc:
        raise bad_request(str(exc), code="invalid_name")


def validate_run(run_id: Any) -> str:
    try:
        return validate_run_id(run_id)
    except Error as exc:
        raise bad_request(str(exc), code="invalid_name")


def validate_sha256(sha: Any) -> str:
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise bad_request(f"invalid sha256 {sha!r}: 64 lowercase hex digits expected", code="invalid_sha256")
    return sha


def _has_control(s: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in s)


def _utf8(name: str, what: str) -> str:
    """``name`` when UTF-8 can encode it (no lone surrogates), else 400 ``invalid_name``."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"invalid {what} {name!r}: not encodable as UTF-8", code="invalid_name")
    return name


def validate_file_name(name: Any, what: str = "file name") -> str:
    """A run file's name or an artifact entry's path, by the one file-name rule
    (``wandblite.vocab.file_name_problem``): a relative ``/``-separated path of 1-1024 characters
    whose segments are never empty, ``.`` or ``..``; no backslash or control character; UTF-8.

    Such a name can be joined under a directory without leaving it; the server never does (names
    are SQL parameters), but the clients that download do.
    """
    why = file_name_problem(name)
    if why:
        raise bad_request(f"invalid {what} {name!r}: {why}", code="invalid_name")
    return name


def validate_artifact_name(name: Any, what: str = "artifact name") -> str:
    """An artifact name or alias: 1-128 characters without ``/``, ``\\``, ``:`` or control characters,
    not ``.`` or ``..`` (the same characters ``wandblite.Artifact`` refuses, and URL-path safe)."""
    if not isinstance(name, str) or not _ARTIFACT_NAME_RE.fullmatch(name):
        raise bad_request(f"invalid {what} {name!r}: 1-128 characters without '/', '\\', ':' or control "
                          "characters expected", code="invalid_name")
    return _utf8(name, what)


def artifact_digest(entries: dict[str, dict[str, Any]]) -> str:
    """An artifact's digest, by the one rule of ``wandblite.artifacts`` (the SDK computes it offline)."""
    from wandblite.artifacts import artifact_digest as sdk_digest

    return sdk_digest(entries)


def finite_number(v: Any) -> float | None:
    """``v`` as a float when it is a finite int or float (not a bool), else None."""
    if is_plain_number(v):
        try:
            f = float(v)
        except OverflowError:
            return None
        return f if math.isfinite(f) else None
    return None


def int64(v: Any) -> int | None:
    """``v`` when it is an int that fits a signed 64-bit column, else None."""
    return v if type(v) is int and -(1 << 63) <= v < (1 << 63) else None


def record_index(item: Any, stream: str, i: int) -> int:
    """``item['idx']``: the record's index in its run's stream."""
    if not isinstance(item, dict):
        raise bad_request(f"{stream}[{i}] must be an object")
    idx = item.get("idx")
    if type(idx) is not int or idx < 0 or idx >= 1 << 62:
        raise bad_request(f"{stream}[{i}].idx must be a non-negative integer")
    return idx


# --------------------------------------------------------------------------- a batch's run and rows


def prep_run(meta: dict[str, Any]) -> dict[str, Any]:
    """The runs row's columns a batch's ``run`` object sets, checked and encoded."""
    out: dict[str, Any] = {}
    for k in _RUN_TEXT:
        if k in meta:
            out[k] = clean_text(meta[k], f"run.{k}")
    for k in _RUN_FLOAT:
        if k in meta:
            v = meta[k]
            if v is not None and finite_number(v) is None:
                raise bad_request(f"run.{k} must be a finite number or null")
            out[k] = None if v is None else float(v)
    for k in _RUN_JSON:
        if k in meta:
            v = meta[k]
            if k == "tags" and v is not None and not (isinstance(v, list) and all(isinstance(t, str) for t in v)):
                raise bad_request("run.tags must be a list of strings")
            if k in ("config", "summary", "context", "metrics") and v is not None and not isinstance(v, dict):
                raise bad_request(f"run.{k} must be an object")
            out[k] = dumps(v)
    if "exit_code" in meta:
        v = meta["exit_code"]
        if v is not None and int64(v) is None:
            raise bad_request("run.exit_code must be an integer or null")
        out["exit_code"] = v
    if "state" in out and out["state"] not in RUN_STATES:
        raise bad_request(f"run.state must be one of {sorted(RUN_STATES)}")
    if "state" in out and out["state"] is None:
        del out["state"]
    return out


def prep_rows(items: list[Any]) -> list[tuple[int, Row]]:
    """A batch's ``rows`` as (idx, ``Row``): indexes consecutive, only the last row provisional."""
    out: list[tuple[int, Row]] = []
    prev = -1
    isfinite = math.isfinite
    for i, item in enumerate(items):
        idx = item.get("idx") if type(item) is dict else None
        if type(idx) is not int or not 0 <= idx < 1 << 62:  # record_index says what is wrong
            idx = record_index(item, "rows", i)
        if idx <= prev:
            raise bad_request(f"rows[{i}].idx {idx} does not follow {prev}: indexes must increase")
        if prev >= 0 and idx != prev + 1:
            raise bad_request(f"rows[{i}].idx {idx} leaves a gap after {prev} inside the batch")
        prev = idx
        final = item.get("final", True)
        if type(final) is not bool:
            raise bad_request(f"rows[{i}].final must be a boolean")
        if not final and i != len(items) - 1:
            raise bad_request("only the last row of a batch may be provisional (final: false)")
        row = item.get("row")
        if not isinstance(row, dict):
            raise bad_request(f"rows[{i}].row must be an object")
        # finite_number's answer, a finite float's at once (the hot path: every row has two)
        runtime, timestamp = row.get(RUNTIME), row.get(TIMESTAMP)
        runtime = runtime if type(runtime) is float and isfinite(runtime) else finite_number(runtime)
        timestamp = timestamp if type(timestamp) is float and isfinite(timestamp) else finite_number(timestamp)
        step = int64(row.get(STEP))
        template, points = split_row(row, step, runtime, timestamp)
        out.append((idx, Row(final, None if final else dumps(row), template, step, runtime, timestamp, points,
                             media_leaves(row, template))))
    return out


# --------------------------------------------------------------------------- record streams


def numbered(items: list[Any], field: str, prep: Callable[[dict[str, Any], str], Any]) -> list[tuple[int, Any]]:
    """A batch's records of one stream as (idx, ``prep(item, "<field>[<i>]")``); indexes consecutive."""
    out: list[tuple[int, Any]] = []
    for i, item in enumerate(items):
        idx = record_index(item, field, i)
        if out and idx != out[-1][0] + 1:
            raise bad_request(f"{field}[{i}].idx {idx} does not follow {out[-1][0]}")
        out.append((idx, prep(item, f"{field}[{i}]")))
    return out


def prep_writer(item: dict[str, Any], what: str) -> str | None:
    """A console or system record's ``writer``: the label of the shared run's writer it came from
    (``vocab.WRITER_LABEL_RE``), or None (absent or null: a single writer's record)."""
    label = item.get("writer")
    if label is None:
        return None
    problem = writer_label_problem(label)
    if problem is not None:
        raise bad_request(f"{what}.writer: {problem}")
    return str(label)


def prep_console(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One console record: ``{ts, stream, text, writer}``."""
    text = clean_text(item.get("text"), f"{what}.text", 64 << 20)
    return {"ts": finite_number(item.get("ts")), "stream": clean_text(item.get("stream"), f"{what}.stream", 16),
            "text": text or "", "writer": prep_writer(item, what)}


def prep_system(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One system record: ``{ts, metrics, writer}`` (the metrics as JSON text)."""
    m = item.get("metrics")
    if not isinstance(m, dict):
        raise bad_request(f"{what}.metrics must be an object")
    return {"ts": finite_number(item.get("ts")), "metrics": dumps(m), "writer": prep_writer(item, what)}


def _opt_num(v: Any, what: str) -> float | None:
    if v is None:
        return None
    f = finite_number(v)
    if f is None:
        raise bad_request(f"{what} must be a finite number or null")
    return f


def _size(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v < 1 << 62:
        raise bad_request(f"{what} must be a non-negative integer")
    return v


def prep_file(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One FILES entry: ``{name, sha256, size, policy, ts, lost}`` (see PROTOCOL.md)."""
    policy = item.get("policy")
    if policy not in (None, "live", "now", "end"):
        raise bad_request(f"{what}.policy must be live, now, end or null")
    lost = item.get("lost", False)
    if type(lost) is not bool:
        raise bad_request(f"{what}.lost must be a boolean")
    return {"name": validate_file_name(item.get("name"), f"{what}.name"), "sha256": validate_sha256(item.get("sha256")),
            "size": _size(item.get("size"), f"{what}.size"), "policy": policy,
            "ts": _opt_num(item.get("ts"), f"{what}.ts"), "lost": lost}


def prep_artifact(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One ARTIFACT manifest, checked against its digest; entries keep only ``sha256``/``size``/``ref``."""
    version = item.get("version")
    if type(version) is not int or not 0 <= version <= MAX_ARTIFACT_VERSION:
        raise bad_request(f"{what}.version must be an integer from 0 to {MAX_ARTIFACT_VERSION}")
    aliases = item.get("aliases") or []
    if not isinstance(aliases, list) or len(aliases) > 256:
        raise bad_request(f"{what}.aliases must be a list of at most 256 aliases")
    aliases = list(dict.fromkeys(validate_artifact_name(a, f"{what} alias") for a in aliases))
    for a in aliases:
        if a[:1] == "v" and a[1:].isdigit():
            raise bad_request(f"{what}: alias {a!r} is reserved for versions", code="invalid_name")
    metadata = item.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request(f"{what}.metadata must be an object or null")
    raw = item.get("entries")
    if not isinstance(raw, dict) or len(raw) > 100_000:
        raise bad_request(f"{what}.entries must be an object of at most 100000 entries")
    entries: dict[str, dict[str, Any]] = {}
    for path, e in raw.items():
        validate_file_name(path, f"{what} entry path")
        if not isinstance(e, dict):
            raise bad_request(f"{what}.entries[{path!r}] must be an object")
        clean: dict[str, Any] = {}
        if "ref" in e:
            ref = e["ref"]
            if not isinstance(ref, str) or not 0 < len(ref) <= 4096 or _has_control(ref):
                raise bad_request(f"{what}.entries[{path!r}].ref must be a URI of 1-4096 characters")
            clean["ref"] = clean_text(ref, f"{what}.entries[{path!r}].ref")
            if e.get("sha256") is not None:
                clean["sha256"] = validate_sha256(e["sha256"])
            if e.get("size") is not None:
                clean["size"] = _size(e["size"], f"{what}.entries[{path!r}].size")
        else:
            clean["sha256"] = validate_sha256(e.get("sha256"))
            clean["size"] = _size(e.get("size"), f"{what}.entries[{path!r}].size")
        entries[path] = clean
    digest = validate_sha256(item.get("digest"))
    if artifact_digest(entries) != digest:
        raise bad_request(f"{what}: the entries hash to {artifact_digest(entries)}, not the digest {digest}",
                          code="hash_mismatch")
    return {"name": validate_artifact_name(item.get("name"), f"{what}.name"),
            "type": clean_text(item.get("type"), f"{what}.type", 128), "version": version, "digest": digest,
            "aliases": aliases, "description": clean_text(item.get("description"), f"{what}.description"),
            "metadata": None if metadata is None else dumps(metadata), "entries": entries,
            "size": sum(int(e.get("size") or 0) for e in entries.values()),
            "ts": _opt_num(item.get("ts"), f"{what}.ts")}


def prep_use(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One USE record: ``{name, version, digest, type, run, ts}``."""
    version = item.get("version")
    if version is not None and (type(version) is not int or not 0 <= version <= MAX_ARTIFACT_VERSION):
        raise bad_request(f"{what}.version must be an integer from 0 to {MAX_ARTIFACT_VERSION} or null")
    digest = item.get("digest")
    return {"name": validate_artifact_name(item.get("name"), f"{what}.name"), "version": version,
            "digest": None if digest is None else validate_sha256(digest),
            "type": clean_text(item.get("type"), f"{what}.type", 128),
            "source_run": clean_text(item.get("run"), f"{what}.run", 128), "ts": _opt_num(item.get("ts"), f"{what}.ts")}


def prep_alert(item: dict[str, Any], what: str) -> dict[str, Any]:
    """One ALERT record: ``{title, text, level, wait_duration, ts}``."""
    title = clean_text(item.get("title"), f"{what}.title", 64 << 10)
    if not title:
        raise bad_request(f"{what}.title must be a non-empty string")
    level = item.get("level") or "INFO"
    if level not in ("INFO", "WARN", "ERROR"):
        raise bad_request(f"{what}.level must be INFO, WARN or ERROR")
    return {"title": title, "text": clean_text(item.get("text"), f"{what}.text") or "", "level": level,
            "wait_duration": _opt_num(item.get("wait_duration"), f"{what}.wait_duration"),
            "ts": _opt_num(item.get("ts"), f"{what}.ts")}


#: msgpack extension codes of a history page's numpy columns: little-endian float64, int64 values.
HISTORY_EXT_F8, HISTORY_EXT_I8 = 1, 2


def _pack_array(obj: Any) -> Any:
    import msgpack
    import numpy as np

    if isinstance(obj, np.ndarray) and obj.ndim == 1:
        if obj.dtype == np.float64:
            return msgpack.ExtType(HISTORY_EXT_F8, obj.astype("<f8").tobytes())
        if obj.dtype == np.int64:
            return msgpack.ExtType(HISTORY_EXT_I8, obj.astype("<i8").tobytes())
    raise TypeError(f"cannot pack {type(obj).__name__}")


def pack_history(page: dict[str, Any]) -> bytes | None:
    """The msgpack bytes of a history page, or None when a value has no exact msgpack form. A numpy
    column (``history_store.read_blocks``) goes as its bytes: extension ``HISTORY_EXT_F8`` (float64)
    or ``HISTORY_EXT_I8`` (int64), little-endian."""
    import msgpack

    try:
        return bytes(msgpack.packb(page, use_bin_type=True, default=_pack_array))
    except (OverflowError, UnicodeEncodeError, TypeError, ValueError):
        return None
