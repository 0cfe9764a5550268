"""Fixtures for the console and system tests: child processes that capture into a JSON-lines sink.

Helpers are handed out as fixtures rather than imported, so these tests never depend on which
``conftest`` module another test directory puts first on sys.path.

A child program gets PRELUDE first: it defines ``start(mode, **kw)``, which installs a ConsoleCapture
whose sink appends ``[ts, stream, text]`` as one JSON line to the file named by WL_SINK with a single
os.write (as the core's run-file writer writes through to the kernel), so whatever the sink accepted
survives a SIGKILL of the child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PRELUDE = f"""
import json, os, sys, time
sys.path.insert(0, {str(REPO)!r})
from wandblite.console import ConsoleCapture
_sink_fd = os.open(os.environ["WL_SINK"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def sink(ts, stream, text):
    os.write(_sink_fd, (json.dumps([ts, stream, text]) + "\\n").encode())
def start(mode, **kw):
    capture = ConsoleCapture(sink, mode=mode, **kw)
    capture.start()
    return capture
"""

Record = tuple[float, str, str]


class Child:
    """Runs capture programs in a fresh interpreter and reads back what their sink recorded."""

    def __init__(self, tmp_path: Path) -> None:
        self.sink = tmp_path / "sink.jsonl"

    def argv(self, code: str) -> list[str]:
        return [sys.executable, "-c", PRELUDE + code]

    def env(self, **extra: str) -> dict[str, str]:
        # Python's usual buffering, whatever the test runner's environment says.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        return {**env, "WL_SINK": str(self.sink), **extra}

    def run(self, code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        """Run with stdout and stderr as pipes: the 'terminal' the tests compare against."""
        return subprocess.run(
            self.argv(code), capture_output=True, timeout=timeout, env=self.env(), check=False
        )

    def records(self) -> list[Record]:
        """The sink's records; a torn last line (the child killed mid-write) is not a record."""
        if not self.sink.exists():
            return []
        out: list[Record] = []
        for line in self.sink.read_text().splitlines():
            try:
                ts, stream, text = json.loads(line)
            except ValueError:
                continue
            out.append((ts, stream, text))
        return out

    def text(self, stream: str) -> str:
        return "".join(text for _, s, text in self.records() if s == stream)


@pytest.fixture
def child(tmp_path: Path) -> Child:
    return Child(tmp_path)
