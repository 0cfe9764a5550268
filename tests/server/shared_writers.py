"""A crashed shared run written by the real SDK (``mode="shared"``) in three processes, for the
server's writer reads (``test_writer_records.py``) and the dashboard's writer views
(``tests/dashboard/test_writers_e2e.py``).

``rank0`` (primary, decides the run's state) and ``rank1`` log and print, then wait; ``rank1`` is
SIGKILLed first, ``rank2`` then runs to its end, and ``rank0`` is SIGKILLed last: the run is
crashed and ``rank1`` stopped first, about ``GAP`` seconds before the others. System metrics are
sampled every 0.1 s. Each writer prints a line of HTML (``HOSTILE``) that must stay text.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .conftest import clean_env

LABELS = ("rank0", "rank1", "rank2")
HOSTILE = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>"
GAP = 1.0

_WRITER = textwrap.dedent("""
    import sys, time, wandblite
    runs, project, run_id, label, steps, end, hostile = sys.argv[1:8]
    run = wandblite.init(dir=runs, project=project, id=run_id,
                         settings=wandblite.Settings(mode="shared", x_label=label, x_primary=label == "rank0"))
    for s in range(int(steps)):
        run.log({"loss": 1.0 / (s + 1), f"{label}_x": s}, step=s)
        print(f"{label} step {s}", flush=True)
    print(f"{label} says {hostile}", flush=True)
    time.sleep(0.5)  # a few more system samples
    if end == "kill":
        print("ready", flush=True)
        time.sleep(120)
    run.finish()
""")


def _start(runs: Path, project: str, run_id: str, label: str, steps: int, end: str) -> subprocess.Popen[str]:
    env = clean_env(WANDBLITE_STATS_INTERVAL="0.1")
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(runs), project, run_id, label, str(steps), end, HOSTILE],
                         env=env, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if end == "kill":
        assert p.stdout is not None
        for line in p.stdout:
            if line.strip() == "ready":
                return p
        raise AssertionError(p.stderr.read() if p.stderr else f"writer {label} died")
    return p


def make_crashed_shared_run(runs: Path, project: str, run_id: str) -> Path:
    """Write the run (module docstring) under ``runs``; return its directory."""
    rank0 = _start(runs, project, run_id, "rank0", 12, "kill")
    rank1 = _start(runs, project, run_id, "rank1", 8, "kill")
    rank1.kill()
    rank1.wait()
    time.sleep(GAP)
    rank2 = _start(runs, project, run_id, "rank2", 10, "finish")
    _out, err = rank2.communicate(timeout=120)
    assert rank2.returncode == 0, err
    time.sleep(0.3)
    rank0.kill()
    rank0.wait()
    for p in (rank0, rank1):
        for f in (p.stdout, p.stderr):
            if f is not None:
                f.close()
    return runs / run_id
