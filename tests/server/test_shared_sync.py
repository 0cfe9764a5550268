"""A shared run (several writer processes) syncs as one run: each writer's stream is sent on its own
(rows, console lines, system samples, its fold), the store's history is the merged history replay
gives; a second sync sends nothing; while a writer is live, its committed rows go and the merged
rows are rebuilt as more arrive."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import wandblite
from wandblite.server import read
from wandblite.server.store import Store

from .conftest import CLI, ServerProc, canon, clean_env, cli, local_rows, uniq

_WRITER = textwrap.dedent("""
    import sys, time, wandblite
    runs, label, steps, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    run = wandblite.init(dir=runs, project="shp", id="shared1", config={f"c_{label}": 1},
                         settings=wandblite.Settings(mode="shared", x_label=label, x_primary=label == "rank0"))
    for s in range(steps):
        run.log({"loss": 1.0 / (s + 1), label: {"x": s}}, step=s, commit=False)
        run.log({"common": label}, step=s)
        print(f"{label} step {s}", flush=True)
    if end == "live":
        print("ready", flush=True)
        sys.stdin.readline()
    elif end == "kill":
        print("ready", flush=True)
        time.sleep(60)
    run.finish()
""")


def _writer(runs: Path, label: str, steps: int, end: str) -> subprocess.Popen[str]:
    env = clean_env(WANDBLITE_STATS_INTERVAL="0.1")
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(runs), label, str(steps), end], env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if end in ("live", "kill"):
        assert p.stdout is not None
        for line in p.stdout:
            if line.strip() == "ready":
                return p
        raise AssertionError(p.stderr.read() if p.stderr else "writer died")
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return p


def test_a_shared_run_syncs_as_its_merged_replay_and_a_second_sync_sends_nothing(tmp_path: Path) -> None:
    home, runs = tmp_path / "home", tmp_path / "runs"
    _writer(runs, "rank0", 30, "finish")
    _writer(runs, "rank1", 25, "finish")
    victim = _writer(runs, "rank2", 12, "kill")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run_dir = runs / "shared1"
    r = wandblite.replay(run_dir)
    assert r.shared and r.state == "finished" and r.writer("rank2")["state"] == "crashed"
    first = cli("sync", str(runs), "--json", home=home)
    assert first.returncode == 0, first.stderr
    sent = json.loads(first.stdout.splitlines()[0])
    assert sent["rows"] == 30 + 25 + 12 and sent["state"] == "finished"  # each writer's rows, once
    store = Store.embedded(home)
    try:
        rows = read.get_history(store, "shp", "shared1", 0, 10_000)["rows"]
        assert [x["idx"] for x in rows] == list(range(30))
        assert canon([x["row"] for x in rows]) == canon(local_rows(run_dir))
        assert rows[5]["row"]["common"] == "rank0" and rows[5]["row"]["rank2"] == {"x": 5}
        run = read.get_run(store, "shp", "shared1")
        assert run["state"] == "finished"
        assert run["config"] == {"c_rank0": 1, "c_rank1": 1, "c_rank2": 1}
        assert run["console"] == _console_records(r)
        assert run["system"] == len(r.system_metrics()) > 0
    finally:
        store.close()
    shutil.rmtree(home / "sync-state", ignore_errors=True)  # read the files again: the server's position decides
    dry = json.loads(cli("sync", str(runs), "--dry-run", "--json", home=home).stdout.splitlines()[0])
    assert dry["state"] == "finished" and sorted(dry["writers"]) == ["rank0", "rank1", "rank2"]
    assert dry["local"]["rows"] == 66 and dry["local"]["pending"]  # rank2's pending row, provisional
    assert dry["send"]["rows"] == 0 and not dry["send"]["metadata"]
    second = cli("sync", str(runs), "--json", home=home)
    again = json.loads(second.stdout.splitlines()[0])
    assert (again["rows"], again["console"], again["system"], again["meta_updated"]) == (0, 0, 0, False)


def _console_records(r: wandblite.Replay) -> int:
    """Every writer's console records as stored (a line recorded in pieces counts its pieces)."""
    return sum(len(list(r.console(writer=w["label"]))) for w in r.writers)


