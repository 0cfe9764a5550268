"""A shared run whose writers' files sit on different nodes' local disks: each node syncs its own
writers, in any order and interleaving, killed at random moments, and the server's run ends up equal
to the replay of all the files together; a second sync of either node sends nothing. On SQLite and
PostgreSQL (the ``server`` fixture's backends)."""

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
from typing import Any

import pytest

import wandblite
from wandblite.sync.client import Syncer
from wandblite.sync.transport import HttpTransport

from .conftest import CLI, ServerProc, canon, clean_env, cli, local_rows, uniq

# Writers that overlap in steps and keys, add steps between each other's (rank2 strides by 3 past
# the others' last step), set config and summary from a non-primary, define a metric, and one that is
# SIGKILLed with a pending row.
_WRITER = textwrap.dedent("""
    import sys, time, wandblite
    runs, label, steps, stride, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    run = wandblite.init(dir=runs, project="nlp", id="nodelocal1", config={f"c_{label}": 1, "lr": label},
                         settings=wandblite.Settings(mode="shared", x_label=label, x_primary=label == "rank0"))
    if label == "rank1":
        run.define_metric("acc", summary="max")
    for i in range(steps):
        s = i * stride
        run.log({"loss": 1.0 / (s + 1), label: {"x": s}, "acc": (s * 7 % 11) / 10}, step=s, commit=False)
        run.log({"common": label}, step=s)
        if i % 20 == 0:
            print(f"{label} step {s}", flush=True)
    run.summary[f"best_{label}"] = steps
    if end == "kill":
        run.log({"tail": 1.5}, step=steps * stride, commit=False)
        print("ready", flush=True)
        time.sleep(60)
    run.finish()
""")

_NODES = {"a": ("rank0", "rank2"), "b": ("rank1", "rank3")}


def _write(runs: Path, label: str, steps: int, stride: int, end: str) -> None:
    env = clean_env(WANDBLITE_STATS_INTERVAL="0.2")
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(runs), label, str(steps), str(stride), end], env=env,
                         text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if end == "kill":
        assert p.stdout is not None
        for line in p.stdout:
            if line.strip() == "ready":
                p.send_signal(signal.SIGKILL)
                p.wait()
                return
        raise AssertionError(p.stderr.read() if p.stderr else "writer died")
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """The run with all its writers' files in one directory, and each node's copy holding only its
    own writers' files (node a: rank0, rank2; node b: rank1, rank3)."""
    root = tmp_path_factory.mktemp("nodelocal")
    runs = root / "all"
    _write(runs, "rank0", 120, 1, "finish")
    _write(runs, "rank1", 100, 1, "finish")
    _write(runs, "rank2", 50, 3, "finish")
    _write(runs, "rank3", 40, 2, "kill")
    run_dir = runs / "nodelocal1"
    nodes: dict[str, Path] = {}
    for node, mine in _NODES.items():
        copy = root / f"node-{node}"
        shutil.copytree(run_dir, copy / "nodelocal1")
        for f in (copy / "nodelocal1").iterdir():
            label = f.name.split("-")[1] if f.name.startswith("events-") else f.name.partition("-")[2]
            if label and f.name.startswith(("events-", ".lock-")) and label not in mine:
                f.unlink()
        nodes[node] = copy
    return run_dir, nodes


def _sync_args(server: ServerProc, runs: Path, project: str) -> list[str]:
    return ["sync", str(runs), "--server", server.url, "--api-key", server.key, "--project", project,
            "--batch-size", "20", "--json"]


def _in_process(server: ServerProc, runs: Path, project: str) -> dict[str, Any]:
    res = Syncer(HttpTransport(server.url, server.key), batch_size=20, project=project,
                 use_cache=False).sync_path(runs / "nodelocal1")
    assert res.ok, res.error
    return res.as_dict()


