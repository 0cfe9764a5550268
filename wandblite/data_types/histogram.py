"""``Histogram`` (wandb.Histogram) and ``histogram_json``, the one histogram code path.

The core calls ``histogram_json(array, 32)`` for numpy arrays of more than 32 elements
(docs/semantics.md section 5); ``Histogram`` uses the same function. A histogram has no file: its JSON is
``{"_type": "histogram", "values": [...], "bins": [...]}``. A torch tensor (the sequence, or either
half of ``np_histogram``, e.g. ``torch.histogram``'s result) is read through ``tensor_to_numpy``:
any device, ``requires_grad`` allowed. NaN or inf in the data raise
``DataError`` (numpy's own message would not name the problem). Cost: one min/max pass plus
``numpy.histogram`` with that range, so the data is not scanned twice for its range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from wandblite.data_types._base import Media, as_array
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["Histogram", "histogram_json"]

MAX_LENGTH = 512


def _counts(arr: np.ndarray, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise DataError(f"num_bins must be a positive int, got {num_bins!r}")
    if num_bins > MAX_LENGTH:
        raise DataError(f"The maximum length of a histogram is {MAX_LENGTH}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"Histogram data must be numeric, got dtype {arr.dtype}")
    flat = arr.ravel()
    if flat.size == 0:
        return np.histogram(flat, bins=num_bins)
    lo, hi = flat.min(), flat.max()
    if np.issubdtype(flat.dtype, np.floating) and not (np.isfinite(lo) and np.isfinite(hi)):
        nan = int(np.isnan(flat).sum())
        inf = int(np.isinf(flat).sum())
        raise DataError(
            f"Histogram data must be finite: it contains {nan} NaN and {inf} inf values; "
            "drop or replace them before logging"
        )
    # the range as numpy scalars of the data's type, exactly what numpy.histogram would compute
    # itself (wandb calls it without a range): float32 data gets the same float32 edges
    return np.histogram(flat, bins=num_bins, range=(lo, hi))


def _numbers(part: Any) -> np.ndarray:
    arr = as_array(part)
    return np.asarray(part) if arr is None else arr


def histogram_json(array: Any, num_bins: int = 32) -> dict[str, Any]:
    """``{"_type": "histogram", "values": [...num_bins ints], "bins": [...num_bins+1 floats]}``."""
    arr = as_array(array)
    if arr is None:
        try:
            arr = np.asarray(array)
        except (TypeError, ValueError) as e:
            raise DataError(f"Histogram data must be a sequence of numbers ({e})") from None
    values, bins = _counts(arr, num_bins)
    return {"_type": "histogram", "values": values.tolist(), "bins": bins.tolist()}


class Histogram(Media):
    """wandb.Histogram: ``Histogram(sequence)`` or ``Histogram(np_histogram=(values, edges))``."""

    _log_type = "histogram"
    MAX_LENGTH = MAX_LENGTH

    def __init__(self, sequence: Any = None, np_histogram: Any = None, num_bins: int = 64) -> None:
        if np_histogram is not None:
            if not isinstance(np_histogram, (tuple, list)) or len(np_histogram) != 2:
                raise DataError(
                    "Expected np_histogram to be a tuple of (values, bin_edges) or sequence to be specified"
                )
            # tensors (torch.histogram's result too) are read as wandb reads them, by their values
            values, bins = _numbers(np_histogram[0]), _numbers(np_histogram[1])
            for name, a in (("values", values), ("bin_edges", bins)):
                if a.ndim != 1 or not (np.issubdtype(a.dtype, np.number)):
                    raise DataError(f"np_histogram {name} must be a 1-D sequence of numbers")
                if not np.all(np.isfinite(a)):
                    raise DataError(f"np_histogram {name} must be finite: it contains NaN or inf")
            self.histogram: list[Any] = values.tolist()
            self.bins: list[Any] = bins.tolist()
        elif sequence is None:
            raise DataError(
                "Expected np_histogram to be a tuple of (values, bin_edges) or sequence to be specified"
            )
        else:
            j = histogram_json(sequence, num_bins)
            self.histogram, self.bins = j["values"], j["bins"]
        if len(self.histogram) > MAX_LENGTH:
            raise DataError(f"The maximum length of a histogram is {MAX_LENGTH}")
        if len(self.histogram) + 1 != len(self.bins):
            raise DataError("len(bins) must be len(histogram) + 1")

    def to_json(self, store: MediaStore | None = None, key: str = "", step: int = 0) -> dict[str, Any]:
        return {"_type": "histogram", "values": list(self.histogram), "bins": list(self.bins)}
