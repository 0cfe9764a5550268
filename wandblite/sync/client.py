"""``wandblite sync``: upload runs exactly once, one-shot or tailing live runs (``--watch``).

Layer 5. Imports the core (runfile, fold, replay's grace rule and run record, media, vocab) and
``wandblite.sync.transport``; nothing from ``wandblite.server`` (the embedded store is reached
through ``wandblite.embedded.LocalTransport``, which the CLI passes in).

How a run is synced (``Syncer.sync_tail``; the protocol is ``wandblite/server/PROTOCOL.md``):

1. ``RunTail`` reads the run's segments from where it stopped last time (``read_events`` with
   ``start=(segment, offset)``; a fresh tail starts at the beginning) and feeds a ``Fold``. Every
   history row the fold flushes gets the next index, so indexes are the order of the fold, the
   same on every machine and every re-read; console and system records are indexed by their order
   in the files.
2. Before the first item is sent the server is asked for the run's position; items below it are
   folded but never sent. Items go in batches of ``batch_size``; media referenced by a batch's
   rows are uploaded first (only those the server lacks). The tail advances only on the server's
   acknowledgement (the returned position).
3. At the end of the readable bytes the run's state is decided (``Fold.state`` with the writer's
   lock probed and the heartbeat grace of ``wandblite.replay``): a running run's pending row is
   held back; a crashed run's pending row is sent as provisional (``final: false``), computed on a
   copy of the fold so that a later resume still merges into it. The final batch carries the run's
   metadata and its digest; when the server's digest is the same, no metadata is sent.

4. The records of saved files, artifacts and alerts (FILES entries, ARTIFACT, USE, ALERT) are numbered per stream by their
   order in the files and sent like console records, in the same batches; the bytes they name
   (saved files, artifact objects) are uploaded first, only those the server lacks.

Blobs (media, saved files, artifact objects) of any size up to the server's limit are streamed from
disk, never read into memory whole: the file is opened once, hashed through that descriptor, and
the same descriptor is rewound and sent (``Transport.put_media``), so the bytes checked are the
bytes sent even if the SDK renames a newer copy over the file meanwhile.

A ``GapError`` (the server's position moved under us) resets the tail and the run is read again
from the start; a ``RejectedError`` marks the run bad (reported, others go on); an
``UnavailableError`` (server down after retries) stops the pass with a clear message.

A shared run (several writers, ``mode="shared"``) is synced writer by writer: one ``WriterTail``
per writer stream visible here, each a ``RunTail`` over that writer's files alone, with the
writer's own position on the server (``position["writers"][label]``) and its fold sent at the end
of each pass instead of the run's metadata. The server merges the writers (``wandblite.merge``),
so a machine needs to see only its own writers' files (node-local disks), and syncs from
different machines in any order give the server the run one replay of all the files gives
(PROTOCOL.md, "Shared runs: one position per writer"). ``--watch`` starts a tail for a writer
whose files appear later.

One-shot syncs keep a small cache per (store, run directory) under ``<home>/sync-state/``: when a
finished, failed or crashed run's segment files have not changed since a sync the server
acknowledged, and the server still reports exactly that position and digest, the run is not read
again. The cache only ever saves work; the server's position decides what is sent.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from wandblite import events as ev
from wandblite.fold import Fold
from wandblite.runfile import find_runs, probe_writer, read_events, segments, validate_run_id, writer_streams
from wandblite.sync.transport import (
    GapError,
    RejectedError,
    SyncError,
    Transport,
    UnavailableError,
)
from wandblite.vocab import (
    FINAL_STATES,
    WRITER_FOLD_FIELDS,
    home_dir,
    is_number,
    parse_segment,
    writer_segment_name,
)

__all__ = ["RunResult", "RunTail", "Syncer", "WriterTail", "discover", "run_digest", "tails_for"]


#: Records per batch: large enough that a batch fills whole chunks of the server's compact history
#: (2,048 rows) and the per-request cost is small; about 2 MB of msgpack (3 MB as JSON) for 10 scalars a row.
DEFAULT_BATCH = 8192
#: A batch body larger than this is sent in parts (the server refuses JSON bodies over 32 MiB).
MAX_BATCH_BYTES = 16 << 20
_CHUNK = 1 << 20  # bytes read at a time when hashing a blob

#: The record streams of saved files, artifacts, their uses and alerts, as the batch and the position
#: name them, in the order they are sent.
RECORD_STREAMS = ("files", "artifacts", "uses", "alerts")
_RECORD_KINDS = {ev.FILES: "files", ev.ARTIFACT: "artifacts", ev.USE: "uses", ev.ALERT: "alerts"}


def _record_items(stream: str, data: Any) -> list[dict[str, Any]]:
    """The wire items of one FILES/ARTIFACT/USE/ALERT record (without ``idx``).

    A FILES record holds several entries, one item each; the others are one item. A malformed
    payload (not what ``wandblite.events`` documents) gives no item, the same on every read, so
    indexes stay deterministic. A file item carries its bytes' place in the run directory as
    ``_path``, which never leaves the client.
    """
    if not isinstance(data, (list, tuple)) or len(data) < 2:
        return []
    ts, payload = data[0], data[1]
    ts = ts if is_number(ts) and ts == ts else None
    if stream == "files":
        if not isinstance(payload, list):
            return []
        return [{"name": f.get("name"), "sha256": f.get("sha256"), "size": f.get("size"), "policy": f.get("policy"),
                 "ts": ts, "_path": f.get("path")} for f in payload if isinstance(f, dict)]
    if not isinstance(payload, dict):
        return []
    item = {k: v for k, v in payload.items() if k not in ("idx", "ts")}
    item["ts"] = ts
    return [item]


def _grace(heartbeat: float | None) -> float:
    from wandblite.replay import heartbeat_grace as replay_grace  # one rule for replay, show and sync

    return float(replay_grace(heartbeat))


def run_digest(meta: dict[str, Any]) -> str:
    """A digest of the metadata a batch carries: equal digests mean nothing to update."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True, allow_nan=True, default=str).encode()).hexdigest()[:32]


