"""wandblite: crash-safe, offline-first experiment logging with the Weights & Biases API.

``import wandblite as wandb`` and an existing script runs unchanged::

    run = wandb.init(project="mnist", config={"lr": 0.1})
    run.log({"train/loss": 0.5})
    run.finish()

Every ``log`` call appends one checksummed record to the run file under ``./runs/<id>/``; nothing
is buffered in user space. ``wandblite.replay(path)`` rebuilds any run, crashed or not, from its files.

This package imports only the SDK (stdlib, msgpack; numpy and Pillow when a value needs them):
never click, requests, sqlite3, the server or sync.
"""

from __future__ import annotations

from typing import Any

from wandblite import env as _env
from wandblite import errors, plot, tensorboard, util
from wandblite.artifacts import Artifact, log_artifact, use_artifact
from wandblite.data_types import Audio, Graph, Histogram, Html, Image, Object3D, Table, Video
from wandblite.errors import CommError, ConfigError, DataError, Error, UsageError
from wandblite.files import save
from wandblite.integrations.api import AlertLevel, alert, require, setup
from wandblite.login import login
from wandblite.plot import plot_table
from wandblite.preempt import mark_preempting
from wandblite.replay import Replay, replay
from wandblite.run import Run, init
from wandblite.run_artifacts import link_model, log_model, use_model
from wandblite.settings import Settings
from wandblite.term import termerror, termlog, termwarn
from wandblite.watch import unwatch, watch

__version__ = "0.1.0"

# wandb.patched: what wandb's patches have wrapped (scripts check patched["tensorboard"] before patching)
patched: dict[str, list[Any]] = {"tensorboard": tensorboard.patched, "keras": [], "gym": []}

__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "Audio",
    "CommError",
    "ConfigError",
    "DataError",
    "Error",
    "Histogram",
    "Graph",
    "Html",
    "Image",
    "Object3D",
    "Replay",
    "Run",
    "Settings",
    "Table",
    "UsageError",
    "Video",
    "__version__",
    "config",
    "define_metric",
    "errors",
    "finish",
    "alert",
    "init",
    "link_model",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "mark_preempting",
    "patched",
    "plot",
    "plot_table",
    "replay",
    "require",
    "run",
    "save",
    "setup",
    "summary",
    "tensorboard",
    "termerror",
    "termlog",
    "termwarn",
    "unwatch",
    "use_artifact",
    "use_model",
    "util",
    "watch",
]


def __getattr__(name: str) -> Any:
    """PEP 562: ``wandblite.Api`` loads ``wandblite.api`` (and with it requests) on first use only."""
    if name == "Api":
        from wandblite.api import Api

        return Api
    raise AttributeError(f"module 'wandblite' has no attribute {name!r}")


# ---------------------------------------------------------------------------- pre-init stubs
# Before init (and after finish) the module-level names raise wandb's errors, as wandb's do.


def _preinit_error(what: str) -> Error:
    return Error(f"You must call wandb.init() before {what}")


class _PreInitConfig:
    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        raise _preinit_error(f"wandb.config.{key}")

    def __setattr__(self, key: str, value: Any) -> None:
        raise _preinit_error(f"wandb.config.{key}")

    def __getitem__(self, key: str) -> Any:
        raise _preinit_error(f"wandb.config['{key}']")

    def __setitem__(self, key: str, value: Any) -> None:
        raise _preinit_error(f"wandb.config['{key}']")


class _PreInitSummary:
    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        raise _preinit_error(f"wandb.summary.{key}")

    def __getitem__(self, key: str) -> Any:
        raise _preinit_error(f"wandb.summary['{key}']")

    def __setitem__(self, key: str, value: Any) -> None:
        raise _preinit_error(f"wandb.summary['{key}']")


def _preinit_log(*args: Any, **kwargs: Any) -> None:
    raise _preinit_error("wandb.log()")


def _preinit_define_metric(*args: Any, **kwargs: Any) -> Any:
    raise _preinit_error("wandb.define_metric()")


def _preinit_finish(*args: Any, **kwargs: Any) -> None:
    """``wandblite.finish()`` with no active run does nothing (as in wandb)."""


run: Any = None
config: Any = _PreInitConfig()
summary: Any = _PreInitSummary()
log: Any = _preinit_log
define_metric: Any = _preinit_define_metric
finish: Any = _preinit_finish


def _show_run(r: Any) -> None:
    """The module-level names follow the active run (wandb does the same): ``wandblite.env`` calls
    this whenever ``init`` sets a run or the active run finishes (``r`` None: the pre-init stubs)."""
    g = globals()
    if r is None:
        g["run"] = None
        g["config"] = _PreInitConfig()
        g["summary"] = _PreInitSummary()
        g["log"] = _preinit_log
        g["define_metric"] = _preinit_define_metric
        g["finish"] = _preinit_finish
        return
    g["run"] = r
    g["config"] = r.config
    g["summary"] = r.summary
    g["log"] = r.log
    g["define_metric"] = r.define_metric
    g["finish"] = r.finish


_env.on_active_run_change(_show_run)


def _reset_globals() -> None:
    """Forget the active run (it is not finished): the module-level names are the pre-init stubs again."""
    _env.set_active_run(None)


# The drop-in opt-in by environment (see wandblite.integrations): only when asked for. The package
# hands itself to the alias machinery, which never imports the package it aliases.
if _env.is_truthy(__import__("os").environ.get("WANDBLITE_AS_WANDB")):
    from wandblite.integrations import _alias

    _alias.as_wandb(__import__("sys").modules[__name__])
