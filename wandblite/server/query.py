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
* ``series`` downsamples a metric for charts: at most ``samples`` points that keep, for each of
  about ``samples / 2`` buckets of the run's index range, the bucket's minimum and maximum point
  (the spikes), in x order. NaN and +-Infinity values are skipped in ``y`` (they have no place on
  a chart); ``count`` still counts them (every point logged in the range). The x of a point is
  its row's ``_step``, ``_runtime``, ``_timestamp``, or the value another metric (``epoch``) has
  in the same history row (points whose row lacks that metric are dropped).
* Speed: the min/max of each bucket comes from a per-(run, key) pyramid (``store.series_agg``,
  buckets of 16, 256, 4096, 65536 and 1048576 history indexes) built from ``series`` the first
  time a key is charted and extended with the rows that arrived since on each later read (one
  write transaction; the built extent is in ``derived_state``). A chart of a 1M-point series
  reads about 4,000 aggregate rows instead of a million points. Only final rows enter the
  pyramid; a crashed run's provisional row is read raw.
* ``min_x``/``max_x`` (zoom) locate the index range by binary search, which assumes x does not
  decrease along the run (true for ``_step``, ``_runtime``, ``_timestamp`` and usual epoch
  counters); the points returned are then filtered exactly by x.
* Media keys and media listings use ``store.media_rows`` (which rows hold a ``_type`` value under
  which key), built and extended the same lazy way from ``history``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.errors import bad_request
from wandblite.server.read import project_id, run_dict, run_row
from wandblite.server.store import Store, derived_state, history, media_rows, runs, series, series_agg

