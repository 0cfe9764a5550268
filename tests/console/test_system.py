"""System sampler and job context, on this machine's real /proc, a fake nvidia-smi and a real git."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wandblite.system import SystemSampler, job_context, parse_nvidia_smi_csv

LINUX = sys.platform.startswith("linux")


def _nvml_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        return True
    except OSError:
        return False


def _fake_nvidia_smi(directory: Path, output: str, exit_code: int = 0) -> Path:
    """An executable called nvidia-smi that prints ``output`` and logs its arguments beside itself."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "nvidia-smi"
    (directory / "output.txt").write_text(output)
    script.write_text(
        f'#!/bin/sh\necho "$@" >> "{directory}/calls.txt"\ncat "{directory}/output.txt"\nexit {exit_code}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


TWO_GPUS = "0, 87, 40, 30000, 40960, 65, 250.5\n1, 3, 0, 512, 40960, 41, [N/A]\n"


def _no_sink(ts: float, metrics: dict) -> None:
    pass


# -- sample() on this machine --------------------------------------------------------------------


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_a_sample_on_this_machine_has_sane_numbers(tmp_path: Path) -> None:
    sampler = SystemSampler(_no_sink, path=str(tmp_path), nvidia_smi=str(tmp_path / "absent"))
    m = sampler.sample()
    assert m["proc.memory.rssMB"] > 1
    assert 0 < m["proc.memory.percent"] < 100
    assert 0 < m["memory_percent"] < 100
    assert m["proc.memory.availableMB"] > 0
    assert m["proc.cpu.threads"] >= 1
    assert m["cpu"] >= 0
    usage = [k for k in m if k.startswith("disk.") and k.endswith(".usagePercent")]
    assert len(usage) == 1 and 0 < m[usage[0]] <= 100
    assert m[usage[0].replace("usagePercent", "usageGB")] > 0
    for key in ("disk.in", "disk.out", "network.recv", "network.sent"):
        assert m[key] >= 0
    assert not any(k.startswith("gpu.") for k in m)
    assert all(isinstance(v, float) for v in m.values())
    json.dumps(m)  # plain numbers a record can hold


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_cpu_and_rss_follow_what_the_process_does() -> None:
    sampler = SystemSampler(_no_sink, nvidia_smi="/nonexistent/nvidia-smi")
    first = sampler.sample()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # one core busy
        pass
    busy = sampler.sample()
    time.sleep(0.5)
    idle = sampler.sample()
    assert busy["cpu"] > 30, busy  # about 100 on an idle machine
    assert idle["cpu"] < busy["cpu"]
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
    grown = sampler.sample()
    assert grown["proc.memory.rssMB"] - first["proc.memory.rssMB"] > 250
    del ballast


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_another_process_can_be_sampled_by_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(200 << 20); time.sleep(30)"])
    try:
        time.sleep(1.0)
        m = SystemSampler(_no_sink, pid=proc.pid, nvidia_smi="/nonexistent").sample()
        assert m["proc.memory.rssMB"] > 150
    finally:
        proc.kill()
        proc.wait()


# -- GPUs through nvidia-smi -----------------------------------------------------------------------


def test_nvidia_smi_output_becomes_per_gpu_keys(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", TWO_GPUS)
    m = SystemSampler(_no_sink, nvidia_smi=str(smi)).sample()
    gpu = {k: v for k, v in m.items() if k.startswith("gpu.")}
    assert gpu == {
        "gpu.0.gpu": 87.0,
        "gpu.0.memory": 40.0,
        "gpu.0.memoryUsedMB": 30000.0,
        "gpu.0.memoryAllocated": pytest.approx(100 * 30000 / 40960),
        "gpu.0.temp": 65.0,
        "gpu.0.powerWatts": 250.5,
        "gpu.1.gpu": 3.0,
        "gpu.1.memory": 0.0,
        "gpu.1.memoryUsedMB": 512.0,
        "gpu.1.memoryAllocated": pytest.approx(100 * 512 / 40960),
        "gpu.1.temp": 41.0,
        # power "[N/A]": no key rather than a made-up number
    }
    calls = (tmp_path / "bin" / "calls.txt").read_text()
    assert "--query-gpu=index,utilization.gpu," in calls and "--format=csv,noheader,nounits" in calls


@pytest.mark.skipif(_nvml_present(), reason="NVML is present: it is preferred over nvidia-smi on PATH")
def test_nvidia_smi_is_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path / "bin", TWO_GPUS)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    m = SystemSampler(_no_sink).sample()
    assert m["gpu.1.temp"] == 41.0 and m["gpu.0.gpu"] == 87.0


@pytest.mark.skipif(_nvml_present(), reason="NVML is present")
def test_without_nvidia_smi_there_are_no_gpu_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    sampler = SystemSampler(_no_sink)
    assert not any(k.startswith("gpu.") for k in sampler.sample())
    # Installing one later changes nothing: the lookup was done once, not at every sample.
    _fake_nvidia_smi(empty, TWO_GPUS)
    assert not any(k.startswith("gpu.") for k in sampler.sample())


def test_a_failing_nvidia_smi_is_given_up_after_three_tries(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", "NVIDIA-SMI has failed\n", exit_code=9)
    sampler = SystemSampler(_no_sink, nvidia_smi=str(smi))
    for _ in range(5):
        assert not any(k.startswith("gpu.") for k in sampler.sample())
    assert (tmp_path / "bin" / "calls.txt").read_text().count("--query-gpu") == 3


def test_garbage_lines_from_nvidia_smi_are_skipped() -> None:
    assert parse_nvidia_smi_csv("No devices were found\n\n") == {}
    assert parse_nvidia_smi_csv("0, [Not Supported], 1, 2, 4, 50, 10\n") == {
        "gpu.0.memory": 1.0,
        "gpu.0.memoryUsedMB": 2.0,
        "gpu.0.memoryAllocated": 50.0,
        "gpu.0.temp": 50.0,
        "gpu.0.powerWatts": 10.0,
    }


# -- the thread -----------------------------------------------------------------------------------


def test_the_thread_samples_periodically_and_stops_cleanly() -> None:
    calls: list[tuple[float, dict]] = []
    sampler = SystemSampler(lambda ts, m: calls.append((ts, m)), interval=0.1, nvidia_smi="/nonexistent")
    sampler.start()
    sampler.start()  # idempotent: still one thread
    time.sleep(0.65)
    sampler.stop()
    n = len(calls)
    assert 3 <= n <= 9, n  # about 7; loose for a loaded machine
    assert not any(t.name == "wandblite-system" for t in threading.enumerate())
    time.sleep(0.3)
    assert len(calls) == n  # nothing after stop
    stamps = [ts for ts, _ in calls]
    assert stamps == sorted(stamps)
    assert all("proc.memory.rssMB" in m for _, m in calls) or not LINUX
    sampler.stop()  # idempotent


def test_a_failing_sink_warns_once_and_sampling_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    calls = 0

    def full_disk(ts: float, m: dict) -> None:
        nonlocal calls
        calls += 1
        raise OSError(28, "No space left on device")

    sampler = SystemSampler(full_disk, interval=0.05, nvidia_smi="/nonexistent")
    sampler.start()
    time.sleep(0.4)
    sampler.stop()
    assert calls >= 3
    assert capsys.readouterr().err.count("wandblite: system metrics could not be recorded") == 1


# -- job context ----------------------------------------------------------------------------------


def _context_in_child(cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "import numpy\n"
        "from wandblite.system import job_context\n"
        "print(json.dumps(job_context()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--lr", "0.1"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_job_context_describes_the_process_and_its_slurm_job(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env.update(
        SLURM_JOB_ID="4242",
        SLURM_ARRAY_JOB_ID="4200",
        SLURM_ARRAY_TASK_ID="7",
        SLURM_JOB_NODELIST="gpu[01-02]",
        SLURM_RESTART_COUNT="2",
        SLURM_JOB_NAME="train",
        SLURM_PROCID="0",
        SLURM_NTASKS="2",
        CUDA_VISIBLE_DEVICES="0,1",
    )
    ctx = _context_in_child(tmp_path, env)
    assert ctx["slurm"] == {
        "job_id": "4242",
        "array_job_id": "4200",
        "array_task_id": "7",
        "job_nodelist": "gpu[01-02]",
        "restart_count": "2",
        "job_name": "train",
        "procid": "0",
        "ntasks": "2",
    }
    assert ctx["cuda_visible_devices"] == "0,1"
    assert ctx["args"] == ["-c", "--lr", "0.1"]
    assert Path(ctx["cwd"]).resolve() == tmp_path.resolve()
    assert ctx["pid"] > 0 and ctx["host"] and ctx["python"].count(".") == 2
    assert ctx["executable"] == sys.executable
    import numpy

    assert ctx["packages"]["numpy"] == numpy.__version__


def test_job_context_without_slurm_has_no_slurm_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM") and k != "CUDA_VISIBLE_DEVICES"}
    ctx = _context_in_child(tmp_path, env)
    assert "slurm" not in ctx and "cuda_visible_devices" not in ctx


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_job_context_reads_commit_branch_and_dirty_state(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sub = repo / "src"
    sub.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=trunk"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (sub / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], cwd=repo, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()

    clean = job_context(cwd=str(sub))["git"]
    assert clean == {"root": str(repo), "commit": head, "branch": "trunk", "dirty": False}
    (sub / "train.py").write_text("print(2)\n")
    assert job_context(cwd=str(sub))["git"]["dirty"] is True
    (sub / "train.py").write_text("print(1)\n")
    (sub / "untracked.txt").write_text("scratch")
    assert job_context(cwd=str(sub))["git"]["dirty"] is False  # untracked files do not make it dirty


def test_job_context_outside_a_repository_or_in_a_missing_directory_never_raises(tmp_path: Path) -> None:
    inside_a_repository = any((p / ".git").exists() for p in [tmp_path, *tmp_path.parents])
    if not inside_a_repository:
        assert "git" not in job_context(cwd=str(tmp_path))
    ctx = job_context(cwd=str(tmp_path / "does" / "not" / "exist"))
    assert ctx["pid"] == os.getpid()
