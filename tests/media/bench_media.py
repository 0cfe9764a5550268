"""Media benchmarks (not a test): medians against a floor measured in the same run.

Run: ``python tests/media/bench_media.py``. Prints, per case, our median per call, the floor's
median, and the ratio. Targets (the media logging budget): image <= 1.3x, histogram <= 1.5x.

* image: ``Image(arr).to_json(store, key, step)`` for a fresh 64x64 RGB uint8 array (validation,
  PNG encoding, sha256, one framed ``os.write`` into the pack, the JSON dict) against the floor:
  Pillow PNG-encoding the same array into a BytesIO plus one ``os.write`` of the bytes;
* histogram: ``Histogram(samples).to_json(...)`` of 10,000 float64 samples, 64 bins, against
  ``numpy.histogram(samples, bins=64)``;
* files: how many files and directories 1,000 logged images add to the run directory.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wandblite.data_types import Histogram, Image  # noqa: E402
from wandblite.media import MediaStore  # noqa: E402


def bench_image(n: int = 1000) -> tuple[float, float]:
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    # smooth-ish images (gradients plus noise) compress like real pictures; all distinct
    base = np.add.outer(np.arange(64), np.arange(64))[:, :, None] * np.array([1, 2, 3])
    arrays = [((base + rng.integers(0, 16, (64, 64, 3))) % 256).astype(np.uint8) for _ in range(n)]
    ours, floor = [], []
    with tempfile.TemporaryDirectory() as d:
        store = MediaStore(Path(d) / "run")
        fd = os.open(Path(d) / "floor.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        store.put(b"warm", "bin")
        for i, arr in enumerate(arrays):
            t0 = time.perf_counter()
            buf = io.BytesIO()
            PILImage.fromarray(arr).save(buf, format="PNG")
            os.write(fd, buf.getvalue())
            t1 = time.perf_counter()
            Image(arr).to_json(store, "img", i)
            t2 = time.perf_counter()
            floor.append(t1 - t0)
            ours.append(t2 - t1)
        os.close(fd)
        store.close()
    return statistics.median(ours), statistics.median(floor)


def bench_histogram(n: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    data = [rng.normal(size=10_000) for _ in range(20)]
    ours, floor = [], []
    for i in range(n):
        x = data[i % len(data)]
        t0 = time.perf_counter()
        np.histogram(x, bins=64)
        t1 = time.perf_counter()
        Histogram(x).to_json(None, "h", i)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        floor.append(t1 - t0)
        ours.append(t2 - t1)
    return statistics.median(ours), statistics.median(floor)


def files_per_1000_images() -> int:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        run.mkdir()
        store = MediaStore(run)
        for i in range(1000):
            Image(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).to_json(store, "img", i)
        store.close()
        return sum(len(files) + len(dirs) for _, dirs, files in os.walk(run))


def main() -> None:
    ours, floor = bench_image()
    print(f"image 64x64 RGB  ours {ours * 1e6:8.1f} us   floor {floor * 1e6:8.1f} us   ratio {ours / floor:.2f}x  (target <= 1.3x)")
    ours, floor = bench_histogram()
    print(f"histogram 10k    ours {ours * 1e6:8.1f} us   floor {floor * 1e6:8.1f} us   ratio {ours / floor:.2f}x  (target <= 1.5x)")
    print(f"files per 1,000 logged images: {files_per_1000_images()}  (media/ and one pack file)")


if __name__ == "__main__":
    main()
