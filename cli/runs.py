"""``wandblite ls | show | verify | export | logs``: reading runs from their files."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click

from wandblite.replay import Replay, flatten
from wandblite.runfile import find_runs, resolve_run_dir


def _fail(message: str) -> None:
    click.echo(f"wandblite: error: {message}", err=True)
    sys.exit(1)


def _jsonable(v: Any) -> Any:
    """Extended JSON for history values: NaN/Infinity stay (as wandb's history does)."""
    if isinstance(v, dict) or (hasattr(v, "keys") and hasattr(v, "__getitem__")):
        return {str(k): _jsonable(x) for k, x in dict(v).items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(_jsonable(obj), default=str, **kw)


def _alerts(r: Replay) -> list[dict[str, Any]]:
    """The run's alerts with their ``ts`` and ``throttled``: wandb would not have sent it (an earlier
    sent alert of the same title within its ``wait_duration``), the rule the server stores
    (wandblite/server/throttle.py, stdlib only)."""
    if not r.alerts:
        return []
    from wandblite.server.throttle import throttle

    timed = [{**d[1], "ts": d[0]} for kind, d in r.events()
             if kind == "alert" and isinstance(d, (list, tuple)) and len(d) >= 2 and isinstance(d[1], dict)]
    if len(timed) != len(r.alerts):  # a record replay kept but its timing cannot be read: mark none
        return [{**a, "throttled": False} for a in r.alerts]
    return [{**a, "throttled": t} for a, t in zip(timed, throttle(timed))]


def _open(path: str) -> Replay:
    try:
        return Replay(path)
    except FileNotFoundError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        _fail(f"{path}: {exc}")
    raise AssertionError("unreachable")


def _age(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0.0, time.time() - ts)
    if s < 60:
        return f"{s:.0f}s ago"
    if s < 3600:
        return f"{s / 60:.0f}m ago"
    if s < 86400:
        return f"{s / 3600:.1f}h ago"
    return f"{s / 86400:.1f}d ago"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _describe(v: Any) -> str:
    if isinstance(v, dict) or (hasattr(v, "keys") and hasattr(v, "__getitem__")):
        d = dict(v)
        if "_type" in d:
            try:
                from wandblite.media import describe

                return str(describe(d))
            except Exception:  # noqa: BLE001
                return f"<{d['_type']}>"
        return "{" + ", ".join(f"{k}: {_describe(x)}" for k, x in d.items()) + "}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if abs(v) >= 1e6:
            return f"{v:.3f}"  # timestamps: keep the seconds
        return f"{v:.6g}"
    if isinstance(v, list):
        if len(v) > 8:
            return "[" + ", ".join(_describe(x) for x in v[:8]) + f", ... ({len(v)} items)]"
        return "[" + ", ".join(_describe(x) for x in v) + "]"
    return repr(v) if isinstance(v, str) else str(v)


# ---------------------------------------------------------------------------- ls


@click.command("ls")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, file_okay=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run on stdout.")
def ls(paths: tuple[str, ...], as_json: bool) -> None:
    """List the runs below PATHS (default: ./runs or $WANDBLITE_DIR)."""
    if not paths:
        default = os.environ.get("WANDBLITE_DIR") or os.environ.get("WANDB_DIR") or "runs"
        if not os.path.isdir(default):
            _fail(f"no runs directory {default!r}; give a path: wandblite ls PATH")
        paths = (default,)
    runs = [p for path in paths for p in find_runs(path)]
    out = []
    for path in runs:
        try:
            r = Replay(path)
        except Exception as exc:  # noqa: BLE001 - one bad run does not hide the others
            click.echo(f"wandblite: {path}: {exc}", err=True)
            continue
        out.append(r)
    if as_json:
        for r in out:
            click.echo(_dumps({
                "id": r.id, "name": r.name, "project": r.project, "state": r.state, "step": r.step,
                "rows": r.rows, "last_write": r.last_alive, "created_at": r.created_at, "path": str(r.path),
                "damaged": bool(r.damage),
            }))
        return
    if not out:
        click.echo("no runs found", err=True)
        return
    header = ("ID", "NAME", "PROJECT", "STATE", "STEPS", "LAST WRITE", "PATH")
    rows = [(r.id, r.name or "", r.project or "", r.state + ("!" if r.damage else ""), str(r.rows),
             _age(r.last_alive), str(r.path)) for r in out]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


# ---------------------------------------------------------------------------- show


@click.command("show")
@click.argument("path", type=click.Path(exists=True))
@click.option("--rows", "nrows", default=5, show_default=True, help="How many of the last history rows to print.")
@click.option("--json", "as_json", is_flag=True, help="The run as one JSON object on stdout.")
def show(path: str, nrows: int, as_json: bool) -> None:
    """Show a run: identity, state, config, summary and its last rows."""
    r = _open(path)
    last: list[dict[str, Any]] = []
    if nrows > 0:
        from collections import deque

        last = list(deque(r.scan_history(), maxlen=nrows))
    alerts = _alerts(r)
    if as_json:
        click.echo(_dumps({
            "id": r.id, "name": r.name, "project": r.project, "entity": r.entity, "group": r.group,
            "job_type": r.job_type, "tags": r.tags, "notes": r.notes, "state": r.state,
            "exit_code": r.exit_code, "error": r.error, "signal": r.signal, "created_at": r.created_at,
            "last_alive": r.last_alive, "step": r.step, "rows": r.rows, "config": r.config,
            "summary": r.summary, "last_rows": last, "damage": r.damage, "path": str(r.path),
            "context": r.context, "alerts": alerts, "files": r.files, "artifacts": r.artifacts,
            "uses": r.uses, "last_system": r.last_system,
            "console_tail": [t for _ts, _s, t in r.console_tail[-20:]],
        }))
        return
    e = click.echo
    e(f"run      {r.id}  ({r.name})")
    e(f"project  {r.project}" + (f"   group {r.group}" if r.group else "") + (f"   job_type {r.job_type}" if r.job_type else ""))
    if r.tags:
        e(f"tags     {', '.join(r.tags)}")
    if r.notes:
        e(f"notes    {r.notes}")
    state = r.state
    if r.exit_code is not None:
        state += f" (exit code {r.exit_code}" + (f", {r.signal}" if r.signal else "") + ")"
    e(f"state    {state}")
    e(f"created  {_when(r.created_at)}   runtime {r.runtime:.1f}s   steps {r.step}   rows {r.rows}"
      + (f"   attempts {len(r.attempts)}" if len(r.attempts) > 1 else ""))
    ctx = r.context
    if ctx:
        host = ctx.get("host") or r.host
        bits = [f"host {host}", f"pid {ctx.get('pid')}"]
        slurm = ctx.get("slurm") or {}
        if slurm:
            bits.append("slurm " + " ".join(f"{k}={v}" for k, v in slurm.items()))
        git = ctx.get("git") or {}
        if git.get("commit"):
            bits.append(f"git {str(git['commit'])[:12]}{' (dirty)' if git.get('dirty') else ''}")
        e("context  " + "   ".join(bits))
    e(f"path     {r.path}")
    if r.state in ("crashed", "failed"):
        e("")
        if r.state == "crashed":
            e(f"last alive  {_when(r.last_alive)} ({_age(r.last_alive)}), last step {max(r.step - 1, 0)}")
        if r.error:
            e(f"error       {r.error.get('type')}: {r.error.get('message')}")
            tb = (r.error.get("traceback") or "").rstrip().splitlines()
            for line in tb[-6:]:
                e(f"    {line}")
        if r.last_system:
            ts, m = r.last_system
            mem = {k: v for k, v in m.items() if "memory" in k.lower() or "rss" in k.lower()}
            if mem:
                e("last memory " + "  ".join(f"{k}={_describe(v)}" for k, v in mem.items()))
        if r.console_tail:
            e("last console lines:")
            for _ts, _stream, text in r.console_tail[-10:]:
                for line in text.rstrip("\n").splitlines()[-10:]:
                    e(f"    {line}")
    if r.damage:
        e("")
        e(f"damage   {len(r.damage)} damaged range(s); run `wandblite verify {path}`")
    e("")
    e("config")
    for k, v in r.config.items():
        e(f"  {k}: {_describe(v)}")
    if not r.config:
        e("  (empty)")
    e("summary")
    for k, v in r.summary.items():
        if k == "_wandb":
            continue
        e(f"  {k}: {_describe(v)}")
    if not r.summary:
        e("  (empty)")
    if r.last_system and r.state not in ("crashed", "failed"):
        ts, m = r.last_system
        e(f"system (last sample {_when(ts)})")
        for k, v in list(m.items())[:12]:
            e(f"  {k}: {_describe(v)}")
    if alerts:
        from wandblite.server.throttle import effective_wait

        e("alerts")
        for a in alerts[-10:]:
            note = (f"  (suppressed: same title within {effective_wait(a.get('wait_duration')):g} s)"
                    if a["throttled"] else "")
            e(f"  [{a.get('level', 'INFO')}] {a.get('title')}: {a.get('text')}{note}")
    if r.files:
        e("files")
        for name, f in sorted(r.files.items()):
            e(f"  {name}  {f.get('size', '?')} bytes  ({f.get('policy', 'now')})")
    if r.artifacts:
        e("artifacts")
        for a in r.artifacts:
            e(f"  {a.get('name')}:v{a.get('version')}  {a.get('type')}  {len(a.get('entries') or {})} file(s)  "
              f"aliases {', '.join(a.get('aliases') or [])}")
    if r.uses:
        e("used artifacts")
        for u in r.uses:
            e(f"  {u.get('name')}:v{u.get('version')}  {u.get('type')}  (logged by run {u.get('run')})")
    if last:
        e(f"last {len(last)} rows")
        for row in last:
            e("  " + ", ".join(f"{k}={_describe(v)}" for k, v in flatten(dict(row)).items()))


# ---------------------------------------------------------------------------- verify


@click.command("verify")
@click.argument("path", type=click.Path(exists=True))
@click.option("--repair", is_flag=True, help="Write a clean copy beside the run (PATH.repaired); never in place.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON on stdout.")
def verify(path: str, repair: bool, as_json: bool) -> None:
    """Check every record (and media blob) of a run; exit 1 if anything is damaged.

    A torn tail of a crashed or running run (the record being written when the process died, or is
    writing now) is reported but is not damage: no ``log`` call that returned is lost with it.
    """
    run_dir = resolve_run_dir(path)
    r = _open(str(run_dir))
    report: dict[str, Any] = {"run": r.id, "path": str(run_dir), "state": r.state, "records": 0,
                              "damage": [], "torn_tail": [], "media_damage": []}
    report["records"] = sum(1 for _ in r.events())
    seg_count = len(r.segments())
    for d in r.damage:
        is_tail = "tail" in d["reason"]
        last_seg = d["segment"] == seg_count - 1 if seg_count else True
        # A torn tail is normal at the end of any attempt that did not finish cleanly.
        if is_tail and (r.state in ("crashed", "running") or not last_seg):
            report["torn_tail"].append(d)
        else:
            report["damage"].append(d)
    from wandblite import media

    # Every blob is checked, and every media reference in the history must resolve and verify.
    refs = [ref for row in r.scan_history() for ref in media.iter_refs(row)]
    report["media_damage"] = list(media.verify(run_dir, refs))
    report["media_refs"] = len(refs)
    damaged = bool(report["damage"] or report["media_damage"])
    report["ok"] = not damaged
    if repair:
        report["repaired_to"] = str(_repair(run_dir))
    if as_json:
        click.echo(_dumps(report))
    else:
        click.echo(f"run {r.id}: {report['records']} good records in {seg_count} file(s), "
                   f"{report['media_refs']} media reference(s), state {r.state}")
        for d in report["damage"]:
            click.echo(f"  DAMAGE {d['file']} offset {d['offset']} length {d['length']}: {d['reason']}")
        for d in report["torn_tail"]:
            click.echo(f"  torn tail {d['file']} offset {d['offset']} length {d['length']}: {d['reason']} "
                       "(an unfinished write; no returned log call is lost)")
        for d in report["media_damage"]:
            click.echo(f"  MEDIA DAMAGE {d.get('file')} offset {d.get('offset')} length {d.get('length')}: {d.get('reason')}")
        click.echo("ok" if not damaged else "damaged")
        if repair:
            click.echo(f"clean copy written to {report['repaired_to']}")
    sys.exit(1 if damaged else 0)


def _repair(run_dir: Path) -> Path:
    """Copy every good record into fresh segment files beside the run: ``<run>.repaired``."""
    from wandblite.format import RecordReader, file_header, frame
    from wandblite.runfile import segments

    dest = run_dir.with_name(run_dir.name + ".repaired")
    if dest.exists():
        _fail(f"{dest} already exists; move it away first")
    tmp = run_dir.with_name(run_dir.name + ".repairing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for seg in segments(run_dir):
        with open(tmp / seg.name, "wb") as out:
            out.write(file_header())
            for _offset, kind, payload in RecordReader(seg):
                out.write(frame(kind, payload))
            out.flush()
            os.fsync(out.fileno())
    for sub in ("files", "media"):
        if (run_dir / sub).is_dir():
            shutil.copytree(run_dir / sub, tmp / sub)
    os.rename(tmp, dest)
    return dest


# ---------------------------------------------------------------------------- export


@click.command("export")
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "tensorboard"]), default="jsonl", show_default=True)
@click.option("--out", "out_path", type=click.Path(), default=None, help="Output file (default: stdout).")
@click.option("--media-dir", type=click.Path(), default=None, help="Also write the run's media out as files here.")
def export(path: str, fmt: str, out_path: str | None, media_dir: str | None) -> None:
    """Export a run's history: one row per line (jsonl, nested), flattened columns (csv), or
    TensorBoard event files (tensorboard, needs --out DIR; no TensorFlow needed)."""
    if fmt == "tensorboard":
        if not out_path:
            raise click.UsageError("--format tensorboard needs --out DIR")
        from wandblite_cli.interop import export_tensorboard

        sys.exit(export_tensorboard(_open(path).path, out_path))
    r = _open(path)
    out = open(out_path, "w", newline="", encoding="utf-8") if out_path else sys.stdout
    try:
        if fmt == "jsonl":
            for row in r.scan_history():
                out.write(_dumps(row) + "\n")
        else:
            columns: dict[str, None] = {}
            for row in r.scan_history():  # first pass: the union of columns, in first-seen order
                for k in flatten(dict(row)):
                    columns.setdefault(k, None)
            names = ["_step", "_runtime", "_timestamp"] + [c for c in columns if c not in ("_step", "_runtime", "_timestamp")]
            w = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
            w.writeheader()
            for row in r.scan_history():
                flat = flatten(dict(row))
                w.writerow({k: (_dumps(v) if isinstance(v, (dict, list)) or hasattr(v, "keys") else v) for k, v in flat.items()})
    finally:
        if out_path:
            out.close()
    if media_dir:
        from wandblite import media

        refs = [ref for row in r.scan_history() for ref in media.iter_refs(row)]
        written = media.export(r.path, media_dir, refs)
        click.echo(f"wrote {len(written)} media file(s) to {media_dir}", err=True)


# ---------------------------------------------------------------------------- logs


@click.command("logs")
@click.argument("path", type=click.Path(exists=True))
@click.option("--tail", "tail", type=int, default=None, help="Only the last N lines.")
@click.option("--timestamps", is_flag=True, help="Prefix each record with its time.")
def logs(path: str, tail: int | None, timestamps: bool) -> None:
    """Print the console output a run captured (stdout and stderr, as written)."""
    r = _open(path)
    if tail is None and not timestamps:
        for _ts, _stream, text in r.console(joined=True):
            sys.stdout.write(text)
        return
    from collections import deque

    lines: Any = deque(maxlen=tail) if tail else []
    for ts, _stream, text in r.console(joined=True):
        for line in text.splitlines():
            lines.append(f"{_when(ts)}  {line}" if timestamps else line)
    for line in lines:
        click.echo(line)
