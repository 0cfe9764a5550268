"""The runs table: list a project's runs through a small filter language, a search, an order, a page.

Layer 5 (server). ``list_runs`` reads one project's ``runs`` rows (``read.run_dict`` shape, plus
``owner``: the name of the user whose key created the run, joined in the same query) and
does everything else in Python, so nothing here builds SQL from user text. ``runs_args`` turns the
query string of ``GET .../runs`` into its arguments. The HTTP app and ``wandblite.Api()`` on the
embedded store call the same functions, so both read the same answers.

What it promises
----------------
* The filter language is a small MongoDB-like one (the one wandb's ``api.runs(filters=)``
  speaks): ``{"state": "finished"}``, ``{"config.lr": {"$gt": 0.01}}``, ``{"tags": {"$in": ["a"]}}``,
  ``{"$or": [...]}``; operators ``$eq $ne $gt $gte $lt $lte $in $nin $regex $options $exists $not``
  and ``$and $or $nor``. A list value (tags) matches when any element does, as in MongoDB. Keys are
  dotted paths (a key with dots of its own is found too); wandb's names (``displayName``,
  ``createdAt``, ``summary_metrics``, ``config.<key>.value``, ...) read the same values.
* A filter nests at most ``MAX_FILTER_DEPTH`` levels (400 ``too_deep``, however deep the text).
* ``check_filter`` refuses unknown operators and malformed operands with a 400 before any database
  work; ``match_filter`` is the pure matcher (a run dict and a filter in, a bool out).
* ``$regex`` (Python syntax; ``$options: "i"`` ignores case) is searched in the first
  ``regex_guard.REGEX_SUBJECT`` characters of a value; ``regex_guard.check_regex`` refuses slow
  patterns (400 ``unsafe_regex``), and a request spends at most ``REGEX_SECONDS`` matching, checked
  between runs (400 ``filter_too_slow``).
* ``order`` is a column or ``summary.<key>``/``config.<key>``, ``-`` for descending; runs without
  a value that orders come last either way.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from wandblite.server.db import loads
from wandblite.server.errors import bad_request
from wandblite.server.read import project_id, run_dict
from wandblite.server.regex_guard import REGEX_SUBJECT, check_regex
from wandblite.server.schema import runs, users
from wandblite.server.store import Store
from wandblite.server.wire import check_depth
from wandblite.vocab import is_number

__all__ = ["ARCHIVED_VIEWS", "MAX_FILTER_DEPTH", "MAX_RUNS_PAGE", "ORDER_COLUMNS", "REGEX_SECONDS", "check_filter", "list_runs", "match_filter",
           "order_key", "runs_args"]

ORDER_COLUMNS = ("created_at", "updated_at", "name", "state", "runtime", "id", "rows", "group", "job_type",
                 "heartbeat_at", "exit_code")
MAX_RUNS_PAGE = 10_000
#: Which runs a list shows by their archived flag: not archived (the default), all, archived only.
ARCHIVED_VIEWS = ("hide", "include", "only")
REGEX_SECONDS = 2.0  # matching time one request may spend before it is refused
#: The deepest nesting of arrays and objects a filter may have (operators and operands together):
#: the matcher recurses, and no run's value worth comparing is deeper.
MAX_FILTER_DEPTH = 64


def runs_args(params: Any) -> dict[str, Any]:
    """Validate the query parameters of ``GET .../runs`` (a mapping of strings) into ``list_runs`` kwargs."""
    out: dict[str, Any] = {"order": params.get("order") or "-created_at", "search": params.get("search") or None,
                           "archived": params.get("archived") or "hide"}
    raw = params.get("filters")
    if raw:
        try:
            out["filters"] = json.loads(raw)
        except RecursionError:
            raise bad_request(f"filters nest arrays and objects more than {MAX_FILTER_DEPTH} levels deep",
                              code="too_deep")
        except ValueError as exc:
            raise bad_request(f"filters is not valid JSON: {exc}", code="malformed_json")
        check_depth(out["filters"], MAX_FILTER_DEPTH, "the filter")
    try:
        out["limit"] = int(params.get("limit") or 1000)
        out["offset"] = int(params.get("offset") or 0)
    except ValueError:
        raise bad_request("limit and offset must be integers")
    return out


def list_runs(store: Store, project: str, filters: Any = None, order: str = "-created_at",
              search: str | None = None, limit: int = 1000, offset: int = 0, archived: str = "hide") -> dict[str, Any]:
    """``{"runs": [...], "total": n}``: the project's runs, filtered, searched, ordered, paged.

    ``order`` is a column (``created_at``, ``updated_at``, ``name``, ``state``, ``runtime``, ...) or
    ``summary.<key>``/``config.<key>``, with a leading ``-`` for descending; runs without the value
    come last either way. ``total`` counts the runs that match before paging. ``archived``:
    ``hide`` (the default) leaves archived runs out, ``include`` lists them too, ``only`` lists only them.
    """
    if filters is not None and not isinstance(filters, dict):
        raise bad_request("filters must be a JSON object")
    if archived not in ARCHIVED_VIEWS:
        raise bad_request(f"archived must be one of {', '.join(ARCHIVED_VIEWS)}, not {archived!r}")
    if not 1 <= limit <= MAX_RUNS_PAGE or offset < 0:
        raise bad_request(f"limit must be between 1 and {MAX_RUNS_PAGE} and offset >= 0")
    if filters:
        check_depth(filters, MAX_FILTER_DEPTH, "the filter")  # the embedded store's callers pass objects
        check_filter(filters)  # before any database work: a bad filter costs nothing
    sort_key = order_key(order)
    head = order.lstrip("-+").split(".", 1)[0]
    # Archived runs are left out (or kept alone) by the query itself; the owner's name comes by a
    # join (one query for the whole table, never one per run).
    with store.read_engine.connect() as conn:
        pid = project_id(conn, project)
        listed = [runs.c.project_id == pid]
        if archived != "include":
            listed.append(runs.c.archived_at.is_(None) if archived == "hide" else runs.c.archived_at.is_not(None))
        if not search and not filters and (head in _PLAIN or head == "rows"):
            # Nothing to match, a column orders: sort light stand-ins (the run's id and that column;
            # the same sort, so the same order), then read and shape only the page's runs (reading
            # and decoding every run's config and summary was most of a large project's table).
            col = runs.c[_PLAIN.get(head, "rows_final")]
            light = conn.execute(sa.select(runs.c.id, col).where(*listed)
                                 .order_by(runs.c.created_at, runs.c.run_id)).all()
            have, missing = [], []
            for pk, v in light:  # order_key's sort, for a column's scalar values
                if v is None or (type(v) is float and math.isnan(v)):
                    missing.append(pk)
                else:
                    have.append((_rank(v), pk))
            have.sort(key=lambda t: t[0], reverse=order.startswith("-"))
            ids = ([pk for _, pk in have] + missing)[offset:offset + limit]
            by_id: dict[Any, Any] = {}
            for i in range(0, len(ids), 500):
                by_id.update((r.id, r) for r in conn.execute(_with_owner().where(runs.c.id.in_(ids[i:i + 500]))))
            return {"runs": [_run_item(by_id[pk]) for pk in ids if pk in by_id], "total": len(light)}
        rows = conn.execute(_with_owner().where(*listed).order_by(runs.c.created_at, runs.c.run_id)).all()
    if not search and not filters:
        # Nothing to match: order stand-ins holding only the ordering value (the same sort, so the
        # same order), then shape just the page.
        field = order.lstrip("-+")
        stubs = [_order_stub(r, field) for r in rows]
        page = sort_key(stubs)[offset:offset + limit]
        return {"runs": [_run_item(st[_ROW]) for st in page], "total": len(stubs)}
    out = [_run_item(r) for r in rows]
    if search:
        s = search.lower()
        out = [d for d in out if any(s in str(v).lower() for v in (d["name"], d["id"], d["notes"], *d["tags"])
                                     if v is not None)]
    if filters:
        out = _filter_runs(out, filters, project)
    out = sort_key(out)
    return {"runs": out[offset:offset + limit], "total": len(out)}


#: The key of a stand-in (``_order_stub``) holding its ``runs`` row: not a run_dict key, not a path's head.
_ROW = "\x00row"
#: ``run_dict`` keys read straight from one column of the row.
_PLAIN = {"id": "run_id", "name": "name", "state": "state", "group": "group", "job_type": "job_type",
          "created_at": "created_at", "updated_at": "updated_at", "heartbeat_at": "heartbeat_at",
          "exit_code": "exit_code"}


def _order_stub(r: Any, field: str) -> dict[str, Any]:
    """A stand-in for ``run_dict(r)`` holding what ordering by ``field`` reads (the same value), and the row."""
    head = field.split(".", 1)[0]
    if head in _PLAIN:
        return {head: getattr(r, _PLAIN[head]), _ROW: r}
    if head == "rows":
        return {"rows": int(r.rows_final), _ROW: r}
    if head in ("summary", "config"):
        return {head: loads(getattr(r, head)) or {}, _ROW: r}
    d = run_dict(r)  # runtime (from the summary and the row's times), or anything else
    d[_ROW] = r
    return d


def _with_owner() -> Any:
    """The select of runs rows with their owner's name (``owner_name``), by an outer join."""
    return sa.select(runs, users.c.name.label("owner_name")).select_from(
        runs.outerjoin(users, users.c.id == runs.c.owner_id))


def _run_item(r: Any) -> dict[str, Any]:
    """A runs-table item: ``read.run_dict`` and the owner's name."""
    return {**run_dict(r), "owner": r.owner_name}


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


def order_key(order: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The sort for ``order`` (see the module docstring); a 400 for a field that cannot order."""
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
    if is_number(v):
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


def check_filter(f: Any, depth: int = 0) -> None:
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
                check_filter(sub, depth + 1)
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
                    check_filter({k: arg}, depth + 1)


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
        if not (is_number(v) and is_number(want)) and not (isinstance(v, str) and isinstance(want, str)):
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
