"""``wandblite.login``: remember a server and API key for ``wandblite sync``; offline it always succeeds.

Layer 4. Stdlib (``configparser``), ``env``, ``disabled`` and ``vocab``; never ``run`` or the package.

The settings file is ``$WANDBLITE_HOME/settings``, else ``~/.wandblite/settings``: an INI file
written with mode 0600 (its directory 0700), replaced atomically. Its ``[default]`` section holds::

    [default]
    server = http://127.0.0.1:8080     ; where `wandblite sync` uploads (login's host=)
    api_key = ...                       ; the key sync sends (login's key=)

``credentials()`` is what the sync client reads: the environment wins over the file, the
``WANDBLITE_*`` names over wandb's (``WANDBLITE_API_KEY``, ``WANDB_API_KEY``; ``WANDBLITE_BASE_URL``,
``WANDB_BASE_URL``), and the file fills in what the environment leaves unset.
"""

from __future__ import annotations

import configparser
import io
import os
from pathlib import Path
from typing import Any

from wandblite.disabled import DisabledRun
from wandblite.env import current_run, env_first
from wandblite.vocab import home_dir

__all__ = ["credentials", "login", "read_settings", "settings_path", "write_settings"]

SECTION = "default"


def settings_path() -> Path:
    """``$WANDBLITE_HOME/settings``, else ``~/.wandblite/settings`` (``vocab.home_dir``)."""
    return home_dir() / "settings"


def read_settings() -> dict[str, str]:
    """The ``[default]`` section of the settings file (empty when there is none)."""
    path = settings_path()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, configparser.Error):
        return {}
    return dict(parser[SECTION]) if parser.has_section(SECTION) else {}


def write_settings(**values: str | None) -> Path:
    """Set (or, with None, remove) keys of the ``[default]`` section; mode 0600, atomic replace."""
    path = settings_path()
    current = read_settings()
    for k, v in values.items():
        if v is None:
            current.pop(k, None)
        else:
            current[k] = str(v)
    parser = configparser.ConfigParser(interpolation=None)
    parser[SECTION] = current
    buf = io.StringIO()
    parser.write(buf)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".settings-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old tmp file or a umask must not widen it
        os.write(fd, buf.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def credentials() -> dict[str, str | None]:
    """``{"server", "api_key"}`` for sync: environment first, then the settings file."""
    saved = read_settings()
    return {
        "server": env_first("WANDBLITE_SERVER", "WANDBLITE_BASE_URL", "WANDB_BASE_URL") or saved.get("server"),
        "api_key": env_first("WANDBLITE_API_KEY", "WANDB_API_KEY") or saved.get("api_key"),
    }


def login(
    key: str | None = None,
    relogin: bool | None = None,
    host: str | None = None,
    anonymous: str | None = None,
    timeout: int | None = None,
    verify: bool = False,
    **kwargs: Any,
) -> bool:
    """wandb's ``login``: True offline. A ``key``/``host`` given here is saved for ``wandblite sync``.

    A key already saved is kept unless ``relogin=True`` or a different key is passed. Nothing is
    written in ``WANDB_MODE=disabled``/``WANDBLITE_MODE=disabled`` or while a disabled run is active, nor when no key or host is given.
    """
    if (env_first("WANDBLITE_MODE", "WANDB_MODE") or "") == "disabled" or isinstance(current_run(), DisabledRun):
        return True
    updates: dict[str, str | None] = {}
    if host:
        updates["server"] = str(host).rstrip("/")
    if key:
        saved = read_settings().get("api_key")
        if relogin or saved != key:
            updates["api_key"] = str(key)
    if updates:
        write_settings(**updates)
    return True
