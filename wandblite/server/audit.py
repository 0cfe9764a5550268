"""The audit log, read: who wrote what, when and from where.

Layer 5 (the server). Entries are written by the modules that make each write, in its transaction
(``auth.record``): a run created and every batch stored (``ingest.py``), keys created and revoked
(``auth.py``), users created and disabled (``users.py``), members added, roles changed, members
removed, visibility changed and grants (``access.py``). Nothing edits or deletes an entry.

``entries`` answers newest first, ``limit`` at a time, older pages by ``before`` (an entry id), of
one project when named; each entry names its user and key id, time, client address, action,
project, run and what changed (a JSON object).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from wandblite.server.db import loads
from wandblite.server.errors import bad_request
from wandblite.server.schema import audit_log, users

__all__ = ["MAX_ENTRY_ID", "MAX_PAGE", "entries", "page_args"]

#: The most entries one page answers.
MAX_PAGE = 10_000
#: The largest id an audit entry can have (its column is a 32-bit integer on PostgreSQL).
MAX_ENTRY_ID = (1 << 31) - 1


def page_args(q: Any) -> dict[str, Any]:
    """``project``, ``limit`` and ``before`` of a query string."""
    try:
        limit = int(q.get("limit") or 1000)
        before = int(q["before"]) if q.get("before") else None
    except ValueError:
        raise bad_request("limit and before must be integers") from None
    if not 1 <= limit <= MAX_PAGE:
        raise bad_request(f"limit must be between 1 and {MAX_PAGE}")
    if before is not None and before > MAX_ENTRY_ID:
        before = None  # older than an id no entry can reach: every entry (PostgreSQL's integer would refuse it)
    return {"project": q.get("project") or None, "limit": limit, "before": before}


def entries(engine: Engine, project: str | None = None, limit: int = 1000,
            before: int | None = None) -> dict[str, Any]:
    """``{"entries": [...], "next": id to pass as before, or None}``, newest first."""
    a = audit_log.c
    q = (sa.select(audit_log, users.c.name.label("user"))
         .select_from(audit_log.outerjoin(users, users.c.id == a.user_id)).order_by(a.id.desc()).limit(limit + 1))
    if project is not None:
        q = q.where(a.project == project)
    if before is not None:
        q = q.where(a.id < before)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    out = [{"id": r["id"], "ts": r["ts"], "user": r["user"], "key_id": r["key_id"], "client": r["client"],
            "action": r["action"], "project": r["project"], "run_id": r["run_id"], "detail": loads(r["detail"])}
           for r in rows[:limit]]
    return {"entries": out, "next": out[-1]["id"] if len(rows) > limit else None}
