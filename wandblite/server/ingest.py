"""Batch ingest: one sync batch applied to a run in one transaction, every stream by one mechanism.

Layer 5 (the server). What it promises (see ``PROTOCOL.md``):

* ``apply_batch`` validates and encodes the whole batch before its transaction (bad input never
  holds the write lock, and a 400 stores nothing), then applies it in ONE transaction and returns
  the run's new position (``position_of``).
* A batch carries up to seven record streams: ``rows``, ``console``, ``system``, ``files``,
  ``artifacts``, ``uses`` and ``alerts``. ``STREAMS`` says, for each, its batch field, how its
  records are prepared (``wire.py``), where its position is read (a counter column on the run's
  row, or a count of the run's records in its table), how its records are written, and its 409
  message. One rule holds for all: records whose index is below the stream's position are skipped
  (so a retried batch changes nothing); the first one left must sit at the position, else a 409
  ``gap`` and nothing of the batch is stored. Every stream is checked before any is written. The
  409 carries the position as the transaction had read it: the run row's part (rows, pending,
  console, system, digest, state), plus the counted streams' positions once one was needed (they
  are read together).
* A provisional row (``final: false``, a crashed run's pending row) sits at index ``rows`` and is
  replaced by the next row sent at that index; the read indexes only ever see final rows.
* Concurrent batches for one run are serialised: SQLite's write transactions are ``BEGIN
  IMMEDIATE`` (``db.py``); on PostgreSQL the run's row is locked with ``SELECT ... FOR UPDATE``.
* A file or artifact record names bytes that must already be in the media store (400
  ``missing_blob`` otherwise). Artifact versions are keyed (project, name, digest); an alias moves
  to the version whose log record carrying it is the most recent. An alert's ``throttled`` flag is
  decided as it is stored, from the run's earlier alerts in index order (``wandblite.throttle``), so
  it is the same however the alerts were batched.
* Which blobs the run names (its media values, saved files and logged artifact files) is recorded in
  ``media_refs`` in the same transaction (``media_index.add_refs``); a batch without any is not looked at.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.access import check_append, check_create_run
from wandblite.server.auth import Principal, admin_user_id, record
from wandblite.server.db import dumps
from wandblite.server.edited import keep_edits
from wandblite.server.errors import ApiError, bad_request, conflict
from wandblite.server.history_store import write_rows
from wandblite.server.indexes import add_media_rows
from wandblite.server.media_index import add_refs, row_shas
from wandblite.server.schema import (
    alerts,
    artifact_aliases,
    artifact_uses,
    artifacts,
    console,
    project_members,
    projects,
    run_artifacts,
    run_files,
    runs,
    system,
)
from wandblite.server.wire import (
    Row,
    numbered,
    prep_alert,
    prep_artifact,
    prep_console,
    prep_file,
    prep_rows,
    prep_run,
    prep_system,
    prep_use,
    validate_project,
    validate_run,
)
from wandblite.server.writers import prep_writer, store, writer_position, writers_positions
from wandblite.throttle import throttle
from wandblite.vocab import DEFAULT_VISIBILITY

__all__ = ["STREAMS", "Stream", "apply_batch", "position", "position_of", "run_position"]

#: A stream's records in a batch: (idx, prepared record), indexes consecutive.
Records = list[tuple[int, Any]]


@dataclass(frozen=True)
class Stream:
    """One record stream of a batch: how it is checked, positioned and stored.

    ``held(conn, run_row)`` is the run's position in the stream (0 when there is no run yet): a
    counter column of the run's row, or the count of the run's records in the stream's table.
    ``write(conn, run_row, held, records)`` stores the records, which start at ``held``, and returns
    the values the run's row changes to (an advanced counter column; nothing for a counted stream).
    ``gap`` is the 409 message, formatted with ``first`` (the first index sent), ``held``,
    ``project`` and ``run_id``.
    """

    field: str  # the batch's field and the position's key
    limit: int | None  # the most records one batch may carry (None: only the body size limits it)
    prepare: Callable[[list[Any]], Records]  # validate and encode the field's list (wire.py)
    held: Callable[[Connection, Any], int]
    write: Callable[[Connection, Any, int, Records], dict[str, Any]]
    gap: str
    blobs: Callable[[Any], Iterable[str]] = lambda _record: ()  # the sha256s a record needs stored


# --------------------------------------------------------------------------- positions


def _column(name: str) -> Callable[[Connection, Any], int]:
    """A position kept in a counter column of the run's row."""
    def held(_conn: Connection, r: Any) -> int:
        return 0 if r is None else int(getattr(r, name))
    return held


