"""Crash, signal, fork, lock, resume and full-disk behaviour of real processes.

Every test here runs the training side in a subprocess and kills or limits it for real.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wandblite
from tests.conftest import run_script
from wandblite.errors import ResumeError, RunLockedError

LOGGER = """
import os, sys, wandblite
run = wandblite.init(project="crash", id="r1", dir=sys.argv[1])
os.write(1, b"ready\\n")
i = 0
while True:
    run.log({"i": i, "loss": 1.0 / (i + 1), "nested": {"a": i}})
    os.write(1, b"%d\\n" % i)   # only after log returned
    i += 1
"""


def _start(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)


def _wait_ready(p: subprocess.Popen[bytes]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line == b"ready\n", line


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_returned_log_call(tmp_path: Path) -> None:
    rnd = random.Random(1234)
    trials = int(os.environ.get("WANDBLITE_CRASH_TRIALS", "50"))
    for trial in range(trials):
        root = tmp_path / f"t{trial}"
        p = _start(LOGGER, str(root))
        _wait_ready(p)
        time.sleep(rnd.uniform(0.0, 0.25))
        p.send_signal(signal.SIGKILL)
        assert p.stdout is not None
        out = p.stdout.read()  # communicate() would skip what readline() already buffered
        p.wait()
        returned = [int(x) for x in out.split()]
        r = wandblite.replay(root / "r1")
        assert r.state == "crashed", trial
        logged = [row["i"] for row in r.history()]
        # every call that returned is there, in order, and nothing else but possibly the one in flight
        assert logged[: len(returned)] == returned, trial
        assert len(logged) - len(returned) in (0, 1), trial
        assert r.damage == [] or all("tail" in d["reason"] for d in r.damage), (trial, r.damage)


def test_sigterm_writes_exit_record_with_traceback_then_dies_by_signal(tmp_path: Path) -> None:
    code = """
    import os, sys, time, wandblite
    run = wandblite.init(project="p", id="t1", dir=sys.argv[1])
    for i in range(5):
        run.log({"i": i})
    run.log({"pending": 1}, commit=False)
    def train_forever():
        os.write(1, b"ready\\n")
        while True:
            time.sleep(0.05)
    train_forever()
    """
    p = _start(code, str(tmp_path))
    _wait_ready(p)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=20)
    assert p.returncode == -signal.SIGTERM  # the process ended as it would have
    r = wandblite.replay(tmp_path / "t1")
    assert r.state == "failed"
    assert r.signal == "SIGTERM"
    assert r.exit_code == 128 + signal.SIGTERM
    assert r.error is not None and "train_forever" in r.error["traceback"]
    rows = r.history()
    assert [row.get("i") for row in rows[:5]] == [0, 1, 2, 3, 4]
    assert rows[-1]["pending"] == 1 and rows[-1]["_step"] == 5  # pending row flushed at finish


def test_unhandled_exception_marks_run_failed_and_keeps_traceback(tmp_path: Path) -> None:
    code = """
    import sys, wandblite
    run = wandblite.init(project="p", id="e1", dir=sys.argv[1])
    run.log({"x": 1})
    def step():
        raise ValueError("boom at step 1")
    step()
    """
    res = run_script(code, str(tmp_path))
    assert res.returncode == 1
    assert "ValueError: boom at step 1" in res.stderr  # the usual traceback still printed
    r = wandblite.replay(tmp_path / "e1")
    assert r.state == "failed" and r.exit_code == 1
    assert r.error["type"] == "ValueError" and "boom at step 1" in r.error["message"]
    assert "in step" in r.error["traceback"]  # where it happened


def test_normal_exit_without_finish_is_finished_by_atexit(tmp_path: Path) -> None:
    res = run_script("""
    import sys, wandblite
    run = wandblite.init(project="p", id="a1", dir=sys.argv[1])
    run.log({"x": 1}, commit=False)
    """, str(tmp_path))
    assert res.returncode == 0, res.stderr
    r = wandblite.replay(tmp_path / "a1")
    assert r.state == "finished" and r.history()[0]["x"] == 1


def test_forked_child_never_writes_into_the_parents_run(tmp_path: Path) -> None:
    res = run_script("""
    import os, sys, wandblite
    run = wandblite.init(project="p", id="f1", dir=sys.argv[1])
    run.log({"who": "parent", "i": 0})
    pid = os.fork()
    if pid == 0:   # a DataLoader worker, say
        for i in range(100):
            run.log({"who": "child", "i": i})
        run.finish()
        os._exit(0)
    os.waitpid(pid, 0)
    for i in range(1, 4):
        run.log({"who": "parent", "i": i})
    run.finish()
    """, str(tmp_path))
    assert res.returncode == 0, res.stderr
    r = wandblite.replay(tmp_path / "f1")
    assert r.state == "finished" and r.damage == []
    assert [(row["who"], row["i"]) for row in r.history()] == [("parent", i) for i in range(4)]
    assert res.stderr.count("forked child") == 1  # one clear warning, from the child


def test_forked_child_goes_on_when_a_parent_thread_held_the_run_lock_at_the_fork(tmp_path: Path) -> None:
    # A thread of the parent (the sampler, the console pump) may hold the run's lock at the moment
    # of the fork; the child has no such thread, so it must not wait for that lock.
    res = run_script("""
    import os, sys, threading, time, wandblite
    run = wandblite.init(project="p", id="f2", dir=sys.argv[1])
    held = threading.Event()
    def hold():
        with run._lock:
            held.set()
            time.sleep(2)
    threading.Thread(target=hold).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        run.log({"who": "child"})
        run.finish()
        os._exit(0)
    os.waitpid(pid, 0)
    run.log({"who": "parent"})
    run.finish()
    """, str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert [row["who"] for row in wandblite.replay(tmp_path / "f2").history()] == ["parent"]


def test_second_process_cannot_write_into_a_live_run(tmp_path: Path) -> None:
    p = _start("""
    import os, sys, time, wandblite
    run = wandblite.init(project="p", id="l1", dir=sys.argv[1])
    os.write(1, b"ready\\n")
    time.sleep(30)
    """, str(tmp_path))
    try:
        _wait_ready(p)
        with pytest.raises(RunLockedError, match="another live process"):
            wandblite.init(project="p", id="l1", dir=str(tmp_path), resume="allow")
        assert wandblite.replay(tmp_path / "l1").state == "running"
    finally:
        p.kill()
        p.wait()
    # the lock dies with its process: the run can now be resumed
    run = wandblite.init(project="p", id="l1", dir=str(tmp_path), resume="allow")
    run.finish()
    assert wandblite.replay(tmp_path / "l1").state == "finished"


def test_resume_after_requeue_continues_the_same_run(tmp_path: Path) -> None:
    first = _start("""
    import os, sys, wandblite
    run = wandblite.init(project="p", id="q1", dir=sys.argv[1], config={"lr": 0.1})
    for i in range(10):
        run.log({"loss": 10 - i})
    run.log({"partial": 1}, commit=False)   # pending when the job is killed
    os.write(1, b"ready\\n")
    import time; time.sleep(60)
    """, str(tmp_path))
    _wait_ready(first)
    first.kill()
    first.wait()
    assert wandblite.replay(tmp_path / "q1").state == "crashed"
    res = run_script("""
    import sys, wandblite
    run = wandblite.init(project="p", id="q1", dir=sys.argv[1], resume="allow")
    print(run.step, run.resumed, dict(run.config))
    run.log({"loss": 0.5})          # merges into the kept pending row at step 10
    run.log({"loss": 0.25})
    run.finish()
    """, str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == "10" and res.stdout.split()[1] == "True"
    r = wandblite.replay(tmp_path / "q1")
    rows = r.history()
    assert [row["_step"] for row in rows] == list(range(12))
    assert rows[10] == {**rows[10], "partial": 1, "loss": 0.5}
    assert rows[11]["loss"] == 0.25
    assert r.state == "finished" and r.config == {"lr": 0.1} and len(r.attempts) == 2
    assert r.summary["loss"] == 0.25 and r.id == "q1"
    assert rows[11]["_runtime"] >= rows[9]["_runtime"]  # runtime goes on across attempts


def test_resume_must_and_never(runs_dir: Path) -> None:
    with pytest.raises(ResumeError, match="does not exist"):
        wandblite.init(project="p", id="nope", dir=str(runs_dir), resume="must")
    run = wandblite.init(project="p", id="yes", dir=str(runs_dir))
    run.finish()
    with pytest.raises(ResumeError, match="already exists"):
        wandblite.init(project="p", id="yes", dir=str(runs_dir), resume="never")
    run = wandblite.init(project="p", id="yes", dir=str(runs_dir), resume="must")
    assert run.resumed
    run.finish()


def test_full_disk_warns_once_and_training_goes_on(tmp_path: Path) -> None:
    # RLIMIT_FSIZE stands in for a full disk: writes past the limit fail with EFBIG.
    res = run_script("""
    import resource, sys, wandblite
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    run = wandblite.init(project="p", id="d1", dir=sys.argv[1])
    for i in range(20000):
        run.log({"i": i, "loss": 0.1})
    run.finish()
    print("training finished")
    """, str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "training finished" in res.stdout
    warnings = [line for line in res.stderr.splitlines() if line.startswith("wandblite: WARNING")]
    assert len(warnings) == 1, res.stderr
    assert "cannot write" in warnings[0] and "training goes on" in warnings[0]
    r = wandblite.replay(tmp_path / "d1")
    got = [row["i"] for row in r.history()]
    assert got == list(range(len(got))) and len(got) > 100
    assert r.damage == []  # a failed write never leaves a torn record behind
    assert (tmp_path / "d1" / "events-000.wlr").stat().st_size <= 64 * 1024


def test_import_wandblite_stays_light() -> None:
    res = run_script("""
    import sys, wandblite
    heavy = ["click", "requests", "sqlite3", "sqlalchemy", "starlette", "uvicorn", "pandas",
             "matplotlib", "torch", "PIL", "wandblite.server", "wandblite.sync", "wandblite_cli"]
    print(" ".join(m for m in heavy if m in sys.modules))
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_fsync_runs_periodically_while_logging_and_at_finish(tmp_path: Path) -> None:
    res = run_script("""
    import os, sys, time, wandblite
    calls = []
    real = os.fsync
    def counting_fsync(fd):
        calls.append(time.monotonic())
        return real(fd)
    os.fsync = counting_fsync
    run = wandblite.init(project="p", id="s1", dir=sys.argv[1])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        run.log({"x": 1.0})
        time.sleep(0.005)
    during = len(calls)
    run.finish()
    print(during, len(calls) - during)
    """, str(tmp_path), env={"WANDBLITE_FSYNC_INTERVAL": "0.2"})
    assert res.returncode == 0, res.stderr
    during, at_finish = map(int, res.stdout.split())
    assert 2 <= during <= 8  # every 0.2 s while records arrive, not once per record
    assert at_finish >= 1  # finish makes everything durable


def test_unwritable_runs_directory_warns_once_and_training_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the runs directory should be")
    res = run_script("""
    import sys, wandblite
    run = wandblite.init(project="p", dir=sys.argv[1], config={"lr": 0.1})
    for i in range(10):
        run.log({"loss": 1.0 / (i + 1)})
    run.summary["best"] = 1
    print("config", run.config["lr"], "disabled", run.disabled)
    run.finish()
    print("training finished")
    """, str(blocker / "runs"))
    assert res.returncode == 0, res.stderr
    assert "training finished" in res.stdout and "config 0.1 disabled True" in res.stdout
    warnings = [line for line in res.stderr.splitlines() if line.startswith("wandblite: WARNING")]
    assert len(warnings) == 1 and "cannot create run" in warnings[0] and "training goes on" in warnings[0]
