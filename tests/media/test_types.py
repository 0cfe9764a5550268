"""Media types: history JSON shapes (docs/semantics.md section 6), stored bytes that open, and every error."""

from __future__ import annotations

import io
import json
import logging
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandblite.data_types import (
    Audio,
    Histogram,
    Html,
    Image,
    Media,
    Object3D,
    Table,
    Video,
    encode_sequence,
    figure_to_image,
    histogram_json,
    is_matplotlib_figure,
)
from wandblite.errors import DataError
from wandblite.media import MediaStore, read_blob

RNG = np.random.default_rng(0)


def _plain_json(value: Any) -> None:
    """The JSON contract: only plain JSON types, no Media objects, no numpy."""
    assert json.loads(json.dumps(value)) == value


# -- Image ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "mode"),
    [((10, 12), "L"), ((10, 12, 1), "L"), ((10, 12, 3), "RGB"), ((10, 12, 4), "RGBA")],
)
def test_image_from_numpy_round_trips_as_png(store: MediaStore, run_dir: Path, shape: tuple[int, ...], mode: str, pil: Any) -> None:
    arr = RNG.integers(0, 255, shape, dtype=np.uint8)
    j = Image(arr, caption="cap").to_json(store, "examples", 7)
    _plain_json(j)
    assert j["_type"] == "image-file" and j["format"] == "png"
    assert (j["width"], j["height"]) == (12, 10) and j["caption"] == "cap"
    assert j["path"] == f"media/images/examples_7_{j['sha256'][:20]}.png"
    im = pil(run_dir, j)
    assert im.format == "PNG" and im.size == (12, 10) and im.mode == mode
    assert np.array_equal(np.asarray(im), arr.reshape(10, 12) if shape[-1:] == (1,) else arr)
    assert j["size"] == len(read_blob(run_dir, j))


def test_float_image_in_0_1_is_scaled_by_255(store: MediaStore, run_dir: Path, pil: Any) -> None:
    j = Image(np.full((4, 4, 3), 1.0)).to_json(store, "f", 0)
    assert np.asarray(pil(run_dir, j)).min() == 255
    j = Image(np.full((4, 4), 0.5, dtype=np.float32)).to_json(store, "f", 1)
    assert np.asarray(pil(run_dir, j)).max() == 127


def test_image_from_pil_and_from_path_keeps_format(store: MediaStore, run_dir: Path, tmp_path: Path, pil: Any) -> None:
    from PIL import Image as PILImage

    im = PILImage.new("RGB", (20, 10), (255, 0, 0))
    j = Image(im).to_json(store, "pil", 0)
    assert pil(run_dir, j).getpixel((0, 0)) == (255, 0, 0)
    path = tmp_path / "photo.jpg"
    im.save(path, format="JPEG")
    j = Image(str(path)).to_json(store, "file", 0)
    assert j["format"] == "jpg" and j["path"].endswith(".jpg")
    assert read_blob(run_dir, j) == path.read_bytes()
    assert (j["width"], j["height"]) == (20, 10)


def test_image_file_type_jpg_and_bmp(store: MediaStore, run_dir: Path, pil: Any) -> None:
    arr = RNG.integers(0, 255, (8, 8, 4), dtype=np.uint8)
    j = Image(arr, file_type="jpg").to_json(store, "j", 0)
    assert j["format"] == "jpg" and pil(run_dir, j).format == "JPEG"
    j = Image(arr, file_type="bmp").to_json(store, "b", 0)
    assert pil(run_dir, j).format == "BMP"


