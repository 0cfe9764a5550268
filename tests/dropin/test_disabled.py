"""``init(mode="disabled")``: every drop-in call is accepted, does nothing, and touches no file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

import wandblite

torch = pytest.importorskip("torch")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("how", ["keyword", "WANDB_MODE", "WANDBLITE_MODE"])
def test_every_call_works_and_no_file_is_created(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "ro"
    work.mkdir()
    (work / "model.pt").write_bytes(b"m")
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    os.chmod(work, 0o555)  # read-only cwd: any attempt to create a file here fails
    try:
        if how == "keyword":
            run = wandblite.init(mode="disabled", project="p", config={"a": 1}, dir=str(work / "runs"))
        else:
            monkeypatch.setenv(how, "disabled")
            run = wandblite.init(project="p", config={"a": 1})
        assert wandblite.run is run and type(run).__name__ == "DisabledRun"
        wandblite.login(key="k")
        wandblite.setup()
        wandblite.require("service")
        run.config.update(argparse.Namespace(b=2))
        wandblite.config.update({"c": 3}, allow_val_change=True)
        run.config.setdefaults({"a": 9, "d": 4})
        assert run.config.as_dict() == {"a": 1, "b": 2, "c": 3, "d": 4}
        run.summary["best"] = 1
        wandblite.log({"loss": 1.0})
        wandblite.log()
        run.log({"x": 1}, step=3, commit=False)
        wandblite.define_metric("loss", summary="min")
        model = torch.nn.Linear(2, 1)
        wandblite.watch(model, log="all", log_freq=1)
        model(torch.ones(1, 2)).sum().backward()
        wandblite.unwatch(model)
        wandblite.save("model.pt", policy="now")
        run.save("*.pt", policy="end")
        art = wandblite.Artifact("a", type="dataset")
        art.add_file("model.pt")
        run.log_artifact(art, aliases=["best"])
        wandblite.log_artifact(art)
        used = run.use_artifact("a:latest")
        used.download()
        wandblite.alert("t", "x", level="WARN")
        run._label(code="transformers_trainer")
        assert run._attach_id is None
        run.finish()
    finally:
        os.chmod(work, 0o755)
    assert _tree(tmp_path) == before
    assert wandblite.run is None