def _count(table: sa.Table) -> Callable[[Connection, Any], int]:
    """A position that is the number of the run's records in ``table``."""
    def held(conn: Connection, r: Any) -> int:
        if r is None:
            return 0
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.run == r.id)).scalar_one())
    return held


def run_position(r: Any) -> dict[str, Any]:
    """The position's part the run's row holds (zeros for no run): rows, pending, console, system,
    digest (the client's digest of the metadata it last sent) and state."""
    if r is None:
        return {"rows": 0, "pending": False, "console": 0, "system": 0, "digest": None, "state": None}
    return {"rows": int(r.rows_final), "pending": bool(r.pending), "console": int(r.console_count),
            "system": int(r.system_count), "digest": r.digest, "state": r.state}


def position_of(conn: Connection, r: Any) -> dict[str, Any]:
    """The run's whole position: its row's part, then every stream's, then, for a shared run,
    ``writers``: each writer's (``writers.py``; absent for a single writer's run)."""
    out = {**run_position(r), **{s.field: s.held(conn, r) for s in STREAMS}}
    mine = writers_positions(conn, None if r is None else r.id)
    if mine:
        out["writers"] = mine
    return out


class _Positions:
    """A run's position as one transaction reads it before writing: the run row's part at once, the
    streams counted in their own tables together, the first time one of them is needed. ``read`` is
    what a 409 reports."""

    def __init__(self, conn: Connection, r: Any) -> None:
        self._conn, self._r = conn, r
        self.read = run_position(r)

    def held(self, stream: Stream) -> int:
        if stream.field not in self.read:
            self.read.update({s.field: s.held(self._conn, self._r) for s in STREAMS if s.field not in self.read})
        return int(self.read[stream.field])


# --------------------------------------------------------------------------- writers


def _append(table: sa.Table, counter: str | None = None) -> Callable[[Connection, Any, int, Records], dict[str, Any]]:
    """Insert each record as a row of ``table``; advance the run row's ``counter`` column if it has one."""
    def write(conn: Connection, r: Any, held: int, recs: Records) -> dict[str, Any]:
        conn.execute(table.insert(), [{"run": r.id, "idx": i, **rec} for i, rec in recs])
        return {} if counter is None else {counter: held + len(recs)}
    return write


def _write_rows(conn: Connection, r: Any, held: int, recs: list[tuple[int, Row]]) -> dict[str, Any]:
    """History rows into the run's chunks with their statistics, and the media index; a provisional
    row at ``held`` is replaced (``history_store.write_rows``)."""
    write_rows(conn, r.id, held, bool(r.pending), recs)
    # The media index covers the final rows, so a read never has to build it (indexes.py).
    add_media_rows(conn, r.id, [(idx, row.step, row.media) for idx, row in recs if row.final and row.media])
    add_refs(conn, r.id, row_shas(row for _idx, row in recs))  # which blobs the run names (media_index.py)
    last_final = recs[-1][1].final
    return {"rows_final": held + len(recs) - (0 if last_final else 1), "pending": not last_final}


def _write_files(conn: Connection, r: Any, held: int, recs: Records) -> dict[str, Any]:
    out = _append(run_files)(conn, r, held, recs)
    add_refs(conn, r.id, (sha for _i, f in recs for sha in _file_blobs(f)))
    return out


def _write_artifacts(conn: Connection, r: Any, _held: int, recs: Records) -> dict[str, Any]:
    add_refs(conn, r.id, (sha for _i, a in recs for sha in _artifact_blobs(a)))
    for i, a in recs:
        aid = _artifact_version(conn, r.project_id, r.run_id, a)
        conn.execute(run_artifacts.insert().values(run=r.id, idx=i, artifact=aid, aliases=dumps(a["aliases"]), ts=a["ts"]))
        _move_aliases(conn, r.project_id, a["name"], a["aliases"], aid, a["ts"] or 0.0)
    return {}


def _write_uses(conn: Connection, r: Any, _held: int, recs: Records) -> dict[str, Any]:
    for i, u in recs:
        aid = None if u["digest"] is None else conn.execute(sa.select(artifacts.c.id).where(
            artifacts.c.project_id == r.project_id, artifacts.c.name == u["name"],
            artifacts.c.digest == u["digest"])).scalar()
        conn.execute(artifact_uses.insert().values(run=r.id, idx=i, artifact=aid, **u))
    return {}


def _write_alerts(conn: Connection, r: Any, _held: int, recs: Records) -> dict[str, Any]:
    flags = throttle([a for _i, a in recs], _last_sent_alerts(conn, r.id, {a["title"] for _i, a in recs}))
    conn.execute(alerts.insert(), [{"run": r.id, "idx": i, **a, "throttled": t} for (i, a), t in zip(recs, flags)])
    return {}