def test_image_from_matplotlib_figure_is_png(store: MediaStore, run_dir: Path, pil: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([1, 2, 3])
    assert is_matplotlib_figure(fig) and is_matplotlib_figure(ax) and is_matplotlib_figure(plt)
    assert not is_matplotlib_figure(np.zeros(3)) and not is_matplotlib_figure({"a": 1})
    img = figure_to_image(fig)
    assert isinstance(img, Image)
    j = img.to_json(store, "chart", 0)
    assert j["format"] == "png" and (j["width"], j["height"]) == (100, 50)
    assert pil(run_dir, j).size == (100, 50)
    assert Image(fig).to_json(store, "c2", 0)["sha256"] == j["sha256"]
    plt.close(fig)


def test_image_boxes_and_masks_are_stored_with_the_image(store: MediaStore, run_dir: Path, pil: Any) -> None:
    mask = np.zeros((8, 10), np.uint8)
    mask[2:4, 3:6] = 2
    boxes = {
        "predictions": {
            "box_data": [
                {"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.6}, "class_id": 1, "box_caption": "cat",
                 "scores": {"acc": 0.9}},
                {"position": {"middle": [3, 4], "width": 2, "height": 2}, "domain": "pixel", "class_id": 2},
            ],
            "class_labels": {1: "cat", 2: "dog"},
        }
    }
    masks = {"seg": {"mask_data": mask, "class_labels": {0: "bg", 2: "dog"}}}
    j = Image(np.zeros((8, 10, 3), np.uint8), boxes=boxes, masks=masks).to_json(store, "det", 0)
    _plain_json(j)
    bref = j["boxes"]["predictions"]
    assert bref["_type"] == "boxes2D"
    stored = json.loads(read_blob(run_dir, bref))
    assert stored["class_labels"] == {"1": "cat", "2": "dog"} and len(stored["box_data"]) == 2
    mref = j["masks"]["seg"]
    assert mref["_type"] == "mask" and mref["class_labels"] == {"0": "bg", "2": "dog"}
    assert np.array_equal(np.asarray(pil(run_dir, mref)), mask)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_or_path": np.zeros((4, 4, 5), np.uint8)}, r"Un-supported shape for image conversion \[4, 4, 5\]"),
        ({"data_or_path": np.zeros((4,), np.uint8)}, r"Un-supported shape for image conversion \[4\]"),
        ({"data_or_path": np.zeros((2, 4, 4, 3), np.uint8)}, "Un-supported shape"),
        ({"data_or_path": np.zeros((4, 4)), "file_type": "gif"}, r"file_type must be one of \['png', 'jpg', 'jpeg', 'bmp'\]"),
        ({"data_or_path": np.array([[np.nan, 0.5]])}, "NaN or inf"),
        ({"data_or_path": np.array([["a", "b"]])}, "must be numeric"),
        ({"data_or_path": 42}, "Image data must be"),
        ({"data_or_path": np.zeros((4, 4)), "boxes": {"p": {"box_data": [{"position": {"minX": 0}, "class_id": 1}]}}},
         r"boxes\['p'\].box_data\[0\]: position"),
        ({"data_or_path": np.zeros((4, 4)), "boxes": {"p": {"box_data": [{"position": {"middle": [0, 0], "width": 1, "height": 1}}]}}},
         "class_id"),
        ({"data_or_path": np.zeros((4, 4)), "boxes": {"p": {"box_data": [], "class_labels": {"x": "a"}}}}, "class_labels keys"),
        ({"data_or_path": np.zeros((4, 4)), "masks": {"m": {"mask_data": np.zeros((2, 2, 2))}}}, "2D array"),
        ({"data_or_path": np.zeros((4, 4)), "masks": {"m": {"mask_data": np.full((2, 2), 0.5)}}}, "integer class ids"),
        ({"data_or_path": np.zeros((4, 4)), "masks": {"m": {"mask_data": np.full((2, 2), 300)}}}, "0..255"),
        ({"data_or_path": np.zeros((4, 4)), "masks": {"m": {}}}, "needs 'mask_data'"),
        ({"data_or_path": np.zeros((4, 4)), "classes": [{"id": "x"}]}, "classes must be"),
        ({"data_or_path": np.zeros((4, 4)), "grouping": "a"}, "grouping"),
    ],
)
def test_image_validation_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message) as e:
        Image(**kwargs)
    assert isinstance(e.value, ValueError) and isinstance(e.value, TypeError)


def test_image_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        Image(str(tmp_path / "nope.png"))


