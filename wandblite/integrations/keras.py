"""``wandb.integration.keras``: Keras callbacks that log through the active run, with wandb's keys.

Layer 5 (an integration): imports ``keras`` (Keras 3, any backend; wandb 0.31's own module needs
TensorFlow, this one runs on the torch backend too; with no backend chosen and no TensorFlow it
picks torch, see ``_pick_a_usable_backend``) and the ``wandblite`` package, whose
module-level names follow the active run as wandb's do. Under the drop-in alias this module is
``wandb.integration.keras``.

* ``WandbMetricsLogger(log_freq="epoch", initial_global_step=0)``: at each epoch end one row of
  ``epoch/<metric>`` (every key of Keras' ``logs``), ``epoch/epoch`` and ``epoch/learning_rate``;
  ``define_metric("epoch/*", step_metric="epoch/epoch")``. With ``log_freq="batch"`` or an int n:
  every n-th batch a row of ``batch/<metric>``, ``batch/batch_step`` (counting batches by n) and
  ``batch/learning_rate`` against ``batch/batch_step``.
* ``WandbModelCheckpoint(filepath, monitor="val_loss", ...)``: Keras' ``ModelCheckpoint``; after
  each save point the checkpoint (file or directory) is logged as the artifact
  ``run_<id>_model`` (type ``model``) with aliases ``latest`` and ``epoch_<n>`` (or
  ``epoch_<n>_batch_<b>`` when saving every few batches).
* ``WandbEvalCallback(data_table_columns, pred_table_columns)``: the abstract base of evaluation
  tables. At training start ``add_ground_truth`` fills ``self.data_table``, kept as the table
  ``val_data`` of the ``dataset`` artifact ``val`` the run uses (``self.data_table_ref`` reads it
  back); at each epoch end ``add_model_predictions`` fills ``self.pred_table``, logged as the table
  ``eval_data`` of the ``evaluation`` artifact ``run_<id>_pred``.
* ``WandbCallback`` (wandb's legacy callback, removed from wandb 0.31's Keras module, still in
  scripts): each epoch a row of Keras' ``logs`` with ``epoch``; every ``log_batch_frequency``-th
  batch a row of the batch logs; when ``monitor`` improves, ``summary["best_<monitor>"]`` and
  ``summary["best_epoch"]``, and (``save_model=True``) the model saved to
  ``<run.dir>/model-best.keras`` (wandb wrote ``model-best.h5``, a format Keras 3 no longer
  writes), logged as an artifact with ``save_model_as_artifact``. ``log_weights=True`` adds a
  histogram per layer (``parameters/<layer>.weights`` and ``.bias``) to the epoch's row. Options that need
  the model's graph, gradients or W&B's cloud-side media panels (``log_gradients``,
  ``training_data``/``validation_data`` predictions, ``compute_flops``) are accepted and say
  once on stderr that they are not offered.
"""

from __future__ import annotations

import abc
import importlib.util
import json
import operator
import os
import sys
from pathlib import Path
from typing import Any

from wandblite.term import termerror, termwarn


