"""Console capture: real child processes whose stdout/stderr pipes stand in for the terminal."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from wandblite.console import _MAX_PENDING_CHARS, TRUNCATION_MARKER, ConsoleCapture, _LineBuffer

MODES = ["wrap", "redirect"]


# -- the line buffer, alone ---------------------------------------------------------------------


def test_complete_lines_come_out_at_once_and_partial_lines_wait() -> None:
    buf = _LineBuffer("stdout")
    assert buf.push("a\nb\npart") == "a\nb\n"
    assert buf.push("ial") == ""
    assert buf.push(" line\nnext") == "partial line\n"
    assert buf.take() == "next"
    assert buf.take() == ""


def test_carriage_return_keeps_only_the_final_state_of_a_line() -> None:
    buf = _LineBuffer("stderr")
    assert buf.push("x\r 10%\r 20%\rdone\nabc\r\n") == "done\nabc\n"


def test_crlf_split_across_writes_keeps_the_line() -> None:
    buf = _LineBuffer("stdout")
    assert buf.push("windows line\r") == ""
    assert buf.push("\n") == "windows line\n"


def test_ten_thousand_bar_updates_hold_constant_memory() -> None:
    buf = _LineBuffer("stderr")
    for i in range(10_000):
        assert buf.push(f"\r{i:5d}/10000 |{'#' * (i // 500):20s}|") == ""
        assert buf.size < 100
    assert buf.push("\n") == f" 9999/10000 |{'#' * 19:20s}|\n"


def test_a_partial_line_past_the_limit_is_emitted() -> None:
    buf = _LineBuffer("stdout")
    chunk = "x" * 1000
    emitted = "".join(buf.push(chunk) for _ in range(_MAX_PENDING_CHARS // 1000 + 2))
    assert emitted and set(emitted) == {"x"}
    assert buf.size <= _MAX_PENDING_CHARS


# -- in-process: streams restored, threads, sink failures ------------------------------------------


@contextlib.contextmanager
def fake_terminal() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    # Inside the test body: pytest's own capture puts its streams back between setup and call.
    saved = sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved


def test_stop_restores_the_streams_and_start_stop_are_idempotent() -> None:
    with fake_terminal() as (out, err):
        records: list[tuple[float, str, str]] = []
        capture = ConsoleCapture(lambda ts, s, t: records.append((ts, s, t)))
        capture.start()
        proxy = sys.stdout
        capture.start()
        assert sys.stdout is proxy and proxy is not out
        assert sys.stdout.isatty() is False and sys.stdout.getvalue() == ""  # type: ignore[union-attr]
        print("one")
        print("unfinished", end="")
        capture.stop()
        capture.stop()
        assert sys.stdout is out and sys.stderr is err
        print("after")
        assert out.getvalue() == "one\nunfinishedafter\n"
        assert [(s, t) for _, s, t in records] == [("stdout", "one\n"), ("stdout", "unfinished")]


def test_off_mode_changes_nothing() -> None:
    with fake_terminal() as (out, _):
        records: list[Any] = []
        capture = ConsoleCapture(lambda *a: records.append(a), mode="off")
        capture.start()
        assert sys.stdout is out
        print("x")
        capture.stop()
        assert records == [] and out.getvalue() == "x\n"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="console mode"):
        ConsoleCapture(lambda *a: None, mode="tee")


def test_writes_from_many_threads_never_share_a_record() -> None:
    with fake_terminal() as (out, _):
        records: list[str] = []
        capture = ConsoleCapture(lambda ts, s, t: records.append(t))
        capture.start()

        def worker(k: int) -> None:
            for i in range(2000):
                sys.stdout.write(f"thread{k}-line{i}-" + "x" * (i % 50) + "\n")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        capture.stop()
        lines = "".join(records).splitlines()
        assert sorted(lines) == sorted(out.getvalue().splitlines())
        assert len(lines) == 8 * 2000
        assert all(r.endswith("\n") for r in records)
        for k in range(8):
            mine = [line for line in lines if line.startswith(f"thread{k}-")]
            assert [int(m.split("-")[1][4:]) for m in mine] == list(range(2000))


def test_a_failing_sink_warns_once_and_printing_goes_on() -> None:
    with fake_terminal() as (out, err):
        calls = 0

        def full_disk(ts: float, stream: str, text: str) -> None:
            nonlocal calls
            calls += 1
            raise OSError(28, "No space left on device")

        capture = ConsoleCapture(full_disk)
        capture.start()
        for i in range(5):
            print(f"line {i}")
        capture.stop()
        assert out.getvalue() == "".join(f"line {i}\n" for i in range(5))
        assert calls == 5  # it keeps trying: a full disk may be freed
        assert err.getvalue().count("wandblite: console capture could not record output") == 1
        assert "No space left on device" in err.getvalue()


def test_a_sink_that_prints_does_not_deadlock_or_recurse() -> None:
    with fake_terminal() as (out, _):
        records: list[str] = []

        def chatty(ts: float, stream: str, text: str) -> None:
            print("sink says hi")  # goes to the terminal, is not recorded
            records.append(text)

        capture = ConsoleCapture(chatty)
        capture.start()
        print("user line")
        capture.stop()
        assert records == ["user line\n"]
        # print() writes "user line" then "\n"; the sink runs (and prints) inside the second write.
        assert out.getvalue() == "user linesink says hi\n\n"


# -- real processes: terminal unchanged, records equal to it ----------------------------------------

PRINTING = """
capture = start(MODE)
t0 = time.time()
print("hello", 42)
print("a partial", end="", flush=True)
print(" line completed")
sys.stderr.write("an error\\n")
print("ünïcödé ✓")
sys.stdout.writelines(["w1\\n", "w2\\n"])
print("no newline at the end", end="")
capture.stop()
print("not recorded: after stop")
"""


@pytest.mark.parametrize("mode", MODES)
def test_python_prints_are_recorded_and_the_terminal_is_unchanged(child: Any, mode: str) -> None:
    before = time.time()
    done = child.run(f"MODE = {mode!r}\n" + PRINTING)
    after = time.time()
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert out == (
        "hello 42\na partial line completed\nünïcödé ✓\nw1\nw2\nno newline at the endnot recorded: after stop\n"
    )
    assert done.stderr.decode() == "an error\n"
    assert (
        child.text("stdout") == "hello 42\na partial line completed\nünïcödé ✓\nw1\nw2\nno newline at the end"
    )
    assert child.text("stderr") == "an error\n"
    stamps = [ts for ts, _, _ in child.records()]
    assert all(before <= ts <= after for ts in stamps)
    assert stamps == sorted(stamps)


def test_redirect_records_native_writes_and_subprocess_output(child: Any) -> None:
    done = child.run(
        """
