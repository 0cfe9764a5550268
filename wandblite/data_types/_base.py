"""The ``Media`` base class and helpers shared by every media type.

A ``Media`` object validates its input when it is constructed (so a bad call raises before the
core writes anything) and produces its history JSON in ``to_json(store, key, step)``, storing its
bytes through the run's ``MediaStore`` first. The JSON never contains ``Media`` objects.

Imports: stdlib and numpy; Pillow only inside functions that need it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

#: Warnings that wandb prints with ``termwarn`` go to this logger.
log = logging.getLogger("wandblite")


class Media:
    """Base of every value type the core stores as a media leaf (``isinstance(v, Media)``)."""

    #: the ``_type`` of this object's history JSON
    _log_type: str = ""

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        """Store the bytes (if any) and return the history JSON (wandb's shape, docs/semantics.md §6)."""
        raise NotImplementedError


def logical_path(subdir: str, key: str, step: int, sha256: str, ext: str) -> str:
    """wandb's media file name: ``media/<subdir>/{key}_{step}_{sha256[:20]}.{ext}``."""
    return f"media/{subdir}/{key}_{step}_{sha256[:20]}.{ext}"


def store_bytes(
    store: MediaStore, data: bytes, ext: str, subdir: str, key: str, step: int
) -> dict[str, Any]:
    """Put ``data`` and return ``{"path", "sha256", "size", "blob"[, "offset"]}``."""
    ref = store.put(data, ext)
    out: dict[str, Any] = {"path": logical_path(subdir, key, step, ref["sha256"], ext)}
    out.update(ref)
    return out


def read_path(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a user's file; ``FileNotFoundError`` naming the path if it is missing."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No such file: '{os.fspath(path)}'")
    return p.read_bytes()


def is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def to_uint8(data: np.ndarray, what: str = "image") -> np.ndarray:
    """Pixels as uint8: uint8 kept; bool -> 0/255; ints clipped to 0..255; floats in 0..1 scaled
    by 255 (as wandb 0.18 did; negative floats are first normalized to 0..1); NaN/inf rejected."""
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.bool_:
        return data.astype(np.uint8) * 255
    if np.issubdtype(data.dtype, np.integer):
        return np.clip(data, 0, 255).astype(np.uint8)
    if not np.issubdtype(data.dtype, np.floating):
        raise DataError(f"{what} data must be numeric, got dtype {data.dtype}")
    if data.size == 0:
        return data.astype(np.uint8)
    lo, hi = float(data.min()), float(data.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise DataError(f"{what} data contains NaN or inf values")
    f = data.astype(np.float64)
    if lo < 0:
        span = hi - lo
        f = (f - lo) / span if span > 0 else np.zeros_like(f)
        hi = 1.0
    if hi <= 1.0:
        f = f * 255
    return np.clip(f, 0, 255).astype(np.uint8)


def is_torch_tensor(value: Any) -> bool:
    """True for a torch tensor (``Tensor``, ``Parameter``, subclasses), told by its class's module:
    torch is never imported here, so only a caller that already holds a tensor has torch loaded."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach") and hasattr(value, "cpu")


def tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor's values as numpy, as wandb takes them: detached from autograd (``requires_grad``),
    copied to the CPU from any device, sparse made dense; a dtype numpy has no match for (bfloat16,
    float8) becomes float32 (wandb raises there)."""
    t = tensor.detach().cpu()
    if getattr(t, "is_sparse", False):
        t = t.to_dense()
    if getattr(t, "is_conj", None) is not None and t.is_conj():
        t = t.resolve_conj()
    try:
        return np.asarray(t.numpy())
    except TypeError:  # "Got unsupported ScalarType BFloat16"
        return np.asarray(t.float().numpy())


def as_array(data: Any) -> np.ndarray | None:
    """``data`` as a numpy array if it is one (or a tensor: ``tensor_to_numpy``), else None."""
    if isinstance(data, np.ndarray):
        return data
    if is_torch_tensor(data):
        return tensor_to_numpy(data)
    mod = type(data).__module__
    if (mod.startswith("tensorflow") or mod.startswith("jax")) and hasattr(data, "__array__"):
        return np.asarray(data)
    return None


def tensor_cell(tensor: Any) -> Any:
    """A tensor in a table cell or a chart field, as wandb's JSON encoder writes it: a 0-d or
    one-element tensor is its number, any other its (nested) list. (wandb refuses a tensor of more
    than 32 elements there with "Circular reference detected"; wandblite writes the list, as it does
    for a numpy array.)"""
    arr = tensor_to_numpy(tensor)
    if arr.size == 1:
        return arr.reshape(-1)[0].item()
    return arr.tolist()


def jsonable(value: Any, what: str) -> Any:
    """A plain JSON value for a table cell or chart field (numpy scalars/arrays, dates, bytes)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if is_torch_tensor(value):
        return tensor_cell(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v, what) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    raise DataError(f"{what}: object of type {type(value).__name__} is not JSON serializable")
