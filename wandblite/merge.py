"""The merge of a shared run: several writers' streams -> one run. Pure, beside the fold.

Layer 2: no I/O, no clock, no randomness; imports only ``wandblite.fold`` and ``wandblite.vocab``.
``wandblite.replay`` (and so ``show``) reads a shared run through this module; the rules are
docs/semantics.md section 15.

A shared run is written by several processes (the ranks of a distributed job), each appending its
own stream of records (``wandblite.runfile.writer_streams``). Each stream is folded on its own by a
``Fold``, with wandb's step/commit rules per writer; this module then combines the folds:

* **precedence**: writers are ranked the primary first, then by label (the single-writer stream of a
  run, label None, counts as a primary labelled ""). Where two writers say different things about
  the same thing, the higher-ranked one wins. A writer's identity (label, primary,
  update_finish_state) is its first start record's ``writer`` map.
* **history**: the committed rows of all writers, merged by ``_step``: rows of the same step combine
  their keys, leaf by leaf (a media value is one leaf); a leaf written by several writers at that
  step takes the highest-ranked writer's value, and so do ``_timestamp`` and ``_runtime``.
  ``merge_rows`` streams this from per-writer iterators in constant memory; ``merge_windows``
  (what replay uses) gives it a window of rows at a time, combining the rows of writers that log
  in step a whole list at a time.
* **summary**: the summary of the merged history (``Fold.add_row`` on each merged row, with the
  merged metric definitions), as if one writer had logged it; then every key that some writer set
  or deleted through ``run.summary`` takes that writer's own final summary value (the
  highest-ranked such writer's).
* **config**, **metric definitions**, run attributes (name, tags, ...), saved files: per key, the
  highest-ranked writer that has it. Artifacts, uses and alerts: every writer's, stream by stream.
* **state** (``shared_state``): only the deciding writers (``update_finish_state``; when none says
  so, every writer) decide how the run ended. The run is crashed when a deciding writer crashed,
  finished when all of them finished; while they have not all finished, it is crashed when any
  writer crashed, failed when a deciding writer failed, else running. Each writer's own state is
  kept beside it (``Replay.writers``).

The result does not depend on the order in which the streams were read, nor on how their records
were interleaved: each writer's fold sees only its own records, in its own order, and everything
after that is ordered by precedence.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from wandblite.fold import Fold, merge_tree
from wandblite.vocab import RUNTIME, STEP, WANDB_KEY

_SCALARS = frozenset({str, int, float, bool})

__all__ = [
    "SharedRun",
    "combine_rows",
    "deciders",
    "identity",
    "merge_batches",
    "merge_rows",
    "merge_windows",
    "precedence",
    "rank_key",
    "shared_state",
]


def identity(label: str | None, fold: Fold) -> dict[str, Any]:
    """Who writer ``label`` is, from its fold: ``label``, ``primary``, ``update_finish_state``,
    ``host``, ``pid`` and ``started_at`` (its first start), ``attempts``.

    The single-writer stream (label None, no ``writer`` map) is a primary that decides the state.
    """
    w = fold.writer or {}
    first = fold.attempts[0] if fold.attempts else {}
    last = fold.attempts[-1] if fold.attempts else {}
    primary = bool(w.get("primary")) if fold.writer is not None else label is None
    ufs = w.get("update_finish_state")
    return {
        "label": label,
        "primary": primary,
        "update_finish_state": bool(ufs) if ufs is not None else primary,
        "host": last.get("host"),
        "pid": last.get("pid"),
        "started_at": first.get("ts"),
        "attempts": len(fold.attempts),
    }


def rank_key(label: str | None, fold: Fold) -> tuple[int, str]:
    """Sort key of a writer: primaries first, then by label (the single-writer stream as "")."""
    w = fold.writer
    primary = bool(w.get("primary")) if w is not None else label is None
    return (0 if primary else 1, label or "")


def precedence(folds: Mapping[str | None, Fold]) -> list[str | None]:
    """The writers' labels, highest-ranked first: the primary (or primaries), then label order."""
    return sorted(folds, key=lambda lab: rank_key(lab, folds[lab]))