def _last_sent_alerts(conn: Connection, pk: int, titles: set[str]) -> dict[str, float | None]:
    """title -> ts of the run's most recent stored non-throttled alert of that title (``titles``
    only): where ``throttle`` resumes for a batch's alerts. One pass over the run's sent alerts
    in idx order, under the batch's lock, so batches split anywhere decide the same."""
    last: dict[str, float | None] = {}
    q = (sa.select(alerts.c.title, alerts.c.ts).where(alerts.c.run == pk, alerts.c.throttled == sa.false())
         .order_by(alerts.c.idx))
    for title, ts in conn.execute(q):
        if title in titles:
            last[title] = ts
    return last


def _artifact_version(conn: Connection, pid: int, run_id: str, a: dict[str, Any]) -> int:
    """The id of the version with ``a``'s digest, created if new.

    A new digest keeps the version number the client gave it when no other digest of that name
    holds it on the server (the usual case: one root directory, one numbering), else takes
    ``max + 1``. Concurrent creators (PostgreSQL) meet on the unique constraints and re-read.
    """
    where = (artifacts.c.project_id == pid, artifacts.c.name == a["name"])
    for _attempt in range(5):
        aid = conn.execute(sa.select(artifacts.c.id).where(*where, artifacts.c.digest == a["digest"])).scalar()
        if aid is not None:
            return int(aid)
        taken = {int(v) for (v,) in conn.execute(sa.select(artifacts.c.version).where(*where))}
        version = a["version"] if a["version"] not in taken else max(taken) + 1
        try:
            with conn.begin_nested():
                res = conn.execute(artifacts.insert().values(
                    project_id=pid, name=a["name"], type=a["type"], version=version, digest=a["digest"],
                    description=a["description"], metadata=a["metadata"], manifest=dumps(a["entries"]),
                    size=a["size"], run_id=run_id, created_at=a["ts"] if a["ts"] is not None else time.time()))
                return int(res.inserted_primary_key[0])  # type: ignore[index]
        except sa.exc.IntegrityError:
            continue
    raise ApiError(503, "busy", f"artifact {a['name']!r} is being written concurrently; retry")


def _move_aliases(conn: Connection, pid: int, name: str, aliases: list[str], aid: int, ts: float) -> None:
    """Point each alias at ``aid`` unless a more recent log record (by ts) gave it to another version."""
    for alias in aliases:
        key = (artifact_aliases.c.project_id == pid, artifact_aliases.c.name == name,
               artifact_aliases.c.alias == alias)
        try:
            with conn.begin_nested():
                conn.execute(artifact_aliases.insert().values(project_id=pid, name=name, alias=alias,
                                                              artifact=aid, ts=ts))
            continue
        except sa.exc.IntegrityError:
            pass
        conn.execute(artifact_aliases.update().where(*key, artifact_aliases.c.ts <= ts).values(artifact=aid, ts=ts))


# --------------------------------------------------------------------------- the streams


def _each(field: str, prep: Callable[[dict[str, Any], str], Any]) -> Callable[[list[Any]], Records]:
    return functools.partial(numbered, field=field, prep=prep)


def _file_blobs(f: dict[str, Any]) -> Iterable[str]:
    return () if f["lost"] else (f["sha256"],)


def _artifact_blobs(a: dict[str, Any]) -> Iterable[str]:
    return (e["sha256"] for e in a["entries"].values() if "ref" not in e)


#: Every stream of a batch, in the order its records are checked and stored.
STREAMS: tuple[Stream, ...] = (
    Stream("rows", None, prep_rows, _column("rows_final"), _write_rows,
           "rows start at idx {first} but the server holds {held} rows of run {project}/{run_id}: resend from {held}"),
    Stream("console", None, _each("console", prep_console), _column("console_count"),
           _append(console, "console_count"), "console records start at idx {first} but the server holds {held}"),
    Stream("system", None, _each("system", prep_system), _column("system_count"),
           _append(system, "system_count"), "system records start at idx {first} but the server holds {held}"),
    Stream("files", 100_000, _each("files", prep_file), _count(run_files), _write_files,
           "files records start at idx {first} but the server holds {held} of run {run_id}: resend from {held}",
           _file_blobs),
    Stream("artifacts", 100_000, _each("artifacts", prep_artifact), _count(run_artifacts), _write_artifacts,
           "artifacts records start at idx {first} but the server holds {held} of run {run_id}: resend from {held}",
           _artifact_blobs),
    Stream("uses", 100_000, _each("uses", prep_use), _count(artifact_uses), _write_uses,
           "uses records start at idx {first} but the server holds {held} of run {run_id}: resend from {held}"),
    Stream("alerts", 100_000, _each("alerts", prep_alert), _count(alerts), _write_alerts,
           "alerts records start at idx {first} but the server holds {held} of run {run_id}: resend from {held}"),
)


