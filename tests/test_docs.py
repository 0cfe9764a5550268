"""The README documents every command and every setting (datasette's habit: undocumented fails)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from wandblite_cli.main import _COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_cli_command_is_in_the_readme() -> None:
    for name in _COMMANDS:
        assert f"wandblite {name}" in README, f"`wandblite {name}` is not documented in README.md"
        assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0


def test_every_environment_setting_is_in_the_readme() -> None:
    used: set[str] = set()
    for path in [*(ROOT / "wandblite").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]:
        used |= set(re.findall(r"WANDBLITE_[A-Z_]+[A-Z]", path.read_text()))
    missing = sorted(v for v in used if v not in README)
    assert not missing, f"settings not documented in README.md: {missing}"
