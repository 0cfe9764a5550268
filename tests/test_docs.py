"""The documentation holds: the README documents every command and every setting (datasette's
habit: undocumented fails), docs/semantics.md names only tests that exist, and no file points
outside the repository or cites an issue number where it should say what it means."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
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


# ------------------------------------------------------------------------------ the repository stands on its own

#: Documents that pin their statements to tests, and how many test references each must hold at least.
_PINNED_DOCS = {"docs/semantics.md": 50, "wandblite/format/MEDIA_SPEC.md": 10}
#: A test named in a document: ``tests/<path>.py::<test name>``.
_TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
#: Paths of the private workspace this project was developed in, which a clone does not have.
#: (Built from parts so that this file does not match itself.)
_OUTSIDE = re.compile("|".join([re.escape("../" + "shared"), re.escape("shared" + "/spec/")]))
#: Our own issue tracker's numbers ("issue 6", "(issue 5)", "issue #3", "issues 2"): a comment says
#: what it means instead, since a reader of the code does not have the tracker.
_ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
def _tracked_text_files() -> dict[str, str]:
    """Every text file git tracks or would track, by its path relative to the repository root."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        skip = {".venv", ".git", "build", "dist", "node_modules", "__pycache__"}
        names = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)
        ]
    files: dict[str, str] = {}
    for name in names:
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        files[name] = data.decode("utf-8", "replace")
    return files


def _offenders(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, text in _tracked_text_files().items():
        if name == "tests/test_docs.py":
            continue
        hits = [f"{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
        if hits:
            found[name] = hits
    return found


def _assert_none(found: dict[str, list[str]], what: str) -> None:
    assert not found, f"{what}: {found}"


@pytest.mark.parametrize("doc", sorted(_PINNED_DOCS))
def test_a_document_names_only_tests_that_exist(doc: str) -> None:
    refs = set(_TEST_REF.findall((ROOT / doc).read_text()))
    assert len(refs) >= _PINNED_DOCS[doc], f"{doc} should pin its statements to tests"
    missing = []
    for path, name in sorted(refs):
        source = ROOT / path
        if not source.is_file() or not re.search(rf"^(async )?def {name}\(", source.read_text(), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert not missing, f"{doc} names tests that do not exist: {missing}"


def test_no_file_refers_outside_the_repository() -> None:
    _assert_none(_offenders(_OUTSIDE), "files that point outside the repository")


def test_no_file_cites_our_issue_numbers() -> None:
    _assert_none(
        _offenders(_ISSUE_NUMBER), "files that cite an issue number instead of saying what they mean"
    )
