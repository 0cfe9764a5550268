"""``Audio`` (wandb.Audio): numpy samples written as 16-bit PCM WAV with the stdlib ``wave``.

numpy input (or a torch tensor, read through ``tensor_to_numpy``) is (samples,) or (samples,
channels), as wandb hands it to soundfile, with ``sample_rate`` required. Floats are
taken as -1..1 (clipped); int16 is kept; uint8 (centred at 128), int8 and int32 are rescaled to
16 bits. Files are kept as given (any extension); WAV files have their rate and duration read.

JSON: ``{"_type": "audio-file", "path", "sha256", "size"[, "caption"][, "sample_rate",
"duration", "channels"]}`` plus ``blob``/``offset``.
"""

from __future__ import annotations

import io
import os
import wave
from typing import TYPE_CHECKING, Any

import numpy as np

from wandblite.data_types._base import Media, as_array, is_path, read_path, store_bytes
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["Audio"]


def _to_int16(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.int16:
        return arr
    if arr.dtype == np.uint8:
        return ((arr.astype(np.int16) - 128) * 256).astype(np.int16)
    if arr.dtype == np.int8:
        return (arr.astype(np.int16) * 256).astype(np.int16)
    if arr.dtype == np.int32:
        return (arr >> 16).astype(np.int16)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not np.all(np.isfinite(arr)):
            raise DataError("Audio data contains NaN or inf values")
        return (np.clip(arr, -1.0, 1.0) * 32767).astype(np.int16)
    raise DataError(f"Audio data must be float (-1..1), int16, int32, int8 or uint8, got dtype {arr.dtype}")


def _wav_info(data: bytes) -> tuple[int, float, int] | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            rate, n, ch = w.getframerate(), w.getnframes(), w.getnchannels()
    except (wave.Error, EOFError):
        return None
    return rate, (n / rate if rate else 0.0), ch


class Audio(Media):
    """wandb.Audio: ``Audio(samples, sample_rate=16000)`` or ``Audio("clip.wav")``."""

    _log_type = "audio-file"

    def __init__(self, data_or_path: Any, sample_rate: int | None = None, caption: str | None = None) -> None:
        self.caption = None if caption is None else str(caption)
        self.sample_rate: int | None = None
        self.duration: float | None = None
        self.channels: int | None = None
        if is_path(data_or_path):
            name = os.fspath(data_or_path)
            self._data = read_path(name)
            self.ext = name.rsplit(".", 1)[-1].lower() if "." in os.path.basename(name) else "wav"
            if not self.ext.isalnum():
                self.ext = "bin"
            info = _wav_info(self._data) if self.ext == "wav" else None
            if info:
                self.sample_rate, self.duration, self.channels = info
            return
        arr = as_array(data_or_path)
        if arr is None:
            if isinstance(data_or_path, (list, tuple)):
                arr = np.asarray(data_or_path)
            else:
                raise DataError(f"Audio data must be a numpy array or a file path, got {type(data_or_path).__name__}")
        if sample_rate is None:
            raise DataError("Argument sample_rate is required when instantiating wandb.Audio with raw data.")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise DataError(f"sample_rate must be a positive int, got {sample_rate!r}")
        if arr.ndim not in (1, 2) or arr.shape[0] == 0:
            raise DataError(f"Audio data must be (samples,) or (samples, channels), got shape {list(arr.shape)}")
        pcm = _to_int16(arr)
        channels = 1 if pcm.ndim == 1 else pcm.shape[1]
        if not 1 <= channels <= 64:
            hint = " (a torchaudio waveform is (channels, samples): pass waveform.T)" if arr.shape[0] <= 64 else ""
            raise DataError(
                f"Audio data must be (samples, channels) with 1..64 channels, got shape {list(arr.shape)}{hint}"
            )
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        self._data = buf.getvalue()
        self.ext = "wav"
        self.sample_rate = int(sample_rate)
        self.duration = pcm.shape[0] / int(sample_rate)
        self.channels = channels

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        ref = store_bytes(store, self._data, self.ext, "audio", key, step)
        out: dict[str, Any] = {"_type": "audio-file", "path": ref.pop("path"), "sha256": ref.pop("sha256")}
        out["size"] = ref.pop("size")
        if self.caption is not None:
            out["caption"] = self.caption
        if self.sample_rate is not None:
            out["sample_rate"] = self.sample_rate
            out["duration"] = self.duration
            out["channels"] = self.channels
        out.update(ref)
        return out
