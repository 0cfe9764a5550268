"""Editing stored runs: rename, tags, notes, archive, move to another project, delete.

Layer 5 (the server). Each call takes the ``Store`` and the acting ``Principal`` (None: the
embedded store, acting as the server's admin) and does its work in ONE transaction, with its audit
entry (``run.edited``, ``run.moved``, ``run.deleted``) in the same transaction. Who may do it is
``access.check_edit``: the run's owner while a writer of its project, or a project admin; moving
also needs the writer role in the target project. ``docs/roles.md`` draws the matrix.

What it promises:

* ``edit_run`` sets any of ``name``, ``tags``, ``notes`` and ``archived``; unknown fields and
  wrong types are a 400 and change nothing. An archived run is hidden from the default runs list
  (``runs_query.list_runs``, ``archived="hide"``), listed with ``archived="include"`` or
  ``"only"``, and restored by ``archived: false``; nothing else about it changes.
* A later sync and an edit: ``edited.keep_edits`` (ingest calls it in the batch's transaction)
  keeps an edited field's server value while the file keeps sending the value it had when the edit
  was made; a file that sends another value wins. ``edit_run`` records, per edited field, the
  file's value the edit overrides (``runs.edited``).
* ``move_run`` changes the run's project; its records go with it (they hang off the run's row, its
  ``media_refs`` too, so who may fetch its blobs follows the run). A
  run id already taken in the target is a 409 ``conflict``; an unknown target a 404. Artifact
  versions belong to their project and stay where they were logged.
* ``delete_run`` removes the run's row and every record of it: history chunks, series chunks, the
  provisional row, the media index, the run's ``media_refs``, console, system, files, artifact links
  (logged and used), alerts and grants. The blobs the run named (``media_refs``: its media values,
  saved files and logged artifact files) that no other run's ``media_refs`` and no artifact version
  names any more are removed from the media index in the same
  transaction, then from the blob store (disk or bucket, ``BlobStore.delete``) after it commits.
  A blob named only inside another blob (a table's images) is not looked for and stays.
  A run synced again after its deletion comes back as a new run (the server holds no trace of it;
  its file is the source of truth): delete or move the run's local directory to keep it away.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.access import check_edit, check_move_target
from wandblite.server.auth import Principal, record
from wandblite.server.db import dumps, loads, retrying
from wandblite.server.edited import EDIT_FIELDS
from wandblite.server.errors import ApiError, bad_request, not_found
from wandblite.server.media_index import run_refs, shas_in
from wandblite.server.read import get_run
from wandblite.server.schema import (
    alerts,
    artifact_uses,
    artifacts,
    console,
    history_chunks,
    history_pending,
    media,
    media_refs,
    media_rows,
    projects,
    run_artifacts,
    run_files,
    run_grants,
    runs,
    series_chunks,
    system,
)
from wandblite.server.store import Store
from wandblite.server.wire import clean_text, validate_project, validate_run

__all__ = ["EDIT_FIELDS", "MAX_NAME", "MAX_TAG", "MAX_TAGS", "delete_run", "edit_run", "move_run"]

MAX_NAME = 1024  # characters of a display name
MAX_TAG = 256  # characters of one tag
MAX_TAGS = 1000  # tags of one run

#: The tables holding a run's records, keyed by its ``runs.id`` in their ``run`` column.
_RUN_TABLES = (history_chunks, series_chunks, history_pending, media_rows, media_refs, console, system, run_files,
               run_artifacts, artifact_uses, alerts, run_grants)


def _prep(changes: Any) -> dict[str, Any]:
    """An edit's fields checked and encoded as the ``runs`` columns hold them (400 on anything else)."""
    if not isinstance(changes, dict) or not changes:
        raise bad_request('expected an object with any of "name", "tags", "notes", "archived"')
    unknown = sorted(set(changes) - {*EDIT_FIELDS, "archived"})
    if unknown:
        raise bad_request(f"a run edit takes name, tags, notes and archived, not {', '.join(map(repr, unknown))}")
    out: dict[str, Any] = {}
    if "name" in changes:
        out["name"] = clean_text(changes["name"], "name", MAX_NAME)
    if "notes" in changes:
        out["notes"] = clean_text(changes["notes"], "notes")
    if "tags" in changes:
        tags = changes["tags"]
        if not isinstance(tags, list) or len(tags) > MAX_TAGS:
            raise bad_request(f"tags must be a list of at most {MAX_TAGS} strings")
        clean = [clean_text(t, f"tags[{i}]", MAX_TAG) for i, t in enumerate(tags)]
        if any(not t for t in clean):
            raise bad_request("a tag must be a non-empty string")
        out["tags"] = dumps(list(dict.fromkeys(clean)))  # as a batch stores them (wire.prep_run)
    if "archived" in changes:
        if type(changes["archived"]) is not bool:
            raise bad_request("archived must be true or false")
        out["archived"] = changes["archived"]
    return out


def _locked_run(conn: Connection, project: str, run_id: str) -> Any:
    """The run's row, locked for this transaction (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
    write transaction is ``BEGIN IMMEDIATE``); 404 when there is none."""
    validate_project(project)
    validate_run(run_id)
    q = (sa.select(runs).join(projects, projects.c.id == runs.c.project_id)
         .where(projects.c.name == project, runs.c.run_id == run_id))
    if conn.dialect.name != "sqlite":
        q = q.with_for_update(of=runs)
    r = conn.execute(q).first()
    if r is None:
        raise not_found(f"no run {run_id!r} in project {project!r}")
    return r


def _shown(field: str, stored: Any) -> Any:
    return loads(stored) if field == "tags" and stored is not None else stored