def discover(paths: list[str] | tuple[str, ...]) -> list[Path]:
    """Every run directory below ``paths``, each once, in path order."""
    seen: dict[Path, None] = {}
    for p in paths:
        for r in find_runs(p):
            seen.setdefault(r.resolve(), None)
    return list(seen)


@dataclass
class RunResult:
    path: str
    project: str | None = None
    run_id: str | None = None
    state: str | None = None
    ok: bool = True
    error: str | None = None
    rows: int = 0  # rows sent (final and provisional)
    console: int = 0
    system: int = 0
    media: int = 0  # media blobs uploaded
    files: int = 0  # FILES entries sent (saved files)
    artifacts: int = 0  # ARTIFACT records sent
    uses: int = 0  # USE records sent
    alerts: int = 0  # ALERT records sent
    meta_updated: bool = False
    unchanged: bool = False  # skipped through the sync-state cache
    position: dict[str, Any] = field(default_factory=dict)
    damage: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RunTail:
    """One run being read incrementally: its fold, where reading resumes, and the server's position."""

    #: The writer stream read (None: a single writer's run; ``WriterTail``: one writer of a shared run).
    label: str | None = None

    def __init__(self, path: Path, project_override: str | None = None) -> None:
        self.path = path
        self.project_override = project_override
        self.reset()

    def reset(self) -> None:
        self.fold = Fold()
        self.start: tuple[int, int] | None = None
        self.positions: dict[int, int] = {}
        self.console_n = 0
        self.system_n = 0
        self.records_n = dict.fromkeys(RECORD_STREAMS, 0)  # files, artifacts, uses, alerts read so far
        self.rss: dict[str, Any] | None = None  # a shared run's writer's RSS summary (``report.rss_step``)
        self.damage: list[dict[str, Any]] = []
        self.server: dict[str, Any] | None = None
        self.sizes: dict[str, int] = {}
        self.state: str | None = None
        self.bad: str | None = None
        self.bytes_done = 0  # bytes of the segments read so far, for the progress bar

    # ------------------------------------------------------------ identity
    @property
    def project(self) -> str:
        return self.project_override or self.fold.meta.get("project") or "uncategorized"

    @property
    def run_id(self) -> str:
        return str(self.fold.meta.get("id") or self.path.name)

    def stat(self) -> dict[str, int]:
        from wandblite.replay import segment_sizes

        return segment_sizes(self.path)

    # ------------------------------------------------------------ reading
    def read(self) -> Iterator[tuple[str, int, Any]]:
        """New items since the last read: ``("row", idx, row)``, ``("console", idx, rec)``, ``("system", idx, rec)``.

        Only a completely consumed iterator moves the resume point (a partly read tail is reset by
        the caller), so no record is ever skipped.
        """
        sizes = self.stat()
        fold = self.fold
        apply = fold.apply
        positions: dict[int, int] = {}

        def report(seg: int, d: Any) -> None:
            info = {"file": writer_segment_name(self.label, seg), "segment": seg, **d.as_dict()}
            if "torn" not in str(info.get("reason", "")):
                self.damage.append(info)  # a torn tail of a live file is just its end, for now

        from wandblite.report import rss_step  # the crash report's RSS rule (a shared run's writer)

        CONSOLE, SYSTEM = ev.CONSOLE, ev.SYSTEM  # noqa: N806 - locals for the loop
        seg_base: dict[int, int] = {}  # segment number -> bytes of the segments before it
        total = 0
        for num, size in sorted(((parse_segment(name) or (None, 0))[1], size) for name, size in sizes.items()):
            seg_base[num] = total
            total += size
        for e in read_events(self.path, start=self.start, reporter=report, positions=positions, label=self.label):
            kind = e.kind
            self.bytes_done = seg_base.get(e.segment, 0) + e.offset
            if kind == CONSOLE:
                d = e.data
                yield "console", self.console_n, {"idx": self.console_n, "ts": d[0], "stream": d[1], "text": d[2]}
                fold.apply(kind, d)
                self.console_n += 1
                continue
            if kind == SYSTEM:
                d = e.data
                yield "system", self.system_n, {"idx": self.system_n, "ts": d[0], "metrics": d[1]}
                fold.apply(kind, d)
                if self.label is not None and isinstance(d[1], dict):
                    self.rss = rss_step(self.rss, d[1])
                self.system_n += 1
                continue
            stream = _RECORD_KINDS.get(kind)
            if stream is not None:
                for item in _record_items(stream, e.data):
                    item["idx"] = self.records_n[stream]
                    yield stream, self.records_n[stream], item
                    self.records_n[stream] += 1
                fold.apply(kind, e.data)
                continue
            before = fold.rows
            rows = apply(kind, e.data)
            for i, row in enumerate(rows):
                yield "row", before + i, row
        if positions:
            self.positions.update(positions)
            last = max(self.positions)
            self.start = (last, self.positions[last])
        self.sizes = sizes

    def decide_state(self, now: float | None = None) -> tuple[str, Fold, dict[str, Any] | None]:
        """The state now, the fold describing it, and a crashed run's pending row (else None).

        For a crashed run with a pending row the row is flushed on a copy of the fold, so a later
        resume of the run (a new segment) still merges into the pending row, as the writer does.
        """
        fold = self.fold
        alive = probe_writer(self.path, self.label)
        state = fold.state(time.time() if now is None else now, alive, _grace(fold.heartbeat_interval))
        row = None
        if state == "crashed" and fold.pending is not None:
            fold = copy.deepcopy(fold)
            row = fold.flush_pending()
        return state, fold, row

    def metadata(self, state: str, fold: Fold) -> dict[str, Any]:
        """The run's metadata as a batch carries it: ``wandblite.replay.run_record``, typed for the wire, and its digest."""
        from wandblite.replay import typed_run_record  # the one projection of a fold, shared with replay

        out = typed_run_record(fold, state)
        out["digest"] = run_digest(out)
        return out


    # ------------------------------------------------------------ the batch's view of the run
    def own(self, position: dict[str, Any]) -> dict[str, Any]:
        """This tail's part of the run's position as the server reports it (the whole, for a run)."""
        return position

    def batch_fields(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        """The fields a batch of this tail carries besides its records: the run's metadata, if sent."""
        return {} if meta is None else {"run": meta}


class WriterTail(RunTail):
    """One writer's stream of a shared run (module docstring): read and folded on its own as a run
    is, sent with its label; its position is the writer's own (``position["writers"][label]``), and
    its last batch of a pass carries its fold instead of the run's metadata. The server merges the
    writers (``wandblite.merge``), so this machine needs to see only its own writers' files."""

    def __init__(self, path: Path, label: str, project_override: str | None = None) -> None:
        self.label = label
        self.run_position: dict[str, Any] = {}
        super().__init__(path, project_override)

    def stat(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for seg in segments(self.path, self.label):
            try:
                out[seg.name] = seg.stat().st_size
            except OSError:
                continue
        return out

    def own(self, position: dict[str, Any]) -> dict[str, Any]:
        self.run_position = position
        mine = (position.get("writers") or {}).get(self.label)
        if mine is None:
            return {"rows": 0, "pending": False, "console": 0, "system": 0, "digest": None, "state": None,
                    **dict.fromkeys(RECORD_STREAMS, 0)}
        return dict(mine)

    def identity(self) -> dict[str, Any]:
        from wandblite.merge import identity

        who = identity(self.label, self.fold)
        return {"label": self.label, "primary": bool(who["primary"]),
                "update_finish_state": bool(who["update_finish_state"])}

    def batch_fields(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        return {"writer": {**self.identity(), **(meta or {})}}

    def metadata(self, state: str, fold: Fold) -> dict[str, Any]:
        """The writer's fold as the server's merge reads it (``vocab.WRITER_FOLD_FIELDS``), its own
        state, its facts for the run's writers table and crash report (``report.writer_facts``,
        computed by the server with every writer's: ``report.writers_report``), and their digest."""
        from wandblite.console import join_records
        from wandblite.replay import writer_record
        from wandblite.report import jsonable, writer_facts

        wire: dict[str, Any] = {k: getattr(fold, k) for k in WRITER_FOLD_FIELDS}
        wire["summary_set"] = sorted(fold.summary_set)
        wire["metric_log"] = [[s, spec] for s, spec in fold.metric_log]
        facts = writer_facts(writer_record(self.label, fold, state), join_records(fold.console_tail), self.rss)
        out = {"fold": wire, "state": state, "facts": jsonable(facts)}
        out["digest"] = run_digest(out)
        return out


def tails_for(path: Path, project: str | None = None) -> list[RunTail]:
    """The tails that read ``path``: one ``WriterTail`` per writer stream of a shared run (those
    visible here), else one ``RunTail``."""
    labels = [label for label in writer_streams(path) if label is not None]
    if labels:
        return [WriterTail(path, label, project) for label in labels]
    return [RunTail(path, project)]


def _has_nested(row: dict[str, Any]) -> bool:
    for v in row.values():
        t = type(v)
        if t is dict or t is list:
            return True
    return False


def _media_refs(run_dir: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Media refs of rows, with the refs inside referenced tables (media in table cells)."""
    from wandblite.media import iter_refs, refs_with_children  # the core's own walk of table cells

    refs = [r for row in rows if _has_nested(row) for r in iter_refs(row)]
    if not refs:
        return []
    return list(refs_with_children(run_dir, refs))


@dataclass
class _Batch:
    """One batch on its way: its records, its body, and the body as the transport sends it (or None)."""

    rows: list[dict[str, Any]]
    cons: list[dict[str, Any]]
    syss: list[dict[str, Any]]
    meta: dict[str, Any] | None
    recs: dict[str, list[dict[str, Any]]]
    body: dict[str, Any]
    encoded: Any


class Syncer:
    """Syncs runs through one transport. Not thread-safe; one Syncer per sync command."""

    def __init__(self, transport: Transport | None, batch_size: int = DEFAULT_BATCH, project: str | None = None,
                 use_cache: bool = True, progress: Callable[[int], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.transport = transport
        self.batch_size = max(1, batch_size)
        self.project = project
        self.use_cache = use_cache and transport is not None
        self.progress = progress
        self.log = log or (lambda _m: None)
        self.known_media: set[str] = set()  # blobs the server already holds (asked or uploaded)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wandblite-sync")

    # ------------------------------------------------------------ cache
    def _cache_path(self, path: Path) -> Path | None:
        if self.transport is None:
            return None
        key = hashlib.sha256(f"{self.transport.target}\0{path.resolve()}".encode()).hexdigest()[:40]
        return home_dir() / "sync-state" / f"{key}.json"

    def _cache_load(self, path: Path) -> dict[str, Any] | None:
        cp = self._cache_path(path)
        if cp is None or not self.use_cache:
            return None
        try:
            return dict(json.loads(cp.read_text()))
        except (OSError, ValueError):
            return None

    def _cache_store(self, tail: RunTail) -> None:
        cp = self._cache_path(tail.path)
        if cp is None or not self.use_cache or tail.server is None or tail.state not in FINAL_STATES:
            return
        data = {"sizes": tail.sizes, "project": tail.project, "run_id": tail.run_id, "state": tail.state,
                "position": {k: tail.server.get(k) for k in ("rows", "pending", "console", "system", "digest",
                                                             *RECORD_STREAMS)}}
        try:
            cp.parent.mkdir(parents=True, exist_ok=True)
            tmp = cp.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, cp)
        except OSError:
            pass  # the cache only saves time

    def _unchanged(self, tail: RunTail, res: RunResult) -> bool:
        c = self._cache_load(tail.path)
        if not c or c.get("state") not in FINAL_STATES or c.get("sizes") != tail.stat() or self.transport is None:
            return False
        if not set(RECORD_STREAMS) <= set(c.get("position") or ()):
            return False  # written before files/artifacts/alerts were synced: read the run once more
        if self.project and c.get("project") != self.project:
            return False
        pos = self.transport.position(str(c["project"]), str(c["run_id"]))
        if {k: pos.get(k) for k in c["position"]} != c["position"]:
            return False
        res.project, res.run_id, res.state, res.position, res.unchanged = c["project"], c["run_id"], c["state"], pos, True
        return True

    # ------------------------------------------------------------ syncing
    def sync_path(self, path: Path, attempts: int = 3) -> RunResult:
        """One-shot sync of one run directory; never raises for a bad run (see ``RunResult.error``).

        A shared run's writers visible here are synced one after the other, each from its own
        position on the server; the result adds up what was sent for all of them, and its state is
        the run's (the server's merge of every writer it has heard of)."""
        tails = tails_for(path, self.project)
        res = RunResult(str(path))
        try:
            if len(tails) == 1 and tails[0].label is None:
                tail = tails[0]
                if self.use_cache and self._unchanged(tail, res):
                    if self.progress:
                        self.progress(sum(tail.stat().values()))
                    return res
                self._sync_retrying(path, tail, res, attempts)
                self._cache_store(tail)
                return res
            damage: list[dict[str, Any]] = []
            for tail in tails:
                self._sync_retrying(path, tail, res, attempts)
                damage.extend(res.damage)
            res.damage = damage
            last = tails[-1]
            if isinstance(last, WriterTail) and last.run_position:
                res.state = last.run_position.get("state") or res.state
                res.position = dict(last.run_position)
        except (RejectedError, UnavailableError, SyncError) as exc:
            res.ok, res.error = False, str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad run never stops the others
            res.ok, res.error = False, f"{type(exc).__name__}: {exc}"
        return res

    def _sync_retrying(self, path: Path, tail: RunTail, res: RunResult, attempts: int) -> None:
        for attempt in range(attempts):
            try:
                self.sync_tail(tail, res)
                return
            except GapError as exc:
                # Someone else moved the server's position: read the run again from the start.
                self.log(f"{path}: {exc}; re-reading the run (attempt {attempt + 2} of {attempts})")
                tail.reset()
        raise SyncError(f"the server's position kept moving during {attempts} attempts")

    def sync_tail(self, tail: RunTail, res: RunResult) -> None:
        """Send what the server lacks of ``tail``'s new records, then its state and metadata."""
        rows: list[dict[str, Any]] = []
        cons: list[dict[str, Any]] = []
        syss: list[dict[str, Any]] = []
        recs: dict[str, list[dict[str, Any]]] = {k: [] for k in RECORD_STREAMS}
        n = 0
        server = tail.server
        progress = self.progress
        done = tail.bytes_done
        inflight: Future[None] | None = None
        try:
            for kind, idx, item in tail.read():
                if server is None:
                    server = tail.server = self._position(tail)
                if kind == "row":
                    if idx < server["rows"]:
                        continue
                    rows.append({"idx": idx, "final": True, "row": item})
                elif kind == "console":
                    if idx < server["console"]:
                        continue
                    cons.append(item)
                elif kind in recs:
                    if idx < server.get(kind, 0):
                        continue
                    recs[kind].append(item)
                else:
                    if idx < server["system"]:
                        continue
                    syss.append(item)
                n += 1
                if n >= self.batch_size:
                    # Pipelined: this batch is encoded here while the last one is in flight (the
                    # server stores it meanwhile), then handed to the sending thread; batches still
                    # go one at a time, each after the last ack.
                    batches = self._prepare(tail, rows, cons, syss, None, recs)
                    if inflight is not None:
                        inflight.result()
                    inflight = self._pool.submit(self._send_all, tail, res, batches)
                    rows, cons, syss, n = [], [], [], 0
                    recs = {k: [] for k in RECORD_STREAMS}
                    if progress is not None:
                        progress(tail.bytes_done - done)
                        done = tail.bytes_done
        except BaseException:
            if inflight is not None:
                try:
                    inflight.result()  # never leave a request running behind the caller's back
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
            raise
        if inflight is not None:
            inflight.result()
        if progress is not None and tail.bytes_done > done:
            progress(tail.bytes_done - done)
        res.damage = tail.damage
        if not tail.fold.meta and tail.fold.rows == 0 and tail.fold.events == 0:
            raise SyncError("no readable record in the run's files (damaged beyond use, or empty)")
        if server is None:
            server = tail.server = self._position(tail)
        state, fold, pending_row = tail.decide_state()
        tail.state = state
        res.project, res.run_id, res.state = tail.project, tail.run_id, state
        meta = tail.metadata(state, fold)
        send_meta = meta["digest"] != server.get("digest")
        # A writer's provisional row the server holds is sent again only with a changed fold (its
        # digest covers what the row adds to the writer's summary and step).
        held = tail.label is not None and bool(server.get("pending")) and fold.rows - 1 == server["rows"]
        if pending_row is not None and fold.rows - 1 >= server["rows"] and not (held and not send_meta):
            # The crashed run's pending row, at the next index, provisional: a resume may grow it.
            rows.append({"idx": fold.rows - 1, "final": False, "row": pending_row})
        if rows or cons or syss or send_meta or any(recs.values()):
            self._send(tail, res, rows, cons, syss, meta, recs)
            res.meta_updated = res.meta_updated or send_meta
        res.position = dict(tail.server or {})

    def _position(self, tail: RunTail) -> dict[str, Any]:
        assert self.transport is not None
        validate_run_id(tail.run_id)
        return tail.own(self.transport.position(tail.project, tail.run_id))

    def _send(self, tail: RunTail, res: RunResult, rows: list[dict[str, Any]], cons: list[dict[str, Any]],
              syss: list[dict[str, Any]], meta: dict[str, Any] | None,
              recs: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self._send_all(tail, res, self._prepare(tail, rows, cons, syss, meta, recs))

    def _send_all(self, tail: RunTail, res: RunResult, batches: list[_Batch]) -> None:
        for b in batches:
            self._send_prepared(tail, res, b)

    def _prepare(self, tail: RunTail, rows: list[dict[str, Any]], cons: list[dict[str, Any]],
                 syss: list[dict[str, Any]], meta: dict[str, Any] | None,
                 recs: dict[str, list[dict[str, Any]]] | None) -> list[_Batch]:
        """A batch with its body encoded ahead (``Transport.encode_batch``), unless it carries file or
        artifact records: their blobs' upload may still mark an item lost, so that body is encoded
        after it. ``base`` is the position last acknowledged when the body was made (informative).
        A body over ``MAX_BATCH_BYTES`` is cut in two by its rows (the first part takes the console
        and system records, the second the metadata), as often as needed."""
        assert tail.server is not None
        recs = {k: v for k, v in (recs or {}).items() if v}
        body: dict[str, Any] = {
            "base": {k: tail.server.get(k, 0) for k in ("rows", "console", "system")},
            "rows": rows, "console": cons, "system": syss,
        }
        body.update(tail.batch_fields(meta))
        encoded = None
        if not recs and self.transport is not None:
            encoded = self.transport.encode_batch(body)
            if isinstance(encoded, bytes) and len(encoded) > MAX_BATCH_BYTES and len(rows) > 1:
                half = len(rows) // 2
                return (self._prepare(tail, rows[:half], cons, syss, None, None)
                        + self._prepare(tail, rows[half:], [], [], meta, None))
        return [_Batch(rows, cons, syss, meta, recs, body, encoded)]

    def _send_prepared(self, tail: RunTail, res: RunResult, b: _Batch) -> None:
        transport = self.transport
        assert transport is not None and tail.server is not None
        rows, cons, syss, meta, recs = b.rows, b.cons, b.syss, b.meta, b.recs
        # Media of the rows, and of the summary (a value set only there, like watch()'s graph_0).
        summary = None if meta is None else meta["fold"].get("summary") if "fold" in meta else meta.get("summary")
        media_rows = [r["row"] for r in rows] + ([summary] if summary else [])
        if media_rows:
            self._upload_media(tail, res, media_rows)
        body: Any = b.encoded
        if recs:
            # The bytes first (files, artifact objects), then the records that name them.
            self._upload_record_blobs(tail, res, recs)
            b.body.update({k: [{f: x for f, x in item.items() if f != "_path"} for item in v] for k, v in recs.items()})
        if body is None:
            body = b.body
        pos = tail.own(transport.batch(tail.project, tail.run_id, body))
        want_rows = (rows[-1]["idx"] + (1 if rows[-1]["final"] else 0)) if rows else 0
        if pos.get("rows", 0) < want_rows or (cons and pos.get("console", 0) <= cons[-1]["idx"]) or (
                syss and pos.get("system", 0) <= syss[-1]["idx"]) or any(
                pos.get(k, 0) <= v[-1]["idx"] for k, v in recs.items()):
            raise SyncError(f"the server acknowledged position {pos}, short of what was sent")
        tail.server = pos
        res.rows += len(rows)
        res.console += len(cons)
        res.system += len(syss)
        for k, v in recs.items():
            setattr(res, k, getattr(res, k) + len(v))

    def _upload_record_blobs(self, tail: RunTail, res: RunResult, recs: dict[str, list[dict[str, Any]]]) -> None:
        """Upload the bytes of saved files and artifact objects the server lacks, verified first.

        A saved file's bytes are ``<run dir>/<_path>``; a ``live`` file may have changed since the
        record was written (a later record names the new bytes), and a file over the server's blob
        limit cannot be stored: either way the item is sent with ``lost: true`` (listed, not
        downloadable), one line says why, and the sync goes on. An artifact object
        (``<run dir>/artifacts/objects/<sha256>``, immutable) that is missing, damaged or over the
        limit stops the run's sync with a clear error (a manifest is never stored without its bytes).
        """
        assert self.transport is not None
        root = tail.path.resolve()
        where: dict[str, list[str]] = {}  # sha256 -> places in the run directory that should hold it
        for f in recs.get("files", ()):
            if isinstance(f.get("sha256"), str) and isinstance(f.get("_path"), str):
                where.setdefault(f["sha256"], []).append(f["_path"])
        for a in recs.get("artifacts", ()):
            for e in (a.get("entries") or {}).values():
                if isinstance(e, dict) and "ref" not in e and isinstance(e.get("object"), str):
                    where.setdefault(str(e.get("sha256")), []).append(e["object"])
        wanted = sorted(s for s in where if s not in self.known_media)
        missing = set(self.transport.missing_media(wanted)) if wanted else set()
        why: dict[str, str] = {}  # sha256 -> why its bytes were not uploaded
        for sha in wanted:
            if sha not in missing:
                self.known_media.add(sha)
                continue
            why[sha] = "no longer in the run directory (or no longer matching their sha256)"
            for rel in where[sha]:
                fh = _open_verified(root, rel, sha)
                if fh is None:
                    continue
                with fh:
                    too_large = self._put_blob(sha, fh, _ext(rel.rsplit("/", 1)[-1]))
                if too_large is not None:
                    why[sha] = too_large
                    break
                del why[sha]
                res.media += 1
                self.known_media.add(sha)
                break
        for f in recs.get("files", ()):
            if f.get("sha256") in why:
                f["lost"] = True
                self.log(f"{tail.path}: the bytes of saved file {f.get('name')!r} (sha256 {f.get('sha256')}) are "
                         f"{why[f['sha256']]}; listed as lost, not uploaded")
        for a in recs.get("artifacts", ()):
            for path, e in (a.get("entries") or {}).items():
                if isinstance(e, dict) and "ref" not in e and e.get("sha256") in why:
                    raise SyncError(f"artifact {a.get('name')}:v{a.get('version')}: the object of {path!r} "
                                    f"({e.get('object')}) is {why[e['sha256']]}")

    def _put_blob(self, sha: str, fh: IO[bytes], ext: str | None) -> str | None:
        """Stream ``fh`` (verified, at byte 0) as blob ``sha``; None, or why the server cannot take it."""
        assert self.transport is not None
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        limit = self.transport.max_blob_bytes
        if limit is None or size <= limit:
            try:
                self.transport.put_media(sha, fh, ext)
                return None
            except RejectedError as exc:
                if exc.code != "too_large":
                    raise
        return (f"{size} bytes, over the server's blob limit{f' of {limit} bytes' if limit is not None else ''} "
                "(WANDBLITE_MAX_BLOB_SIZE on the server)")

    def _upload_media(self, tail: RunTail, res: RunResult, rows: list[dict[str, Any]]) -> None:
        assert self.transport is not None
        refs = {r["sha256"]: r for r in _media_refs(tail.path, rows) if r["sha256"] not in self.known_media}
        if not refs:
            return
        missing = set(self.transport.missing_media(sorted(refs)))
        for sha, ref in refs.items():
            if sha in missing:
                with _open_media(tail.path, ref) as fh:  # verified against its sha256: bad bytes never leave
                    too_large = self._put_blob(sha, fh, _ext(str(ref.get("path", "")).rsplit("/", 1)[-1]))
                if too_large is not None:
                    raise SyncError(f"the media blob {sha} ({ref.get('path')}) is {too_large}")
                res.media += 1
            self.known_media.add(sha)

    # ------------------------------------------------------------ watch
    def watch(self, paths: list[str], interval: float, stop: threading.Event,
              on_result: Callable[[RunResult], None] | None = None) -> None:
        """Tail every run below ``paths`` until ``stop`` is set; new runs and segments are picked up."""
        tails: dict[tuple[Path, str | None], RunTail] = {}
        reported: dict[tuple[Path, str | None], str] = {}
        while not stop.is_set():
            try:
                found = discover(paths)
            except OSError as exc:
                self.log(f"cannot list {paths}: {exc}")
                found = []
            for p in found:
                for t in tails_for(p, self.project):  # a shared run's writers, as their files appear
                    if (p, t.label) not in tails:
                        tails[(p, t.label)] = t
            for key, tail in list(tails.items()):
                p = key[0]
                if stop.is_set():
                    break
                sizes = tail.stat()
                if tail.bad is not None and sizes == tail.sizes:
                    continue  # rejected before and unchanged since: do not hammer the server
                if tail.state in FINAL_STATES and sizes == tail.sizes and tail.server is not None:
                    continue  # nothing new, and nothing that time alone can change
                res = RunResult(str(p))
                try:
                    tail.bad = None
                    self.sync_tail(tail, res)
                except GapError as exc:
                    self.log(f"{p}: {exc}; re-reading the run")
                    tail.reset()
                    continue
                except UnavailableError as exc:
                    self.log(str(exc))
                    tail.reset()  # the tail may have read past what was acknowledged
                    break
                except Exception as exc:  # noqa: BLE001 - one bad run never stops the others
                    msg = str(exc) if isinstance(exc, SyncError) else f"{type(exc).__name__}: {exc}"
                    res.ok, res.error = False, msg
                    tail.reset()
                    tail.bad = msg
                    tail.sizes = sizes
                    if reported.get(key) != msg:
                        reported[key] = msg
                        self.log(f"{p}{'' if tail.label is None else f' (writer {tail.label})'}: {msg}")
                if on_result is not None and (res.rows or res.console or res.system or res.meta_updated or not res.ok
                                              or res.files or res.artifacts or res.uses or res.alerts):
                    on_result(res)
            stop.wait(interval)


def _open_verified(root: Path, rel: str, sha: str) -> IO[bytes] | None:
    """``root/rel`` open for reading at byte 0, if it stays inside ``root`` and hashes to ``sha``; else None.

    The caller sends from this same descriptor: a newer copy renamed over the file afterwards
    (``wandblite.save`` replaces files that way) does not change what is sent.
    """
    try:
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            return None
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except (OSError, ValueError):
        return None
    try:
        h = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
        if h.hexdigest() == sha:
            fh.seek(0)
            return fh
    except OSError:
        pass
    fh.close()
    return None


def _open_media(run_dir: Path, ref: dict[str, Any]) -> IO[bytes]:
    """The bytes of a media reference as an open file at byte 0, verified against its sha256.

    A standalone blob (``media/blobs/<sha256>.<ext>``, every blob of 4 MiB or more) is streamed from
    its file; a blob in a pack (smaller) is read by ``wandblite.media.read_blob``, which also finds
    blobs whose reference points elsewhere and raises a clear error for missing or damaged bytes.
    """
    from wandblite.media import read_blob

    blob = ref.get("blob")
    if isinstance(blob, str) and not blob.endswith(".wlpack"):
        fh = _open_verified(run_dir.resolve(), blob, str(ref["sha256"]))
        if fh is not None:
            return fh
    return io.BytesIO(read_blob(run_dir, ref))


def _ext(name: str) -> str | None:
    for compound in ("pts.json", "table.json", "boxes2D.json"):
        if name.endswith("." + compound):
            return compound
    return name.rsplit(".", 1)[-1][:64] if "." in name else None


def install_stop_handlers(stop: threading.Event) -> None:
    """Ctrl-C and SIGTERM set ``stop``: the watcher finishes the batch in flight and returns."""

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def plan(path: Path, transport: Transport | None, project: str | None = None) -> dict[str, Any]:
    """What a sync of ``path`` would send (``--dry-run``): local counts against the server's position.

    A shared run: the counts of its writers visible here added up, each writer's own plan under
    ``writers`` (label -> plan), and the state those writers give (``wandblite.merge.shared_state``)."""
    tails = tails_for(path, project)
    if len(tails) == 1 and tails[0].label is None:
        return _plan_tail(tails[0], transport)
    from wandblite.merge import shared_state

    parts = {str(t.label): _plan_tail(t, transport) for t in tails}
    first = next(iter(parts.values()))
    deciding = [t.label for t in tails if isinstance(t, WriterTail) and t.identity()["update_finish_state"]]
    local_state = shared_state({label: part["state"] for label, part in parts.items()}, deciding or list(parts))
    out: dict[str, Any] = {"path": str(path), "project": first["project"], "run_id": first["run_id"],
                           "state": local_state, "writers": parts,
                           "damage": [d for part in parts.values() for d in part["damage"]]}
    for side in ("local", "send"):
        if all(side in part for part in parts.values()):
            total: dict[str, Any] = {}
            for part in parts.values():
                for k, v in part[side].items():
                    total[k] = (total.get(k, False) or v) if isinstance(v, bool) else total.get(k, 0) + v
            out[side] = total
    if transport is not None:
        pos = transport.position(out["project"], out["run_id"])
        out["server"] = pos
    return out


def _plan_tail(tail: RunTail, transport: Transport | None) -> dict[str, Any]:
    counts = {"row": 0, "console": 0, "system": 0}
    for kind, _idx, _item in tail.read():
        counts[kind] = counts.get(kind, 0) + 1  # rows, console, system, and the record streams
    state, fold, pending_row = tail.decide_state()
    local = {"rows": counts["row"], "pending": pending_row is not None, "console": counts["console"],
             "system": counts["system"], **{k: counts.get(k, 0) for k in RECORD_STREAMS}}
    out: dict[str, Any] = {"path": str(tail.path), "project": tail.project, "run_id": tail.run_id, "state": state,
                           "local": local, "damage": tail.damage}
    if transport is not None:
        pos = tail.own(transport.position(tail.project, tail.run_id))
        out["server"] = pos
        meta = tail.metadata(state, fold)
        changed = meta["digest"] != pos.get("digest")
        held = tail.label is not None and bool(pos.get("pending")) and fold.rows - 1 == pos["rows"] and not changed
        out["send"] = {"rows": max(0, local["rows"] - pos["rows"]) + (1 if pending_row is not None and not held else 0),
                       "console": max(0, local["console"] - pos["console"]),
                       "system": max(0, local["system"] - pos["system"]),
                       "metadata": changed,
                       **{k: max(0, counts.get(k, 0) - pos.get(k, 0)) for k in RECORD_STREAMS}}
    return out
