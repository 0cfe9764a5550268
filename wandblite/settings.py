"""``wandblite.Settings``: wandb's settings object, accepted with any keyword.

Layer 4. The settings wandblite acts on are listed in ``KNOWN``; every other wandb setting is kept
(so scripts that pass them run unchanged) but has no effect offline.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings"]

KNOWN = {
    "fsync_interval": "seconds between fsyncs of the run file (default 2, $WANDBLITE_FSYNC_INTERVAL)",
    "heartbeat_interval": "seconds between heartbeat records (default 15, $WANDBLITE_HEARTBEAT)",
    "console": "console capture: 'wrap' (default), 'redirect' (fd level) or 'off'",
    "x_stats_sampling_interval": "seconds between system-metrics samples (default 15)",
    "_stats_sampling_interval": "alias of x_stats_sampling_interval",
    "disable_stats": "turn the system-metrics sampler off",
    "silent": "no banner at init and finish (the environment's $WANDBLITE_SILENT also hides warnings)",
    "quiet": "no banner at init and finish",
}


class Settings:
    """Keyword settings; unknown names are stored and ignored, like wandb's many online-only ones."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        for d in args:
            self.__dict__.update(dict(d))
        self.__dict__.update(kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"