# --------------------------------------------------------------------------- runs and batches


def _find_run(conn: Connection, project: str, run_id: str, lock: bool = False) -> Any:
    q = (sa.select(runs).join(projects, projects.c.id == runs.c.project_id)
         .where(projects.c.name == project, runs.c.run_id == run_id))
    if lock and conn.dialect.name != "sqlite":
        q = q.with_for_update(of=runs)
    return conn.execute(q).first()


def _get_or_create(conn: Connection, project: str, run_id: str, actor: Principal | None) -> Any:
    """The run's row, locked for this transaction; created (with its project) if new, owned by the
    actor's user (the "admin" user for the embedded store). Who may create or append is checked
    here, before anything is written (``access.py``): a refusal is a 403 and the transaction rolls
    back whole. A new project's creator becomes its admin member."""
    r = _find_run(conn, project, run_id, lock=True)
    if r is not None:
        check_append(conn, actor, r, project)
        return r
    now = time.time()
    owner = actor.user_id if actor is not None and actor.user_id is not None else admin_user_id(conn)
    # A concurrent creator (PostgreSQL) makes our INSERT fail: retry the lookup in a savepoint.
    pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar()
    check_create_run(conn, actor, pid, project, run_id)
    if pid is None:
        try:
            with conn.begin_nested():
                pid = conn.execute(projects.insert().values(
                    name=project, created_at=now, visibility=DEFAULT_VISIBILITY)).inserted_primary_key[0]  # type: ignore[index]
                if actor is not None and actor.user_id is not None:  # the server's own admin needs no membership
                    conn.execute(project_members.insert().values(project_id=pid, user_id=owner, role="admin",
                                                                 created_at=now))
                    record(conn, actor, "member.added", {"user": actor.user, "role": "admin", "new_project": True},
                           project=project)
        except sa.exc.IntegrityError:
            pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar_one()
            check_create_run(conn, actor, pid, project, run_id)
    try:
        with conn.begin_nested():
            conn.execute(runs.insert().values(
                project_id=pid, run_id=run_id, state="running", updated_at=now, rows_final=0,
                pending=False, console_count=0, system_count=0, owner_id=owner,
            ))
            record(conn, actor, "run.created", {"owner": actor.user if actor is not None else None},
                   project=project, run_id=run_id)
    except sa.exc.IntegrityError:
        # Another transaction created it first: appending to it is checked as for any existing run.
        r = _find_run(conn, project, run_id, lock=True)
        check_append(conn, actor, r, project)
        return r
    return _find_run(conn, project, run_id, lock=True)


def position(engine: Engine, project: str, run_id: str) -> dict[str, Any]:
    """Where the store stands for a run (zeros for an unknown run)."""
    validate_project(project)
    validate_run(run_id)
    with engine.connect() as conn:
        return position_of(conn, _find_run(conn, project, run_id))


def _items(body: dict[str, Any], stream: Stream) -> list[Any]:
    items = body.get(stream.field)
    if items is None:
        return []
    if not isinstance(items, list) or (stream.limit is not None and len(items) > stream.limit):
        limit = "" if stream.limit is None else f" of at most {stream.limit} records"
        raise bad_request(f"{stream.field} must be a list{limit}")
    return items


def _check_blobs(batch: dict[str, Records], missing_media: Callable[[list[str]], list[str]]) -> None:
    """Every byte the batch's records name must already be stored."""
    need = list(dict.fromkeys(sha for s in STREAMS for _i, rec in batch[s.field] for sha in s.blobs(rec)))
    for start in range(0, len(need), 100_000):
        missing = missing_media(need[start:start + 100_000])
        if missing:
            raise bad_request(f"{len(missing)} blob(s) the records name are not stored, e.g. {missing[0]}: "
                              "upload them first (POST /api/v1/media/missing, PUT /api/v1/media/<sha256>)",
                              code="missing_blob")


