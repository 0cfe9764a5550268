"""A shared run on the server: each writer's stream stored on its own, the run as their merge.

Layer 5 (the server). ``ingest.apply_batch`` calls it for a batch that names a ``writer`` (see
``PROTOCOL.md``, "Shared runs"). What it promises:

* **Per-writer positions.** A shared run's writers are synced one by one, from whichever machine
  sees their files (one shared disk, or each node its own writers from its local disk, in any order
  and interleaving). The server keeps, per (run, writer label), what that writer sent: its own
  position in every stream (``run_writers.position``: rows, pending, console, system, files,
  artifacts, uses, alerts, the digest and state of its fold last sent), its own committed rows
  (``writer_rows``) and its fold without the rows (``run_writers.fold``). A writer's batch is
  checked against the writer's own position (records below it are skipped, a retry changes
  nothing; a gap is a 409 carrying that position), so each writer stream is stored exactly once
  whoever sends it.
* **The run is the merge.** The run's history, summary, config, metric definitions and state are
  computed from the writers' rows and folds by ``wandblite.merge`` (the module replay uses), so
  the server, replay, ``show`` and sync cannot drift: once every writer's stream has landed, the
  run equals ``wandblite.replay`` of all the files together, whatever the order they came in.
* **Merged rows are rebuilt, never frozen.** When a writer's rows land, the run's merged history is
  written again from the first chunk holding a step at or above the lowest step that batch
  touched (``rebuild_history``): a writer synced later that adds keys to, or new steps between,
  rows already merged changes them. The run's metadata (summary included: it is a fold of the
  merged rows) is recomputed when a writer's fold lands, which a sync pass sends last.
* **Console and system records stay per writer**: stored in the run's ``console`` and ``system``
  tables as the writer wrote them (its own text, its own metric names) with its ``writer`` label,
  at run indexes in arrival order (each writer's in its own order). The reads add the prefixes of
  the all-writers view (``[label] `` lines, ``<label>/<metric>`` names) as replay's merged view does.
* **The writers table and crash report** are computed here, not by any one client (no node sees
  every writer): each writer's last batch of a pass carries its facts (``writer.facts``:
  ``wandblite.report.writer_facts`` of its own files), kept in ``run_writers.facts``; the run's
  ``writers`` column is ``report.writers_report`` over them, the rule ``show --json`` applies to
  all the files together.
* Cost: a writer's batch rewrites the merged rows from its lowest step to the end, and a writer's
  fold re-folds the whole merged history (the summary). Measured on a loaded 2-core machine, 2
  writers x 20,000 steps x 10 keys: 23.5 s from one shared disk, 8.8 s + 17.7 s from two nodes,
  against 8.3 s for a single writer's 40,000 rows (the single-writer path is unchanged).
* Files, artifacts, uses and alerts of a writer are stored in the run's tables at the next run
  index, in arrival order; each writer's own count is its position.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.fold import Fold
from wandblite.merge import SharedRun, merge_rows, precedence, rank_key
from wandblite.report import FACT_FIELDS, WRITER_FIELDS, writers_report
from wandblite.server.chunks import CHUNK_ROWS, CHUNK_SHIFT
from wandblite.server.db import dumps
from wandblite.server.errors import ApiError, bad_request
from wandblite.server.history_store import write_rows
from wandblite.server.indexes import add_media_rows
from wandblite.server.media_index import add_refs, row_shas
from wandblite.server.schema import (
    console,
    history_chunks,
    history_pending,
    media_rows,
    run_writers,
    series_chunks,
    system,
    writer_rows,
)
from wandblite.server.wire import clean_text, finite_number, int64, prep_rows, prep_run
from wandblite.vocab import RUN_STATES, WRITER_FOLD_FIELDS, is_number, writer_label_problem

__all__ = ["WRITER_STREAMS", "Writer", "fold_from_wire", "prep_writer", "rebuild_history", "run_metadata",
           "store", "writer_position", "writers_positions"]

#: The streams a writer's position counts (besides ``pending``, ``digest`` and ``state``).
WRITER_STREAMS = ("rows", "console", "system", "files", "artifacts", "uses", "alerts")
_ROWS_PER_WRITE = 4 * CHUNK_ROWS  # merged rows prepared and written at a time (whole chunks)


class Writer:
    """A batch's ``writer`` object, checked: label, primary, update_finish_state, and (the last batch of
    a pass) its fold, state, facts (``wandblite.report.writer_facts``) and digest."""

    __slots__ = ("digest", "facts", "fold", "label", "primary", "state", "update_finish_state")

    def __init__(self, label: str, primary: bool, ufs: bool, fold: dict[str, Any] | None, state: str | None,
                 digest: str | None, facts: dict[str, Any] | None = None) -> None:
        self.label, self.primary, self.update_finish_state = label, primary, ufs
        self.fold, self.state, self.digest, self.facts = fold, state, digest, facts


def prep_writer(w: Any) -> Writer:
    """Check a batch's ``writer`` object (400 when malformed)."""
    if not isinstance(w, dict):
        raise bad_request("writer must be an object")
    problem = writer_label_problem(w.get("label"))
    if problem is not None:
        raise bad_request(f"writer.label: {problem}")
    for k in ("primary", "update_finish_state"):
        if type(w.get(k)) is not bool:
            raise bad_request(f"writer.{k} must be a boolean")
    fold = w.get("fold")
    state = w.get("state")
    digest = w.get("digest")
    if fold is not None:
        if not isinstance(fold, dict) or not set(fold) <= set(WRITER_FOLD_FIELDS):
            raise bad_request(f"writer.fold must be an object with some of {', '.join(WRITER_FOLD_FIELDS)}")
        if state not in RUN_STATES:
            raise bad_request(f"writer.state must be one of {sorted(RUN_STATES)}")
        digest = clean_text(digest, "writer.digest", 128)
        # A fold the merge cannot read is refused here (400), not in the transaction: merged alone.
        merged = SharedRun({w["label"]: fold_from_wire(fold)})
        try:
            _record(merged.fold, merged.finish({w["label"]: state}))
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the merge trips on, the client sent it
            raise bad_request(f"writer.fold cannot be merged: {type(exc).__name__}: {exc}") from None
    elif state is not None or digest is not None or w.get("facts") is not None:
        raise bad_request("writer.state, writer.facts and writer.digest come with writer.fold")
    facts = None
    if w.get("facts") is not None:
        facts = _facts(w["facts"])
        # who the writer is and its state are the batch's, checked above
        facts.update(label=w["label"], primary=w["primary"], update_finish_state=w["update_finish_state"], state=state)
    return Writer(w["label"], w["primary"], w["update_finish_state"], fold, state, digest, facts)


