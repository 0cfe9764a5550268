"""Redirect mode on a terminal: fds 1 and 2 become pseudo-terminals, so ``isatty()`` stays true.

Each child runs on a real pseudo-terminal opened by the test (the ``pty`` module), which stands in
for the user's terminal: the test reads what the terminal shows from its master side. That outer
terminal keeps the usual line discipline (``"\\n"`` shown as ``"\\r\\n"``); the records must hold
exactly the bytes the program wrote.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import time
from typing import Any

import pytest


class Terminal:
    """A pseudo-terminal with a child program on it; ``shown`` is everything the terminal got."""

    def __init__(self, child: Any, code: str, rows: int = 40, cols: int = 132) -> None:
        self.master, slave = pty.openpty()
        self.resize(rows, cols, slave)
        self.proc = subprocess.Popen(
            child.argv(code), stdin=slave, stdout=slave, stderr=slave, env=child.env(), start_new_session=True
        )
        os.close(slave)
        self.shown = b""

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, marker: bytes, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.shown:
            assert time.monotonic() < deadline, self.shown[-500:]
            if not self._read_some():
                break

    def _read_some(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed, the child is gone
            return False
        self.shown += data
        return bool(data)

    def finish(self, timeout: float = 30.0) -> int:
        while self._read_some():
            pass
        os.close(self.master)
        return self.proc.wait(timeout)


def test_redirect_on_a_terminal_keeps_isatty_and_records_exact_bytes(child: Any) -> None:
    term = Terminal(
        child,
        """
capture = start("redirect")
print("isatty", sys.stdout.isatty(), sys.stderr.isatty(), os.isatty(1), os.isatty(2))
print("size", tuple(os.get_terminal_size(1)))
print("tab\\there")
sys.stderr.write("an error\\n")
os.write(1, b"native write\\n")
import subprocess
subprocess.run(["sh", "-c", "test -t 1 && echo sh sees a terminal"], check=True)
sys.stdout.write("bar 1\\rbar 2\\n")
capture.stop()
print("isatty after stop", os.isatty(1))
""",
    )
    assert term.finish() == 0, term.shown
    shown = term.shown.decode()
    # The user's terminal shows everything, through its own "\n" -> "\r\n" as always.
    assert "isatty True True True True\r\n" in shown
    assert "size (132, 40)\r\n" in shown
    assert "tab\there\r\n" in shown and "an error\r\n" in shown and "native write\r\n" in shown
    assert "sh sees a terminal\r\n" in shown and "bar 1\rbar 2\r\n" in shown
    assert "isatty after stop True\r\n" in shown
    # The records are exactly what the program wrote: no "\r\n" from a line discipline.
    assert child.text("stdout") == (
        "isatty True True True True\nsize (132, 40)\ntab\there\nnative write\nsh sees a terminal\nbar 2\n"
    )
    assert child.text("stderr") == "an error\n"


def test_redirect_on_pipes_keeps_pipes(child: Any) -> None:
    done = child.run('capture = start("redirect")\nprint(os.isatty(1), sys.stdout.isatty())\ncapture.stop()\n')
    assert done.stdout.decode() == "False False\n"
    assert child.text("stdout") == "False False\n"


def test_a_resized_terminal_is_seen_through_the_pty(child: Any) -> None:
    term = Terminal(
        child,
        """
capture = start("redirect")
print("ready", flush=True)
deadline = time.time() + 20
while time.time() < deadline:
    size = tuple(os.get_terminal_size(1))
    print("size", size, flush=True)
    if size == (100, 30):
        break
    time.sleep(0.1)
capture.stop()
""",
        rows=24,
        cols=80,
    )
    term.read_until(b"ready")
    term.resize(30, 100)
    assert term.finish() == 0
    assert "size (80, 24)\n" in child.text("stdout")
    assert child.text("stdout").endswith("size (100, 30)\n")


def test_a_partial_line_on_a_terminal_survives_sigkill(child: Any) -> None:
    term = Terminal(child, 'capture = start("redirect")\nprint("step 7: loss", end="")\ntime.sleep(60)\n')
    time.sleep(2.0)  # past the partial-line delay (under 1 s)
    os.kill(term.proc.pid, signal.SIGKILL)
    assert term.finish() == -signal.SIGKILL
    assert child.text("stdout") == "step 7: loss"


def test_sigkill_during_heavy_printing_on_a_terminal_loses_nothing_shown(child: Any) -> None:
    term = Terminal(
        child,
        """
capture = start("redirect")
i = 0
while True:
    print(f"line {i} " + "x" * (i % 70))
    i += 1
""",
    )
    while term.shown.count(b"\n") < 5000:
        assert term._read_some(), "child ended early"
    os.kill(term.proc.pid, signal.SIGKILL)
    term.finish()
    shown_lines = term.shown.decode().split("\r\n")[:-1]
    recorded = child.text("stdout").split("\n")[:-1]
    expected = [f"line {i} " + "x" * (i % 70) for i in range(len(recorded))]
    assert recorded == expected, "recorded lines are not a gapless prefix"
    assert shown_lines == expected[: len(shown_lines)], "the terminal shows lines the capture lost"


def test_a_forked_child_on_a_terminal_is_recorded_by_the_parent(child: Any) -> None:
    term = Terminal(
        child,
        """
capture = start("redirect")
pid = os.fork()
if pid == 0:
    print("child isatty", os.isatty(1), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent after fork")
capture.stop()
""",
    )
    assert term.finish() == 0
    assert child.text("stdout") == "child isatty True\nparent after fork\n"


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_tqdm_like_bars_on_a_terminal_collapse_to_the_final_state(child: Any, stream: str) -> None:
    term = Terminal(
        child,
        f"""
capture = start("redirect")
out = sys.{stream}
for i in range(1001):
    if out.isatty():  # what tqdm checks before drawing in place
        out.write(f"\\r{{i * 100 // 1000:3d}}%")
out.write("\\n")
out.flush()
capture.stop()
""",
    )
    assert term.finish() == 0
    assert term.shown.count(b"\r") >= 1001
    assert child.text(stream) == "100%\n"