def _pick_a_usable_backend() -> None:
    """Keras 3 defaults to TensorFlow and cannot be imported without it. When Keras is not imported
    yet, no backend is chosen (neither ``$KERAS_BACKEND`` nor a ``keras.json`` naming another backend
    than the ``tensorflow`` Keras writes there by default) and TensorFlow is not installed, choose
    torch (else jax) if installed, and say so once: the import would fail otherwise."""
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND") or importlib.util.find_spec("tensorflow"):
        return
    cfg = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "keras.json"
    try:
        if json.loads(cfg.read_text()).get("backend") not in (None, "tensorflow"):
            return  # the user's own choice
    except (OSError, ValueError, AttributeError):
        pass
    for name in ("torch", "jax"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            termwarn(f"TensorFlow is not installed and no Keras backend is set: Keras runs on {name} "
                     "(set KERAS_BACKEND to choose)", repeat=False)
            return


_pick_a_usable_backend()

import keras  # noqa: E402 - after the backend is settled
import numpy as np  # noqa: E402

import wandblite  # noqa: E402

__all__ = ["WandbCallback", "WandbEvalCallback", "WandbMetricsLogger", "WandbModelCheckpoint"]


def _require_run(what: str) -> Any:
    if wandblite.run is None:
        raise wandblite.Error(f"You must call `wandb.init()` before {what}")
    return wandblite.run


def _learning_rate(model: Any, step: int) -> float | None:
    """The optimizer's current learning rate: a variable's value, or a schedule at ``step``."""
    lr = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    if lr is None:
        return None
    try:
        if callable(lr) and not hasattr(lr, "shape"):
            lr = lr(step)
        return float(np.asarray(keras.ops.convert_to_numpy(lr)).item())
    except Exception as exc:  # noqa: BLE001 - as wandb: one error line, the row goes on without it
        termerror(f"Unable to log learning rate: {exc}", repeat=False)
        return None


def _scalars(logs: dict[str, Any] | None, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (logs or {}).items():
        try:
            out[f"{prefix}{k}"] = float(np.asarray(keras.ops.convert_to_numpy(v)).item()) if not isinstance(
                v, (int, float)) else v
        except Exception:  # noqa: BLE001 - not a number: logged as it is
            out[f"{prefix}{k}"] = v
    return out


class WandbMetricsLogger(keras.callbacks.Callback):
    """Log Keras' ``logs`` each epoch (or every n batches) under ``epoch/`` (``batch/``)."""

    def __init__(self, log_freq: str | int = "epoch", initial_global_step: int = 0, *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _require_run("WandbMetricsLogger()")
        if log_freq == "batch":
            log_freq = 1
        self.logging_batch_wise = isinstance(log_freq, int)
        self.log_freq: int | None = log_freq if isinstance(log_freq, int) else None
        self.global_batch = 0
        self.global_step = initial_global_step
        if self.logging_batch_wise:
            wandblite.define_metric("batch/batch_step")
            wandblite.define_metric("batch/*", step_metric="batch/batch_step")
        else:
            wandblite.define_metric("epoch/epoch")
            wandblite.define_metric("epoch/*", step_metric="epoch/epoch")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = _scalars(logs, "epoch/")
        row["epoch/epoch"] = epoch
        lr = _learning_rate(self.model, self.global_step)
        if lr is not None:
            row["epoch/learning_rate"] = lr
        wandblite.log(row)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_step += 1
        if self.log_freq is not None and batch % self.log_freq == 0:
            row = _scalars(logs, "batch/")
            row["batch/batch_step"] = self.global_batch
            lr = _learning_rate(self.model, self.global_step)
            if lr is not None:
                row["batch/learning_rate"] = lr
            wandblite.log(row)
            self.global_batch += self.log_freq

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_end(batch, logs or {})


def _log_checkpoint(filepath: str, aliases: list[str]) -> None:
    """The checkpoint at ``filepath`` (a file or a directory) as the artifact ``run_<id>_model``."""
    run = wandblite.run
    art = wandblite.Artifact(f"run_{run.id}_model", type="model")
    if os.path.isfile(filepath):
        art.add_file(filepath)
    elif os.path.isdir(filepath):
        art.add_dir(filepath)
    else:
        raise FileNotFoundError(f"No such file or directory {filepath}")
    wandblite.log_artifact(art, aliases=aliases)


class WandbModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras' ``ModelCheckpoint`` whose checkpoints are also logged as ``model`` artifacts."""

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(filepath=os.fspath(filepath), monitor=monitor, verbose=verbose,
                         save_best_only=save_best_only, save_weights_only=save_weights_only, mode=mode,
                         save_freq=save_freq, initial_value_threshold=initial_value_threshold, **kwargs)
        _require_run("`WandbModelCheckpoint()`")
        if save_best_only and "{" not in os.fspath(filepath):
            termwarn("When using `save_best_only`, ensure that the `filepath` argument contains formatting "
                     "placeholders like `{epoch:02d}` or `{batch:02d}`. This ensures correct interpretation "
                     "of the logged artifacts.", repeat=False)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._should_save_on_batch(batch):
            epoch = self._current_epoch
            self._save_model(epoch=epoch, batch=batch, logs=logs)
            path = self._get_file_path(epoch=epoch, batch=batch, logs=logs)
            _log_checkpoint(path, ["latest", f"epoch_{epoch}_batch_{batch}"])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if self.save_freq == "epoch":
            _log_checkpoint(self._get_file_path(epoch=epoch, batch=None, logs=logs), ["latest", f"epoch_{epoch}"])


class WandbEvalCallback(keras.callbacks.Callback, abc.ABC):
    """Build evaluation tables: subclass it and fill ``data_table`` / ``pred_table``."""

    def __init__(self, data_table_columns: list[str], pred_table_columns: list[str], *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _require_run("this callback (call `wandb.init()` first)")
        self.data_table_columns = data_table_columns
        self.pred_table_columns = pred_table_columns

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.init_data_table(column_names=self.data_table_columns)
        self.add_ground_truth(logs)
        self.log_data_table()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.init_pred_table(column_names=self.pred_table_columns)
        self.add_model_predictions(epoch, logs)
        self.log_pred_table()

    @abc.abstractmethod
    def add_ground_truth(self, logs: dict[str, Any] | None = None) -> None:
        raise NotImplementedError(f"{self.__class__.__name__}.add_ground_truth")

    @abc.abstractmethod
    def add_model_predictions(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        raise NotImplementedError(f"{self.__class__.__name__}.add_model_predictions")

    def init_data_table(self, column_names: list[str]) -> None:
        self.data_table = wandblite.Table(columns=column_names, allow_mixed_types=True)

    def init_pred_table(self, column_names: list[str]) -> None:
        self.pred_table = wandblite.Table(columns=column_names)

    def log_data_table(self, name: str = "val", type: str = "dataset", table_name: str = "val_data") -> None:  # noqa: A002
        art = wandblite.Artifact(name, type=type)
        art.add(self.data_table, table_name)
        wandblite.run.use_artifact(art)
        self.data_table_ref = art.get(table_name)

    def log_pred_table(self, type: str = "evaluation", table_name: str = "eval_data",  # noqa: A002
                       aliases: list[str] | None = None) -> None:
        art = wandblite.Artifact(f"run_{wandblite.run.id}_pred", type=type)
        art.add(self.pred_table, table_name)
        wandblite.run.log_artifact(art, aliases=aliases or ["latest"])


_NOT_OFFERED = ("log_gradients", "training_data", "validation_data", "generator", "compute_flops",
                "log_evaluation", "validation_row_processor", "prediction_row_processor")


class WandbCallback(keras.callbacks.Callback):
    """wandb's legacy Keras callback: epoch rows, best-so-far summary, the best model saved."""

    def __init__(self, monitor: str = "val_loss", verbose: int = 0, mode: str = "auto",
                 save_weights_only: bool = False, log_weights: bool = False, log_gradients: bool = False,
                 save_model: bool = True, training_data: Any = None, validation_data: Any = None,
                 labels: list[str] | None = None, predictions: int = 36, generator: Any = None,
                 input_type: Any = None, output_type: Any = None, log_evaluation: bool = False,
                 validation_steps: int | None = None, class_colors: Any = None,
                 log_batch_frequency: int | None = None, log_best_prefix: str = "best_",
                 save_graph: bool = True, validation_indexes: Any = None, validation_row_processor: Any = None,
                 prediction_row_processor: Any = None, infer_missing_processors: bool = True,
                 log_evaluation_frequency: int = 0, compute_flops: bool = False,
                 save_model_as_artifact: bool = True, **kwargs: Any) -> None:
        super().__init__()
        run = _require_run("WandbCallback()")
        given = {"log_gradients": log_gradients, "training_data": training_data,
                 "validation_data": validation_data, "generator": generator, "compute_flops": compute_flops,
                 "log_evaluation": log_evaluation, "validation_row_processor": validation_row_processor,
                 "prediction_row_processor": prediction_row_processor}
        for name in _NOT_OFFERED:
            if given.get(name):
                termwarn(f"WandbCallback({name}=...) is not offered by wandblite; the option is ignored",
                         repeat=False)
        self.monitor = monitor
        self.verbose = verbose
        self.save_weights_only = save_weights_only
        self.log_weights = log_weights
        self.save_model = save_model
        self.save_model_as_artifact = save_model_as_artifact
        self.log_batch_frequency = log_batch_frequency
        self.log_best_prefix = log_best_prefix
        name = "model-best.weights.h5" if save_weights_only else "model-best.keras"
        self.filepath = os.path.join(run.dir, name)
        if mode not in ("auto", "min", "max"):
            termwarn(f"WandbCallback mode {mode} is unknown, fallback to auto mode.")
            mode = "auto"
        if mode == "max" or (mode == "auto" and ("acc" in monitor or monitor.startswith("fmeasure"))):
            self.monitor_op, self.best = operator.gt, -np.inf
        else:
            self.monitor_op, self.best = operator.lt, np.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row: dict[str, Any] = {"epoch": epoch, **_scalars(logs, "")}
        if self.log_weights:
            row.update(self._weight_histograms())
        wandblite.log(row)
        current = row.get(self.monitor)
        if current is None or not self.monitor_op(current, self.best):
            return
        if self.log_best_prefix:
            wandblite.run.summary[f"{self.log_best_prefix}{self.monitor}"] = current
            wandblite.run.summary[f"{self.log_best_prefix}epoch"] = epoch
        if self.save_model:
            self._save(epoch)
        self.best = current

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.log_batch_frequency and batch % self.log_batch_frequency == 0:
            wandblite.log(_scalars(logs, ""))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_end(batch, logs)

    def _save(self, epoch: int) -> None:
        if self.verbose > 0:
            print(f"Epoch {epoch:05d}: {self.monitor} improved to {self.best}, saving model to {self.filepath}")
        try:
            if self.save_weights_only:
                self.model.save_weights(self.filepath, overwrite=True)
            else:
                self.model.save(self.filepath, overwrite=True)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be saved must not stop training
            termwarn(f"WandbCallback: cannot save the model to {self.filepath}: {exc}", repeat=False)
            return
        if self.save_model_as_artifact:
            art = wandblite.Artifact(f"model-{wandblite.run.name}", type="model")
            art.add_file(self.filepath)
            wandblite.log_artifact(art, aliases=["latest", f"epoch_{epoch}"])

    def _weight_histograms(self) -> dict[str, Any]:
        """wandb's keys: ``parameters/<layer>.weights`` (and ``.bias`` for a layer with two arrays)."""
        out: dict[str, Any] = {}
        for layer in self.model.layers:
            arrays = layer.get_weights()
            names = {1: ("weights",), 2: ("weights", "bias")}.get(len(arrays), ())
            for suffix, values in zip(names, arrays):
                if np.size(values):
                    out[f"parameters/{layer.name}.{suffix}"] = wandblite.Histogram(np.ravel(values))
        return out
