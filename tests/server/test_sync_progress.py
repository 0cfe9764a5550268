"""``wandblite sync``'s progress bar: on a terminal, for more than ``BAR_MIN_BYTES`` of run files.

The CLI runs in a fresh interpreter with its stderr on a real pseudo-terminal (``pty``), which is
what makes ``sys.stderr.isatty()`` true, as in a user's shell; stdout stays a pipe, as when the
output is piped on. The runs are written by the real SDK and synced into the embedded store.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest
from wandblite_cli.sync import BAR_MIN_BYTES

import wandblite

from .conftest import CLI, ROOT, clean_env, cli

ROWS = 2500
PAD = "x" * 2000  # about 2 KB a row: two runs of 2,500 rows are ~10 MB, past the bar's threshold


def _write(root: Path, run_id: str, rows: int = ROWS) -> None:
    run = wandblite.init(project="pb", id=run_id, dir=str(root), settings=wandblite.Settings(console="off",
                                                                                             disable_stats=True))
    for i in range(rows):
        run.log({"loss": 1.0 / (i + 1), "pad": PAD})
    run.finish()
    wandblite._reset_globals()


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("*/events-*.wlr"))


@pytest.fixture
def big_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    _write(root, "big1")
    _write(root, "big2")
    assert _bytes(root) > BAR_MIN_BYTES
    return root


def sync_on_a_terminal(*args: str, home: Path, timeout: float = 300) -> tuple[int, str, str]:
    """``wandblite sync ARGS`` with stderr on a pseudo-terminal: (exit code, stdout, terminal output)."""
    master, slave = pty.openpty()
    env = clean_env(WANDBLITE_HOME=str(home))
    env.pop("WANDBLITE_SILENT", None)
    proc = subprocess.Popen([*CLI, "sync", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            env=env, cwd=str(ROOT))
    os.close(slave)
    term = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:  # drain the terminal while the child writes to it
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                term += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read() if proc.stdout else b""  # type: ignore[union-attr]
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode(), term.decode(errors="replace")


def _percentages(term: str) -> list[int]:
    return [int(p) for p in re.findall(r"\]\s+(\d+)%", term)]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


def test_the_bar_counts_up_to_100_percent_of_the_real_total_then_the_run_lines_follow(
        big_runs: Path, tmp_path: Path) -> None:
    total = _bytes(big_runs)
    code, out, term = sync_on_a_terminal(str(big_runs), home=tmp_path / "home")
    assert code == 0, term
    assert out == ""  # stdout stays clean for pipes
    pct = _percentages(term)
    assert "syncing  [" in term and len(set(pct)) >= 4, term  # it moved while the runs were read
    assert pct == sorted(pct) and pct[-1] == 100, pct
    assert f"100%  {_mib(total)}/{_mib(total)} MiB, run 2 of 2" in term, term  # the final totals
    lines = [ln for ln in term.replace("\r", "\n").splitlines() if ln.startswith("wandblite: ")]
    assert lines == [f"wandblite: pb/{r} (finished): sent {ROWS} rows, 0 console, 0 system, 0 media"
                     for r in ("big1", "big2")]
    assert term.index("100%") < term.index("wandblite: pb/big1")  # the bar is done before the totals


def test_a_second_sync_and_a_run_that_fails_still_end_at_100_percent(big_runs: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert sync_on_a_terminal(str(big_runs), home=home)[0] == 0
    bad = big_runs / "damaged"
    bad.mkdir()
    (bad / "events-000.wlr").write_bytes(os.urandom(3 << 20))  # nothing readable: the run fails
    code, _out, term = sync_on_a_terminal(str(big_runs), home=home)
    assert code == 1
    total = _bytes(big_runs)
    pct = _percentages(term)
    assert pct == sorted(pct) and pct[-1] == 100, term
    assert f"100%  {_mib(total)}/{_mib(total)} MiB, run 3 of 3" in term
    assert "wandblite: pb/big1 (finished): unchanged" in term  # read through the sync-state cache
    assert re.search(r"wandblite: error: \S*damaged: .*not a wandblite run file", term), term


def test_no_bar_with_json_even_on_a_terminal(big_runs: Path, tmp_path: Path) -> None:
    code, out, term = sync_on_a_terminal(str(big_runs), "--json", home=tmp_path / "home")
    assert code == 0, term
    assert "syncing" not in term and "%" not in term and "\x1b[" not in term
    results = [json.loads(line) for line in out.splitlines()]
    assert [(r["run_id"], r["rows"], r["ok"]) for r in results] == [("big1", ROWS, True), ("big2", ROWS, True)]


def test_no_bar_when_stderr_is_not_a_terminal(big_runs: Path, tmp_path: Path) -> None:
    r = cli("sync", str(big_runs), home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    assert "syncing" not in r.stderr and "%" not in r.stderr and "\r" not in r.stderr
    assert r.stderr.splitlines() == [f"wandblite: pb/{x} (finished): sent {ROWS} rows, 0 console, 0 system, 0 media"
                                     for x in ("big1", "big2")]


def test_no_bar_below_the_threshold(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _write(root, "small", rows=50)
    code, _out, term = sync_on_a_terminal(str(root), home=tmp_path / "home")
    assert code == 0, term
    assert "syncing" not in term and "%" not in term
    assert "wandblite: pb/small (finished): sent 50 rows" in term


def test_progress_counts_bytes_across_a_gap_in_the_segment_numbers(tmp_path: Path) -> None:
    """Segments 000 and 002 (001 removed by hand): the bytes before 002 are 000's, not none."""
    from wandblite.runfile import segments
    from wandblite.sync.client import RunTail

    for attempt in range(2):
        run = wandblite.init(project="p", id="gap", dir=str(tmp_path), resume="allow",
                             settings=wandblite.Settings(console="off", disable_stats=True))
        for i in range(2000):
            run.log({"x": float(i), "attempt": attempt})
        run.finish()
    first, second = segments(tmp_path / "gap")
    second.rename(second.with_name("events-002.wlr"))
    tail = RunTail(tmp_path / "gap")
    rows = sum(1 for kind, _i, _x in tail.read() if kind == "row")
    assert rows == 4000
    size0 = first.stat().st_size
    assert size0 < tail.bytes_done <= size0 + (tmp_path / "gap" / "events-002.wlr").stat().st_size
