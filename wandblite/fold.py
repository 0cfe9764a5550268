"""The fold: events -> run state. The only place wandb's ``log`` semantics live.

Layer 2: pure. No I/O, no clock, no randomness; imports only ``wandblite.errors``,
``wandblite.events`` (for the kind numbers) and ``wandblite.vocab`` (the reserved keys, the
subtree rule, what a number is, which keys are wandb's own). The live ``Run`` (for ``run.step``,
``run.summary`` and its warnings), ``wandblite.replay``, ``wandblite show``, ``sync`` and the server
all get their numbers from this module, so they cannot drift apart.

The contract is docs/semantics.md (wandb 0.31 with wandblite's deliberate differences). In short:

* step/commit: ``plan_log`` decides, for one ``log`` call, whether it is dropped, whether the
  pending row is flushed before it, and whether it is flushed after it.
* rows are nested dicts as logged, merged per leaf across ``commit=False`` calls, each flushed row
  carrying ``_step``, ``_runtime`` and ``_timestamp``.
* the summary keeps the last non-None value per leaf; a media value (a dict with ``_type``) is one
  atomic leaf; ``define_metric`` summaries replace the value by a dict of the requested stats.

``Fold.apply(kind, payload)`` mutates the state and returns the history rows the event flushed
(usually zero or one). Warnings meant for the user are appended to ``Fold.warnings``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from operator import methodcaller
from typing import Any

from wandblite import events as ev
from wandblite.errors import Error
from wandblite.vocab import (
    INTERNAL_PREFIX,
    RUNTIME,
    STEP,
    TIMESTAMP,
    TYPE_KEY,
    WANDB_KEY,
    is_internal_key,
    is_plain_number,
    key_text,
)

__all__ = [
    "FLUSH_AFTER_AT_STEP",
    "FLUSH_AFTER_NO_STEP",
    "SUMMARY_OPS",
    "Fold",
    "MetricDef",
    "parse_metric",
    "plan_log",
    "run_state",
    "merge_tree",
    "step_drop_warning",
]

SUMMARY_OPS = ("min", "max", "mean", "first", "last", "best", "copy", "none")
_NO_ROWS: tuple[dict[str, Any], ...] = ()
_SCALAR_TYPES = frozenset({str, int, float, bool})
_get_step = methodcaller("get", STEP)  # a row's _step, or None
CONSOLE_TAIL = 200


def step_drop_warning(step: int, cur: int) -> str:
    """wandb's exact text (handler.go:1004-1013) for a log call to an earlier step."""
    return (
        f"Tried to log to step {step} that is less than the current step {cur}. Steps must be "
        "monotonically increasing, so this data will be ignored. See "
        "https://wandb.me/define-metric to log data out of order."
    )


def plan_log(cur: int, has_pending: bool, step: int | None, commit: bool | None) -> tuple[bool, bool, int, bool]:
    """Decide one ``log`` call: ``(drop, flush_before, cur_for_merge, flush_after)``.

    ``flush_before`` flushes the pending row at the old ``cur`` (only when it is non-empty);
    the call's data is then merged into the row at ``cur_for_merge``; ``flush_after`` flushes that
    row, after which the step becomes ``cur_for_merge + 1``. A dropped call changes nothing.
    """
    if step is None:
        return False, False, cur, commit is None or commit is True
    if step < cur:
        return True, False, cur, False
    if step > cur:
        return False, has_pending, step, commit is True
    return False, False, cur, commit is True


#: ``plan_log``'s ``flush_after`` for the calls ``Run.log`` plans inline (no Python call on its hot
#: path): ``commit`` None, True or False, with no step (the data merges at ``cur``) or with a step
#: not below ``cur`` (it merges at ``step``). Derived from ``plan_log``, which stays the one rule.
FLUSH_AFTER_NO_STEP: dict[bool | None, bool] = {c: plan_log(0, False, None, c)[3] for c in (None, True, False)}
FLUSH_AFTER_AT_STEP: dict[bool | None, bool] = {c: plan_log(0, False, 0, c)[3] for c in (None, True, False)}


