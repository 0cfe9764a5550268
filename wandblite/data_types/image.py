"""``Image`` (wandb.Image) and matplotlib figure handling.

An ``Image`` is built from a numpy array (H,W), (H,W,1), (H,W,3) or (H,W,4) (size-1 axes squeezed
first, as wandb does; uint8, or floats in 0..1 scaled by 255: docs/semantics.md section 11), a torch
tensor (``_tensor_pixels``: channels first (C,H,W) as wandb takes it, or channels last), a PIL image, a file path (bytes kept as given, in their own
format), another ``Image``, or a matplotlib figure (rendered to PNG). Its history JSON is wandb's
``{"_type": "image-file", "path", "sha256", "size", "format", "width", "height"[, "caption"]}``
plus wandblite's ``blob``/``offset`` (where the bytes are), ``grouping``, ``classes``, and
``boxes``/``masks``: ``{name: ref}`` where a boxes ref (``_type: boxes2D``) points at a JSON blob
``{"box_data": [...], "class_labels": {...}}`` and a mask ref (``_type: mask``) at an 8-bit PNG of
class ids, with its ``class_labels`` inline.

matplotlib is never imported here: a figure is recognised by its class's module name and
rendered with its own ``savefig``.
"""

from __future__ import annotations

import io
import json
import numbers
import types
from typing import TYPE_CHECKING, Any

import numpy as np

from wandblite.data_types._base import (
    Media,
    as_array,
    is_path,
    is_torch_tensor,
    read_path,
    store_bytes,
    tensor_to_numpy,
    to_uint8,
)
from wandblite.errors import DataError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from wandblite.media import MediaStore

__all__ = ["Image", "is_matplotlib_figure", "figure_to_image"]

FILE_TYPES = ["png", "jpg", "jpeg", "bmp"]
_PIL_FORMAT = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP"}
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
_JPEG_MODES = {"L", "RGB", "CMYK"}
_BMP_MODES = {"1", "L", "P", "RGB"}


def is_matplotlib_figure(value: Any) -> bool:
    """True for a matplotlib Figure, SubFigure, Axes or the ``matplotlib.pyplot`` module.

    Cheap and import-free: looks only at the class's module and name."""
    if isinstance(value, types.ModuleType):
        return value.__name__ == "matplotlib.pyplot"
    cls = type(value)
    if not cls.__module__.startswith("matplotlib"):
        return False
    return any(c.__name__ in ("Figure", "SubFigure", "Axes", "FigureBase") for c in cls.__mro__)


def _render_figure(value: Any) -> bytes:
    if isinstance(value, types.ModuleType):  # matplotlib.pyplot itself: its current figure
        value = value.gcf()
    fig = value
    if not hasattr(fig, "savefig"):
        fig = getattr(value, "figure", None)
    while fig is not None and not hasattr(fig, "savefig") and hasattr(fig, "figure"):
        fig = fig.figure
    if fig is None or not hasattr(fig, "savefig"):
        raise DataError(f"cannot render matplotlib object of type {type(value).__name__} to an image")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def figure_to_image(value: Any) -> Image:
    """A matplotlib figure (or Axes, or ``pyplot``) as a PNG ``Image`` (docs/semantics.md section 11)."""
    return Image._from_encoded(_render_figure(value), "png")


def _tensor_pixels(tensor: Any) -> np.ndarray:
    """A torch image tensor as numpy pixels (H,W) or (H,W,C), by wandb's rule: the tensor is taken
    from autograd and its device (``tensor_to_numpy``); a 3-D tensor whose first axis is 1, 3 or 4 is
    channels first (C,H,W) and is moved to channels last (so a (3,H,3) tensor is CHW, as in wandb).
    Beyond wandb, which raises for them: a (H,W) tensor is grey, a 3-D tensor whose first axis is not
    a channel count is channels last (H,W,C), and leading size-1 axes (a batch of one) are dropped."""
    arr = tensor_to_numpy(tensor)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    return arr


