"""Interruption safety: a sync SIGKILLed at random moments, or a server SIGKILLed in the middle of its
batches and restarted, then a final sync: the server's history is exactly the local replay."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

from .conftest import CLI, ROOT, ServerProc, assert_same_history, clean_env, cli, uniq, write_run

STEPS = 2000


def _sync_proc(srv: ServerProc, runs: Path, project: str, home: Path, batch: int = 100) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "sync", str(runs), "--server", srv.url, "--api-key", srv.key, "--project", project,
                             "--batch-size", str(batch)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=clean_env(WANDBLITE_HOME=str(home)), cwd=str(ROOT))


def _final_sync(srv: ServerProc, runs: Path, project: str, home: Path) -> None:
    r = cli("sync", str(runs), "--server", srv.url, "--api-key", srv.key, "--project", project, home=home)
    assert r.returncode == 0, r.stderr


def test_sync_killed_at_random_points_then_resynced_is_exact(fresh_server: ServerProc, tmp_path: Path) -> None:
    srv = fresh_server.start()
    runs = tmp_path / "runs"
    write_run(runs, "orig", "k", STEPS)
    rng = random.Random(1234)
    # Calibrate: how long one whole sync takes here, so the kills spread over its whole length.
    t0 = time.monotonic()
    _final_sync(srv, runs, uniq("cal"), tmp_path / "h-cal")
    full = time.monotonic() - t0
    midway = 0
    for trial in range(24):
        project = f"kill{trial}"
        home = tmp_path / f"h{trial}"
        for _attempt in range(1 + trial % 2):  # odd trials are killed twice before the final sync
            proc = _sync_proc(srv, runs, project, home)
            time.sleep(rng.uniform(0.05, full))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        rows = srv.position(project, "k")["rows"]
        midway += 0 < rows < STEPS
        _final_sync(srv, runs, project, home)
        assert_same_history(srv, project, "k", runs / "k")
    # The kills must really have landed inside syncs, or this test proves nothing.
    assert midway >= 3, f"only {midway} of 24 kills interrupted a sync (a whole sync takes {full:.2f}s)"


def test_server_killed_mid_batch_and_restarted_leaves_one_clean_copy(fresh_server: ServerProc, tmp_path: Path) -> None:
    srv = fresh_server.start()
    runs = tmp_path / "runs"
    write_run(runs, "orig", "s", 6000)
    rng = random.Random(99)
    for trial in range(3):
        project = f"srvkill{trial}"
        home = tmp_path / f"h{trial}"
        proc = _sync_proc(srv, runs, project, home, batch=500)
        deadline = time.monotonic() + 30
        while srv.position(project, "s")["rows"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the sync is now sending batch after batch
        time.sleep(rng.uniform(0.0, 0.15))
        srv.kill()
        srv.start()  # same port and database: the client's retries find it again
        proc.wait(120)
        _final_sync(srv, runs, project, home)
        assert_same_history(srv, project, "s", runs / "s")
        pos = srv.position(project, "s")
        assert pos["rows"] == 6000 and not pos["pending"]
