"""Interop: replay wandblite runs into the trackers teams already run (W&B, MLflow, TensorBoard).

Layer 6 helpers used by the CLI (``wandblite sync --to wandb|mlflow``, ``wandblite export --format
tensorboard``). Nothing here is imported by ``import wandblite``; each target imports its own
package (``wandb``, ``mlflow``) only inside the function that needs it, so a missing package is a
clear per-run error, never an ImportError at start-up. TensorBoard files are written with the
standard library, numpy and Pillow only.

* ``tensorboard.export_tensorboard(run_dir, out_dir)``: event files TensorBoard reads.
* ``mlflow_target.sync_run(run_dir, target)``: one run into an MLflow tracking server.
* ``wandb_target.sync_run(run_dir, target)``: one run into W&B through the official package.
* ``state.SyncState``: what was sent per (target, run), so a re-run sends nothing twice.

A shared run (many writer processes) goes to each target as one run, its writers' console and
system metrics labelled; TensorBoard gets one event file per writer beside the merged history.
"""

from __future__ import annotations

__all__ = ["InteropError", "SyncOutcome"]

from wandblite.interop.common import InteropError, SyncOutcome
