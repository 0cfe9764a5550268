"""Saved dashboard workspaces: a user's own view of a project, the project's default view, and
shared snapshots behind a URL.

Layer 5 (the server). A workspace is one versioned JSON document (``validate_workspace`` is its
schema: every field named, every string bounded, unknown fields refused with a 400). It is untrusted
input that other users' browsers show, so the dashboard renders every string of it as text. What it
promises:

* A project has three kinds of slot (``schema.workspaces``): a user's own view ("user:<id>", saved
  and reset by that user alone), the project default ("default", saved and reset by the project's
  writers and admins with a key of write scope) and shared snapshots ("view:<token>", immutable,
  made by any user who may read the project). Whoever may read the project reads its default and
  its snapshots; a user reads only their own view (``get_workspaces``).
* A document is at most ``MAX_WORKSPACE_BYTES`` of JSON; over it is a 413 before it is parsed.
* Every save, reset and share is recorded in the audit log in its transaction.
* A snapshot's id is 16 URL-safe random characters: a URL that names it is as good as a read of
  the project (it grants nothing the project's visibility does not).
"""

from __future__ import annotations

import math
import re
import secrets
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.access import forbidden, project_id, role_in
from wandblite.server.auth import Principal, record
from wandblite.server.db import dumps, loads
from wandblite.server.errors import ApiError, bad_request, not_found, unauthorized
from wandblite.server.schema import users, workspaces
from wandblite.server.wire import validate_run
from wandblite.vocab import PANEL_SIZES, ROLES, RUN_STATES, WORKSPACE_VERSION

__all__ = [
    "MAX_WORKSPACE_BYTES", "PANEL_SIZES", "VIEW_ID_PATTERN", "WORKSPACE_VERSION", "get_view", "get_workspaces",
    "reset", "save", "share", "validate_workspace",
]

#: The largest document, as JSON bytes.
MAX_WORKSPACE_BYTES = 64 * 1024
#: The longest string of a document (a metric key, a section name, a filter).
MAX_TEXT = 1024
#: The most entries of a list (selected runs, hidden panels, sections) or of the panel sizes.
MAX_ITEMS = 2000
#: A shared snapshot's id: 16 URL-safe characters (``secrets.token_urlsafe(12)``).
VIEW_ID_PATTERN = r"^[A-Za-z0-9_-]{16}$"
_VIEW_ID = re.compile(VIEW_ID_PATTERN)
#: How deep the ``grouping`` piece may nest (its own schema comes with the grouping feature).
_MAX_GROUPING_DEPTH = 6


# ------------------------------------------------------------------------------ the document