def test_image_unreadable_file_is_a_data_error(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    p.write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read image file"):
        Image(p)


def test_image_constructor_error_writes_nothing(run_dir: Path) -> None:
    with pytest.raises(DataError):
        Image(np.zeros((4, 4, 7)))
    assert not (run_dir / "media").exists()


# -- lists ----------------------------------------------------------------------------------


def test_list_of_images_is_images_separated(store: MediaStore, run_dir: Path, pil: Any) -> None:
    imgs = [Image(RNG.integers(0, 255, (6, 5, 3), dtype=np.uint8), caption=f"c{i}") for i in range(3)]
    j = encode_sequence(imgs, store, "val.samples", 2)
    _plain_json(j)
    assert j["_type"] == "images/separated" and j["count"] == 3
    assert (j["width"], j["height"], j["format"]) == (5, 6, "png")
    assert j["captions"] == ["c0", "c1", "c2"]
    assert j["filenames"][0].startswith("media/images/val.samples_2_")
    assert [pil(run_dir, e).size for e in j["images"]] == [(5, 6)] * 3


def test_list_of_images_warns_on_size_mismatch_and_truncates_at_108(
    store: MediaStore, caplog: pytest.LogCaptureFixture
) -> None:
    imgs = [Image(np.zeros((4, 4), np.uint8)), Image(np.zeros((5, 5), np.uint8))]
    with caplog.at_level(logging.WARNING):
        j = encode_sequence(imgs, store, "k", 0)
    assert "Images sizes do not match. This will causes images to be display incorrectly in the UI." in caplog.text
    assert "captions" not in j
    many = [Image(np.full((2, 2), i, np.uint8)) for i in range(110)]
    with caplog.at_level(logging.WARNING):
        j = encode_sequence(many, store, "k", 1)
    assert j["count"] == 108 and "Only 108 Image will be uploaded." in caplog.text


def test_list_of_videos_audio_objects_and_mixed(store: MediaStore) -> None:
    vids = [Video(RNG.integers(0, 255, (2, 3, 4, 4), dtype=np.uint8), caption="v")] * 2
    assert encode_sequence(vids, store, "v", 0)["_type"] == "videos"
    auds = [Audio(np.zeros(100), sample_rate=100)]
    a = encode_sequence(auds, store, "a", 0)
    assert a["_type"] == "audio" and a["sampleRates"] == [100] and a["durations"] == [1.0]
    objs = [Object3D(np.zeros((3, 3)))]
    o = encode_sequence(objs, store, "o", 0)
    assert o["_type"] == "object3D" and o["filenames"][0].endswith(".pts.json")
    mixed = encode_sequence([Histogram([1, 2, 3]), 4, np.float32(0.5)], store, "m", 0)
    assert mixed[0]["_type"] == "histogram" and mixed[1:] == [4, 0.5]
    assert encode_sequence([Histogram([1]), object()], store, "m", 0, encode=lambda v: "enc") [1] == "enc"


# -- Video ----------------------------------------------------------------------------------


def test_video_numpy_becomes_gif_with_t_frames(store: MediaStore, run_dir: Path, pil: Any) -> None:
    frames = RNG.integers(0, 255, (5, 3, 16, 12), dtype=np.uint8)
    j = Video(frames, fps=4, caption="clip").to_json(store, "vid", 0)
    _plain_json(j)
    assert j["_type"] == "video-file" and j["path"].endswith(".gif")
    assert (j["width"], j["height"], j["frames"], j["caption"]) == (12, 16, 5, "clip")
    im = pil(run_dir, j)
    assert im.format == "GIF" and im.n_frames == 5 and im.size == (12, 16)
    assert im.info["duration"] == 250
    assert "fps" not in j and "format" not in j


def test_video_batch_is_tiled(store: MediaStore, run_dir: Path, pil: Any) -> None:
    frames = RNG.integers(0, 255, (3, 2, 1, 4, 6), dtype=np.uint8)  # B=3 -> padded to 4 -> 2x2 grid
    j = Video(frames).to_json(store, "vid", 0)
    assert (j["width"], j["height"], j["frames"]) == (12, 8, 2)
    assert pil(run_dir, j).n_frames == 2


def test_video_file_kept_as_given(store: MediaStore, run_dir: Path, tmp_path: Path) -> None:
    p = tmp_path / "clip.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42 fake")
    j = Video(str(p)).to_json(store, "v", 0)
    assert j["path"].endswith(".mp4") and read_blob(run_dir, j) == p.read_bytes()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((3, 4, 4), np.uint8),), {}, "Video must be at least 4 dimensions: time, channels, height, width"),
        ((np.zeros((1, 1, 1, 3, 4, 4), np.uint8),), {}, "Video must be"),
        ((np.zeros((2, 2, 4, 4), np.uint8),), {}, "channels must be 1, 3 or 4"),
        ((np.zeros((2, 3, 4, 4), np.uint8),), {"format": "avi"}, "wandb.Video accepts gif, mp4, webm, ogg formats"),
        ((np.zeros((2, 3, 4, 4), np.uint8),), {"format": "mp4"}, "gif only"),
        ((np.zeros((2, 3, 4, 4), np.uint8),), {"fps": 0}, "fps must be a positive number"),
        (("clip.avi",), {}, "wandb.Video accepts"),
        (([1, 2, 3],), {}, "Video data must be"),
    ],
)
def test_video_validation_errors(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Video(*args, **kwargs)


def test_video_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Video(str(tmp_path / "x.mp4"))


# -- Audio ----------------------------------------------------------------------------------


def test_audio_numpy_is_16_bit_wav_with_all_samples(store: MediaStore, run_dir: Path) -> None:
    samples = np.sin(np.linspace(0, 100, 16000)).astype(np.float32)
    j = Audio(samples, sample_rate=8000, caption="tone").to_json(store, "snd", 0)
    _plain_json(j)
    assert j["_type"] == "audio-file" and j["path"].endswith(".wav")
    assert (j["sample_rate"], j["duration"], j["channels"], j["caption"]) == (8000, 2.0, 1, "tone")
    with wave.open(io.BytesIO(read_blob(run_dir, j))) as w:
        assert (w.getnframes(), w.getframerate(), w.getsampwidth(), w.getnchannels()) == (16000, 8000, 2, 1)


def test_audio_stereo_int16(store: MediaStore, run_dir: Path) -> None:
    j = Audio(np.zeros((50, 2), np.int16), sample_rate=10).to_json(store, "s", 0)
    with wave.open(io.BytesIO(read_blob(run_dir, j))) as w:
        assert (w.getnframes(), w.getnchannels()) == (50, 2)


def test_audio_file_kept(store: MediaStore, run_dir: Path, tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(100)
        w.writeframes(b"\x00\x00" * 300)
    j = Audio(str(p)).to_json(store, "a", 0)
    assert read_blob(run_dir, j) == p.read_bytes() and j["duration"] == 3.0


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros(10),), {}, "Argument sample_rate is required when instantiating wandb.Audio with raw data."),
        ((np.zeros(10),), {"sample_rate": -1}, "sample_rate must be a positive int"),
        ((np.zeros((2, 2, 2)),), {"sample_rate": 10}, "must be"),
        ((np.array([np.nan, 0.0]),), {"sample_rate": 10}, "NaN or inf"),
        ((np.array(["a"]),), {"sample_rate": 10}, "dtype"),
        ((object(),), {"sample_rate": 10}, "Audio data must be"),
    ],
)
def test_audio_validation_errors(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Audio(*args, **kwargs)


def test_audio_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Audio(str(tmp_path / "x.wav"))


# -- Histogram ------------------------------------------------------------------------------


def test_histogram_matches_numpy_and_touches_no_store(run_dir: Path) -> None:
    data = RNG.normal(size=1000)
    h = Histogram(data, num_bins=20)
    j = h.to_json(MediaStore(run_dir), "h", 0)
    values, bins = np.histogram(data, bins=20)
    assert j == {"_type": "histogram", "values": values.tolist(), "bins": bins.tolist()}
    assert not (run_dir / "media").exists()
    assert Histogram(np_histogram=(values, bins)).to_json(None, "h", 0) == j  # type: ignore[arg-type]


def test_histogram_json_is_the_core_helper() -> None:
    j = histogram_json(np.arange(100), 32)
    assert len(j["values"]) == 32 and len(j["bins"]) == 33 and sum(j["values"]) == 100
    assert histogram_json(np.full(40, 3.0))["bins"][0] == 2.5  # constant array: numpy's +-0.5
    assert Histogram(list(range(100)), num_bins=32).histogram == j["values"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sequence": [1, 2], "num_bins": 513}, "The maximum length of a histogram is 512"),
        ({"np_histogram": ([1] * 513, list(range(514)))}, "The maximum length of a histogram is 512"),
        ({"np_histogram": ([1, 2, 3],)}, "Expected np_histogram to be a tuple of \\(values, bin_edges\\) or sequence to be specified"),
        ({}, "Expected np_histogram to be a tuple"),
        ({"np_histogram": ([1, 2], [0, 1])}, r"len\(bins\) must be len\(histogram\) \+ 1"),
        ({"sequence": [1.0, float("nan"), float("inf")]}, "1 NaN and 1 inf"),
        ({"sequence": ["a", "b"]}, "numeric"),
        ({"np_histogram": ([1, float("nan")], [0, 1, 2])}, "NaN or inf"),
        ({"sequence": [1, 2], "num_bins": 0}, "num_bins"),
    ],
)
def test_histogram_validation_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Histogram(**kwargs)