def split_name(name: str) -> tuple[str, ...]:
    """``"a.b"`` -> ("a", "b"); ``"a\\\\.b"`` -> ("a.b",): a dot means nesting unless escaped."""
    if "." not in name:
        return (name,)
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\" and i + 1 < len(name) and name[i + 1] == ".":
            cur.append(".")
            i += 2
            continue
        if c == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return tuple(parts)


class MetricDef:
    """One ``define_metric`` definition (concrete, or a glob's template)."""

    __slots__ = ("goal", "hidden", "name", "ops", "step_metric", "step_sync")

    def __init__(self, name: str) -> None:
        self.name = name
        self.step_metric: tuple[str, ...] | None = None
        self.step_sync = False
        self.hidden = False
        self.ops: set[str] = set()
        self.goal: str | None = None

    def copy(self, name: str) -> MetricDef:
        m = MetricDef(name)
        m.step_metric, m.step_sync, m.hidden = self.step_metric, self.step_sync, self.hidden
        m.ops, m.goal = set(self.ops), self.goal
        return m

    def merge(self, spec: dict[str, Any]) -> None:
        if spec.get("step_metric") is not None:
            self.step_metric = split_name(spec["step_metric"])
        if spec.get("step_sync") is not None:
            self.step_sync = bool(spec["step_sync"])
        elif spec.get("step_metric") is not None:
            self.step_sync = True  # wandb_metric.py:36-37
        if spec.get("hidden") is not None:
            self.hidden = bool(spec["hidden"])
        self.ops |= set(spec.get("summary") or ())
        if spec.get("goal") is not None:
            self.goal = spec["goal"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "step_metric": ".".join(self.step_metric) if self.step_metric else None,
            "step_sync": self.step_sync,
            "hidden": self.hidden,
            "summary": sorted(self.ops),
            "goal": self.goal,
        }


def parse_metric(
    name: Any,
    step_metric: Any = None,
    step_sync: Any = None,
    hidden: Any = None,
    summary: Any = None,
    goal: Any = None,
    overwrite: Any = None,
) -> dict[str, Any]:
    """Validate ``define_metric`` arguments into the spec stored in a METRIC record.

    Raises ``wandblite.Error`` with wandb's texts. Accepts the union of wandb 0.18 and 0.31:
    summary ops min, max, mean, first, last, best (with goal "minimize"/"maximize"), copy, none.
    """
    if not isinstance(name, str):
        raise Error(f"Unhandled define_metric() arg: name type: {type(name).__name__}")
    if not name:
        raise Error("define_metric() requires non-empty name argument")
    if "*" in name[:-1]:
        raise Error(f"Unhandled define_metric() arg: name (glob suffixes only): {name}")
    if step_metric is not None:
        if hasattr(step_metric, "name") and not isinstance(step_metric, str):
            step_metric = step_metric.name  # a Metric object, as wandb allows
        if not isinstance(step_metric, str):
            raise Error(f"Unhandled define_metric() arg: step_metric type: {type(step_metric).__name__}")
    for arg, val in (("step_sync", step_sync), ("hidden", hidden), ("overwrite", overwrite)):
        if val is not None and not isinstance(val, bool):
            raise Error(f"Unhandled define_metric() arg: {arg} type: {type(val).__name__}")
    ops: list[str] = []
    if summary is not None:
        if not isinstance(summary, str):
            raise Error(f"Unhandled define_metric() arg: summary type: {type(summary).__name__}")
        for op in summary.split(","):
            op = op.strip().lower()
            if op not in SUMMARY_OPS:
                raise Error(f"Unhandled define_metric() arg: summary op: {op}")
            ops.append(op)
    if goal is not None:
        if not isinstance(goal, str):
            raise Error(f"Unhandled define_metric() arg: goal type: {type(goal).__name__}")
        g = goal.lower()
        if g in ("min", "minimize"):
            goal = "minimize"
        elif g in ("max", "maximize"):
            goal = "maximize"
        else:
            raise Error(f"Unhandled define_metric() arg: goal: {goal}")
    if "best" in ops and goal is None:
        raise Error('define_metric(summary="best") requires goal="minimize" or goal="maximize"')
    return {
        "name": name,
        "step_metric": step_metric,
        "step_sync": step_sync,
        "hidden": hidden,
        "summary": ops,
        "goal": goal,
        "overwrite": bool(overwrite),
    }