def _opt(v: Any, ok: bool, what: str, expected: str) -> Any:
    if v is not None and not ok:
        raise bad_request(f"writer.facts.{what} must be {expected} or null")
    return v


def _facts(f: Any) -> dict[str, Any]:
    """A writer's facts for the run's writers table and crash report (``wandblite.report.writer_facts``),
    checked field by field (400 when malformed): what ``report.writers_report`` reads, typed."""
    if not isinstance(f, dict):
        raise bad_request("writer.facts must be an object")
    missing = [k for k in (*WRITER_FIELDS, *FACT_FIELDS) if k not in f]
    if missing:
        raise bad_request(f"writer.facts lacks {', '.join(missing)}")
    out = {k: f[k] for k in (*WRITER_FIELDS, *FACT_FIELDS)}
    for k in ("host", "signal"):
        out[k] = clean_text(f[k], f"writer.facts.{k}", 1024)
    for k in ("pid", "exit_code"):
        _opt(f[k], type(f[k]) is int and int64(f[k]) is not None, k, "an integer")
    for k in ("started_at", "last_record", "last_alive"):
        _opt(f[k], finite_number(f[k]) is not None, k, "a finite number")
    for k in ("steps", "rows", "attempts"):
        if type(f[k]) is not int or not 0 <= f[k] < 1 << 62:
            raise bad_request(f"writer.facts.{k} must be a non-negative integer")
    _opt(f["error"], isinstance(f["error"], dict), "error", "an object")
    lines = f["last_lines"]
    if not isinstance(lines, list) or len(lines) > 20 or not all(isinstance(x, str) for x in lines):
        raise bad_request("writer.facts.last_lines must be a list of at most 20 strings")
    out["last_lines"] = [clean_text(x, "writer.facts.last_lines", 1 << 16) for x in lines]
    if not isinstance(f["last_memory"], dict):
        raise bad_request("writer.facts.last_memory must be an object")
    rss = f["rss_mb"]
    _opt(rss, isinstance(rss, dict) and set(rss) == {"first", "last", "max", "samples"}
         and all(is_number(rss[k]) for k in ("first", "last", "max")) and type(rss["samples"]) is int,
         "rss_mb", 'an object {"first", "last", "max", "samples"}')
    return out


