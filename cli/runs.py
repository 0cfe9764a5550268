"""``wandblite ls | show | verify | export | logs``: reading runs from their files.

Layer 6. Thin: what these commands say is computed by ``wandblite.report`` (the listing, the run
report with its crash report, the verification report) and ``wandblite.replay``; the commands
only call, print and choose the exit code.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from wandblite import report
from wandblite.replay import Replay, flatten
from wandblite.runfile import find_runs, resolve_run_dir
from wandblite.vocab import FILES_DIR, MEDIA_DIR, RESERVED, RESERVED_KEYS


def _fail(message: str) -> None:
    click.echo(f"wandblite: error: {message}", err=True)
    sys.exit(1)


def _open(path: str) -> Replay:
    try:
        return Replay(path)
    except FileNotFoundError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        _fail(f"{path}: {exc}")
    raise AssertionError("unreachable")


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
            click.echo(report.dumps(report.listing_record(r)))
        return
    if not out:
        click.echo("no runs found", err=True)
        return
    for line in report.listing_table(out):
        click.echo(line)


# ---------------------------------------------------------------------------- show


@click.command("show")
@click.argument("path", type=click.Path(exists=True))
@click.option("--rows", "nrows", default=5, show_default=True, help="How many of the last history rows to print.")
@click.option("--json", "as_json", is_flag=True, help="The run as one JSON object on stdout.")
def show(path: str, nrows: int, as_json: bool) -> None:
    """Show a run: identity, state, config, summary and its last rows."""
    r = _open(path)
    if as_json:
        click.echo(report.dumps(report.show_record(r, nrows)))
        return
    for line in report.show_lines(r, nrows, path):
        click.echo(line)


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
    result = report.verify_report(r)
    if repair:
        result["repaired_to"] = str(_repair(run_dir))
    if as_json:
        click.echo(report.dumps(result))
    else:
        for line in report.verify_lines(r, result):
            click.echo(line)
        if repair:
            click.echo(f"clean copy written to {result['repaired_to']}")
    sys.exit(0 if result["ok"] else 1)


def _repair(run_dir: Path) -> Path:
    """Copy every good record into fresh segment files beside the run: ``<run>.repaired``."""
    from wandblite.format import RecordReader, file_header, frame
    from wandblite.runfile import writer_streams

    dest = run_dir.with_name(run_dir.name + ".repaired")
    if dest.exists():
        _fail(f"{dest} already exists; move it away first")
    tmp = run_dir.with_name(run_dir.name + ".repairing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for seg in (p for stream in writer_streams(run_dir).values() for p in stream):  # every writer's
        with open(tmp / seg.name, "wb") as out:
            out.write(file_header())
            for _offset, kind, payload in RecordReader(seg):
                out.write(frame(kind, payload))
            out.flush()
            os.fsync(out.fileno())
    for sub in (FILES_DIR, MEDIA_DIR):
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
                out.write(report.dumps(row) + "\n")
        else:
            columns: dict[str, None] = {}
            for row in r.scan_history():  # first pass: the union of columns, in first-seen order
                for k in flatten(dict(row)):
                    columns.setdefault(k, None)
            names = [*RESERVED_KEYS, *(c for c in columns if c not in RESERVED)]
            w = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
            w.writeheader()
            for row in r.scan_history():
                flat = flatten(dict(row))
                w.writerow({k: (report.dumps(v) if isinstance(v, (dict, list)) or hasattr(v, "keys") else v) for k, v in flat.items()})
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
@click.option("--writer", "writer", default=None, metavar="LABEL",
              help="A shared run: only this writer's output (default: every writer's, each line tagged [LABEL]).")
def logs(path: str, tail: int | None, timestamps: bool, writer: str | None) -> None:
    """Print the console output a run captured (stdout and stderr, as written)."""
    r = _open(path)
    if writer is not None and not r.shared:
        _fail(f"{path}: --writer is for shared runs (several writers); this run has one")
    try:
        records = r.console(joined=True, writer=writer)
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))
    if tail is None and not timestamps:
        for _ts, _stream, text in records:
            sys.stdout.write(text)
        return
    from collections import deque

    lines: Any = deque(maxlen=tail) if tail else []
    for ts, _stream, text in records:
        for line in text.splitlines():
            lines.append(f"{report.when(ts)}  {line}" if timestamps else line)
    for line in lines:
        click.echo(line)
