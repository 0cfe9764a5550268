"""``Video`` (wandb.Video): numpy frames encoded to an animated GIF with Pillow, or a file kept.

numpy input is (T, C, H, W) or (B, T, C, H, W) with C in 1, 3, 4; a batch is tiled into a grid
(rows a power of two, as wandb does). uint8 is expected; floats in 0..1 are scaled by 255 like
images. ``format`` defaults to ``gif`` (docs/semantics.md section 11); numpy cannot be encoded to mp4/webm/ogg
without moviepy, so those formats are only accepted for files. GIF frames are paletted (256 colours
per frame) and Pillow merges consecutive identical frames into one longer frame.

JSON: ``{"_type": "video-file", "path", "sha256", "size"[, "width", "height", "frames"]
[, "caption"]}`` plus ``blob``/``offset``. fps and format are not in the JSON (as in wandb); the
format is the path's extension.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from wandblite.data_types._base import Media, as_array, is_path, read_path, store_bytes, to_uint8
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["Video"]

EXTS = ("gif", "mp4", "webm", "ogg")


def _tile(video: np.ndarray) -> np.ndarray:
    """(B, T, C, H, W) -> (T, C, rows*H, cols*W), padding B up to a power of two with black."""
    b, t, c, h, w = video.shape
    n = 1 << max(b - 1, 0).bit_length()
    if n > b:
        video = np.concatenate([video, np.zeros((n - b, t, c, h, w), video.dtype)], axis=0)
    rows = 1 << ((n.bit_length() - 1) // 2)
    cols = n // rows
    grid = video.reshape(rows, cols, t, c, h, w).transpose(2, 3, 0, 4, 1, 5)
    return grid.reshape(t, c, rows * h, cols * w)


def _encode_gif(frames: np.ndarray, fps: float) -> bytes:
    """(T, C, H, W) uint8 -> animated GIF bytes."""
    from PIL import Image as PILImage

    t, c = frames.shape[0], frames.shape[1]
    hwc = frames.transpose(0, 2, 3, 1)
    if c == 1:
        hwc = hwc[..., 0]
    elif c == 4:
        hwc = hwc[..., :3]  # GIF has no alpha channel
    images = [PILImage.fromarray(np.ascontiguousarray(hwc[i])) for i in range(t)]
    buf = io.BytesIO()
    duration = max(round(1000.0 / fps), 10)
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
    )
    return buf.getvalue()


class Video(Media):
    """wandb.Video: ``Video(frames, fps=4)`` (numpy -> GIF) or ``Video("clip.mp4")``."""

    _log_type = "video-file"

    def __init__(
        self, data_or_path: Any, caption: str | None = None, fps: float | None = 4, format: str | None = None
    ) -> None:
        self.caption = None if caption is None else str(caption)
        self.fps = 4 if fps is None else fps
        if format is not None and format not in EXTS:
            raise DataError(f"wandb.Video accepts {', '.join(EXTS)} formats")
        if not isinstance(self.fps, (int, float)) or isinstance(self.fps, bool) or not self.fps > 0:
            raise DataError(f"fps must be a positive number, got {fps!r}")
        self.width: int | None = None
        self.height: int | None = None
        self.frames: int | None = None
        if is_path(data_or_path):
            name = os.fspath(data_or_path)
            ext = name.rsplit(".", 1)[-1].lower() if "." in os.path.basename(name) else ""
            if ext not in EXTS:
                raise DataError(f"wandb.Video accepts {', '.join(EXTS)} formats")
            self._data = read_path(name)
            self.format = ext
            if ext == "gif":
                self._read_gif_info()
            return
        if hasattr(data_or_path, "read") and not isinstance(data_or_path, (str, bytes)):
            if format is None:
                raise DataError("a file object given to wandb.Video needs format= (gif, mp4, webm or ogg)")
            self._data = data_or_path.read()
            self.format = format
            if format == "gif":
                self._read_gif_info()
            return
        arr = as_array(data_or_path)
        if arr is None:
            raise DataError(f"Video data must be a numpy array or a file path, got {type(data_or_path).__name__}")
        if arr.ndim < 4:
            raise DataError("Video must be at least 4 dimensions: time, channels, height, width")
        if arr.ndim > 5:
            raise DataError(
                f"Video must be (time, channels, height, width) or (batch, time, channels, height, "
                f"width), got shape {list(arr.shape)}"
            )
        if format not in (None, "gif"):
            raise DataError(
                f"wandblite encodes numpy video as gif only (format={format!r} needs a file): "
                "pass format='gif' or a path to an mp4/webm/ogg file"
            )
        if arr.ndim == 5:
            arr = _tile(arr)
        t, c, h, w = arr.shape
        if c not in (1, 3, 4):
            raise DataError(f"Video channels must be 1, 3 or 4 (shape is time, channels, height, width), got {c}")
        if t == 0 or h == 0 or w == 0:
            raise DataError(f"Video has no pixels: shape {list(arr.shape)}")
        self._frames_array = to_uint8(arr, "video")
        self._data = b""
        self.format = "gif"
        self.width, self.height, self.frames = w, h, t

    def _read_gif_info(self) -> None:
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        try:
            with PILImage.open(io.BytesIO(self._data)) as im:
                self.width, self.height = im.size
                self.frames = int(getattr(im, "n_frames", 1))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read gif video: {e}") from None

    def _bytes(self) -> bytes:
        if not self._data:
            self._data = _encode_gif(self._frames_array, float(self.fps))
            del self._frames_array
        return self._data

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        ref = store_bytes(store, self._bytes(), self.format, "videos", key, step)
        out: dict[str, Any] = {"_type": "video-file", "path": ref.pop("path"), "sha256": ref.pop("sha256")}
        out["size"] = ref.pop("size")
        if self.width is not None:
            out["width"], out["height"] = self.width, self.height
        if self.frames is not None:
            out["frames"] = self.frames
        if self.caption is not None:
            out["caption"] = self.caption
        out.update(ref)
        return out
