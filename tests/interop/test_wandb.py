"""``sync --to wandb``: runs replayed into wandb OFFLINE, read back from the ``.wandb`` transaction log.

The transaction log is decoded with the wandb package's own ``wandb_internal_pb2.Record`` (see
``wandb_log.py``); what wandb recorded must equal wandblite's replay of the same run: history rows
(steps and values), summary, config, and the run's metadata, console and exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import wandblite
from tests.interop import wandb_log
from tests.interop.conftest import CrashThenResume, need, sync_cli
from wandblite.interop.common import user_summary
from wandblite.interop.wandb_target import WandbTarget, sync_run


def _logfile(res: Any) -> Path:
    files = sorted(Path(res.remote_id).glob("run-*.wandb"))
    assert len(files) == 1, res.remote_id
    return files[0]


def _comparable(v: Any) -> Any:
    """Media compared by what survives a re-encode (type, size, caption); histograms whole."""
    if hasattr(v, "keys") and "_type" in v:
        t = v["_type"]
        if t == "histogram":
            return {"_type": t, "values": list(v["values"]), "bins": [float(b) for b in v["bins"]]}
        keep = {"image-file": ("width", "height", "caption"), "table-file": ("ncols", "nrows")}.get(t, ())
        return {"_type": t, **{k: v[k] for k in keep if k in v}}
    if isinstance(v, dict):
        return {k: _comparable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_comparable(x) for x in v]
    return v


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_comparable({k: v for k, v in row.items() if k != "_runtime"}) for row in rows]


def _assert_same_as_replay(res: Any, run_dir: Path, held_back: int = 0) -> dict[str, Any]:
    """W&B holds what the replay shows, but for the last ``held_back`` rows (a crashed run's pending row)."""
    got = wandb_log.read_run(_logfile(res))
    r = wandblite.replay(run_dir)
    rows = list(r.scan_history())
    assert _rows(got["history"]) == _rows(rows[:len(rows) - held_back])
    assert {k: v for k, v in got["config"].items() if k != "_wandb"} == r.config
    want_summary = _comparable(user_summary(r.summary))
    got_summary = _comparable({k: v for k, v in got["summary"].items() if not k.startswith("_")})
    assert got_summary == want_summary
    assert got["meta"]["id"] == r.id
    return got


def test_scalar_run_history_summary_config_and_metadata(wandb_offline: Path,
                                                         make_scalar_run: Callable[..., Path]) -> None:
    run_dir = make_scalar_run()
    res = sync_run(run_dir, WandbTarget())
    assert res.status == "synced", res.message
    got = _assert_same_as_replay(res, run_dir)
    r = wandblite.replay(run_dir)
    assert got["meta"] == {"id": r.id, "name": r.name, "project": "proj", "tags": r.tags, "notes": r.notes,
                           "group": "grp", "job_type": "train"}
    assert got["summary"]["loss"] == r.summary["loss"]  # the define_metric min/max dict
    assert [m.name for m in got["metrics"]] == ["loss"]
    assert got["exit_code"] == 0
    assert [(line, ts) for _t, line, ts in got["console"]] == [(text, pytest.approx(ts)) for ts, _s, text in r.console()]
    assert [row["_timestamp"] for row in got["history"]] == [row["_timestamp"] for row in r.scan_history()]


def test_explicit_steps_and_commit_false_keep_every_step(wandb_offline: Path,
                                                          make_step_run: Callable[..., Path]) -> None:
    run_dir = make_step_run()
    res = sync_run(run_dir, WandbTarget())
    assert res.ok, res.message
    got = _assert_same_as_replay(res, run_dir)
    assert [row["_step"] for row in got["history"]] == [0, 5, 7, 8, 20]


def test_crashed_run_holds_back_its_provisional_row_and_ends_with_exit_code_1(
        wandb_offline: Path, make_crashed_run: Callable[..., Path]) -> None:
    run_dir = make_crashed_run()
    res = sync_run(run_dir, WandbTarget())
    assert res.ok and res.state == "crashed" and res.rows == 10, res.message
    last = list(wandblite.replay(run_dir).scan_history())[-1]
    assert (last["_step"], last["partial"]) == (10, 1.0)  # replay flushes the pending row at its step ...
    got = _assert_same_as_replay(res, run_dir, held_back=1)  # ... a step W&B does not get until it is final
    assert [row["_step"] for row in got["history"]] == list(range(10))
    assert got["summary"]["partial"] == 1.0  # its values are in the summary, as every last value
    assert got["summary"]["_wandblite"] == {"state": "crashed", "pending_step": 10}
    assert got["exit_code"] == 1


def test_a_crashed_then_resumed_run_reaches_wandb_once_per_step_with_its_final_values(
        wandb_offline: Path, crash_then_resume: CrashThenResume) -> None:
    """The crashed attempt's pending row is continued by the resume (a value changed, one added):
    across the two offline runs W&B wrote, every step is logged exactly once, with its final values."""
    run_dir = crash_then_resume.crash()
    [first] = sync_cli(str(run_dir.parent), "--to", "wandb")
    assert (first["status"], first["state"], first["rows"]) == ("synced", "crashed", 5), first
    got1 = wandb_log.read_run(_logfile(SimpleNamespace(**first)))
    assert [row["_step"] for row in got1["history"]] == [0, 1, 2, 3, 4]
    assert (got1["summary"]["partial"], got1["summary"]["nested"]["w"]) == (1.0, 1.0)
    assert got1["summary"]["_wandblite"] == {"state": "crashed", "pending_step": 5} and got1["exit_code"] == 1

    crash_then_resume.resume()
    [second] = sync_cli(str(run_dir.parent), "--to", "wandb")
    assert (second["status"], second["state"], second["rows"]) == ("synced", "finished", 3), second
    assert second["remote_id"] != first["remote_id"]  # offline, each pass is its own file for `wandb sync`
    got2 = wandb_log.read_run(_logfile(SimpleNamespace(**second)))
    history = got1["history"] + got2["history"]
    assert [row["_step"] for row in history] == list(range(8))  # every step exactly once
    final = list(wandblite.replay(run_dir).scan_history())
    assert _rows(history) == _rows(final)  # with the final values: step 5 is {partial: 1.5, more: 2, nested.w: 1}
    assert got2["summary"]["_wandblite"] == {"state": "finished"} and got2["exit_code"] == 0
    assert (got2["summary"]["partial"], got2["summary"]["more"]) == (1.5, 2.0)
    [third] = sync_cli(str(run_dir.parent), "--to", "wandb")
    assert third["status"] == "unchanged"


def test_images_histogram_and_table_become_wandb_media(wandb_offline: Path,
                                                        make_media_run: Callable[..., Path]) -> None:
    run_dir = make_media_run()
    res = sync_run(run_dir, WandbTarget())
    assert res.ok, res.message
    got = _assert_same_as_replay(res, run_dir)
    files_dir = Path(res.remote_id) / "files"
    import numpy as np
    from PIL import Image as PILImage

    rows = list(wandblite.replay(run_dir).scan_history())
    for mine, theirs in zip(rows[:3], got["history"][:3]):
        stored = np.asarray(PILImage.open(files_dir / theirs["img"]["path"]))
        assert np.array_equal(stored, np.asarray(mine["img"].open()))  # same pixels after the re-encode
    table = json.loads((files_dir / got["history"][3]["table"]["path"]).read_text())
    assert table == {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}


def test_second_sync_sends_nothing_and_a_running_run_waits_for_its_end(
        wandb_offline: Path, make_scalar_run: Callable[..., Path], live_run: Callable[..., Any]) -> None:
    run_dir = make_scalar_run(rows=4)
    assert sync_run(run_dir, WandbTarget()).status == "synced"
    again = sync_run(run_dir, WandbTarget())
    assert again.status == "unchanged"
    assert len(list((wandb_offline / "wandb").glob("offline-run-*"))) == 1  # no second wandb run
    lr = live_run("live-wb")
    res = sync_run(lr.path, WandbTarget())
    assert res.status == "skipped" and "still being written (running)" in res.message
    lr.release()
    res = sync_run(lr.path, WandbTarget())
    assert res.status == "synced" and res.rows == 6
    _assert_same_as_replay(res, lr.path)


def test_a_resumed_wandblite_run_sends_only_the_new_rows(wandb_offline: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = wandblite.init(project="proj", id="grow1", dir=str(root), reinit=True)
    for i in range(3):
        run.log({"x": i})
    run.finish()
    first = sync_run(root / "grow1", WandbTarget())
    run = wandblite.init(project="proj", id="grow1", dir=str(root), reinit=True, resume="allow")
    for i in range(3, 5):
        run.log({"x": i})
    run.finish()
    second = sync_run(root / "grow1", WandbTarget())
    assert second.ok and second.rows == 2, second.message
    h1 = wandb_log.read_run(_logfile(first))["history"]
    h2 = wandb_log.read_run(_logfile(second))["history"]
    assert [(r["_step"], r["x"]) for r in h1 + h2] == [(i, i) for i in range(5)]


def test_unreachable_server_and_missing_package_are_clear_errors(
        make_scalar_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    need("wandb")
    run_dir = make_scalar_run(rows=2)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    res = sync_run(run_dir, WandbTarget())
    assert res.line() == ("run scalar1: cannot reach W&B at http://127.0.0.1:1 (connection refused); "
                          "start the W&B server or fix WANDB_BASE_URL")
    monkeypatch.setitem(sys.modules, "wandb", None)
    res = sync_run(run_dir, WandbTarget())
    assert not res.ok and "the wandb package is not installed" in res.message and "pip install wandb" in res.message


def test_a_watched_model_graph_becomes_a_wandb_graph_in_the_summary(wandb_offline: Path, tmp_path: Path) -> None:
    from wandblite.data_types import Graph

    run = wandblite.init(project="proj", id="graph1", dir=str(tmp_path / "runs"), reinit=True)
    run.log({"loss": 1.0})
    graph = Graph(format="torch")
    graph.add_node(name="", class_name="Net", parameters=[], num_parameters=0, output_shape=[[2, 1]])
    graph.add_node(name="fc", class_name="Linear", parameters=[["weight", [1, 4]], ["bias", [1]]],
                   num_parameters=5, output_shape=[[2, 1]])
    graph.add_edge(0, 1)
    run.summary["graph_0"] = graph  # what watch(log_graph=True) records
    run.finish()
    res = sync_run(run.dir, WandbTarget())
    assert res.ok, res.message
    got = _assert_same_as_replay(res, Path(run.dir))
    value = got["summary"]["graph_0"]
    assert value["_type"] == "graph-file"
    doc = json.loads((Path(res.remote_id) / "files" / value["path"]).read_text())
    assert doc["format"] == "torch" and doc["edges"] == [[0, 1]]
    assert [(n["name"], n["class_name"], n["num_parameters"]) for n in doc["nodes"]] == [("", "Net", 0), ("fc", "Linear", 5)]
    assert doc["nodes"][1]["parameters"] == [["weight", [1, 4]], ["bias", [1]]]


def test_molecules_of_every_format_become_wandb_molecules(wandb_offline: Path, tmp_path: Path) -> None:
    from tests.media.molecule_files import ELEMENTS, write_molecule_files
    from wandblite.data_types.molecule import read_structure

    files = write_molecule_files(tmp_path / "molecules")
    run = wandblite.init(project="p", id="mols", dir=str(tmp_path / "runs"),
                         settings=wandblite.Settings(quiet=True, console="off", disable_stats=True))
    run.log({f"mol/{fmt}": wandblite.Molecule(str(path), caption=fmt) for fmt, path in files.items()})
    run.log({"gallery": [wandblite.Molecule(str(files["sdf"])), wandblite.Molecule(str(files["xyz"]))]})
    run.finish()
    run_dir = tmp_path / "runs" / "mols"
    res = sync_run(run_dir, WandbTarget())
    assert res.ok, res.message
    got = _assert_same_as_replay(res, run_dir)
    files_dir = Path(res.remote_id) / "files"
    first, second = got["history"]
    for fmt, path in files.items():
        v = first[f"mol/{fmt}"]
        assert v["_type"] == "molecule-file" and v["path"].startswith("media/molecule/"), v
        stored = files_dir / v["path"]
        if fmt in ("mol", "xyz"):  # not wandb types: the same atoms and bonds as PDB
            assert stored.suffix == ".pdb"
            s = read_structure(stored.read_bytes(), "pdb")
            assert s["elements"] == ELEMENTS and s["bonds"] == [[0, 1], [0, 2]] and not s["guessed"]
        else:
            assert stored.suffix == "." + fmt and stored.read_bytes() == path.read_bytes()
    gallery = second["gallery"]
    assert gallery["_type"] == "molecule" and gallery["count"] == 2
    assert [(files_dir / p).suffix for p in gallery["filenames"]] == [".sdf", ".pdb"]
