"""Shared runs (several writer processes, one run) through interop: one W&B run, one MLflow run,
TensorBoard event files per writer.

The runs are written by real processes in wandb's shared mode (``mode="shared"``, ``x_label``,
``x_primary``), each printing lines and sampling its system metrics; one variant SIGKILLs a
writer with a pending row. What the targets hold is read back from wandb's offline transaction
log, a real MLflow server and the event files, and compared with ``wandblite.replay`` of the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wandblite
from tests.interop import wandb_log
from tests.interop.conftest import need, sync_cli
from wandblite.interop.common import shared_history
from wandblite.interop.wandb_target import WandbTarget
from wandblite.interop.wandb_target import sync_run as wandb_sync
from wandblite.vocab import PROCESS_RSS_KEY

RUN_ID = "shared1"
LABELS = ("rank0", "rank1", "rank2")
STEPS = 6

# One writer of the shared run. argv: runs dir, label, mode (ok | crash | wait), steps.
_WRITER = textwrap.dedent("""
    import os, signal, sys, time, wandblite
    root, label, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    run = wandblite.init(project="proj", id="RUN_ID", dir=root, config={"seen_by_" + label: True},
                         settings=wandblite.Settings(mode="shared", x_label=label, x_primary=label == "rank0"))
    rank = int(label[4:])
    for s in range(steps):
        run.log({"loss": 1.0 / (s + 1) + rank / 100, label: {"x": rank * 100 + s}}, step=s, commit=True)
        print(f"{label} says step {s}", flush=True)
        time.sleep(0.05)
    time.sleep(0.4)  # a few system-metrics samples (WANDBLITE_STATS_INTERVAL=0.1)
    if mode == "crash":
        run.log({"late": rank + 0.5}, step=steps + 2, commit=False)  # pending when it dies
        print(f"{label} last words", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "wait":
        print("ready", flush=True)
        sys.stdin.readline()
        run.log({label: {"x": -1}}, step=steps, commit=True)
    run.finish()
""").replace("RUN_ID", RUN_ID)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_", "RANK", "SLURM_"))}
    env.update({"WANDBLITE_STATS_INTERVAL": "0.1", "WANDBLITE_SILENT": "1"})
    return env


class SharedJob:
    """Writers of one shared run, started as real processes under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / RUN_ID
        self.waiting: list[subprocess.Popen[str]] = []

    def write(self, label: str, mode: str = "ok", steps: int = STEPS) -> None:
        """Run writer ``label`` to its end (``mode`` ok or crash)."""
        res = subprocess.run([sys.executable, "-c", _WRITER, str(self.root), label, mode, str(steps)],
                             env=_env(), capture_output=True, text=True, timeout=120)
        want = -signal.SIGKILL if mode == "crash" else 0
        assert res.returncode == want, res.stderr[-3000:]

    def start(self, label: str) -> subprocess.Popen[str]:
        """Start writer ``label`` and leave it alive until ``release``."""
        p = subprocess.Popen([sys.executable, "-c", _WRITER, str(self.root), label, "wait", str(STEPS)],
                             env=_env(), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.waiting.append(p)
        assert p.stdout is not None
        deadline = time.time() + 60
        while p.stdout.readline().strip() != "ready":
            assert p.poll() is None and time.time() < deadline, "the waiting writer did not start"
        return p

    def release(self, p: subprocess.Popen[str]) -> None:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.wait(timeout=60) == 0


@pytest.fixture
def shared_job(tmp_path: Path) -> Iterator[SharedJob]:
    job = SharedJob(tmp_path / "runs")
    yield job
    for p in job.waiting:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture
def finished_shared_run(shared_job: SharedJob) -> Path:
    for label in LABELS:
        shared_job.write(label)
    r = wandblite.replay(shared_job.path)
    assert r.shared and r.state == "finished" and [w["label"] for w in r.writers] == list(LABELS)
    for label in LABELS:  # what the targets must carry: every writer's console and system samples
        assert f"{label} says step {STEPS - 1}" in r.output(writer=label)
        assert r.system_metrics(writer=label), f"{label} has no system samples"
    return shared_job.path


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "_runtime"} for row in rows]


