"""Partial lines (no newline yet) reach the run file within a bounded time and read back whole.

A partial line is recorded provisionally once it has been held ``_PARTIAL_DELAY_S`` (the flusher
looks every ``_PARTIAL_TICK_S``); the record that later completes it continues it, or starts with
``"\\r"`` when the line was overwritten meanwhile. ``join_records`` (used by replay, ``logs`` and
``show``) puts each line back together so it appears once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import wandblite
from wandblite.console import (
    _PARTIAL_DELAY_S,
    _PARTIAL_MAX_DELAY_S,
    _PARTIAL_TICK_S,
    TRUNCATION_MARKER,
    _LineBuffer,
    join_records,
)

MODES = ["wrap", "redirect"]
# Longer than the worst case until a partial line is recorded (delay + one tick), with room for
# a loaded machine; the SIGKILL comes after it.
SETTLE_S = 2 * (_PARTIAL_DELAY_S + _PARTIAL_TICK_S) + 0.5


# -- the line buffer and the join, alone -----------------------------------------------------------


def _records(*texts: str, stream: str = "stdout") -> list[tuple[float, str, str]]:
    return [(float(i), stream, t) for i, t in enumerate(texts)]


def test_a_provisional_record_is_continued_by_appending() -> None:
    buf = _LineBuffer("stdout")
    assert buf.push("epoch 3 ...") == ""
    assert buf.take() == "epoch 3 ..."
    assert buf.push(" loss 0.25") == ""
    assert buf.take() == " loss 0.25"
    assert buf.push(" done\nnext") == " done\n"
    assert buf.take() == "next"  # a new line: not a continuation of anything overwritten


def test_an_overwritten_provisional_line_is_continued_with_a_carriage_return() -> None:
    buf = _LineBuffer("stderr")
    assert buf.push("epoch 3:  10%") == ""
    assert buf.take() == "epoch 3:  10%"
    assert buf.push("\repoch 3:  40%\repoch 3:  70%") == ""
    assert buf.take() == "\repoch 3:  70%"
    assert buf.push("\repoch 3: 100%\n") == "\repoch 3: 100%\n"
    # Not open any more: a bar on the next line collapses as before, with no marker.
    assert buf.push("x\ry\n") == "y\n"


def test_a_trailing_carriage_return_stays_held_until_the_next_write_decides() -> None:
    buf = _LineBuffer("stdout")
    assert buf.push("windows line\r") == ""
    assert buf.take() == "windows line"
    assert buf.push("\n") == "\n"  # "\r\n": the line ends, nothing was overwritten
    assert buf.push("bar 1\r") == ""
    assert buf.take() == "bar 1"
    assert buf.push("bar 2") == ""
    assert buf.take() == "\rbar 2"  # the held "\r" did overwrite
    assert buf.push("\r") == "" and buf.take() == ""  # nothing new to record yet


def test_join_appends_continuations_and_replaces_overwritten_lines() -> None:
    recs = _records("epoch 3 ...", " done\n", "bar 10%", "\rbar 50%", "\rbar 100%\nnext\n")
    assert [t for _, _, t in join_records(recs)] == ["epoch 3 ... done\n", "bar 100%\nnext\n"]
    # The joined line carries the timestamp of the record that completed it.
    assert [ts for ts, _, _ in join_records(recs)] == [1.0, 4.0]


def test_join_keeps_streams_apart_and_puts_open_lines_last() -> None:
    recs = [
        (1.0, "stdout", "epoch 3 ..."),
        (2.0, "stderr", "a warning\n"),
        (3.0, "stdout", " done\n"),
        (4.0, "stdout", "epoch 4 ..."),
        (5.0, "stderr", "another\n"),
    ]
    assert list(join_records(recs)) == [
        (2.0, "stderr", "a warning\n"),
        (3.0, "stdout", "epoch 3 ... done\n"),
        (5.0, "stderr", "another\n"),
        (4.0, "stdout", "epoch 4 ..."),
    ]


def test_join_of_records_from_before_partial_flushing_is_their_concatenation() -> None:
    # Old files: records cut at 64 KiB or at stop never start with "\r".
    recs = _records("a\nb", "c\n", "unfinished")
    assert "".join(t for _, _, t in join_records(recs)) == "a\nbc\nunfinished"
    # A continuation whose start fell out of a tail window just loses its "\r".
    assert list(join_records(_records("\rbar 100%\n"))) == [(0.0, "stdout", "bar 100%\n")]


# -- real processes, the capture alone --------------------------------------------------------------


def _spawn(child: Any, code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(child.argv(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child.env())


def _wait_for(child: Any, predicate: Any, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    while not predicate(child.records()):
        assert time.monotonic() - t0 < timeout, child.records()
        time.sleep(0.02)
    return time.monotonic() - t0


@pytest.mark.parametrize("mode", MODES)
def test_a_partial_line_survives_sigkill_after_the_flush_delay(child: Any, mode: str) -> None:
    # No flush=True: in wrap mode the text sits in the block-buffered stdout (a pipe), in redirect
    # mode in Python's line buffer; neither reaches a terminal, but the capture records it.
    proc = _spawn(
        child,
        f"""