def _dict(v: Any, what: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise bad_request(f"writer.fold.{what} must be an object")
    return v


def _num(v: Any, what: str) -> float | None:
    if v is None:
        return None
    if not is_number(v):
        raise bad_request(f"writer.fold.{what} must be a number or null")
    return float(v)


def fold_from_wire(d: dict[str, Any]) -> Fold:
    """A ``Fold`` holding what ``wandblite.merge`` reads of a writer (``vocab.WRITER_FOLD_FIELDS``),
    from the ``writer.fold`` the client sent; 400 for a malformed one."""
    f = Fold()
    f.meta = _dict(d.get("meta"), "meta")
    f.config = _dict(d.get("config"), "config")
    f.summary = _dict(d.get("summary"), "summary")
    f.files = _dict(d.get("files"), "files")
    attempts = d.get("attempts") or []
    if not isinstance(attempts, list) or not all(isinstance(a, dict) for a in attempts):
        raise bad_request("writer.fold.attempts must be a list of objects")
    f.attempts = attempts
    ss = d.get("summary_set") or []
    if not isinstance(ss, list) or not all(isinstance(k, str) for k in ss):
        raise bad_request("writer.fold.summary_set must be a list of strings")
    f.summary_set = set(ss)
    log = d.get("metric_log") or []
    if not isinstance(log, list) or not all(isinstance(x, list) and len(x) == 2 and type(x[0]) is int
                                            and isinstance(x[1], dict) for x in log):
        raise bad_request("writer.fold.metric_log must be a list of [step, spec]")
    f.metric_log = [(int(s), spec) for s, spec in log]
    ex = d.get("exit")
    if ex is not None and not isinstance(ex, dict):
        raise bad_request("writer.fold.exit must be an object or null")
    f.exit = ex
    w = d.get("writer")
    if w is not None and not isinstance(w, dict):
        raise bad_request("writer.fold.writer must be an object or null")
    f.writer = w
    for k in ("step", "events"):
        v = d.get(k, 0)
        if type(v) is not int:
            raise bad_request(f"writer.fold.{k} must be an integer")
        setattr(f, k, v)
    f.first_ts = _num(d.get("first_ts"), "first_ts")
    f.last_ts = _num(d.get("last_ts"), "last_ts")
    f.last_heartbeat = _num(d.get("last_heartbeat"), "last_heartbeat")
    f.heartbeat_interval = _num(d.get("heartbeat_interval"), "heartbeat_interval")
    return f


# --------------------------------------------------------------------------- positions


def _zero() -> dict[str, Any]:
    return {**dict.fromkeys(WRITER_STREAMS, 0), "pending": False, "digest": None, "state": None}


def writer_position(conn: Connection, pk: int | None, label: str) -> dict[str, Any]:
    """Writer ``label``'s position in run ``pk`` (zeros for a writer, or run, not seen yet)."""
    if pk is None:
        return _zero()
    text = conn.execute(sa.select(run_writers.c.position).where(
        run_writers.c.run == pk, run_writers.c.label == label)).scalar()
    return {**_zero(), **json.loads(text)} if text is not None else _zero()


def writers_positions(conn: Connection, pk: int | None) -> dict[str, dict[str, Any]]:
    """label -> position of every writer of run ``pk`` the server has heard of."""
    if pk is None:
        return {}
    q = sa.select(run_writers.c.label, run_writers.c.position).where(run_writers.c.run == pk)
    return {label: {**_zero(), **json.loads(text)} for label, text in conn.execute(q)}


# --------------------------------------------------------------------------- storing a batch

#: A stream's records in a batch: (idx, prepared record).
Records = list[tuple[int, Any]]


def store(conn: Connection, r: Any, w: Writer, held: dict[str, Any], todo: dict[str, Records],
          raw: dict[int, str], write_records: Any) -> dict[str, Any]:
    """Store writer ``w``'s new records ``todo`` (stream -> records from its position ``held`` on,
    checked by the caller; ``raw``: each row's JSON text by index) in run ``r``, rebuild the merged history from the lowest step they
    touch, recompute the run's metadata if ``w`` carries its fold; return the run row's new values.

    ``write_records(field, held, records)`` stores a files/artifacts/uses/alerts stream's records
    in the run's table from the run's own position ``held`` (ingest's writers)."""
    pk = r.id
    pos = dict(held)
    upd: dict[str, Any] = {}
    low: int | None = None  # the lowest step this batch adds or replaces
    recs = todo.get("rows")
    if recs:
        if pos["pending"]:
            old = conn.execute(sa.select(writer_rows.c.step).where(
                writer_rows.c.run == pk, writer_rows.c.label == w.label, writer_rows.c.idx == pos["rows"])).scalar()
            if old is not None:
                low = int(old)
            conn.execute(writer_rows.delete().where(writer_rows.c.run == pk, writer_rows.c.label == w.label,
                                                    writer_rows.c.idx >= pos["rows"]))
        params = []
        for idx, row in recs:
            if row.step is None:
                raise bad_request(f"rows: a shared run's writer's row {idx} has no integer _step")
            params.append({"run": pk, "label": w.label, "idx": idx, "step": row.step, "final": row.final,
                           "row": raw[idx]})
            low = row.step if low is None else min(low, row.step)
        for i in range(0, len(params), 5000):
            conn.execute(writer_rows.insert(), params[i:i + 5000])
        last_final = recs[-1][1].final
        pos["rows"] = pos["rows"] + len(recs) - (0 if last_final else 1)
        pos["pending"] = not last_final
    run_console, run_system = int(r.console_count), int(r.system_count)
    if todo.get("console"):
        conn.execute(console.insert(), [{"run": pk, "idx": run_console + i, **rec, "writer": w.label}
                                        for i, (_idx, rec) in enumerate(todo["console"])])
        pos["console"] += len(todo["console"])
        upd["console_count"] = run_console + len(todo["console"])
    if todo.get("system"):
        conn.execute(system.insert(), [{"run": pk, "idx": run_system + i, **rec, "writer": w.label}
                                       for i, (_idx, rec) in enumerate(todo["system"])])
        pos["system"] += len(todo["system"])
        upd["system_count"] = run_system + len(todo["system"])
    for field in ("files", "artifacts", "uses", "alerts"):
        got = todo.get(field)
        if got:
            write_records(field, got)
            pos[field] += len(got)
    if w.fold is not None:
        pos["digest"], pos["state"] = w.digest, w.state
    values = {"is_primary": w.primary, "update_finish_state": w.update_finish_state, "position": dumps(pos)}
    if w.fold is not None:
        values["fold"] = dumps(w.fold)
        values["facts"] = None if w.facts is None else dumps(w.facts)
    done = conn.execute(run_writers.update().where(run_writers.c.run == pk, run_writers.c.label == w.label)
                        .values(**values)).rowcount
    if not done:
        conn.execute(run_writers.insert().values(run=pk, label=w.label, **values))
    if low is not None:
        upd.update(rebuild_history(conn, pk, low))
    if w.fold is not None:
        upd.update(run_metadata(conn, pk))
    return upd


# --------------------------------------------------------------------------- the merge


def _folds(conn: Connection, pk: int, with_folds: bool,
           facts: dict[str | None, dict[str, Any]] | None = None) -> tuple[dict[str | None, Fold], dict[str | None, str]]:
    """Every writer's fold (only its identity when its fold was not sent yet, or ``with_folds`` is
    False) and own state (running until its fold says otherwise); each writer's facts into ``facts``
    (those sent), when given."""
    folds: dict[str | None, Fold] = {}
    states: dict[str | None, str] = {}
    c = run_writers.c
    cols = [c.label, c.is_primary, c.update_finish_state, c.position] + ([c.fold, c.facts] if with_folds else [])
    for row in conn.execute(sa.select(*cols).where(c.run == pk).order_by(c.label)):
        if facts is not None and with_folds and row.facts is not None:
            facts[row.label] = json.loads(row.facts)
        f = fold_from_wire(json.loads(row.fold)) if with_folds and row.fold is not None else Fold()
        if f.writer is None:
            f.writer = {"label": row.label, "primary": bool(row.is_primary),
                        "update_finish_state": bool(row.update_finish_state)}
        folds[row.label] = f
        states[row.label] = json.loads(row.position).get("state") or "running"
    return folds, states


def _merged(conn: Connection, pk: int, folds: dict[str | None, Fold], from_step: int | None) -> Iterator[dict[str, Any]]:
    """The merged rows of the run's writers, from ``from_step`` on (all with None), in step order."""
    labels = list(folds)

    def rows_of(label: str | None) -> Iterator[dict[str, Any]]:
        q = sa.select(writer_rows.c.row).where(writer_rows.c.run == pk, writer_rows.c.label == label)
        if from_step is not None:
            q = q.where(writer_rows.c.step >= from_step)
        for (text,) in conn.execute(q.order_by(writer_rows.c.idx)).fetchall():
            yield json.loads(text)

    return merge_rows([rows_of(lab) for lab in labels], rank=lambda i: rank_key(labels[i], folds[labels[i]]))


def rebuild_history(conn: Connection, pk: int, low: int) -> dict[str, Any]:
    """Write the run's merged history again from the chunk holding the first merged row of a step
    ``>= low`` on (the rows before it are unchanged: no writer changed a step below ``low``).
    Returns the run row's new ``rows_final`` and ``pending``."""
    w = writer_rows.c
    before = int(conn.execute(sa.select(sa.func.count(sa.distinct(w.step))).where(w.run == pk, w.step < low))
                 .scalar_one())
    lo = (before >> CHUNK_SHIFT) << CHUNK_SHIFT
    start = conn.execute(sa.select(w.step).where(w.run == pk).distinct().order_by(w.step)
                         .offset(lo).limit(1)).scalar()
    conn.execute(history_chunks.delete().where(history_chunks.c.run == pk, history_chunks.c.chunk >= lo >> CHUNK_SHIFT))
    conn.execute(series_chunks.delete().where(series_chunks.c.run == pk, series_chunks.c.chunk >= lo >> CHUNK_SHIFT))
    conn.execute(history_pending.delete().where(history_pending.c.run == pk))
    conn.execute(media_rows.delete().where(media_rows.c.run == pk, media_rows.c.idx >= lo))
    n = lo
    if start is not None:
        folds, _states = _folds(conn, pk, with_folds=False)
        part: list[dict[str, Any]] = []
        for row in _merged(conn, pk, folds, int(start)):
            part.append({"idx": n + len(part), "final": True, "row": row})
            if len(part) == _ROWS_PER_WRITE:
                n = _write(conn, pk, n, part)
                part = []
        if part:
            n = _write(conn, pk, n, part)
    return {"rows_final": n, "pending": False}


def _write(conn: Connection, pk: int, held: int, items: list[dict[str, Any]]) -> int:
    recs = prep_rows(items)
    write_rows(conn, pk, held, False, recs)
    add_media_rows(conn, pk, [(idx, row.step, row.media) for idx, row in recs if row.media])
    add_refs(conn, pk, row_shas(row for _idx, row in recs))  # which blobs the run names (media_index.py)
    return held + len(recs)


def run_metadata(conn: Connection, pk: int) -> dict[str, Any]:
    """The run row's metadata columns from the merge of its writers (``wandblite.merge.SharedRun``
    over every merged row, then ``finish`` with each writer's state), as ``prep_run`` stores them,
    and its ``writers`` (``wandblite.report.writers_report`` over the writers' facts)."""
    facts: dict[str | None, dict[str, Any]] = {}
    folds, states = _folds(conn, pk, with_folds=True, facts=facts)
    merged = SharedRun(folds)
    for row in _merged(conn, pk, folds, None):
        merged.add_row(row)
    state = merged.finish(states)
    out = _record(merged.fold, state)
    # The writers table and crash report: the one rule ``show --json`` uses, over each writer's own
    # facts (only the writers that sent theirs), in the merge's precedence as replay lists them.
    known = [facts[lab] for lab in precedence(folds) if lab in facts]
    out["writers"] = dumps(writers_report(known, state)) if known else None
    return out


def _record(fold: Fold, state: str) -> dict[str, Any]:
    """``run_record`` of a merged fold, typed for the store's columns and encoded (``prep_run``)."""
    from wandblite.replay import typed_run_record  # the one projection of a fold (replay, show, sync)

    return prep_run(typed_run_record(fold, state))