def test_histogram_json_nan_is_a_data_error() -> None:
    with pytest.raises(DataError, match="NaN"):
        histogram_json(np.array([np.nan] * 40))


# -- Table ----------------------------------------------------------------------------------


def test_table_round_trip_with_image_cell(store: MediaStore, run_dir: Path, pil: Any, table: Any) -> None:
    t = Table(columns=["id", "img", "score"])
    t.add_data(1, Image(np.zeros((3, 4), np.uint8)), np.float32(0.5))
    t.add_data(2, Image(np.full((3, 4), 200, np.uint8)), 0.25)
    t.add_column("label", ["a", "b"])
    assert t.get_column("id") == [1, 2]
    assert t.get_column("score", convert_to="numpy").dtype == np.float64
    j = t.to_json(store, "preds", 4)
    _plain_json(j)
    assert j["_type"] == "table-file" and (j["ncols"], j["nrows"]) == (4, 2) and j["log_mode"] == "IMMUTABLE"
    assert j["path"] == f"media/table/preds_4_{j['sha256'][:20]}.table.json"
    tj = table(run_dir, j)
    assert tj["columns"] == ["id", "img", "score", "label"]
    cell = tj["data"][1][1]
    assert cell["_type"] == "image-file" and pil(run_dir, cell).size == (4, 3)
    assert tj["data"][0][2] == 0.5 and tj["data"][1][3] == "b"


