"""Who may do what: project roles, visibility, run ownership and grants.

Layer 5 (the server). Decisions over the database, read on every call (nothing is kept in the
process). What it promises (``docs/roles.md`` draws the matrix):

* A principal's role in a project (``role_in``): a server admin's key of write or admin scope is
  every project's admin; otherwise the user's membership (``project_members``: viewer, writer,
  admin); a read-scope key is never more than a viewer. The command line (``Principal.cli``) and
  the embedded store (no principal) act as the server's admin.
* Reading a project (``check_read``): public projects (and every project of a server started with
  ``--public-read``) are open to anyone; internal ones to every user with a valid key or session;
  private ones to their members and the server admin. 401 without credentials, 403 with them.
* Fetching a blob by its sha256 (``check_media_read``): allowed to whoever may read at least one
  project holding a run that names it (``media_refs``): public -> anyone, internal -> every user,
  private -> its members (and the server admin). Otherwise 401 without credentials, and 404 with
  them (the same answer as for a blob the store does not hold: its existence is not told). A blob
  no run names (one inside another blob, as a table's images; one uploaded before its batch) is
  served as before the index: to every user, and to anyone under ``--public-read``.
* Writing (``check_create_run``/``check_append``, called by ingest in the batch's transaction, before
  anything is written): a key of write scope; a new run needs writer in its project (a new project
  is created with its creator as admin member); appending to a run needs its owner (still a writer),
  a project admin, or a key the run was granted (``grant``). A refusal is a 403 ``forbidden`` that
  names the run and its owner, and the transaction stores nothing.
* Editing a run (rename, tags, notes, archive, move, delete: ``check_edit``) needs a key of write
  scope of its owner while a writer of its project, or a project admin; a grant does not reach it.
  Moving needs the writer role in the target project too (``check_move_target``).
* Member, visibility and grant changes are recorded in the audit log in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.auth import Principal, record
from wandblite.server.errors import ApiError, bad_request, not_found, unauthorized
from wandblite.server.schema import api_keys, media_refs, project_members, projects, run_grants, runs, users
from wandblite.server.wire import validate_project, validate_run, validate_sha256
from wandblite.vocab import ADMIN_USER, ROLES, VISIBILITIES

__all__ = [
    "check_append", "check_create_run", "check_edit", "check_media_read", "check_move_target", "check_read", "forbidden",
    "grant", "list_members", "project_id", "readable_projects",
    "remove_member", "role_in", "role_of", "set_member", "set_visibility",
]


def forbidden(message: str) -> ApiError:
    """403: the credentials are valid but do not reach what was asked; nothing was changed."""
    return ApiError(403, "forbidden", message)


def _rank(role: str | None) -> int:
    return -1 if role is None else ROLES.index(role)


def role_in(conn: Connection, actor: Principal | None, pid: int) -> str | None:
    """``actor``'s role in project ``pid`` (None: not a member)."""
    if actor is None or (actor.client == "cli" and actor.user_id is None):
        return "admin"
    if actor.user_id is None:
        return None
    if actor.server_admin:
        return "admin"
    role = conn.execute(sa.select(project_members.c.role).where(
        project_members.c.project_id == pid, project_members.c.user_id == actor.user_id)).scalar()
    if actor.is_admin and role is None:
        role = "viewer"  # the admin's read key reads every project
    if role is not None and not actor.may("write"):
        return "viewer"
    return None if role is None else str(role)


def role_of(engine: Engine, actor: Principal, project: str) -> str | None:
    """``actor``'s role in ``project`` (404 for an unknown project)."""
    with engine.connect() as conn:
        return role_in(conn, actor, project_id(conn, project))