def _shown(run_dir: Path) -> dict[str, Any]:
    """``wandblite show --json`` of every writer's files together."""
    done = cli("show", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _assert_equal_to_replay(server: ServerProc, project: str, r: Any, want_rows: str,
                            shown: dict[str, Any] | None = None) -> None:
    got = server.history(project, "nodelocal1")
    assert [x["idx"] for x in got] == list(range(len(got))) and all(x["final"] for x in got)
    assert canon([x["row"] for x in got]) == want_rows
    run = server.get(f"/api/v1/projects/{project}/runs/nodelocal1").json()
    assert run["state"] == r.state == "finished"
    assert canon(run["config"]) == canon(json.loads(json.dumps(r.config, default=dict)))
    assert canon(run["summary"]) == canon(json.loads(json.dumps(r.summary, default=dict)))
    pos = server.position(project, "nodelocal1")
    assert pos["console"] == sum(len(list(r.console(writer=w["label"]))) for w in r.writers)
    assert pos["system"] == len(r.system_metrics())
    assert sorted(pos["writers"]) == ["rank0", "rank1", "rank2", "rank3"]
    for w in r.writers:
        mine = pos["writers"][w["label"]]
        assert mine["state"] == w["state"]
        assert mine["console"] == len(list(r.console(writer=w["label"])))
    if shown is not None:  # the writers table and crash report, computed by the server from each node's writers
        assert run["writers"] == shown["writers"] and len(run["writers"]) == 4
        assert run["stopped_first"] == shown["stopped_first"]


def test_node_local_syncs_killed_at_random_converge_to_the_replay_of_all_files(
        server: ServerProc, split_run: tuple[Path, dict[str, Path]]) -> None:
    """10 trials, each its own project: node a's and node b's `wandblite sync` run at once, SIGKILLed
    at random moments, one to three rounds; then each node's sync completes (in a random order);
    the server's run equals the replay of all the files; a second sync of either node sends nothing."""
    run_dir, nodes = split_run
    r = wandblite.replay(run_dir)
    assert r.shared and r.writer("rank3")["state"] == "crashed"
    want = canon(local_rows(run_dir))
    shown = _shown(run_dir)
    rnd = random.Random(6)
    total = sum(w["rows"] for w in r.writers)
    cut = 0  # trials whose killed syncs left the server part of the way
    for trial in range(10):
        project = uniq("nl")
        for _round in range(rnd.randint(1, 2)):
            _killed_round(server, nodes, project, r, rnd)
        sent = sum(w["rows"] + w["pending"] for w in server.position(project, "nodelocal1")["writers"].values())
        cut += 0 < sent < total
        order = rnd.sample(sorted(nodes), 2)
        for node in order:
            _in_process(server, nodes[node], project)
        _assert_equal_to_replay(server, project, r, want, shown)
        for node in order:
            again = _in_process(server, nodes[node], project)
            assert (again["rows"], again["console"], again["system"], again["meta_updated"]) == (0, 0, 0, False), (
                trial, node)
    assert cut >= 3, f"only {cut} of 10 trials were killed part of the way through"


def _node_rows(pos: dict[str, Any], node: str) -> int:
    return sum(w["rows"] + w["pending"] for label, w in pos.get("writers", {}).items() if label in _NODES[node])


def _killed_round(server: ServerProc, nodes: dict[str, Path], project: str, r: Any, rnd: random.Random) -> None:
    """Both nodes' syncs started at once (in a random order), each SIGKILLed once the server holds a
    random number of the rows its node has left to send (a random moment of its work)."""
    pos = server.position(project, "nodelocal1")
    procs: list[tuple[str, subprocess.Popen[bytes], int]] = []
    for node in rnd.sample(sorted(nodes), 2):
        have = _node_rows(pos, node)
        want = sum(w["rows"] for w in r.writers if w["label"] in _NODES[node])
        if want - have < 2:
            continue
        target = have + rnd.randint(1, want - have - 1)
        procs.append((node, subprocess.Popen([*CLI, *_sync_args(server, nodes[node], project)], env=clean_env(),
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), target))
    deadline = time.monotonic() + 120
    while procs and time.monotonic() < deadline:
        pos = server.position(project, "nodelocal1")
        for item in list(procs):
            node, p, target = item
            if p.poll() is not None or _node_rows(pos, node) >= target:
                p.send_signal(signal.SIGKILL)
                p.wait()
                procs.remove(item)
        time.sleep(0.02)
    for _node, p, _target in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()


def test_one_shared_disk_and_node_local_disks_give_the_same_server_state(
        server: ServerProc, split_run: tuple[Path, dict[str, Path]]) -> None:
    """The run synced from the directory holding every writer, and from the two nodes' directories
    (node b first: the primary arrives last), give the same history, config, summary and state."""
    run_dir, nodes = split_run
    shared, local = uniq("nls"), uniq("nll")
    Syncer(HttpTransport(server.url, server.key), project=shared, use_cache=False).sync_path(run_dir)
    partial = None
    for node in ("b", "a"):
        _in_process(server, nodes[node], local)
        if partial is None:  # only node b's writers so far: their merge, not yet the run's
            partial = server.history(local, "nodelocal1")
    assert partial is not None and len(partial) > 0
    shown = _shown(run_dir)
    for project in (shared, local):
        _assert_equal_to_replay(server, project, wandblite.replay(run_dir), canon(local_rows(run_dir)), shown)
    a = server.get(f"/api/v1/projects/{shared}/runs/nodelocal1").json()
    b = server.get(f"/api/v1/projects/{local}/runs/nodelocal1").json()
    for k in ("config", "summary", "state", "rows", "exit_code", "created_at", "ended_at", "metrics", "host"):
        assert canon(a.get(k)) == canon(b.get(k)), k


def test_watch_follows_writers_as_they_appear(server: ServerProc, tmp_path: Path) -> None:
    """`sync --watch` on a node's directory: a writer that starts after the watcher (a second
    writer of the same run) is picked up, and the server's run ends equal to the replay."""
    runs = tmp_path / "runs"
    project = uniq("nlw")
    _write(runs, "rank0", 40, 1, "finish")
    watcher = subprocess.Popen([*CLI, "sync", str(runs), "--watch", "--interval", "0.2", "--server", server.url,
                                "--api-key", server.key, "--project", project], env=clean_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def wait_for(cond: Any, what: str) -> None:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if watcher.poll() is not None:
                    raise AssertionError(f"the watcher stopped: {watcher.stderr.read() if watcher.stderr else ''}")
                if cond(server.position(project, "nodelocal1")):
                    return
                time.sleep(0.1)
            raise AssertionError(f"timed out waiting for {what}")

        wait_for(lambda pos: pos.get("writers", {}).get("rank0", {}).get("state") == "finished", "rank0")
        _write(runs, "rank1", 30, 2, "finish")  # a new writer's files appear under the watcher
        wait_for(lambda pos: pos.get("writers", {}).get("rank1", {}).get("state") == "finished", "rank1")
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=60)
    run_dir = runs / "nodelocal1"
    assert canon([x["row"] for x in server.history(project, "nodelocal1")]) == canon(local_rows(run_dir))
    run = server.get(f"/api/v1/projects/{project}/runs/nodelocal1").json()
    r = wandblite.replay(run_dir)
    assert run["state"] == r.state == "finished"
    assert canon(run["summary"]) == canon(json.loads(json.dumps(r.summary, default=dict)))


def _batch(server: ServerProc, project: str, run_id: str, body: dict[str, Any]) -> Any:
    return server.post(f"/api/v1/projects/{project}/runs/{run_id}/batch", body)


def _wrow(idx: int, step: int, **keys: Any) -> dict[str, Any]:
    return {"idx": idx, "final": True, "row": {"_step": step, **keys}}


#: A writer's facts (``wandblite.report.writer_facts``) as a client sends them.
_FACTS = {"label": "rank0", "host": "n1", "pid": 7, "primary": True, "update_finish_state": True, "state": "crashed",
          "exit_code": None, "signal": None, "started_at": 1.0, "last_record": 2.0, "last_alive": 2.0, "steps": 3,
          "rows": 3, "attempts": 1, "error": None, "last_lines": ["x"], "last_memory": {},
          "rss_mb": {"first": 1.0, "last": 2.0, "max": 2.0, "samples": 2}}


def test_writer_batches_exactly_once_gaps_and_hostile_input(server: ServerProc) -> None:
    """The protocol by hand: a writer's rows are checked against its own position (a retry changes
    nothing, a gap is a 409 with that position), a later writer's rows rebuild the merged ones,
    malformed writer objects are 400s, and single-writer and writer batches do not mix in one run."""
    project = uniq("nlp")
    w0 = {"label": "rank0", "primary": True, "update_finish_state": True}
    w1 = {"label": "rank1", "primary": False, "update_finish_state": False}
    first = {"writer": w0, "rows": [_wrow(i, 2 * i, a=i) for i in range(3)]}
    for _ in range(2):  # the second is a retry: nothing changes
        resp = _batch(server, project, "r1", first)
        assert resp.status_code == 200, resp.text
        assert resp.json()["writers"]["rank0"]["rows"] == 3 and resp.json()["rows"] == 3
    gap = _batch(server, project, "r1", {"writer": w1, "rows": [_wrow(1, 1, b=1)]})
    assert gap.status_code == 409 and gap.json()["error"]["position"]["writers"]["rank1"]["rows"] == 0
    # rank1 writes at steps 0 (rank0's) and 1, 3 (new steps between rank0's): the merge is rebuilt
    resp = _batch(server, project, "r1", {"writer": w1, "rows": [_wrow(0, 0, a=-1, b=0), _wrow(1, 1, b=1),
                                                                 _wrow(2, 3, b=3)]})
    assert resp.status_code == 200, resp.text
    got = [x["row"] for x in server.history(project, "r1")]
    assert got == [{"_step": 0, "a": 0, "b": 0}, {"_step": 1, "b": 1}, {"_step": 2, "a": 1},
                   {"_step": 3, "b": 3}, {"_step": 4, "a": 2}]
    for bad in ({"label": "-x", "primary": True, "update_finish_state": True}, "rank0",
                {**w0, "primary": "yes"}, {**w0, "fold": {"meta": {"tags": 5}}, "state": "finished", "digest": "d"},
                {**w0, "fold": {"nope": 1}, "state": "finished"}, {**w0, "fold": {}, "state": "sleeping"},
                {**w0, "fold": {"metric_log": [[0, {"name": 5}]]}, "state": "finished"},
                {**w0, "state": "finished"}, {**w0, "facts": {}},
                {**w0, "fold": {}, "state": "finished", "digest": "d", "facts": {"label": "rank0"}},
                {**w0, "fold": {}, "state": "finished", "digest": "d", "facts": {**_FACTS, "pid": "1"}},
                {**w0, "fold": {}, "state": "finished", "digest": "d", "facts": {**_FACTS, "last_lines": [1]}},
                {**w0, "fold": {}, "state": "finished", "digest": "d", "facts": {**_FACTS, "rss_mb": {"first": 1}}},
                {**w0, "fold": {}, "state": "finished", "digest": "d", "facts": {**_FACTS, "steps": -1}}):
        resp = _batch(server, project, "r1", {"writer": bad})
        assert resp.status_code == 400, (bad, resp.status_code, resp.text)
    # facts name who sent them as the batch does: the checked label and roles win; text stays text
    facts = {**_FACTS, "label": "evil", "primary": False, "host": "<b>x</b>"}
    resp = _batch(server, project, "r1", {"writer": {**w0, "fold": {}, "state": "crashed", "digest": "d", "facts": facts}})
    assert resp.status_code == 200, resp.text
    listed = server.get(f"/api/v1/projects/{project}/runs/r1").json()["writers"]
    assert [(w["label"], w["primary"], w["host"], w["state"]) for w in listed] == [("rank0", True, "<b>x</b>", "crashed")]
    single = _batch(server, project, "r1", {"rows": [_wrow(5, 9, a=1)]})
    assert single.status_code == 400
    assert _batch(server, project, "r2", {"rows": [_wrow(0, 0, a=1)]}).status_code == 200
    assert _batch(server, project, "r2", first).status_code == 400