def test_table_from_rows_ndarray_and_dataframe(store: MediaStore, run_dir: Path, table: Any) -> None:
    import pandas as pd

    assert Table(columns=["a", "b"], rows=[[1, 2]]).data == [[1, 2]]
    assert Table(data=np.arange(6).reshape(3, 2)).columns == ["Column_1", "Column_2"]
    assert Table().columns == ["Input", "Output", "Expected"]
    df = pd.DataFrame({"x": [1, 2, 3], "y": [0.5, float("nan"), 2.0], "when": pd.to_datetime(["2024-01-02"] * 3)})
    t = Table(dataframe=df)
    j = t.to_json(store, "df", 0)
    tj = table(run_dir, j)
    assert tj["columns"] == ["x", "y", "when"] and len(tj["data"]) == 3
    assert tj["data"][0][0] == 1 and np.isnan(tj["data"][1][1]) and tj["data"][0][2].startswith("2024-01-02")
    assert Table(data=df).columns == ["x", "y", "when"]


def test_table_truncates_over_10000_rows_with_warning(store: MediaStore, run_dir: Path, caplog: pytest.LogCaptureFixture, table: Any) -> None:
    t = Table(columns=["i"], data=[[i] for i in range(10005)])
    with caplog.at_level(logging.WARNING):
        j = t.to_json(store, "big", 0)
    assert j["nrows"] == 10000 and len(table(run_dir, j)["data"]) == 10000
    assert "Truncating wandb.Table object to 10000 rows." in caplog.text


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Table(columns=["a", "b"], data=[[1, 2], [3]]), r"This table expects 2 columns: \['a', 'b'\], found 1"),
        (lambda: Table(columns=["a"]).add_data(1, 2), "This table expects 1 columns"),
        (lambda: Table(columns=["a", "a"]), "unique"),
        (lambda: Table(columns=["a"], data=[[1]]).add_column("b", [1, 2]), "Expected length 1, found 2"),
        (lambda: Table(columns=["a"]).add_column("a", []), "Column name must be a unique string"),
        (lambda: Table(columns=["a"]).get_column("z"), "no column 'z'"),
        (lambda: Table(columns=["a"], data=5), "list of rows"),
        (lambda: Table(columns=["a"], data=[[Table()]]), "cannot be a cell"),
        (lambda: Table(dataframe=[1]), "pandas DataFrame"),
    ],
)
def test_table_validation_errors(build: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        build()


def test_table_unserializable_cell_raises_at_to_json(store: MediaStore) -> None:
    t = Table(columns=["a"], data=[[object()]])
    with pytest.raises(DataError, match=r"Table column 'a'.*not JSON serializable"):
        t.to_json(store, "t", 0)


# -- Object3D -------------------------------------------------------------------------------


@pytest.mark.parametrize("cols", [3, 4, 6])
def test_point_cloud_has_its_points(store: MediaStore, run_dir: Path, cols: int) -> None:
    pts = RNG.normal(size=(50, cols))
    j = Object3D(pts).to_json(store, "cloud", 0)
    _plain_json(j)
    assert j["_type"] == "object3D-file" and j["path"].endswith(".pts.json") and j["points"] == 50
    assert np.allclose(json.loads(read_blob(run_dir, j)), pts)
    assert Object3D.from_numpy(pts).to_json(store, "cloud", 0)["sha256"] == j["sha256"]


@pytest.mark.parametrize("ext", ["obj", "gltf", "glb", "babylon", "stl", "pts.json"])
def test_object3d_files_kept(store: MediaStore, run_dir: Path, tmp_path: Path, ext: str) -> None:
    p = tmp_path / f"model.{ext}"
    p.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n" + ext.encode())
    j = Object3D(str(p)).to_json(store, "m", 0)
    assert j["path"].endswith("." + ext) and read_blob(run_dir, j) == p.read_bytes()
    with open(p, "rb") as f:
        assert Object3D.from_file(f).to_json(store, "m", 0)["sha256"] == j["sha256"]
    assert Object3D(io.BytesIO(p.read_bytes()), file_type=ext).to_json(store, "m", 0)["sha256"] == j["sha256"]


def test_object3d_scene_from_point_cloud(store: MediaStore, run_dir: Path) -> None:
    boxes = [{"corners": [[0, 0, 0]] * 8, "label": "car", "color": [255, 0, 0]}]
    j = Object3D.from_point_cloud(np.zeros((4, 3)), boxes=boxes).to_json(store, "scene", 0)
    scene = json.loads(read_blob(run_dir, j))
    assert scene["type"] == "lidar/beta" and len(scene["points"]) == 4 and scene["boxes"][0]["label"] == "car"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((4, 5)),), {}, "The shape of the numpy array must be one of either"),
        ((np.zeros(3),), {}, "The shape of the numpy array"),
        ((np.array([[0, 0, np.nan]]),), {}, "NaN or inf"),
        (("model.fbx",), {}, r"File 'model.fbx' is not compatible with Object3D: supported types are: obj, gltf, glb, babylon, stl, pts.json"),
        ((io.BytesIO(b"x"),), {}, "Must pass file_type keyword argument when using io objects."),
        ((io.BytesIO(b"x"),), {"file_type": "fbx"}, "Object 3D only supports numpy arrays or files of the type"),
        ((42,), {}, "data must be a numpy array, dict or a file object"),
        (({"type": "other", "points": []},), {}, "scene type"),
        (({"boxes": []},), {}, "needs 'points'"),
    ],
)
def test_object3d_validation_errors(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Object3D(*args, **kwargs)


def test_object3d_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Object3D(str(tmp_path / "x.obj"))


# -- Html -----------------------------------------------------------------------------------


def test_html_string_file_and_fileobj(store: MediaStore, run_dir: Path, tmp_path: Path) -> None:
    j = Html("<h1>hi</h1>", inject=False).to_json(store, "page", 0)
    assert j["_type"] == "html-file" and read_blob(run_dir, j) == b"<h1>hi</h1>"
    injected = read_blob(run_dir, Html("<html><head></head><body>x</body></html>").to_json(store, "p", 0)).decode()
    assert injected.startswith("<html><head><base target=\"_blank\">") and "http" not in injected
    p = tmp_path / "r.html"
    p.write_text("<p>file</p>")
    assert read_blob(run_dir, Html(str(p), inject=False).to_json(store, "p", 0)) == b"<p>file</p>"
    assert read_blob(run_dir, Html(io.StringIO("<b>io</b>"), inject=False).to_json(store, "p", 0)) == b"<b>io</b>"


def test_html_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="html must be a string or an io object"):
        Html(42)
    with pytest.raises(FileNotFoundError):
        Html(str(tmp_path / "missing.html"))


def test_every_type_is_media() -> None:
    for cls in (Image, Video, Audio, Histogram, Table, Object3D, Html):
        assert issubclass(cls, Media)
