"""The explicit opt-in that makes ``import wandb`` give wandblite, for frameworks that import wandb.

Layer 5: the user's entry point to the alias, above the package it aliases (it hands the
``wandblite`` package to ``_alias``, which stays at layer 4). Stdlib only. Nothing here runs at
``import wandblite`` unless the user asked for it.

Three ways to opt in, all in the process that runs the framework:

1. In the script, before the framework sets up its logger::

       import wandblite.integrations
       wandblite.integrations.as_wandb()

2. Without touching the script: ``python -m wandblite.integrations.run train.py --its --args``
   (or ``python -m wandblite.integrations.run -m package.module ...``). The runner opts in, sets
   ``WANDBLITE_AS_WANDB=1`` for child processes, then runs the script as ``__main__``.

3. ``WANDBLITE_AS_WANDB=1`` in the environment: honoured when ``wandblite`` is imported. A process
   that never imports wandblite is not affected by the variable alone (no ``.pth`` file, no
   ``sitecustomize``): use the runner, whose children inherit the variable and opt in when they
   import wandblite. A child started with the *spawn* method that imports only ``wandb`` must call
   ``as_wandb()`` itself; forked children inherit the opt-in.

What ``as_wandb()`` does (and undoes with ``restore()``):

* ``sys.modules["wandb"]`` becomes the ``wandblite`` module itself, so ``wandb.run``,
  ``wandb.config``, ``wandb.log`` are the live module globals; ``importlib.util.find_spec("wandb")``
  is then non-None.
* The submodules frameworks import exist: ``wandb.sdk``, ``wandb.sdk.lib`` (``RunDisabled``),
  ``wandb.sdk.lib.config_util`` (``ConfigError``), ``wandb.wandb_run`` and ``wandb.sdk.wandb_run``
  (``Run``: the class ``init`` returns), ``wandb.errors``, ``wandb.env`` (``set_project``,
  ``set_entity``), ``wandb.data_types``, ``wandb.plot``, ``wandb.sdk.wandb_settings``
  (``Settings``), ``wandb.util``, ``wandb.tensorboard`` (``patch``/``unpatch``), and the
  integrations that ship inside wandb: ``wandb.integration.keras``, ``.sb3``, ``.lightgbm``,
  ``.xgboost`` (also under their older names ``wandb.keras``, ``wandb.lightgbm``,
  ``wandb.xgboost``), each importing its library only when imported itself. Any other
  ``wandb.<x>`` raises ``ModuleNotFoundError`` naming the alias, never a silent half-import of a
  real wandb.
* ``WANDBLITE_AS_WANDB=1`` is set in ``os.environ`` (unless already set), so child processes that
  import wandblite opt in too.
* A finder on ``sys.meta_path`` answers ``importlib.metadata.version("wandb")`` with
  ``WANDB_VERSION`` (``0.31.0``), so Lightning's ``RequirementCache("wandb>=0.12.10")`` passes.

A real wandb is never shadowed without the opt-in. With it, a real wandb that was imported already
is taken out of ``sys.modules`` (with one warning): modules that imported it before keep it.
"""

from __future__ import annotations

import types

from wandblite.integrations.api import AlertLevel, alert, require, setup
from wandblite.vocab import WANDB_VERSION

__all__ = ["WANDB_VERSION", "AlertLevel", "alert", "as_wandb", "is_wandb_alias", "require", "restore", "setup"]


def as_wandb() -> types.ModuleType:
    """Opt in: make ``import wandb`` (and the submodules frameworks use) give wandblite. Idempotent."""
    import wandblite
    from wandblite.integrations import _alias

    return _alias.as_wandb(wandblite)


def restore() -> None:
    """Undo ``as_wandb`` in this process (tests use it): ``import wandb`` is what it was before."""
    import wandblite
    from wandblite.integrations import _alias

    _alias.restore(wandblite)


def is_wandb_alias() -> bool:
    """True when ``import wandb`` gives wandblite in this process."""
    import sys

    import wandblite

    return sys.modules.get("wandb") is wandblite
