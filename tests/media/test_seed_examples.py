"""The media examples of a W&B user's script, run verbatim with ``import wandblite as wandb``.

The script below is written the way wandb's documentation writes these calls; only the import line
differs. It runs in a fresh interpreter; then the replayed history must hold typed references whose
bytes open: Pillow reads the PNG and the GIF (with T frames), the WAV has its samples, the table its
rows, the point cloud its points, the meshes their bytes.
"""

from __future__ import annotations

import base64
import json
import struct
import wave
from pathlib import Path

from PIL import Image

import wandblite
from tests.conftest import run_script
from wandblite import media

SCRIPT = '''
import sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image as PILImage
import wandblite as wandb

run = wandb.init(project="seed-media", id="seed", dir=sys.argv[1])
mesh_dir = sys.argv[2]

# Images from numpy and from PIL, a list with captions
pixels = np.random.randint(low=0, high=256, size=(100, 100, 3), dtype=np.uint8)
image = wandb.Image(pixels, caption="Top: Output, Bottom: Input")
pil = PILImage.fromarray(np.random.randint(0, 256, (32, 48, 3), dtype=np.uint8))
wandb.log({"examples": image, "pil": wandb.Image(pil),
           "gallery": [wandb.Image(pixels, caption=f"sample {i}") for i in range(3)]})

# Video from numpy: (time, channel, height, width)
frames = np.random.randint(low=0, high=256, size=(10, 3, 64, 64), dtype=np.uint8)
wandb.log({"video": wandb.Video(frames, fps=4)})

# Histogram
wandb.log({"gradients": wandb.Histogram(np.random.randn(1000))})

# Audio
wandb.log({"audio": wandb.Audio(np.sin(np.linspace(0, 440 * 2 * np.pi, 16000)), sample_rate=16000)})

# Matplotlib plot logged directly
fig, ax = plt.subplots()
ax.plot([1, 2, 3, 4])
ax.set_ylabel("some interesting numbers")
wandb.log({"chart": fig})

# PR curve
y_true = np.array([0, 1, 1, 0, 1, 2, 2, 0, 1, 2])
y_probas = np.random.dirichlet(np.ones(3), size=10)
wandb.log({"pr": wandb.plot.pr_curve(y_true, y_probas, labels=["cat", "dog", "bird"])})

# Table
table = wandb.Table(columns=["id", "image", "label"])
for i in range(4):
    table.add_data(i, wandb.Image(pixels), "cat")
wandb.log({"predictions": table})

# 3D: a point cloud from numpy and meshes from .obj / .gltf / .glb files
points = np.random.uniform(-1, 1, size=(500, 3))
wandb.log({"point_cloud": wandb.Object3D(points),
           "obj": wandb.Object3D(open(mesh_dir + "/tri.obj")),
           "gltf": wandb.Object3D(open(mesh_dir + "/tri.gltf")),
           "glb": wandb.Object3D(mesh_dir + "/tri.glb")})
run.finish()
'''


def _triangle_meshes(d: Path) -> None:
    (d / "tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    positions = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
    gltf = {
        "asset": {"version": "2.0"},
        "scenes": [{"nodes": [0]}], "scene": 0, "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "buffers": [{"byteLength": len(positions)}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(positions)}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
    }
    embedded = dict(gltf, buffers=[{"byteLength": len(positions),
                                    "uri": "data:application/octet-stream;base64," + base64.b64encode(positions).decode()}])
    (d / "tri.gltf").write_text(json.dumps(embedded))
    js = json.dumps(gltf).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(positions), 0x004E4942) + positions
    (d / "tri.glb").write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)


def test_seed_media_examples_run_verbatim_and_replay_to_bytes_that_open(tmp_path: Path) -> None:
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    _triangle_meshes(meshes)
    res = run_script(SCRIPT, str(tmp_path / "runs"), str(meshes), timeout=120)
    assert res.returncode == 0, res.stderr
    r = wandblite.replay(tmp_path / "runs" / "seed")
    assert r.state == "finished" and r.damage == []
    rows = {k: v for row in r.history() for k, v in row.items() if not k.startswith("_")}

    img = rows["examples"].open()
    assert img.size == (100, 100) and rows["examples"]["caption"] == "Top: Output, Bottom: Input"
    assert rows["pil"].open().size == (48, 32)
    assert rows["gallery"]["_type"] == "images/separated" and rows["gallery"]["count"] == 3
    assert rows["gallery"]["captions"] == ["sample 0", "sample 1", "sample 2"]

    with Image.open(rows["video"].path()) as gif:
        assert gif.format == "GIF" and gif.n_frames == 10 and gif.size == (64, 64)

    hist = rows["gradients"]
    assert hist["_type"] == "histogram" and len(hist["bins"]) == len(hist["values"]) + 1 == 65
    assert sum(hist["values"]) == 1000

    with wave.open(rows["audio"].path()) as w:
        assert w.getnframes() == 16000 and w.getframerate() == 16000

    assert rows["chart"]["_type"] == "image-file" and rows["chart"].open().format == "PNG"

    pr = rows["pr"]
    assert pr["_type"] == "chart" and pr["kind"] == "pr_curve"
    pr_table = json.loads(media.read_blob(r.path, pr["table"]))
    assert pr_table["columns"][:3] == ["class", "precision", "recall"] or set(pr_table["columns"]) >= {"precision", "recall"}
    assert {row[0] for row in pr_table["data"]} <= {"cat", "dog", "bird"} and pr_table["data"]

    table = json.loads(rows["predictions"].bytes())
    assert table["columns"] == ["id", "image", "label"] and len(table["data"]) == 4
    assert table["data"][0][1]["_type"] == "image-file"

    cloud = json.loads(rows["point_cloud"].bytes())
    assert len(cloud) == 500 and len(cloud[0]) == 3
    assert rows["obj"].bytes() == (meshes / "tri.obj").read_bytes()
    assert json.loads(rows["gltf"].bytes())["asset"]["version"] == "2.0"
    assert rows["glb"].bytes()[:4] == b"glTF"
