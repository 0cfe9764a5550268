"""Artifacts offline: content-addressed in the run dir, versions by digest, aliases, use and download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import wandblite
from wandblite.artifacts import ArtifactNotFoundError


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "train.csv").write_text("a,b\n1,2\n")
    (d / "sub" / "labels.txt").write_text("cat\ndog\n")
    return d


def _dataset(data: Path, extra: str | None = None) -> wandblite.Artifact:
    art = wandblite.Artifact("mnist", type="dataset", description="tiny", metadata={"rows": 1})
    art.add_dir(str(data))
    with art.new_file("notes/readme.txt", mode="w") as f:
        f.write(extra or "hello")
    return art


def test_log_artifact_stores_content_addressed_objects_and_a_manifest(runs_dir: Path, data: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="p1")
    art = run.log_artifact(_dataset(data), aliases=["best"])
    assert art.version == "v0" and art.name == "mnist:v0" and art.aliases == ["latest", "best"]
    run.finish()
    (rec,) = wandblite.replay(runs_dir / "p1").artifacts
    assert rec["name"] == "mnist" and rec["type"] == "dataset" and rec["version"] == 0
    assert rec["metadata"] == {"rows": 1} and rec["description"] == "tiny" and rec["run"] == "p1"
    assert sorted(rec["entries"]) == ["notes/readme.txt", "sub/labels.txt", "train.csv"]
    entry = rec["entries"]["train.csv"]
    sha = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert entry == {"sha256": sha, "size": 8, "object": f"artifacts/objects/{sha}"}
    assert (runs_dir / "p1" / entry["object"]).read_bytes() == b"a,b\n1,2\n"
    assert rec["size"] == 8 + 8 + 5


def test_same_digest_is_the_same_version_and_new_content_the_next(runs_dir: Path, data: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="p2")
    assert run.log_artifact(_dataset(data)).version == "v0"
    run.finish()
    run = wandblite.init(dir=str(runs_dir), id="p3")  # another run under the same root
    assert run.log_artifact(_dataset(data)).version == "v0"  # same files: no new version
    assert wandblite.log_artifact(_dataset(data, extra="changed"), aliases=["candidate"]).version == "v1"
    run.finish()
    assert [a["version"] for a in wandblite.replay(runs_dir / "p3").artifacts] == [0, 1]


def test_use_artifact_resolves_aliases_and_versions_across_runs_and_downloads(
    runs_dir: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = wandblite.init(dir=str(runs_dir), id="prod")
    producer.log_artifact(_dataset(data), aliases=["best"])
    producer.log_artifact(_dataset(data, extra="v1 content"))
    producer.finish()
    consumer = wandblite.init(dir=str(runs_dir), id="cons")
    latest = consumer.use_artifact("mnist:latest")
    assert latest.version == "v1" and latest.aliases == ["latest"] and latest.type == "dataset"
    best = wandblite.use_artifact("entity/project/mnist:best", type="dataset")
    assert best.version == "v0" and best.aliases == ["best"]
    assert consumer.use_artifact("mnist:v1").digest == latest.digest
    assert consumer.use_artifact("mnist").version == "v1"
    out = Path(best.download(root=str(tmp_path / "dl")))
    assert (out / "train.csv").read_text() == "a,b\n1,2\n"
    assert (out / "sub" / "labels.txt").read_text() == "cat\ndog\n"
    assert (out / "notes" / "readme.txt").read_text() == "hello"
    monkeypatch.chdir(tmp_path)
    assert latest.download() == str(Path("artifacts") / "mnist:v1")
    assert (tmp_path / "artifacts" / "mnist:v1" / "notes" / "readme.txt").read_text() == "v1 content"
    consumer.finish()
    uses = wandblite.replay(runs_dir / "cons").uses
    assert [(u["name"], u["version"], u["run"]) for u in uses] == [
        ("mnist", 1, "prod"), ("mnist", 0, "prod"), ("mnist", 1, "prod"), ("mnist", 1, "prod")]


def test_an_alias_moves_to_the_version_logged_last_with_it(runs_dir: Path, data: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="p4")
    run.log_artifact(_dataset(data), aliases=["prod"])
    run.log_artifact(_dataset(data, extra="2"), aliases=["prod"])
    assert run.use_artifact("mnist:prod").version == "v1"
    assert run.use_artifact("mnist:v0").aliases == []


def test_references_are_recorded_and_file_references_download(runs_dir: Path, data: Path, tmp_path: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="p5")
    art = wandblite.Artifact("refs", type="dataset")
    art.add_reference((data / "train.csv").as_uri())
    art.add_reference("s3://bucket/key.bin", name="remote.bin")
    run.log_artifact(art)
    entries = wandblite.replay(runs_dir / "p5").artifacts[0]["entries"]
    assert entries["remote.bin"] == {"ref": "s3://bucket/key.bin"}
    assert entries["train.csv"]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    out = Path(run.use_artifact("refs:latest").download(str(tmp_path / "r"), allow_missing_references=True))
    assert (out / "train.csv").read_text() == "a,b\n1,2\n" and not (out / "remote.bin").exists()


def test_single_file_artifact_file_and_log_artifact_of_a_path(runs_dir: Path, data: Path, tmp_path: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="p6")
    art = run.log_artifact(str(data / "train.csv"), name="table", type="csv")
    assert art.version == "v0"
    got = run.use_artifact("table:v0").file(root=str(tmp_path / "one"))
    assert Path(got).read_text() == "a,b\n1,2\n"


def test_errors_name_what_is_missing(runs_dir: Path, data: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="p7")
    with pytest.raises(ArtifactNotFoundError, match="no artifact named 'nope'"):
        run.use_artifact("nope:latest")
    run.log_artifact(_dataset(data))
    with pytest.raises(ArtifactNotFoundError, match="no version or alias 'v7'"):
        run.use_artifact("mnist:v7")
    with pytest.raises(ValueError, match="not a file"):
        wandblite.Artifact("x", type="t").add_file(str(data / "missing"))
    with pytest.raises(ValueError, match="may not contain"):
        wandblite.Artifact("a:b", type="t")
    logged = run.log_artifact(_dataset(data))
    with pytest.raises(wandblite.Error, match="logged already"):
        logged.add_file(str(data / "train.csv"))