# ------------------------------------------------------------------------------------------ W&B


def _wandb_runs(remote_id: str) -> dict[str, Any]:
    [log] = sorted(Path(remote_id).glob("run-*.wandb"))
    got = wandb_log.read_run(log)
    got["stats"] = [(rec.stats.timestamp.ToNanoseconds() / 1e9,
                     {it.key: json.loads(it.value_json) for it in rec.stats.item})
                    for rec in wandb_log.records(log) if rec.WhichOneof("record_type") == "stats"]
    return got


def test_wandb_gets_one_run_with_labelled_console_and_system_metrics(
        wandb_offline: Path, finished_shared_run: Path) -> None:
    res = wandb_sync(finished_shared_run, WandbTarget())
    assert res.status == "synced" and res.rows == STEPS, res.message
    assert len(list((wandb_offline / "wandb").glob("offline-run-*"))) == 1  # one W&B run for three writers
    got = _wandb_runs(str(res.remote_id))
    r = wandblite.replay(finished_shared_run)
    assert got["meta"]["id"] == RUN_ID
    assert _rows(got["history"]) == _rows(r.history())  # the merged history, every writer's keys
    assert {k for k in got["history"][0] if not k.startswith("_")} == {"loss", *LABELS}
    assert {k: v for k, v in got["config"].items() if k != "_wandb"} == r.config == {
        f"seen_by_{label}": True for label in LABELS}
    assert got["summary"]["loss"] == r.summary["loss"] and got["exit_code"] == 0
    # console: every writer's lines, each prefixed with its label, in time order
    lines = [line for _t, line, _ts in got["console"]]
    assert lines == [text for _ts, _s, text in r.console()]
    for label in LABELS:
        mine = [x for x in lines if x.startswith(f"[{label}] ")]
        assert mine[:STEPS] == [f"[{label}] {label} says step {s}\n" for s in range(STEPS)]
    # system metrics: every writer's samples at their own times, named as wandb's shared mode names them
    want = sorted((ts, {f"{k}/l:{label}": v for k, v in m.items()})
                  for label in LABELS for ts, m in r.system_metrics(writer=label))
    assert sorted(got["stats"], key=lambda x: x[0]) == [(pytest.approx(ts), m) for ts, m in want]
    assert {k.split("/l:")[1] for _ts, m in got["stats"] for k in m} == set(LABELS)
    assert all(f"{PROCESS_RSS_KEY}/l:{label}" in m for _ts, m in got["stats"] for label in LABELS
               if any(k.endswith(f"/l:{label}") for k in m))
    assert res.extra["system"] == len(want)
    assert res.line().startswith(f"run {RUN_ID} (finished): sent {STEPS} rows, 0 media, ")
    assert res.line().endswith(f"{len(want)} system samples to {res.target} as {res.remote_id}")

    again = wandb_sync(finished_shared_run, WandbTarget())
    assert again.status == "unchanged"
    assert len(list((wandb_offline / "wandb").glob("offline-run-*"))) == 1  # a second sync sends nothing


def test_wandb_waits_until_every_writer_ended_then_sends_the_run_once(
        wandb_offline: Path, shared_job: SharedJob) -> None:
    helper = shared_job.start("rank1")  # alive: it still logs a row after the primary has finished
    shared_job.write("rank0")
    r = wandblite.replay(shared_job.path)
    assert r.state == "finished"  # the primary decides the run's state ...
    res = wandb_sync(shared_job.path, WandbTarget())
    assert res.status == "skipped" and "writer rank1 running" in res.message, res  # ... but rank1 is writing
    assert not list((wandb_offline / "wandb").glob("offline-run-*"))
    shared_job.release(helper)
    [first] = sync_cli(str(shared_job.root), "--to", "wandb")
    assert (first["status"], first["rows"]) == ("synced", STEPS + 1), first
    got = _wandb_runs(first["remote_id"])
    assert got["history"][-1]["rank1"] == {"x": -1} and got["history"][-1]["_step"] == STEPS
    assert _rows(got["history"]) == _rows(wandblite.replay(shared_job.path).history())
    [second] = sync_cli(str(shared_job.root), "--to", "wandb")
    assert second["status"] == "unchanged"