def check_read(engine: Engine, actor: Principal, project: str, public_read: bool) -> None:
    """Nothing when ``actor`` may read ``project`` (or it does not exist: the read answers 404 for
    whoever has a key, so a name says nothing to the anonymous); else 401/403."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(projects.c.id, projects.c.visibility).where(projects.c.name == project)).first()
        if public_read or (row is not None and row.visibility == "public"):
            return
        if actor.user_id is None:
            raise unauthorized("a valid API key (Authorization: Bearer <key>) or a session cookie is required")
        if row is None or row.visibility == "internal" or role_in(conn, actor, int(row.id)) is not None:
            return
    raise forbidden(f"project {project!r} is private: user {actor.user!r} is not a member")


def check_media_read(engine: Engine, actor: Principal, sha: str, public_read: bool) -> None:
    """Nothing when ``actor`` may fetch the blob ``sha`` (see the module docstring); else 401, or 404
    for credentials that read no project naming it. An ill-formed ``sha`` is left to the fetch (400)
    for whoever has credentials."""
    if public_read:
        return
    holders: Sequence[Any] = ()
    try:
        validate_sha256(sha)
    except ApiError:
        sha = ""  # not a sha256: no run names it
    if sha:
        with engine.connect() as conn:
            holders = conn.execute(sa.select(projects.c.id, projects.c.visibility).distinct()
                                   .select_from(media_refs.join(runs, runs.c.id == media_refs.c.run)
                                                .join(projects, projects.c.id == runs.c.project_id))
                                   .where(media_refs.c.sha256 == sha)).all()
    if any(h.visibility == "public" for h in holders):
        return
    if actor.user_id is None:
        raise unauthorized("a valid API key (Authorization: Bearer <key>) or a session cookie is required")
    if not holders or actor.server_admin or actor.is_admin:
        return  # named by no run (served as before the index), or asked by one who reads every project
    if any(h.visibility == "internal" for h in holders):
        return
    with engine.connect() as conn:
        if any(role_in(conn, actor, int(h.id)) is not None for h in holders):
            return
    raise not_found(f"no media blob {sha}")


def readable_projects(engine: Engine, actor: Principal, public_read: bool) -> set[str] | None:
    """The names of the projects ``actor`` may read; None for every project."""
    if public_read or actor.server_admin or (actor.is_admin and actor.user_id is not None):
        return None
    with engine.connect() as conn:
        vis = ["public"] if actor.user_id is None else ["public", "internal"]
        names = {str(n) for (n,) in conn.execute(sa.select(projects.c.name).where(projects.c.visibility.in_(vis)))}
        if actor.user_id is not None:
            names |= {str(n) for (n,) in conn.execute(sa.select(projects.c.name).join(
                project_members, project_members.c.project_id == projects.c.id).where(
                project_members.c.user_id == actor.user_id))}
    return names


def _who(actor: Principal | None) -> str:
    return "this key" if actor is None or actor.user is None else f"user {actor.user!r}"


def check_create_run(conn: Connection, actor: Principal | None, pid: int | None, project: str, run_id: str) -> None:
    """A new run in ``project`` (id ``pid``, None when the batch creates the project too)."""
    if actor is not None and not actor.may("write"):
        raise forbidden(f"{_who(actor)} holds a {actor.scope or 'missing'} key: writing needs the write scope")
    if pid is not None and _rank(role_in(conn, actor, pid)) < _rank("writer"):
        raise forbidden(f"creating run {project}/{run_id} needs the writer role in project {project!r}, "
                        f"which {_who(actor)} does not have; nothing was stored")


def check_append(conn: Connection, actor: Principal | None, r: Any, project: str) -> None:
    """Appending to the existing run row ``r`` of ``project`` (see the module docstring)."""
    if actor is None:
        return
    if not actor.may("write"):
        raise forbidden(f"{_who(actor)} holds a {actor.scope or 'missing'} key: writing needs the write scope")
    role = role_in(conn, actor, int(r.project_id))
    if role == "admin":
        return
    if r.owner_id is not None and r.owner_id == actor.user_id and role == "writer":
        return
    if actor.key_id is not None and conn.execute(sa.select(run_grants.c.key_id).where(
            run_grants.c.run == r.id, run_grants.c.key_id == actor.key_id)).first() is not None:
        return
    owner = _owner_name(conn, r.owner_id)
    if r.owner_id == actor.user_id:
        raise forbidden(f"run {project}/{r.run_id} is yours but appending needs the writer role in project "
                        f"{project!r}; nothing was stored")
    raise forbidden(f"run {project}/{r.run_id} belongs to user {owner!r}: {_who(actor)} may not append to it "
                    f"(use another run id, or ask {owner!r} or a project admin to grant your key "
                    f"{actor.key_id}); nothing was stored")


def check_edit(conn: Connection, actor: Principal | None, r: Any, project: str, what: str) -> None:
    """``actor`` may edit, move or delete the run row ``r`` of ``project`` (``what``: "editing", ...)."""
    if actor is None:
        return
    if not actor.may("write"):
        raise forbidden(f"{_who(actor)} holds a {actor.scope or 'missing'} key: {what} a run needs the write scope")
    role = role_in(conn, actor, int(r.project_id))
    if role == "admin" or (role == "writer" and r.owner_id is not None and r.owner_id == actor.user_id):
        return
    raise forbidden(f"{what} run {project}/{r.run_id} needs its owner {_owner_name(conn, r.owner_id)!r} (a writer "
                    f"of the project) or an admin of project {project!r}, which {_who(actor)} is not; "
                    "nothing was changed")


def check_move_target(conn: Connection, actor: Principal | None, pid: int, target: str, project: str,
                      run_id: str) -> None:
    """``actor`` may move a run into project ``target`` (id ``pid``): the writer role there."""
    if actor is not None and _rank(role_in(conn, actor, pid)) < _rank("writer"):
        raise forbidden(f"moving run {project}/{run_id} to project {target!r} needs the writer role there, "
                        f"which {_who(actor)} does not have; nothing was changed")


def _owner_name(conn: Connection, owner_id: int | None) -> str:
    if owner_id is None:
        return ADMIN_USER
    return str(conn.execute(sa.select(users.c.name).where(users.c.id == owner_id)).scalar() or f"#{owner_id}")


# --------------------------------------------------------------------------- managing projects


def project_id(conn: Connection, project: str) -> int:
    """The project's primary key (404 for an unknown project, 400 for an invalid name)."""
    validate_project(project)
    pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar()
    if pid is None:
        raise not_found(f"no project {project!r}")
    return int(pid)