def deciders(folds: Mapping[str | None, Fold]) -> list[str | None]:
    """The writers that decide the run's exit state (``update_finish_state``), in precedence order;
    every writer when none is marked."""
    order = precedence(folds)
    marked = [lab for lab in order if identity(lab, folds[lab])["update_finish_state"]]
    return marked or order


def combine_rows(rows: Sequence[dict[str, Any]], flat: bool | None = None) -> dict[str, Any]:
    """One row from rows of the same ``_step`` given highest-ranked first: keys combined leaf by
    leaf, the highest-ranked writer's value winning where several wrote a leaf. New dicts only:
    the given rows are not changed. ``flat``: the caller knows every row holds only scalars."""
    if len(rows) == 1:
        return rows[0]
    out: dict[str, Any] = {}
    if flat or (flat is None and all(_SCALARS.issuperset(map(type, row.values())) for row in rows)):
        for row in reversed(rows):  # no subtree anywhere: a leaf is a key (rows of flushed folds have str keys)
            out.update(row)
        return out
    for row in reversed(rows):
        merge_tree(out, row)
    return out


def merge_rows(streams: Sequence[Iterable[dict[str, Any]]],
               rank: Callable[[int], Any] | None = None) -> Iterator[dict[str, Any]]:
    """The merged history of several writers' committed rows, in ``_step`` order.

    ``streams[i]`` yields writer i's rows in increasing ``_step`` (as a fold flushes them).
    ``rank(i)`` orders the writers for the rows of one step (lowest first wins); it may depend on
    what the streams have read by then (their start records come before their rows). Default: the
    streams' order. ``merge_windows`` does the work; this gives it one row at a time.
    """
    return merge_batches([([row] for row in s) for s in streams], rank)


def merge_batches(streams: Sequence[Iterable[list[dict[str, Any]]]],
                  rank: Callable[[int], Any] | None = None,
                  flat: Callable[[list[dict[str, Any]]], bool] | None = None,
                  inplace: bool = False) -> Iterator[dict[str, Any]]:
    """``merge_rows`` for streams that yield lists of rows (a fold's batches): ``merge_windows``,
    one row at a time."""
    for rows, _flat in merge_windows(streams, rank, flat, inplace):
        yield from rows


# A stream's buffer is topped up to at least this many rows before a window is cut, so that one
# writer's batch ending a little before the others' does not cut a window of a row or two.
_LOW = 128


def merge_windows(streams: Sequence[Iterable[list[dict[str, Any]]]],
                  rank: Callable[[int], Any] | None = None,
                  flat: Callable[[list[dict[str, Any]]], bool] | None = None,
                  inplace: bool = False) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """The merged history of writers' streams of row lists, a window of rows at a time, for
    replay speed: yields ``(rows, flat)``, ``rows`` in ``_step`` order, ``flat`` True when the
    caller's ``flat`` said every row that went into them holds only scalars.

    A step's rows are complete once every stream still going has read a row of that step or a
    later one (a stream's steps only increase), so the rows read so far are merged up to the
    smallest last step of those streams, a window at a time: memory is a batch or so per writer.

    ``flat(rows)``: True when the caller knows those rows hold only scalars (else they are
    looked at); it is asked once about every list of rows a window takes from a stream, and
    the rows it was asked about are not seen again. When every row of a window is flat, a
    step's rows combine by plain dict updates, and when every stream's part of the window holds
    the same steps (ranks logging in step) a stream's rows are combined with the next stream's
    a whole list at a time. ``inplace``: the caller hands the rows over (nobody else holds
    them), so the lowest-ranked writer's row of a step may be updated into instead of copied
    (the same keys in the same order either way).
    """
    order = rank if rank is not None else (lambda i: i)
    iters = [iter(s) for s in streams]
    bufs: list[list[dict[str, Any]]] = [[] for _ in iters]
    live = list(range(len(iters)))
    while True:
        for i in list(live):
            buf = bufs[i]
            while len(buf) < _LOW:
                try:
                    more = next(iters[i])
                except StopIteration:
                    live.remove(i)
                    break
                if more:
                    buf = buf + list(more) if buf else list(more)
            bufs[i] = buf
        if not any(bufs):
            return
        limit = min(bufs[i][-1][STEP] for i in live) if live else None
        takes: list[list[dict[str, Any]]] = []
        for i in sorted(range(len(bufs)), key=order):  # highest-ranked first within every step
            buf = bufs[i]
            if not buf:
                continue
            if limit is None or buf[-1][STEP] <= limit:
                take, bufs[i] = buf, []
            else:
                cut = bisect.bisect_right(buf, limit, key=_step_of)
                take, bufs[i] = buf[:cut], buf[cut:]
            if take:
                takes.append(take)
        if not takes:
            continue
        fl = flat is not None and all([flat(t) for t in takes])  # a list: every take is asked
        if len(takes) == 1:
            yield takes[0], fl
        elif fl and _same_steps(takes):
            base = takes[-1] if inplace else list(map(dict, takes[-1]))
            update = dict.update
            for t in reversed(takes[:-1]):  # lowest-ranked first: the highest-ranked writes last
                for _ in map(update, base, t):
                    pass
            yield base, True
        else:
            yield _combine_groups(takes, True if fl else None, inplace), fl