def test_wandb_holds_back_a_crashed_writers_pending_row_until_it_is_resumed(
        wandb_offline: Path, shared_job: SharedJob) -> None:
    shared_job.write("rank0")
    shared_job.write("rank1", mode="crash")
    r = wandblite.replay(shared_job.path)
    assert r.state == "finished" and r.writer("rank1")["state"] == "crashed"
    replayed = r.history()
    assert replayed[-1]["_step"] == STEPS + 2 and replayed[-1]["late"] == 1.5  # flushed at its step by replay
    assert [(s.step, s.final is None, s.provisional is not None) for s in shared_history(r)][-1] == (
        STEPS + 2, True, True)
    res = wandb_sync(shared_job.path, WandbTarget())
    assert res.status == "synced" and res.rows == STEPS, res.message
    got = _wandb_runs(str(res.remote_id))
    assert _rows(got["history"]) == _rows(replayed[:-1])  # the provisional row is not a W&B step yet
    assert got["summary"]["late"] == 1.5  # its value is in the summary, as every last value
    assert got["summary"]["_wandblite"] == {"state": "finished", "pending_steps": [STEPS + 2]}
    lines = [line for _t, line, _ts in got["console"]]
    assert "[rank1] rank1 last words\n" in lines  # the crashed writer's last line, labelled

    code = f"""
        import wandblite
        run = wandblite.init(project="proj", id={RUN_ID!r}, dir={str(shared_job.root)!r}, resume="allow",
                             settings=wandblite.Settings(mode="shared", x_label="rank1", x_primary=False))
        run.log({{"late": 9.0}}, step={STEPS + 2}, commit=True)  # the requeued writer commits its row
        print("rank1 is back", flush=True)
        run.finish()
    """
    assert subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=_env(), capture_output=True,
                          text=True, timeout=120).returncode == 0
    again = wandb_sync(shared_job.path, WandbTarget())
    assert again.status == "synced" and again.rows == 1, again.message
    got2 = _wandb_runs(str(again.remote_id))
    assert [(row["_step"], row["late"]) for row in got2["history"]] == [(STEPS + 2, 9.0)]  # its final value, once
    assert got2["summary"]["_wandblite"] == {"state": "finished"}
    assert any(line == "[rank1] rank1 is back\n" for _t, line, _ts in got2["console"])
    assert [line for _t, line, _ts in got["console"] + got2["console"]] == [
        text for _ts, _s, text in wandblite.replay(shared_job.path).console()]
    assert wandb_sync(shared_job.path, WandbTarget()).status == "unchanged"


# ------------------------------------------------------------------------------------------ MLflow