def apply_batch(engine: Engine, project: str, run_id: str, body: Any,
                missing_media: Callable[[list[str]], list[str]], actor: Principal | None = None) -> dict[str, Any]:
    """Apply one batch (see PROTOCOL.md) through the write ``engine`` in one transaction; return the
    new position. ``missing_media`` says which of some sha256s the media store lacks. ``actor`` is
    who sends it (None: the embedded store, acting as the server's admin); what it stores is
    recorded in the audit log in the same transaction."""
    validate_project(project)
    validate_run(run_id)
    if not isinstance(body, dict):
        raise bad_request("the batch must be a JSON object")
    items = {s.field: _items(body, s) for s in STREAMS}
    meta = body.get("run")
    if meta is not None and not isinstance(meta, dict):
        raise bad_request("run must be an object")
    meta_values = prep_run(meta) if meta else {}
    w = None if body.get("writer") is None else prep_writer(body["writer"])
    if w is not None and meta:
        raise bad_request("a shared run's writer sends its fold (writer.fold), not the run's metadata (run)")
    # Validate and encode everything before the transaction: bad input never holds the write lock.
    batch = {s.field: s.prepare(items[s.field]) for s in STREAMS}
    _check_blobs(batch, missing_media)
    raw = {idx: dumps(item["row"]) for (idx, _row), item in zip(batch["rows"], items["rows"])} if w else {}
    with engine.begin() as conn:
        r = _get_or_create(conn, project, run_id, actor)
        if w is not None:
            return _apply_writer(conn, r, project, run_id, w, batch, raw, actor)
        if batch["rows"] and writers_positions(conn, r.id):
            raise bad_request(f"run {project}/{run_id} is a shared run: its rows come from its writers "
                              "(a batch with writer)")
        positions = _Positions(conn, r)
        todo: list[tuple[Stream, int, Records]] = []
        for s in STREAMS:
            if not batch[s.field]:
                continue
            n = positions.held(s)
            recs = [x for x in batch[s.field] if x[0] >= n]  # below the position: stored already (a retry)
            if recs and recs[0][0] != n:
                raise conflict(s.gap.format(first=recs[0][0], held=n, project=project, run_id=run_id), positions.read)
            if recs:
                todo.append((s, n, recs))
        upd: dict[str, Any] = dict(meta_values)
        upd.update(keep_edits(r, upd))  # an edit made on the server outlives a file that did not change it
        for s, n, recs in todo:
            upd.update(s.write(conn, r, n, recs))
        upd["updated_at"] = time.time()
        conn.execute(runs.update().where(runs.c.id == r.id).values(**upd))
        if todo or meta_values:
            stored = {s.field: [recs[0][0], recs[-1][0] + 1] for s, _n, recs in todo}
            record(conn, actor, "batch.stored", {**stored, "run": sorted(meta_values)}, project=project, run_id=run_id)
        return position_of(conn, conn.execute(sa.select(runs).where(runs.c.id == r.id)).first())


def _apply_writer(conn: Connection, r: Any, project: str, run_id: str, w: Any, batch: dict[str, Records],
                  raw: dict[int, str], actor: Principal | None) -> dict[str, Any]:
    """A shared run's writer's batch (``writers.py``): every stream checked against the writer's own
    position (a retry changes nothing, a gap is a 409 with that position), stored, the run rebuilt."""
    if int(r.rows_final) and not writers_positions(conn, r.id):
        raise bad_request(f"run {project}/{run_id} holds a single writer's history: a shared run's writer "
                          "cannot join it")
    held = writer_position(conn, r.id, w.label)
    todo: dict[str, Records] = {}
    for s in STREAMS:
        n = int(held[s.field])
        recs = [x for x in batch[s.field] if x[0] >= n]
        if recs and recs[0][0] != n:
            raise conflict(f"writer {w.label}: " + s.gap.format(first=recs[0][0], held=n, project=project,
                                                               run_id=run_id),
                           {**run_position(r), "writers": {w.label: held}})
        if recs:
            todo[s.field] = recs
    by_field = {s.field: s for s in STREAMS}

    def write_records(field: str, recs: Records) -> None:
        s = by_field[field]
        n = s.held(conn, r)  # the run's own position in the stream: a writer's records follow in arrival order
        s.write(conn, r, n, [(n + i, rec) for i, (_idx, rec) in enumerate(recs)])

    upd = store(conn, r, w, held, todo, raw, write_records)
    upd["updated_at"] = time.time()
    conn.execute(runs.update().where(runs.c.id == r.id).values(**upd))
    if todo or w.fold is not None:
        stored = {f: [recs[0][0], recs[-1][0] + 1] for f, recs in todo.items()}
        record(conn, actor, "batch.stored", {**stored, "writer": w.label, "run": sorted(upd)},
               project=project, run_id=run_id)
    return position_of(conn, conn.execute(sa.select(runs).where(runs.c.id == r.id)).first())
