"""``export_tensorboard``: event files written by hand that TensorBoard's own reader loads."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wandblite
from tests.interop.conftest import need
from wandblite.interop.common import numeric_leaves
from wandblite.interop.tensorboard import crc32c, export_tensorboard, masked_crc32c, read_records, tfrecord


def _accumulator(out: Path) -> Any:
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(out), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    return ea


def _series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for row in wandblite.replay(run_dir).scan_history():
        for k, v in numeric_leaves(row).items():
            series.setdefault(k, []).append((row["_step"], float(np.float32(v))))
    return series


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_tfrecord_frame_layout_and_checksums() -> None:
    frame = tfrecord(b"hello")
    (n,) = struct.unpack("<Q", frame[:8])
    assert n == 5
    assert struct.unpack("<I", frame[8:12])[0] == masked_crc32c(frame[:8])
    assert frame[12:17] == b"hello"
    assert struct.unpack("<I", frame[17:21])[0] == masked_crc32c(b"hello")


def test_scalar_series_load_in_event_accumulator_with_the_replay_values(
        make_scalar_run: Callable[..., Path], tmp_path: Path) -> None:
    run_dir = make_scalar_run()
    out = tmp_path / "tb"
    path = export_tensorboard(run_dir, out)
    assert path.name.startswith("events.out.tfevents.") and path.name.endswith(".wandblite")
    ea = _accumulator(out)
    expected = _series(run_dir)
    assert set(ea.Tags()["scalars"]) == set(expected)  # tags are the dotted keys: acc.top1, ...
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in ea.Scalars(tag)]
        assert got == points, tag
    # wall times are the rows' own timestamps
    rows = list(wandblite.replay(run_dir).scan_history())
    assert [e.wall_time for e in ea.Scalars("loss")] == pytest.approx([r["_timestamp"] for r in rows])


def test_explicit_steps_and_commit_false_keep_their_steps(make_step_run: Callable[..., Path], tmp_path: Path) -> None:
    run_dir = make_step_run()
    export_tensorboard(run_dir, tmp_path / "tb")
    ea = _accumulator(tmp_path / "tb")
    assert {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]} == _series(run_dir)
    assert [e.step for e in ea.Scalars("h")] == [20]  # the row pending at finish()


def test_images_histograms_and_config_text_are_present(make_media_run: Callable[..., Path], tmp_path: Path) -> None:
    run_dir = make_media_run()
    export_tensorboard(run_dir, tmp_path / "tb")
    ea = _accumulator(tmp_path / "tb")
    images = ea.Images("img")
    assert [(i.step, i.width, i.height) for i in images] == [(0, 16, 12), (1, 16, 12), (2, 16, 12)]
    import io

    from PIL import Image as PILImage

    rows = list(wandblite.replay(run_dir).scan_history())
    for ev, row in zip(images, rows):
        decoded = np.asarray(PILImage.open(io.BytesIO(ev.encoded_image_string)))
        assert np.array_equal(decoded, np.asarray(row["img"].open()))
    hists = ea.Histograms("hist")
    assert [h.step for h in hists] == [0, 1, 2]
    for h, row in zip(hists, rows):
        assert list(h.histogram_value.bucket) == [float(x) for x in row["hist"]["values"]]
        assert list(h.histogram_value.bucket_limit) == pytest.approx(row["hist"]["bins"][1:])
        assert h.histogram_value.min == pytest.approx(row["hist"]["bins"][0])
    text = ea.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "| k | v |" in text
    assert ea.SummaryMetadata("config").plugin_data.plugin_name == "text"


def test_exporting_again_replaces_the_file_instead_of_doubling_the_points(
        make_scalar_run: Callable[..., Path], tmp_path: Path) -> None:
    run_dir = make_scalar_run(rows=5)
    first = export_tensorboard(run_dir, tmp_path / "tb")
    second = export_tensorboard(run_dir, tmp_path / "tb")
    assert first == second
    assert [p.name for p in (tmp_path / "tb").iterdir()] == [first.name]
    ea = _accumulator(tmp_path / "tb")
    assert len(ea.Scalars("loss")) == 5


def test_values_beyond_float32_become_infinite_not_an_error(tmp_path: Path) -> None:
    run = wandblite.init(project="p", id="big", dir=str(tmp_path / "runs"), reinit=True)
    run.log({"big": 1e300, "nan": float("nan"), "flag": True, "word": "x"})
    run.finish()
    path = export_tensorboard(tmp_path / "runs" / "big", tmp_path / "tb")
    assert len(list(read_records(path))) == 3  # version, config text, one row
    ea = _accumulator(tmp_path / "tb")
    assert ea.Scalars("big")[0].value == float("inf")
    assert np.isnan(ea.Scalars("nan")[0].value)
    assert "flag" not in ea.Tags()["scalars"] and "word" not in ea.Tags()["scalars"]  # not measurements


def test_export_cli_helper_reports_the_file(make_scalar_run: Callable[..., Path], tmp_path: Path) -> None:
    from wandblite_cli.interop import export_tensorboard as cli_export

    lines: list[str] = []
    assert cli_export(make_scalar_run(rows=3), tmp_path / "tb", log=lines.append) == 0
    assert "events.out.tfevents." in lines[-1]
    assert cli_export(tmp_path / "nope", tmp_path / "tb", log=lines.append) == 1
    assert lines[-1].startswith("error: ")
