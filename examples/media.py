"""Log one of each media type, then read them back.

    python examples/media.py            # writes ./runs/<id>/
    wandblite show runs/<id>            # history shows <image 64x64 png>-style summaries

Every value below is built with wandb's own signatures, so the same lines work with
``import wandb``. Media bytes go into a few pack files under ``runs/<id>/media/``; the history
holds typed references (path, sha256, size, ...) shaped like wandb's.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

import wandblite as wandb

rng = np.random.default_rng(0)
run = wandb.init(project="media-demo", config={"example": "media"})

# Images: numpy (uint8, or floats in 0..1), PIL, a list with captions, boxes and masks.
from PIL import Image as PILImage  # noqa: E402

pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
mask = np.zeros((64, 64), dtype=np.uint8)
mask[16:48, 16:48] = 1
run.log(
    {
        "image": wandb.Image(pixels, caption="random pixels"),
        "gradient": wandb.Image(np.linspace(0, 1, 64 * 64).reshape(64, 64)),
        "pil": wandb.Image(PILImage.new("RGB", (32, 16), (200, 30, 30))),
        "examples": [wandb.Image(pixels[:, :, i], caption=f"channel {i}") for i in range(3)],
        "detection": wandb.Image(
            pixels,
            boxes={
                "predictions": {
                    "box_data": [
                        {
                            "position": {"minX": 0.25, "maxX": 0.75, "minY": 0.25, "maxY": 0.75},
                            "class_id": 1,
                            "box_caption": "square",
                            "scores": {"confidence": 0.9},
                        }
                    ],
                    "class_labels": {1: "square"},
                }
            },
            masks={"segmentation": {"mask_data": mask, "class_labels": {0: "background", 1: "square"}}},
        ),
    }
)

# Video (T, C, H, W) uint8 -> animated GIF; audio -> WAV; a histogram.
frames = np.stack([np.roll(pixels, 4 * t, axis=1).transpose(2, 0, 1) for t in range(8)])
tone = np.sin(2 * math.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
run.log(
    {
        "video": wandb.Video(frames, fps=4, caption="scrolling"),
        "audio": wandb.Audio(tone, sample_rate=16000, caption="A4"),
        "weights": wandb.Histogram(rng.normal(size=10_000)),
    }
)

# A table with an image in a cell, and charts computed from numpy alone.
table = wandb.Table(columns=["id", "image", "score"])
for i in range(3):
    table.add_data(i, wandb.Image(pixels[:, :, i]), float(i) / 2)
y_true = rng.integers(0, 3, 200)
y_probas = rng.dirichlet(np.ones(3), 200)
curve = wandb.Table(columns=["step", "loss"], data=[[s, 1 / (s + 1)] for s in range(20)])
run.log(
    {
        "samples": table,
        "pr": wandb.plot.pr_curve(y_true, y_probas, labels=["cat", "dog", "bird"]),
        "roc": wandb.plot.roc_curve(y_true, y_probas),
        "confusion": wandb.plot.confusion_matrix(y_true=y_true, preds=y_probas.argmax(1)),
        "loss_curve": wandb.plot.line(curve, "step", "loss", title="Loss"),
    }
)

# 3D: a point cloud and a tiny .obj file; HTML.
with tempfile.TemporaryDirectory() as d:
    obj = Path(d) / "triangle.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    run.log(
        {
            "point_cloud": wandb.Object3D(rng.normal(size=(500, 3))),
            "mesh": wandb.Object3D(str(obj)),
            "report": wandb.Html("<h1>Hello from wandblite</h1>"),
        }
    )

# A matplotlib figure is stored as a PNG image (matplotlib only imported because we use it).
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(np.arange(10), np.arange(10) ** 2)
    run.log({"chart": fig})
    plt.close(fig)
except ImportError:
    pass

run_dir = run.path  # the run directory, e.g. runs/<id>
run.finish()

# Read it back: a media value is a read-only mapping of its JSON with .bytes(), .path(), .open().
history = wandb.replay(run_dir).history()
for row in history:
    for key, value in row.items():
        if hasattr(value, "bytes"):
            print(f"step {row['_step']}: {key} = {value!r}")
image = next(row["image"] for row in history if "image" in row)
print("image file:", image.path(), "size:", image.open().size)
print(f"see it all with: wandblite show {run_dir}")
