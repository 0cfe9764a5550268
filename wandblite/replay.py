"""The read side for run files: ``replay(path)`` -> a run's state, history and damage.

Layer 4. Used by notebooks, ``wandblite show``/``ls``/``verify``/``export``, sync and the server's
importer. Works on finished, failed, crashed and still-running runs, with nothing but the files.

* ``replay`` reads every segment once, folding events (``wandblite.fold``) to get the config, the
  summary and the state; it keeps no history rows in memory.
* ``history()`` and ``scan_history()`` read the files again and stream the rows, so memory stays
  constant whatever the run's length. A crashed run's pending (uncommitted) row is flushed at its
  step at the end, as wandb does at exit; a running run's pending row is held back.
* ``damage`` lists every damaged byte range met while reading (segment file, offset, length,
  reason), including a torn tail; reading never raises for damage.
* ``run_record(fold, state)`` is the one projection of a fold to a run's record (name, tags,
  config, summary, state, exit, context, metric definitions...): replay's attributes and the run
  metadata ``wandblite sync`` sends both come from it.

A shared run (several writer processes, ``mode="shared"``) is read stream by stream, each writer's
records folded on their own, and merged by ``wandblite.merge``: ``history`` is the merged history,
``summary``/``config``/``state`` the merged run's; ``writers`` lists each writer with its own state,
and ``output``, ``console`` and ``system_metrics`` take ``writer=`` (a label).

State: ``finished``/``failed`` come from the exit record. Without one, the run is ``running`` while
its writer holds the run's lock (probed on this host) and its last heartbeat is younger than the
grace period, and ``crashed`` otherwise (``run_state`` in the fold).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandblite import events as ev
from wandblite import format as wl_format
from wandblite.fold import Fold, get_path, has_path, run_state, split_name
from wandblite.format import Damage, RecordReader
from wandblite.merge import SharedRun, identity, merge_windows, precedence, rank_key
from wandblite.runfile import probe_writer, read_events, resolve_run_dir, segments, writer_streams
from wandblite.vocab import (
    PREEMPTING_KEY,
    STEP,
    TYPE_KEY,
    is_number,
    parse_segment,
    segment_name,
    segment_number,
)

__all__ = ["Replay", "flatten", "heartbeat_grace", "latest_context", "replay", "run_record", "segment_sizes", "typed_run_record",
           "writer_record"]

DEFAULT_GRACE = 60.0
# The events that can change history rows; console and system records are not even decoded.
_ROW_KINDS = frozenset({ev.START, ev.LOG, ev.LOG_SCALARS, ev.METRIC, ev.EXIT})


def heartbeat_grace(heartbeat: float | None) -> float:
    """Seconds without a record after which a run with no exit record is crashed (replay, show, sync)."""
    env = os.environ.get("WANDBLITE_HEARTBEAT_GRACE")
    if env:
        try:
            return float(env)
        except ValueError:
            pass
    return max(DEFAULT_GRACE, 4 * (heartbeat or 15.0))


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted columns (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); media stay whole."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if type(v) is dict and TYPE_KEY not in v:  # vocab.is_subtree, inline: once per column of every row
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def latest_context(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """The job context (host, pid, command line, git, SLURM ...) of the latest attempt that has one."""
    for a in reversed(attempts):
        if a.get("context"):
            return dict(a["context"])
    return {}


def run_record(fold: Fold, state: str) -> dict[str, Any]:
    """The run described by ``fold``, in ``state``: its attributes as one record.

    Keys, in this order (the sync client sends the record as JSON, so the order is part of its
    bytes): ``name group job_type entity tags notes host created_at config summary state exit_code
    error signal ended_at heartbeat_at context metrics``. ``config`` and ``summary`` are the fold's
    own dicts (not copies); ``tags`` and ``context`` are new; ``metrics`` maps each defined metric's
    dotted name to its definition. Values are as the files hold them: a consumer with a stricter
    contract (the sync wire format) checks their types itself.
    """
    meta = fold.meta
    exit_ = fold.exit or {}
    return {
        "name": meta.get("name"), "group": meta.get("group"), "job_type": meta.get("job_type"),
        "entity": meta.get("entity"), "tags": list(meta.get("tags") or []), "notes": meta.get("notes"),
        "host": meta.get("host"), "created_at": meta.get("created_at"), "config": fold.config,
        "summary": fold.summary, "state": state,
        "exit_code": exit_.get("exit_code") if fold.exit else None, "error": exit_.get("error"),
        "signal": exit_.get("signal"), "ended_at": exit_.get("ts"), "heartbeat_at": fold.last_alive(),
        "context": latest_context(fold.attempts),
        "metrics": {".".join(p): m.as_dict() for p, m in fold.metrics.items()},
    }


def typed_run_record(fold: Fold, state: str) -> dict[str, Any]:
    """``run_record`` with the types a store keeps as typed columns: text attributes as text, times
    as finite numbers or None, an integer exit code, tags as text. What sync sends and what the
    server stores for a shared run's merge, so that no file can make a stored column bad."""
    out = run_record(fold, state)
    for k in ("name", "group", "job_type", "entity", "notes", "host", "signal"):
        if out[k] is not None and not isinstance(out[k], str):
            out[k] = str(out[k])
    for k in ("created_at", "ended_at", "heartbeat_at"):
        if not is_number(out[k]) or out[k] != out[k]:
            out[k] = None
    if not isinstance(out["exit_code"], int) or isinstance(out["exit_code"], bool):
        out["exit_code"] = None if out["exit_code"] is None else 1
    out["tags"] = [str(t) for t in out["tags"]]
    return out