def _same_steps(takes: list[list[dict[str, Any]]]) -> bool:
    """Whether every list holds rows of the same steps (each list's steps increasing ints, as a
    fold's rows have)."""
    first = takes[0]
    n, lo, hi = len(first), first[0][STEP], first[-1][STEP]
    for t in takes:
        if len(t) != n or t[0][STEP] != lo or t[-1][STEP] != hi:
            return False
    if type(lo) is int and type(hi) is int and hi - lo == n - 1:
        return True  # n increasing ints from lo to lo + n - 1: the same steps in every list
    steps = list(map(_step_of, first))
    return all(list(map(_step_of, t)) == steps for t in takes[1:])


def _combine_groups(takes: list[list[dict[str, Any]]], flat: bool | None,
                    inplace: bool) -> list[dict[str, Any]]:
    """The rows of ``takes`` (highest-ranked writer's first) grouped by step and combined."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for take in takes:
        for row in take:
            g = groups.get(row[STEP])
            if g is None:
                groups[row[STEP]] = [row]
            else:
                g.append(row)
    out: list[dict[str, Any]] = []
    for step in sorted(groups):
        g = groups[step]
        if len(g) == 1:
            out.append(g[0])
        elif flat and inplace:
            row = g[-1]
            for r in reversed(g[:-1]):
                row.update(r)
            out.append(row)
        else:
            out.append(combine_rows(g, flat))
    return out


_step_of = itemgetter(STEP)


def shared_state(states: Mapping[str | None, str], deciding: Iterable[str | None]) -> str:
    """The run's state from each writer's own (``running|finished|failed|crashed``): crashed when a
    deciding writer crashed; finished when every deciding writer finished; else crashed when any
    writer crashed; else failed when a deciding writer failed; else running."""
    decide = [states[lab] for lab in deciding if lab in states]
    if "crashed" in decide:
        return "crashed"
    if decide and all(s == "finished" for s in decide):
        return "finished"
    if any(s == "crashed" for s in states.values()):
        return "crashed"
    if "failed" in decide:
        return "failed"
    return "running"


class SharedRun:
    """The merged state of a shared run, from its writers' folds.

    Use: make ``SharedRun(folds)`` with one ``Fold`` per writer (they may still be folding: the
    replay streams them); feed it the merged rows (``merge_rows``) in ``_step`` order with
    ``add_row`` (or a window at a time with ``add_rows``); when every writer's stream is folded,
    ``finish(states)`` with each writer's own state. ``fold`` is then a ``Fold`` describing the
    whole run (meta, config, summary, metric definitions, exit, files, artifacts, alerts, uses),
    so whatever projects a fold (``wandblite.replay.run_record``) projects a shared run the same
    way.

    A ``define_metric`` call of any writer applies to the merged rows from the step that writer
    was at when it made it (``Fold.metric_log``); calls at the same step are applied the
    lowest-ranked writer's first, so the highest-ranked writer's word is the last. When a merged
    row of step s is added, every writer has folded all its definitions made at steps <= s
    (``merge_rows`` holds each writer's next row, whose step is >= s, and a fold only moves its
    step forward), so the result does not depend on how far each stream was read.
    """

    def __init__(self, folds: Mapping[str | None, Fold]) -> None:
        self.folds = folds
        self.fold = Fold()
        self._defined = dict.fromkeys(folds, 0)  # metric_log entries of each writer applied so far
        self._logs = [f.metric_log for f in folds.values()]  # the folds' own lists, growing as they fold
        self._seen = 0  # definitions applied, over all writers

    def add_row(self, row: dict[str, Any]) -> None:
        """One merged row, in ``_step`` order: counted, and folded into the summary."""
        if sum(map(len, self._logs)) != self._seen:  # a definition not applied yet (rare)
            self._define_upto(row[STEP])
        self.fold.add_row(row)

    def add_rows(self, rows: list[dict[str, Any]], flat: bool = False,
                 fast: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None) -> None:
        """``add_row`` for each of ``rows`` (a window of ``merge_windows``), the same result;
        ``flat``: the rows are expected to hold only scalars; ``fast``: the C twin of the summary
        updates (both as ``Fold.add_rows`` takes them)."""
        if sum(map(len, self._logs)) != self._seen:
            for row in rows:
                self.add_row(row)
        else:
            self.fold.add_rows(rows, flat, fast)

    def _define_upto(self, step: int | None) -> None:
        order = precedence(self.folds)
        todo: list[tuple[int, int, int, dict[str, Any]]] = []
        for pos, lab in enumerate(order):
            log = self.folds[lab].metric_log
            i = self._defined.get(lab, 0)
            while i < len(log) and (step is None or log[i][0] <= step):
                todo.append((log[i][0], -pos, i, log[i][1]))
                i += 1
            self._defined[lab] = i
        self._seen += len(todo)
        todo.sort(key=lambda t: t[:3])
        for *_key, spec in todo:
            self.fold.define(spec)

    def finish(self, states: Mapping[str | None, str]) -> str:
        """Decide the run's state from each writer's own; take the run's attributes, config,
        saved files, artifacts, alerts, explicit summary keys and exit from the writers. Returns
        the state."""
        self._define_upto(None)
        folds = self.folds
        order = precedence(folds)
        deciding = deciders(folds)
        ranked = [folds[lab] for lab in order]
        fold = self.fold
        for f in reversed(ranked):  # lowest-ranked first, so the highest-ranked writes last and wins
            fold.config.update(f.config)
            fold.files.update(f.files)
            for k, v in f.meta.items():
                if v is not None or k not in fold.meta:
                    fold.meta[k] = v
        created = [f.meta["created_at"] for f in ranked if f.meta.get("created_at") is not None]
        if created:
            fold.meta["created_at"] = min(created)
        for lab in sorted(folds, key=lambda x: (x is not None, x or "")):  # stream order, as files are listed
            f = folds[lab]
            fold.artifacts.extend(f.artifacts)
            fold.uses.extend(f.uses)
            fold.alerts.extend(f.alerts)
        if ranked:
            fold.attempts = list(ranked[0].attempts)  # the run's job context is its primary's
        fold.heartbeat_interval = max((f.heartbeat_interval for f in ranked if f.heartbeat_interval is not None),
                                      default=None)
        fold.last_ts = max((f.last_ts for f in ranked if f.last_ts is not None), default=None)
        fold.last_heartbeat = max((f.last_heartbeat for f in ranked if f.last_heartbeat is not None), default=None)
        fold.first_ts = min((f.first_ts for f in ranked if f.first_ts is not None), default=None)
        fold.events = sum(f.events for f in ranked)
        fold.step = max([fold.step, *(f.step for f in ranked)])
        state = shared_state(states, deciding)
        ended: Fold | None = None  # the writer whose exit is the run's
        if state == "failed":  # the first failed deciding writer's exit: its code, error and signal
            ended = folds[next(lab for lab in deciding if states.get(lab) == "failed")]
        elif state == "finished" and deciding:
            ended = folds[deciding[0]]
        fold.exit = dict(ended.exit) if ended is not None and ended.exit is not None else None
        summary = fold.summary
        for lab in reversed(order):  # explicit run.summary keys: the highest-ranked writer's last
            f = folds[lab]
            for k in sorted(f.summary_set):
                if k in f.summary:
                    summary[k] = f.summary[k]
                else:
                    summary.pop(k, None)
        if ended is not None:  # the runtime the run's exit recorded
            for k in (RUNTIME, WANDB_KEY):
                if k in ended.summary:
                    summary[k] = ended.summary[k]
        return state
