"""Write the golden fixture run once, with the real SDK: ``tests/golden/fixture/golden/``.

    .venv/bin/python tests/golden/make_fixture.py          # refuses to overwrite an existing fixture
    .venv/bin/python tests/golden/make_fixture.py --force  # rewrite it (then re-record the answers)

The fixture is generated once and committed: its timestamps, system samples and run-file bytes are
frozen, which is what lets ``test_golden.py`` compare every read of it against recorded answers.
Regenerating it changes every answer; do that only on purpose, before recording.

The run holds one of each thing the read side serves: scalars over 30 steps (a nested dict, a NaN,
define_metric with a custom step and a summary rule), config, summary updates, tags/notes/group/
job_type, media (image, histogram, table, html, audio, a mesh and a point cloud), console lines on
stdout and stderr, system-metrics samples, saved files, an artifact logged twice and used, and
alerts (two of one title, so the second is throttled).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixture"
RUN_ID = "golden"
PROJECT = "golden"

# Runs in a fresh interpreter (clean environment, its own working directory) so that console
# capture, the system sampler and relative save() paths behave exactly as in a user's script.
WRITER = r'''
import math, sys, time
from pathlib import Path

import numpy as np

import wandblite as wandb

root, project, run_id = sys.argv[1:4]
rng = np.random.default_rng(12)
run = wandb.init(
    project=project, id=run_id, dir=root, name="golden-run", group="grp", job_type="train",
    tags=["golden", "fixture"], notes="the golden fixture run",
    config={"lr": 0.01, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}, "epochs": 3},
    settings=wandb.Settings(x_stats_sampling_interval=0.2),
)
run.config.update({"batch_size": 16})
run.define_metric("epoch")
run.define_metric("val/*", step_metric="epoch")
run.define_metric("val/acc", summary="max")
run.define_metric("loss", summary="min,last")
print("starting training")
for step in range(30):
    row = {"loss": 1.0 / (step + 1), "acc": step / 30.0,
           "nested": {"a": step * 2, "b": {"c": -step}}}
    if step == 7:
        row["loss"] = float("nan")
    if step % 10 == 9:
        epoch = step // 10
        row.update({"epoch": epoch, "val/acc": 0.5 + epoch / 10, "val/loss": 1.0 - epoch / 10})
        print(f"epoch {epoch} done", flush=True)
    run.log(row, step=step)
    time.sleep(0.02)
print("warning: something on stderr", file=sys.stderr, flush=True)

pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
table = wandb.Table(columns=["id", "name", "score"], data=[[0, "a", 0.5], [1, "b", 0.25]])
tone = np.sin(2 * math.pi * 440 * np.arange(400) / 8000).astype(np.float32)
run.log({"image": wandb.Image(pixels, caption="pixels"),
         "hist": wandb.Histogram(rng.normal(size=200), num_bins=8),
         "table": table, "page": wandb.Html("<p>golden</p>"),
         "audio": wandb.Audio(tone, sample_rate=8000, caption="tone")}, step=30)
Path("tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
run.log({"image": wandb.Image(255 - pixels, caption="inverted"),
         "mesh": wandb.Object3D("tri.obj"),
         "cloud": wandb.Object3D(rng.normal(size=(12, 3)).round(3))}, step=31)

Path("notes.txt").write_text("golden notes\n")
Path("out").mkdir()
Path("out/result.json").write_text('{"ok": true}\n')
run.save("notes.txt", policy="now")
run.save("out/result.json", policy="end")

art = wandb.Artifact("model", "model", description="first", metadata={"layers": 2})
with art.new_file("weights.txt", "w") as f:
    f.write("v0 weights")
run.log_artifact(art, aliases=["best"])
art = wandb.Artifact("model", "model")
with art.new_file("weights.txt", "w") as f:
    f.write("v1 weights")
art.add_file("notes.txt", name="sub/notes.txt")
run.log_artifact(art, aliases=["prod"])
run.use_artifact("model:best")

run.alert("loss spike", "loss went to NaN", level="WARN")
run.alert("loss spike", "again", level="WARN")
run.alert("done soon", "almost there", level=wandb.AlertLevel.INFO, wait_duration=5)

run.summary["best_loss"] = 0.034
run.summary.update({"final": {"acc": 0.97, "note": "ok"}})
time.sleep(1.0)  # a few system-metrics samples
print("finished")
run.finish()
'''


def main() -> int:
    force = "--force" in sys.argv[1:]
    target = FIXTURE / RUN_ID
    if target.exists() and not force:
        print(f"{target} exists; pass --force to rewrite it (then re-record the answers)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work, root = Path(tmp) / "work", Path(tmp) / "runs"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
        env["WANDBLITE_HOME"] = str(Path(tmp) / "home")
        subprocess.run([sys.executable, "-c", WRITER, str(root), PROJECT, RUN_ID], cwd=work, env=env, check=True)
        if target.exists():
            shutil.rmtree(target)
        FIXTURE.mkdir(exist_ok=True)
        shutil.copytree(root / RUN_ID, target)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"wrote {target} ({size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
