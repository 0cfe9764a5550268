"""``wandblite sync PATHS...``: upload runs to a server (or the embedded store), exactly once."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import click


@click.command("sync")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--server", default=None, help="Server URL ($WANDBLITE_SERVER, else $WANDB_BASE_URL); none: the embedded store.")
@click.option("--api-key", default=None, help="API key ($WANDBLITE_API_KEY, else $WANDB_API_KEY).")
@click.option("--project", default=None, help="Put every run into this project instead of its own.")
@click.option("--watch", is_flag=True, help="Keep tailing the runs (and new ones) until Ctrl-C or SIGTERM.")
@click.option("--interval", default=2.0, show_default=True, type=float, help="Seconds between --watch passes.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run on stdout.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000), help="Records per request.")
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
    from wandblite.sync.client import Syncer, discover, install_stop_handlers, plan
    from wandblite.sync.transport import HttpTransport, LocalTransport, SyncError

    if project is not None:
        from wandblite.runfile import validate_project_name

        try:
            validate_project_name(project)
        except Exception as exc:  # noqa: BLE001
            raise click.BadParameter(str(exc), param_hint="--project")
    from wandblite.login import credentials

    creds = credentials()  # env vars first (WANDBLITE_*, then WANDB_*), then what `wandblite.login()` saved
    server = server or creds["server"]
    api_key = api_key or creds["api_key"]

    def log(msg: str) -> None:
        click.echo(f"wandblite: {msg}", err=True)

    try:
        transport = HttpTransport(server, api_key) if server else LocalTransport()
    except ImportError as exc:
        log(f"error: the embedded store needs the server extra: pip install 'wandblite[server]' ({exc})")
        sys.exit(1)
    runs = discover(paths)
    if not runs and not watch:
        log(f"no runs found below {', '.join(paths)}")
        sys.exit(0)

    if dry_run:
        failed = False
        for p in runs:
            try:
                info = plan(p, transport, project)
            except (SyncError, Exception) as exc:  # noqa: BLE001 - report and go on
                failed = True
                info = {"path": str(p), "error": str(exc)}
            if as_json:
                click.echo(json.dumps(info, default=str))
            elif "error" in info:
                log(f"{p}: {info['error']}")
            else:
                s = info.get("send", {})
                click.echo(f"{info['project']}/{info['run_id']}  {info['state']:8}  local {info['local']['rows']} rows"
                           f"  server {info['server']['rows']}  would send {s.get('rows', 0)} rows, "
                           f"{s.get('console', 0)} console, {s.get('system', 0)} system"
                           f"{', metadata' if s.get('metadata') else ''}")
        transport.close()
        sys.exit(1 if failed else 0)

    if watch:
        stop = threading.Event()
        install_stop_handlers(stop)
        syncer = Syncer(transport, batch_size=batch_size, project=project, use_cache=False, log=log)

        def on_result(res: Any) -> None:
            if as_json:
                click.echo(json.dumps(res.as_dict(), default=str))
            elif res.ok:
                log(f"{res.project}/{res.run_id}: +{res.rows} rows, +{res.console} console, +{res.system} system ({res.state})")

        log(f"watching {', '.join(paths)} -> {transport.target} (Ctrl-C to stop)")
        syncer.watch(list(paths), interval, stop, on_result)
        transport.close()
        return

    sizes = {p: _run_bytes(p) for p in runs}
    total = sum(sizes.values())
    show_bar = not as_json and total > BAR_MIN_BYTES and sys.stderr.isatty()
    results = []
    bar_cm: Any = click.progressbar(length=total, label="syncing", file=sys.stderr,
                                    item_show_func=lambda info: info) if show_bar else _NoBar()
    with bar_cm as bar:
        progress = _Progress(bar, total, len(runs))
        syncer = Syncer(transport, batch_size=batch_size, project=project, progress=progress.advance, log=log)
        for p in runs:
            progress.start_run(sizes[p])
            res = syncer.sync_path(p)
            progress.end_run()
            results.append(res)
    transport.close()
    ok = True
    for res in results:
        ok = ok and res.ok
        if as_json:
            click.echo(json.dumps(res.as_dict(), default=str))
        elif not res.ok:
            log(f"error: {res.path}: {res.error}")
        else:
            what = "unchanged" if res.unchanged or not (res.rows or res.console or res.system or res.meta_updated) else (
                f"sent {res.rows} rows, {res.console} console, {res.system} system, {res.media} media")
            log(f"{res.project}/{res.run_id} ({res.state}): {what}")
    sys.exit(0 if ok else 1)


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
