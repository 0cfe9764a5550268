"""The query side of the store: run tables, metric keys, chart series, media listings and meshes.

Layer 5. Plain functions over a ``Store`` returning JSON-able dicts. The HTTP app serves them under
``/api/v1`` and ``wandblite.Api()`` calls them directly on the embedded local store, so both read
the same answers. Nothing here builds SQL from user text: every value is a bound parameter, and
run filters are evaluated in Python over the rows of one project (``match_filter``).

What it promises
----------------
* ``list_runs`` filters with a small MongoDB-like language (the one wandb's ``api.runs(filters=)``
  speaks): ``{"state": "finished"}``, ``{"config.lr": {"$gt": 0.01}}``, ``{"tags": {"$in": ["a"]}}``,
  ``{"$or": [...]}``; operators ``$eq $ne $gt $gte $lt $lte $in $nin $regex $options $exists $not``
  and ``$and $or $nor``. A list value (tags) matches when any element does, as in MongoDB.
  ``$regex`` (Python syntax; ``$options: "i"`` ignores case) is searched in the first
  ``REGEX_SUBJECT`` (1,000) characters of a value; patterns that can take exponential or
  polynomial time (nested repeats, backreferences, several open-ended repeats that can split the
  same text) are refused with a 400 ``unsafe_regex`` naming the key and what to change, and a
  request spends at most ``REGEX_SECONDS`` matching (400 ``filter_too_slow``). See ``check_regex``.
* ``series`` downsamples a metric for charts: at most ``samples`` points that keep, for each of
  about ``samples / 2`` buckets of the run's index range, the bucket's minimum and maximum point
  (the spikes), in x order. NaN and +-Infinity values are skipped in ``y`` (they have no place on
  a chart); ``count`` still counts them (every point logged in the range). The x of a point is
  its row's ``_step``, ``_runtime``, ``_timestamp``, or the value another metric (``epoch``) has
  in the same history row (points whose row lacks that metric are dropped).
* Speed: the min/max of each bucket comes from a per-(run, key) pyramid (``store.series_agg``,
  buckets of 16, 256, 4096, 65536 and 1048576 history indexes) that the store extends as each
  sync batch is stored. A chart of a 1M-point series reads about 4,000 aggregate rows instead of
  a million points. Only final rows enter the pyramid; a crashed run's provisional row is read raw.
* Nothing here writes: every function only reads (one snapshot per call, ``Store.snapshot``), so
  the query API serves from a read-only database user or replica.
* ``min_x``/``max_x`` (zoom) locate the index range by binary search, which assumes x does not
  decrease along the run (true for ``_step``, ``_runtime``, ``_timestamp`` and usual epoch
  counters); the points returned are then filtered exactly by x.
* Media keys and media listings use ``store.media_rows`` (which rows hold a ``_type`` value under
  which key), written by the store with the final rows, like the pyramid.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.errors import bad_request
from wandblite.server.read import project_id, run_dict, run_row
from wandblite.server.store import (
    PYRAMID_LEVELS,
    PYRAMID_SHIFT,
    Store,
    history,
    media_rows,
    runs,
    series,
    series_agg,
    typed_leaves,
)

__all__ = [
    "KINDS",
    "MAX_MESH_FACES",
    "MAX_POINTS",
    "REGEX_MAX_LEN",
    "REGEX_SECONDS",
    "REGEX_SUBJECT",
    "check_regex",
    "list_media",
    "list_runs",
    "match_filter",
    "mesh",
    "run_keys",
    "runs_args",
    "series_args",
    "get_series",
]

#: ``kind`` values of ``run_keys``; other ``_type`` values (collections such as ``videos``) are "other".
KINDS = ("number", "image-file", "images/separated", "video-file", "audio-file", "histogram", "table-file",
         "chart", "object3D-file", "html-file", "other")
ORDER_COLUMNS = ("created_at", "updated_at", "name", "state", "runtime", "id", "rows", "group", "job_type",
                 "heartbeat_at", "exit_code")
MAX_RUNS_PAGE = 10_000
MAX_SAMPLES = 100_000
MAX_MEDIA_STEPS = 100_000
MAX_POINTS = 200_000  # point clouds beyond this are thinned with an even stride
MAX_MESH_FACES = 300_000  # meshes beyond this keep an evenly spaced subset of their faces
_SHIFT = PYRAMID_SHIFT  # each pyramid level buckets 16x more indexes than the one below
_LEVELS = PYRAMID_LEVELS  # bucket widths 16, 256, 4096, 65536, 1048576
_RAW_MAX = 20_000  # index spans up to this are read point by point
_X_COLUMNS = {"_step": "step", "_runtime": "runtime", "_timestamp": "timestamp"}
_RESERVED = frozenset(_X_COLUMNS)


# --------------------------------------------------------------------------- projects and runs


def runs_args(params: Any) -> dict[str, Any]:
    """Validate the query parameters of ``GET .../runs`` (a mapping of strings) into ``list_runs`` kwargs."""
    out: dict[str, Any] = {"order": params.get("order") or "-created_at", "search": params.get("search") or None}
    raw = params.get("filters")
    if raw:
        try:
            out["filters"] = json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"filters is not valid JSON: {exc}", code="malformed_json")
    try:
        out["limit"] = int(params.get("limit") or 1000)
        out["offset"] = int(params.get("offset") or 0)
    except ValueError:
        raise bad_request("limit and offset must be integers")
    return out


def list_runs(store: Store, project: str, filters: Any = None, order: str = "-created_at",
              search: str | None = None, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
    """``{"runs": [...], "total": n}``: the project's runs, filtered, searched, ordered, paged.

    ``order`` is a column (``created_at``, ``updated_at``, ``name``, ``state``, ``runtime``, ...) or
    ``summary.<key>``/``config.<key>``, with a leading ``-`` for descending; runs without the value
    come last either way. ``total`` counts the runs that match before paging.
    """
    if filters is not None and not isinstance(filters, dict):
        raise bad_request("filters must be a JSON object")
    if not 1 <= limit <= MAX_RUNS_PAGE or offset < 0:
        raise bad_request(f"limit must be between 1 and {MAX_RUNS_PAGE} and offset >= 0")
    if filters:
        _check_filter(filters)  # before any database work: a bad filter costs nothing
    sort_key = _order_key(order)
    with store.read_engine.connect() as conn:
        pid = project_id(conn, project)
        rows = conn.execute(sa.select(runs).where(runs.c.project_id == pid)
                            .order_by(runs.c.created_at, runs.c.run_id)).all()
    out = [run_dict(r) for r in rows]
    if search:
        s = search.lower()
        out = [d for d in out if any(s in str(v).lower() for v in (d["name"], d["id"], d["notes"], *d["tags"])
                                     if v is not None)]
    if filters:
        out = _filter_runs(out, filters, project)
    out = sort_key(out)
    return {"runs": out[offset:offset + limit], "total": len(out)}


def _filter_runs(items: list[dict[str, Any]], filters: dict[str, Any], project: str) -> list[dict[str, Any]]:
    """The runs matching ``filters``; a filter with a ``$regex`` gets ``REGEX_SECONDS`` to do it.

    One match is bounded by ``check_regex``; this bounds the sum over a large project (between
    runs: a match in progress is never interrupted).
    """
    if not _uses_regex(filters):
        return [d for d in items if match_filter(d, filters)]
    deadline = time.monotonic() + REGEX_SECONDS
    out = []
    for i, d in enumerate(items):
        if time.monotonic() > deadline:
            raise bad_request(
                f"the filters took more than {REGEX_SECONDS:g}s of $regex matching for {i} of the {len(items)} "
                f"runs of project {project!r}; make the $regex more specific (anchor it with ^, drop .*) or "
                "narrow the runs with another filter first", code="filter_too_slow")
        if match_filter(d, filters):
            out.append(d)
    return out


def _uses_regex(f: Any) -> bool:
    if isinstance(f, dict):
        return "$regex" in f or any(_uses_regex(v) for v in f.values())
    if isinstance(f, list):
        return any(_uses_regex(v) for v in f)
    return False


def _order_key(order: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    desc = order.startswith("-")
    field = order.lstrip("-+")
    if field not in ORDER_COLUMNS and not field.startswith(("summary.", "config.")):
        raise bad_request(f"cannot order by {order!r}: use one of {', '.join(ORDER_COLUMNS)}, "
                          "summary.<key> or config.<key>, with '-' for descending")
    path = field.split(".")

    def sort(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        have, missing = [], []
        for d in items:
            found, v = _resolve(d, path)
            if not found or v is None or isinstance(v, (dict, list)) or (isinstance(v, float) and math.isnan(v)):
                missing.append(d)  # no value, or none that orders (an object, a list, NaN): last
            else:
                have.append((_rank(v), d))
        have.sort(key=lambda t: t[0], reverse=desc)
        return [d for _, d in have] + missing

    return sort


def _rank(v: Any) -> tuple[int, Any]:
    """A total order over scalar JSON values: booleans, numbers, then strings (case-insensitively)."""
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, (int, float)):
        return (1, v)
    return (2, str(v).lower())


_ALIASES = {"display_name": "name", "displayName": "name", "createdAt": "created_at", "updatedAt": "updated_at",
            "heartbeatAt": "heartbeat_at", "jobType": "job_type", "summary_metrics": "summary", "run_id": "id"}


def _resolve(doc: Any, parts: list[str]) -> tuple[bool, Any]:
    """The value at a dotted path; a key that itself contains dots is found too (``config.a.b`` in
    ``{"a.b": 1}``); wandb's ``config.<key>.value`` form reads ``config.<key>``."""
    if not parts:
        return True, doc
    if not isinstance(doc, dict):
        return False, None
    head = _ALIASES.get(parts[0], parts[0]) if isinstance(doc, dict) and "summary" in doc else parts[0]
    for i in range(1, len(parts) + 1):
        k = ".".join([head, *parts[1:i]])
        if k in doc:
            found, v = _resolve(doc[k], parts[i:])
            if found:
                return True, v
    if parts[-1] == "value" and len(parts) > 1:  # wandb's {"config.lr.value": ...}
        return _resolve(doc, parts[:-1])
    return False, None


