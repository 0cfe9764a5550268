"""The simple reads of the store: projects, one run, history pages, console and system records.

Layer 5 (server). Plain functions over a ``Store`` returning JSON-able dicts; the HTTP app exposes
them under ``/api/v1``. Also the lookups the rest of the read side builds on: ``project_id``,
``run_row``, ``run_dict`` (the runs-table item shape) and ``tail_rows`` (a run's provisional
history rows, which the chart and media indexes do not hold). The runs table is in ``runs_query``,
keys and chart series in ``series_query``, media listings and meshes in ``media_query``. Reads use the
store's read engine, so on SQLite (WAL) they never wait for a sync batch being written. Paging is
by index: ``start`` is the first index wanted, ``next`` the one to ask for next (or None at the
end). Unknown projects and runs raise a 404 ``ApiError``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.console import join_records
from wandblite.replay import flatten
from wandblite.server.access import project_id  # re-exported: the readers' name for it
from wandblite.server.chunks import CHUNK_ROWS
from wandblite.server.db import loads
from wandblite.server.errors import bad_request, not_found
from wandblite.server.history_store import pending_row, read_blocks, read_rows, rows_at
from wandblite.server.ingest import run_position
from wandblite.server.schema import console, projects, runs, system, users
from wandblite.server.schema import run_writers as writers_table
from wandblite.server.store import Store
from wandblite.server.wire import validate_run
from wandblite.vocab import MAX_SAMPLED_ROWS, RUNTIME, TYPE_KEY, is_number, spread, writer_label_problem

__all__ = ["MAX_SAMPLED_ROWS", "console_lines_args", "get_console", "get_console_lines", "get_history",
           "get_history_blocks", "get_run", "get_system", "list_projects", "page_args", "project_id", "run_dict",
           "run_row", "run_writers", "sample_history", "sampled_args", "tail_rows", "writer_arg"]

MAX_PAGE = 10_000


def page_args(start: Any, limit: Any, default: int = 1000) -> tuple[int, int]:
    """Validate ``start``/``limit`` query values (strings or None)."""
    try:
        s = int(start) if start not in (None, "") else 0
        n = int(limit) if limit not in (None, "") else default
    except (TypeError, ValueError):
        raise bad_request("start and limit must be integers")
    if s < 0 or n < 1 or n > MAX_PAGE or s >= 1 << 62:
        raise bad_request(f"start must be >= 0 and limit between 1 and {MAX_PAGE}")
    return s, n


def list_projects(store: Store) -> dict[str, Any]:
    """``{"projects": [{"name", "runs", "created_at", "updated_at"}]}`` sorted by name."""
    q = (sa.select(projects.c.name, projects.c.created_at, sa.func.count(runs.c.id).label("runs"),
                   sa.func.max(runs.c.updated_at).label("updated_at"))
         .select_from(projects.outerjoin(runs, runs.c.project_id == projects.c.id))
         .group_by(projects.c.id, projects.c.name, projects.c.created_at).order_by(projects.c.name))
    with store.read_engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        r["updated_at"] = r["updated_at"] if r["updated_at"] is not None else r["created_at"]
    return {"projects": rows}


def run_row(conn: Connection, project: str, run_id: str) -> Any:
    """The run's row of the ``runs`` table (404 for an unknown run)."""
    pid = project_id(conn, project)
    validate_run(run_id)
    r = conn.execute(sa.select(runs).where(runs.c.project_id == pid, runs.c.run_id == run_id)).first()
    if r is None:
        raise not_found(f"no run {run_id!r} in project {project!r}")
    return r


def tail_rows(conn: Connection, pk: int, final: int) -> Iterable[tuple[int, Any, dict[str, Any]]]:
    """``(idx, step, row)`` of the run's history rows from index ``final`` on (the provisional one)."""
    p = pending_row(conn, pk)
    if p is not None and p[0] >= final:
        yield p[0], p[1], p[4]


