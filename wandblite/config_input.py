"""What wandb accepts as a run's config: ``config_dict``.

Layer 4, below ``run`` and ``disabled`` (both use it): ``errors`` and the standard library only.
``init(config=...)``, ``run.config.update(...)`` and ``setdefaults`` take a dict, an argparse
``Namespace``, absl ``FLAGS`` or any object with a ``__dict__``, as wandb does; this is the one
place that turns them into a plain dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wandblite.errors import DataError

__all__ = ["config_dict"]


def config_dict(config: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """Accept a dict, an argparse Namespace, absl flags, or anything with ``__dict__``.

    ``include``/``exclude`` (wandb's ``config_include_keys``/``config_exclude_keys``) keep only,
    or drop, the keys they name. Anything else is a ``DataError``.
    """
    if config is None:
        d: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        d = dict(config)
    elif hasattr(config, "flag_values_dict"):  # absl.flags.FLAGS
        d = dict(config.flag_values_dict())
    elif hasattr(config, "__dict__"):  # argparse.Namespace and plain objects
        d = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    else:
        raise DataError(f"config must be a dict, an argparse Namespace or absl flags, not {type(config).__name__}")
    if include:
        d = {k: v for k, v in d.items() if k in set(include)}
    if exclude:
        d = {k: v for k, v in d.items() if k not in set(exclude)}
    return d