def test_while_a_writer_is_live_its_committed_rows_sync_and_the_merge_is_rebuilt(tmp_path: Path) -> None:
    home, runs = tmp_path / "home", tmp_path / "runs"
    _writer(runs, "rank0", 10, "finish")
    live = _writer(runs, "rank1", 10, "live")
    try:
        first = cli("sync", str(runs), "--json", home=home)
        assert first.returncode == 0, first.stderr
        sent = json.loads(first.stdout.splitlines()[0])
        # rank0's 10 rows and rank1's committed ones (its last is pending while it lives)
        assert sent["rows"] == 19 and sent["meta_updated"]
        assert sent["state"] == wandblite.replay(runs / "shared1").state == "finished"  # rank0 decides
        store = Store.embedded(home)
        try:  # the merge so far: rank1's keys on the steps it committed
            rows = read.get_history(store, "shp", "shared1", 0, 10_000)["rows"]
            assert canon([x["row"] for x in rows]) == canon(local_rows(runs / "shared1"))
            assert "rank1" in rows[8]["row"] and "rank1" not in rows[9]["row"]
        finally:
            store.close()
    finally:
        assert live.stdin is not None
        live.stdin.write("\n")
        live.stdin.flush()
        live.wait(timeout=60)
    second = cli("sync", str(runs), "--json", home=home)
    done = json.loads(second.stdout.splitlines()[0])
    assert done["rows"] == 1 and done["state"] == "finished"
    store = Store.embedded(home)
    try:
        rows = read.get_history(store, "shp", "shared1", 0, 10_000)["rows"]
        assert canon([x["row"] for x in rows]) == canon(local_rows(runs / "shared1"))
    finally:
        store.close()


def test_sync_killed_at_random_moments_leaves_the_server_equal_to_the_replay(server: ServerProc,
                                                                              tmp_path: Path) -> None:
    """A shared run on one disk, synced by `wandblite sync` processes SIGKILLed at random moments
    (12 trials, each its own project): a last sync completes it, the server's run equals the merged
    replay, and one more sync sends nothing. On SQLite and PostgreSQL."""
    runs = tmp_path / "runs"
    _writer(runs, "rank0", 600, "finish")
    _writer(runs, "rank1", 500, "finish")
    victim = _writer(runs, "rank2", 300, "kill")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    want = canon(local_rows(runs / "shared1"))
    r = wandblite.replay(runs / "shared1")
    rnd = random.Random(15)
    for trial in range(12):
        project = uniq("shk")
        home = tmp_path / f"home{trial}"
        args = ("sync", str(runs), "--server", server.url, "--api-key", server.key, "--project", project,
                "--batch-size", "40", "--json")
        for _kill in range(rnd.randint(1, 3)):
            p = subprocess.Popen([*CLI, *args], env=clean_env(WANDBLITE_HOME=str(home)), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0.0, 1.5))
            p.send_signal(signal.SIGKILL)
            p.wait()
        done = cli(*args, home=home)
        assert done.returncode == 0, done.stderr
        got = server.history(project, "shared1")
        assert [x["idx"] for x in got] == list(range(600)) and all(x["final"] for x in got)
        assert canon([x["row"] for x in got]) == want
        pos = server.position(project, "shared1")
        assert (pos["console"], pos["system"], pos["state"]) == (_console_records(r), len(r.system_metrics()),
                                                                 "finished")
        shutil.rmtree(home / "sync-state", ignore_errors=True)
        again = json.loads(cli(*args, home=home).stdout.splitlines()[0])
        assert (again["rows"], again["console"], again["system"], again["meta_updated"]) == (0, 0, 0, False)
