"""``wandblite sync --watch`` against a live writer: rows reach the server while the run goes on; a
SIGKILLed writer's run becomes crashed on the server holding every row whose ``log`` returned."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .conftest import CLI, ROOT, ServerProc, assert_same_history, clean_env, write_run

LIVE_WRITER = r"""
import os, sys, time
import wandblite
run = wandblite.init(project="live", id=sys.argv[1], dir=os.environ["RUNS"])
i = 0
while True:
    run.log({"loss": 1.0 / (i + 1), "i": i})
    i += 1
    print(i, flush=True)  # printed only after log() returned
    time.sleep(0.004)
"""


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_watch_follows_a_live_run_and_marks_it_crashed_after_sigkill(fresh_server: ServerProc, tmp_path: Path) -> None:
    srv = fresh_server.start()
    runs = tmp_path / "runs"
    runs.mkdir()
    env = clean_env(RUNS=str(runs), WANDBLITE_HEARTBEAT="0.2", WANDBLITE_HEARTBEAT_GRACE="1.5",
                    WANDBLITE_CONSOLE="off", WANDBLITE_DISABLE_STATS="1", WANDBLITE_HOME=str(tmp_path / "h"))
    watcher = subprocess.Popen([*CLI, "sync", str(runs), "--watch", "--interval", "0.2", "--server", srv.url,
                                "--api-key", srv.key, "--batch-size", "200"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, "w1"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    logged = [0]

    def count() -> None:
        assert writer.stdout is not None
        for line in writer.stdout:
            logged[0] = int(line)

    reader = threading.Thread(target=count, daemon=True)
    reader.start()
    try:
        def seen_running() -> bool:
            r = srv.get("/api/v1/projects/live/runs/w1")
            return r.status_code == 200 and r.json()["rows"] > 50 and r.json()["state"] == "running"

        _wait(seen_running, 30, "rows of the live run on the server")
        assert writer.poll() is None  # rows arrived while the writer was still running
        first_seen = srv.position("live", "w1")["rows"]
        _wait(lambda: srv.position("live", "w1")["rows"] > first_seen + 50, 20, "more rows while the run goes on")
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        reader.join(5)
        returned = logged[0]
        assert returned > 100

        def crashed() -> bool:
            return srv.get("/api/v1/projects/live/runs/w1").json()["state"] == "crashed"

        _wait(crashed, 20, "the run to become crashed on the server")
        _wait(lambda: srv.position("live", "w1")["rows"] >= returned, 10, "every returned log on the server")
        assert_same_history(srv, "live", "w1", runs / "w1")
        # A second run started while watching is picked up too.
        write_run(runs, "live", "late", 30)
        _wait(lambda: srv.get("/api/v1/projects/live/runs/late").status_code == 200
              and srv.get("/api/v1/projects/live/runs/late").json()["state"] == "finished", 20, "the new run")
        assert len(srv.history("live", "late")) == 30
    finally:
        if writer.poll() is None:
            writer.kill()
        watcher.send_signal(signal.SIGTERM)
        try:
            rc = watcher.wait(15)
        except subprocess.TimeoutExpired:
            watcher.kill()
            raise AssertionError("the watcher did not stop on SIGTERM") from None
    assert rc == 0, watcher.stderr.read() if watcher.stderr else ""
