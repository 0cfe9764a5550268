"""Shared runs: several processes (the ranks of a distributed job) writing one run, merged exactly.

Real processes throughout: a torch.distributed job (gloo on CPU, 4 ranks started by torchrun, the
script is tests/core/shared_job.py) logs into one run through WANDBLITE_SHARED=1; its replayed
history is compared with the merge computed here from what each rank logged; one rank is
SIGKILLed mid-training, or grows its memory and is then SIGKILLed, and replay, ``show`` and
``show --json`` name it. Smaller tests pin the files, the locks, the identity, the lifecycle and
the shared run id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import wandblite
from wandblite import events as ev
from wandblite.errors import ResumeError, RunLockedError, UsageError
from wandblite.replay import Replay
from wandblite.runfile import read_events, writer_streams
from wandblite.shared import shared_run_id, writer_setup
from wandblite.vocab import PROCESS_RSS_KEY, STEP

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("shared_job.py")
sys.path.insert(0, str(JOB.parent))
import shared_job  # noqa: E402 - the job's own value rules, to compute the expected merge

WORLD = 4


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDBLITE_", "WANDB_", "SLURM_", "RANK",
                                                                      "TORCHELASTIC", "MASTER_"))}
    env.update({"PYTHONPATH": str(ROOT), "WANDBLITE_SILENT": "1", "OMP_NUM_THREADS": "1"})
    env.update(extra)
    return env


def _torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(JOB), *args]
    return subprocess.run(cmd, env=_env(WANDBLITE_SHARED="1", WANDBLITE_STATS_INTERVAL="0.1"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def _only_run(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def expected_row(step: int, ranks: list[int]) -> dict[str, Any]:
    """The merged row of ``step`` when ``ranks`` logged it, from what shared_job.py logs."""
    row: dict[str, Any] = {"loss": shared_job.loss(min(ranks), step), STEP: step,
                           "sum": float(sum(r + step for r in range(WORLD)))}
    for r in ranks:
        row[f"rank{r}"] = {"x": shared_job.x(r, step)}
        if r % 2 == 1 and step % 2 == 0:
            row[f"extra{r}"] = step
    return row


def _user_part(row: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(row["_timestamp"], float) and isinstance(row["_runtime"], float)
    return {k: v for k, v in row.items() if k not in ("_timestamp", "_runtime")}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from wandblite_cli.main import main; main()", *args], env=_env(),
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- a real torch.distributed job


def test_torchrun_job_every_rank_logs_into_one_shared_run(tmp_path: Path) -> None:
    steps = 8
    res = _torchrun(tmp_path, "ok", str(tmp_path / "runs"), str(steps))
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = _only_run(tmp_path / "runs")
    assert run_dir.name.startswith("torchelastic-")  # the id every rank derived from torchrun's run id
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith("events-")) == [
        f"events-rank{r}-000.wlr" for r in range(WORLD)]
    r = Replay(run_dir)
    assert r.shared and r.state == "finished"
    history = r.history()
    assert [_user_part(row) for row in history] == [expected_row(s, list(range(WORLD))) for s in range(steps)]
    for row, s in zip(history, range(steps)):  # the primary's timestamp wins the row
        assert row["_timestamp"] == pytest.approx(row["_timestamp"]) and row[STEP] == s
    assert r.config == {"world": WORLD, **{f"seen_by_{k}": True for k in range(WORLD)}}
    assert r.summary["loss"] == shared_job.loss(0, steps - 1)
    assert r.summary["rank3"] == {"x": shared_job.x(3, steps - 1)}
    assert r.rows == steps and r.step == steps
    assert [(w["label"], w["primary"], w["update_finish_state"], w["state"], w["steps"]) for w in r.writers] == [
        ("rank0", True, True, "finished", steps), *((f"rank{k}", False, False, "finished", steps)
                                                    for k in range(1, WORLD))]
    assert len({w["pid"] for w in r.writers}) == WORLD
    for k in range(WORLD):  # console and system records kept apart per rank
        out = r.output(writer=f"rank{k}")
        assert f"rank {k} step {steps - 1} done" in out
        assert all(f"rank {j} " not in out for j in range(WORLD) if j != k)
        samples = r.system_metrics(writer=f"rank{k}")
        assert samples and all(PROCESS_RSS_KEY in m for _ts, m in samples)
    everyone = r.output()
    assert all(f"[rank{k}] rank {k} step 0 done" in everyone for k in range(WORLD))
    assert {k.split("/")[0] for _ts, m in r.system_metrics() for k in m} == {f"rank{k}" for k in range(WORLD)}
    logs = _cli("logs", str(run_dir), "--writer", "rank2", "--tail", "2")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == [f"rank 2 step {steps - 2} done", f"rank 2 step {steps - 1} done"]


def _crashed_job(tmp_path: Path, mode: str, victim: int, kill_at: int) -> tuple[Path, Replay]:
    res = _torchrun(tmp_path, mode, str(tmp_path / "runs"), "30", str(victim), str(kill_at))
    assert res.returncode != 0
    run_dir = _only_run(tmp_path / "runs")
    return run_dir, Replay(run_dir)


def _assert_named_first(run_dir: Path, r: Replay, victim: int, kill_at: int) -> dict[str, Any]:
    assert r.state == "crashed"
    states = {w["label"]: w["state"] for w in r.writers}
    assert states[f"rank{victim}"] == "crashed"
    assert all(s in ("failed", "finished") for lab, s in states.items() if lab != f"rank{victim}"), states
    shown = _cli("show", str(run_dir), "--json")
    assert shown.returncode == 0, shown.stderr
    rec = json.loads(shown.stdout)
    first = rec["stopped_first"]
    assert first["writer"] == f"rank{victim}" and first["state"] == "crashed"
    assert first["last_lines"][-1] == f"rank {victim} last words at step {kill_at}"
    assert first["seconds_before_others"] > 0
    assert [w["label"] for w in rec["writers"]] == [f"rank{k}" for k in range(WORLD)]
    # The others' data are complete: every rank's rows up to the victim's last step are there.
    history = r.history()
    for s in range(kill_at + 1):
        assert _user_part(history[s]) == expected_row(s, list(range(WORLD))) | {
            k: v for k, v in _user_part(history[s]).items() if k not in expected_row(s, list(range(WORLD)))}
    assert r.output(writer=f"rank{victim}").rstrip("\n").splitlines()[-1] == f"rank {victim} last words at step {kill_at}"
    text = _cli("show", str(run_dir))
    assert f"stopped first  rank{victim} on " in text.stdout
    assert f"rank {victim} last words at step {kill_at}" in text.stdout
    return rec


def test_a_rank_sigkilled_mid_training_is_named_as_stopped_first(tmp_path: Path) -> None:
    run_dir, r = _crashed_job(tmp_path, "kill", 2, 4)
    _assert_named_first(run_dir, r, 2, 4)
    assert r.writer("rank2")["steps"] == 5  # its pending row of step 4 flushed at the crash
    assert r.history()[4]["rank2"] == {"x": shared_job.x(2, 4)}


def test_a_rank_whose_memory_climbs_then_is_killed_shows_its_rss_climb(tmp_path: Path) -> None:
    run_dir, r = _crashed_job(tmp_path, "oom", 1, 6)
    rec = _assert_named_first(run_dir, r, 1, 6)
    rss = rec["stopped_first"]["rss_mb"]
    assert rss["samples"] >= 5
    assert rss["last"] - rss["first"] > 150  # 6 x 40 MB touched before the kill
    assert PROCESS_RSS_KEY in rec["stopped_first"]["last_memory"]
    text = _cli("show", str(run_dir))
    assert "its RSS     climbed" in text.stdout


# --------------------------------------------------------------------------- files, locks, identity


def test_a_single_writer_run_keeps_its_files_and_bytes(tmp_path: Path) -> None:
    run = wandblite.init(dir=str(tmp_path), project="p", id="solo")
    run.log({"a": 1})
    run.finish()
    names = sorted(p.name for p in (tmp_path / "solo").iterdir())
    assert names == ["events-000.wlr", "files"]
    start = next(e for e in read_events(tmp_path / "solo") if e.kind == ev.START)
    assert "writer" not in start.data
    r = Replay(tmp_path / "solo")
    assert not r.shared
    assert [(w["label"], w["primary"], w["state"]) for w in r.writers] == [(None, True, "finished")]
    assert "writers" not in json.loads(_cli("show", str(tmp_path / "solo"), "--json").stdout)


def _shared(tmp_path: Path, label: str, primary: bool | None = None, **kw: Any) -> Any:
    s = wandblite.Settings(mode="shared", x_label=label)
    if primary is not None:
        s.update(x_primary=primary)
    return wandblite.init(dir=str(tmp_path), project="p", id="sh", settings=s, reinit="create_new", **kw)


_HOLDER = textwrap.dedent("""
    import sys, time, wandblite
    run = wandblite.init(dir=sys.argv[1], project="p", id="sh", settings=wandblite.Settings(mode="shared",
                         x_label=sys.argv[2], x_primary=sys.argv[2] == "rank0"))
    run.log({"held_by": sys.argv[2]}, step=0)
    print("ready", flush=True)
    if sys.argv[3] == "wait":
        time.sleep(60)
    run.finish()
