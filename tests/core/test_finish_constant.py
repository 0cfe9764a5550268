"""``finish()`` in constant time: it writes the exit record, fsyncs and closes without reading the run file.

What the live run still needs afterwards comes from counters it keeps anyway (``run.step``) or is
read lazily, once, on first use (``run.summary``), and then equals what a replay of the file says.
The finish banner's summary is the one reader at finish: it reads only what the ticker's background
catch-up has not folded yet. Reads are counted through a patched ``RecordReader``.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wandblite

_run_module = importlib.import_module("wandblite.run")


class Reads:
    """Every reader the run module opens on a run file: (thread name, start offset) each."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None]] = []

    def starts(self, thread: str | None = None) -> list[int | None]:
        return [s for t, s in self.calls if thread is None or t == thread]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    real = _run_module.RecordReader
    seen = Reads()

    def counting(path: Any, start: Any = None, **kwargs: Any) -> Any:
        seen.calls.append((threading.current_thread().name, start))
        return real(path, start=start, **kwargs)

    monkeypatch.setattr(_run_module, "RecordReader", counting)
    monkeypatch.setattr(_run_module, "read_events", None)  # the resume reader: not for a live run
    return seen


def _log_a_mixture(run: Any, steps: int) -> None:
    """Plain rows, partial rows, explicit steps, summary writes and a metric definition."""
    run.define_metric("loss", summary="min")
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1), "phase": "train"}, commit=False)
        run.log({"lr": 0.1 * i}, commit=False)
        run.log({"acc": i / steps})
    run.log({"late": 1}, step=run.step + 5)
    run.summary["best"] = 0.5
    run.log({"open": True}, commit=False)  # pending at finish: the exit record flushes it


def test_finish_reads_nothing_and_the_live_run_then_equals_replay(new_run: Callable[..., Any], reads: Reads,
                                                                  tmp_path: Path) -> None:
    run = new_run(id="fin1")
    _log_a_mixture(run, 50)
    before = len(reads.calls)
    run.finish(quiet=True)
    assert reads.calls[before:] == [], "finish() read the run file"
    replayed = wandblite.replay(tmp_path / "fin1")
    assert run.step == replayed.step == 56  # rows 0-49, then step 55 (pending, merged, flushed by the exit)
    assert run.summary.as_dict() == replayed.summary  # read lazily, now
    assert len(reads.calls) == before + 1
    assert run.summary["loss"] == {"min": 1.0 / 50}
    assert run.summary.as_dict() == replayed.summary
    assert len(reads.calls) == before + 1, "the finished run's file was read twice"


def test_the_step_after_finish_counts_the_flushed_pending_row(new_run: Callable[..., Any], reads: Reads,
                                                              tmp_path: Path) -> None:
    run = new_run(id="fin2")
    run.log({"a": 1}, step=7, commit=False)
    assert run.step == 7
    run.finish(quiet=True)
    assert reads.calls == []
    assert run.step == 8 == wandblite.replay(tmp_path / "fin2").step
    quiet = new_run(id="fin3")
    quiet.log({"a": 1})
    quiet.finish(quiet=True)
    assert quiet.step == 1 == wandblite.replay(tmp_path / "fin3").step


def test_the_finish_banner_reads_only_what_was_not_folded_yet(new_run: Callable[..., Any], reads: Reads,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = new_run(id="fin4")
    for i in range(100):
        run.log({"loss": float(i)})
    assert run.summary["loss"] == 99.0  # a catch-up: the fold is current here
    caught = reads.calls[-1][1]
    run.log({"loss": -1.0})
    n = len(reads.calls)
    run.finish()
    starts = [s for t, s in reads.calls[n:] if t != "wandblite-ticker"]
    assert len(starts) == 1 and starts[0] is not None and caught is not None
    assert starts[0] > caught  # from where the last read stopped
    assert "loss -1" in capsys.readouterr().err


def test_the_ticker_keeps_the_fold_caught_up_so_finish_reads_only_the_tail(
    new_run: Callable[..., Any], reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDBLITE_FSYNC_INTERVAL", "0.05")
    run = new_run(id="fin5")
    for i in range(1000):
        run.log({"x": float(i)})
    deadline = time.monotonic() + 20
    while not reads.starts("wandblite-ticker") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reads.starts("wandblite-ticker"), "the ticker never caught the fold up"
    deadline = time.monotonic() + 20
    while run._read_pos[1] < run._writer.size and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.02)
    folded = run._read_pos  # noqa: SLF001
    run.log({"x": -1.0})
    n = len(reads.calls)
    run.finish()
    # The banner reads once, from where the background left off (which may be past `folded`: the
    # ticker can fold the last record too before finish stops it), never from the start.
    finish_reads = [s for t, s in reads.calls[n:] if t != "wandblite-ticker"]
    assert len(finish_reads) == 1 and finish_reads[0] is not None
    assert finish_reads[0] >= folded[1]
    assert run.summary["x"] == -1.0


def test_a_quiet_run_is_never_read_in_the_background(new_run: Callable[..., Any], reads: Reads,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDBLITE_FSYNC_INTERVAL", "0.02")
    run = new_run(id="fin6", settings=wandblite.Settings(quiet=True))
    for i in range(200):
        run.log({"x": float(i)})
    time.sleep(0.3)  # several ticks: fsyncs, and no catch-up
    run.finish()
    assert reads.calls == []
    assert run.summary["x"] == 199.0