# The tree helpers below apply ``wandblite.vocab.is_subtree`` (a dict without ``_type`` is a
# subtree) inline, as ``type(v) is dict and TYPE_KEY not in v``: they run once per logged key.


def _copy_tree(d: dict[Any, Any]) -> dict[str, Any]:
    """A normalised copy of a nested user dict: str keys, empty keys dropped."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        k = key_text(k)
        if not k:
            continue  # wandb: "empty history item key", dropped
        if type(v) is dict and TYPE_KEY not in v:
            tree = _copy_tree(v)
            if tree:
                out[k] = tree
        else:
            out[k] = v
    return out


def _merge_tree(dst: dict[str, Any], src: dict[Any, Any]) -> None:
    """Merge ``src`` into ``dst`` per leaf (runhistory.go: nested dicts are path trees)."""
    for k, v in src.items():
        k = key_text(k)
        if not k:
            continue
        if type(v) is dict and TYPE_KEY not in v:
            cur = dst.get(k)
            if type(cur) is dict and TYPE_KEY not in cur:
                _merge_tree(cur, v)
            else:
                tree = _copy_tree(v)
                if tree:  # a dict without leaves adds nothing (runhistory.go: no items)
                    dst[k] = tree
        else:
            dst[k] = v


#: ``_merge_tree`` by its public name, for ``wandblite.merge`` (rows of one step from several writers).
merge_tree = _merge_tree


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for k, v in d.items():
        p = (*prefix, k)
        if type(v) is dict and TYPE_KEY not in v:
            out.extend(_leaves(v, p))
        else:
            out.append((p, v))
    return out


def get_path(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = d
    for k in path:
        if type(cur) is not dict or k not in cur:
            return None
        cur = cur[k]
    return cur


def has_path(d: dict[str, Any], path: tuple[str, ...]) -> bool:
    cur: Any = d
    for k in path:
        if type(cur) is not dict or k not in cur:
            return False
        cur = cur[k]
    return True


def set_path(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    cur = d
    for k in path[:-1]:
        nxt = cur.get(k)
        if type(nxt) is not dict or TYPE_KEY in nxt:
            nxt = {}
            cur[k] = nxt
        cur = nxt
    cur[path[-1]] = value


class _Stats:
    __slots__ = ("best", "count", "first", "last", "max", "min", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.min: Any = None
        self.max: Any = None
        self.first: Any = None
        self.last: Any = None
        self.best: Any = None

    def add(self, v: Any, goal: str | None) -> None:
        if self.first is None:
            self.first = v
        self.last = v
        if not is_plain_number(v):
            return
        self.count += 1
        self.total += v
        if isinstance(v, float) and math.isnan(v):
            return
        if self.min is None or v < self.min:
            self.min = v
        if self.max is None or v > self.max:
            self.max = v
        if goal == "minimize":
            self.best = self.min
        elif goal == "maximize":
            self.best = self.max

    def value(self, ops: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "min" in ops and self.min is not None:
            out["min"] = self.min
        if "max" in ops and self.max is not None:
            out["max"] = self.max
        if "mean" in ops and self.count:
            out["mean"] = self.total / self.count
        if "first" in ops and self.first is not None:
            out["first"] = self.first
        if "last" in ops and self.last is not None:
            out["last"] = self.last
        if "best" in ops and self.best is not None:
            out["best"] = self.best
        return out


def _no_error(offset: int, payload: bytes, exc: Exception) -> None:
    raise exc  # log_scalars passes a decoded payload: nothing is decoded, nothing can fail


class Fold:
    """The run state, folded from events in file order.

    Attributes read by callers: ``meta`` (id, project, name, …), ``config``, ``summary``,
    ``step`` (the step the next implicit log uses), ``rows`` (history rows flushed so far),
    ``pending`` (the uncommitted row, or None), ``exit`` (the EXIT payload, or None),
    ``last_ts``, ``last_heartbeat``, ``metrics`` (definitions), ``console_tail``, ``last_system``,
    ``files``, ``artifacts``, ``alerts``, ``uses``, ``warnings``.
    """

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.attempts: list[dict[str, Any]] = []
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.step = 0
        self.rows = 0
        self.pending: dict[str, Any] | None = None
        self.exit: dict[str, Any] | None = None
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.last_heartbeat: float | None = None
        self.heartbeat_interval: float | None = None
        self.console_tail: deque[tuple[float, str, str]] = deque(maxlen=CONSOLE_TAIL)
        self.last_system: tuple[float, dict[str, Any]] | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self.artifacts: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.uses: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.events = 0
        # runtime: seconds since the attempt started plus what earlier attempts ran
        self._attempt_start: float | None = None
        self._runtime_offset = 0.0
        # define_metric
        self.metrics: dict[tuple[str, ...], MetricDef] = {}
        self.globs: dict[str, MetricDef] = {}
        self._resolved: dict[tuple[str, ...], MetricDef | None] = {}
        self._stats: dict[tuple[str, ...], _Stats] = {}
        self._step_paths: set[tuple[str, ...]] = set()
        self._latest: dict[tuple[str, ...], Any] = {}
        self._has_metrics = False
        self._pending_flat = True  # the pending row holds only scalars (see LOG_SCALARS)
        self.last_flat = True  # the last flushed row held only scalars (no media to wrap)
        # A shared run's writer: the ``writer`` map of the first start record that has one
        # (``wandblite.merge`` reads it), and the summary keys ever set through ``run.summary``.
        self.writer: dict[str, Any] | None = None
        self.summary_set: set[str] = set()
        #: every ``define_metric`` spec with the step it was made at (rows from that step on obey it)
        self.metric_log: list[tuple[int, dict[str, Any]]] = []

    # ---------------------------------------------------------------- dispatch
    def apply(self, kind: int, p: Any) -> tuple[dict[str, Any], ...] | list[dict[str, Any]]:
        """Apply one decoded event; return the history rows it flushed."""
        if kind == ev.LOG_SCALARS:
            return self.log_scalars(p)  # counts the event itself
        self.events += 1
        if kind == ev.LOG:
            return self._log(p)
        ts = self._ts(kind, p)
        if kind == ev.START:
            self._start(p)  # before last_ts moves: a resume's runtime goes on from the last record
        if ts is not None:
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
            if self.first_ts is None:
                self.first_ts = ts
        if kind == ev.HEARTBEAT:
            self.last_heartbeat = ts
        elif kind == ev.CONSOLE:
            self.console_tail.append((p[0], p[1], p[2]))
        elif kind == ev.SYSTEM:
            self.last_system = (p[0], p[1])
        elif kind == ev.CONFIG:
            self.config.update(p[1])
        elif kind == ev.SUMMARY:
            self._summary(p)
        elif kind == ev.METRIC:
            self._define(p[1])
        elif kind == ev.EXIT:
            return self._exit(p)
        elif kind == ev.RUN:
            self.meta.update(p[1])
        elif kind == ev.FILES:
            for f in p[1]:
                self.files[f["name"]] = f
        elif kind == ev.ARTIFACT:
            self.artifacts.append(p[1])
        elif kind == ev.ALERT:
            self.alerts.append(p[1])
        elif kind == ev.USE:
            self.uses.append(p[1])
        return _NO_ROWS

    @staticmethod
    def _ts(kind: int, p: Any) -> float | None:
        if type(p) is dict:
            t = p.get("ts")
        elif type(p) is list and p:
            t = p[0]
        else:
            return None
        return t if is_plain_number(t) else None

    # ---------------------------------------------------------------- lifecycle
    def _start(self, p: dict[str, Any]) -> None:
        ts = float(p.get("ts") or 0.0)
        if self._attempt_start is not None:
            # A resume: runtime goes on from what the earlier attempts ran.
            self._runtime_offset = self.runtime_at(self.last_ts or ts)
        self._attempt_start = ts
        self.exit = None
        self.heartbeat_interval = p.get("heartbeat", self.heartbeat_interval)
        self.last_heartbeat = ts
        for k, v in p.items():
            if k in ("ts", "v", "attempt", "resumed", "pid", "heartbeat", "context", "writer"):
                continue
            if v is not None or k not in self.meta:
                self.meta[k] = v
        self.meta.setdefault("created_at", ts)
        if self.writer is None and type(p.get("writer")) is dict:
            self.writer = p["writer"]
        self.attempts.append(
            {
                "attempt": p.get("attempt", len(self.attempts)),
                "ts": ts,
                "host": p.get("host"),
                "pid": p.get("pid"),
                "context": p.get("context"),
            }
        )

    def runtime_at(self, ts: float) -> float:
        if self._attempt_start is None:
            return 0.0
        return self._runtime_offset + max(0.0, ts - self._attempt_start)

    def _exit(self, p: dict[str, Any]) -> tuple[dict[str, Any], ...] | list[dict[str, Any]]:
        ts = float(p.get("ts") or self.last_ts or 0.0)
        rows: tuple[dict[str, Any], ...] | list[dict[str, Any]] = _NO_ROWS
        if self.pending is not None:
            rows = [self._flush(ts)]
        self.exit = dict(p)
        runtime = int(self.runtime_at(ts))
        self.summary[RUNTIME] = runtime
        wb = self.summary.get(WANDB_KEY)
        if type(wb) is not dict:
            wb = {}
            self.summary[WANDB_KEY] = wb
        wb["runtime"] = runtime
        return rows

    def flush_pending(self) -> dict[str, Any] | None:
        """Flush the pending row of a crashed run at its step (what sync and replay show)."""
        if self.pending is None:
            return None
        return self._flush(self.last_ts or 0.0)

    # ---------------------------------------------------------------- the C fast paths' state
    def plain(self) -> bool:
        """Whether the next plain scalar log may be folded by a C fast path that keeps only
        ``scalar_state``: the writer is known, no row is pending, no metric is defined."""
        return self.writer is not None and self.pending is None and not self._has_metrics

    def scalar_state(self) -> list[Any]:
        """What a C fast path carries of this fold while it folds plain scalar logs (as
        ``fold_records`` hands ``fast`` its locals): step, last timestamp, attempt start, runtime
        offset, and the summary (updated in place)."""
        return [self.step, self.last_ts, self._attempt_start, self._runtime_offset, self.summary]

    def took_scalars(self, step: int, last_ts: float | None, rows: int) -> None:
        """After a C fast path folded ``rows`` plain scalar logs into rows it merged itself
        (``wandblite.format.merge_scalars``): the step and last timestamp it reached, the counts."""
        self.step, self.last_ts = step, last_ts
        if rows:
            self.rows += rows
            self.events += rows
            self.last_flat = True

    # ---------------------------------------------------------------- history
    def log_scalars(self, p: list[Any]) -> tuple[dict[str, Any], ...] | list[dict[str, Any]]:
        """A LOG_SCALARS event: every value is a str/int/float/bool, so rows need no per-leaf merge.

        It gives exactly what ``_log`` gives for the same call: anything but the plain "new row,
        no step, no commit, no metric definitions" case is handed to ``_log``, and that case is
        ``fold_records``' inlined fast path (the one copy of it).
        """
        if p[2] is not None or p[3] is not None or self._has_metrics or self.pending is not None:
            self.events += 1
            return self._log(p)
        return self.fold_records([(0, ev.LOG_SCALARS, p)], ev.decode, _no_error)[0]

    def fold_records(
        self,
        records: list[tuple[int, int, Any]],
        decode: Callable[[bytes], Any],
        on_error: Callable[[int, bytes, Exception], None],
        fast: Callable[..., tuple[int, int, Any, int]] | None = None,
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Fold a batch of ``(offset, kind, payload)`` records, as ``RecordReader.batches`` gives them.

        A payload is bytes (decoded here with ``decode``; a failure goes to ``on_error`` and the
        record is skipped) or already decoded. Returns the rows flushed, in order, and the
        indexes of those rows that hold more than scalars (media to wrap). The result is exactly
        that of ``apply`` on each event in turn: the plain LOG_SCALARS case (a new row: no step and
        no commit, or ``commit=True`` with no step or a step not below the current one; no pending
        row, no metric definitions) is folded here with the state in locals, for replay speed;
        every other event goes through ``apply``.

        ``fast``: the C twin of that plain case (``wandblite.format.fold_scalars``, when the
        accelerator is built), handed in by the reader: it folds the plain records it can, many
        per call, from an index on, and stops at the first it cannot (or that falls outside the
        types it handles: float timestamps, steps within 64 bits), which this loop then takes;
        the result is the same with it or without it.
        """
        rows: list[dict[str, Any]] = []
        unflat: list[int] = []
        logs = ev.LOG_SCALARS
        step, last, start, offset_rt = self.step, self.last_ts, self._attempt_start, self._runtime_offset
        update = self.summary.update
        plain = not self._has_metrics and self.pending is None
        n = 0
        if type(records) is not list or type(self.summary) is not dict:
            fast = None
        i, total = 0, len(records)
        while i < total:
            if fast is not None and plain:  # the same case in C, many records per call
                i, step, last, k = fast(records, i, step, last, start, offset_rt, self.summary, rows, logs)
                n += k
                if i >= total:
                    break
            offset, kind, payload = records[i]
            i += 1
            if type(payload) is bytes:
                try:
                    p = decode(payload)
                except Exception as exc:  # noqa: BLE001 - the caller records it as damage
                    on_error(offset, payload, exc)
                    continue
            else:
                p = payload
            # The plain case. wandblite/_speedups.c's fold_scalars is its twin: change both or neither.
            if kind == logs and plain and (
                (p[3] is None and p[2] is None)
                or (p[3] is True and (p[2] is None or (type(p[2]) is int and p[2] >= step)))
            ):
                if p[2] is not None:
                    step = p[2]  # log(d, step=s, commit=True) with s >= the step: a new row at s
                ts, data = p[0], p[1]
                if last is None or ts > last:
                    if last is None:
                        self.first_ts = ts
                    last = ts
                if STEP in data:
                    del data[STEP]
                if "" in data:
                    del data[""]
                if TIMESTAMP not in data:
                    data[TIMESTAMP] = ts
                data[STEP] = step
                step += 1
                if start is None:
                    data[RUNTIME] = 0.0
                else:
                    run_for = ts - start
                    data[RUNTIME] = offset_rt + (run_for if run_for > 0.0 else 0.0)
                update(data)
                rows.append(data)
                n += 1
                continue
            self.step, self.last_ts, self.rows, self.events = step, last, self.rows + n, self.events + n
            if n:
                self.last_flat = True
            n = 0
            new = self.apply(kind, p)
            if new:
                if len(new) > 1 or not self.last_flat:  # last_flat speaks of the last row only
                    unflat.extend(range(len(rows), len(rows) + len(new)))
                rows.extend(new)
            step, last, start, offset_rt = self.step, self.last_ts, self._attempt_start, self._runtime_offset
            update = self.summary.update
            plain = not self._has_metrics and self.pending is None
        self.step, self.last_ts, self.rows, self.events = step, last, self.rows + n, self.events + n
        if n:
            self.last_flat = True
        return rows, unflat

    def _log(self, p: list[Any]) -> tuple[dict[str, Any], ...] | list[dict[str, Any]]:
        ts, data, step, commit = p[0], p[1], p[2], p[3]
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        if self.first_ts is None:
            self.first_ts = ts
        cur = self.step
        drop, flush_before, at, flush_after = plan_log(cur, self.pending is not None, step, commit)
        if drop:
            self.warnings.append(step_drop_warning(step, cur))
            return _NO_ROWS
        rows: tuple[dict[str, Any], ...] | list[dict[str, Any]] = _NO_ROWS
        if flush_before:
            rows = [self._flush(ts)]
        self.step = at
        pend = self.pending
        if pend is None:
            pend = self.pending = {}
            self._pending_flat = True
        if STEP in data:
            del data[STEP]
        if "" in data:
            del data[""]
        types = set(map(type, data.values()))
        if dict in types:
            _merge_tree(pend, data)
        else:
            pend.update(data)
        if not _SCALAR_TYPES.issuperset(types):
            self._pending_flat = False
        if TIMESTAMP not in data:
            pend[TIMESTAMP] = ts
        if flush_after:
            row = self._flush(ts)
            if rows:
                rows.append(row)  # type: ignore[union-attr]
            else:
                rows = (row,)
        return rows

    def _flush(self, ts: float) -> dict[str, Any]:
        row = self.pending
        assert row is not None
        self.pending = None
        row[STEP] = self.step
        row[RUNTIME] = self.runtime_at(ts)
        self.step += 1
        self.rows += 1
        self.last_flat = self._pending_flat
        if self._pending_flat and not self._has_metrics:
            self.summary.update(row)
            return row
        leaves = _leaves(row)
        if self._has_metrics:
            self._sync_steps(row, leaves)
        self._update_summary(leaves)
        return row

    def _sync_steps(self, row: dict[str, Any], leaves: list[tuple[tuple[str, ...], Any]]) -> None:
        """Insert a synced step metric's latest value (or 0) where a row lacks it (runmetric.go)."""
        added = False
        for path, _v in leaves:
            m = self._resolve(path)
            if m is None or m.step_metric is None or not m.step_sync:
                continue
            sp = m.step_metric
            if not has_path(row, sp):
                set_path(row, sp, self._latest.get(sp, 0))
                added = True
        if added:
            leaves[:] = _leaves(row)
        for sp in self._step_paths:
            if has_path(row, sp):
                v = get_path(row, sp)
                if v is not None:
                    self._latest[sp] = v

    def _update_summary(self, leaves: list[tuple[tuple[str, ...], Any]]) -> None:
        summary = self.summary
        for path, v in leaves:
            if v is None:
                continue  # metricsummary.go: nil latest -> no update
            # A key of wandb's own (``vocab.is_internal_key``, inlined: once per leaf) has no metric.
            m = self._resolve(path) if self._has_metrics and path[0][:1] != INTERNAL_PREFIX else None
            if m is None or not m.ops or m.ops == {"copy"}:
                if len(path) == 1:
                    summary[path[0]] = v
                else:
                    set_path(summary, path, v)
                continue
            if "none" in m.ops:
                continue
            st = self._stats.get(path)
            if st is None:
                st = self._stats[path] = _Stats()
            st.add(v, m.goal)
            val = st.value(m.ops)
            if val:
                set_path(summary, path, val)

    # ---------------------------------------------------------------- metrics
    def _define(self, spec: dict[str, Any]) -> None:
        self.metric_log.append((self.step, spec))
        self.define(spec)

    def define(self, spec: dict[str, Any]) -> None:
        """Apply one ``define_metric`` spec (as a METRIC record's) to the definitions."""
        name = spec["name"]
        self._has_metrics = True
        if name.endswith("*"):
            prefix = name[:-1]
            m = self.globs.get(prefix)
            if m is None or spec.get("overwrite"):
                m = self.globs[prefix] = MetricDef(name)
            m.merge(spec)
        else:
            path = split_name(name)
            m = self.metrics.get(path)
            if m is None or spec.get("overwrite"):
                m = self.metrics[path] = MetricDef(name)
            m.merge(spec)
        if m.step_metric is not None:
            self._step_paths.add(m.step_metric)
        self._resolved.clear()

    def _resolve(self, path: tuple[str, ...]) -> MetricDef | None:
        m = self.metrics.get(path)
        if m is not None:
            return m
        if path in self._resolved:
            return self._resolved[path]
        found: MetricDef | None = None
        if self.globs and not is_internal_key(path[0]):
            joined = ".".join(path)
            best = -1
            for prefix, g in self.globs.items():
                if len(prefix) > best and joined.startswith(prefix):
                    best, found = len(prefix), g
            if found is not None:
                # The first match makes a concrete metric (runmetric.go).
                found = self.metrics[path] = found.copy(joined)
        self._resolved[path] = found
        return found

    # ---------------------------------------------------------------- summary
    def _summary(self, p: list[Any]) -> None:
        updates: dict[str, Any] = p[1] or {}
        removed: list[str] = p[2] if len(p) > 2 and p[2] else []
        for k, v in updates.items():
            k = key_text(k)
            self.summary[k] = v
            self.summary_set.add(k)
            # SetExplicit: the define_metric summary types of the key are reset.
            path = (k,)
            m = self._resolve(path) if self._has_metrics else None
            if m is not None:
                m.ops = set()
            self._stats.pop(path, None)
        for k in removed:
            self.summary.pop(key_text(k), None)
            self.summary_set.add(key_text(k))

    # ---------------------------------------------------------------- a merged run (wandblite.merge)
    def add_row(self, row: dict[str, Any]) -> None:
        """Count one committed row (it carries its ``_step``) and update the summary with it, as a
        flush does; the row is not changed (its step metrics were synced by the fold that made it)."""
        self.rows += 1
        step = row.get(STEP)
        if type(step) is int and step >= self.step:
            self.step = step + 1
        if not self._has_metrics and _SCALAR_TYPES.issuperset(map(type, row.values())):
            self.summary.update(row)
            return
        self._update_summary(_leaves(row))

    def add_rows(self, rows: list[dict[str, Any]], flat: bool = True,
                 fast: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None) -> None:
        """``add_row`` for each of ``rows`` in turn, with the same result. ``flat``: the caller
        expects the rows to hold only scalars; then, without metric definitions, the summary takes
        each row with one dict update, checked afterwards. Where a row held more than scalars,
        ``add_row`` would have differed only by skipping a None leaf and by merging a subtree leaf
        by leaf; so when the updates added no key (the keys keep their order) and left no None
        and no subtree that was not there before, the result is the same. Else the summary is put
        back as it was and the rows go through ``add_row`` one by one.

        ``fast``: the C twin of those dict updates (``wandblite.format.update_rows``, when the
        accelerator is built), handed in by the reader: the same summary, key order included,
        without updating it with a row whose keys the next row repeats in the same order."""
        summary = self.summary
        if flat and not self._has_metrics and len(rows) > 1:
            before = dict(summary)
            if fast is not None and type(summary) is dict and type(rows) is list:
                fast(summary, rows)
            else:
                for _ in map(summary.update, rows):
                    pass
            if len(summary) == len(before) and not any(
                    (v is None or (type(v) is dict and TYPE_KEY not in v)) and before[k] is not v
                    for k, v in summary.items()):
                self.rows += len(rows)
                steps = list(map(_get_step, rows))
                if set(map(type, steps)) == {int}:  # what add_row's steps come to: one past the largest
                    self.step = max(self.step, max(steps) + 1)
                    return
                for step in steps:
                    if type(step) is int and step >= self.step:
                        self.step = step + 1
                return
            summary.clear()
            summary.update(before)
        for row in rows:
            self.add_row(row)

    # ---------------------------------------------------------------- state
    def state(self, now: float, writer_alive: bool | None, grace: float) -> str:
        return run_state(self.exit, self.last_alive(), now, writer_alive, grace)

    def last_alive(self) -> float | None:
        """The last moment the writer is known to have been alive."""
        cands = [t for t in (self.last_ts, self.last_heartbeat) if t is not None]
        return max(cands) if cands else None


def run_state(
    exit: dict[str, Any] | None,
    last_alive: float | None,
    now: float,
    writer_alive: bool | None,
    grace: float,
) -> str:
    """running | finished | failed | crashed.

    ``writer_alive`` is True/False where the writer's lock could be probed (same host), None where
    it could not (another host): then only the heartbeat's age tells. A stale heartbeat means
    crashed everywhere, whatever the lock says (a stopped or hung writer on another host).
    """
    if exit is not None:
        code = exit.get("exit_code")
        return "finished" if not code else "failed"
    if writer_alive is False:
        return "crashed"
    if last_alive is None or now - last_alive > grace:
        return "crashed"
    return "running"
