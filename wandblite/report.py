"""What ``wandblite ls``, ``show`` and ``verify`` say about runs, computed from their files: the listing
table, the run report (JSON and text, with the crash report of a crashed or failed run), the
verification report, and the one-line texts of ``wandblite sync``.

Usable from a notebook or the server as well as the CLI: every function takes a ``Replay`` (or a
plain dict) and returns values or lines of text; nothing here prints or exits. Times are local
("2026-01-31 12:00:00") and ages relative to ``now`` (default: the clock). JSON is extended JSON:
NaN and Infinity stay tokens, as in wandb's history; values JSON cannot hold become strings.

Layer 4: reads runs through ``wandblite.replay`` and ``wandblite.media``; marks alerts with the rule
the server stores (``wandblite.throttle``). Imports nothing from ``wandblite.sync`` or
``wandblite.server``.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from wandblite.replay import Replay, flatten
from wandblite.throttle import effective_wait, throttle
from wandblite.vocab import PROCESS_RSS_KEY, TYPE_KEY, WANDB_KEY, is_number

__all__ = [
    "age",
    "describe",
    "dumps",
    "jsonable",
    "listing_record",
    "listing_table",
    "marked_alerts",
    "plan_line",
    "result_line",
    "show_lines",
    "show_record",
    "FACT_FIELDS",
    "WRITER_FIELDS",
    "first_to_stop",
    "replay_facts",
    "rss_step",
    "stopped_first",
    "writer_facts",
    "writer_table",
    "writers_record",
    "writers_report",
    "verify_lines",
    "verify_report",
    "when",
]


# ---------------------------------------------------------------------------- values


def jsonable(v: Any) -> Any:
    """Extended JSON for history values: NaN/Infinity stay (as wandb's history does)."""
    if isinstance(v, dict) or (hasattr(v, "keys") and hasattr(v, "__getitem__")):
        return {str(k): jsonable(x) for k, x in dict(v).items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def dumps(obj: Any, **kw: Any) -> str:
    """``obj`` as extended JSON (see ``jsonable``); anything else JSON cannot hold as its ``str``."""
    return json.dumps(jsonable(obj), default=str, **kw)


def age(ts: float | None, now: float | None = None) -> str:
    """How long ago ``ts`` was: ``"12s ago"``, ``"5m ago"``, ``"1.5h ago"``, ``"2.0d ago"``; ``"-"`` for none."""
    if not ts:
        return "-"
    s = max(0.0, (time.time() if now is None else now) - ts)
    if s < 60:
        return f"{s:.0f}s ago"
    if s < 3600:
        return f"{s / 60:.0f}m ago"
    if s < 86400:
        return f"{s / 3600:.1f}h ago"
    return f"{s / 86400:.1f}d ago"


def when(ts: float | None) -> str:
    """``ts`` as local time, ``"2026-01-31 12:00:00"``; ``"-"`` for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def describe(v: Any) -> str:
    """A short human text for one value: media as ``<image 4x4 png>``, floats to 6 digits, long lists cut."""
    if isinstance(v, dict) or (hasattr(v, "keys") and hasattr(v, "__getitem__")):
        d = dict(v)
        if TYPE_KEY in d:  # a typed value (``vocab.is_typed_value``), not a subtree
            try:
                from wandblite.media import describe as describe_media

                return str(describe_media(d))
            except Exception:  # noqa: BLE001
                return f"<{d[TYPE_KEY]}>"
        return "{" + ", ".join(f"{k}: {describe(x)}" for k, x in d.items()) + "}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if abs(v) >= 1e6:
            return f"{v:.3f}"  # timestamps: keep the seconds
        return f"{v:.6g}"
    if isinstance(v, list):
        if len(v) > 8:
            return "[" + ", ".join(describe(x) for x in v[:8]) + f", ... ({len(v)} items)]"
        return "[" + ", ".join(describe(x) for x in v) + "]"
    return repr(v) if isinstance(v, str) else str(v)


def marked_alerts(r: Replay) -> list[dict[str, Any]]:
    """The run's alerts with their ``ts`` and ``throttled``: wandb would not have sent it (an earlier
    sent alert of the same title within its ``wait_duration``), the rule the server stores."""
    if not r.alerts:
        return []
    timed = [{**d[1], "ts": d[0]} for kind, d in r.events()
             if kind == "alert" and isinstance(d, (list, tuple)) and len(d) >= 2 and isinstance(d[1], dict)]
    if len(timed) != len(r.alerts):  # a record replay kept but its timing cannot be read: mark none
        return [{**a, "throttled": False} for a in r.alerts]
    return [{**a, "throttled": t} for a, t in zip(timed, throttle(timed))]


# ---------------------------------------------------------------------------- ls


def listing_record(r: Replay) -> dict[str, Any]:
    """One run of ``wandblite ls --json``."""
    return {
        "id": r.id, "name": r.name, "project": r.project, "state": r.state, "step": r.step,
        "rows": r.rows, "last_write": r.last_alive, "created_at": r.created_at, "path": str(r.path),
        "damaged": bool(r.damage),
    }


def listing_table(runs: Iterable[Replay], now: float | None = None) -> list[str]:
    """The lines of ``wandblite ls``: a header and one aligned line per run (a damaged run's state ends in ``!``)."""
    header = ("ID", "NAME", "PROJECT", "STATE", "STEPS", "LAST WRITE", "PATH")
    rows = [(r.id, r.name or "", r.project or "", r.state + ("!" if r.damage else ""), str(r.rows),
             age(r.last_alive, now), str(r.path)) for r in runs]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in (header, *rows)]


# ---------------------------------------------------------------------------- show

#: The states of a run that ended badly: ``show`` gives them a crash report (in place of the last
#: system sample, which the crash report's memory line repeats).
_ENDED_BADLY = frozenset({"crashed", "failed"})


def _last_rows(r: Replay, n: int) -> list[dict[str, Any]]:
    return list(deque(r.scan_history(), maxlen=n)) if n > 0 else []


def show_record(r: Replay, nrows: int = 5) -> dict[str, Any]:
    """The run as ``wandblite show --json`` prints it (its last ``nrows`` history rows included)."""
    last = _last_rows(r, nrows)
    alerts = marked_alerts(r)
    return {
        "id": r.id, "name": r.name, "project": r.project, "entity": r.entity, "group": r.group,
        "job_type": r.job_type, "tags": r.tags, "notes": r.notes, "state": r.state,
        "exit_code": r.exit_code, "error": r.error, "signal": r.signal, "created_at": r.created_at,
        "last_alive": r.last_alive, "step": r.step, "rows": r.rows, "config": r.config,
        "summary": r.summary, "last_rows": last, "damage": r.damage, "path": str(r.path),
        "context": r.context, "alerts": alerts, "files": r.files, "artifacts": r.artifacts,
        "uses": r.uses, "last_system": r.last_system,
        "console_tail": [t for _ts, _s, t in r.console_tail[-20:]],
        **({"preempting": r.preempting} if r.preempting is not None else {}),
        **(writers_record(r) if r.shared else {}),
    }


def writers_record(r: Replay) -> dict[str, Any]:
    """A shared run's writers and crash report as ``show --json`` gives them: ``{"writers": [{"label",
    "host", "pid", "primary", "update_finish_state", "state", "exit_code", "signal", "started_at",
    "last_record", "last_alive", "steps", "rows", "attempts"}], "stopped_first"}``, ``stopped_first``
    only for a crashed or failed run (else None): ``writers_report`` over ``replay_facts``."""
    return writers_report(replay_facts(r), r.state)


#: One writer's entry in the writers table (``show --json``'s ``writers``, the server's run answer).
WRITER_FIELDS = ("label", "host", "pid", "primary", "update_finish_state", "state", "exit_code", "signal",
                 "started_at", "last_record", "last_alive", "steps", "rows", "attempts")
#: What the crash report reads of a writer besides its entry (``writer_facts``).
FACT_FIELDS = ("error", "last_lines", "last_memory", "rss_mb")


def _writer_json(w: Mapping[str, Any]) -> dict[str, Any]:
    return {k: w[k] for k in WRITER_FIELDS}


def _memory(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if "memory" in k.lower() or "rss" in k.lower()}


def rss_step(summary: dict[str, Any] | None, metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """``summary`` (``{"first", "last", "max", "samples"}`` of a writer's RSS, or None before any) with
    one more system sample's ``metrics`` counted (a sample without a numeric RSS changes nothing)."""
    v = metrics.get(PROCESS_RSS_KEY)
    if not is_number(v):
        return summary
    if summary is None:
        return {"first": v, "last": v, "max": v, "samples": 1}
    return {"first": summary["first"], "last": v, "max": max(summary["max"], v), "samples": summary["samples"] + 1}


def writer_facts(w: Mapping[str, Any], console_tail: Iterable[tuple[float, str, str]],
                 rss_mb: dict[str, Any] | None) -> dict[str, Any]:
    """What the writers table and crash report need of one writer, from that writer alone: its
    entry (``WRITER_FIELDS`` of a ``Replay.writers`` item), its ``error``, its last console lines
    (``last_lines``, at most 20, from its joined console tail), its last memory figures
    (``last_memory``, from its last system sample) and its RSS summary (``rss_mb``, ``rss_step``
    over its samples; None when it did not crash or fail: no report reads it). ``replay_facts``
    builds them from files, a shared run's ``WriterTail`` from the one writer it reads (sent to the
    server with the writer's fold)."""
    last_sys = w["last_system"]
    return {
        **_writer_json(w),
        "error": w["error"],
        "last_lines": [t.rstrip("\n") for _ts, _s, t in list(console_tail)[-20:]],
        "last_memory": _memory(last_sys[1]) if last_sys else {},
        "rss_mb": rss_mb if w["state"] in _ENDED_BADLY else None,
    }


def replay_facts(r: Replay) -> list[dict[str, Any]]:
    """``writer_facts`` of every writer of ``r``, in ``r.writers``' order (precedence)."""
    out = []
    for w in r.writers:
        rss = None
        if w["state"] in _ENDED_BADLY:
            for _ts, m in r.system_metrics(writer=w["label"] or ""):
                rss = rss_step(rss, m)
        out.append(writer_facts(w, r.writer_console_tail(w["label"]), rss))
    return out


def writers_report(facts: Sequence[Mapping[str, Any]], state: str) -> dict[str, Any]:
    """The writers table and crash report of a shared run in state ``state`` from its writers'
    facts (``writer_facts``, in precedence order): pure, the one rule ``show --json`` and the
    server's run answer share."""
    return {"writers": [_writer_json(f) for f in facts],
            "stopped_first": first_to_stop(facts) if state in _ENDED_BADLY else None}


def stopped_first(r: Replay) -> dict[str, Any] | None:
    """The crash report of a shared run ``r`` (``first_to_stop`` over ``replay_facts``), or None."""
    return first_to_stop(replay_facts(r))


def first_to_stop(facts: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The crash report of a shared run from its writers' facts: the writer that stopped first, or None.

    Among the writers that crashed or failed, the one whose last sign of life (a record or a
    heartbeat) is the earliest (labels break ties): its identity and state, ``seconds_before_others``
    (from its last sign of life to the earliest last sign of life of any other writer; None when it
    left none: a writer that died before its first record stopped first of all), its last
    console lines (``last_lines``, at most 20), its last memory figures (``last_memory``) and its
    RSS over its system samples (``rss_mb``: first, last, max, samples) to show a climb.
    """
    cands = [f for f in facts if f["state"] in _ENDED_BADLY]
    if not cands:
        return None
    # a writer with no sign of life at all (it died before its first record) stopped first of all
    first = min(cands, key=lambda f: (f["last_alive"] is not None, f["last_alive"] or 0.0, f["label"] or ""))
    others = [f["last_alive"] for f in facts if f is not first and f["last_alive"] is not None]
    return {
        "writer": first["label"], "host": first["host"], "pid": first["pid"], "state": first["state"],
        "exit_code": first["exit_code"], "signal": first["signal"], "error": first["error"],
        "last_alive": first["last_alive"], "last_step": max(first["steps"] - 1, 0),
        "seconds_before_others": (min(others) - first["last_alive"]) if others and first["last_alive"] else None,
        "last_lines": list(first["last_lines"]),
        "last_memory": dict(first["last_memory"]),
        "rss_mb": first["rss_mb"],
    }


def show_lines(r: Replay, nrows: int = 5, path: str | Path | None = None,
               now: float | None = None) -> Iterator[str]:
    """The lines of ``wandblite show``: identity, state, context, the crash report of a crashed or
    failed run, damage, config, summary, system, alerts, files, artifacts and the last ``nrows`` rows.

    ``path`` is how the user named the run (the damage line repeats it in its advice).
    """
    last = _last_rows(r, nrows)
    alerts = marked_alerts(r)
    yield from _identity(r)
    if r.shared:
        yield ""
        yield from writer_table(r, now)
    if r.state in _ENDED_BADLY:
        yield ""
        yield from (shared_crash_report(r, now) if r.shared else crash_report(r, now))
    if r.damage:
        yield ""
        yield f"damage   {len(r.damage)} damaged range(s); run `wandblite verify {r.path if path is None else path}`"
    yield ""
    yield from _mapping("config", r.config, skip=())
    yield from _mapping("summary", r.summary, skip=(WANDB_KEY,))
    if r.last_system and r.state not in _ENDED_BADLY:
        ts, m = r.last_system
        yield f"system (last sample {when(ts)})"
        for k, v in list(m.items())[:12]:
            yield f"  {k}: {describe(v)}"
    yield from _alert_lines(alerts)
    yield from _record_lines(r)
    if last:
        yield f"last {len(last)} rows"
        for row in last:
            yield "  " + ", ".join(f"{k}={describe(v)}" for k, v in flatten(dict(row)).items())


def writer_table(r: Replay, now: float | None = None) -> list[str]:
    """The writers of a shared run, one aligned line each: label, host, pid, role, own state,
    last record, steps."""
    header = ("WRITER", "HOST", "PID", "ROLE", "STATE", "LAST RECORD", "STEPS")
    rows = []
    for w in r.writers:
        role = "primary" if w["primary"] else "-"
        if w["update_finish_state"]:
            role += ", decides"
        state = w["state"] + (f" (exit code {w['exit_code']}" + (f", {w['signal']}" if w["signal"] else "") + ")"
                              if w["exit_code"] is not None else "")
        rows.append((str(w["label"] or "-"), str(w["host"] or "-"), str(w["pid"] or "-"), role, state,
                     f"{when(w['last_alive'])} ({age(w['last_alive'], now)})", str(w["steps"])))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return ["writers"] + ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in (header, *rows)]


def shared_crash_report(r: Replay, now: float | None = None) -> Iterator[str]:
    """The crash report of a shared run (``stopped_first``) as text."""
    first = stopped_first(r)
    if first is None:
        yield f"last alive  {when(r.last_alive)} ({age(r.last_alive, now)}); no writer crashed or failed"
        return
    gap = first["seconds_before_others"]
    if first["last_alive"] is None:
        yield f"stopped first  {first['writer']} ({first['state']}): it died before writing its first record"
        return
    yield (f"stopped first  {first['writer']} on {first['host']} (pid {first['pid']}, {first['state']}"
           + (f", {first['signal']}" if first["signal"] else "") + f") at {when(first['last_alive'])}"
           + (f", {gap:.1f} s before the others" if gap is not None else "") + f", last step {first['last_step']}")
    if first["error"]:
        yield f"error       {first['error'].get('type')}: {first['error'].get('message')}"
    rss = first["rss_mb"]
    if rss:
        trend = "climbed" if rss["last"] > rss["first"] * 1.1 else "went"
        yield (f"its RSS     {trend} {_mb(rss['first'])} -> {_mb(rss['last'])} (max {_mb(rss['max'])}, "
               f"{rss['samples']} samples)")
    if first["last_memory"]:
        yield "last memory " + "  ".join(f"{k}={describe(v)}" for k, v in first["last_memory"].items())
    if first["last_lines"]:
        yield "its last console lines:"
        for line in first["last_lines"][-10:]:
            yield f"    {line}"


def _mb(v: float) -> str:
    return f"{v / 1024:.1f} GB" if v >= 1024 else f"{v:.0f} MB"


def _identity(r: Replay) -> Iterator[str]:
    yield f"run      {r.id}  ({r.name})"
    yield (f"project  {r.project}" + (f"   group {r.group}" if r.group else "")
           + (f"   job_type {r.job_type}" if r.job_type else ""))
    if r.tags:
        yield f"tags     {', '.join(r.tags)}"
    if r.notes:
        yield f"notes    {r.notes}"
    state = r.state
    if r.exit_code is not None:
        state += f" (exit code {r.exit_code}" + (f", {r.signal}" if r.signal else "") + ")"
    yield f"state    {state}"
    if r.preempting is not None:
        yield f"preempt  marked preempting {when(r.preempting)} (run.mark_preempting)"
    yield (f"created  {when(r.created_at)}   runtime {r.runtime:.1f}s   steps {r.step}   rows {r.rows}"
           + (f"   attempts {len(r.attempts)}" if len(r.attempts) > 1 else ""))
    ctx = r.context
    if ctx:
        yield "context  " + "   ".join(_context_bits(r, ctx))
    yield f"path     {r.path}"


def _context_bits(r: Replay, ctx: Mapping[str, Any]) -> list[str]:
    bits = [f"host {ctx.get('host') or r.host}", f"pid {ctx.get('pid')}"]
    slurm = ctx.get("slurm") or {}
    if slurm:
        bits.append("slurm " + " ".join(f"{k}={v}" for k, v in slurm.items()))
    git = ctx.get("git") or {}
    if git.get("commit"):
        bits.append(f"git {str(git['commit'])[:12]}{' (dirty)' if git.get('dirty') else ''}")
    return bits


def crash_report(r: Replay, now: float | None = None) -> Iterator[str]:
    """What a crashed or failed run left behind: when it was last alive, its error and the last lines
    of its traceback, its last memory sample and its last console lines."""
    if r.state == "crashed":
        yield f"last alive  {when(r.last_alive)} ({age(r.last_alive, now)}), last step {max(r.step - 1, 0)}"
    if r.error:
        yield f"error       {r.error.get('type')}: {r.error.get('message')}"
        tb = (r.error.get("traceback") or "").rstrip().splitlines()
        for line in tb[-6:]:
            yield f"    {line}"
    if r.last_system:
        _ts, m = r.last_system
        mem = {k: v for k, v in m.items() if "memory" in k.lower() or "rss" in k.lower()}
        if mem:
            yield "last memory " + "  ".join(f"{k}={describe(v)}" for k, v in mem.items())
    if r.console_tail:
        yield "last console lines:"
        for _ts, _stream, text in r.console_tail[-10:]:
            for line in text.rstrip("\n").splitlines()[-10:]:
                yield f"    {line}"


def _mapping(title: str, values: Mapping[str, Any], skip: tuple[str, ...]) -> Iterator[str]:
    yield title
    for k, v in values.items():
        if k not in skip:
            yield f"  {k}: {describe(v)}"
    if not values:
        yield "  (empty)"


def _alert_lines(alerts: list[dict[str, Any]]) -> Iterator[str]:
    if not alerts:
        return
    yield "alerts"
    for a in alerts[-10:]:
        note = (f"  (suppressed: same title within {effective_wait(a.get('wait_duration')):g} s)"
                if a["throttled"] else "")
        yield f"  [{a.get('level', 'INFO')}] {a.get('title')}: {a.get('text')}{note}"


def _record_lines(r: Replay) -> Iterator[str]:
    if r.files:
        yield "files"
        for name, f in sorted(r.files.items()):
            yield f"  {name}  {f.get('size', '?')} bytes  ({f.get('policy', 'now')})"
    if r.artifacts:
        yield "artifacts"
        for a in r.artifacts:
            yield (f"  {a.get('name')}:v{a.get('version')}  {a.get('type')}  {len(a.get('entries') or {})} file(s)  "
                   f"aliases {', '.join(a.get('aliases') or [])}")
    if r.uses:
        yield "used artifacts"
        for u in r.uses:
            yield f"  {u.get('name')}:v{u.get('version')}  {u.get('type')}  (logged by run {u.get('run')})"


# ---------------------------------------------------------------------------- verify


def verify_report(r: Replay) -> dict[str, Any]:
    """Every record and media blob of the run checked: ``{"run", "path", "state", "records", "damage",
    "torn_tail", "media_damage", "media_refs", "ok"}`` (what ``wandblite verify --json`` prints).

    A torn tail at the end of an attempt that did not finish cleanly (a crashed or running run's last
    segment, or any earlier segment) is listed under ``torn_tail``, not ``damage``: no ``log`` call
    that returned is lost with it. Every blob is checked, and every media reference in the history
    must resolve and verify.
    """
    from wandblite import media

    report: dict[str, Any] = {"run": r.id, "path": str(r.path), "state": r.state, "records": 0,
                              "damage": [], "torn_tail": [], "media_damage": []}
    report["records"] = sum(1 for _ in r.events())
    seg_count = len(r.segments())
    writers = {w["label"]: w for w in r.writers}
    for d in r.damage:
        is_tail = "tail" in d["reason"]
        if r.shared:  # each writer's stream on its own: its last segment, its own state
            w = writers.get(d.get("writer"), {})
            last_seg = d["segment"] == w.get("attempts", 1) - 1
            unfinished = w.get("state") in ("crashed", "running")
        else:
            last_seg = d["segment"] == seg_count - 1 if seg_count else True
            unfinished = r.state in ("crashed", "running")
        if is_tail and (unfinished or not last_seg):
            report["torn_tail"].append(d)
        else:
            report["damage"].append(d)
    refs = [ref for row in r.scan_history() for ref in media.iter_refs(row)]
    report["media_damage"] = list(media.verify(r.path, refs))
    report["media_refs"] = len(refs)
    report["ok"] = not (report["damage"] or report["media_damage"])
    return report


def verify_lines(r: Replay, report: Mapping[str, Any]) -> Iterator[str]:
    """The text of ``wandblite verify`` for the ``verify_report`` of ``r``, ending in ``ok`` or ``damaged``."""
    yield (f"run {report['run']}: {report['records']} good records in {len(r.segments())} file(s), "
           f"{report['media_refs']} media reference(s), state {report['state']}")
    for d in report["damage"]:
        yield f"  DAMAGE {d['file']} offset {d['offset']} length {d['length']}: {d['reason']}"
    for d in report["torn_tail"]:
        yield (f"  torn tail {d['file']} offset {d['offset']} length {d['length']}: {d['reason']} "
               "(an unfinished write; no returned log call is lost)")
    for d in report["media_damage"]:
        yield f"  MEDIA DAMAGE {d.get('file')} offset {d.get('offset')} length {d.get('length')}: {d.get('reason')}"
    yield "ok" if report["ok"] else "damaged"


# ---------------------------------------------------------------------------- sync


def plan_line(info: Mapping[str, Any]) -> str:
    """One run of ``wandblite sync --dry-run``: what the store holds and what would be sent."""
    s = info.get("send", {})
    return (f"{info['project']}/{info['run_id']}  {info['state']:8}  local {info['local']['rows']} rows"
            f"  server {info['server']['rows']}  would send {s.get('rows', 0)} rows, "
            f"{s.get('console', 0)} console, {s.get('system', 0)} system"
            f"{', metadata' if s.get('metadata') else ''}")


def result_line(res: Any) -> str:
    """One synced run (a ``wandblite.sync.client.RunResult``) as ``wandblite sync`` reports it."""
    if not res.ok:
        return f"error: {res.path}: {res.error}"
    what = "unchanged" if res.unchanged or not (res.rows or res.console or res.system or res.meta_updated) else (
        f"sent {res.rows} rows, {res.console} console, {res.system} system, {res.media} media")
    return f"{res.project}/{res.run_id} ({res.state}): {what}"
