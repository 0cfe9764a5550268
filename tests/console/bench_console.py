"""Benchmark (not a test): what console capture adds to a print, and what the system sampler costs.

Run: ``.venv/bin/python tests/console/bench_console.py``. Prints medians of several rounds and ratios
against the floor measured in the same run (capture off), never absolute pass/fail figures.

- print: ``print()`` of an 80-character line to a stream over /dev/null, block-buffered (stdout
  redirected to a log file, the SLURM case) and line-buffered (an interactive terminal: one write
  system call per line). With capture on, the sink either does nothing (the capture's own cost) or
  appends a small record with one ``os.write`` to a file (about what the core's writer does).
- redirect: the same print with fd-level capture, measured in a child whose fd 1 is /dev/null.
- sample(): the cost of one call, and that cost as a share of one core at the default 15 s.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from wandblite.console import ConsoleCapture  # noqa: E402
from wandblite.system import SystemSampler, job_context  # noqa: E402

LINE = "x" * 80
N = 50_000
ROUNDS = 7


def _per_print_us(stream: io.TextIOWrapper, capture: ConsoleCapture | None) -> float:
    saved = sys.stdout
    sys.stdout = stream
    try:
        if capture:
            capture.start()
        t0 = time.perf_counter()
        for _ in range(N):
            print(LINE)
        elapsed = time.perf_counter() - t0
        if capture:
            capture.stop()
        stream.flush()
    finally:
        sys.stdout = saved
    return elapsed / N * 1e6


def _devnull(line_buffering: bool) -> io.TextIOWrapper:
    return io.TextIOWrapper(open(os.devnull, "wb"), line_buffering=line_buffering)  # noqa: SIM115


def _median(f: Callable[[], float]) -> float:
    return statistics.median(f() for _ in range(ROUNDS))


def bench_wrap() -> None:
    tmp = tempfile.mkdtemp()
    fd = os.open(os.path.join(tmp, "sink"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def null_sink(ts: float, stream: str, text: str) -> None:
        pass

    def file_sink(ts: float, stream: str, text: str) -> None:
        os.write(fd, f"{ts:.6f} {stream} {text}".encode())

    print(f"print() of an {len(LINE)}-char line, median of {ROUNDS} rounds x {N} prints (wrap mode)")
    for buffering, label in ((False, "block-buffered (log file)"), (True, "line-buffered (terminal)")):
        stream = _devnull(buffering)
        off = _median(partial(_per_print_us, stream, None))
        null = _median(partial(_per_print_us, stream, ConsoleCapture(null_sink)))
        real = _median(partial(_per_print_us, stream, ConsoleCapture(file_sink)))
        print(
            f"  {label:27s} off {off:6.2f} us | capture, no-op sink {null:6.2f} us ({null / off:4.2f}x)"
            f" | capture, os.write sink {real:6.2f} us ({real / off:4.2f}x)"
        )
    os.close(fd)


REDIRECT_CHILD = """
import os, sys, time, statistics
sys.path.insert(0, {repo!r})
from wandblite.console import ConsoleCapture
fd = os.open({sink!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
def sink(ts, stream, text):
    os.write(fd, f"{{ts:.6f}} {{stream}} {{text}}".encode())
def run(capture):
    if capture: capture.start()
    t0 = time.perf_counter()
    for _ in range({n}):
        print({line!r})
    sys.stdout.flush()
    elapsed = time.perf_counter() - t0
    if capture: capture.stop()
    return elapsed / {n} * 1e6
sys.stdout.reconfigure(line_buffering=True)  # redirect mode line-buffers stdout; compare like with like
off = statistics.median(run(None) for _ in range({rounds}))
on = statistics.median(run(ConsoleCapture(sink, mode="redirect")) for _ in range({rounds}))
os.write(2, f"{{off}} {{on}}".encode())
"""


def bench_redirect() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = REDIRECT_CHILD.format(
            repo=str(REPO), sink=os.path.join(tmp, "sink"), n=N, line=LINE, rounds=ROUNDS
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
    off, on = map(float, done.stderr.split()[-2:])
    print(
        f"  {'redirect, line-buffered':27s} off {off:6.2f} us | capture, os.write sink {on:6.2f} us ({on / off:4.2f}x)"
        "  (writer thread only; the reader thread's work runs on another core)"
    )


def bench_sampler() -> None:
    sampler = SystemSampler(lambda ts, m: None)
    sampler.sample()

    def one() -> float:
        t0 = time.perf_counter()
        for _ in range(200):
            sampler.sample()
        return (time.perf_counter() - t0) / 200

    cost = _median(one)
    print(
        f"SystemSampler.sample(): {cost * 1e3:.3f} ms per call -> {cost / 15.0 * 100:.4f}% of one core at 15 s"
        f" ({len(sampler.sample())} keys)"
    )

    def ctx() -> float:
        t0 = time.perf_counter()
        job_context()
        return time.perf_counter() - t0

    print(f"job_context(): {_median(ctx) * 1e3:.2f} ms (median; in this repository, so one git status)")


if __name__ == "__main__":
    bench_wrap()
    bench_redirect()
    bench_sampler()
