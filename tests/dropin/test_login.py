"""``wandblite.login``: True offline; a key and host given are kept, user-readable only, for sync."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import wandblite
from wandblite.login import credentials, read_settings, settings_path


def test_login_without_key_returns_true_and_writes_nothing(tmp_path: Path) -> None:
    assert wandblite.login() is True
    assert not settings_path().exists()


def test_login_remembers_key_and_host_in_a_0600_settings_file(tmp_path: Path) -> None:
    assert wandblite.login(key="k" * 40, host="http://127.0.0.1:8080/", anonymous="never", timeout=5) is True
    path = settings_path()
    assert path == tmp_path / "home" / "settings"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_settings() == {"server": "http://127.0.0.1:8080", "api_key": "k" * 40}
    text = path.read_text()
    assert "[default]" in text and "server = http://127.0.0.1:8080" in text


def test_a_new_key_replaces_the_old_and_host_alone_keeps_the_key() -> None:
    wandblite.login(key="first")
    wandblite.login(key="second", relogin=True)
    wandblite.login(host="http://example.invalid")
    assert read_settings() == {"api_key": "second", "server": "http://example.invalid"}


def test_credentials_prefer_wandblite_env_then_wandb_env_then_file(monkeypatch: pytest.MonkeyPatch) -> None:
    wandblite.login(key="from-file", host="http://file")
    assert credentials() == {"server": "http://file", "api_key": "from-file"}
    monkeypatch.setenv("WANDB_API_KEY", "from-wandb-env")
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb-env")
    assert credentials() == {"server": "http://wandb-env", "api_key": "from-wandb-env"}
    monkeypatch.setenv("WANDBLITE_API_KEY", "from-lite-env")
    monkeypatch.setenv("WANDBLITE_BASE_URL", "http://lite-env")
    assert credentials() == {"server": "http://lite-env", "api_key": "from-lite-env"}


def test_login_in_disabled_mode_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandblite.login(key="secret") is True
    assert not settings_path().exists()