def _mlflow(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact_text(client: Any, run_id: str, name: str, tmp: Path) -> str:
    return Path(client.download_artifacts(run_id, name, str(tmp))).read_text("utf-8")


def test_mlflow_gets_one_run_with_console_per_writer_and_system_metrics_per_writer(
        mlflow_server: str, finished_shared_run: Path, tmp_path: Path) -> None:
    from wandblite.interop.mlflow_target import MlflowTarget, mlflow_key
    from wandblite.interop.mlflow_target import sync_run as mlflow_sync

    target = MlflowTarget(mlflow_server, experiment="shared")
    res = mlflow_sync(finished_shared_run, target)
    assert res.status == "synced" and res.rows == STEPS, res.message
    client = _mlflow(mlflow_server)
    exp = client.get_experiment_by_name("shared")
    [run] = client.search_runs([exp.experiment_id])  # one MLflow run for three writers
    assert run.info.run_id == res.remote_id and run.info.status == "FINISHED"
    r = wandblite.replay(finished_shared_run)
    assert run.data.params == {f"seen_by_{label}": "True" for label in LABELS}
    # history: the merged rows, every writer's keys at their steps
    for key in ("loss", *(f"{label}.x" for label in LABELS)):
        got = sorted((m.step, m.value) for m in client.get_metric_history(res.remote_id, mlflow_key(key)))
        want = [(row["_step"], float(row[key.split(".")[0]]["x"] if "." in key else row[key])) for row in r.history()]
        assert got == want, key
    # console: one labelled output.log and one file per writer
    names = {a.path for a in client.list_artifacts(res.remote_id)}
    assert names >= {"output.log", *(f"output-{label}.log" for label in LABELS)}
    assert _artifact_text(client, res.remote_id, "output.log", tmp_path / "dl") == r.output()
    for label in LABELS:
        text = _artifact_text(client, res.remote_id, f"output-{label}.log", tmp_path / f"dl-{label}")
        assert text == r.output(writer=label) and f"{label} says step {STEPS - 1}\n" in text
        assert "[" not in text  # a writer's own file is not labelled line by line
    # system metrics: system/<label>/<metric> per writer, at each sample's time, step = its index
    sent_samples = 0
    for label in LABELS:
        samples = r.system_metrics(writer=label)
        sent_samples += len(samples)
        key = f"system/{label}/{PROCESS_RSS_KEY}"
        got = sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(res.remote_id, key))
        assert got == [(i, pytest.approx(m[PROCESS_RSS_KEY]), round(ts * 1000)) for i, (ts, m) in enumerate(samples)]
    assert res.extra["system"] == sent_samples
    assert json.loads(run.data.tags["wandblite.system"]) == {
        label: len(r.system_metrics(writer=label)) for label in LABELS}

    again = mlflow_sync(finished_shared_run, target)
    assert again.status == "unchanged"
    target.state_home = str(tmp_path / "forgotten")  # the state file lost: MLflow's own position still holds
    third = mlflow_sync(finished_shared_run, target)
    assert third.status == "synced" and (third.rows, third.metrics, third.extra["system"]) == (0, 0, 0), third
    assert len(client.get_metric_history(res.remote_id, "loss")) == STEPS


def test_mlflow_keeps_a_crashed_writers_pending_row_in_a_tag_until_it_is_resumed(
        mlflow_server: str, shared_job: SharedJob, tmp_path: Path) -> None:
    from wandblite.interop.mlflow_target import MlflowTarget
    from wandblite.interop.mlflow_target import sync_run as mlflow_sync

    shared_job.write("rank0", steps=STEPS + 5)  # the primary goes on past rank1's pending step
    helper = shared_job.start("rank2")
    target = MlflowTarget(mlflow_server, experiment="shared-crash")
    res = mlflow_sync(shared_job.path, target)
    assert res.status == "skipped" and "writer rank2 running" in res.message, res
    helper.kill()  # SIGKILL: rank2 dies with nothing pending
    helper.wait()
    shared_job.write("rank1", mode="crash")
    r = wandblite.replay(shared_job.path)
    assert r.state == "finished" and {w["label"]: w["state"] for w in r.writers} == {
        "rank0": "finished", "rank1": "crashed", "rank2": "crashed"}
    res = mlflow_sync(shared_job.path, target)
    assert res.status == "synced" and res.rows == STEPS + 5, res.message
    client = _mlflow(mlflow_server)
    assert [m.step for m in client.get_metric_history(res.remote_id, "late")] == []  # not a point yet
    assert STEPS + 2 in [m.step for m in client.get_metric_history(res.remote_id, "loss")]  # rank0's, at that step
    run = client.get_run(res.remote_id)
    assert json.loads(run.data.tags["wandblite.pending"]) == {"steps": [STEPS + 2], "metrics": {"late": 1.5}}
    assert "[rank1] rank1 last words\n" in _artifact_text(client, res.remote_id, "output.log", tmp_path / "a")

    code = f"""
        import wandblite
        run = wandblite.init(project="proj", id={RUN_ID!r}, dir={str(shared_job.root)!r}, resume="allow",
                             settings=wandblite.Settings(mode="shared", x_label="rank1", x_primary=False))
        run.log({{"late": 9.0}}, step={STEPS + 2}, commit=True)
        run.finish()
    """
    assert subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=_env(), capture_output=True,
                          text=True, timeout=120).returncode == 0
    again = mlflow_sync(shared_job.path, target)
    assert again.status == "synced" and again.rows == 1, again.message
    assert [(m.step, m.value) for m in client.get_metric_history(res.remote_id, "late")] == [(STEPS + 2, 9.0)]
    assert "wandblite.pending" not in client.get_run(res.remote_id).data.tags
    assert len(client.get_metric_history(res.remote_id, "loss")) == STEPS + 5  # nothing twice
    assert client.get_run(res.remote_id).data.tags["wandblite.last_step"] == str(STEPS + 4)
    assert mlflow_sync(shared_job.path, target).status == "unchanged"


