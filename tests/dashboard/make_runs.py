"""Write the dashboard tests' runs with the real SDK: ``python make_runs.py RUNS_DIR``.

Run in its own interpreter (as a user's training script would be). Prints one JSON line: what
was logged, so the tests can compare the dashboard's plots with it. Two runs of project
``dash``:

* ``runa`` ("alpha"): ``train/loss``, ``train/acc``, ``opt/group/lr`` every step, ``val/loss`` every 5 steps,
  ``samples/images`` (an image with a caption, boxes and a mask) at steps 0, 5, 10, a histogram
  ``weights/hist`` over steps, a table with an image cell, a PR curve, a point cloud, an Html
  value whose script would set a global if it ever ran, a GIF video and an audio clip;
  It also saves a file (``notes/run-notes.txt``, policy "now"), logs an artifact ``dataset``
  (two files, aliases ``latest`` and ``best``) and raises an alert whose title looks like HTML;
* ``runb``, named like an HTML injection, with the same scalar keys and different values; it uses
  ``dataset:best``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import wandblite
from wandblite import plot

STEPS = 20
HOSTILE_NAME = '<img src=x onerror="window.__xss=1">'
SAVED_NAME = "notes/run-notes.txt"
SAVED_BYTES = b"notes of runa: <b>not html</b>\n\x00\x01binary tail\n"
ARTIFACT = "dataset"
ARTIFACT_ENTRIES = {"train.csv": b"x,y\n1,2\n3,4\n", "docs/README.md": b"# the <i>dataset</i>\n"}
ALERT_TITLE = "<b>loss</b> diverged"
ALERT_TEXT = "loss went <script>up</script> at step 7"
HTML_SCRIPT = "<h1>report</h1><script>window.__html_ran = 1; try { parent.__html_ran = 1 } catch (e) {}</script>"


def loss(run: int, step: int) -> float:
    return round(1.0 / (step + 1) + 0.1 * run, 6)


def acc(run: int, step: int) -> float:
    return round(step / STEPS - 0.05 * run, 6)


def image(step: int) -> wandblite.Image:
    arr = np.zeros((32, 48, 3), dtype=np.uint8)
    arr[:, :, 0] = 40 + step * 10
    arr[8:24, 8 + step:24 + step, 1] = 220
    mask = np.zeros((32, 48), dtype=np.uint8)
    mask[20:30, 30:46] = 1
    boxes = {"predictions": {"box_data": [{"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.7}, "class_id": 1,
                                           "box_caption": f"<b>cat</b> {step}", "scores": {"p": 0.9}}],
                             "class_labels": {1: "cat", 2: "dog"}}}
    return wandblite.Image(arr, caption=f"caption step {step} <i>x</i>", boxes=boxes,
                           masks={"ground_truth": {"mask_data": mask, "class_labels": {1: "road"}}})


def write(runs_dir: str, run_no: int, run_id: str, name: str) -> dict[str, object]:
    run = wandblite.init(project="dash", id=run_id, name=name, dir=runs_dir, tags=["e2e", f"r{run_no}"],
                         config={"lr": 0.01 * (run_no + 1), "batch_size": 32, "model": {"depth": 4 + run_no}})
    rng = np.random.default_rng(run_no)
    for step in range(STEPS):
        row: dict[str, object] = {"train/loss": loss(run_no, step), "train/acc": acc(run_no, step),
                                  "opt/group/lr": 0.1 * 0.9 ** step}
        if step % 5 == 0:
            row["val/loss"] = loss(run_no, step) + 0.05
            row["weights/hist"] = wandblite.Histogram(rng.normal(step * 0.2, 1.0, 500))
        if run_no == 0 and step in (0, 5, 10):
            row["samples/images"] = image(step)
        run.log(row)
    if run_no == 0:
        table = wandblite.Table(columns=["id", "picture", "label"],
                                data=[[i, image(i), f"<script>row {i}</script>"] for i in range(3)])
        y_true = np.array([0, 1, 1, 0, 1, 0, 1, 1])
        probas = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8], [0.55, 0.45], [0.45, 0.55], [0.1, 0.9]])
        points = np.c_[rng.normal(size=(200, 3)), rng.integers(1, 5, size=(200, 1))]
        frames = np.zeros((4, 3, 16, 16), dtype=np.uint8)
        for f in range(4):
            frames[f, :, f * 4:f * 4 + 4, :] = 255
        run.log({"eval/table": table, "eval/pr": plot.pr_curve(y_true, probas, labels=["neg", "pos"]),
                 "scene/points": wandblite.Object3D(points), "report/html": wandblite.Html(HTML_SCRIPT),
                 "clips/video": wandblite.Video(frames, fps=4, format="gif"),
                 "clips/audio": wandblite.Audio(np.sin(np.linspace(0, 440 * 2 * np.pi, 8000)).astype(np.float32), sample_rate=8000)})
    if run_no == 0:
        with tempfile.TemporaryDirectory() as src:
            path = Path(src, SAVED_NAME)
            path.parent.mkdir(parents=True)
            path.write_bytes(SAVED_BYTES)
            run.save(str(path), base_path=src, policy="now")
            art = wandblite.Artifact(ARTIFACT, type="dataset", description="two small files")
            for name, data in ARTIFACT_ENTRIES.items():
                Path(src, "art", name).parent.mkdir(parents=True, exist_ok=True)
                Path(src, "art", name).write_bytes(data)
                art.add_file(str(Path(src, "art", name)), name=name)
            run.log_artifact(art, aliases=["best"])
        run.alert(title=ALERT_TITLE, text=ALERT_TEXT, level="WARN")
    else:
        run.use_artifact(f"{ARTIFACT}:best")
    print(f"console of {run_id}: <b>not bold</b>", flush=True)
    if run_no == 0:  # a partial line recorded early, then completed; a bar that moves on with "\r"
        print("epoch 1 ", end="", flush=True)
        time.sleep(0.9)
        print("done", flush=True)
        sys.stdout.write("bar 10%")
        sys.stdout.flush()
        time.sleep(0.9)
        sys.stdout.write("\rbar 100%\n")
        sys.stdout.flush()
    run.summary["best"] = min(loss(run_no, s) for s in range(STEPS))
    run.finish()
    return {"id": run_id, "name": name,
            "loss": [loss(run_no, s) for s in range(STEPS)], "acc": [acc(run_no, s) for s in range(STEPS)]}


def main() -> None:
    runs_dir = sys.argv[1]
    os.makedirs(runs_dir, exist_ok=True)
    out = [write(runs_dir, 0, "runa", "alpha"), write(runs_dir, 1, "runb", HOSTILE_NAME)]
    print(json.dumps({"runs": out}))


if __name__ == "__main__":
    main()
