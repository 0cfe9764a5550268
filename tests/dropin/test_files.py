"""``wandblite.save`` / ``run.save``: files kept under the run's ``files/``, listed by ``replay(...).files``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import wandblite


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def _kept(run_dir: Path, name: str) -> bytes:
    entry = wandblite.replay(run_dir).files[name]
    return (run_dir / entry["path"]).read_bytes()


def test_policy_now_copies_at_once_with_size_and_sha(workdir: Path, runs_dir: Path) -> None:
    (workdir / "ckpt").mkdir()
    (workdir / "ckpt" / "a.pt").write_bytes(b"first")
    run = wandblite.init(dir=str(runs_dir), id="f1")
    kept = wandblite.save("ckpt/*.pt", policy="now")
    assert kept == [str(runs_dir / "f1" / "files" / "ckpt" / "a.pt")]
    (workdir / "ckpt" / "a.pt").write_bytes(b"changed later")  # "now" keeps the version at save time
    run.finish()
    files = wandblite.replay(runs_dir / "f1").files
    assert files["ckpt/a.pt"] == {"name": "ckpt/a.pt", "path": "files/ckpt/a.pt", "size": 5,
                                  "sha256": hashlib.sha256(b"first").hexdigest(), "policy": "now"}
    assert _kept(runs_dir / "f1", "ckpt/a.pt") == b"first"


def test_policy_live_keeps_the_last_version_at_finish(workdir: Path, runs_dir: Path) -> None:
    (workdir / "log.txt").write_text("v1")
    run = wandblite.init(dir=str(runs_dir), id="f2")
    run.save("log.txt")  # live is the default
    assert _kept(runs_dir / "f2", "log.txt") == b"v1"  # a crash from here on keeps v1
    (workdir / "log.txt").write_text("v2, longer")
    (workdir / "log2.txt").write_text("appeared later")  # not matched by the glob
    wandblite.finish()
    assert _kept(runs_dir / "f2", "log.txt") == b"v2, longer"
    files = wandblite.replay(runs_dir / "f2").files
    assert set(files) == {"log.txt"} and files["log.txt"]["size"] == 10


def test_policy_end_copies_files_that_exist_at_finish(workdir: Path, runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="f3")
    assert run.save("out/*.json", policy="end") == []
    assert wandblite.replay(runs_dir / "f3").files == {}
    (workdir / "out").mkdir()
    (workdir / "out" / "metrics.json").write_text("{}")
    with run:
        pass
    assert _kept(runs_dir / "f3", "out/metrics.json") == b"{}"
    assert wandblite.replay(runs_dir / "f3").files["out/metrics.json"]["policy"] == "end"


def test_absolute_glob_is_named_relative_to_its_directory_and_base_path_is_honoured(
    tmp_path: Path, runs_dir: Path
) -> None:
    src = tmp_path / "elsewhere" / "sub"
    src.mkdir(parents=True)
    (src / "w.bin").write_bytes(b"w")
    run = wandblite.init(dir=str(runs_dir), id="f4")
    run.save(str(src / "*.bin"), policy="now")
    run.save(str(src / "w.bin"), base_path=str(tmp_path / "elsewhere"), policy="now")
    run.finish()
    assert set(wandblite.replay(runs_dir / "f4").files) == {"w.bin", "sub/w.bin"}


def test_file_already_in_run_dir_is_recorded_not_copied(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(runs_dir.parent)
    run = wandblite.init(dir=str(runs_dir), id="f5")
    Path(run.dir, "model.h5").write_bytes(b"h5")
    run.save(str(Path(run.dir) / "model.h5"), policy="now")
    Path(run.dir, "sub").mkdir()
    Path(run.dir, "sub", "b.txt").write_bytes(b"b")
    run.save(os.path.relpath(Path(run.dir) / "sub" / "*.txt"), policy="now")  # a relative spelling
    run.finish()
    assert _kept(runs_dir / "f5", "model.h5") == b"h5"
    assert set(wandblite.replay(runs_dir / "f5").files) == {"model.h5", "sub/b.txt"}
    assert sorted(p.name for p in (runs_dir / "f5" / "files").rglob("*")) == ["b.txt", "model.h5", "sub"]


def test_glob_above_base_path_and_bad_policy_raise(workdir: Path, runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="f6")
    with pytest.raises(ValueError, match="above base_path"):
        run.save("../x.txt", base_path=".")
    with pytest.raises(ValueError, match="policy"):
        run.save("x.txt", policy="sometimes")
    with pytest.raises(ValueError, match="URL"):
        run.save("s3://bucket/x.txt")


def test_save_before_init_is_wandbs_preinit_error() -> None:
    with pytest.raises(wandblite.Error, match=r"before wandb\.save\(\)"):
        wandblite.save("*.pt")