def test_a_crashed_primary_crashes_the_run_in_wandb_and_mlflow(
        wandb_offline: Path, mlflow_server: str, shared_job: SharedJob) -> None:
    from wandblite.interop.mlflow_target import MlflowTarget
    from wandblite.interop.mlflow_target import sync_run as mlflow_sync

    shared_job.write("rank1")
    shared_job.write("rank0", mode="crash")  # the deciding writer dies with a pending row
    r = wandblite.replay(shared_job.path)
    assert r.state == "crashed" and r.writer("rank1")["state"] == "finished"
    res = wandb_sync(shared_job.path, WandbTarget())
    assert (res.status, res.state, res.rows) == ("synced", "crashed", STEPS), res.message
    got = _wandb_runs(str(res.remote_id))
    assert got["exit_code"] == 1 and got["summary"]["_wandblite"] == {"state": "crashed", "pending_steps": [STEPS + 2]}
    assert _rows(got["history"]) == _rows(r.history()[:-1])
    ml = mlflow_sync(shared_job.path, MlflowTarget(mlflow_server, experiment="shared-primary"))
    assert (ml.status, ml.rows) == ("synced", STEPS), ml.message
    run = _mlflow(mlflow_server).get_run(ml.remote_id)
    assert run.info.status == "KILLED" and run.data.tags["wandblite.state"] == "crashed"
    assert json.loads(run.data.tags["wandblite.pending"]) == {"steps": [STEPS + 2], "metrics": {"late": 0.5}}


# ------------------------------------------------------------------------------------------ TensorBoard


def test_tensorboard_gets_the_merged_history_and_one_run_per_writer(
        finished_shared_run: Path, tmp_path: Path) -> None:
    need("tensorboard")
    import numpy as np
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    from wandblite.interop.tensorboard import export_tensorboard

    out = tmp_path / "tb"
    files: list[Path] = []
    main = export_tensorboard(finished_shared_run, out, files=files)
    assert files[0] == main and main.parent == out  # the merged history where a single run's would go
    assert [p.parent.name for p in files[1:]] == list(LABELS) and all(p.parent.parent == out for p in files[1:])
    mux = EventMultiplexer(size_guidance={"scalars": 0, "tensors": 0})
    mux.AddRunsFromDirectory(str(out))
    mux.Reload()
    assert set(mux.Runs()) == {".", *LABELS}  # TensorBoard shows each writer as a run of its own
    r = wandblite.replay(finished_shared_run)
    merged = mux.GetAccumulator(".")
    assert [(e.step, e.value) for e in merged.Scalars("loss")] == [
        (row["_step"], float(np.float32(row["loss"]))) for row in r.history()]
    assert {t for t in merged.Tags()["scalars"] if t.startswith("system/")} == set()
    for label in LABELS:
        ea = mux.GetAccumulator(label)
        samples = r.system_metrics(writer=label)
        got = [(e.step, e.wall_time, e.value) for e in ea.Scalars(f"system/{PROCESS_RSS_KEY}")]
        assert got == [(i, pytest.approx(ts), float(np.float32(m[PROCESS_RSS_KEY]))) for i, (ts, m) in enumerate(samples)]
        assert not [t for t in ea.Tags()["scalars"] if not t.startswith("system/")]  # no history rows here
        [console] = ea.Tensors("console")
        text = console.tensor_proto.string_val[0].decode()
        assert text.splitlines() == ["    " + x for x in r.output(writer=label).splitlines()]
        assert f"{label} says step {STEPS - 1}" in text and not any(
            f"{other} says" in text for other in LABELS if other != label)

    again: list[Path] = []
    export_tensorboard(finished_shared_run, out, files=again)
    assert again == files  # a second export replaces the same files, never adds copies
    assert sorted(p.relative_to(out) for p in out.rglob("events.out.tfevents.*")) == sorted(
        p.relative_to(out) for p in files)
