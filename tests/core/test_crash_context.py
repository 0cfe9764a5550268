"""Crash context across processes: media under SIGKILL, console and memory before an OOM kill.

These are the core crash test extended to media (a returned media ``log`` call survives a SIGKILL,
as a scalar one does) and to the context a user wants after a crash: the last printed lines, the
climbing memory, the last heartbeat.
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
from PIL import Image

import wandblite
from wandblite import media

MEDIA_LOGGER = """
import os, sys
import numpy as np
import wandblite
run = wandblite.init(project="m", id="m1", dir=sys.argv[1])
os.write(1, b"ready\\n")
rng = np.random.default_rng(0)
i = 0
while True:
    frames = rng.integers(0, 255, size=(4, 3, 16, 16), dtype=np.uint8)
    img = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
    run.log({"i": i, "img": wandblite.Image(img, caption=f"c{i}"), "vid": wandblite.Video(frames, fps=4)})
    os.write(1, b"%d\\n" % i)
    i += 1
"""


def _start(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e)


@pytest.mark.slow
def test_sigkill_while_logging_images_and_videos_never_leaves_a_dangling_reference(tmp_path: Path) -> None:
    rnd = random.Random(99)
    for trial in range(int(os.environ.get("WANDBLITE_MEDIA_CRASH_TRIALS", "12"))):
        root = tmp_path / f"t{trial}"
        p = _start(MEDIA_LOGGER, str(root))
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        time.sleep(rnd.uniform(0.05, 0.4))
        p.send_signal(signal.SIGKILL)
        out = p.stdout.read()
        p.wait()
        returned = [int(x) for x in out.split()]
        r = wandblite.replay(root / "m1")
        rows = r.history()
        assert [row["i"] for row in rows][: len(returned)] == returned, trial
        for row in rows:  # every record's media opens and verifies
            img = row["img"].open()
            assert img.size == (32, 32)
            with Image.open(row["vid"].path()) as gif:
                assert gif.n_frames >= 1
        refs = [ref for row in rows for ref in media.iter_refs(row)]
        damage = media.verify(root / "m1", refs)
        assert all("tail" in d["reason"] for d in damage), (trial, damage)  # at most a torn pack tail


def test_oom_like_crash_shows_climbing_memory_last_heartbeat_and_last_line(tmp_path: Path) -> None:
    code = """
    import os, sys, time, wandblite
    run = wandblite.init(project="oom", id="o1", dir=sys.argv[1])
    hog = []
    for i in range(12):
        hog.append(bytearray(20 * 1024 * 1024))   # +20 MiB per step
        print(f"step {i}: allocated {len(hog) * 20} MiB", flush=True)
        run.log({"step_mem": len(hog) * 20})
        time.sleep(0.15)
    os.write(1, b"ready\\n")
    time.sleep(60)
    """
    p = _start(code, str(tmp_path), env={"WANDBLITE_STATS_INTERVAL": "0.1", "WANDBLITE_HEARTBEAT": "0.2"})
    assert p.stdout is not None
    lines = []
    while True:
        line = p.stdout.readline()
        assert line, "child died early"
        if line == b"ready\n":
            break
        lines.append(line)
    p.send_signal(signal.SIGKILL)  # what the OOM killer does
    p.wait()
    r = wandblite.replay(tmp_path / "o1")
    assert r.state == "crashed"
    assert r.last_alive is not None and time.time() - r.last_alive < 30
    assert "step 11: allocated 240 MiB" in r.output()
    assert r.console_tail[-1][2].strip() == "step 11: allocated 240 MiB"
    rss = [m["proc.memory.rssMB"] for _ts, m in r.system_metrics()]
    assert len(rss) >= 5 and rss[-1] - rss[0] > 100, rss  # memory was climbing
    from click.testing import CliRunner
    from wandblite_cli.main import cli

    out = CliRunner().invoke(cli, ["show", str(tmp_path / "o1")]).output
    assert "state    crashed" in out and "last alive" in out
    assert "step 11: allocated 240 MiB" in out and "proc.memory.rssMB" in out


def test_heartbeat_goes_stale_so_a_run_on_another_host_reads_crashed(tmp_path: Path) -> None:
    """Seen from a login node no lock can be probed: the heartbeat's age decides."""
    run = wandblite.init(project="hb", id="h1", dir=str(tmp_path))
    run.log({"x": 1})
    now = time.time()
    r = wandblite.Replay(tmp_path / "h1", writer_alive=None, now=now)
    assert r.state == "running"
    r = wandblite.Replay(tmp_path / "h1", writer_alive=None, now=now + 3600)
    assert r.state == "crashed"
    r = wandblite.Replay(tmp_path / "h1", writer_alive=True, now=now + 3600)
    assert r.state == "crashed"  # a stale heartbeat wins over a lock held by a hung or stopped host
    run.finish()
    assert wandblite.replay(tmp_path / "h1").state == "finished"


def test_job_context_records_slurm_and_command_line(tmp_path: Path) -> None:
    env = {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "3", "SLURM_RESTART_COUNT": "1",
           "SLURM_JOB_NODELIST": "node[01-02]"}
    p = _start("""
    import sys, wandblite
    run = wandblite.init(project="ctx", id="c1", dir=sys.argv[1])
    run.finish()
    """, str(tmp_path), env=env)
    p.wait()
    ctx = wandblite.replay(tmp_path / "c1").context
    assert ctx["slurm"]["job_id"] == "4242" and ctx["slurm"]["restart_count"] == "1"
    assert ctx["pid"] and ctx["host"]