_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex", "$options", "$exists",
                  "$not"})


def _check_filter(f: Any, depth: int = 0) -> None:
    """Reject unknown operators and malformed operands up front (a 400, not a silent non-match)."""
    if depth > 32:
        raise bad_request("filters are nested too deeply")
    if not isinstance(f, dict):
        raise bad_request("a filter must be a JSON object")
    for k, v in f.items():
        if k in ("$and", "$or", "$nor"):
            if not isinstance(v, list) or not v:
                raise bad_request(f"{k} needs a non-empty list of filters")
            for sub in v:
                _check_filter(sub, depth + 1)
        elif k.startswith("$"):
            raise bad_request(f"unknown filter operator {k!r} at the top level")
        elif isinstance(v, dict) and any(x.startswith("$") for x in v):
            for op, arg in v.items():
                if op not in _OPS:
                    raise bad_request(f"unknown filter operator {op!r} for {k!r}")
                if op in ("$in", "$nin") and not isinstance(arg, list):
                    raise bad_request(f"{op} for {k!r} needs a list")
                if op == "$regex":
                    check_regex(k, arg, str(v.get("$options", "")))
                if op == "$not":
                    _check_filter({k: arg}, depth + 1)


def match_filter(doc: dict[str, Any], f: dict[str, Any]) -> bool:
    """Whether a run dict (``list_runs`` shape) matches a MongoDB-like filter (see the module docstring)."""
    for k, cond in f.items():
        if k == "$and":
            if not all(match_filter(doc, sub) for sub in cond):
                return False
        elif k == "$or":
            if not any(match_filter(doc, sub) for sub in cond):
                return False
        elif k == "$nor":
            if any(match_filter(doc, sub) for sub in cond):
                return False
        else:
            found, value = _resolve(doc, k.split("."))
            if isinstance(cond, dict) and any(x.startswith("$") for x in cond):
                if not _match_ops(found, value, cond):
                    return False
            elif not (found and _eq(value, cond)):
                return False
    return True


