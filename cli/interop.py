"""Sync runs into W&B or MLflow, export them for TensorBoard: the CLI side of ``wandblite.interop``.

* ``sync_to(target, paths, **opts) -> exit code``: the body of ``wandblite sync PATHS --to wandb|mlflow``.
* ``export_tensorboard(run_dir, out_dir) -> exit code``: the body of
  ``wandblite export RUN --format tensorboard --out DIR``.
* ``interop_sync``: the click command ``sync-to wandb|mlflow PATHS`` (registered until ``sync --to``
  is wired).

One line per run (``run <id> (<state>): ...``) goes to stderr, prefixed ``wandblite:`` like
``wandblite sync``; with ``--json`` one JSON object per run goes to stdout instead. Every run is
tried, whatever happened to the others; the exit code is 1 if any run failed, else 0 (a running run
that is skipped is not a failure). When a target turns out to be unreachable, the remaining runs
get the same error line at once instead of each waiting for its own timeout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

TARGETS = ("wandb", "mlflow")


def _discover(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    from wandblite.runfile import find_runs

    seen: dict[Path, None] = {}
    for p in paths:
        for run_dir in find_runs(p):
            seen.setdefault(run_dir.resolve(), None)
    return list(seen)


def _echo_err(msg: str) -> None:
    click.echo(f"wandblite: {msg}", err=True)


def sync_to(target: str, paths: Iterable[str | os.PathLike[str]], *, entity: str | None = None,
            project: str | None = None, tracking_uri: str | None = None, experiment: str | None = None,
            as_json: bool = False, log: Callable[[str], None] | None = None,
            out: Callable[[str], None] | None = None) -> int:
    """Sync every run below ``paths`` to ``target`` (``"wandb"`` or ``"mlflow"``); returns the exit code.

    ``tracking_uri`` defaults to ``$MLFLOW_TRACKING_URI``. Exit 2 for a usage error (unknown
    target, no tracking URI), 1 if any run failed, else 0.
    """
    log = log or _echo_err
    out = out or click.echo
    if target not in TARGETS:
        log(f"error: unknown target {target!r}: use one of {', '.join(TARGETS)}")
        return 2
    sync_one: Callable[[Path], Any]
    if target == "mlflow":
        from wandblite.interop.mlflow_target import MlflowTarget
        from wandblite.interop.mlflow_target import sync_run as mlflow_sync

        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            log("error: --to mlflow needs --tracking-uri URI (or $MLFLOW_TRACKING_URI)")
            return 2
        ml_target = MlflowTarget(uri, experiment)
        label = ml_target.label

        def sync_one(p: Path) -> Any:
            return mlflow_sync(p, ml_target)
    else:
        from wandblite.interop.wandb_target import WandbTarget
        from wandblite.interop.wandb_target import sync_run as wandb_sync

        wb_target = WandbTarget(entity, project)
        label = wb_target.label

        def sync_one(p: Path) -> Any:
            return wandb_sync(p, wb_target)

    from wandblite.interop.common import SyncOutcome

    runs = _discover(paths)
    if not runs:
        log(f"no runs found below {', '.join(str(p) for p in paths)}")
        return 0
    failed = False
    unreachable: str | None = None
    for p in runs:
        if unreachable is not None:
            res = SyncOutcome(path=str(p), run_id=p.name, target=label, status="error", message=unreachable)
        else:
            try:
                res = sync_one(p)
            except Exception as exc:  # noqa: BLE001 - one failing run never blocks the others
                res = SyncOutcome(path=str(p), run_id=p.name, target=label, status="error",
                                  message=f"unexpected {type(exc).__name__}: {exc}")
            if res.status == "error" and res.message.startswith("cannot reach"):
                unreachable = res.message
        failed = failed or not res.ok
        if as_json:
            out(json.dumps(res.as_dict(), default=str))
        else:
            log(res.line() + (f" ({res.message})" if res.message and res.status == "synced" else ""))
    return 1 if failed else 0


def export_tensorboard(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                       log: Callable[[str], None] | None = None) -> int:
    """Write the run's TensorBoard event file (a shared run: and one per writer, in a subdirectory
    named after its label) into ``out_dir``; returns the exit code (1 on failure)."""
    from wandblite.interop.tensorboard import export_tensorboard as export

    log = log or _echo_err
    warnings: list[str] = []
    files: list[Path] = []
    try:
        path = export(run_dir, out_dir, warnings=warnings, files=files)
    except Exception as exc:  # noqa: BLE001 - one clear line, exit 1
        log(f"error: {run_dir}: cannot export for TensorBoard: {exc}")
        return 1
    for w in warnings:
        log(f"warning: {w}")
    for writer_file in files[1:]:  # a shared run: one file per writer, a TensorBoard run each
        log(f"wrote {writer_file}")
    log(f"wrote {path} (view with: tensorboard --logdir {out_dir})")
    return 0


@click.command("sync-to")
@click.argument("target", type=click.Choice(TARGETS))
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--entity", default=None, help="W&B entity for every run (default: the run's own, or wandb's default).")
@click.option("--project", default=None, help="W&B project for every run (default: the run's own).")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI).")
@click.option("--experiment", default=None, help="MLflow experiment for every run (default: the run's project).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run on stdout.")
def interop_sync(target: str, paths: tuple[str, ...], entity: str | None, project: str | None,
                 tracking_uri: str | None, experiment: str | None, as_json: bool) -> None:
    """Replay the runs below PATHS into W&B or MLflow, sending each run's data once.

    Runs still being written are skipped and synced by a later call, once they end. W&B uses
    wandb's own settings (WANDB_BASE_URL, WANDB_API_KEY, WANDB_MODE).
    """
    code = sync_to(target, paths, entity=entity, project=project, tracking_uri=tracking_uri,
                   experiment=experiment, as_json=as_json)
    sys.exit(code)
