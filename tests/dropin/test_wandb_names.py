"""The wandb names public training code calls besides init/log: ``wandb.util``,
``wandb.errors.*``, ``termlog``/``termwarn``/``termerror``, ``mark_preempting``, ``log_code``,
``log_model``/``use_model``/``link_model``, ``Table.get_dataframe``, ``log({"chart": plt})``,
``Artifact.add`` and ``manifest.entries``, ``plot_table``. One test per pattern, each as a script
would write it under ``import wandb`` (the drop-in alias) where the import path matters."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import wandblite
from tests.conftest import run_script


def _alias_script(body: str, *args: str, cwd: Path | None = None) -> tuple[str, str]:
    """Run ``body`` in a fresh interpreter where ``import wandb`` is wandblite (the drop-in opt-in)."""
    code = "import wandblite.integrations\nwandblite.integrations.as_wandb()\n" + textwrap.dedent(body)
    env = {"WANDBLITE_CONSOLE": "off", "WANDBLITE_DISABLE_STATS": "1", "MPLBACKEND": "Agg"}
    proc = run_script(code, *args, env=env, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def test_wandb_util_generate_id_and_helpers() -> None:
    out, _ = _alias_script("""
        import json
        import numpy as np
        import wandb
        import wandb.util
        from wandb.util import generate_id
        ids = {generate_id() for _ in range(200)}
        print(json.dumps({
            "ids": sorted(ids), "len16": len(wandb.util.generate_id(16)),
            "safe": wandb.util.make_artifact_name_safe("my model/run:1 (best)"),
            "typename": wandb.util.get_full_typename(np.zeros(2)),
            "friendly": [wandb.util.json_friendly(np.float32(0.5)), wandb.util.json_friendly(b"ab")],
            "val": wandb.util.json_friendly_val({"a": np.int64(3), "s": slice(1, 4), "t": (1, {2})}),
            "missing": wandb.util.get_module("no_such_module_xyz"),
            "numpy": wandb.util.get_module("numpy").__name__,
            "human": [wandb.util.to_human_size(1234567), wandb.util.from_human_size("10MB")],
            "down": wandb.util.downsample(list(range(10)), 4),
        }))
    """)
    got = json.loads(out)
    assert len(got["ids"]) == 200 and all(re.fullmatch(r"[a-z0-9]{8}", i) for i in got["ids"])
    assert got["len16"] == 16
    assert got["safe"] == "my_model_run_1__best_"
    assert got["typename"] == "numpy.ndarray"
    assert got["friendly"] == [[0.5, True], ["ab", True]]
    assert got["val"] == {"a": 3, "s": {"slice_start": 1, "slice_step": None, "slice_stop": 4}, "t": [1, [2]]}
    assert got["missing"] is None and got["numpy"] == "numpy"
    assert got["human"] == ["1.2MB", 10_000_000]
    assert got["down"] == [0, 3, 6, 9]


def test_get_module_required_raises_wandb_error() -> None:
    with pytest.raises(wandblite.Error, match="please install it"):
        wandblite.util.get_module("no_such_module_xyz", required="please install it")


def test_wandb_errors_names_catch_as_in_wandb(tmp_path: Path) -> None:
    out, _ = _alias_script(cwd=tmp_path, body="""
        import wandb
        from wandb.errors import AuthenticationError, CommError, Error, UnsupportedError, UsageError
        caught = []
        try:
            raise CommError("server unreachable", exc=OSError("boom"))
        except wandb.Error as e:
            caught.append([type(e).__name__, e.message, str(e.exc)])
        for cls in (AuthenticationError, UnsupportedError):
            try:
                raise cls("x")
            except (CommError, UsageError) as e:
                caught.append(type(e).__name__)
        run = wandb.init(mode="offline", dir="runs")
        run.finish()
        try:
            run.log({"a": 1})
        except wandb.errors.UsageError:
            caught.append("usage")
        print(caught, issubclass(wandb.errors.Error, Exception), wandb.errors.Error is wandb.Error)
    """)
    assert out.strip() == ("[['CommError', 'server unreachable', 'boom'], 'AuthenticationError', 'UnsupportedError', "
                           "'usage'] True True")


def test_termlog_termwarn_termerror_go_to_stderr_as_wandb() -> None:
    out, err = _alias_script("""
        import wandb
        wandb.termlog("plain message")
        wandb.termwarn("careful")
        wandb.termerror("it failed")
        wandb.termlog("once", repeat=False)
        wandb.termlog("once", repeat=False)
        wandb.termlog("no prefix", prefix=False)
    """)
    assert out == ""
    assert "wandblite: plain message\n" in err
    assert "wandblite: WARNING careful\n" in err
    assert "wandblite: ERROR it failed\n" in err
    assert err.count("once") == 1
    assert "\nno prefix\n" in err


def test_mark_preempting_is_recorded_and_shown(runs_dir: Path) -> None:
    from wandblite.report import show_lines, show_record

    with pytest.raises(wandblite.Error, match=r"wandb\.init"):
        wandblite.mark_preempting()
    run = wandblite.init(dir=str(runs_dir), id="pre1")
    run.log({"loss": 1.0})
    wandblite.mark_preempting()
    run.finish()
    r = wandblite.replay(runs_dir / "pre1")
    assert isinstance(r.preempting, float) and r.created_at <= r.preempting <= r.ended_at
    assert any(line.startswith("preempt  marked preempting") for line in show_lines(r))
    assert show_record(r)["preempting"] == r.preempting
    plain = wandblite.init(dir=str(runs_dir), id="pre2")
    plain.finish()
    assert wandblite.replay(runs_dir / "pre2").preempting is None


def test_log_code_keeps_source_files_as_a_code_artifact(runs_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "proj"
    (src / "pkg").mkdir(parents=True)
    (src / "wandb").mkdir()
    (src / "train.py").write_text("print('train')\n")
    (src / "pkg" / "model.py").write_text("class M: pass\n")
    (src / "requirements.txt").write_text("torch\n")
    (src / "notes.md").write_text("not code\n")
    (src / "wandb" / "debug.py").write_text("excluded\n")
    run = wandblite.init(dir=str(runs_dir), id="code1", project="p")
    art = run.log_code(str(src))
    assert art.type == "code" and art.name.startswith("source-p-")
    assert sorted(art.files()) == ["pkg/model.py", "requirements.txt", "train.py"]
    only_md = run.log_code(str(src), name="docs", include_fn=lambda path: path.endswith(".md"))
    assert only_md.files() == ["notes.md"]
    run.finish()
    arts = wandblite.replay(runs_dir / "code1").artifacts
    assert [(a["name"], a["type"]) for a in arts] == [(art._base_name, "code"), ("docs", "code")]
    out = Path(art.download(tmp_path / "dl"))
    assert (out / "pkg" / "model.py").read_text() == "class M: pass\n"


def test_log_code_with_nothing_to_keep_warns_and_returns_none(runs_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    run = wandblite.init(dir=str(runs_dir), id="code2")
    assert run.log_code(str(tmp_path / "empty")) is None
    assert "No relevant files were detected" in capsys.readouterr().err


def test_log_model_use_model_and_link_model(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # use_model downloads under ./artifacts, as wandb does
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"\x00weights\x01")
    run = wandblite.init(dir=str(runs_dir), id="m1")
    assert run.log_model(str(weights), name="my-model", aliases=["best"]) is None
    path = run.use_model("my-model:best")
    assert Path(path).name == "model.pt" and Path(path).read_bytes() == b"\x00weights\x01"
    assert Path(path).resolve() == (tmp_path / "artifacts" / "my-model:v0" / "model.pt").resolve()
    linked = run.link_model(str(weights), "registered-model", aliases=["staging"])
    assert linked.name == "registered-model:v0" and "staging" in linked.aliases
    assert capsys.readouterr().err.count("model registry is in its cloud") == 1
    run.log_artifact(str(weights), name="not-a-model", type="dataset")
    with pytest.raises(AssertionError, match="'model' artifacts"):
        run.use_model("not-a-model:latest")
    run.finish()
    rec = wandblite.replay(runs_dir / "m1")
    names = [(a["name"], a["type"]) for a in rec.artifacts]
    assert ("my-model", "model") in names and ("registered-model", "model") in names
    assert ("run-m1-model.pt", "model") in names  # link_model's default name: wandb's run-<id>-<basename>
    assert [u["name"] for u in rec.uses] == ["my-model", "not-a-model"]  # used, then refused, as in wandb


def test_module_level_model_calls_need_a_run() -> None:
    for fn, args in ((wandblite.log_model, ("x",)), (wandblite.use_model, ("x",)),
                     (wandblite.link_model, ("x", "y"))):
        with pytest.raises(wandblite.Error, match=r"wandb\.init"):
            fn(*args)


def test_table_get_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    t = wandblite.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]])
    df = t.get_dataframe()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["a", "b"] and df["a"].tolist() == [1, 2] and df["b"].tolist() == ["x", "y"]
    assert wandblite.Table(columns=["c"]).get_dataframe().shape == (0, 1)


def test_log_the_pyplot_module_logs_its_current_figure(runs_dir: Path) -> None:
    _alias_script("""
        import sys
        import matplotlib.pyplot as plt
        import wandb
        run = wandb.init(dir=sys.argv[1], id="plt1")
        plt.figure(figsize=(4, 3), dpi=50)
        plt.plot([1, 2, 3], [3, 1, 2])
        wandb.log({"chart": plt})
        run.finish()
    """, str(runs_dir))
    rows = list(wandblite.replay(runs_dir / "plt1").scan_history())
    img = rows[0]["chart"]
    assert img["_type"] == "image-file" and (img["width"], img["height"]) == (200, 150)


def test_artifact_add_a_table_and_manifest_entries(runs_dir: Path, tmp_path: Path) -> None:
    table = wandblite.Table(columns=["x", "img"], data=[[1, wandblite.Image(np.zeros((4, 4, 3), np.uint8))],
                                                        [2, wandblite.Image(np.full((4, 4, 3), 255, np.uint8))]])
    art = wandblite.Artifact("preds", type="predictions")
    entry = art.add(table, "val_table")
    assert entry.path == "val_table.table.json"
    before = art.manifest.entries
    assert "val_table.table.json" in before and before["val_table.table.json"].local_path is not None
    media = [p for p in before if p.startswith("media/")]
    assert len(media) == 2 and all(p.endswith(".png") for p in media)
    run = wandblite.init(dir=str(runs_dir), id="art1")
    run.log_artifact(art)
    run.finish()
    entries = art.manifest.entries
    assert set(entries) == {"val_table.table.json", *media}
    e = entries["val_table.table.json"]
    assert e.size == os.path.getsize(Path(art.download(tmp_path / "dl")) / "val_table.table.json")
    assert e.digest == art.manifest["val_table.table.json"]["sha256"]
    doc = json.loads((tmp_path / "dl" / "val_table.table.json").read_text())
    assert doc["columns"] == ["x", "img"] and [r[0] for r in doc["data"]] == [1, 2]
    assert {r[1]["path"] for r in doc["data"]} == set(media)
    back = art.get("val_table")
    assert isinstance(back, wandblite.Table) and back.columns == ["x", "img"] and back.get_column("x") == [1, 2]
    with pytest.raises(ValueError, match="add_file"):
        wandblite.Artifact("x", "t").add("not a data type", "n")


def test_plot_table_builtin_spec_and_custom_spec(runs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = wandblite.Table(columns=["step", "v"], data=[[0, 1.0], [1, 0.5]])
    line = wandblite.plot_table("wandb/line/v0", t, {"x": "step", "y": "v"}, {"title": "Loss"})
    custom = wandblite.plot_table("my-team/fancy/v3", t, {"x": "step", "y": "v"})
    assert "stored in W&B's cloud" in capsys.readouterr().err
    run = wandblite.init(dir=str(runs_dir), id="pt1")
    run.log({"line": line, "fancy": custom})
    run.finish()
    row = next(iter(wandblite.replay(runs_dir / "pt1").scan_history()))
    assert row["line"]["kind"] == "line" and row["line"]["fields"] == {"x": "step", "y": "v"}
    assert row["line"]["title"] == "Loss"
    assert row["fancy"]["kind"] == "custom" and row["fancy"]["string_fields"] == {"vega_spec": "my-team/fancy/v3"}
    assert row["fancy"].open() == {"columns": ["step", "v"], "data": [[0, 1.0], [1, 0.5]]}


def test_artifact_add_an_image_keeps_its_json_and_its_png(runs_dir: Path, tmp_path: Path) -> None:
    art = wandblite.Artifact("samples", type="dataset")
    art.add(wandblite.Image(np.full((5, 7, 3), 200, np.uint8), caption="grey"), "first")
    paths = sorted(art.manifest.entries)
    assert paths[0] == "first.image-file.json" and paths[1].startswith("media/") and paths[1].endswith(".png")
    run = wandblite.init(dir=str(runs_dir), id="art2")
    run.log_artifact(art)
    run.finish()
    doc = art.get("first")
    assert doc["_type"] == "image-file" and doc["caption"] == "grey" and doc["path"] == paths[1]
    out = Path(art.download(tmp_path / "dl"))
    from PIL import Image as PILImage

    assert PILImage.open(out / paths[1]).size == (7, 5)