def _eq(value: Any, want: Any) -> bool:
    if isinstance(value, list) and not isinstance(want, list):
        return any(_eq1(v, want) for v in value)
    return _eq1(value, want)


def _eq1(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    return bool(a == b)


def _cmp(value: Any, want: Any, op: str) -> bool:
    vals = value if isinstance(value, list) else [value]
    for v in vals:
        num = (isinstance(v, (int, float)) and not isinstance(v, bool)
               and isinstance(want, (int, float)) and not isinstance(want, bool))
        if not num and not (isinstance(v, str) and isinstance(want, str)):
            continue
        if ((op == "$gt" and v > want) or (op == "$gte" and v >= want) or (op == "$lt" and v < want)
                or (op == "$lte" and v <= want)):
            return True
    return False


def _match_ops(found: bool, value: Any, cond: dict[str, Any]) -> bool:
    for op, arg in cond.items():
        if op == "$exists":  # a column that is NULL (no group, no notes) does not exist
            ok = (found and value is not None) == bool(arg)
        elif op == "$eq":
            ok = found and _eq(value, arg)
        elif op == "$ne":
            ok = not (found and _eq(value, arg))
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = found and _cmp(value, arg, op)
        elif op == "$in":
            ok = found and any(_eq(value, a) for a in arg)
        elif op == "$nin":
            ok = not (found and any(_eq(value, a) for a in arg))
        elif op == "$regex":
            flags = re.IGNORECASE if "i" in str(cond.get("$options", "")) else 0
            vals = value if isinstance(value, list) else [value]
            ok = found and any(isinstance(v, str) and re.search(arg, v[:REGEX_SUBJECT], flags) is not None
                               for v in vals)
        elif op == "$not":
            ok = not _match_ops(found, value, arg if isinstance(arg, dict) else {"$eq": arg})
        else:  # $options: read by $regex
            ok = True
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------- $regex safety
#
# Filters come from whoever may read the server, and Python's ``re`` backtracks: ``(a+)+$`` against
# 30 a's and a "b", or ``a*a*a*b`` against 1,000 a's, keeps a worker busy for seconds to hours, and
# a running match cannot be interrupted. So a pattern is checked on its parse tree (``re``'s own
# parser, the one ``re.compile`` runs) before it is used, each value is matched on its first
# ``REGEX_SUBJECT`` characters only, and one request spends at most ``REGEX_SECONDS`` matching:
#
# * backreferences and conditional groups are refused (matching them is NP-hard in general);
# * a group repeated more than once may not contain a repeat, an optional part or alternatives
#   that can start alike, unless each round ends on a fixed character ("nested quantifiers" such
#   as ``(a+)+`` or ``(a|ab)*`` try exponentially many ways to split the text);
# * the work of one search, estimated from the parse tree, may not exceed ``_REGEX_WORK`` engine
#   steps per start position (``REGEX_SUBJECT`` positions; one for a pattern anchored with ``^``).
#   A repeat can scan ``REGEX_SUBJECT`` characters and, unless its end is fixed, give them back
#   one by one, each time retrying everything after it: so what follows an open-ended repeat is
#   counted ``REGEX_SUBJECT + 1`` times (``x?`` twice, ``x{1,3}`` three times). A repeat's end is fixed when what follows must start with a character the
#   repeat cannot match (``\d+-``, ``[^/]*/``, ``\w+$``) or when the pattern ends there. In
#   short: one open-ended repeat whose end is not fixed, followed by a few characters, is fine
#   (``.*foo.*``, ``^run-\d+$``); anything that scans again for each of its choices is not
#   (``a*a*a*b``, ``.*a.*b``: polynomial blow-ups).
#
# A construct the checker does not know is refused rather than trusted. The estimate is an upper
# bound by design: it refuses some patterns that happen to run fast (``(-\d+)+$``). Measured on
# the development machine against 1,000-character values built to be worst cases: the slowest of
# about 10,000 accepted random patterns made of trap pieces (a fuzz like the one in
# tests/query/test_regex_guard.py) took 56 ms; ``a*a*a*b`` took 48 s and ``(a+)+$`` never ends.

REGEX_MAX_LEN = 500  # characters of a $regex pattern
REGEX_SUBJECT = 1_000  # characters of each value a $regex is matched against
REGEX_SECONDS = 2.0  # matching time one request may spend before it is refused
_REGEX_WORK = 8 * (REGEX_SUBJECT + 1)  # estimated engine steps per start position (x REGEX_SUBJECT starts)
_SLOW_ROUND = 8  # a repeated group runs about 8x slower per round than a repeated character
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_ONE_CHAR = ("LITERAL", "NOT_LITERAL", "ANY", "IN")
_CATEGORY_RX = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
                "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}
_END = None  # in a follow list: the pattern ends here, so the match succeeds
_NESTED = ("repeats a group that itself contains a repeat, an optional part or alternatives that can start alike "
           "(like (a+)+, (a?b)* or (a|ab)*), which can take exponential time to match; repeat a single character "
           "or class instead (a+, [ab]*), or make each round end on a character its repeats cannot match")


class _UnsafeRegex(Exception):
    pass


def _sre_parser() -> Any:
    try:
        return importlib.import_module("re._parser")  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        return importlib.import_module("sre_parse")


def check_regex(key: str, pattern: Any, options: str = "") -> None:
    """Raise a 400 ``ApiError`` unless ``pattern`` is a valid ``$regex`` that matches in bounded time.

    ``key`` is the filter key the pattern is for; the message names it and says what to change.
    See the comment above for what is refused and why.
    """
    if not isinstance(pattern, str) or len(pattern) > REGEX_MAX_LEN:
        raise bad_request(f"$regex for {key!r} must be a string of at most {REGEX_MAX_LEN} characters")
    flags = re.IGNORECASE if "i" in options else 0
    try:
        re.compile(pattern, flags)
        parsed = _sre_parser().parse(pattern, flags)
    except re.error as exc:
        raise bad_request(f"bad $regex for {key!r}: {exc}")
    except RecursionError:
        raise bad_request(f"$regex for {key!r} nests groups too deeply", code="unsafe_regex")
    where = f"$regex {pattern!r} for {key!r}"
    try:
        all_flags = int(parsed.state.flags) | flags
        _ways, work, _tail = _RegexCost(all_flags).seq(list(parsed), [_END])
        if not _anchored(list(parsed), all_flags):
            work *= REGEX_SUBJECT  # the search tries every start position
    except _UnsafeRegex as exc:
        raise bad_request(f"{where} {exc}", code="unsafe_regex")
    except (AttributeError, TypeError, ValueError, IndexError, RecursionError):  # another shape, or too deep: refuse
        raise bad_request(f"{where} could not be checked for slow matching by this server; simplify it",
                          code="unsafe_regex")
    if work > _REGEX_WORK * REGEX_SUBJECT:
        raise bad_request(
            f"{where} can take too long to match: after an open-ended repeat (.*, \\w+) whose end is not fixed by "
            "the next character, the rest of the pattern is retried at every place the repeat could stop. Keep one "
            "such repeat with a few characters after it; $regex searches anywhere in the value, so a leading or "
            "trailing .* is not needed; fix where a repeat ends ([^-]*- instead of .*-) or bound it ({1,20})",
            code="unsafe_regex")


class _RegexCost:
    """Estimates one match attempt of a parsed pattern (see ``check_regex``).

    Each piece gives ``(ways, work, tail)``: the ways it can match one stretch of text (how often
    what follows may be retried), the engine steps of one try, and the steps spent at most once
    per search (a repeat that ends the pattern runs to its end only on the way to success).
    ``follow`` lists what may come right after a piece: items of the parse tree, or ``_END``.
    """

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.cap = 1 << 40

    def seq(self, items: list[Any], follow: list[Any]) -> tuple[int, int, int]:
        ways, work, tail = 1, 0, 0
        for i, item in enumerate(items):
            w, c, t = self.item(item, [items[i + 1]] if i + 1 < len(items) else follow)
            work = min(self.cap, work + ways * c)
            tail = min(self.cap, tail + t)
            ways = min(self.cap, ways * w)
        return ways, work, tail

    def item(self, item: Any, follow: list[Any]) -> tuple[int, int, int]:
        op, av = item
        name = _op_name(op)
        if name in _ONE_CHAR or name in ("AT", "CATEGORY"):
            return 1, 1, 0
        if name.startswith("GROUPREF"):
            raise _UnsafeRegex("refers back to a group (\\1, (?P=name) or (?(1)...)), which can take exponential "
                               "time to match and is not allowed here; match the text itself instead")
        if name == "SUBPATTERN":
            saved = self.flags
            self.flags |= av[1] or 0
            try:
                return self.seq(list(av[3]), follow)
            finally:
                self.flags = saved
        if name in ("ASSERT", "ASSERT_NOT", "ATOMIC_GROUP"):
            # Matched on its own (up to its first success), then never retried: one way.
            _w, c, t = self.seq(list(av if name == "ATOMIC_GROUP" else av[1]), [_END])
            return 1, min(self.cap, c + t), 0
        if name == "BRANCH":
            alts = [list(a) for a in av[1]]
            costs = [self.seq(a, follow) for a in alts]
            work, tail = sum(c[1] for c in costs), sum(c[2] for c in costs)
            starts = [_start_chars(a) for a in alts]
            if all(s is not None for s in starts):
                seen = [c for s in starts for c in set(s or ())]
                if len(seen) == len(set(seen)):
                    return max(c[0] for c in costs), work, tail  # only one alternative can start anywhere
            return min(self.cap, sum(c[0] for c in costs)), work, tail
        if name in _REPEATS:
            lo, hi, body = int(av[0]), int(av[1]), list(av[2])
            if hi <= 1:  # x? : with or without x
                w, c, t = self.seq(body, follow)
                return min(self.cap, w + 1), c + 1, t
            w, c, _t = self.seq(body, [body[0], *follow] if body else follow)  # after a round: another, or what follows
            if w > 1 and hi > lo:
                raise _UnsafeRegex(_NESTED)
            # Each round takes at least min_len of at most REGEX_SUBJECT characters. Rounds that cannot
            # backtrack inside cost the characters they take plus a (slow) overhead per round and piece;
            # a lookaround in the body may do its own work every round.
            min_len = max(1, _min_len(body))
            rounds = min(hi, REGEX_SUBJECT // min_len + 1)
            one_char = len(body) == 1 and _op_name(body[0][0]) in _ONE_CHAR
            if one_char:
                scan = rounds
            elif w == 1 and not _has_lookaround(body):
                scan = REGEX_SUBJECT + _SLOW_ROUND * rounds * _size(body)
            else:
                scan = _SLOW_ROUND * rounds * c
            if hi == lo:  # a fixed count: no choice of its own, but a body with choices multiplies
                ways = min(self.cap, w ** min(lo, 64))
                return ways, min(self.cap, scan * ways), 0
            if all(f is _END for f in follow):  # the pattern ends here: the scan runs once, on success
                return 1, (lo * c if one_char else _SLOW_ROUND * lo * c) + 1, scan
            fixed = name == "POSSESSIVE_REPEAT" or self._fixed_end(body, follow)
            return (1 if fixed else min(hi - lo, rounds) + 1), scan, 0
        raise _UnsafeRegex(f"uses {name}, which this server cannot check for slow matching; simplify it")

    def _fixed_end(self, body: list[Any], follow: list[Any]) -> bool:
        """Whether the repeat can only stop where it stops greedily: what follows is the end of the
        pattern or must start with a character the repeated body cannot start with, so giving
        characters back fails at once."""
        first = _first_char(body)
        if first is None:
            return False
        for f in follow:
            if f is _END:
                continue
            chars = _start_chars([f])
            if chars is None or any(self._may_match(first, c) for c in chars):
                return False
        return True

    def _may_match(self, item: Any, ch: str) -> bool:
        """Whether the single-character item can match ``ch`` (True when unsure)."""
        fold = bool(self.flags & re.IGNORECASE)
        cands = {ch, ch.lower(), ch.upper(), ch.casefold()} if fold else {ch}
        op, av = item
        name = _op_name(op)
        if name == "LITERAL":
            return chr(av) in cands or (fold and chr(av).casefold() == ch.casefold())
        if name == "NOT_LITERAL":
            return not (chr(av) == ch or (fold and chr(av).casefold() == ch.casefold()))
        if name == "ANY":
            return ch != "\n" or bool(self.flags & re.DOTALL)
        if name != "IN":
            return True
        negate = False
        hits = []
        for c in cands:
            hit = False
            for sub_op, sub_av in av:
                sub = _op_name(sub_op)
                if sub == "NEGATE":
                    negate = True
                elif sub == "LITERAL":
                    hit = hit or chr(sub_av) == c
                elif sub == "RANGE":
                    hit = hit or (len(c) == 1 and sub_av[0] <= ord(c) <= sub_av[1])
                elif sub == "CATEGORY" and _op_name(sub_av) in _CATEGORY_RX:
                    hit = hit or re.fullmatch(_CATEGORY_RX[_op_name(sub_av)], c, self.flags & re.ASCII) is not None
                else:
                    return True
            hits.append(hit)
        return not all(hits) if negate else any(hits)


def _op_name(op: Any) -> str:
    return str(getattr(op, "name", op))


def _children(op: Any, av: Any) -> list[list[Any]]:
    name = _op_name(op)
    if name == "SUBPATTERN":
        return [list(av[3])]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [list(av[1])]
    if name == "ATOMIC_GROUP":
        return [list(av)]
    if name == "BRANCH":
        return [list(a) for a in av[1]]
    if name in _REPEATS:
        return [list(av[2])]
    return []


def _size(items: list[Any]) -> int:
    """The number of pieces in a parse tree (the per-round overhead of a repeated group)."""
    return sum(1 + sum(_size(c) for c in _children(op, av)) for op, av in items)


def _has_lookaround(items: list[Any]) -> bool:
    return any(_op_name(op) in ("ASSERT", "ASSERT_NOT") or any(_has_lookaround(c) for c in _children(op, av))
               for op, av in items)


def _min_len(items: list[Any]) -> int:
    """The fewest characters a match of ``items`` can take."""
    total = 0
    for op, av in items:
        name = _op_name(op)
        if name in _ONE_CHAR:
            total += 1
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            total += _min_len(_children(op, av)[0])
        elif name == "BRANCH":
            total += min(_min_len(a) for a in _children(op, av))
        elif name in _REPEATS:
            total += int(av[0]) * _min_len(list(av[2]))
    return total


def _anchored(items: list[Any], flags: int) -> bool:
    """Whether every match starts at the start of the text (``^`` without MULTILINE, or ``\\A``)."""
    if not items:
        return False
    op, av = items[0]
    name = _op_name(op)
    if name == "AT":
        return _op_name(av) == "AT_BEGINNING_STRING" or (
            _op_name(av) == "AT_BEGINNING" and not flags & re.MULTILINE)
    if name == "SUBPATTERN" and not av[1] & re.MULTILINE:
        return _anchored(list(av[3]), flags)
    return False


def _first_char(items: list[Any]) -> Any:
    """The single-character item every match of ``items`` starts with, or None."""
    for op, av in items:
        name = _op_name(op)
        if name in _ONE_CHAR:
            return (op, av)
        if name == "SUBPATTERN" and not av[1] and not av[2]:
            return _first_char(list(av[3]))
        if name in _REPEATS and av[0] >= 1:
            return _first_char(list(av[2]))
        return None  # an anchor, a lookaround, an optional part, a flag change: no one first character
    return None


def _start_chars(items: list[Any]) -> list[str] | None:
    """Every character a match of ``items`` can start with (in all its cases), or None when that
    is not a small known set. ``$`` counts as a newline and ``\\Z`` as nothing: before another
    character they can only succeed at a newline, or never."""
    if not items:
        return None
    op, av = items[0]
    name = _op_name(op)
    chars: list[str] = []
    if name == "LITERAL":
        chars = [chr(av)]
    elif name == "IN":
        for sub_op, sub_av in av:
            sub = _op_name(sub_op)
            if sub == "LITERAL":
                chars.append(chr(sub_av))
            elif sub == "RANGE" and sub_av[1] - sub_av[0] <= 256:
                chars.extend(chr(c) for c in range(sub_av[0], sub_av[1] + 1))
            else:
                return None
    elif name == "SUBPATTERN":
        return _start_chars(list(av[3]))
    elif name == "BRANCH":
        for alt in av[1]:
            s = _start_chars(list(alt))
            if s is None:
                return None
            chars.extend(s)
    elif name in _REPEATS and av[0] >= 1:
        return _start_chars(list(av[2]))
    elif name == "AT" and _op_name(av) == "AT_END":
        return ["\n"]
    elif name == "AT" and _op_name(av) == "AT_END_STRING":
        return []
    else:
        return None
    return sorted({v for c in chars for v in (c, c.lower(), c.upper(), c.casefold())})


# --------------------------------------------------------------------------- keys


def _kind(t: str) -> str:
    return t if t in KINDS else "other"


def run_keys(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """``{"keys": [{"key", "kind", "count", "first_step", "last_step"}]}``: numeric keys (dotted
    leaf paths, from ``series``) then media and other ``_type`` keys (from the history rows)."""
    out: list[dict[str, Any]] = []
    with store.snapshot() as conn:
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        key: str | None = None
        while True:
            q = sa.select(sa.func.min(series.c.key)).where(series.c.run == pk)
            key = conn.execute(q.where(series.c.key > key) if key is not None else q).scalar()
            if key is None:
                break
            cond = (series.c.run == pk, series.c.key == key)
            first = conn.execute(sa.select(series.c.step).where(*cond).order_by(series.c.idx).limit(1)).scalar()
            last = conn.execute(sa.select(series.c.step).where(*cond).order_by(series.c.idx.desc()).limit(1)).scalar()
            count = _count(conn, pk, final, key)
            out.append({"key": key, "kind": "number", "count": int(count or 0), "first_step": first, "last_step": last})
        media: dict[str, dict[str, Any]] = {}
        q2 = (sa.select(media_rows.c.key, media_rows.c.type, sa.func.count().label("n"),
                        sa.func.min(media_rows.c.step).label("lo"), sa.func.max(media_rows.c.step).label("hi"))
              .where(media_rows.c.run == pk).group_by(media_rows.c.key, media_rows.c.type))
        for k, t, n, lo, hi in conn.execute(q2):
            _merge_media_key(media, k, t, int(n), lo, hi)
        for _idx, step, row in _tail_rows(conn, pk, final):  # a provisional row is not indexed
            leaves: list[tuple[str, Any]] = []
            typed_leaves({k: v for k, v in row.items() if k not in _RESERVED}, "", leaves)
            for k, v in leaves:
                _merge_media_key(media, k, str(v.get("_type")), 1, step, step)
    out.extend(sorted(media.values(), key=lambda d: d["key"]))
    for d in out:
        d.pop("_n", None)
    return {"keys": out}


def _count(conn: Connection, pk: int, final: int, key: str) -> int:
    """Points of a key: the final rows' from its pyramid's top level, plus a provisional row's."""
    a = series_agg.c
    top = conn.execute(sa.select(sa.func.sum(a.n)).where(a.run == pk, a.key == key, a.level == _LEVELS - 1)).scalar()
    rest = conn.execute(sa.select(sa.func.count()).select_from(series).where(
        series.c.run == pk, series.c.key == key, series.c.idx >= final)).scalar()
    return int(top or 0) + int(rest or 0)


def _merge_media_key(media: dict[str, dict[str, Any]], key: str, t: str, n: int, lo: Any, hi: Any) -> None:
    d = media.get(key)
    if d is None:
        media[key] = {"key": key, "kind": _kind(t), "type": t, "count": n, "first_step": lo, "last_step": hi,
                      "_n": n}
        return
    if n > d["_n"]:  # a key that held several types reports the commonest
        d.update(kind=_kind(t), type=t, _n=n)
    d["count"] += n
    d["first_step"] = lo if d["first_step"] is None else min(d["first_step"], lo) if lo is not None else d["first_step"]
    d["last_step"] = hi if d["last_step"] is None else max(d["last_step"], hi) if hi is not None else d["last_step"]


def _tail_rows(conn: Connection, pk: int, final: int) -> Iterable[tuple[int, Any, dict[str, Any]]]:
    q = sa.select(history.c.idx, history.c.step, history.c.row).where(history.c.run == pk, history.c.idx >= final)
    for idx, step, text in conn.execute(q.order_by(history.c.idx)):
        yield idx, step, json.loads(text)


# --------------------------------------------------------------------------- series


def series_args(params: Any) -> dict[str, Any]:
    """Validate the query parameters of ``GET .../series`` into ``get_series`` kwargs."""
    keys = [k for k in (params.get("keys") or "").split(",") if k]
    if not keys:
        raise bad_request("keys is required: a comma-separated list of metric keys")
    if len(keys) > 100:
        raise bad_request("at most 100 keys per request")
    out: dict[str, Any] = {"keys": keys, "x_axis": params.get("x_axis") or "_step"}
    try:
        out["samples"] = int(params.get("samples") or 1500)
        for name in ("min_x", "max_x"):
            v = params.get(name)
            out[name] = float(v) if v not in (None, "") else None
    except ValueError:
        raise bad_request("samples must be an integer and min_x/max_x numbers")
    return out


def get_series(store: Store, project: str, run_id: str, keys: list[str], x_axis: str = "_step",
               samples: int = 1500, min_x: float | None = None, max_x: float | None = None) -> dict[str, Any]:
    """``{"x_axis", "series": {key: {"x", "y", "y_min", "y_max", "count"}}}``, downsampled.

    ``x``/``y`` are the points kept, in x order (at most ``samples``); ``y_min``/``y_max`` are the
    minimum and maximum of the bucket each point stands for (equal to ``y`` for points returned one
    by one); ``count`` is the number of points logged in the range. A key never logged gives
    empty lists and a count of 0.
    """
    if not 2 <= samples <= MAX_SAMPLES:
        raise bad_request(f"samples must be between 2 and {MAX_SAMPLES}")
    for v in (min_x, max_x):
        if v is not None and math.isnan(v):
            raise bad_request("min_x and max_x must be numbers")
    for key in keys:
        if key in _X_COLUMNS:
            raise bad_request(f"{key} is an x axis, not a metric key")
    out: dict[str, Any] = {}
    with store.snapshot() as conn:  # the position, the rows and the pyramid as of one moment
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        for key in keys:
            out[key] = _one_series(conn, pk, final, key, x_axis, samples, min_x, max_x)
    return {"x_axis": x_axis, "series": out}


def _x_probe(conn: Connection, pk: int, x_axis: str) -> Callable[[int], float | None]:
    """x at the first row with an index >= i that has one (None past the end)."""
    if x_axis in _X_COLUMNS:
        col = history.c[_X_COLUMNS[x_axis]]
        q = sa.select(col).where(history.c.run == pk, history.c.idx >= sa.bindparam("i"), col.is_not(None))
    else:
        col = series.c.value
        q = sa.select(col).where(series.c.run == pk, series.c.key == x_axis, series.c.idx >= sa.bindparam("i"),
                                 col.is_not(None))
    q = q.order_by(history.c.idx if x_axis in _X_COLUMNS else series.c.idx).limit(1)

    def probe(i: int) -> float | None:
        v = conn.execute(q, {"i": i}).scalar()
        return None if v is None else float(v)

    return probe


def _idx_range(conn: Connection, pk: int, end: int, x_axis: str, min_x: float | None,
               max_x: float | None) -> tuple[int, int]:
    """The index range ``[lo, hi)`` whose x lies in ``[min_x, max_x]`` (x non-decreasing; binary search)."""
    if min_x is None and max_x is None:
        return 0, end
    probe = _x_probe(conn, pk, x_axis)

    def first_at_least(x: float, strict: bool) -> int:
        lo, hi = 0, end
        while lo < hi:
            mid = (lo + hi) // 2
            v = probe(mid)
            if v is None or (v > x if strict else v >= x):
                hi = mid
            else:
                lo = mid + 1
        return lo

    lo = first_at_least(min_x, False) if min_x is not None else 0
    hi = first_at_least(max_x, True) if max_x is not None else end
    # Points of a metric key may sit between the x key's rows: widen by one row on each side.
    return max(0, lo - 1), min(end, hi + 1)


def _one_series(conn: Connection, pk: int, final: int, key: str, x_axis: str, samples: int,
                min_x: float | None, max_x: float | None) -> dict[str, Any]:
    cond = (series.c.run == pk, series.c.key == key)
    last = conn.execute(sa.select(series.c.idx).where(*cond).order_by(series.c.idx.desc()).limit(1)).scalar()
    if last is None:
        return {"x": [], "y": [], "y_min": [], "y_max": [], "count": 0}
    first = int(conn.execute(sa.select(series.c.idx).where(*cond).order_by(series.c.idx).limit(1)).scalar_one())
    lo, hi = _idx_range(conn, pk, int(last) + 1, x_axis, min_x, max_x)
    lo, hi = max(lo, first), min(hi, int(last) + 1)
    nb = max(1, samples // 2)
    # items: (first_idx, last_idx, n, min_v, min_idx, max_v, max_idx), min/max over finite values only
    items: list[tuple[int, int, int, float | None, int | None, float | None, int | None]] = []
    span = hi - lo
    level = -1
    if span > _RAW_MAX:
        for lv in range(_LEVELS):
            if span >> (_SHIFT * (lv + 1)) <= 16 * nb:
                level = lv
                break
        else:
            level = _LEVELS - 1
    if level < 0:
        items = _raw_items(conn, cond, lo, hi)
    else:
        width = 1 << (_SHIFT * (level + 1))
        agg_hi = min(hi, final)
        b_lo = -(-lo // width)  # the first bucket starting at or after lo
        b_hi = agg_hi // width if agg_hi < final else -(-final // width)  # buckets wholly in range
        if b_hi <= b_lo:
            items = _raw_items(conn, cond, lo, hi)
        else:
            a = series_agg.c
            rows = conn.execute(sa.select(a.first_idx, a.last_idx, a.n, a.min_v, a.min_idx, a.max_v, a.max_idx).where(
                a.run == pk, a.key == key, a.level == level, a.bucket >= b_lo, a.bucket < b_hi,
            ).order_by(a.bucket)).all()
            items = _raw_items(conn, cond, lo, min(hi, b_lo * width))
            items.extend(tuple(r) for r in rows)  # type: ignore[misc]
            items.extend(_raw_items(conn, cond, max(lo, min(b_hi * width, final)), hi))
    count = sum(it[2] for it in items)
    if count <= samples and level >= 0:
        items = _raw_items(conn, cond, lo, hi)  # few points spread over many indexes: send them all
    points: list[tuple[int, float, float, float]] = _downsample(items, lo, max(1, hi - lo), nb) if count > samples \
        else [(it[0], it[3], it[3], it[3]) for it in items if it[3] is not None]
    xs = _x_values(conn, pk, key, x_axis, [p[0] for p in points])
    kept = []
    for (idx, y, ylo, yhi) in points:
        x = xs.get(idx)
        if x is None or (min_x is not None and x < min_x) or (max_x is not None and x > max_x):
            continue
        kept.append((x, y, ylo, yhi))
    kept.sort(key=lambda p: p[0])  # already so for a non-decreasing x; a wandering epoch axis is sorted
    out_x, out_y, out_lo, out_hi = [], [], [], []
    for x, y, ylo, yhi in kept:
        out_x.append(x)
        out_y.append(y)
        out_lo.append(ylo)
        out_hi.append(yhi)
    return {"x": out_x, "y": out_y, "y_min": out_lo, "y_max": out_hi, "count": count}


def _raw_items(conn: Connection, cond: tuple[Any, ...], lo: int, hi: int) -> list[Any]:
    if hi <= lo:
        return []
    rows = conn.execute(sa.select(series.c.idx, series.c.value).where(*cond, series.c.idx >= lo, series.c.idx < hi)
                        .order_by(series.c.idx)).all()
    out = []
    for idx, v in rows:
        ok = v is not None and math.isfinite(v)
        out.append((idx, idx, 1, v if ok else None, idx if ok else None, v if ok else None, idx if ok else None))
    return out


def _downsample(items: list[Any], lo: int, span: int, nb: int) -> list[tuple[int, float, float, float]]:
    """Group items into ``nb`` index buckets; keep each bucket's min and max point, in index order."""
    out: list[tuple[int, float, float, float]] = []
    cur = -1
    mn: Any = None
    mx: Any = None

    def flush() -> None:
        if mn is None or mx is None:
            return
        if mn[1] == mx[1]:
            out.append((mn[1], mn[0], mn[0], mx[0]))
        else:
            a, b = sorted((mn, mx), key=lambda t: t[1])
            out.append((a[1], a[0], mn[0], mx[0]))
            out.append((b[1], b[0], mn[0], mx[0]))

    for first_idx, _last, _n, min_v, min_idx, max_v, max_idx in items:
        g = (first_idx - lo) * nb // span
        if g != cur:
            flush()
            cur, mn, mx = g, None, None
        if min_v is not None and (mn is None or min_v < mn[0]):
            mn = (min_v, min_idx)
        if max_v is not None and (mx is None or max_v > mx[0]):
            mx = (max_v, max_idx)
    flush()
    return out


def _x_values(conn: Connection, pk: int, key: str, x_axis: str, idxs: list[int]) -> dict[int, float]:
    """x of each history index: a row column, or the x metric's value in that row (finite only)."""
    out: dict[int, float] = {}
    if x_axis in _X_COLUMNS:
        col, cond = series.c[_X_COLUMNS[x_axis]], (series.c.run == pk, series.c.key == key)
    else:
        col, cond = series.c.value, (series.c.run == pk, series.c.key == x_axis)
    uniq = sorted(set(idxs))
    for i in range(0, len(uniq), 500):
        chunk = uniq[i:i + 500]
        for idx, x in conn.execute(sa.select(series.c.idx, col).where(*cond, series.c.idx.in_(chunk))):
            if x is not None and math.isfinite(x):
                out[idx] = x
    return out


# --------------------------------------------------------------------------- media


def _leaf(row: Any, key: str) -> tuple[bool, Any]:
    """The value at a dotted key path (a key with dots of its own is found too)."""
    if not isinstance(row, dict):
        return False, None
    if key in row:
        return True, row[key]
    i = key.find(".")
    while i >= 0:
        head = key[:i]
        if head in row:
            found, v = _leaf(row[head], key[i + 1:])
            if found:
                return True, v
        i = key.find(".", i + 1)
    return False, None


def list_media(store: Store, project: str, run_id: str, key: str, limit: int = 10_000) -> dict[str, Any]:
    """``{"key", "count", "steps": [{"step", "idx", "value"}]}``: each row where ``key`` holds a
    ``_type`` value (images, videos, audio, histograms, tables, charts, 3D, html), in index order.

    ``count`` is the number of such rows; beyond ``limit`` of them, ``steps`` keeps ``limit``
    evenly spaced ones, always including the first and the last.
    """
    if not key:
        raise bad_request("key is required")
    if not 1 <= limit <= MAX_MEDIA_STEPS:
        raise bad_request(f"limit must be between 1 and {MAX_MEDIA_STEPS}")
    with store.snapshot() as conn:
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        m = media_rows.c
        idxs = [i for (i,) in conn.execute(sa.select(m.idx).where(m.run == pk, m.key == key).order_by(m.idx))]
        total = len(idxs)
        if total > limit:
            idxs = sorted({idxs[round(j * (total - 1) / (limit - 1))] for j in range(limit)}) if limit > 1 else [idxs[-1]]
        steps = []
        for i in range(0, len(idxs), 500):
            chunk = idxs[i:i + 500]
            q = (sa.select(history.c.idx, history.c.step, history.c.row)
                 .where(history.c.run == pk, history.c.idx.in_(chunk)).order_by(history.c.idx))
            for idx, step, text in conn.execute(q):
                found, v = _leaf(json.loads(text), key)
                if found:
                    steps.append({"step": step, "idx": idx, "value": v})
        for idx, step, row in _tail_rows(conn, pk, final):
            found, v = _leaf(row, key)
            if found and isinstance(v, dict) and "_type" in v:
                steps.append({"step": step, "idx": idx, "value": v})
                total += 1
    return {"key": key, "count": total, "steps": steps}


def mesh(store: Store, sha: str) -> dict[str, Any]:
    """A stored 3D file as JSON for a viewer.

    Meshes (obj, stl, glb, gltf, ply, off; read with trimesh): ``{"vertices": [[x, y, z], ...],
    "faces": [[i, j, k], ...]}``; beyond ``MAX_MESH_FACES`` faces an evenly spaced subset is kept.
    Point clouds (``.pts.json``): ``{"points": [[x, y, z(, c | r, g, b)], ...]}`` plus ``boxes`` and
    ``vectors`` of a scene; beyond ``MAX_POINTS`` points an even stride is kept. Either way
    ``truncated`` says whether something was dropped, ``total`` how many there were.
    """
    path, ext = store.media_path(sha)
    ext = (ext or "").lower()
    if ext.endswith("json"):
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"media {sha} is not a JSON point cloud: {exc}")
        scene = data if isinstance(data, dict) else {"points": data}
        pts = scene.get("points")
        if not isinstance(pts, list):
            raise bad_request(f"media {sha} has no point list")
        total = len(pts)
        stride = -(-total // MAX_POINTS) if total > MAX_POINTS else 1
        out: dict[str, Any] = {"points": pts[::stride], "total": total, "truncated": stride > 1}
        for extra in ("boxes", "vectors", "type"):
            if extra in scene:
                out[extra] = scene[extra]
        return out
    if ext not in ("obj", "stl", "glb", "gltf", "ply", "off"):
        raise bad_request(f"media {sha} ({ext or 'no extension'}) is not a mesh or point cloud", code="bad_media")
    try:
        import trimesh
    except ImportError:
        raise bad_request("this server cannot read meshes: pip install trimesh", code="unsupported")
    import numpy as np

    try:
        with open(path, "rb") as f:
            m = trimesh.load(f, file_type=ext, force="mesh", process=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's, not the server's
        raise bad_request(f"media {sha} could not be read as {ext}: {exc}", code="bad_media")
    vertices = np.asarray(getattr(m, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(m, "faces", np.zeros((0, 3))), dtype=np.int64)
    total = len(faces)
    truncated = total > MAX_MESH_FACES
    if truncated:
        faces = faces[np.linspace(0, total - 1, MAX_MESH_FACES).astype(np.int64)]
        used, inverse = np.unique(faces, return_inverse=True)
        vertices, faces = vertices[used], inverse.reshape(faces.shape)
    if not np.all(np.isfinite(vertices)):
        vertices = np.nan_to_num(vertices, nan=0.0, posinf=0.0, neginf=0.0)
    return {"vertices": vertices.tolist(), "faces": faces.tolist(), "total": total, "truncated": bool(truncated)}