__all__ = [
    "KINDS",
    "MAX_MESH_FACES",
    "MAX_POINTS",
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
_SHIFT = 4  # each pyramid level buckets 16x more indexes than the one below
_LEVELS = 5  # bucket widths 16, 256, 4096, 65536, 1048576
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
        _check_filter(filters)
        out = [d for d in out if match_filter(d, filters)]
    out = sort_key(out)
    return {"runs": out[offset:offset + limit], "total": len(out)}


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
                    if not isinstance(arg, str) or len(arg) > 500:
                        raise bad_request(f"$regex for {k!r} must be a string of at most 500 characters")
                    try:
                        re.compile(arg)
                    except re.error as exc:
                        raise bad_request(f"bad $regex for {k!r}: {exc}")
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
            ok = found and any(isinstance(v, str) and re.search(arg, v[:10_000], flags) is not None for v in vals)
        elif op == "$not":
            ok = not _match_ops(found, value, arg if isinstance(arg, dict) else {"$eq": arg})
        else:  # $options: read by $regex
            ok = True
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------- derived indexes


def _claim(conn: Connection, store: Store, pk: int, name: str) -> int:
    """The built extent of a derived index, with its state row locked for this transaction."""
    cond = (derived_state.c.run == pk, derived_state.c.name == name)
    q = sa.select(derived_state.c.upto).where(*cond)
    upto = conn.execute(q.with_for_update() if not store.is_sqlite else q).scalar()
    if upto is None:
        try:
            with conn.begin_nested():
                conn.execute(derived_state.insert().values(run=pk, name=name, upto=0))
        except sa.exc.IntegrityError:
            pass  # a concurrent reader created it: lock it like any other
        upto = conn.execute(q.with_for_update() if not store.is_sqlite else q).scalar()
    return int(upto or 0)


def _upsert_agg(conn: Connection, store: Store, params: list[dict[str, Any]]) -> None:
    if not params:
        return
    if store.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    ins = insert(series_agg)
    ex, cur = ins.excluded, series_agg.c
    lower = sa.and_(ex.min_v.is_not(None), sa.or_(cur.min_v.is_(None), ex.min_v < cur.min_v))
    higher = sa.and_(ex.max_v.is_not(None), sa.or_(cur.max_v.is_(None), ex.max_v > cur.max_v))
    stmt = ins.on_conflict_do_update(
        index_elements=[cur.run, cur.key, cur.level, cur.bucket],
        set_={
            "n": cur.n + ex.n,
            "last_idx": sa.func.greatest(cur.last_idx, ex.last_idx) if not store.is_sqlite
            else sa.func.max(cur.last_idx, ex.last_idx),
            "min_v": sa.case((lower, ex.min_v), else_=cur.min_v),
            "min_idx": sa.case((lower, ex.min_idx), else_=cur.min_idx),
            "max_v": sa.case((higher, ex.max_v), else_=cur.max_v),
            "max_idx": sa.case((higher, ex.max_idx), else_=cur.max_idx),
        },
    )
    for i in range(0, len(params), 5000):
        conn.execute(stmt, params[i:i + 5000])


def _aggregate(pk: int, key: str, idx: Any, val: Any) -> list[dict[str, Any]]:
    """Pyramid rows for sorted indexes ``idx`` and values ``val`` (NaN for NULL): every level at once."""
    import numpy as np

    out: list[dict[str, Any]] = []
    finite = np.isfinite(val)
    vmin = np.where(finite, val, np.inf)
    vmax = np.where(finite, val, -np.inf)
    pos = np.arange(len(idx))
    big = len(idx)
    for level in range(_LEVELS):
        b = idx >> (_SHIFT * (level + 1))
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        ends = np.r_[starts[1:], len(idx)]
        mins = np.minimum.reduceat(vmin, starts)
        maxs = np.maximum.reduceat(vmax, starts)
        counts = ends - starts
        min_pos = np.minimum.reduceat(np.where(vmin == np.repeat(mins, counts), pos, big), starts)
        max_pos = np.minimum.reduceat(np.where(vmax == np.repeat(maxs, counts), pos, big), starts)
        has = np.isfinite(mins)
        for j in range(len(starts)):
            ok = bool(has[j])
            out.append({
                "run": pk, "key": key, "level": level, "bucket": int(b[starts[j]]), "n": int(counts[j]),
                "first_idx": int(idx[starts[j]]), "last_idx": int(idx[ends[j] - 1]),
                "min_v": float(mins[j]) if ok else None, "min_idx": int(idx[min_pos[j]]) if ok else None,
                "max_v": float(maxs[j]) if ok else None, "max_idx": int(idx[max_pos[j]]) if ok else None,
            })
    return out


def _ensure_agg(store: Store, pk: int, key: str, upto: int) -> None:
    """Extend the (run, key) pyramid with the final rows below ``upto`` that it lacks."""
    import numpy as np

    with store.read_engine.connect() as conn:
        built = conn.execute(sa.select(derived_state.c.upto).where(
            derived_state.c.run == pk, derived_state.c.name == "agg:" + key)).scalar()
    if built is not None and built >= upto:
        return
    with store.write_engine.begin() as conn:
        built = _claim(conn, store, pk, "agg:" + key)
        if built >= upto:
            return
        rows = conn.execute(sa.select(series.c.idx, series.c.value).where(
            series.c.run == pk, series.c.key == key, series.c.idx >= built, series.c.idx < upto,
        ).order_by(series.c.idx)).all()
        if rows:
            idx = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            val = np.fromiter((np.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=len(rows))
            _upsert_agg(conn, store, _aggregate(pk, key, idx, val))
        conn.execute(derived_state.update().where(derived_state.c.run == pk, derived_state.c.name == "agg:" + key)
                     .values(upto=upto))


def _typed_leaves(row: dict[str, Any], prefix: str, out: list[tuple[str, Any]]) -> None:
    for k, v in row.items():
        if type(v) is dict:
            if "_type" in v:
                out.append((prefix + k, v))
            else:
                _typed_leaves(v, f"{prefix}{k}.", out)


def _ensure_media(store: Store, pk: int, upto: int) -> None:
    """Extend the run's media index with the final rows below ``upto`` it has not seen."""
    with store.read_engine.connect() as conn:
        built = conn.execute(sa.select(derived_state.c.upto).where(
            derived_state.c.run == pk, derived_state.c.name == "media")).scalar()
    if built is not None and built >= upto:
        return
    with store.write_engine.begin() as conn:
        built = _claim(conn, store, pk, "media")
        if built >= upto:
            return
        params: list[dict[str, Any]] = []
        q = (sa.select(history.c.idx, history.c.step, history.c.row)
             .where(history.c.run == pk, history.c.idx >= built, history.c.idx < upto,
                    history.c.row.like('%"\\_type"%', escape="\\")))
        for idx, step, text in conn.execute(q):
            leaves: list[tuple[str, Any]] = []
            _typed_leaves({k: v for k, v in json.loads(text).items() if k not in _RESERVED}, "", leaves)
            params.extend({"run": pk, "key": k, "idx": idx, "step": step, "type": str(v.get("_type"))[:64]}
                          for k, v in leaves)
        for i in range(0, len(params), 5000):
            conn.execute(media_rows.insert(), params[i:i + 5000])
        conn.execute(derived_state.update().where(derived_state.c.run == pk, derived_state.c.name == "media")
                     .values(upto=upto))


# --------------------------------------------------------------------------- keys


def _kind(t: str) -> str:
    return t if t in KINDS else "other"


def run_keys(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """``{"keys": [{"key", "kind", "count", "first_step", "last_step"}]}``: numeric keys (dotted
    leaf paths, from ``series``) then media and other ``_type`` keys (from the history rows)."""
    with store.read_engine.connect() as conn:
        r = run_row(conn, project, run_id)
    pk, final = r.id, int(r.rows_final)
    _ensure_media(store, pk, final)
    out: list[dict[str, Any]] = []
    with store.read_engine.connect() as conn:
        key: str | None = None
        while True:
            q = sa.select(sa.func.min(series.c.key)).where(series.c.run == pk)
            key = conn.execute(q.where(series.c.key > key) if key is not None else q).scalar()
            if key is None:
                break
            cond = (series.c.run == pk, series.c.key == key)
            first = conn.execute(sa.select(series.c.step).where(*cond).order_by(series.c.idx).limit(1)).scalar()
            last = conn.execute(sa.select(series.c.step).where(*cond).order_by(series.c.idx.desc()).limit(1)).scalar()
            count = _count(conn, pk, key)
            out.append({"key": key, "kind": "number", "count": int(count or 0), "first_step": first, "last_step": last})
        media: dict[str, dict[str, Any]] = {}
        q2 = (sa.select(media_rows.c.key, media_rows.c.type, sa.func.count().label("n"),
                        sa.func.min(media_rows.c.step).label("lo"), sa.func.max(media_rows.c.step).label("hi"))
              .where(media_rows.c.run == pk).group_by(media_rows.c.key, media_rows.c.type))
        for k, t, n, lo, hi in conn.execute(q2):
            _merge_media_key(media, k, t, int(n), lo, hi)
        for _idx, step, row in _tail_rows(conn, pk, final):  # a provisional row is not indexed
            leaves: list[tuple[str, Any]] = []
            _typed_leaves({k: v for k, v in row.items() if k not in _RESERVED}, "", leaves)
            for k, v in leaves:
                _merge_media_key(media, k, str(v.get("_type")), 1, step, step)
    out.extend(sorted(media.values(), key=lambda d: d["key"]))
    for d in out:
        d.pop("_n", None)
    return {"keys": out}


def _count(conn: Connection, pk: int, key: str) -> int:
    """Points of a key: from its pyramid's top level when built (plus the rows past it), else counted."""
    built = conn.execute(sa.select(derived_state.c.upto).where(
        derived_state.c.run == pk, derived_state.c.name == "agg:" + key)).scalar()
    cond = [series.c.run == pk, series.c.key == key]
    if built is None:
        return int(conn.execute(sa.select(sa.func.count()).select_from(series).where(*cond)).scalar() or 0)
    a = series_agg.c
    top = conn.execute(sa.select(sa.func.sum(a.n)).where(a.run == pk, a.key == key, a.level == _LEVELS - 1)).scalar()
    rest = conn.execute(sa.select(sa.func.count()).select_from(series).where(*cond, series.c.idx >= built)).scalar()
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
    with store.read_engine.connect() as conn:
        r = run_row(conn, project, run_id)
    pk, final = r.id, int(r.rows_final)
    out: dict[str, Any] = {}
    for key in keys:
        if key in _X_COLUMNS:
            raise bad_request(f"{key} is an x axis, not a metric key")
        _ensure_agg(store, pk, key, final)
        with store.read_engine.connect() as conn:
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
    with store.read_engine.connect() as conn:
        r = run_row(conn, project, run_id)
    pk, final = r.id, int(r.rows_final)
    _ensure_media(store, pk, final)
    with store.read_engine.connect() as conn:
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

