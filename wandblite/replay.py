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
from wandblite.fold import Fold, get_path, has_path, split_name
from wandblite.format import Damage, RecordReader
from wandblite.runfile import probe_writer, read_events, resolve_run_dir, segments
from wandblite.vocab import PREEMPTING_KEY, STEP, TYPE_KEY, segment_name, segment_number

__all__ = ["Replay", "flatten", "heartbeat_grace", "latest_context", "replay", "run_record", "segment_sizes"]

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


def segment_sizes(run_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Segment file name -> size in bytes, for the run's segments that can be stat()ed now.

    It changes whenever the run's writer appends anything: sync and interop compare it with what
    they saw last time to skip runs that did not change.
    """
    out: dict[str, int] = {}
    for seg in segments(run_dir):
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
        self._loaded = False

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set yet: the lazily loaded ones.
        if name.startswith("__") or self.__dict__.get("_loaded", True):
            raise AttributeError(name)
        self._load()
        return getattr(self, name)

    def _load(self, fold: Fold | None = None, damage: list[dict[str, Any]] | None = None,
              positions: dict[int, int] | None = None) -> None:
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

        self.console_tail = list(join_records(fold.console_tail))  # each line once, whole
        self.last_system = fold.last_system
        self._loaded = True

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
    def context(self) -> dict[str, Any]:
        """Job context of the latest attempt (host, pid, command line, git, SLURM ...)."""
        return latest_context(self.attempts)

    @property
    def runtime(self) -> float:
        end = self.ended_at or self.last_alive or self.created_at or 0.0
        return float(self._fold.runtime_at(end))

    def __repr__(self) -> str:
        return f"<Replay {self.id} {self.project}/{self.name} {self.state} step={self.step} rows={self.rows}>"

    # ------------------------------------------------------------------ history
    def scan_history(self, keys: list[str] | None = None, page_size: int | None = None,
                     min_step: int | None = None, max_step: int | None = None) -> Iterator[dict[str, Any]]:
        """Stream history rows in constant memory (``keys``: only rows holding all of them, with ``_step``)."""
        want = [split_name(k) for k in keys or ()]  # a reserved key has no dot: one column
        everything = not want and min_step is None and max_step is None and not self._loaded
        fold = Fold()
        damage: list[dict[str, Any]] = []
        positions: dict[int, int] = {}
        wrap = _media_wrapper(self.path)
        decode = ev.decode
        fold_records = fold.fold_records
        kinds = None if everything else _ROW_KINDS
        filtered = bool(want) or min_step is not None or max_step is not None
        for seg, seg_path in _numbered(self.path):
            reader = RecordReader(seg_path, kinds=kinds, reporter=_seg_reporter(damage, seg),
                                  decode_kind=ev.LOG_SCALARS)
            on_error = _undecodable(damage, seg, seg_path.name)
            for batch in reader.batches():
                rows, unflat = fold_records(batch, decode, on_error)
                for i in unflat:
                    rows[i] = wrap(rows[i])
                if not filtered:
                    yield from rows
                    continue
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
        return segments(self.path)

    # ------------------------------------------------------------------ other streams
    def events(self) -> Iterator[tuple[str, Any]]:
        """Every decoded record as ``(kind name, payload)``, in file order."""
        for e in read_events(self.path):
            yield ev.KIND_NAMES.get(e.kind, str(e.kind)), e.data

    def output(self) -> str:
        """The captured console output (stdout and stderr interleaved as written), each line whole."""
        return "".join(text for _ts, _stream, text in self.console(joined=True))

    def console(self, joined: bool = False) -> Iterator[tuple[float, str, str]]:
        """Console records ``(ts, stream, text)`` as stored; ``joined``: a line recorded in pieces
        (a partial line recorded early, then its continuation) comes out once, whole
        (``wandblite.console.join_records``)."""
        records = ((e.data[0], e.data[1], e.data[2]) for e in read_events(self.path, kinds=frozenset({ev.CONSOLE})))
        if not joined:
            return records
        from wandblite.console import join_records

        return join_records(records)

    def system_metrics(self) -> list[tuple[float, dict[str, Any]]]:
        """System-metrics samples ``(timestamp, metrics)`` in order."""
        return [(e.data[0], e.data[1]) for e in read_events(self.path, kinds=frozenset({ev.SYSTEM}))]

def _select(row: dict[str, Any], want: list[tuple[str, ...]], keys: list[str] | None) -> dict[str, Any] | None:
    if not want:
        return row
    out: dict[str, Any] = {STEP: row[STEP]}
    for name, path in zip(keys or (), want):
        if not has_path(row, path):
            return None
        out[name] = get_path(row, path)
    return out


def _seg_reporter(damage: list[dict[str, Any]], seg: int) -> Any:
    def report(d: Damage) -> None:
        damage.append({"file": segment_name(seg), "segment": seg, **d.as_dict()})

    return report


def _undecodable(damage: list[dict[str, Any]], seg: int, name: str) -> Any:
    def report(offset: int, payload: bytes, exc: Exception) -> None:
        damage.append({"file": name, "segment": seg, "offset": offset, "length": len(payload) + 10,
                       "reason": f"undecodable payload: {exc}"})

    return report


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
