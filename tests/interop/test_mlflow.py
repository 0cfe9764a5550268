"""``sync --to mlflow`` against a real ``mlflow server`` (SQLite backend) on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wandblite
from tests.interop.conftest import CrashThenResume, need, sync_cli
from wandblite.interop.common import numeric_leaves
from wandblite.interop.mlflow_target import (
    MAX_ENTITIES,
    MAX_METRICS,
    MAX_PARAMS_TAGS,
    MlflowTarget,
    batches,
    mlflow_key,
    sync_run,
)
from wandblite.replay import flatten


def _client(uri: str) -> Any:
    need("mlflow")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _expected_metrics(run_dir: Path, held_back: int = 0) -> dict[str, list[tuple[int, float, int]]]:
    """Key -> (step, value, ms) of the replay's rows but the last ``held_back`` (a crashed run's pending row)."""
    out: dict[str, list[tuple[int, float, int]]] = {}
    rows = list(wandblite.replay(run_dir).scan_history())
    for row in rows[:len(rows) - held_back]:
        for k, v in numeric_leaves(row).items():
            out.setdefault(mlflow_key(k), []).append((row["_step"], v, round(row["_timestamp"] * 1000)))
    return out


def _history(client: Any, run_id: str, keys: list[str]) -> dict[str, list[tuple[int, float, int]]]:
    return {k: sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, k)) for k in keys}


def _assert_same_as_replay(client: Any, mlflow_run_id: str, run_dir: Path, held_back: int = 0) -> None:
    expected = _expected_metrics(run_dir, held_back)
    assert _history(client, mlflow_run_id, list(expected)) == expected


def test_scalar_run_metrics_params_tags_and_status(mlflow_server: str, make_scalar_run: Callable[..., Path]) -> None:
    run_dir = make_scalar_run()
    res = sync_run(run_dir, MlflowTarget(mlflow_server))
    assert res.status == "synced", res.message
    client = _client(mlflow_server)
    run = client.get_run(res.remote_id)
    r = wandblite.replay(run_dir)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == r.name
    assert client.get_experiment(run.info.experiment_id).name == "proj"
    assert run.data.params == {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in flatten(r.config).items()}
    _assert_same_as_replay(client, res.remote_id, run_dir)
    tags = run.data.tags
    assert tags["wandblite.run_id"] == r.id
    assert tags["mlflow.note.content"] == "a scalar run"
    assert tags["baseline"] == tags["v1"] == "true"
    assert tags["wandb.group"] == "grp" and tags["wandb.job_type"] == "train"
    assert tags["summary.best_note"] == "converged"
    # define_metric(summary="min,max") summaries become final metrics
    assert run.data.metrics["loss.min"] == pytest.approx(r.summary["loss"]["min"])
    assert run.data.metrics["loss.max"] == pytest.approx(r.summary["loss"]["max"])
    assert "output.log" in [a.path for a in client.list_artifacts(res.remote_id)]


def test_second_sync_adds_nothing_even_without_the_state_file(
        mlflow_server: str, make_scalar_run: Callable[..., Path], _interop_home: Path) -> None:
    run_dir = make_scalar_run(run_id="again1", rows=8)
    target = MlflowTarget(mlflow_server, experiment="idempotence")
    first = sync_run(run_dir, target)
    client = _client(mlflow_server)
    keys = [*_expected_metrics(run_dir), "loss.min", "loss.max"]
    before = _history(client, first.remote_id, keys)
    second = sync_run(run_dir, target)
    assert second.status == "unchanged" and second.rows == 0 and second.metrics == 0
    # the state file is only a cache: the MLflow run's own position tag says what it holds
    shutil.rmtree(_interop_home)
    third = sync_run(run_dir, target)
    assert third.ok and third.rows == 0 and third.metrics == 0 and third.remote_id == first.remote_id
    assert _history(client, first.remote_id, keys) == before
    runs = client.search_runs([client.get_experiment_by_name("idempotence").experiment_id])
    assert len(runs) == 1


def test_explicit_steps_and_commit_false(mlflow_server: str, make_step_run: Callable[..., Path]) -> None:
    run_dir = make_step_run()
    res = sync_run(run_dir, MlflowTarget(mlflow_server))
    assert res.ok, res.message
    client = _client(mlflow_server)
    _assert_same_as_replay(client, res.remote_id, run_dir)
    assert [m.step for m in client.get_metric_history(res.remote_id, "h")] == [20]
    assert [m.step for m in client.get_metric_history(res.remote_id, "f.g")] == [8]


def test_crashed_run_is_killed_and_failed_run_is_failed(
        mlflow_server: str, make_crashed_run: Callable[..., Path], make_failed_run: Callable[..., Path]) -> None:
    crashed, failed = make_crashed_run(), make_failed_run()
    assert wandblite.replay(crashed).state == "crashed"
    client = _client(mlflow_server)
    res = sync_run(crashed, MlflowTarget(mlflow_server))
    assert res.ok, res.message
    run = client.get_run(res.remote_id)
    assert run.info.status == "KILLED" and res.rows == 10
    _assert_same_as_replay(client, res.remote_id, crashed, held_back=1)
    # The pending row is provisional (a resume may continue it): a tag, not metric points, for now.
    assert client.get_metric_history(res.remote_id, "partial") == []
    assert json.loads(run.data.tags["wandblite.pending"]) == {"step": 10, "metrics": {"partial": 1.0}}
    assert run.data.tags["wandblite.rows"] == "10"
    res = sync_run(failed, MlflowTarget(mlflow_server))
    run = client.get_run(res.remote_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["wandblite.exit_code"] == "1"


def test_a_crashed_then_resumed_run_reaches_mlflow_once_per_step_with_its_final_values(
        mlflow_server: str, crash_then_resume: CrashThenResume) -> None:
    run_dir = crash_then_resume.crash()
    args = (str(run_dir.parent), "--to", "mlflow", "--tracking-uri", mlflow_server, "--experiment", "resumed")
    [first] = sync_cli(*args)
    assert (first["status"], first["state"], first["rows"]) == ("synced", "crashed", 5), first
    client = _client(mlflow_server)
    run = client.get_run(first["remote_id"])
    assert run.info.status == "KILLED" and run.data.tags["wandblite.rows"] == "5"
    assert json.loads(run.data.tags["wandblite.pending"]) == {"step": 5, "metrics": {"partial": 1.0, "nested.w": 1.0}}
    assert client.get_metric_history(first["remote_id"], "partial") == []

    crash_then_resume.resume()
    [second] = sync_cli(*args)
    assert (second["status"], second["state"], second["rows"]) == ("synced", "finished", 3), second
    assert second["remote_id"] == first["remote_id"]  # the same MLflow run, continued
    run = client.get_run(first["remote_id"])
    assert run.info.status == "FINISHED" and run.data.tags["wandblite.rows"] == "8"
    assert "wandblite.pending" not in run.data.tags
    # Every metric point exactly once, with the final values (partial: 1.5 at step 5, never 1.0).
    _assert_same_as_replay(client, first["remote_id"], run_dir)
    assert [(m.step, m.value) for m in client.get_metric_history(first["remote_id"], "partial")] == [(5, 1.5)]
    assert [m.step for m in client.get_metric_history(first["remote_id"], "loss")] == [0, 1, 2, 3, 4, 6, 7]
    [third] = sync_cli(*args)
    assert third["status"] == "unchanged"


def test_media_and_tables_become_artifacts_at_their_logical_paths(
        mlflow_server: str, make_media_run: Callable[..., Path], tmp_path: Path) -> None:
    run_dir = make_media_run()
    res = sync_run(run_dir, MlflowTarget(mlflow_server))
    assert res.ok, res.message
    client = _client(mlflow_server)
    rows = list(wandblite.replay(run_dir).scan_history())
    want = {row["img"]["path"] for row in rows if "img" in row} | {rows[-1]["table"]["path"]}
    got = {a.path for d in ("media/images", "media/table") for a in client.list_artifacts(res.remote_id, d)}
    assert got == want
    local = client.download_artifacts(res.remote_id, rows[0]["img"]["path"], str(tmp_path))
    assert Path(local).read_bytes() == rows[0]["img"].bytes()
    _assert_same_as_replay(client, res.remote_id, run_dir)


def test_batches_respect_log_batch_limits() -> None:
    metrics, params, tags = list(range(2500)), [f"p{i}" for i in range(250)], [f"t{i}" for i in range(130)]
    calls = list(batches(metrics, params, tags))
    for m, p, t in calls:
        assert len(m) <= MAX_METRICS and len(p) <= MAX_PARAMS_TAGS and len(t) <= MAX_PARAMS_TAGS
        assert len(m) + len(p) + len(t) <= MAX_ENTITIES
    assert [x for c in calls for x in c[0]] == metrics
    assert [x for c in calls for x in c[1]] == params
    assert [x for c in calls for x in c[2]] == tags
    assert calls[-1][2][-1] == "t129"  # the last tag (the position) goes last, after every metric


def test_wide_run_many_params_and_long_values(mlflow_server: str, tmp_path: Path) -> None:
    config = {f"param_{i:03d}": i for i in range(150)}
    config["long"] = "x" * 7000
    run = wandblite.init(project="wide", id="wide1", dir=str(tmp_path / "runs"), reinit=True, config=config)
    for i in range(6):
        run.log({f"m{j:03d}": i * j for j in range(300)})  # 1800 points: several log_batch calls
    run.finish()
    res = sync_run(tmp_path / "runs" / "wide1", MlflowTarget(mlflow_server), batch_rows=4)
    assert res.ok, res.message
    client = _client(mlflow_server)
    got = client.get_run(res.remote_id).data.params
    assert len(got) == 151 and got["long"] == "x" * 6000 and got["param_149"] == "149"
    assert [(m.step, m.value) for m in client.get_metric_history(res.remote_id, "m299")] == [
        (i, float(i * 299)) for i in range(6)]
    assert res.metrics == 1800


def test_keys_mlflow_refuses_are_rewritten() -> None:
    assert mlflow_key("train/loss") == "train/loss"
    assert mlflow_key("acc@1 (val)") == "acc_1 _val_"
    assert mlflow_key("a//b") == "a__b"
    assert len(mlflow_key("k" * 400)) == 250


def test_running_run_is_skipped_then_synced_once_it_ends(mlflow_server: str, live_run: Callable[..., Any]) -> None:
    lr = live_run("live-ml")
    target = MlflowTarget(mlflow_server, experiment="live")
    res = sync_run(lr.path, target)
    assert res.status == "skipped" and "still being written" in res.message
    client = _client(mlflow_server)
    exp = client.get_experiment_by_name("live")
    assert exp is None or client.search_runs([exp.experiment_id]) == []
    lr.release()
    res = sync_run(lr.path, target)
    assert res.status == "synced" and res.rows == 6
    assert client.get_run(res.remote_id).info.status == "FINISHED"
    _assert_same_as_replay(client, res.remote_id, lr.path)


def test_unreachable_server_is_one_line_naming_the_run_and_the_fix(make_scalar_run: Callable[..., Path]) -> None:
    need("mlflow")
    run_dir = make_scalar_run(rows=2)
    res = sync_run(run_dir, MlflowTarget("http://127.0.0.1:1"))
    assert not res.ok
    assert res.line() == (
        "run scalar1: cannot reach MLflow at http://127.0.0.1:1 (connection refused); "
        "start the tracking server or fix --tracking-uri"
    )


def test_missing_mlflow_package_is_a_clear_error(make_scalar_run: Callable[..., Path],
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_dir = make_scalar_run(rows=2)
    for name in ("mlflow", "mlflow.tracking", "mlflow.entities"):
        monkeypatch.setitem(__import__("sys").modules, name, None)  # import mlflow raises ImportError
    res = sync_run(run_dir, MlflowTarget(f"file://{tmp_path / 'mlruns'}"))
    assert not res.ok and "the mlflow package is not installed" in res.message and "pip install mlflow" in res.message