capture = start({mode!r})
print("complete line")
print("epoch 3 ...", end="")
sys.stdout.write(" loss 0.25")
time.sleep(60)
""",
    )
    try:
        time.sleep(SETTLE_S)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert child.text("stdout") == "complete line\nepoch 3 ... loss 0.25"
    assert list(join_records(child.records()))[-1][2] == "epoch 3 ... loss 0.25"


@pytest.mark.parametrize("mode", MODES)
def test_a_line_built_from_many_small_writes_reads_as_one_line(child: Any, mode: str) -> None:
    done = child.run(
        f"""
capture = start({mode!r})
for i in range(40):
    sys.stdout.write(f"tok{{i}} ")
    sys.stdout.flush()
    time.sleep(0.05)
print("end")
print("second line")
capture.stop()
"""
    )
    assert done.returncode == 0, done.stderr.decode()
    line = "".join(f"tok{i} " for i in range(40)) + "end\n"
    assert done.stdout.decode() == line + "second line\n"
    records = [r for r in child.records() if r[1] == "stdout"]
    # Two seconds of trickling: a few provisional records (0.5 s, then 1 s apart), not forty.
    assert 3 <= len(records) <= 6, records
    assert child.text("stdout") == line + "second line\n"  # plain appends: concatenation works
    assert "".join(t for _, _, t in join_records(records)) == line + "second line\n"
    assert next(t for _, _, t in join_records(records)).startswith(line)  # one record holds the line


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_progress_bar_records_a_few_states_and_reads_as_its_final_state(child: Any, mode: str) -> None:
    # A bar updated every 10 ms for 3 s: 300 updates, a handful of provisional records.
    done = child.run(
        f"""
capture = start({mode!r})
t0 = time.time()
i = 0
while time.time() - t0 < 3:
    sys.stderr.write(f"\\rtraining: {{i:5d}} it")
    sys.stderr.flush()
    i += 1
    time.sleep(0.01)
sys.stderr.write(f"\\rtraining: done {{i}} it\\n")
print("after the bar")
capture.stop()
"""
    )
    assert done.returncode == 0, done.stderr.decode()
    final = done.stderr.decode().rsplit("\r", 1)[1]
    records = [r for r in child.records() if r[1] == "stderr"]
    # Provisional records at about 0.5-0.75 s, then 1, 2 s after the previous: 3 or 4, plus the end.
    assert 3 <= len(records) <= 6, records
    assert all(t.startswith("\r") for _, _, t in records[1:])
    assert [t for _, _, t in join_records(records)] == [final]
    assert final.startswith("training: done")


def test_provisional_records_are_spaced_out_up_to_the_maximum_delay() -> None:
    # What the spacing rule gives for an hour-long bar that never prints a newline.
    t, n, delay = 0.0, 0, _PARTIAL_DELAY_S
    while t < 3600:
        t += delay + _PARTIAL_TICK_S
        n += 1
        delay = min(delay * 2, _PARTIAL_MAX_DELAY_S)
    assert n <= 3600 / _PARTIAL_MAX_DELAY_S + 10


def test_partial_records_count_toward_the_cap(child: Any) -> None:
    done = child.run(
        """