def _runtime(summary: dict[str, Any], r: Any) -> float | None:
    rt: Any = summary.get(RUNTIME)
    if is_number(rt) and math.isfinite(rt):
        return float(rt)
    end = r.ended_at or r.heartbeat_at
    return max(0.0, end - r.created_at) if end is not None and r.created_at is not None else None


def run_dict(r: Any) -> dict[str, Any]:
    """A ``runs`` row as the runs table shows it (the ``GET .../runs`` item shape)."""
    summary = loads(r.summary) or {}
    return {
        "id": r.run_id, "name": r.name, "state": r.state, "tags": loads(r.tags) or [], "group": r.group,
        "job_type": r.job_type, "notes": r.notes, "created_at": r.created_at, "updated_at": r.updated_at,
        "heartbeat_at": r.heartbeat_at, "runtime": _runtime(summary, r), "host": r.host,
        "exit_code": r.exit_code, "rows": int(r.rows_final), "config": loads(r.config) or {},
        "summary": summary, "archived": r.archived_at is not None,
    }


def get_run(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """One run: the ``list_runs`` fields (``owner`` included: the name of the user whose key created it) plus ``project``, ``entity``, ``ended_at``, ``metrics``
    (define_metric definitions), ``context``, ``error``, ``signal``, ``pending``, ``console``,
    ``system`` (record counts), ``position`` (the sync position), and a shared run's ``writers`` and
    crash report ``stopped_first`` (``run_writers``: empty and None for a single writer's run)."""
    with store.read_engine.connect() as conn:
        r = run_row(conn, project, run_id)
        owner = None if r.owner_id is None else conn.execute(
            sa.select(users.c.name).where(users.c.id == r.owner_id)).scalar()
    d = run_dict(r)
    d.update({"owner": owner,
        "project": project, "entity": r.entity, "ended_at": r.ended_at, "metrics": loads(r.metrics) or {},
        "context": loads(r.context), "error": loads(r.error), "signal": r.signal, "pending": bool(r.pending),
        "console": int(r.console_count), "system": int(r.system_count), "position": run_position(r),
        **run_writers(r),
    })
    return d


def get_history(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000) -> dict[str, Any]:
    """History rows from idx ``start``: ``{"rows": [{"idx", "final", "row"}], "next"}``."""
    with store.snapshot() as conn:  # the position and the chunks as of one moment
        r = run_row(conn, project, run_id)
        final = int(r.rows_final)
        stop = start + limit
        rows: list[dict[str, Any]] = [{"idx": idx, "final": True, "row": row}
                                      for idx, row in read_rows(conn, r.id, start, min(stop, final))]
        if len(rows) < limit:
            rows.extend({"idx": idx, "final": False, "row": row} for idx, _step, row in tail_rows(conn, r.id, final)
                        if start <= idx < stop)
    return {"rows": rows, "next": rows[-1]["idx"] + 1 if len(rows) == limit else None}


def get_history_blocks(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000,
                       ) -> dict[str, Any]:
    """``get_history``'s page for the msgpack answer: ``{"blocks": [[first idx, keys, columns]],
    "pending": [idx, row] or None, "next"}``. The final rows from ``start`` come as blocks of
    consecutive rows (``history_store.read_blocks``): ``keys`` a list and ``columns`` one list of
    values per key (row ``i`` is ``dict(zip(keys, (c[i] for c in columns)))``), or ``keys`` None and
    ``columns`` the rows themselves. ``pending`` is the provisional row when the page reaches it."""
    with store.snapshot() as conn:  # the position and the chunks as of one moment
        r = run_row(conn, project, run_id)
        final = int(r.rows_final)
        stop = start + limit
        got = read_blocks(conn, r.id, start, min(stop, final))
        n = sum(len(cols[0]) if keys is not None else len(cols) for _first, keys, cols in got)
        blocks = [[first, keys, cols] for first, keys, cols in got]
        last = start + n - 1
        pending = None
        if n < limit:
            for idx, _step, row in tail_rows(conn, r.id, final):
                if start <= idx < stop:
                    pending, n, last = [idx, row], n + 1, idx
    return {"blocks": blocks, "pending": pending, "next": last + 1 if n == limit else None}


def get_console(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000,
                writer: str | None = None) -> dict[str, Any]:
    """Console records from idx ``start``: ``{"console": [{"idx", "ts", "stream", "text"[, "writer"]}], "next"}``.
    ``writer`` (a shared run's writer label): only that writer's records (``writer_arg``). A shared
    run's record carries its writer's label as ``writer`` (a single writer's has none)."""
    with store.read_engine.connect() as conn:
        r = run_row(conn, project, run_id)
        q = sa.select(console.c.idx, console.c.ts, console.c.stream, console.c.text, console.c.writer)
        q, nxt = _paged(conn, r, console, q, start, limit, writer)
        recs = [{k: v for k, v in r.items() if k != "writer" or v is not None} for r in conn.execute(q).mappings()]
    return {"console": recs, "next": nxt(recs)}


def _paged(conn: Connection, r: Any, table: sa.Table, q: Any, start: int, limit: int | None,
           writer: str | None) -> tuple[Any, Any]:
    """The console or system read ``q`` of run ``r`` from ``start``, and how its next page starts
    (``limit`` None: every record from ``start`` on, in the same order).

    A single writer's run, or one writer's records: by index from index ``start``. Every writer of a
    shared run (synced writer by writer, so stored in arrival order): in time order, labels then
    indexes breaking ties, as ``Replay`` merges them; ``start`` is then the position in that order."""
    c = table.c
    if writer is not None:
        q = q.where(c.run == r.id, c.idx >= start, c.writer == _known_writer(conn, r, writer))
    elif conn.execute(sa.select(writers_table.c.label).where(writers_table.c.run == r.id).limit(1)).first() is None:
        q = q.where(c.run == r.id, c.idx >= start)
    else:
        # the index of migration 0014 serves this order
        q = (q.where(c.run == r.id).order_by(c.ts.asc().nulls_first(), c.writer, c.idx)
             .offset(max(start, 0)).limit(limit))
        return q, lambda recs: start + len(recs) if len(recs) == limit else None
    return q.order_by(c.idx).limit(limit), lambda recs: recs[-1]["idx"] + 1 if len(recs) == limit else None


def writer_arg(params: Any) -> dict[str, Any]:
    """The ``writer`` query parameter of the console and system reads: a writer label, or None (all)."""
    label = params.get("writer")
    if label in (None, ""):
        return {}
    problem = writer_label_problem(label)
    if problem is not None:
        raise bad_request(f"writer: {problem}")
    return {"writer": label}


def run_writers(r: Any) -> dict[str, Any]:
    """A shared run's ``{"writers": [...], "stopped_first": {...} | None}`` as the server computed
    them from its writers' facts (``writers.run_metadata``: ``wandblite.report.writers_report``, the
    rule ``show --json`` applies to the files); no writers for a single writer's run."""
    got = loads(r.writers) if r.writers else None
    if not isinstance(got, dict):
        return {"writers": [], "stopped_first": None}
    writers = [w for w in got.get("writers") or [] if isinstance(w, dict)]
    first = got.get("stopped_first")
    return {"writers": writers, "stopped_first": first if isinstance(first, dict) else None}


def _known_writer(conn: Connection, r: Any, label: str) -> str:
    """``label`` if run ``r`` has a writer of that label (listed by its sync, or named by one of its
    console or system records), else a 404 naming the writers it has."""
    labels = {str(w.get("label")) for w in run_writers(r)["writers"] if w.get("label") is not None}
    if label in labels:
        return label
    for table in (console, system):
        labels.update(x for (x,) in conn.execute(sa.select(table.c.writer).where(table.c.run == r.id,
                                                                                 table.c.writer.is_not(None))
                                                 .distinct()))
        if label in labels:
            return label
    have = ", ".join(sorted(labels)) or "none (it is not a shared run)"
    raise not_found(f"run {r.run_id!r} has no writer {label!r}; its writers: {have}")


def sampled_args(params: Any) -> dict[str, Any]:
    """Validate the query parameters of ``GET .../history/sampled`` (``samples``, ``key`` repeated)."""
    try:
        samples = int(params.get("samples") or 500)
    except ValueError:
        raise bad_request(f"samples must be an integer between 1 and {MAX_SAMPLED_ROWS}")
    return {"samples": samples, "keys": list(params.getlist("key")) or None}


def sample_history(store: Store, project: str, run_id: str, samples: int = 500,
                   keys: list[str] | None = None) -> dict[str, Any]:
    """At most ``samples`` history rows, evenly spaced over the run (the first and the last kept), flat.

    Rows are flattened as ``wandblite.replay.flatten`` does (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``;
    media values stay whole). Without ``keys``: whole rows, spaced over all the run's rows. With
    ``keys`` (flat names): only the rows holding every one of them, each reduced to those keys, spaced
    over the rows that hold them (wandb's sampled history). Answer: ``{"rows": [row], "matched": n}``,
    ``matched`` counting the rows sampled from (a crashed run's provisional last row included).
    Rows are read by index, each chunk once: a whole run is decoded only when ``keys`` are given.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLED_ROWS:
        raise bad_request(f"samples must be an integer between 1 and {MAX_SAMPLED_ROWS}")
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys)):
        raise bad_request("keys must be a list of non-empty names")
    with store.snapshot() as conn:  # the position and the chunks as of one moment
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        tail = {idx: row for idx, _step, row in tail_rows(conn, pk, final)}  # a crashed run's provisional row
        if not keys:
            n = final + len(tail)
            chosen = list(spread(n, samples))
        else:
            held = [idx for lo in range(0, final, CHUNK_ROWS)  # a chunk at a time: bounded memory
                    for idx, row in read_rows(conn, pk, lo, min(lo + CHUNK_ROWS, final))
                    if all(_flat_get(row, k)[0] for k in keys)]
            held += [idx for idx, row in tail.items() if all(_flat_get(row, k)[0] for k in keys)]
            n, chosen = len(held), [held[i] for i in spread(len(held), samples)]
        picked = rows_at(conn, pk, [i for i in chosen if i < final]) + [(i, tail[i]) for i in chosen if i >= final]
        rows = [flatten(row) for _idx, row in picked]
    if keys:
        rows = [{k: r[k] for k in keys} for r in rows]
    return {"rows": rows, "matched": int(n)}


def _flat_get(row: dict[str, Any], key: str) -> tuple[bool, Any]:
    """Whether ``flatten(row)`` has ``key``, and its value there, without flattening the whole row: ``key`` is
    a leaf (not a subtree) at ``row[key]``, or at ``key``'s rest below a subtree named by a dotted prefix."""
    v = row.get(key, _ABSENT)
    if v is not _ABSENT and not (type(v) is dict and TYPE_KEY not in v):
        return True, v
    i = key.find(".")
    while i != -1:
        sub = row.get(key[:i])
        if type(sub) is dict and TYPE_KEY not in sub:
            found, got = _flat_get(sub, key[i + 1:])
            if found:
                return True, got
        i = key.find(".", i + 1)
    return False, None


_ABSENT = object()


#: ``GET .../console/lines``: the lines kept when ``tail`` is not given, and the most one request may ask for.
DEFAULT_TAIL = 1000
MAX_TAIL = 100_000
#: The longest ``search`` text accepted (characters).
MAX_SEARCH = 1000


def console_lines_args(params: Any) -> dict[str, Any]:
    """Validate the query parameters of ``GET .../console/lines`` into ``get_console_lines`` kwargs."""
    raw = params.get("tail")
    try:
        tail = int(raw) if raw not in (None, "") else DEFAULT_TAIL
    except ValueError:
        raise bad_request(f"tail must be an integer between 1 and {MAX_TAIL}")
    return {"tail": tail, "search": params.get("search") or None, **writer_arg(params)}


def get_console_lines(store: Store, project: str, run_id: str, tail: int = DEFAULT_TAIL,
                      search: str | None = None, writer: str | None = None) -> dict[str, Any]:
    """The run's console output as whole lines, joined as ``wandblite logs`` joins them.

    The records are read in index order (``get_console``'s pages) and joined by
    ``wandblite.console.join_records``: a line recorded in pieces (a partial line recorded early and
    completed later, or replaced by a record starting with ``"\r"``) comes out once, whole, with the
    time and position of the record that completed it; lines still open at the end come last. Each
    joined text is cut at its newlines into lines.

    Answer: ``{"lines": [{"ts", "stream", "text", "open"}], "total", "matched", "records"}``:
    ``lines`` are the last ``tail`` lines (1 to ``MAX_TAIL``) that contain ``search`` (case
    insensitive; every line when it is empty or None), oldest first; ``text`` has no newline;
    ``open`` is true for a line not ended yet (no newline recorded: a partial line of a running or
    crashed run). ``total`` counts all the run's lines, ``matched`` those containing ``search``,
    ``records`` the console records read. Memory is bounded by ``tail`` (and one open line per stream).

    A shared run (records carrying a writer label) reads as ``Replay.output`` does: with ``writer``,
    only that writer's lines, as it printed them; without, every writer's lines, joined per writer
    and each prefixed with ``[label] ``; each of its lines carries its ``writer`` label.
    """
    if isinstance(tail, bool) or not isinstance(tail, int) or not 1 <= tail <= MAX_TAIL:
        raise bad_request(f"tail must be an integer between 1 and {MAX_TAIL}")
    if search is not None and (not isinstance(search, str) or len(search) > MAX_SEARCH):
        raise bad_request(f"search must be a text of at most {MAX_SEARCH} characters")
    needle = search.lower() if search else None
    read = [0]

    def records() -> Iterator[tuple[float, str, str]]:
        # One ordered query streamed MAX_PAGE rows at a time, on one snapshot: a shared run's
        # records in time order are sorted once, not once per page. A line is joined within its
        # writer's stream: the key joins the label (which holds no newline,
        # ``vocab.WRITER_LABEL_RE``) and the stream name.
        with store.snapshot() as conn:
            r = run_row(conn, project, run_id)
            q, _nxt = _paged(conn, r, console, sa.select(console.c.ts, console.c.stream, console.c.text,
                                                         console.c.writer), 0, None, writer)
            result = conn.execution_options(stream_results=True, yield_per=MAX_PAGE).execute(q)
            for part in result.partitions():
                read[0] += len(part)
                yield from ((ts, f"{label or ''}\n{stream}", text) for ts, stream, text, label in part)

    kept: deque[dict[str, Any]] = deque(maxlen=tail)
    total = matched = 0
    for ts, key, text in join_records(records()):
        label, _nl, stream = key.partition("\n")
        ended = text.endswith("\n")
        tag = f"[{label}] " if label and writer is None else ""
        for line in (text[:-1] if ended else text).split("\n"):
            total += 1
            line = tag + line
            if needle is None or needle in line.lower():
                matched += 1
                item = {"ts": ts, "stream": stream, "text": line, "open": not ended}
                kept.append({**item, "writer": label} if label else item)
    return {"lines": list(kept), "total": total, "matched": matched, "records": read[0]}


def get_system(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000,
               writer: str | None = None) -> dict[str, Any]:
    """System samples from idx ``start``: ``{"system": [{"idx", "ts", "metrics"[, "writer"]}], "next"}``.

    A shared run reads as ``Replay.system_metrics`` does: with ``writer``, only that writer's samples,
    metrics as it named them; without, every writer's samples, each metric named ``<label>/<metric>``.
    """
    with store.read_engine.connect() as conn:
        r = run_row(conn, project, run_id)
        q, nxt = _paged(conn, r, system, sa.select(system.c.idx, system.c.ts, system.c.metrics, system.c.writer),
                        start, limit, writer)
        recs = []
        for x in conn.execute(q):
            m = loads(x.metrics)
            if x.writer is not None and writer is None and isinstance(m, dict):
                m = {f"{x.writer}/{k}": v for k, v in m.items()}
            recs.append({"idx": x.idx, "ts": x.ts, "metrics": m, **({"writer": x.writer} if x.writer else {})})
    return {"system": recs, "next": nxt(recs)}