def _channels_mode(arr: np.ndarray) -> tuple[np.ndarray, str]:
    if arr.ndim == 2:
        return arr, "L"
    if arr.ndim == 3:
        c = arr.shape[-1]
        if c == 1:
            return arr[:, :, 0], "L"
        if c == 3:
            return arr, "RGB"
        if c == 4:
            return arr, "RGBA"
    raise DataError(f"Un-supported shape for image conversion {list(arr.shape)}")


def _check_class_labels(labels: Any, where: str) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise DataError(f"{where}: class_labels must be a dict of int class id -> str name")
    out: dict[str, str] = {}
    for k, v in labels.items():
        if isinstance(k, bool) or not isinstance(k, (numbers.Integral, str)):
            raise DataError(f"{where}: class_labels keys must be int class ids, got {k!r}")
        if isinstance(k, str) and not k.lstrip("-").isdigit():
            raise DataError(f"{where}: class_labels keys must be int class ids, got {k!r}")
        if not isinstance(v, str):
            raise DataError(f"{where}: class_labels values must be str, got {v!r} for class {k}")
        out[str(int(k))] = v
    return out


def _num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(float(v))


def _check_box(box: Any, where: str) -> dict[str, Any]:
    if not isinstance(box, dict):
        raise DataError(f"{where}: each box must be a dict")
    pos = box.get("position")
    if not isinstance(pos, dict):
        raise DataError(f"{where}: a box needs a 'position' dict")
    corners = all(_num(pos.get(k)) for k in ("minX", "maxX", "minY", "maxY"))
    mid = pos.get("middle")
    centred = (
        isinstance(mid, (list, tuple))
        and len(mid) == 2
        and all(_num(m) for m in mid)
        and _num(pos.get("width"))
        and _num(pos.get("height"))
    )
    if not (corners or centred):
        raise DataError(
            f"{where}: position must hold numbers minX, maxX, minY, maxY "
            "or middle [x, y], width, height"
        )
    cid = box.get("class_id")
    if isinstance(cid, bool) or not isinstance(cid, numbers.Integral):
        raise DataError(f"{where}: a box needs an int 'class_id'")
    if "box_caption" in box and not isinstance(box["box_caption"], str):
        raise DataError(f"{where}: box_caption must be a str")
    scores = box.get("scores")
    if scores is not None and not (isinstance(scores, dict) and all(_num(s) for s in scores.values())):
        raise DataError(f"{where}: scores must be a dict of str -> number")
    domain = box.get("domain")
    if domain is not None and domain != "pixel":
        raise DataError(f"{where}: domain must be 'pixel' or absent (relative 0..1 coordinates)")
    return {
        str(k): (np.asarray(v).tolist() if isinstance(v, (np.ndarray, np.generic)) else v)
        for k, v in box.items()
    }


def _check_boxes(boxes: Any) -> dict[str, bytes]:
    if not isinstance(boxes, dict):
        raise DataError('boxes must be a dict like {"predictions": {"box_data": [...], "class_labels": {...}}}')
    out: dict[str, bytes] = {}
    for name, group in boxes.items():
        where = f"boxes[{name!r}]"
        if not isinstance(name, str) or not isinstance(group, dict):
            raise DataError(f"{where}: must map a str name to a dict with 'box_data'")
        data = group.get("box_data")
        if not isinstance(data, (list, tuple)):
            raise DataError(f"{where}: box_data must be a list of boxes")
        clean = [_check_box(b, f"{where}.box_data[{i}]") for i, b in enumerate(data)]
        labels = _check_class_labels(group["class_labels"], where) if "class_labels" in group else {}
        payload = {"box_data": clean, "class_labels": labels}
        try:
            out[name] = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: box values must be JSON numbers and strings ({e})") from None
    return out


