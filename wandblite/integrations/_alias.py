"""The machinery behind ``wandblite.integrations.as_wandb``: the alias finder, loader and shims.

Layer 4. Stdlib only. Imported only when the user opts in (``importlib.metadata`` is not free to
import, and ``import wandblite`` stays lean). See ``wandblite.integrations`` for what it promises.
The module that ``import wandb`` gives (the ``wandblite`` package) is handed in by the caller, so
this module never imports the package it aliases: the package's own import-time opt-in
(``WANDBLITE_AS_WANDB=1``) calls it without an import cycle.
"""


from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandblite.integrations.api import _attach as _api_attach
from wandblite.term import termwarn
from wandblite.vocab import WANDB_VERSION

__all__ = ["as_wandb", "is_wandb_alias", "restore"]

# wandb.<x> names aliased to wandblite's own submodule of the same role.
_SUBMODULES = {
    "wandb.errors": "wandblite.errors",
    "wandb.env": "wandblite.env",
    "wandb.data_types": "wandblite.data_types",
    "wandb.plot": "wandblite.plot",
    "wandb.tensorboard": "wandblite.tensorboard",
    "wandb.util": "wandblite.util",
    # the integrations that ship inside wandb (and their older top-level homes)
    "wandb.integration.keras": "wandblite.integrations.keras",
    "wandb.integration.sb3": "wandblite.integrations.sb3",
    "wandb.integration.lightgbm": "wandblite.integrations.lightgbm",
    "wandb.integration.xgboost": "wandblite.integrations.xgboost",
    "wandb.keras": "wandblite.integrations.keras",
    "wandb.lightgbm": "wandblite.integrations.lightgbm",
    "wandb.xgboost": "wandblite.integrations.xgboost",
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _WandbDistribution(importlib.metadata.Distribution):
    """Distribution metadata for the alias: ``Name: wandb``, ``Version: WANDB_VERSION``."""

    def __init__(self, sdk_version: str) -> None:
        self.sdk_version = sdk_version

    def read_text(self, filename: str) -> str | None:
        if filename == "METADATA":
            return (
                "Metadata-Version: 2.1\n"
                "Name: wandb\n"
                f"Version: {WANDB_VERSION}\n"
                f"Summary: wandblite {self.sdk_version} standing in for wandb (wandblite.integrations)\n"
            )
        if filename == "top_level.txt":
            return "wandb\n"
        return None

    def locate_file(self, path: Any) -> Path:
        return Path(__file__).parent / str(path)


class _AliasLoader(importlib.abc.Loader):
    """Loads ``wandb.<x>`` as an existing module object (the shim or a wandblite submodule)."""

    def __init__(self, target: str | types.ModuleType) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return types.ModuleType(spec.name)  # a placeholder: exec_module puts the real one in place

    def exec_module(self, module: types.ModuleType) -> None:
        target = self.target
        if isinstance(target, str):
            target = importlib.import_module(target)
        sys.modules[module.__name__] = target


class _WandbAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``wandb`` imports to wandblite and answers ``importlib.metadata`` for ``wandb``."""

    sdk_version = "unknown"  # the aliased package's ``__version__``, set by ``as_wandb``

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "wandb" and not fullname.startswith("wandb."):
            return None
        if fullname == "wandb":
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader("wandblite"))
        alias = _SHIMS.get(fullname) or _SUBMODULES.get(fullname)
        if alias is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: `wandb` is wandblite here (wandblite.integrations.as_wandb), "
                "which does not provide this module",
                name=fullname,
            )
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(alias))

    def find_distributions(self, context: Any = None) -> Iterator[importlib.metadata.Distribution]:
        name = getattr(context, "name", None)
        if name is None or _normalize(name) == "wandb":
            yield _WandbDistribution(self.sdk_version)


_SHIMS: dict[str, types.ModuleType] = {}
_FINDER = _WandbAliasFinder()
_saved: dict[str, Any] = {}


def _module(name: str, doc: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name, doc)
    mod.__dict__.update(attrs)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, _AliasLoader(mod))
    _SHIMS[name] = mod
    return mod


def _build_shims() -> None:
    if _SHIMS:
        return
    from wandblite.disabled import DisabledRun
    from wandblite.errors import ConfigError, Error, UsageError
    from wandblite.run import Run
    from wandblite.settings import Settings

    config_util = _module("wandb.sdk.lib.config_util", "wandb's config_util: ConfigError.",
                          ConfigError=ConfigError)
    lib = _module("wandb.sdk.lib", "wandb's sdk.lib: RunDisabled (the disabled run's class).",
                  RunDisabled=DisabledRun, config_util=config_util)
    wandb_run = _module("wandb.sdk.wandb_run", "wandb's wandb_run: Run (the class init returns).", Run=Run)
    settings = _module("wandb.sdk.wandb_settings", "wandb's wandb_settings: Settings.", Settings=Settings)
    _module("wandb.sdk", "wandb's sdk package, as far as frameworks import it.", lib=lib, wandb_run=wandb_run,
            wandb_settings=settings, Settings=Settings, Error=Error, UsageError=UsageError)
    _module("wandb.wandb_run", "wandb's wandb_run: Run (the class init returns).", Run=Run)
    # wandb.integration is a package: its submodules (keras, sb3, ...) are found by the finder on import
    integration = _module("wandb.integration", "wandb's integration package: keras, sb3, lightgbm, xgboost.")
    integration.__path__ = []


def is_wandb_alias(wandblite: types.ModuleType) -> bool:
    """True when ``import wandb`` gives ``wandblite`` (the package) in this process."""
    return sys.modules.get("wandb") is wandblite


def as_wandb(wandblite: types.ModuleType) -> types.ModuleType:
    """Opt in: make ``import wandb`` (and the submodules frameworks use) give ``wandblite`` (the
    package, handed in by the caller). Idempotent."""
    os.environ.setdefault("WANDBLITE_AS_WANDB", "1")
    if is_wandb_alias(wandblite) and _FINDER in sys.meta_path:
        return wandblite
    _build_shims()
    _FINDER.sdk_version = str(getattr(wandblite, "__version__", "unknown"))
    real = sys.modules.get("wandb")
    if real is not None and real is not wandblite:
        termwarn("as_wandb(): a real wandb was imported already; `import wandb` gives wandblite from now on, "
                 "modules that imported wandb before keep the real one", repeat=False)
    for name in [n for n in sys.modules if n == "wandb" or n.startswith("wandb.")]:
        _saved.setdefault(name, sys.modules.pop(name))
    sys.modules["wandb"] = wandblite
    sys.modules.update(_SHIMS)
    for short in ("sdk", "wandb_run", "integration"):
        _saved.setdefault(f"attr:{short}", getattr(wandblite, short, None))
        setattr(wandblite, short, _SHIMS[f"wandb.{short}"])
    wandblite._attach = _api_attach  # type: ignore[attr-defined]
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    importlib.invalidate_caches()
    return wandblite


def restore(wandblite: types.ModuleType) -> None:
    """Undo ``as_wandb`` in this process (tests use it): ``import wandb`` is what it was before."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "wandb" or n.startswith("wandb.")]:
        del sys.modules[name]
    for key, value in list(_saved.items()):
        if key.startswith("attr:"):
            short = key[5:]
            if value is None:
                vars(wandblite).pop(short, None)
            else:
                setattr(wandblite, short, value)
        else:
            sys.modules[key] = value
    _saved.clear()
    vars(wandblite).pop("_attach", None)
    if os.environ.get("WANDBLITE_AS_WANDB") == "1":
        del os.environ["WANDBLITE_AS_WANDB"]
    importlib.invalidate_caches()

