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

__all__ = ["Replay", "flatten", "heartbeat_grace", "replay"]

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
        if type(v) is dict and "_type" not in v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
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
        meta = fold.meta
        self.id: str = meta.get("id") or self.path.name
        self.project: str | None = meta.get("project")
        self.entity: str | None = meta.get("entity")
        self.name: str | None = meta.get("name")
        self.group: str | None = meta.get("group")
        self.job_type: str | None = meta.get("job_type")
        self.tags: list[str] = list(meta.get("tags") or [])
        self.notes: str | None = meta.get("notes")
        self.host: str | None = meta.get("host")
        self.created_at: float | None = meta.get("created_at")
        self.config: dict[str, Any] = fold.config
        self.summary: dict[str, Any] = fold.summary
        self.step: int = fold.step
        self.rows: int = fold.rows
        self.last_alive: float | None = fold.last_alive()
        self.heartbeat_interval = fold.heartbeat_interval
        self.attempts: list[dict[str, Any]] = fold.attempts
        self.metrics = {".".join(p): m.as_dict() for p, m in fold.metrics.items()}
        exit_ = fold.exit or {}
        self.exit_code: int | None = exit_.get("exit_code") if fold.exit else None
        self.error: dict[str, Any] | None = exit_.get("error")
        self.signal: str | None = exit_.get("signal")
        self.ended_at: float | None = exit_.get("ts")
        self.alerts = fold.alerts
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
        for a in reversed(self.attempts):
            if a.get("context"):
                return dict(a["context"])
        return {}

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
        want = [split_name(k) if k not in ("_step", "_runtime", "_timestamp") else (k,) for k in keys or ()]
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
                    if min_step is not None and row["_step"] < min_step:
                        continue
                    if max_step is not None and row["_step"] >= max_step:
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
            if row is not None and (min_step is None or row["_step"] >= min_step) and (
                max_step is None or row["_step"] < max_step
            ):
                yield row

    def history(self, keys: list[str] | None = None, pandas: bool = False, samples: int | None = None,
                x_axis: str = "_step") -> Any:
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
    out: dict[str, Any] = {"_step": row["_step"]}
    for name, path in zip(keys or (), want):
        if not has_path(row, path):
            return None
        out[name] = get_path(row, path)
    return out


def _seg_reporter(damage: list[dict[str, Any]], seg: int) -> Any:
    def report(d: Damage) -> None:
        damage.append({"file": f"events-{seg:03d}.wlr", "segment": seg, **d.as_dict()})

    return report


def _undecodable(damage: list[dict[str, Any]], seg: int, name: str) -> Any:
    def report(offset: int, payload: bytes, exc: Exception) -> None:
        damage.append({"file": name, "segment": seg, "offset": offset, "length": len(payload) + 10,
                       "reason": f"undecodable payload: {exc}"})

    return report


def _numbered(run_dir: Path) -> list[tuple[int, Path]]:
    return [(int(p.name[7:-4]), p) for p in segments(run_dir)]


def _media_wrapper(run_dir: Path) -> Any:
    """A function wrapping stored media values of a row as MediaValue objects, or None."""
    from wandblite.media import wrap_media

    def wrap(v: Any) -> Any:
        if type(v) is dict:
            if "_type" in v:
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