def _check_masks(masks: Any) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each mask as (PNG bytes of class ids, class_labels)."""
    if not isinstance(masks, dict):
        raise DataError('masks must be a dict like {"name": {"mask_data": array, "class_labels": {...}}}')
    out: dict[str, tuple[bytes, dict[str, str]]] = {}
    for name, m in masks.items():
        where = f"masks[{name!r}]"
        if not isinstance(name, str) or not isinstance(m, dict):
            raise DataError(f"{where}: must map a str name to a dict with 'mask_data' or 'path'")
        labels = _check_class_labels(m["class_labels"], where) if "class_labels" in m else {}
        if "mask_data" in m:
            arr = as_array(m["mask_data"])
            if arr is None:
                arr = np.asarray(m["mask_data"])
            if arr.ndim != 2:
                raise DataError(f"{where}: mask_data must be a 2D array of class ids, got shape {list(arr.shape)}")
            integral = np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_
            if not integral and not (np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0)):
                raise DataError(f"{where}: mask_data must hold integer class ids, got dtype {arr.dtype}")
            if arr.size and (arr.min() < 0 or arr.max() > 255):
                raise DataError(f"{where}: mask class ids must be in 0..255")
            from PIL import Image as PILImage

            buf = io.BytesIO()
            PILImage.fromarray(np.ascontiguousarray(arr.astype(np.uint8))).save(buf, format="PNG")
            out[name] = (buf.getvalue(), labels)
        elif "path" in m:
            data = read_path(m["path"])
            out[name] = (data, labels)
        else:
            raise DataError(f"{where}: needs 'mask_data' (2D array) or 'path' (a PNG file)")
    return out


def _check_classes(classes: Any) -> list[dict[str, Any]]:
    items = getattr(classes, "_class_set", classes)  # wandb.Classes-like objects
    if isinstance(items, dict):
        items = [{"id": k, "name": v} for k, v in items.items()]
    if not isinstance(items, (list, tuple)):
        raise DataError('classes must be a list of {"id": int, "name": str} dicts')
    out = []
    for c in items:
        if not (isinstance(c, dict) and isinstance(c.get("id"), numbers.Integral) and isinstance(c.get("name"), str)):
            raise DataError(f'classes must be a list of {{"id": int, "name": str}} dicts, got {c!r}')
        out.append({"id": int(c["id"]), "name": c["name"]})
    return out


class _Encoded:
    """Already-encoded image bytes (a rendered figure), passed through ``Image.__init__``."""

    __slots__ = ("data", "ext")

    def __init__(self, data: bytes, ext: str) -> None:
        self.data, self.ext = data, ext


class Image(Media):
    """wandb.Image: an image stored as PNG (or JPEG/BMP with ``file_type``, or a file's own format)."""

    _log_type = "image-file"
    MAX_ITEMS = 108

    def __init__(
        self,
        data_or_path: Any,
        mode: str | None = None,
        caption: str | None = None,
        grouping: int | None = None,
        classes: Any = None,
        boxes: dict[str, Any] | None = None,
        masks: dict[str, Any] | None = None,
        file_type: str | None = None,
    ) -> None:
        if file_type is not None and file_type not in FILE_TYPES:
            raise DataError(f"file_type must be one of {FILE_TYPES}")
        self.format: str = file_type or "png"
        self.caption = None if caption is None else str(caption)
        if grouping is not None and (isinstance(grouping, bool) or not isinstance(grouping, numbers.Integral)):
            raise DataError("grouping must be an int")
        self._grouping = None if grouping is None else int(grouping)
        self._classes = None if classes is None else _check_classes(classes)
        self._boxes = None if boxes is None else _check_boxes(boxes)
        self._masks = None if masks is None else _check_masks(masks)
        self._pil: PILImage | None = None
        self._encoded: bytes | None = None
        self.width = 0
        self.height = 0

        if isinstance(data_or_path, Image):
            other = data_or_path
            self._pil, self._encoded = other._pil, other._encoded
            self.format, self.width, self.height = other.format, other.width, other.height
            self.caption = self.caption if caption is not None else other.caption
        elif isinstance(data_or_path, _Encoded):
            self._set_encoded(data_or_path.data, f"x.{data_or_path.ext}")
        elif is_path(data_or_path):
            self._set_encoded(read_path(data_or_path), str(data_or_path))
        elif is_matplotlib_figure(data_or_path):
            self._set_encoded(_render_figure(data_or_path), "figure.png")
        elif type(data_or_path).__module__.startswith("PIL.") and hasattr(data_or_path, "mode"):
            self._set_pil(data_or_path.convert(mode) if mode and mode != data_or_path.mode else data_or_path)
        else:
            if is_torch_tensor(data_or_path):
                arr = _tensor_pixels(data_or_path)
            else:
                maybe = as_array(data_or_path)
                if maybe is not None:
                    arr = maybe
                elif isinstance(data_or_path, (list, tuple)):
                    arr = np.asarray(data_or_path)
                else:
                    raise DataError(
                        "Image data must be a numpy array, a torch tensor, a PIL image, a matplotlib "
                        f"figure or a file path, got {type(data_or_path).__name__}"
                    )
                if arr.ndim > 2 and 1 in arr.shape and arr.squeeze().ndim >= 2:
                    arr = arr.squeeze()  # wandb drops trivial axes: (1, H, W) is a grey image
            arr, guessed = _channels_mode(arr)
            from PIL import Image as PILImage

            im = PILImage.fromarray(np.ascontiguousarray(to_uint8(arr)))
            if mode is not None and mode != guessed:
                try:
                    im = im.convert(mode)
                except ValueError as e:
                    raise DataError(f"cannot convert image to mode {mode!r}: {e}") from None
            self._set_pil(im)

    @classmethod
    def _from_encoded(cls, data: bytes, ext: str) -> Image:
        """An image whose file bytes are already encoded (``ext`` names their format)."""
        return cls(_Encoded(data, ext))

    def _set_encoded(self, data: bytes, name: str) -> None:
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        try:
            with PILImage.open(io.BytesIO(data)) as im:  # reads the header only
                self.width, self.height = im.size
                pil_format = (im.format or "").lower()
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read image file {name!r}: {e}") from None
        ext = name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""
        if not ext or not ext.isalnum():
            ext = {"jpeg": "jpg"}.get(pil_format, pil_format) or "png"
        self.format = ext
        self._encoded = data

    def _set_pil(self, im: PILImage) -> None:
        allowed = {"png": _PNG_MODES, "jpg": _JPEG_MODES, "jpeg": _JPEG_MODES, "bmp": _BMP_MODES}[self.format]
        if im.mode not in allowed:
            im = im.convert("RGBA" if "A" in im.mode and self.format == "png" else "RGB")
        self._pil = im
        self.width, self.height = im.size

    @property
    def image(self) -> PILImage | None:
        """The PIL image (decoded on demand for images made from files)."""
        if self._pil is None and self._encoded is not None:
            from PIL import Image as PILImage

            self._pil = PILImage.open(io.BytesIO(self._encoded))
        return self._pil

    def _bytes(self) -> bytes:
        if self._encoded is None:
            assert self._pil is not None
            buf = io.BytesIO()
            self._pil.save(buf, format=_PIL_FORMAT[self.format])
            self._encoded = buf.getvalue()
        return self._encoded

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        ref = store_bytes(store, self._bytes(), self.format, "images", key, step)
        out: dict[str, Any] = {"_type": "image-file", "path": ref.pop("path"), "sha256": ref.pop("sha256")}
        out["size"] = ref.pop("size")
        out["format"] = self.format
        out["width"] = self.width
        out["height"] = self.height
        if self.caption is not None:
            out["caption"] = self.caption
        if self._grouping is not None:
            out["grouping"] = self._grouping
        if self._classes is not None:
            out["classes"] = self._classes
        if self._boxes:
            out["boxes"] = {
                name: {"_type": "boxes2D", **store_bytes(store, data, "boxes2D.json", "metadata/boxes2D", key, step)}
                for name, data in self._boxes.items()
            }
        if self._masks:
            masks: dict[str, Any] = {}
            for name, (png, labels) in self._masks.items():
                m = {"_type": "mask", **store_bytes(store, png, "png", "images/mask", key, step), "format": "png"}
                if labels:
                    m["class_labels"] = labels
                masks[name] = m
            out["masks"] = masks
        out.update(ref)  # blob, offset: where the bytes are
        return out
