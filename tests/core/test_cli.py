"""The ``wandblite`` command on real run directories, through click's runner and a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from wandblite_cli.main import cli

import wandblite


@pytest.fixture
def finished_run(runs_dir: Path) -> Path:
    run = wandblite.init(project="proj", name="first", id="run1", dir=str(runs_dir), config={"lr": 0.1})
    for i in range(10):
        run.log({"loss": 1.0 / (i + 1), "acc": {"train": i / 10}})
    run.finish()
    return runs_dir / "run1"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_ls_lists_runs_with_state_and_steps(finished_run: Path) -> None:
    code, out = invoke("ls", str(finished_run.parent))
    assert code == 0
    assert "run1" in out and "first" in out and "finished" in out and " 10 " in out
    code, out = invoke("ls", str(finished_run.parent), "--json")
    rec = json.loads(out.splitlines()[0])
    assert rec["id"] == "run1" and rec["state"] == "finished" and rec["rows"] == 10


def test_show_prints_config_summary_and_last_rows(finished_run: Path) -> None:
    code, out = invoke("show", str(finished_run))
    assert code == 0
    assert "state    finished (exit code 0)" in out
    assert "lr: 0.1" in out and "loss: 0.1" in out and "acc.train=0.9" in out
    code, out = invoke("show", str(finished_run), "--json")
    data = json.loads(out)
    assert data["summary"]["loss"] == 0.1 and data["config"] == {"lr": 0.1}
    assert len(data["last_rows"]) == 5


def test_verify_ok_then_damaged_exits_1_and_repair_writes_a_clean_copy(finished_run: Path) -> None:
    code, out = invoke("verify", str(finished_run))
    assert code == 0 and out.strip().endswith("ok")
    seg = finished_run / "events-000.wlr"
    data = bytearray(seg.read_bytes())
    data[200] ^= 0xFF
    seg.write_bytes(bytes(data))
    code, out = invoke("verify", str(finished_run), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["damage"] and report["damage"][0]["offset"] <= 200
    code, out = invoke("verify", str(finished_run), "--repair")
    assert code == 1 and "clean copy written to" in out
    repaired = finished_run.with_name("run1.repaired")
    assert invoke("verify", str(repaired))[0] == 0
    assert seg.read_bytes() == bytes(data)  # never repaired in place
    assert wandblite.replay(repaired).damage == []


def test_export_csv_and_jsonl(finished_run: Path, tmp_path: Path) -> None:
    code, out = invoke("export", str(finished_run), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 10 and rows[0]["acc.train"] == "0.0" and rows[9]["_step"] == "9"
    out_file = tmp_path / "h.jsonl"
    code, _ = invoke("export", str(finished_run), "--format", "jsonl", "--out", str(out_file))
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert [x["_step"] for x in lines] == list(range(10)) and lines[3]["acc"] == {"train": 0.3}


def test_missing_path_is_a_usage_error_and_not_a_run_is_one_line(tmp_path: Path) -> None:
    assert invoke("show", str(tmp_path / "nope"))[0] == 2
    code, out = invoke("show", str(tmp_path))
    assert code == 1 and "not a wandblite run directory" in out


def test_help_is_fast_and_lists_commands() -> None:
    res = subprocess.run([sys.executable, "-c", "import sys; from wandblite_cli.main import cli; "
                          "sys.argv=['wandblite','--help']; "
                          "import importlib; cli(standalone_mode=False); "
                          "print('LOADED', [m for m in ('wandblite_cli.runs','wandblite.replay') if m in sys.modules])"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "show" in res.stdout and "verify" in res.stdout
    assert "LOADED []" in res.stdout  # subcommands load lazily
