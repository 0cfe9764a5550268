"""Helpers for the users-and-roles tests: a project with users of every kind, set up on a running server.

``cast(srv)`` makes, through the server's own database (a ``Store`` on ``srv.db``, as the
``wandblite server users|keys|members`` commands do), a private project with a run created by its
owner over HTTP, and a key for every kind of caller the role matrix of ``docs/roles.md`` names.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.server.conftest import ServerProc

ROOT = Path(__file__).resolve().parents[2]

#: The matrix's columns, in the order of docs/roles.md.
COLUMNS = ("anonymous", "bad key", "read key", "outsider", "viewer", "writer", "owner", "project admin",
           "server admin")


def role_matrix() -> list[tuple[str, str, dict[str, str]]]:
    """``(method, path template, {column: expected})`` of every row of the matrix in docs/roles.md."""
    text = (ROOT / "docs" / "roles.md").read_text()
    table = text.split("<!-- role-matrix:start -->")[1].split("<!-- role-matrix:end -->")[0]
    lines = [ln for ln in table.strip().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert tuple(header[1:]) == COLUMNS, header
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        method, path = cells[0].split(" ", 1)
        assert all(re.fullmatch(r"2xx|\d{3}", c) for c in cells[1:]), ln
        rows.append((method, path, dict(zip(COLUMNS, cells[1:]))))
    return rows


@dataclass
class Cast:
    project: str
    run_id: str
    keys: dict[str, str | None]  # column -> key (None: anonymous)
    key_ids: dict[str, int]
    users: dict[str, str] = field(default_factory=dict)  # column -> user name
    store: Any = None


def uniq_user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cast(srv: ServerProc, visibility: str = "private") -> Cast:
    """A project P (``visibility``) with a run R made by "owner", and a key per column of the matrix."""
    from wandblite.server.store import Store

    assert srv.db is not None
    store = Store(srv.db)
    project, run_id = f"roles{uuid.uuid4().hex[:10]}", "r1"
    keys: dict[str, str | None] = {"anonymous": None, "bad key": "wl_" + "x" * 43}
    key_ids: dict[str, int] = {}
    users: dict[str, str] = {}
    for column in ("owner", "outsider", "viewer", "writer", "project admin", "read key"):
        name = uniq_user(column.replace(" ", ""))
        store.create_user(name)
        users[column] = name
        key_ids[column], keys[column] = store.create_key(column, user=name, scope="read" if column == "read key" else "write")
    key_ids["server admin"], keys["server admin"] = store.create_key("server admin", scope="admin")
    # The owner's first batch creates P (the owner becomes its admin member) and R; below the owner is
    # made a plain writer, so that the "owner" column is about owning R, not about administering P.
    r = srv.post(f"/api/v1/projects/{project}/runs/{run_id}/batch",
                 {"rows": [{"idx": 0, "row": {"loss": 1.0, "_step": 0}, "final": True}]}, key=keys["owner"])
    assert r.status_code == 200, r.text
    store.set_visibility(project, visibility)
    for column, role in (("viewer", "viewer"), ("writer", "writer"), ("project admin", "admin"),
                         ("read key", "writer"), ("owner", "writer")):
        store.set_member(project, users[column], role)
    return Cast(project, run_id, keys, key_ids, users, store)
