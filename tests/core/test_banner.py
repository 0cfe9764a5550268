"""The lines wandb users look for: the run's banner at ``init`` and ``finish``, on stderr only.

Each test runs a real training script in a fresh interpreter, so what it checks is what a job log
shows: stderr carries ``wandblite:`` lines, stdout carries only what the script printed. Also here:
a clean finish leaves no ``.lock`` in the run directory (a live run has one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import wandblite
from tests.conftest import run_script
from wandblite import events as ev
from wandblite.runfile import read_events
from wandblite.term import summary_lines

SCRIPT = """
import json, os, sys
import wandblite
settings = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
run = wandblite.init(project="banner", name="brave-run", id="bnr1", dir=sys.argv[1],
                     settings=wandblite.Settings(**settings) if settings else None)
print("lock while running:", os.path.exists(os.path.join(run.path, ".lock")))
for i in range(3):
    run.log({"loss": 1 / (i + 1), "acc": i / 3, "img_count": i})
run.summary["best_loss"] = 0.333333333
run.summary["tag"] = "a string that is longer than twenty characters"
run.summary["nested"] = {"a": 1}
run.finish(quiet=os.environ.get("FINISH_QUIET") == "1")
print("done")
"""


def _run(runs_dir: Path, env: dict[str, str] | None = None, settings: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    args = [str(runs_dir)] + ([json.dumps(settings)] if settings else [])
    r = run_script(SCRIPT, *args, env=env)
    assert r.returncode == 0, r.stderr
    return r


def test_banner_at_init_and_finish_is_on_stderr_and_stdout_is_untouched(runs_dir: Path) -> None:
    r = _run(runs_dir)
    assert r.stdout == "lock while running: True\ndone\n"
    lines = r.stderr.splitlines()
    assert lines and all(line.startswith("wandblite: ") for line in lines), r.stderr
    run_dir = runs_dir / "bnr1"
    init_line, where = lines[0], lines[1]
    assert "brave-run" in init_line and "bnr1" in init_line and "banner" in init_line
    assert str(run_dir) in where
    assert lines[-2] == f"wandblite: run brave-run (id bnr1) finished; its files are in {run_dir}"
    assert lines[-1] == f"wandblite: sync it with: wandblite sync {run_dir}"
    summary = lines[2:-2]
    assert summary == [
        "wandblite: Run summary:",
        "wandblite:         acc 0.666667",
        "wandblite:   best_loss 0.333333",
        "wandblite:   img_count 2",
        "wandblite:        loss 0.333333",
        "wandblite:         tag a string that is lon...",
    ]


def test_no_lock_file_after_a_clean_finish(runs_dir: Path) -> None:
    _run(runs_dir)
    assert not (runs_dir / "bnr1" / ".lock").exists()
    assert wandblite.replay(runs_dir / "bnr1").state == "finished"


def test_resume_after_a_clean_finish_takes_the_lock_again(runs_dir: Path) -> None:
    _run(runs_dir)
    run = wandblite.init(id="bnr1", dir=str(runs_dir), resume="allow", settings=wandblite.Settings(quiet=True))
    assert (runs_dir / "bnr1" / ".lock").exists()
    run.log({"loss": 0.1})
    run.finish()
    assert not (runs_dir / "bnr1" / ".lock").exists()
    assert wandblite.replay(runs_dir / "bnr1").summary["loss"] == 0.1


@pytest.mark.parametrize("env, settings", [
    ({"WANDBLITE_SILENT": "1"}, None),
    ({"WANDB_SILENT": "true"}, None),
    ({"WANDBLITE_QUIET": "1"}, None),
    ({"WANDB_QUIET": "true"}, None),
    (None, {"quiet": True}),
    (None, {"silent": True}),
], ids=["WANDBLITE_SILENT", "WANDB_SILENT", "WANDBLITE_QUIET", "WANDB_QUIET", "settings.quiet", "settings.silent"])
def test_each_silencing_switch_hides_the_whole_banner(runs_dir: Path, env: dict[str, str] | None,
                                                      settings: dict[str, object] | None) -> None:
    r = _run(runs_dir, env=env, settings=settings)
    assert r.stderr == ""
    assert r.stdout == "lock while running: True\ndone\n"
    assert not (runs_dir / "bnr1" / ".lock").exists()


def test_finish_quiet_hides_the_finish_lines_only(runs_dir: Path) -> None:
    r = _run(runs_dir, env={"FINISH_QUIET": "1"})
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and "bnr1" in lines[0], r.stderr
    assert not any("sync" in line or "summary" in line for line in lines)


def test_banner_is_not_recorded_as_the_runs_console_output(runs_dir: Path) -> None:
    _run(runs_dir)
    console = "".join(e.data[2] for e in read_events(runs_dir / "bnr1", kinds=frozenset({ev.CONSOLE})))
    assert console == "lock while running: True\n"  # "done" comes after finish


def test_a_closed_stderr_does_not_break_init_or_finish(runs_dir: Path) -> None:
    r = run_script("""
        import sys
        import wandblite
        sys.stderr.close()
        run = wandblite.init(id="closed", dir=sys.argv[1])
        run.log({"x": 1})
        run.finish()
        print("ok")
    """, str(runs_dir))
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert wandblite.replay(runs_dir / "closed").state == "finished"


def test_summary_lines_show_at_most_ten_scalar_keys_then_the_rest_counted() -> None:
    summary = {f"k{i:02d}": i * 1.0 for i in range(13)} | {"_step": 3, "media": {"_type": "image-file"}}
    lines = summary_lines(summary)
    assert lines[0] == "Run summary:"
    assert lines[1:11] == [f"  k{i:02d} {float(i):.6g}" for i in range(10)]
    assert lines[11] == "   +3 ..."
    assert summary_lines({"_runtime": 1.0, "img": {"_type": "image-file"}}) == []


def test_a_writer_that_locked_a_removed_lock_file_starts_over_on_a_fresh_one(runs_dir: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from wandblite.runfile import RunLock, probe_writer

    lock = RunLock(runs_dir)
    real_lock_once = RunLock._lock_once
    calls: list[int] = []

    def lock_then_lose_the_file(self: RunLock) -> int:
        fd = real_lock_once(self)
        if not calls:  # a clean finish unlinked .lock between our open and our flock
            self.path.unlink()
        calls.append(fd)
        return fd

    monkeypatch.setattr(RunLock, "_lock_once", lock_then_lose_the_file)
    lock.acquire()
    assert len(calls) == 2
    assert lock.fd is not None and os.path.samestat(os.fstat(lock.fd), os.stat(lock.path))
    assert probe_writer(runs_dir) is True
    lock.release(remove=True)
    assert not lock.path.exists() and probe_writer(runs_dir) is False