import subprocess
capture = start("redirect")
print("from python")
os.write(1, b"from a C-level write\\n")
os.write(2, b"to fd 2 directly\\n")
subprocess.run(["echo", "from echo, inheriting fd 1"], check=True)
subprocess.run(["sh", "-c", "echo from sh on stderr >&2"], check=True)
print("last python line")
capture.stop()
os.write(1, b"after stop, not recorded\\n")
"""
    )
    assert done.returncode == 0, done.stderr.decode()
    expected_out = "from python\nfrom a C-level write\nfrom echo, inheriting fd 1\nlast python line\n"
    assert done.stdout.decode() == expected_out + "after stop, not recorded\n"
    assert done.stderr.decode() == "to fd 2 directly\nfrom sh on stderr\n"
    assert child.text("stdout") == expected_out
    assert child.text("stderr") == "to fd 2 directly\nfrom sh on stderr\n"


def test_redirect_restores_the_original_fds_and_line_buffering(child: Any) -> None:
    done = child.run(
        """
before = [os.fstat(fd) for fd in (1, 2)]
buffering = sys.stdout.line_buffering
capture = start("redirect")
during = [os.fstat(fd) for fd in (1, 2)]
capture.stop()
after = [os.fstat(fd) for fd in (1, 2)]
key = lambda st: (st.st_dev, st.st_ino)
sys.stderr.write(repr([
    list(map(key, before)) == list(map(key, after)),
    list(map(key, before)) != list(map(key, during)),
    sys.stdout.line_buffering == buffering,
]))
"""
    )
    assert done.stderr.decode() == "[True, True, True]"


def test_wrap_sees_python_writes_only(child: Any) -> None:
    # The documented limit of wrap mode: native writes to fd 1 reach the terminal, not the record.
    done = child.run('capture = start("wrap")\nos.write(1, b"native\\n")\nprint("python")\ncapture.stop()\n')
    assert done.stdout.decode() == "native\npython\n"
    assert child.text("stdout") == "python\n"


@pytest.mark.parametrize("mode", MODES)
def test_progress_bar_updates_collapse_to_the_final_state(child: Any, mode: str) -> None:
    done = child.run(
        f"""