def segment_sizes(run_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Segment file name -> size in bytes, for the run's segments that can be stat()ed now.

    It changes whenever the run's writer appends anything: sync and interop compare it with what
    they saw last time to skip runs that did not change.
    """
    out: dict[str, int] = {}
    for seg in (p for stream in writer_streams(run_dir).values() for p in stream):
        try:
            out[seg.name] = seg.stat().st_size
        except OSError:
            continue
    return out


class Replay:
    """A run rebuilt from its files. Create with ``wandblite.replay(path)``.

    Loading is lazy: the first attribute read (``state``, ``summary``, ...) folds the files once; a
    complete ``scan_history()`` folds them as it goes and leaves its result here, so a notebook
    that scans the history first pays for one pass, not two.
    """

    def __init__(self, path: str | os.PathLike[str], now: float | None = None, writer_alive: bool | None = None,
                 grace: float | None = None) -> None:
        self.path = resolve_run_dir(path)
        self._now_arg = now
        self._writer_alive_arg = writer_alive
        self._grace_arg = grace
        #: written by several processes (``mode="shared"``): its writers' streams are merged
        self.shared: bool = any(label is not None for label in writer_streams(self.path))
        self._loaded = False

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set yet: the lazily loaded ones.
        if name.startswith("__") or self.__dict__.get("_loaded", True):
            raise AttributeError(name)
        self._load()
        return getattr(self, name)

    def _load(self, fold: Fold | None = None, damage: list[dict[str, Any]] | None = None,
              positions: dict[int, int] | None = None,
              writers: dict[str | None, tuple[Fold, str]] | None = None) -> None:
        if fold is None:
            for _row in self.scan_history():  # one batched pass; it ends by calling _load with its fold
                pass
            return
        self._fold = fold
        self.damage: list[dict[str, Any]] = damage or []
        self.positions = positions or {}
        rec = run_record(fold, self.state)
        self.id: str = fold.meta.get("id") or self.path.name
        self.project: str | None = fold.meta.get("project")
        self.entity: str | None = rec["entity"]
        self.name: str | None = rec["name"]
        self.group: str | None = rec["group"]
        self.job_type: str | None = rec["job_type"]
        self.tags: list[str] = rec["tags"]
        self.notes: str | None = rec["notes"]
        self.host: str | None = rec["host"]
        self.created_at: float | None = rec["created_at"]
        self.config: dict[str, Any] = rec["config"]
        self.summary: dict[str, Any] = rec["summary"]
        self.step: int = fold.step
        self.rows: int = fold.rows
        self.last_alive: float | None = rec["heartbeat_at"]
        self.heartbeat_interval = fold.heartbeat_interval
        self.attempts: list[dict[str, Any]] = fold.attempts
        self.metrics = rec["metrics"]
        self.exit_code: int | None = rec["exit_code"]
        self.error: dict[str, Any] | None = rec["error"]
        self.signal: str | None = rec["signal"]
        self.ended_at: float | None = rec["ended_at"]
        self.alerts = fold.alerts
        self.preempting: float | None = fold.meta.get(PREEMPTING_KEY)  # run.mark_preempting()'s last mark
        self.artifacts = fold.artifacts
        self.files = fold.files
        self.uses = fold.uses
        from wandblite.console import join_records  # only when read: it is the capture's module

        if writers is None:
            writers = {None: (fold, self.state)}
        self._writer_folds = {lab: f for lab, (f, _state) in writers.items()}
        self.writers: list[dict[str, Any]] = [writer_record(lab, f, st) for lab, (f, st) in
                                              ((lab, writers[lab]) for lab in precedence(self._writer_folds))]
        if self.shared:  # every writer's last lines, in time order (labels break ties)
            lines = [(t, lab or "", st, x) for lab, (f, _st) in writers.items() for t, st, x in join_records(f.console_tail)]
            lines.sort(key=lambda r: (r[0], r[1]))
            self.console_tail = [(t, st, x) for t, _lab, st, x in lines]
            systems = [f.last_system for f, _st in writers.values() if f.last_system is not None]
            self.last_system = max(systems, key=lambda x: x[0]) if systems else None
        else:
            self.console_tail = list(join_records(fold.console_tail))  # each line once, whole
            self.last_system = fold.last_system
        self._loaded = True

    def writer(self, label: str | None) -> dict[str, Any]:
        """The ``writers`` entry of ``label``; ``KeyError`` naming the labels there are."""
        for w in self.writers:
            if w["label"] == label:
                return w
        raise KeyError(f"run {self.id} has no writer {label!r}; its writers: "
                       f"{', '.join(str(w['label']) for w in self.writers)}")

    def writer_console_tail(self, label: str | None) -> list[tuple[float, str, str]]:
        """The last console lines (``(ts, stream, text)``, joined) writer ``label`` printed."""
        from wandblite.console import join_records

        self.writer(label)
        return list(join_records(self._writer_folds[label].console_tail))

    def _finish_state(self, fold: Fold) -> tuple[str, dict[str, Any] | None]:
        """Decide the state (probing the writer's lock) and fold a crashed run's pending row."""
        writer_alive = self._writer_alive_arg
        if writer_alive is None:
            writer_alive = probe_writer(self.path)
        now = time.time() if self._now_arg is None else self._now_arg
        grace = self._grace_arg if self._grace_arg is not None else heartbeat_grace(fold.heartbeat_interval)
        self.grace = grace
        self.state = fold.state(now, writer_alive, grace)
        row = None
        if self.state == "crashed" and fold.pending is not None:
            row = fold.flush_pending()  # wandb flushes the pending row at exit; a crash is an exit
        return self.state, row

    @property
    def fold(self) -> Fold:
        """The fold describing the whole run (a shared run: its writers merged, ``wandblite.merge``)."""
        return self._fold

    @property
    def context(self) -> dict[str, Any]:
        """Job context of the latest attempt (host, pid, command line, git, SLURM ...)."""
        return latest_context(self.attempts)

    @property
    def runtime(self) -> float:
        end = self.ended_at or self.last_alive or self.created_at or 0.0
        if self.shared:  # from the first writer's start to the end (or the last sign of life)
            return max(0.0, float(end) - float(self.created_at or end))
        return float(self._fold.runtime_at(end))

    def __repr__(self) -> str:
        return f"<Replay {self.id} {self.project}/{self.name} {self.state} step={self.step} rows={self.rows}>"

    # ------------------------------------------------------------------ history
    def scan_history(self, keys: list[str] | None = None, page_size: int | None = None,
                     min_step: int | None = None, max_step: int | None = None) -> Iterator[dict[str, Any]]:
        """Stream history rows in constant memory (``keys``: only rows holding all of them, with ``_step``)."""
        if self.shared:  # the generator itself, not one more generator around it: a step less per row
            return self._scan_shared(keys, min_step, max_step)
        return self._scan_single(keys, min_step, max_step)

    def _scan_single(self, keys: list[str] | None, min_step: int | None,
                     max_step: int | None) -> Iterator[dict[str, Any]]:
        """``scan_history`` of a run with one writer."""
        want = [split_name(k) for k in keys or ()]  # a reserved key has no dot: one column
        everything = not want and min_step is None and max_step is None and not self._loaded
        fold = Fold()
        damage: list[dict[str, Any]] = []
        positions: dict[int, int] = {}
        wrap = _media_wrapper(self.path)
        decode = ev.decode
        fold_records = fold.fold_records
        fast = wl_format.fold_scalars
        kinds = None if everything else _ROW_KINDS
        filtered = bool(want) or min_step is not None or max_step is not None
        for seg, seg_path in _numbered(self.path):
            reader = RecordReader(seg_path, kinds=kinds, reporter=_seg_reporter(damage, seg),
                                  decode_kind=ev.LOG_SCALARS)
            on_error = _undecodable(damage, seg, seg_path.name)
            for batch in reader.batches():
                rows, unflat = fold_records(batch, decode, on_error, fast)
                for i in unflat:
                    rows[i] = wrap(rows[i])
                yield from (_filtered(rows, want, keys, min_step, max_step) if filtered else rows)
            if reader.tail is not None:
                d = reader.tail
                damage.append({"file": seg_path.name, "segment": seg, **d.as_dict()})
            positions[seg] = reader.end_offset
        if everything:
            _state, pending_row = self._finish_state(fold)
            self._load(fold, damage, positions)
        else:
            pending_row = fold.flush_pending() if self.state == "crashed" else None
        if pending_row is not None:
            row = wrap(pending_row)
            if want:
                row = _select(row, want, keys)  # type: ignore[assignment]
            if row is not None and (min_step is None or row[STEP] >= min_step) and (
                max_step is None or row[STEP] < max_step
            ):
                yield row

    def _scan_shared(self, keys: list[str] | None, min_step: int | None,
                     max_step: int | None) -> Iterator[dict[str, Any]]:
        """``scan_history`` of a shared run: each writer's stream folded on its own, the rows merged
        by ``_step`` (``wandblite.merge``), streamed in constant memory per writer.

        With the C accelerator, while the writers log in step (every writer's next record a plain
        scalar log of the same step, see ``_fused``) their records are folded and merged in one
        pass (``wandblite.format.merge_scalars``), straight from the payloads; from the first
        record where they do not, the rest of every stream goes the general way. The result is the
        same either way (tests/core/test_fold_fastpath.py)."""
        want = [split_name(k) for k in keys or ()]
        everything = not want and min_step is None and max_step is None and not self._loaded
        streams = writer_streams(self.path)
        labels = list(streams)
        folds: dict[str | None, Fold] = {lab: Fold() for lab in labels}
        states: dict[str | None, str] = {}
        damage: dict[str | None, list[dict[str, Any]]] = {lab: [] for lab in labels}  # each writer's, in file order
        positions: dict[int, int] = {}
        wrap = _media_wrapper(self.path)
        kinds = None if everything else _ROW_KINDS
        now = time.time() if self._now_arg is None else self._now_arg
        fused = wl_format.merge_scalars
        # payloads stay bytes while the fused merge may take them; LOG_SCALARS decoded in C after
        decode_kind = [None if fused is not None else ev.LOG_SCALARS]
        readers: dict[str | None, RecordReader] = {}

        def batches_of(label: str | None) -> Iterator[tuple[list[tuple[int, int, Any]], Any]]:
            for seg_path in streams[label]:
                parsed = parse_segment(seg_path.name)
                seg = parsed[1] if parsed is not None else 0
                report = _seg_reporter(damage[label], seg, seg_path.name, label)
                reader = readers[label] = RecordReader(seg_path, kinds=kinds, reporter=report,
                                                       decode_kind=decode_kind[0])
                on_error = _undecodable(damage[label], seg, seg_path.name, label)
                for batch in reader.batches():
                    yield batch, on_error
                if reader.tail is not None:
                    report(reader.tail)
                if label is None:
                    positions[seg] = reader.end_offset

        # each writer's batch being read, the index of its next record, its on_error, its batches
        cursors: dict[str | None, list[Any]] = {lab: [None, 0, None, batches_of(lab)] for lab in labels}
        fast = wl_format.fold_scalars

        def fold_batch(label: str | None, batch: list[tuple[int, int, Any]], on_error: Any) -> list[dict[str, Any]]:
            rows, unflat = folds[label].fold_records(batch, ev.decode, on_error, fast)
            for i in unflat:
                rows[i] = wrap(rows[i])
                nested.add(id(rows[i]))
            return rows

        def rows_of(label: str | None, first: list[dict[str, Any]] | None) -> Iterator[list[dict[str, Any]]]:
            fold = folds[label]
            if first:
                yield first
            batch, i, on_error, rest = cursors[label]
            if batch is not None and i < len(batch):
                rows = fold_batch(label, batch[i:] if i else batch, on_error)
                if rows:
                    yield rows
            for batch, on_error in rest:
                rows = fold_batch(label, batch, on_error)
                if rows:
                    yield rows
            if everything:
                alive = self._writer_alive_arg
                if alive is None:
                    alive = probe_writer(self.path, label)
                grace = self._grace_arg if self._grace_arg is not None else heartbeat_grace(fold.heartbeat_interval)
                states[label] = run_state(fold.exit, fold.last_alive(), now, alive, grace)
                state = states[label]
            else:
                state = self.writer(label)["state"]
            if state == "crashed" and fold.pending is not None:
                row = wrap(fold.flush_pending())  # a crashed writer's pending row, at its step
                nested.add(id(row))
                yield [row]

        merged = SharedRun(folds)
        filtered = bool(want) or min_step is not None or max_step is not None
        nested: set[int] = set()  # ids of rows the folds say hold more than scalars (all others do not)
        logs = [f.metric_log for f in folds.values()]
        seen = [0, False]  # definitions looked at; whether one syncs a dotted step metric into rows

        def flat(rows: list[dict[str, Any]]) -> bool:
            # merge_windows asks once about every row: its id leaves ``nested`` then
            n = sum(map(len, logs))
            if n != seen[0]:  # a synced step metric "a.b" adds a subtree to rows the fold calls flat
                seen[0] = n
                seen[1] = any("." in str(spec.get("step_metric") or "") for log in logs for _s, spec in log)
            if nested:
                hits = nested.intersection(map(id, rows))
                if hits:
                    nested.difference_update(hits)
                    return False
            return not seen[1]

        ranks: dict[int, tuple[int, str]] = {}

        def rank(i: int) -> tuple[int, str]:
            r = ranks.get(i)
            if r is None:
                fold = folds[labels[i]]
                r = rank_key(labels[i], fold)
                if fold.writer is not None:  # fixed from the first start record on
                    ranks[i] = r
            return r

        update_rows = wl_format.update_rows
        first: dict[str | None, list[dict[str, Any]]] = {}  # rows a writer's fold made as the fused merge stopped
        if fused is not None:
            for rows, same in self._fused(fused, labels, folds, cursors, rank, fold_batch, first):
                if everything:
                    merged.add_rows(rows, True, _update_last if same else update_rows)
                yield from (_filtered(rows, want, keys, min_step, max_step) if filtered else rows)
            decode_kind[0] = ev.LOG_SCALARS  # the general way from here: decoded in C again
            for reader in readers.values():
                reader.decode_kind = ev.LOG_SCALARS
        # the rows are the folds' own, handed over: a step's rows may be combined into one of them
        streams_rows = [rows_of(lab, first.get(lab)) for lab in labels]
        for rows, rows_flat in merge_windows(streams_rows, rank=rank, flat=flat, inplace=True):
            if everything:
                merged.add_rows(rows, rows_flat, update_rows)
            yield from (_filtered(rows, want, keys, min_step, max_step) if filtered else rows)
        if everything:
            self.grace = max((self._grace_arg if self._grace_arg is not None else heartbeat_grace(f.heartbeat_interval))
                             for f in folds.values()) if folds else DEFAULT_GRACE
            self.state = merged.finish(states)
            self._load(merged.fold, [d for lab in labels for d in damage[lab]], positions,
                       {lab: (folds[lab], states[lab]) for lab in labels})

    @staticmethod
    def _fused(fused: Any, labels: list[str | None], folds: dict[str | None, Fold],
               cursors: dict[str | None, list[Any]], rank: Any, fold_batch: Any,
               first: dict[str | None, list[dict[str, Any]]]) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """The merged rows of a shared run's writers while they log in step, a batch at a time,
        each with whether its rows hold the same keys in the same order.

        While every writer's fold is plain (its identity known, no pending row, no metric
        definitions) and its next record is a plain scalar log (``fold_scalars``' case) of the
        same step as every other writer's, ``fused`` (``wandblite.format.merge_scalars``) folds
        them and merges them into one row in one pass. A record it does not take is folded alone
        by its writer's fold; if that makes no row (a console line, a heartbeat, a start), the
        fused merge goes on, else its rows are left in ``first`` and this ends, as it does when
        the writers' steps differ or a stream ends: the caller merges the rest of every stream,
        from ``cursors``, the general way. Every row a writer makes after this is at its fold's
        step or later, and the fused rows end below every writer's step, so the two parts join."""
        while True:
            for lab in labels:  # every writer's next record at hand
                cur = cursors[lab]
                while cur[0] is None or cur[1] >= len(cur[0]):
                    nxt = next(cur[3], None)
                    if nxt is None:
                        cur[0] = None
                        return
                    cur[0], cur[1], cur[2] = nxt[0], 0, nxt[1]
            waiting = next((lab for lab in labels if not folds[lab].plain()), None)
            if waiting is None:
                order = sorted(range(len(labels)), key=rank, reverse=True)  # lowest-ranked first
                ranked = [labels[i] for i in order]
                state = [[cursors[lab][0], cursors[lab][1], *folds[lab].scalar_state()] for lab in ranked]
                rows: list[dict[str, Any]] = []
                n, why, who, same = fused(state, ev.LOG_SCALARS, rows)
                for lab, st in zip(ranked, state):
                    cursors[lab][1] = st[1]
                    folds[lab].took_scalars(st[2], st[3], n)
                if rows:
                    yield rows, same
                if why == 1:  # a batch ended: the next one
                    continue
                if why != 2:  # the steps differ, or a fold's state is not what the C path takes
                    return
                waiting = ranked[who]
            cur = cursors[waiting]  # that writer's next record, folded alone
            record = cur[0][cur[1]]
            cur[1] += 1
            made = fold_batch(waiting, [record], cur[2])
            if made:
                first[waiting] = made
                return

    def history(self, keys: list[str] | None = None, pandas: bool = False, samples: int | None = None,
                x_axis: str = STEP) -> Any:
        """All rows (as logged, nested) or, with ``pandas=True``, a DataFrame of flattened columns."""
        rows = list(self.scan_history(keys=keys))
        if samples is not None and len(rows) > samples > 0:
            stride = len(rows) / samples
            rows = [rows[int(i * stride)] for i in range(samples)]
        if not pandas:
            return rows
        import pandas as pd

        return pd.DataFrame([flatten(r) for r in rows])

    def segments(self) -> list[Path]:
        """The run's segment files: every writer's stream, the single-writer stream first."""
        return [p for stream in writer_streams(self.path).values() for p in stream]

    def _labels(self, writer: str | None) -> list[str | None]:
        """The streams ``writer`` names: all of a shared run's when None; ``""`` is the unlabelled one."""
        if writer is None:
            return list(writer_streams(self.path)) if self.shared else [None]
        label = writer or None
        if label not in writer_streams(self.path):
            self.writer(label)  # raises KeyError naming the writers there are
        return [label]

    # ------------------------------------------------------------------ other streams
    def events(self, writer: str | None = None) -> Iterator[tuple[str, Any]]:
        """Every decoded record as ``(kind name, payload)``, in file order (a shared run: stream by
        stream in label order, or only ``writer``'s)."""
        for label in self._labels(writer):
            for e in read_events(self.path, label=label):
                yield ev.KIND_NAMES.get(e.kind, str(e.kind)), e.data

    def output(self, writer: str | None = None) -> str:
        """The captured console output (stdout and stderr interleaved as written), each line whole.

        A shared run: ``writer``'s output; without one, every writer's lines in time order, each
        line prefixed with ``[label] ``."""
        return "".join(text for _ts, _stream, text in self.console(joined=True, writer=writer))

    def console(self, joined: bool = False, writer: str | None = None) -> Iterator[tuple[float, str, str]]:
        """Console records ``(ts, stream, text)`` as stored; ``joined``: a line recorded in pieces
        (a partial line recorded early, then its continuation) comes out once, whole
        (``wandblite.console.join_records``).

        A shared run: ``writer``'s records; without a writer, every writer's lines, joined per
        writer, in time order (labels break ties), each line prefixed with ``[label] ``."""
        from wandblite.console import join_records

        labels = self._labels(writer)
        if writer is not None or not self.shared:
            records = ((e.data[0], e.data[1], e.data[2])
                       for e in read_events(self.path, kinds=frozenset({ev.CONSOLE}), label=labels[0]))
            return join_records(records) if joined else records
        lines: list[tuple[float, str, str, str]] = []
        for label in labels:
            tag = f"[{label or ''}] "
            recs = ((e.data[0], e.data[1], e.data[2])
                    for e in read_events(self.path, kinds=frozenset({ev.CONSOLE}), label=label))
            for ts, stream, text in join_records(recs):
                lines.append((ts, label or "", stream, "".join(tag + x for x in text.splitlines(keepends=True))))
        lines.sort(key=lambda r: (r[0], r[1]))
        return iter([(ts, stream, text) for ts, _lab, stream, text in lines])

    def system_metrics(self, writer: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        """System-metrics samples ``(timestamp, metrics)`` in order.

        A shared run: ``writer``'s samples; without a writer, every writer's samples in time order,
        each metric named ``<label>/<metric>`` (so one chart per metric overlays the writers)."""
        labels = self._labels(writer)
        if writer is not None or not self.shared:
            return [(e.data[0], e.data[1]) for e in read_events(self.path, kinds=frozenset({ev.SYSTEM}), label=labels[0])]
        out = [(e.data[0], label or "", {f"{label or ''}/{k}": v for k, v in e.data[1].items()}) for label in labels
               for e in read_events(self.path, kinds=frozenset({ev.SYSTEM}), label=label)]
        out.sort(key=lambda r: (r[0], r[1]))
        return [(ts, m) for ts, _lab, m in out]


def _update_last(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """``update_rows`` for rows that hold the same keys in the same order (``merge_scalars`` says
    when): updating a summary with each in turn leaves what updating it with the last one leaves."""
    summary.update(rows[-1])


def _filtered(rows: list[dict[str, Any]], want: Any, keys: Any, min_step: int | None,
              max_step: int | None) -> Iterator[dict[str, Any]]:
    """``scan_history``'s filter over a batch of rows: the wanted keys (``_select``), then the step range."""
    for row in rows:
        if want:
            row = _select(row, want, keys)  # type: ignore[assignment]
            if row is None:
                continue
        if min_step is not None and row[STEP] < min_step:
            continue
        if max_step is not None and row[STEP] >= max_step:
            continue
        yield row


def _select(row: dict[str, Any], want: list[tuple[str, ...]], keys: list[str] | None) -> dict[str, Any] | None:
    if not want:
        return row
    out: dict[str, Any] = {STEP: row[STEP]}
    for name, path in zip(keys or (), want):
        if not has_path(row, path):
            return None
        out[name] = get_path(row, path)
    return out


def _seg_reporter(damage: list[dict[str, Any]], seg: int, name: str | None = None,
                  label: str | None = None) -> Any:
    where: dict[str, Any] = {"file": name or segment_name(seg), "segment": seg}
    if label is not None:
        where["writer"] = label

    def report(d: Damage) -> None:
        damage.append({**where, **d.as_dict()})

    return report


def _undecodable(damage: list[dict[str, Any]], seg: int, name: str, label: str | None = None) -> Any:
    where: dict[str, Any] = {"file": name, "segment": seg}
    if label is not None:
        where["writer"] = label

    def report(offset: int, payload: bytes, exc: Exception) -> None:
        damage.append({**where, "offset": offset, "length": len(payload) + 10,
                       "reason": f"undecodable payload: {exc}"})

    return report


def writer_record(label: str | None, fold: Fold, state: str) -> dict[str, Any]:
    """One writer of a run as ``Replay.writers`` lists it: who (``wandblite.merge.identity``), its
    own state and exit, its last sign of life, its steps and rows, its last system sample."""
    exit_ = fold.exit or {}
    return {
        **identity(label, fold),
        "state": state,
        "exit_code": exit_.get("exit_code") if fold.exit else None,
        "error": exit_.get("error"),
        "signal": exit_.get("signal"),
        "last_record": fold.last_ts,
        "last_alive": fold.last_alive(),
        "steps": fold.step,
        "rows": fold.rows,
        "last_system": fold.last_system,
    }


def _numbered(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's segments with their attempt numbers (``segments`` lists only names that have one)."""
    return [(segment_number(p.name) or 0, p) for p in segments(run_dir)]


def _media_wrapper(run_dir: Path) -> Any:
    """A function wrapping stored media values of a row as MediaValue objects, or None."""
    from wandblite.media import wrap_media

    def wrap(v: Any) -> Any:
        if type(v) is dict:
            if TYPE_KEY in v:
                return wrap_media(v, run_dir)
            if any(type(x) in (dict, list) for x in v.values()):
                return {k: wrap(x) for k, x in v.items()}
            return v
        if type(v) is list and v and type(v[0]) is dict:
            return [wrap(x) for x in v]
        return v

    def row_wrap(row: dict[str, Any]) -> dict[str, Any]:
        for x in row.values():
            if type(x) in (dict, list):
                return {k: wrap(x) for k, x in row.items()}
        return row

    return row_wrap


def replay(path: str | os.PathLike[str], now: float | None = None) -> Replay:
    """Rebuild a run from its directory, one of its run files, or its ``run.dir``."""
    return Replay(path, now=now)
