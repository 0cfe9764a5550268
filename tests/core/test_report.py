"""``wandblite.report`` without the CLI: what ``ls``, ``show`` and ``verify`` say, as values and lines a
notebook or the server can use (no click, nothing printed)."""

from __future__ import annotations

import json
from pathlib import Path

import wandblite
from tests.conftest import run_script
from wandblite import report
from wandblite.replay import Replay


def _crashed_run(runs_dir: Path) -> Path:
    proc = run_script(f"""
        import os, wandblite
        run = wandblite.init(project="p", name="crash", id="dies", dir={str(runs_dir)!r})
        for i in range(3):
            run.log({{"loss": float(i)}})
        print("the last words", flush=True)
        os._exit(9)
    """)
    assert proc.returncode == 9, proc.stderr
    return runs_dir / "dies"


def test_crash_report_says_when_the_run_was_last_alive_and_its_last_console_lines(runs_dir: Path) -> None:
    r = Replay(_crashed_run(runs_dir))
    assert r.state == "crashed"
    lines = list(report.crash_report(r, now=r.last_alive + 7200))
    assert lines[0].startswith("last alive  ") and lines[0].endswith("(2.0h ago), last step 2")
    assert lines[-2:] == ["last console lines:", "    the last words"]
    text = list(report.show_lines(r, nrows=1, now=r.last_alive + 7200))
    assert text[text.index("") + 1:][:len(lines)] == lines  # the crash report follows the identity block
    assert text[-2] == "last 1 rows" and text[-1].startswith("  loss=2, ")


def test_listing_table_aligns_columns_and_marks_nothing_for_a_sound_run(runs_dir: Path) -> None:
    run = wandblite.init(project="proj", name="a-rather-long-name", id="r1", dir=str(runs_dir))
    run.log({"x": 1})
    run.finish()
    r = Replay(runs_dir / "r1")
    header, line = report.listing_table([r], now=r.last_alive + 90)
    assert header.split() == ["ID", "NAME", "PROJECT", "STATE", "STEPS", "LAST", "WRITE", "PATH"]
    assert line.index("a-rather-long-name") == header.index("NAME")
    assert line.index("finished") == header.index("STATE") and "2m ago" in line
    assert report.listing_record(r)["damaged"] is False


def test_show_record_is_extended_json_with_nan_kept(runs_dir: Path) -> None:
    run = wandblite.init(project="proj", id="r2", dir=str(runs_dir), config={"lr": 0.5})
    run.log({"loss": float("nan")})
    run.alert(title="t", text="one")
    run.alert(title="t", text="two")
    run.finish()
    rec = report.show_record(Replay(runs_dir / "r2"), nrows=3)
    assert [a["throttled"] for a in rec["alerts"]] == [False, True]
    text = report.dumps(rec)
    assert '"loss": NaN' in text and json.loads(text)["config"] == {"lr": 0.5}


def test_verify_report_of_a_sound_run_is_ok_and_its_lines_end_in_ok(runs_dir: Path) -> None:
    run = wandblite.init(project="proj", id="r3", dir=str(runs_dir))
    run.log({"x": 1})
    run.finish()
    r = Replay(runs_dir / "r3")
    rep = report.verify_report(r)
    assert rep["ok"] is True and rep["damage"] == [] and rep["records"] > 0
    assert list(report.verify_lines(r, rep))[-1] == "ok"