capture = start({mode!r})
for epoch in range(3):
    for i in range(10001):
        sys.stderr.write(f"\\repoch {{epoch}}: {{i * 100 // 10000:3d}}%")
    sys.stderr.write("\\n")
print("done")
capture.stop()
"""
    )
    assert done.returncode == 0
    terminal = done.stderr.decode()
    assert terminal.count("\r") == 3 * 10001  # the terminal got every update
    assert child.text("stderr") == "epoch 0: 100%\nepoch 1: 100%\nepoch 2: 100%\n"
    stderr_records = [r for r in child.records() if r[1] == "stderr"]
    # O(1) records per completed line; redirect may split a line's bytes over a few pipe reads,
    # but a record is only made when a line completes.
    assert len(stderr_records) == 3
    assert child.text("stdout") == "done\n"


@pytest.mark.parametrize("mode", MODES)
def test_the_cap_ends_the_record_with_a_marker(child: Any, mode: str) -> None:
    done = child.run(
        f"""
capture = start({mode!r}, cap_bytes=1000)
for i in range(200):
    print(f"line {{i:04d}} " + "." * 40)
# In redirect mode each fd has its own reader thread, so order across the two streams is not
# kept: wait until the stdout reader has hit the cap before writing to stderr.
deadline = time.time() + 10
while not capture.truncated and time.time() < deadline:
    time.sleep(0.01)
sys.stderr.write("stderr after the cap\\n")
capture.stop()
"""
    )
    assert done.returncode == 0
    assert done.stdout.decode().count("\n") == 200  # the terminal still gets everything
    assert "stderr after the cap" in done.stderr.decode()
    records = child.records()
    text = "".join(t for _, _, t in records)
    marker = TRUNCATION_MARKER.format(n=1000)
    assert records[-1][2].endswith(marker + "\n")
    assert text.count("wandblite: console output truncated") == 1
    body = text[: text.index(marker)].rstrip("\n")
    assert len(body.encode()) <= 1000
    assert body.startswith("line 0000 ") and "stderr after the cap" not in text


@pytest.mark.parametrize("mode", MODES)
def test_sigkill_during_heavy_printing_loses_nothing_captured(child: Any, mode: str) -> None:
    # The child prints numbered lines as fast as it can; we SIGKILL it mid-stream. What the sink
    # accepted must be a gapless prefix of the lines, and must include every line the terminal
    # shows as complete: the capture records a line before passing it on.
    code = f"""
capture = start({mode!r})
i = 0
while True:
    print(f"line {{i}} " + "x" * (i % 70))
    i += 1
"""
    proc = subprocess.Popen(child.argv(code), stdout=subprocess.PIPE, env=child.env())
    assert proc.stdout is not None
    seen = b""
    while seen.count(b"\n") < 20_000:
        chunk = os.read(proc.stdout.fileno(), 65536)
        assert chunk, "child ended early"
        seen += chunk
    os.kill(proc.pid, signal.SIGKILL)
    seen += proc.stdout.read()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    terminal_lines = seen.decode().split("\n")[:-1]  # the last element is a partial line or ""
    recorded = child.text("stdout")
    recorded_lines = recorded.split("\n")
    if recorded_lines[-1] == "":
        recorded_lines.pop()
    expected = [f"line {i} " + "x" * (i % 70) for i in range(len(recorded_lines))]
    assert recorded_lines == expected, "recorded lines are not a gapless prefix"
    assert recorded.endswith("\n") or recorded == ""  # only whole lines are recorded before stop()
    assert terminal_lines == expected[: len(terminal_lines)]
    assert len(terminal_lines) <= len(recorded_lines), "the terminal shows lines the capture lost"
    assert len(recorded_lines) >= 20_000


def test_a_forked_child_passes_through_without_recording(child: Any) -> None:
    done = child.run(
        """
capture = start("wrap")
print("parent before fork", flush=True)
pid = os.fork()
if pid == 0:
    print("from the child", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent after fork")
capture.stop()
"""
    )
    assert done.returncode == 0
    assert done.stdout.decode() == "parent before fork\nfrom the child\nparent after fork\n"
    assert child.text("stdout") == "parent before fork\nparent after fork\n"
    assert {r[0] for r in child.records()}  # timestamps present


def test_interpreter_exit_stops_a_capture_left_running(child: Any) -> None:
    # Without stop(), redirected output would be stranded in the pipe at exit; atexit stops it.
    done = child.run('start("redirect")\nprint("last words", end="")\n')
    assert done.stdout.decode() == "last words"
    assert child.text("stdout") == "last words"
