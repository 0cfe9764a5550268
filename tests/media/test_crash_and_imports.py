"""A real SIGKILL while media is being written, and the import-lightness promise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from wandblite.media import MediaStore, read_blob, verify

REPO = Path(__file__).resolve().parents[2]

WRITER = r"""
import sys, numpy as np
from wandblite.media import MediaStore
from wandblite.data_types import Image, Video
store = MediaStore(sys.argv[1])
rng = np.random.default_rng(0)
i = 0
while True:
    if i % 5 == 4:
        j = Video(rng.integers(0, 255, (4, 3, 32, 32), dtype=np.uint8)).to_json(store, "v", i)
    else:
        j = Image(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).to_json(store, "img", i)
    # like the core: the record is written only after to_json (and so put) has returned
    sys.stdout.write(__import__("json").dumps(j) + "\n")
    sys.stdout.flush()
    i += 1
"""


def test_sigkill_while_logging_media_loses_no_returned_blob(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(run_dir)], stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(lines) < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait()
    refs = [json.loads(line) for line in lines + rest.splitlines(keepends=True) if line.endswith(b"\n")]
    assert len(refs) >= 200
    for ref in refs:
        assert read_blob(run_dir, ref)  # verified against its sha256
    # damage, if any, is only a torn tail after the last returned blob
    for d in verify(run_dir):
        assert d["reason"].startswith("torn tail")
        assert all(not (r["blob"] == d["file"] and r["offset"] >= d["offset"]) for r in refs)
    # a new writer continues the run: dedupes against what survived
    s = MediaStore(run_dir)
    assert s.put(read_blob(run_dir, refs[0]), "png")["sha256"] == refs[0]["sha256"]
    s.close()


def test_import_stays_light() -> None:
    code = (
        "import sys, wandblite.media, wandblite.data_types, wandblite.plot\n"
        "from wandblite.data_types import is_matplotlib_figure\n"
        "is_matplotlib_figure(object())\n"
        "heavy = [m for m in ('PIL', 'matplotlib', 'pandas', 'torch', 'sklearn') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
