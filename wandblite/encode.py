"""Value encoding: what a logged value becomes in the run file (docs/semantics.md section 5).

Layer 3: stdlib; numpy is imported only when a numpy (or torch) value is met; media types come from
``wandblite.data_types`` (imported on first use), so ``import wandblite`` stays light.

Three modes: ``"history"`` (``run.log``), ``"summary"`` (explicit ``run.summary[k] = v``: NaN becomes
None, arrays over 32 elements become a stats dict) and ``"config"``. The caller's objects are never
mutated: containers are copied (a wandblite decision, docs/semantics.md section 11).

Errors are ``DataError`` (a ValueError and a TypeError) with wandb's text, followed by the key path.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from wandblite.errors import DataError
from wandblite.vocab import key_text

__all__ = ["encode_value"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_BIG_OBJECT = 100_000


def _is_numpy(v: Any) -> bool:
    return type(v).__module__ == "numpy"


def _path_str(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _where(path: tuple[str, ...]) -> str:
    return f" (key {_path_str(path)!r})" if path else ""


def encode_value(
    v: Any,
    path: tuple[str, ...],
    mode: str,
    ctx: Any = None,
    step: int = 0,
) -> Any:
    """Return the normalised form of ``v`` (plain str/int/float/bool/None/list/dict).

    ``ctx`` provides ``media_store()`` for media values (history and summary modes).
    """
    t = type(v)
    if t is float:
        if mode == "summary" and math.isnan(v):
            return None
        return v
    if t is int:
        if _INT64_MIN <= v <= _INT64_MAX:
            return v
        return float(v)  # GO turns ints beyond int64 into floats
    if t is str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return v.encode("utf-8", "replace").decode("utf-8")
        return v
    if v is None or t is bool:
        return v
    if isinstance(v, Mapping):
        out: dict[str, Any] = {}
        for k, x in v.items():
            ks = k if type(k) is str else _json_key(k, path)
            out[ks] = encode_value(x, (*path, ks), mode, ctx, step)
        return out
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, float):  # float subclasses, numpy.float64
        f = float(v)
        return None if mode == "summary" and math.isnan(f) else f
    if isinstance(v, int) and not isinstance(v, bool):
        return encode_value(int(v), path, mode, ctx, step)
    if _is_numpy(v):
        return _encode_numpy(v, path, mode, ctx, step)
    if t.__module__.startswith("torch"):  # cheap first look; the rule is data_types._base's
        from wandblite.data_types._base import is_torch_tensor, tensor_to_numpy

        if is_torch_tensor(v):
            try:
                arr = tensor_to_numpy(v)
            except Exception as exc:  # noqa: BLE001
                raise DataError(f"cannot convert torch tensor{_where(path)}: {exc}") from exc
            return _encode_numpy(arr, path, mode, ctx, step)
    if isinstance(v, (_dt.datetime, _dt.date)):
        return _iso(v)
    if isinstance(v, _dt.time):
        return v.isoformat()
    if isinstance(v, range):
        raise DataError(f"Object of type range is not JSON serializable{_where(path)}")
    if isinstance(v, (list, tuple, set, frozenset)):
        items = list(v)
        if sys.getsizeof(items) > _BIG_OBJECT:
            warnings.warn(
                f"Serializing object of type {t.__name__} that is {sys.getsizeof(items)} bytes",
                stacklevel=4,
            )
        if items and mode != "config" and _is_media(items[0]):
            from wandblite.data_types import encode_sequence

            store = _store(ctx, path)
            with _naming(path):
                return _clean(encode_sequence(items, store, _path_str(path), step), path)
        return [encode_value(x, path, mode, ctx, step) for x in items]
    if _is_media(v):
        if mode == "config":
            raise DataError(f"media values cannot be stored in config{_where(path)}")
        store = _store(ctx, path)
        with _naming(path):
            return _clean(v.to_json(store, _path_str(path), step), path)
    if _is_figure(v):
        if mode == "config":
            raise DataError(f"media values cannot be stored in config{_where(path)}")
        from wandblite.data_types import figure_to_image

        with _naming(path):
            img = figure_to_image(v)
            return _clean(img.to_json(_store(ctx, path), _path_str(path), step), path)
    if mode == "config" and hasattr(v, "__dict__") and type(v).__name__ == "Namespace":
        return encode_value(vars(v), path, mode, ctx, step)
    raise DataError(f"Object of type {t.__name__} is not JSON serializable{_where(path)}")


@contextlib.contextmanager
def _naming(path: tuple[str, ...]) -> Iterator[None]:
    """Add the key to a media error raised while storing a value, so the user knows which one."""
    try:
        yield
    except DataError as exc:
        if path and "(key " not in str(exc):
            raise DataError(f"{exc}{_where(path)}") from exc
        raise


def _json_key(k: Any, path: tuple[str, ...]) -> str:
    """A non-str map key as text (``vocab.key_text``), numpy scalars as their Python value; other
    types are refused."""
    if k is None or isinstance(k, (bool, int, float)):
        return key_text(k)
    if _is_numpy(k):
        return str(k.item())
    raise DataError(
        f"keys must be str, int, float, bool or None, not {type(k).__name__}{_where(path)}"
    )


def _iso(v: _dt.date) -> str:
    s = v.isoformat()
    if isinstance(v, _dt.datetime) and v.utcoffset() == _dt.timedelta(0) and s.endswith("+00:00"):
        s = s[:-6] + "Z"
    return s


def _is_media(v: Any) -> bool:
    mod = type(v).__module__
    if not mod.startswith("wandblite.data_types") and not mod.startswith("wandblite.plot"):
        return False
    from wandblite.data_types import Media

    return isinstance(v, Media)


def _is_figure(v: Any) -> bool:
    mod = type(v).__module__
    # the pyplot module itself (`log({"chart": plt})`) stands for its current figure, as in wandb
    if not mod.startswith("matplotlib") and getattr(v, "__name__", None) != "matplotlib.pyplot":
        return False
    from wandblite.data_types import is_matplotlib_figure

    return bool(is_matplotlib_figure(v))


def _store(ctx: Any, path: tuple[str, ...]) -> Any:
    if ctx is None:
        raise DataError(f"media cannot be stored here{_where(path)}")
    return ctx.media_store()


def _clean(obj: Any, path: tuple[str, ...]) -> Any:
    """Media JSON comes from data_types; make sure it is plain (no numpy) before packing."""
    return encode_value(obj, path, "history", None, 0) if not _plain(obj) else obj


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _plain(obj: Any) -> bool:
    t = type(obj)
    if t in _SCALAR_TYPES:
        return True
    if t is dict:
        return all(type(k) is str and _plain(x) for k, x in obj.items())
    if t is list:
        # A flat list of scalars (histogram values and bins) is checked in C, not item by item.
        return _SCALAR_TYPES.issuperset(map(type, obj)) or all(_plain(x) for x in obj)
    return False


def _encode_numpy(v: Any, path: tuple[str, ...], mode: str, ctx: Any, step: int) -> Any:
    import numpy as np

    if isinstance(v, np.generic):
        if isinstance(v, (np.datetime64, np.timedelta64)):
            return str(v)
        return encode_value(v.item(), path, mode, ctx, step)
    if not isinstance(v, np.ndarray):
        raise DataError(f"Object of type {type(v).__name__} is not JSON serializable{_where(path)}")
    if v.size == 1:
        return encode_value(v.reshape(()).item(), path, mode, ctx, step)
    if v.size <= 32 or mode == "config":
        return encode_value(v.tolist(), path, mode, ctx, step)
    if mode == "summary":
        flat = v.astype(np.float64).ravel()
        return {
            "_type": "numpy.ndarray",
            "var": float(np.var(flat)),
            "mean": float(np.mean(flat)),
            "min": float(np.min(flat)),
            "max": float(np.max(flat)),
            "10%": float(np.percentile(flat, 10)),
            "25%": float(np.percentile(flat, 25)),
            "75%": float(np.percentile(flat, 75)),
            "90%": float(np.percentile(flat, 90)),
            "size": int(v.size),
        }
    from wandblite.data_types import histogram_json

    return _clean(histogram_json(v, num_bins=32), path)
