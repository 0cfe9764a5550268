"""``wandblite sync PATHS...``: upload runs to a server (or the embedded store), exactly once.

Layer 6. Thin: ``wandblite.sync.client`` plans and syncs, ``wandblite.embedded`` opens the embedded
store, ``wandblite.report`` words each run's line; this module picks the transport, drives the
progress bar and prints. Everything is imported inside the command, so ``wandblite --help`` loads
none of it.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from wandblite.sync.transport import Transport


@click.command("sync")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--server", default=None, help="Server URL ($WANDBLITE_SERVER, else $WANDB_BASE_URL); none: the embedded store.")
@click.option("--api-key", default=None, help="API key ($WANDBLITE_API_KEY, else $WANDB_API_KEY).")
@click.option("--project", default=None, help="Put every run into this project instead of its own.")
@click.option("--watch", is_flag=True, help="Keep tailing the runs (and new ones) until Ctrl-C or SIGTERM.")
@click.option("--interval", default=2.0, show_default=True, type=float, help="Seconds between --watch passes.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run on stdout.")
@click.option("--batch-size", default=8192, show_default=True, type=click.IntRange(1, 100_000),
              help="Records per request (a larger body is sent in parts; wandblite.sync.client.DEFAULT_BATCH).")
@click.option("--to", "to", type=click.Choice(["wandb", "mlflow"]), default=None,
              help="Replay into W&B or MLflow instead of a wandblite server.")
@click.option("--entity", default=None, help="W&B entity (with --to wandb).")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (with --to mlflow; default $MLFLOW_TRACKING_URI).")
@click.option("--experiment", default=None, help="MLflow experiment (with --to mlflow; default: the run's project).")
def sync(paths: tuple[str, ...], server: str | None, api_key: str | None, project: str | None, watch: bool,
         interval: float, dry_run: bool, as_json: bool, batch_size: int, to: str | None, entity: str | None,
         tracking_uri: str | None, experiment: str | None) -> None:
    """Upload the runs below PATHS: new, grown, finished and crashed ones; only what is missing.

    With --to wandb or --to mlflow, replay them into that tracker instead (exactly once as well).
    """
    if to is not None:
        from wandblite_cli.interop import sync_to

        sys.exit(sync_to(to, paths, entity=entity, project=project, tracking_uri=tracking_uri,
                         experiment=experiment, as_json=as_json))
    from wandblite.sync.client import discover

    if project is not None:
        from wandblite.runfile import validate_project_name

        try:
            validate_project_name(project)
        except Exception as exc:  # noqa: BLE001
            raise click.BadParameter(str(exc), param_hint="--project")
    from wandblite.login import credentials

    creds = credentials()  # env vars first (WANDBLITE_*, then WANDB_*), then what `wandblite.login()` saved
    transport = _open_transport(server or creds["server"], api_key or creds["api_key"])
    runs = discover(paths)
    if not runs and not watch:
        _log(f"no runs found below {', '.join(paths)}")
        sys.exit(0)
    if dry_run:
        sys.exit(_dry_run(transport, runs, project, as_json))
    if watch:
        _watch(transport, paths, project, interval, batch_size, as_json)
        return
    sys.exit(_sync_once(transport, runs, project, batch_size, as_json))


def _log(msg: str) -> None:
    click.echo(f"wandblite: {msg}", err=True)


def _open_transport(server: str | None, api_key: str | None) -> Transport:
    """The server at ``server``; with none, the embedded store (exit 1 when its extra is missing)."""
    try:
        if server:
            from wandblite.sync.transport import HttpTransport

            return HttpTransport(server, api_key)
        from wandblite.embedded import LocalTransport

        return LocalTransport()
    except ImportError as exc:
        _log(f"error: the embedded store needs the server extra: pip install 'wandblite[server]' ({exc})")
        sys.exit(1)


def _dry_run(transport: Transport, runs: list[Path], project: str | None, as_json: bool) -> int:
    """Print what would be sent for each run; returns the exit code (1 if any run could not be planned)."""
    from wandblite.report import plan_line
    from wandblite.sync.client import plan

    failed = False
    for p in runs:
        try:
            info = plan(p, transport, project)
        except Exception as exc:  # noqa: BLE001 - report and go on
            failed = True
            info = {"path": str(p), "error": str(exc)}
        if as_json:
            click.echo(json.dumps(info, default=str))
        elif "error" in info:
            _log(f"{p}: {info['error']}")
        else:
            click.echo(plan_line(info))
    transport.close()
    return 1 if failed else 0


def _watch(transport: Transport, paths: tuple[str, ...], project: str | None, interval: float, batch_size: int,
           as_json: bool) -> None:
    """Tail the runs below ``paths`` (and new ones) until Ctrl-C or SIGTERM."""
    from wandblite.sync.client import Syncer, install_stop_handlers

    stop = threading.Event()
    install_stop_handlers(stop)
    syncer = Syncer(transport, batch_size=batch_size, project=project, use_cache=False, log=_log)

    def on_result(res: Any) -> None:
        if as_json:
            click.echo(json.dumps(res.as_dict(), default=str))
        elif res.ok:
            _log(f"{res.project}/{res.run_id}: +{res.rows} rows, +{res.console} console, +{res.system} system ({res.state})")

    _log(f"watching {', '.join(paths)} -> {transport.target} (Ctrl-C to stop)")
    syncer.watch(list(paths), interval, stop, on_result)
    transport.close()


def _sync_once(transport: Transport, runs: list[Path], project: str | None, batch_size: int, as_json: bool) -> int:
    """Sync each run once (a progress bar on a terminal for big runs); returns the exit code."""
    from wandblite.report import result_line
    from wandblite.sync.client import Syncer

    sizes = {p: _run_bytes(p) for p in runs}
    total = sum(sizes.values())
    show_bar = not as_json and total > BAR_MIN_BYTES and sys.stderr.isatty()
    results = []
    bar_cm: Any = click.progressbar(length=total, label="syncing", file=sys.stderr,
                                    item_show_func=lambda info: info) if show_bar else _NoBar()
    with bar_cm as bar:
        progress = _Progress(bar, total, len(runs))
        syncer = Syncer(transport, batch_size=batch_size, project=project, progress=progress.advance, log=_log)
        for p in runs:
            progress.start_run(sizes[p])
            res = syncer.sync_path(p)
            progress.end_run()
            results.append(res)
    transport.close()
    for res in results:
        if as_json:
            click.echo(json.dumps(res.as_dict(), default=str))
        else:
            _log(result_line(res))
    return 0 if all(res.ok for res in results) else 1


#: Below this many bytes of run files in all, a one-shot sync shows no progress bar.
BAR_MIN_BYTES = 8 << 20


def _run_bytes(run_dir: Any) -> int:
    """The bytes of a run's segment files: what the progress bar counts."""
    from wandblite.runfile import segments

    total = 0
    for seg in segments(run_dir):
        try:
            total += seg.stat().st_size
        except OSError:
            pass
    return total


class _Progress:
    """Feeds the bar: bytes read per run, each run counted up to its size as measured before the sync.

    ``Syncer`` reports the bytes it has read (up to the start of the last record read); a run that
    ends, fails or is skipped through the sync-state cache is topped up to its size, so the bar
    ends at 100% with the real total. A run read twice (the server's position moved) or grown
    while being read never pushes the bar past its share.
    """

    def __init__(self, bar: Any, total: int, runs: int) -> None:
        self.bar, self.total, self.runs = bar, total, runs
        self.done = 0  # bytes counted for the runs before this one
        self.size = self.sent = self.index = 0

    def _show(self, n: int) -> None:
        self.bar.update(n, f"{_mib(self.done + self.sent)}/{_mib(self.total)} MiB, run {self.index} of {self.runs}")

    def start_run(self, size: int) -> None:
        self.size, self.sent = size, 0
        self.index += 1
        self._show(0)

    def advance(self, n: int) -> None:
        step = max(0, min(n, self.size - self.sent))
        if step:
            self.sent += step
            self._show(step)

    def end_run(self) -> None:
        rest = self.size - self.sent
        self.sent = self.size
        self._show(rest)
        self.done += self.size
        self.sent = 0


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int, current_item: object = None) -> None:
        pass