def _text(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise bad_request(f"{what} must be a string, not {type(v).__name__}", code="invalid_workspace")
    if len(v) > MAX_TEXT:
        raise bad_request(f"{what} is longer than {MAX_TEXT} characters", code="invalid_workspace")
    if any(c < " " and c not in "\t" for c in v):
        raise bad_request(f"{what} holds a control character", code="invalid_workspace")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{what} is not valid Unicode (a lone surrogate)", code="invalid_workspace")
    return v


def _texts(v: Any, what: str) -> list[str]:
    if not isinstance(v, list):
        raise bad_request(f"{what} must be a list of strings", code="invalid_workspace")
    if len(v) > MAX_ITEMS:
        raise bad_request(f"{what} has more than {MAX_ITEMS} entries", code="invalid_workspace")
    out = [_text(s, f"{what}[{i}]") for i, s in enumerate(v)]
    if len(set(out)) != len(out):
        raise bad_request(f"{what} names an entry twice", code="invalid_workspace")
    return out


def _object(v: Any, what: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``v`` as an object whose every key is one of ``fields`` (name -> check(value, what))."""
    if not isinstance(v, dict):
        raise bad_request(f"{what} must be an object", code="invalid_workspace")
    unknown = sorted(set(v) - set(fields))
    if unknown:
        raise bad_request(f"{what} has unknown field(s) {', '.join(map(repr, unknown))[:300]}; known: "
                          f"{', '.join(sorted(fields))}", code="invalid_workspace")
    return {k: fields[k](x, f"{what}.{k}") for k, x in v.items()}


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise bad_request(f"{what} must be true or false", code="invalid_workspace")
    return v


def _smoothing(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v < 1:
        raise bad_request(f"{what} must be a number from 0 up to (not including) 1", code="invalid_workspace")
    return float(v)


def _state(v: Any, what: str) -> str:
    if v not in ("", *RUN_STATES):
        raise bad_request(f"{what} must be one of {', '.join(RUN_STATES)} or empty", code="invalid_workspace")
    return str(v)


def _selection(v: Any, what: str) -> list[str]:
    ids = _texts(v, what)
    for i, run_id in enumerate(ids):
        try:
            validate_run(run_id)
        except ApiError as exc:
            raise bad_request(f"{what}[{i}]: {exc.message}", code="invalid_workspace")
    return ids


def _sizes(v: Any, what: str) -> dict[str, str]:
    if not isinstance(v, dict):
        raise bad_request(f"{what} must be an object of panel key -> size", code="invalid_workspace")
    if len(v) > MAX_ITEMS:
        raise bad_request(f"{what} has more than {MAX_ITEMS} entries", code="invalid_workspace")
    for k, size in v.items():
        _text(k, f"{what} key")
        if size not in PANEL_SIZES:
            raise bad_request(f"{what}[{k[:80]!r}] must be one of {', '.join(PANEL_SIZES)}", code="invalid_workspace")
    return dict(v)


def _plain(v: Any, what: str, depth: int = 0) -> Any:
    """JSON of bounded depth whose strings are bounded text (the pieces without a schema of their own)."""
    if depth > _MAX_GROUPING_DEPTH:
        raise bad_request(f"{what} nests more than {_MAX_GROUPING_DEPTH} levels", code="invalid_workspace")
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            raise bad_request(f"{what} must be a finite number", code="invalid_workspace")
        return v
    if isinstance(v, str):
        return _text(v, what)
    if isinstance(v, list):
        if len(v) > MAX_ITEMS:
            raise bad_request(f"{what} has more than {MAX_ITEMS} entries", code="invalid_workspace")
        return [_plain(x, f"{what}[{i}]", depth + 1) for i, x in enumerate(v)]
    if isinstance(v, dict):
        return {_text(k, f"{what} key"): _plain(x, f"{what}.{k[:80]}", depth + 1) for k, x in v.items()}
    raise bad_request(f"{what} is not JSON", code="invalid_workspace")


def _object_of_any(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise bad_request(f"{what} must be an object", code="invalid_workspace")
    return v


def _version(v: Any, what: str) -> int:
    if v != WORKSPACE_VERSION or isinstance(v, bool):
        raise bad_request(f"{what} must be {WORKSPACE_VERSION} (this server's workspace version), not {v!r}",
                          code="unsupported_version")
    return WORKSPACE_VERSION


_FIELDS: dict[str, Any] = {
    "version": _version,
    "runs": lambda v, w: _object(v, w, {"search": _text, "filter": _text, "state": _state, "order": _text}),
    "selection": _selection,
    "charts": lambda v, w: _object(v, w, {"x_axis": _text, "smoothing": _smoothing, "log_y": _bool,
                                          "panel_filter": _text}),
    "sections": lambda v, w: _object(v, w, {"order": _texts, "collapsed": _texts}),
    "panels": lambda v, w: _object(v, w, {"hidden": _texts, "sizes": _sizes}),
    "grouping": lambda v, w: _plain(_object_of_any(v, w), w),
}


def validate_workspace(doc: Any) -> dict[str, Any]:
    """The document if it is a valid workspace of this version; else a 400 saying what is wrong."""
    if not isinstance(doc, dict) or "version" not in doc:
        raise bad_request(f'expected a workspace document {{"version": {WORKSPACE_VERSION}, ...}}',
                          code="invalid_workspace")
    out = _object(doc, "workspace", _FIELDS)
    if len(dumps(out).encode("utf-8")) > MAX_WORKSPACE_BYTES:
        raise ApiError(413, "too_large", f"the workspace is larger than {MAX_WORKSPACE_BYTES} bytes")
    return out


# ------------------------------------------------------------------------------ storage


def _user_slot(actor: Principal) -> str:
    if actor.user_id is None:
        raise unauthorized("saving a workspace needs a user: log in, or send a user's API key")
    return f"user:{actor.user_id}"


def _check_default(conn: Connection, actor: Principal, pid: int, project: str) -> None:
    role = role_in(conn, actor, pid)
    if actor.user_id is None and actor.client != "cli":
        raise unauthorized("saving a workspace needs a user: log in, or send a user's API key")
    if not actor.may("write") or role is None or ROLES.index(role) < ROLES.index("writer"):
        raise forbidden(f"the default workspace of project {project!r} is saved by its writers and admins "
                        f"with a key of write scope; user {actor.user!r} may save their own view instead")


def _entry(conn: Connection, row: Any) -> dict[str, Any]:
    by = None
    if row.user_id is not None:
        by = conn.execute(sa.select(users.c.name).where(users.c.id == row.user_id)).scalar()
    return {"workspace": loads(row.doc), "updated_at": row.updated_at, "updated_by": by}


def _slot_row(conn: Connection, pid: int, slot: str) -> Any:
    return conn.execute(sa.select(workspaces.c.doc, workspaces.c.user_id, workspaces.c.updated_at).where(
        workspaces.c.project_id == pid, workspaces.c.slot == slot)).first()


def get_workspaces(engine: Engine, actor: Principal, project: str) -> dict[str, Any]:
    """``{"project", "user", "default"}``: the asker's own view and the project default (each
    ``{"workspace", "updated_at", "updated_by"}`` or None). The caller has checked the read."""
    with engine.connect() as conn:
        pid = project_id(conn, project)
        own = _slot_row(conn, pid, f"user:{actor.user_id}") if actor.user_id is not None else None
        default = _slot_row(conn, pid, "default")
        return {"project": project, "user": None if own is None else _entry(conn, own),
                "default": None if default is None else _entry(conn, default), "version": WORKSPACE_VERSION}


def _writable_slot(conn: Connection, actor: Principal, pid: int, project: str, which: str) -> str:
    """The slot ``which`` names for ``actor``: "default" (after the check that they may set it) or their own."""
    if which == "default":
        _check_default(conn, actor, pid, project)
        return "default"
    return _user_slot(actor)


def save(engine: Engine, actor: Principal, project: str, which: str, doc: Any) -> dict[str, Any]:
    """Save ``doc`` as the asker's own view (``which`` "user") or the project default ("default")."""
    clean = validate_workspace(doc)
    now = time.time()
    with engine.begin() as conn:
        pid = project_id(conn, project)
        slot = _writable_slot(conn, actor, pid, project, which)
        key = (workspaces.c.project_id == pid, workspaces.c.slot == slot)
        text = dumps(clean)
        if conn.execute(workspaces.update().where(*key).values(doc=text, user_id=actor.user_id,
                                                              updated_at=now)).rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(workspaces.insert().values(project_id=pid, slot=slot, user_id=actor.user_id,
                                                            doc=text, created_at=now, updated_at=now))
            except sa.exc.IntegrityError:  # a concurrent first save of the same slot: this one wins
                conn.execute(workspaces.update().where(*key).values(doc=text, user_id=actor.user_id, updated_at=now))
        record(conn, actor, "workspace.saved", {"slot": which, "bytes": len(text)}, project=project)
        return {"project": project, "slot": which, **_entry(conn, _slot_row(conn, pid, slot))}


def reset(engine: Engine, actor: Principal, project: str, which: str) -> dict[str, Any]:
    """Forget the asker's own view (they see the project default again) or the project default."""
    with engine.begin() as conn:
        pid = project_id(conn, project)
        slot = _writable_slot(conn, actor, pid, project, which)
        n = conn.execute(workspaces.delete().where(workspaces.c.project_id == pid, workspaces.c.slot == slot)).rowcount
        if n:
            record(conn, actor, "workspace.reset", {"slot": which}, project=project)
        return {"project": project, "slot": which, "reset": bool(n)}


def share(engine: Engine, actor: Principal, project: str, doc: Any) -> dict[str, Any]:
    """An immutable snapshot of ``doc`` with a new id for a shareable URL: ``{"project", "id"}``."""
    clean = validate_workspace(doc)
    if actor.user_id is None:
        raise unauthorized("sharing a workspace needs a user: log in, or send a user's API key")
    now = time.time()
    with engine.begin() as conn:
        pid = project_id(conn, project)
        view_id = secrets.token_urlsafe(12)
        conn.execute(workspaces.insert().values(project_id=pid, slot=f"view:{view_id}", user_id=actor.user_id,
                                                doc=dumps(clean), created_at=now, updated_at=now))
        record(conn, actor, "workspace.shared", {"view": view_id}, project=project)
    return {"project": project, "id": view_id}


def get_view(engine: Engine, project: str, view_id: str) -> dict[str, Any]:
    """A shared snapshot: ``{"project", "id", "workspace", "updated_at", "updated_by"}`` (404 when unknown)."""
    with engine.connect() as conn:
        pid = project_id(conn, project)
        row = None
        if _VIEW_ID.match(view_id):
            row = _slot_row(conn, pid, f"view:{view_id}")
        if row is None:
            raise not_found(f"no saved view {view_id[:40]!r} in project {project!r}")
        return {"project": project, "id": view_id, **_entry(conn, row)}
