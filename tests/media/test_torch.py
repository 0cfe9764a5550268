"""torch tensors where wandb takes them: Image, lists of images, Video, Histogram, Audio, Table cells.

Each conversion is pinned against the installed wandb where wandb gives an answer (``wandb.Image(t).image``,
``wandb.Histogram``, wandb's JSON encoder for table cells), and against wandblite's numpy path where
wandblite decides (floats in 0..1 are scaled, docs/semantics.md section 11).
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wandblite
from wandblite.data_types import Audio, Histogram, Image, Table, Video, encode_sequence
from wandblite.errors import DataError
from wandblite.media import MediaStore, read_blob

torch = pytest.importorskip("torch")


@pytest.fixture
def wandb(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return pytest.importorskip("wandb")


def _gen() -> Any:
    return torch.Generator().manual_seed(0)


def _pixels(im: Any) -> np.ndarray:
    return np.asarray(im.image)


@pytest.mark.parametrize(("shape", "mode"), [((1, 28, 28), "L"), ((3, 6, 5), "RGB"), ((4, 6, 5), "RGBA")])
@pytest.mark.parametrize("dtype", ["uint8", "float_0_255"])
def test_channels_first_tensor_is_the_image_wandb_makes(wandb: Any, shape: tuple[int, ...], mode: str,
                                                        dtype: str) -> None:
    t = torch.randint(0, 256, shape, dtype=torch.uint8, generator=_gen())
    if dtype == "float_0_255":
        t = t.float() + 0.25  # values above 1: truncated to 8 bits, as wandb does
    ours, theirs = Image(t).image, wandb.Image(t).image
    assert ours.mode == theirs.mode == mode
    assert ours.size == theirs.size == (shape[2], shape[1])  # PIL's (width, height)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_the_mnist_tensor_that_used_to_raise(wandb: Any) -> None:
    t = torch.zeros(1, 28, 28)
    t[0, 3:9, 4:6] = 200.0
    im = Image(t)
    assert (im.image.mode, im.width, im.height) == ("L", 28, 28)
    assert np.array_equal(_pixels(im), _pixels(wandb.Image(t)))


def test_requires_grad_parameter_and_non_contiguous_tensors(wandb: Any) -> None:
    base = torch.randint(0, 256, (6, 5, 3), generator=_gen()).float()
    chw = base.permute(2, 0, 1)  # a non-contiguous (3, 6, 5) view
    grad = chw.clone().requires_grad_()
    param = torch.nn.Parameter(chw.clone())
    expected = _pixels(wandb.Image(grad))
    for t in (chw, grad, param, grad * 1):  # the last one is a non-leaf of an autograd graph
        assert np.array_equal(_pixels(Image(t)), expected)
    assert np.array_equal(expected, base.numpy().astype(np.uint8))  # CHW moved back to HWC


def test_float_tensor_in_0_1_is_scaled_like_a_float_array() -> None:
    t = torch.rand(3, 6, 5, generator=_gen())
    ours = _pixels(Image(t))
    assert np.array_equal(ours, _pixels(Image(t.permute(1, 2, 0).numpy())))  # the numpy rule, HWC
    assert np.array_equal(ours, (t.permute(1, 2, 0).numpy().astype(np.float64) * 255).astype(np.uint8))
    assert ours.max() > 200  # not wandb 0.31's black image (docs/semantics.md section 11)


def test_channels_last_grey_batch_of_one_and_half_precision_tensors() -> None:
    hwc = torch.randint(0, 256, (6, 5, 3), dtype=torch.uint8, generator=_gen())
    assert Image(hwc).image.mode == "RGB" and np.array_equal(_pixels(Image(hwc)), hwc.numpy())
    grey = hwc[..., 0]
    assert Image(grey).image.mode == "L" and np.array_equal(_pixels(Image(grey)), grey.numpy())
    batch1 = hwc.permute(2, 0, 1).unsqueeze(0)  # (1, 3, 6, 5)
    assert np.array_equal(_pixels(Image(batch1)), hwc.numpy())
    assert np.array_equal(_pixels(Image(torch.zeros(1, 1, 6, 5))), np.zeros((6, 5), np.uint8))
    for dtype in (torch.float16, torch.bfloat16):
        t = torch.full((1, 6, 5), 7.0, dtype=dtype)
        assert np.array_equal(_pixels(Image(t)), np.full((6, 5), 7, np.uint8))


def test_first_axis_of_1_3_or_4_is_channels_as_in_wandb(wandb: Any) -> None:
    ambiguous = torch.randint(0, 256, (3, 5, 3), dtype=torch.uint8, generator=_gen())
    assert Image(ambiguous).image.size == wandb.Image(ambiguous).image.size == (3, 5)
    assert np.array_equal(_pixels(Image(ambiguous)), _pixels(wandb.Image(ambiguous)))


@pytest.mark.parametrize("shape", [(2, 4, 5), (2, 1, 4, 5), (5,)])
def test_unsupported_tensor_shapes_raise_wandbs_message(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match=rf"Un-supported shape for image conversion \[{', '.join(map(str, shape))}\]"):
        Image(torch.zeros(shape))


def test_numpy_arrays_lose_trivial_axes_as_in_wandb(wandb: Any) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (1, 6, 5), dtype=np.uint8)
    assert np.array_equal(_pixels(Image(arr)), _pixels(wandb.Image(arr)))
    assert np.array_equal(_pixels(Image(arr[..., None])), arr[0])


def test_mode_and_jpeg_file_type_with_a_tensor(wandb: Any) -> None:
    t = torch.randint(0, 256, (1, 6, 5), dtype=torch.uint8, generator=_gen())
    assert Image(t, mode="RGB").image.mode == wandb.Image(t, mode="RGB").image.mode == "RGB"
    rgba = torch.randint(0, 256, (4, 6, 5), dtype=torch.uint8, generator=_gen())
    assert Image(rgba, file_type="jpg").image.mode == "RGB"


def test_a_list_of_image_tensors_is_images_separated(store: MediaStore, run_dir: Path) -> None:
    batch = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=_gen())
    images = [Image(x, caption=f"label {i}") for i, x in enumerate(batch)]
    out = encode_sequence(images, store, "examples", 3)
    assert (out["_type"], out["count"], out["width"], out["height"]) == ("images/separated", 5, 28, 28)
    assert out["captions"] == [f"label {i}" for i in range(5)]
    from PIL import Image as PILImage

    first = PILImage.open(io.BytesIO(read_blob(run_dir, out["images"][0])))
    assert np.array_equal(np.asarray(first), batch[0, 0].numpy())


def test_video_from_a_time_channels_height_width_tensor(store: MediaStore) -> None:
    frames = torch.randint(0, 256, (6, 3, 8, 10), dtype=torch.uint8, generator=_gen())
    ours, from_numpy = Video(frames.float().requires_grad_(), fps=5), Video(frames.numpy(), fps=5)
    assert (ours.frames, ours.height, ours.width) == (6, 8, 10)
    a, b = ours.to_json(store, "v", 0), from_numpy.to_json(store, "v", 0)
    assert a["sha256"] == b["sha256"]  # the same GIF as the numpy frames
    batch = Video(frames.unsqueeze(0).repeat(3, 1, 1, 1, 1))  # (B, T, C, H, W): tiled as wandb tiles
    assert (batch.frames, batch.height, batch.width) == (6, 2 * 8, 2 * 10)


def test_histogram_and_np_histogram_from_tensors_equal_wandbs(wandb: Any) -> None:
    g = _gen()
    for t in (torch.randn(1000, generator=g), torch.randn(40, 3, dtype=torch.float64, generator=g),
              torch.randint(-5, 9, (40,), generator=g), torch.full((7,), 3.0)):
        ours, theirs = Histogram(t), wandb.Histogram(t)
        assert (ours.histogram, ours.bins) == (theirs.histogram, theirs.bins)
        assert Histogram(t, num_bins=10).bins == wandb.Histogram(t, num_bins=10).bins
    grad = torch.randn(500, generator=g).requires_grad_()
    assert Histogram(grad).histogram == wandb.Histogram(grad.detach()).histogram  # wandb's numpy() refuses grad
    hist = torch.histogram(torch.randn(300, generator=g), bins=12)
    ours, theirs = Histogram(np_histogram=hist), wandb.Histogram(np_histogram=hist)
    assert (ours.histogram, ours.bins) == (theirs.histogram, theirs.bins)
    counts, edges = torch.tensor([1, 2, 3]), torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    assert Histogram(np_histogram=(counts, edges)).to_json() == {
        "_type": "histogram", "values": [1, 2, 3], "bins": [0.0, 1.0, 2.0, 3.0]}


def test_audio_from_tensors_is_the_numpy_wav(store: MediaStore) -> None:
    wave_t = torch.sin(torch.linspace(0, 100, 4000)).mul(0.5)
    for t, channels in ((wave_t, 1), (torch.stack([wave_t, -wave_t], dim=1).requires_grad_(), 2)):
        ours = Audio(t, sample_rate=8000)
        same = Audio(t.detach().numpy(), sample_rate=8000)
        assert ours._data == same._data
        assert (ours.sample_rate, ours.duration, ours.channels) == (8000, 0.5, channels)
        with wave.open(io.BytesIO(ours._data)) as w:
            assert (w.getnchannels(), w.getnframes(), w.getframerate()) == (channels, 4000, 8000)
    with pytest.raises(DataError, match=r"got shape \[2, 4000\] \(a torchaudio waveform is \(channels, samples\)"):
        Audio(torch.zeros(2, 4000), sample_rate=8000)


def test_table_cells_holding_tensors_are_written_as_wandbs_encoder_writes_them(
        wandb: Any, store: MediaStore, run_dir: Path) -> None:
    import json

    from wandb.util import json_dumps_safer

    cells = [torch.tensor(1.5), torch.tensor(3), torch.tensor(True), torch.tensor([7.0]), torch.tensor([[2]]),
             torch.arange(4.0), torch.zeros(2, 3, dtype=torch.int64), torch.tensor(2.0, requires_grad=True) * 3]
    table = Table(columns=[f"c{i}" for i in range(len(cells))], data=[cells])
    ref = table.to_json(store, "t", 0)
    written = json.loads(read_blob(run_dir, ref))["data"][0]
    assert written == [json.loads(json_dumps_safer(c)) for c in cells]
    assert written == [1.5, 3, True, 7.0, 2, [0.0, 1.0, 2.0, 3.0], [[0, 0, 0], [0, 0, 0]], 6.0]
    big = Table(columns=["img", "pred"], data=[[torch.zeros(1, 6, 6), torch.tensor(4)]])  # wandb raises here
    assert json.loads(read_blob(run_dir, big.to_json(store, "b", 0)))["data"] == [[[[[0.0] * 6] * 6], 4]]
    from_2d = Table(columns=["a", "b"], data=torch.tensor([[1, 2], [3, 4]]))
    assert from_2d.data == [[1, 2], [3, 4]]


def test_table_of_image_tensors_logged_in_a_run(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="tt")
    batch = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8, generator=_gen())
    table = Table(columns=["image", "pred", "target"])
    for x, pred, target in zip(batch, torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3]), strict=True):
        table.add_data(Image(x), pred, target)
    run.log({"predictions": table})
    run.finish()
    r = wandblite.replay(runs_dir / "tt")
    (row,) = r.scan_history()
    value = row["predictions"]
    assert (value["_type"], value["nrows"], value["ncols"]) == ("table-file", 3, 3)
    from wandblite.media import wrap_media

    doc = wrap_media(value, r.path).open()
    assert [c[1:] for c in doc["data"]] == [[1, 1], [2, 0], [3, 3]]
    assert [(c[0]["_type"], c[0]["width"], c[0]["height"]) for c in doc["data"]] == [("image-file", 8, 8)] * 3


def test_tensors_in_history_any_dtype(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="th")
    run.log({"bf16": torch.tensor(1.5, dtype=torch.bfloat16), "loss": torch.tensor(0.25, requires_grad=True) * 2})
    run.finish()
    (row,) = wandblite.replay(runs_dir / "th").scan_history()
    assert (row["bf16"], row["loss"]) == (1.5, 0.5)


def test_a_tensor_is_brought_to_the_cpu_before_it_is_read() -> None:
    # No GPU here: a tensor subclass records the device moves (its class claims torch's module, as a
    # device tensor's class does; wandblite tells tensors by their class's module).
    moves: list[str] = []

    class Tracked(torch.Tensor):
        def cpu(self, *args: Any, **kwargs: Any) -> Any:
            moves.append("cpu")
            return super().cpu(*args, **kwargs)

    Tracked.__module__ = "torch.tracked_for_test"
    t = torch.randint(0, 256, (1, 6, 5), dtype=torch.uint8, generator=_gen()).as_subclass(Tracked)
    assert np.array_equal(_pixels(Image(t)), t.as_subclass(torch.Tensor)[0].numpy())
    assert moves == ["cpu"]
    Histogram(t.float())
    Video(t.float().reshape(1, 1, 6, 5))
    assert moves == ["cpu"] * 3