capture = start("wrap", cap_bytes=30)
sys.stdout.write("0123456789" * 2)
time.sleep(1.5)
sys.stdout.write("abcdefghij" * 2 + "\\n")
print("not recorded")
capture.stop()
"""
    )
    assert done.returncode == 0
    records = child.records()
    assert records[0][2] == "0123456789" * 2  # the provisional record
    text = "".join(t for _, _, t in join_records(records))
    assert text == "0123456789" * 2 + "abcdefghij\n" + TRUNCATION_MARKER.format(n=30) + "\n"


# -- a real run: replay, show and logs --------------------------------------------------------------


def _start_run(tmp_path: Path, body: str, console: str) -> subprocess.Popen[bytes]:
    code = "import os, sys, time, wandblite\n" + 'run = wandblite.init(project="p", id="r1", dir=sys.argv[1])\n'
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(WANDBLITE_CONSOLE=console, WANDBLITE_DISABLE_STATS="1", WANDBLITE_SILENT="1")
    return subprocess.Popen(
        [sys.executable, "-c", code + textwrap.dedent(body), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _kill_after(proc: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        time.sleep(seconds)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("console", MODES)
def test_crashed_runs_console_tail_ends_with_the_last_partial_line(tmp_path: Path, console: str) -> None:
    proc = _start_run(
        tmp_path,
        """
        for i in range(3):
            print(f"epoch {i} done")
            run.log({"epoch": i})
        print("epoch 3 ...", end="")
        time.sleep(60)
        """,
        console,
    )
    _kill_after(proc, SETTLE_S + 1.0)  # + interpreter and wandblite start-up
    r = wandblite.replay(tmp_path / "r1")
    assert r.state == "crashed"
    assert r.console_tail[-1][2] == "epoch 3 ..."
    assert r.output() == "epoch 0 done\nepoch 1 done\nepoch 2 done\nepoch 3 ..."

    from wandblite_cli.main import cli

    shown = CliRunner().invoke(cli, ["show", str(tmp_path / "r1")])
    assert shown.exit_code == 0, shown.output
    tail = shown.output.split("last console lines:\n")[1].splitlines()
    assert [line.strip() for line in tail[:4]] == ["epoch 0 done", "epoch 1 done", "epoch 2 done", "epoch 3 ..."]
    logs = CliRunner().invoke(cli, ["logs", str(tmp_path / "r1"), "--tail", "2"])
    assert logs.output == "epoch 2 done\nepoch 3 ...\n"


@pytest.mark.parametrize("console", MODES)
def test_a_continued_line_appears_once_in_replay_show_and_logs(tmp_path: Path, console: str) -> None:
    proc = _start_run(
        tmp_path,
        """
        sys.stderr.write("epoch 1:   0%")
        sys.stderr.flush()
        time.sleep(1.2)
        sys.stderr.write("\\repoch 1:  50%")
        sys.stderr.flush()
        time.sleep(1.2)
        sys.stderr.write("\\repoch 1: 100%\\n")
        print("loss 0.5", end="")
        time.sleep(1.2)
        print(", acc 0.9")
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(60)
        """,
        console,
    )
    _kill_after(proc, 3 * 1.2 + SETTLE_S + 1.0)
    r = wandblite.replay(tmp_path / "r1")
    raw = list(r.console())
    assert len(raw) >= 5, raw  # provisional records were made
    assert r.output() == "epoch 1: 100%\nloss 0.5, acc 0.9\n"
    assert [t for _, _, t in r.console_tail] == ["epoch 1: 100%\n", "loss 0.5, acc 0.9\n"]

    from wandblite_cli.main import cli

    logs = CliRunner().invoke(cli, ["logs", str(tmp_path / "r1")])
    assert logs.output == "epoch 1: 100%\nloss 0.5, acc 0.9\n"
    shown = CliRunner().invoke(cli, ["show", str(tmp_path / "r1")])
    tail = [line.strip() for line in shown.output.split("last console lines:\n")[1].splitlines()[:3]]
    assert tail[:2] == ["epoch 1: 100%", "loss 0.5, acc 0.9"] and tail[2] != "loss 0.5, acc 0.9"
