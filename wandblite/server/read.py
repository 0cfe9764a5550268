"""The read side of the store: projects, runs, history pages, console and system records.

Layer 5. Plain functions over a ``Store`` returning JSON-able dicts; the HTTP app exposes them
under ``/api/v1`` and the dashboard work extends this module (charts read ``series``). Reads use
the store's read engine, so on SQLite (WAL) they never wait for a sync batch being written.
Paging is by index: ``start`` is the first index wanted, ``next`` the one to ask for next (or
None at the end). Unknown projects and runs raise a 404 ``ApiError``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from wandblite.server.errors import bad_request, not_found
from wandblite.server.store import (
    Store,
    console,
    history,
    loads,
    projects,
    runs,
    system,
    validate_project,
    validate_run,
)

__all__ = ["get_console", "get_history", "get_run", "get_system", "list_projects", "list_runs", "page_args"]

MAX_PAGE = 10_000
_LIST_COLUMNS = ("run_id", "name", "group", "job_type", "state", "exit_code", "created_at", "updated_at",
                 "heartbeat_at", "ended_at", "host", "rows_final", "pending")


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


def list_projects(store: Store) -> list[dict[str, Any]]:
    q = (sa.select(projects.c.name, projects.c.created_at, sa.func.count(runs.c.id).label("runs"))
         .select_from(projects.outerjoin(runs, runs.c.project_id == projects.c.id))
         .group_by(projects.c.id, projects.c.name, projects.c.created_at).order_by(projects.c.name))
    with store.read_engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _project_id(conn: Any, project: str) -> int:
    validate_project(project)
    pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar()
    if pid is None:
        raise not_found(f"no project {project!r}")
    return int(pid)


def list_runs(store: Store, project: str) -> list[dict[str, Any]]:
    with store.read_engine.connect() as conn:
        pid = _project_id(conn, project)
        cols = [runs.c[c] for c in _LIST_COLUMNS] + [runs.c.tags]
        rows = conn.execute(sa.select(*cols).where(runs.c.project_id == pid).order_by(runs.c.created_at, runs.c.run_id))
        out = []
        for r in rows.mappings():
            d = dict(r)
            d["tags"] = loads(d["tags"]) or []
            d["rows"] = d.pop("rows_final")
            out.append(d)
        return out


def _run_row(conn: Any, project: str, run_id: str) -> Any:
    pid = _project_id(conn, project)
    validate_run(run_id)
    r = conn.execute(sa.select(runs).where(runs.c.project_id == pid, runs.c.run_id == run_id)).first()
    if r is None:
        raise not_found(f"no run {run_id!r} in project {project!r}")
    return r


def get_run(store: Store, project: str, run_id: str) -> dict[str, Any]:
    with store.read_engine.connect() as conn:
        r = _run_row(conn, project, run_id)
    return {
        "project": project, "run_id": r.run_id, "name": r.name, "group": r.group, "job_type": r.job_type,
        "entity": r.entity, "tags": loads(r.tags) or [], "notes": r.notes, "config": loads(r.config) or {},
        "summary": loads(r.summary) or {}, "state": r.state, "exit_code": r.exit_code, "error": loads(r.error),
        "signal": r.signal, "created_at": r.created_at, "updated_at": r.updated_at,
        "heartbeat_at": r.heartbeat_at, "ended_at": r.ended_at, "host": r.host, "context": loads(r.context),
        "metrics": loads(r.metrics) or {}, "rows": r.rows_final, "pending": bool(r.pending),
        "console": r.console_count, "system": r.system_count,
    }


def get_history(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000) -> dict[str, Any]:
    """History rows from idx ``start``: ``{"rows": [{"idx", "final", "row"}], "next"}``."""
    with store.read_engine.connect() as conn:
        pk = _run_row(conn, project, run_id).id
        q = (sa.select(history.c.idx, history.c.final, history.c.row)
             .where(history.c.run == pk, history.c.idx >= start).order_by(history.c.idx).limit(limit))
        rows = [{"idx": r.idx, "final": bool(r.final), "row": loads(r.row)} for r in conn.execute(q)]
    return {"rows": rows, "next": rows[-1]["idx"] + 1 if len(rows) == limit else None}


def get_console(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000) -> dict[str, Any]:
    with store.read_engine.connect() as conn:
        pk = _run_row(conn, project, run_id).id
        q = (sa.select(console.c.idx, console.c.ts, console.c.stream, console.c.text)
             .where(console.c.run == pk, console.c.idx >= start).order_by(console.c.idx).limit(limit))
        recs = [dict(r) for r in conn.execute(q).mappings()]
    return {"console": recs, "next": recs[-1]["idx"] + 1 if len(recs) == limit else None}


def get_system(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000) -> dict[str, Any]:
    with store.read_engine.connect() as conn:
        pk = _run_row(conn, project, run_id).id
        q = (sa.select(system.c.idx, system.c.ts, system.c.metrics)
             .where(system.c.run == pk, system.c.idx >= start).order_by(system.c.idx).limit(limit))
        recs = [{"idx": r.idx, "ts": r.ts, "metrics": loads(r.metrics)} for r in conn.execute(q)]
    return {"system": recs, "next": recs[-1]["idx"] + 1 if len(recs) == limit else None}
