"""``wandb.integration.sb3``: Stable-Baselines3's ``WandbCallback``, logging through the active run.

Layer 5 (an integration): imports ``stable_baselines3`` and the ``wandblite`` package. Under the
drop-in alias this module is ``wandb.integration.sb3``. What it does, as wandb's does:

* at training start, ``config.setdefaults`` of ``algo`` (the algorithm's class name) and every
  attribute of the model (numbers and strings as they are, anything else as its ``str``), keys
  already in the config left alone;
* ``gradient_save_freq > 0``: ``watch(model.policy, log_freq=gradient_save_freq, log=log)``;
* ``model_save_path``: the model saved as ``<model_save_path>/model.zip`` every
  ``model_save_freq`` calls and at training end, kept with the run (``save(..., base_path=)``).

The training metrics themselves come, as with wandb, from SB3's TensorBoard writer and
``init(sync_tensorboard=True)`` (``wandblite.tensorboard``).
"""

from __future__ import annotations

import os
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

import wandblite
from wandblite.term import termwarn

__all__ = ["WandbCallback"]


class WandbCallback(BaseCallback):
    """SB3 callback: hyperparameters into the config, gradients watched, the model kept with the run."""

    def __init__(self, verbose: int = 0, model_save_path: str | None = None, model_save_freq: int = 0,
                 gradient_save_freq: int = 0, log: str | None = "all") -> None:
        super().__init__(verbose)
        if wandblite.run is None:
            raise wandblite.Error("You must call wandb.init() before WandbCallback()")
        self.model_save_freq = model_save_freq
        self.model_save_path = model_save_path
        self.gradient_save_freq = gradient_save_freq
        if log not in ("gradients", "parameters", "all", None):
            termwarn("`log` must be one of `None`, 'gradients', 'parameters', or 'all', falling back to 'all'")
            log = "all"
        self.log = log
        if model_save_path is not None:
            os.makedirs(model_save_path, exist_ok=True)
            self.path = os.path.join(model_save_path, "model.zip")
        elif model_save_freq:
            raise AssertionError("to use the `model_save_freq` you have to set the `model_save_path` parameter")

    def _init_callback(self) -> None:
        d: dict[str, Any] = {"algo": type(self.model).__name__}
        for key, value in vars(self.model).items():
            if key in wandblite.config:
                continue
            d[key] = value if type(value) in (float, int, str) else str(value)
        if self.gradient_save_freq > 0:
            wandblite.watch(self.model.policy, log_freq=self.gradient_save_freq, log=self.log)
        wandblite.config.setdefaults(d)

    def _on_step(self) -> bool:
        if self.model_save_freq > 0 and self.model_save_path is not None and self.n_calls % self.model_save_freq == 0:
            self.save_model()
        return True

    def _on_training_end(self) -> None:
        if self.model_save_path is not None:
            self.save_model()

    def save_model(self) -> None:
        self.model.save(self.path)
        wandblite.save(self.path, base_path=self.model_save_path)
        if self.verbose > 1:
            print(f"Saving model checkpoint to {self.path}")