def _require_admin(conn: Connection, actor: Principal | None, pid: int, project: str) -> None:
    if actor is not None and (not actor.may("write") or role_in(conn, actor, pid) != "admin"):
        raise forbidden(f"managing project {project!r} needs its admin role, which {_who(actor)} does not have")


def _user_id(conn: Connection, user: str) -> int:
    uid = conn.execute(sa.select(users.c.id).where(users.c.name == user)).scalar()
    if uid is None:
        raise not_found(f"no user {user!r}")
    return int(uid)


def set_member(engine: Engine, project: str, user: str, role: str, actor: Principal | None = None) -> str:
    """Make ``user`` a member of ``project`` with ``role`` (or change their role); returns the audit
    action ("member.added", "role.changed", or "" when nothing changed)."""
    if role not in ROLES:
        raise bad_request(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    with engine.begin() as conn:
        pid = project_id(conn, project)
        _require_admin(conn, actor, pid, project)
        uid = _user_id(conn, user)
        key = (project_members.c.project_id == pid, project_members.c.user_id == uid)
        old = conn.execute(sa.select(project_members.c.role).where(*key)).scalar()
        if old == role:
            return ""
        if old is None:
            conn.execute(project_members.insert().values(project_id=pid, user_id=uid, role=role, created_at=time.time()))
            record(conn, actor, "member.added", {"user": user, "role": role}, project=project)
            return "member.added"
        conn.execute(project_members.update().where(*key).values(role=role))
        record(conn, actor, "role.changed", {"user": user, "from": old, "to": role}, project=project)
        return "role.changed"


def remove_member(engine: Engine, project: str, user: str, actor: Principal | None = None) -> bool:
    with engine.begin() as conn:
        pid = project_id(conn, project)
        _require_admin(conn, actor, pid, project)
        uid = _user_id(conn, user)
        n = conn.execute(project_members.delete().where(project_members.c.project_id == pid,
                                                        project_members.c.user_id == uid)).rowcount
        if n:
            record(conn, actor, "member.removed", {"user": user}, project=project)
        return bool(n)


def list_members(engine: Engine, project: str) -> dict[str, Any]:
    """``{"project", "visibility", "members": [{"user", "role"}]}``."""
    with engine.connect() as conn:
        pid = project_id(conn, project)
        vis = conn.execute(sa.select(projects.c.visibility).where(projects.c.id == pid)).scalar()
        rows = conn.execute(sa.select(users.c.name, project_members.c.role).join(
            users, users.c.id == project_members.c.user_id).where(project_members.c.project_id == pid)
            .order_by(users.c.name)).all()
    return {"project": project, "visibility": vis, "members": [{"user": n, "role": r} for n, r in rows]}


def set_visibility(engine: Engine, project: str, visibility: str, actor: Principal | None = None) -> None:
    if visibility not in VISIBILITIES:
        raise bad_request(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
    with engine.begin() as conn:
        pid = project_id(conn, project)
        _require_admin(conn, actor, pid, project)
        old = conn.execute(sa.select(projects.c.visibility).where(projects.c.id == pid)).scalar()
        if old != visibility:
            conn.execute(projects.update().where(projects.c.id == pid).values(visibility=visibility))
            record(conn, actor, "visibility.changed", {"from": old, "to": visibility}, project=project)


def grant(engine: Engine, project: str, run_id: str, key_id: int, actor: Principal | None = None) -> None:
    """Let the key ``key_id`` append to the run: done by its owner or a project admin."""
    validate_run(run_id)
    with engine.begin() as conn:
        pid = project_id(conn, project)
        r = conn.execute(sa.select(runs.c.id, runs.c.owner_id).where(runs.c.project_id == pid,
                                                                     runs.c.run_id == run_id)).first()
        if r is None:
            raise not_found(f"no run {project}/{run_id}")
        if actor is not None:
            if not actor.may("write"):
                raise forbidden(f"{_who(actor)} holds a read key: granting needs the write scope")
            role = role_in(conn, actor, pid)
            if role != "admin" and not (r.owner_id == actor.user_id and role == "writer"):
                raise forbidden(f"only the owner of run {project}/{run_id} or a project admin may grant it")
        if conn.execute(sa.select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is None:
            raise not_found(f"no key {key_id}")
        if conn.execute(sa.select(run_grants.c.key_id).where(run_grants.c.run == r.id,
                                                             run_grants.c.key_id == key_id)).first() is None:
            conn.execute(run_grants.insert().values(run=r.id, key_id=key_id, granted_by=None if actor is None
                                                    else actor.user_id, created_at=time.time()))
            record(conn, actor, "grant.added", {"key_id": key_id}, project=project, run_id=run_id)