""")


def _holder(tmp_path: Path, label: str, then: str = "wait") -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), label, then], env=_env(), text=True,
                         stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def test_a_second_process_with_the_same_label_is_refused_and_another_label_joins(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "rank0")
    try:
        with pytest.raises(RunLockedError, match="writer 'rank0'"):
            _shared(tmp_path, "rank0", resume="allow")
        run = _shared(tmp_path, "rank1")
        run.log({"b": 2}, step=0)
        run.finish()
    finally:
        holder.kill()
        holder.wait()
    assert set(writer_streams(tmp_path / "sh")) == {"rank0", "rank1"}


def test_a_non_shared_process_never_joins_a_shared_run(tmp_path: Path) -> None:
    run = _shared(tmp_path, "rank0", primary=True)
    run.finish()
    with pytest.raises(UsageError, match="shared run"):
        wandblite.init(dir=str(tmp_path), project="p", id="sh", resume="allow")


def test_a_shared_writer_does_not_join_a_run_a_live_single_writer_holds(tmp_path: Path) -> None:
    code = ("import sys, time, wandblite\nrun = wandblite.init(dir=sys.argv[1], project='p', id='sh')\n"
            "print('ready', flush=True)\ntime.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=_env(), text=True, stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        with pytest.raises(RunLockedError, match="not in shared mode"):
            _shared(tmp_path, "rank1")
    finally:
        p.kill()
        p.wait()


def test_a_writer_resumes_its_own_stream_only_when_asked(tmp_path: Path) -> None:
    run = _shared(tmp_path, "rank0", primary=True)
    run.log({"a": 1}, step=0, commit=True)
    run.finish()
    with pytest.raises(ResumeError, match="writer 'rank0'"):
        _shared(tmp_path, "rank0", primary=True)
    run = _shared(tmp_path, "rank0", primary=True, resume="allow")
    assert run.step == 1  # its own stream's step goes on
    run.log({"a": 2}, step=3, commit=True)
    run.finish()
    assert [p.name for p in writer_streams(tmp_path / "sh")["rank0"]] == ["events-rank0-000.wlr",
                                                                          "events-rank0-001.wlr"]
    r = Replay(tmp_path / "sh")
    assert [row["a"] for row in r.history()] == [1, 2] and r.writer("rank0")["attempts"] == 2


def test_the_primary_decides_the_state_and_a_crashed_helper_is_kept_apart(tmp_path: Path) -> None:
    helper = _holder(tmp_path, "rank1")
    run = _shared(tmp_path, "rank0", primary=True)
    run.log({"loss": 0.5, "who": "primary"}, step=0)
    run.finish()
    helper.send_signal(signal.SIGKILL)
    helper.wait()
    r = Replay(tmp_path / "sh")
    assert r.state == "finished"  # the primary finished; rank1 did not decide
    assert {w["label"]: w["state"] for w in r.writers} == {"rank0": "finished", "rank1": "crashed"}
    row = r.history()[0]
    assert row["who"] == "primary" and row["held_by"] == "rank1"  # its crashed pending row is kept


def test_a_crashed_deciding_writer_crashes_the_run(tmp_path: Path) -> None:
    primary = _holder(tmp_path, "rank0")
    run = _shared(tmp_path, "rank1")
    run.log({"x": 1}, step=0)
    run.finish()
    primary.send_signal(signal.SIGKILL)
    primary.wait()
    r = Replay(tmp_path / "sh")
    assert r.state == "crashed"
    assert r.writer("rank0")["state"] == "crashed" and r.writer("rank1")["state"] == "finished"


def test_conflicting_keys_go_to_the_primary_then_the_lowest_label(tmp_path: Path) -> None:
    for label, primary in (("b", False), ("a", False), ("z", True)):
        run = _shared(tmp_path, label, primary=primary)
        run.log({"k": label, f"own_{label}": 1, "nest": {label: 1, "all": label}}, step=0, commit=True)
        run.log({"k2": label}, step=1, commit=True)
        run.config.update({"lr": label, f"c_{label}": 1})
        run.summary["best"] = label
        run.finish()
    r = Replay(tmp_path / "sh")
    h = r.history()
    assert h[0]["k"] == "z" and h[0]["nest"] == {"a": 1, "b": 1, "z": 1, "all": "z"}
    assert {k for k in h[0] if k.startswith("own_")} == {"own_a", "own_b", "own_z"}
    assert r.config == {"lr": "z", "c_a": 1, "c_b": 1, "c_z": 1}
    assert r.summary["best"] == "z" and r.summary["k2"] == "z"
    assert [w["label"] for w in r.writers] == ["z", "a", "b"]


# --------------------------------------------------------------------------- label and run id


def test_label_primary_and_deciding_come_from_settings_else_the_launchers_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert writer_setup(None) == ("rank0", True, True)
    monkeypatch.setenv("RANK", "5")
    assert writer_setup({}) == ("rank5", False, False)
    assert writer_setup(wandblite.Settings(x_label="w-1", x_primary=True, x_update_finish_state=False)) == (
        "w-1", True, False)
    with pytest.raises(UsageError, match="x_label"):
        writer_setup(wandblite.Settings(x_label="../etc"))


def test_the_run_id_comes_from_slurm_then_torchelastic_then_rank0s_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLURM_JOB_ID", "SLURM_STEP_ID", "TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "RANK",
                 "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="run id all processes share"):
        shared_run_id(tmp_path, lambda: "new")
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("RANK", "0")
    assert shared_run_id(tmp_path, lambda: "fresh1") == "fresh1"
    monkeypatch.setenv("RANK", "3")
    assert shared_run_id(tmp_path, lambda: "unused") == "fresh1"  # read from rank 0's file
    monkeypatch.setenv("WANDBLITE_SHARED_WAIT", "0.2")
    with pytest.raises(UsageError, match="no run id from rank 0"):
        shared_run_id(tmp_path, lambda: "x", now=lambda: time.time() + 5)  # a stale file is a previous job's
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("RANK", "0")
    assert shared_run_id(tmp_path, lambda: "fresh2") == "fresh2"  # torchrun's default id is not an id
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc123")
    assert shared_run_id(tmp_path, lambda: "x") == "torchelastic-abc123"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_STEP_ID", "1")
    assert shared_run_id(tmp_path, lambda: "x") == "slurm-4242-1"


def test_the_slurm_example_script_runs_under_torchrun_into_one_run(tmp_path: Path) -> None:
    script = ROOT / "examples" / "slurm" / "train_ddp.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    res = subprocess.run(cmd, env=_env(WANDBLITE_SHARED="1", STEPS="12", WANDBLITE_DIR=str(tmp_path / "runs")),
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r = Replay(_only_run(tmp_path / "runs"))
    assert r.state == "finished" and [w["label"] for w in r.writers] == ["rank0", "rank1"]
    history = r.history()
    assert [row[STEP] for row in history] == list(range(12))
    assert all({"loss/rank0", "loss/rank1", "loss/mean"} <= set(_flat_keys(row)) for row in history)
    sbatch = ROOT / "examples" / "slurm" / "train_multinode.sbatch"
    assert subprocess.run(["bash", "-n", str(sbatch)], capture_output=True).returncode == 0


def _flat_keys(row: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in row.items():
        out.extend(_flat_keys(v, f"{prefix}{k}/") if isinstance(v, dict) else [f"{prefix}{k}"])
    return out


def test_a_writer_that_died_before_its_first_record_stopped_first_of_all(tmp_path: Path) -> None:
    live = _holder(tmp_path, "rank0")
    try:
        (tmp_path / "sh" / "events-rank7-000.wlr").write_bytes(b"")  # created, then killed before the header
        r = Replay(tmp_path / "sh")
        assert r.state == "crashed"  # a writer crashed while the deciding one has not finished
        assert {w["label"]: w["state"] for w in r.writers} == {"rank0": "running", "rank7": "crashed"}
        shown = _cli("show", str(tmp_path / "sh"), "--json")
        first = json.loads(shown.stdout)["stopped_first"]
        assert (first["writer"], first["last_alive"], first["seconds_before_others"]) == ("rank7", None, None)
        assert "rank7 (crashed): it died before writing its first record" in _cli("show", str(tmp_path / "sh")).stdout
    finally:
        live.kill()
        live.wait()