def edit_run(store: Store, project: str, run_id: str, changes: Any, actor: Principal | None = None) -> dict[str, Any]:
    """Apply ``changes`` (any of name, tags, notes, archived) to the run; return it as ``GET`` does."""
    values = _prep(changes)

    def txn() -> None:
        with store.write_engine.begin() as conn:
            r = _locked_run(conn, project, run_id)
            check_edit(conn, actor, r, project, "editing")
            edited: dict[str, Any] = loads(r.edited) or {}
            upd: dict[str, Any] = {}
            detail: dict[str, Any] = {}
            for k in EDIT_FIELDS:
                if k not in values or values[k] == getattr(r, k):
                    continue
                edited.setdefault(k, getattr(r, k))  # the file's value this edit overrides
                if edited[k] == values[k]:
                    del edited[k]  # edited back to what the file says: nothing overrides it any more
                upd[k] = values[k]
                detail[k] = {"from": _shown(k, getattr(r, k)), "to": _shown(k, values[k])}
            if upd:
                upd["edited"] = dumps(edited) if edited else None
            if "archived" in values and values["archived"] != (r.archived_at is not None):
                upd["archived_at"] = time.time() if values["archived"] else None
                detail["archived"] = values["archived"]
            if upd:
                conn.execute(runs.update().where(runs.c.id == r.id).values(**upd))
                record(conn, actor, "run.edited", detail, project=project, run_id=run_id)

    retrying(txn, f"editing run {project}/{run_id}")
    return get_run(store, project, run_id)


def move_run(store: Store, project: str, run_id: str, target: Any, actor: Principal | None = None) -> dict[str, Any]:
    """Move the run to project ``target``; return it as ``GET`` does in its new project."""
    if not isinstance(target, str):
        raise bad_request('expected {"project": "<the target project>"}')
    validate_project(target)

    def txn() -> None:
        with store.write_engine.begin() as conn:
            r = _locked_run(conn, project, run_id)
            check_edit(conn, actor, r, project, "moving")
            tpid = conn.execute(sa.select(projects.c.id).where(projects.c.name == target)).scalar()
            if tpid is None:
                raise not_found(f"no project {target!r} to move run {project}/{run_id} to (a sync creates it)")
            if int(tpid) == int(r.project_id):
                return
            check_move_target(conn, actor, int(tpid), target, project, run_id)
            if conn.execute(sa.select(runs.c.id).where(runs.c.project_id == tpid, runs.c.run_id == run_id)).first():
                raise ApiError(409, "conflict", f"project {target!r} already has a run {run_id!r}: "
                                                f"run {project}/{run_id} was not moved")
            conn.execute(runs.update().where(runs.c.id == r.id).values(project_id=tpid))
            for where in (project, target):  # each project's admins read it in their part of the log
                record(conn, actor, "run.moved", {"from": project, "to": target}, project=where, run_id=run_id)

    retrying(txn, f"moving run {project}/{run_id}")
    return get_run(store, target, run_id)


# --------------------------------------------------------------------------- deleting


def _still_named(conn: Connection, shas: set[str]) -> set[str]:
    """Those of ``shas`` some stored run (``media_refs``: the deleted run's are gone) or artifact
    version (it outlives the run that logged it) names."""
    named: set[str] = set()
    wanted = sorted(shas)
    for i in range(0, len(wanted), 500):
        part = wanted[i:i + 500]
        named |= {str(s) for (s,) in conn.execute(sa.select(media_refs.c.sha256).where(
            media_refs.c.sha256.in_(part)).distinct())}
    for (manifest,) in conn.execute(sa.select(artifacts.c.manifest)):
        named |= shas_in([manifest]) & shas
    return named


def delete_run(store: Store, project: str, run_id: str, actor: Principal | None = None) -> dict[str, Any]:
    """Delete the run, its records and the blobs nothing else names (see the module docstring).

    Returns ``{"project", "run_id", "deleted": true, "blobs_deleted": [sha256...], "blobs_left": [...]}``;
    ``blobs_left`` lists blobs the blob store could not remove (a storage fault): they are out of the
    media index, so a later upload of the same bytes stores them again.
    """

    def txn() -> list[str]:
        with store.write_engine.begin() as conn:
            r = _locked_run(conn, project, run_id)
            check_edit(conn, actor, r, project, "deleting")
            candidates = run_refs(conn, r.id)
            counts = {"rows": int(r.rows_final), "console": int(r.console_count), "system": int(r.system_count)}
            for table in _RUN_TABLES:
                conn.execute(table.delete().where(table.c.run == r.id))
            conn.execute(runs.delete().where(runs.c.id == r.id))
            stored = set()
            wanted = sorted(candidates)
            for i in range(0, len(wanted), 500):
                stored |= {str(s) for (s,) in conn.execute(sa.select(media.c.sha256).where(
                    media.c.sha256.in_(wanted[i:i + 500])))}
            orphans = sorted(stored - _still_named(conn, stored)) if stored else []
            for i in range(0, len(orphans), 500):
                conn.execute(media.delete().where(media.c.sha256.in_(orphans[i:i + 500])))
            record(conn, actor, "run.deleted", {**counts, "blobs": len(orphans)}, project=project, run_id=run_id)
            return orphans

    orphans = retrying(txn, f"deleting run {project}/{run_id}")
    deleted, left = [], []
    for sha in orphans:
        try:
            if store.blobs is not None:
                store.blobs.delete(sha)
            deleted.append(sha)
        except ApiError:
            left.append(sha)
    return {"project": project, "run_id": run_id, "deleted": True, "blobs_deleted": deleted, "blobs_left": left}
