"""``Object3D`` (wandb.Object3D): 3D models and point clouds.

Accepted: a path or file object of type obj, gltf, glb, babylon, stl or pts.json (bytes kept; a
file object in text or binary mode, its type from ``file_type=`` or its name: ``read_handle``);
a numpy point cloud N x 3 (xyz), N x 4 (xyz + category) or N x 6 (xyz + rgb), saved as a
``.pts.json`` list of float rows; a scene dict ``{"type": "lidar/beta", "points": array,
"boxes": [...], "vectors": [...]}`` (see ``from_point_cloud``), saved as ``.pts.json``.

JSON: ``{"_type": "object3D-file", "path", "sha256", "size"[, "points"][, "caption"]}`` plus
``blob``/``offset`` (``points`` is wandblite's: the number of points of a point cloud).
"""

from __future__ import annotations

import io
import json
import os
import stat
from typing import TYPE_CHECKING, Any

import numpy as np

from wandblite.data_types._base import Media, as_array, is_path, jsonable, read_path, store_bytes
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["BINARY_TYPES", "Object3D", "handle_extension", "read_handle"]

SUPPORTED_TYPES = ("obj", "gltf", "glb", "babylon", "stl", "pts.json")
POINT_CLOUD_TYPES = ("lidar/beta",)

_SHAPE_ERROR = """The shape of the numpy array must be one of either
    [[x y z],       ...] nx3
    [[x y z c],     ...] nx4 where c is a category with supported range [1, 14]
    [[x y z r g b], ...] nx6 where r g b is the color (0..255)"""


def _extension(name: str) -> str:
    base = os.path.basename(name).lower()
    if base.endswith(".pts.json"):
        return "pts.json"
    return base.rsplit(".", 1)[-1] if "." in base else ""


#: formats whose files are not text: from a text-mode handle they are read from the file by its name
BINARY_TYPES = frozenset({"glb", "stl", "mmtf"})


def handle_extension(handle: Any) -> str:
    """The format a file object's name says (``""`` when it has no name with an extension)."""
    name = getattr(handle, "name", None)
    return _extension(name) if isinstance(name, str) else ""


def _is_text_handle(handle: Any) -> bool:
    if isinstance(handle, io.TextIOBase):
        return True
    mode = getattr(handle, "mode", None)
    return isinstance(mode, str) and "b" not in mode


def _file_bytes(handle: Any) -> bytes | None:
    """The bytes of the regular file under a handle, read with ``pread`` from offset 0 (the
    handle's own position is untouched); None when there is no such file (a pipe, a StringIO)."""
    try:
        fd = handle.fileno()
        st = os.fstat(fd)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    parts: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, max(st.st_size - offset, 1 << 16), offset)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        offset += len(chunk)


def read_handle(handle: Any, ext: str) -> bytes:
    """The bytes of a file object, text or binary mode, whole (from its start when it can seek).

    A text-mode handle of a file on disk (``open("sample.glb")``, as wandb's docs write it) is
    read from the file under it, in binary (``pread`` on its descriptor, else by its name): a
    binary format would not decode as text, and text mode would translate line endings. A text stream with no file behind it (``StringIO``)
    gives its text as UTF-8; a binary format cannot come from one.
    """
    if _is_text_handle(handle):
        whole = _file_bytes(handle)
        if whole is not None:
            return whole
        name = getattr(handle, "name", None)
        if isinstance(name, str) and os.path.isfile(name):
            return read_path(name)
        if ext in BINARY_TYPES:
            raise DataError(f"a .{ext} file is binary: open it in binary mode (open(path, 'rb')) or pass its path")
    if hasattr(handle, "seek"):
        try:
            handle.seek(0)
        except (OSError, ValueError):
            pass  # a pipe or socket: read what is left
    raw = handle.read()
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def _points(arr: Any, where: str = "") -> np.ndarray:
    a = as_array(arr)
    if a is None:
        a = np.asarray(arr)
    if a.ndim != 2 or a.shape[1] not in (3, 4, 6) or not np.issubdtype(a.dtype, np.number):
        raise DataError(f"{where}{_SHAPE_ERROR}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{where}point cloud contains NaN or inf values")
    return a


class Object3D(Media):
    """wandb.Object3D: a 3D file (obj, gltf, glb, babylon, stl, pts.json) or a point cloud."""

    _log_type = "object3D-file"
    SUPPORTED_TYPES = SUPPORTED_TYPES

    def __init__(self, data_or_path: Any, caption: str | None = None, **kwargs: Any) -> None:
        self.caption = None if caption is None else str(caption)
        self.points: int | None = None
        file_type = kwargs.pop("file_type", None)
        if kwargs:
            raise DataError(f"Object3D got unexpected keyword arguments: {sorted(kwargs)}")
        if is_path(data_or_path):
            name = os.fspath(data_or_path)
            ext = _extension(name)
            if ext not in SUPPORTED_TYPES:
                raise DataError(
                    f"File '{name}' is not compatible with Object3D: supported types are: "
                    + ", ".join(SUPPORTED_TYPES)
                )
            self._data = read_path(name)
            self.ext = ext
        elif hasattr(data_or_path, "read"):
            ext = file_type or handle_extension(data_or_path)
            if not ext:
                raise DataError("Must pass file_type keyword argument when using io objects.")
            if ext not in SUPPORTED_TYPES:
                raise DataError(
                    "Object 3D only supports numpy arrays or files of the type: " + ", ".join(SUPPORTED_TYPES)
                )
            self._data = read_handle(data_or_path, ext)
            self.ext = ext
        elif isinstance(data_or_path, dict):
            scene = dict(data_or_path)
            if "type" in scene and scene["type"] not in POINT_CLOUD_TYPES:
                raise DataError(f"Object3D scene type must be one of {list(POINT_CLOUD_TYPES)}, got {scene['type']!r}")
            if "points" not in scene:
                raise DataError("an Object3D scene dict needs 'points' (an N x 3, N x 4 or N x 6 array)")
            pts = _points(scene["points"], "points: ")
            scene["points"] = pts.tolist()
            self.points = int(pts.shape[0])
            self._data = json.dumps(jsonable(scene, "Object3D scene"), separators=(",", ":")).encode()
            self.ext = "pts.json"
        else:
            arr = as_array(data_or_path)
            if arr is None:
                raise DataError("data must be a numpy array, dict or a file object")
            pts = _points(arr)
            self.points = int(pts.shape[0])
            self._data = json.dumps(pts.astype(np.float64).tolist(), separators=(",", ":")).encode()
            self.ext = "pts.json"

    @classmethod
    def from_file(cls, data_or_path: Any, file_type: str | None = None) -> Object3D:
        """From a path or a file object (``file_type`` names the format of a file object)."""
        if file_type is not None:
            return cls(data_or_path, file_type=file_type)
        return cls(data_or_path)

    @classmethod
    def from_numpy(cls, data: np.ndarray) -> Object3D:
        """From an N x 3, N x 4 or N x 6 point cloud."""
        if not isinstance(data, np.ndarray):
            raise DataError("`data` must be a numpy array")
        return cls(data)

    @classmethod
    def from_point_cloud(
        cls,
        points: Any,
        boxes: list[dict[str, Any]] | None = None,
        vectors: list[dict[str, Any]] | None = None,
        point_cloud_type: str = "lidar/beta",
    ) -> Object3D:
        """A point-cloud scene with optional 3D boxes and vectors (wandb's lidar/beta format)."""
        if point_cloud_type not in POINT_CLOUD_TYPES:
            raise DataError(f"point_cloud_type must be one of {list(POINT_CLOUD_TYPES)}")
        scene: dict[str, Any] = {"type": point_cloud_type, "points": points}
        scene["boxes"] = list(boxes or [])
        scene["vectors"] = list(vectors or [])
        return cls(scene)

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        ref = store_bytes(store, self._data, self.ext, "object3D", key, step)
        out: dict[str, Any] = {"_type": "object3D-file", "path": ref.pop("path"), "sha256": ref.pop("sha256")}
        out["size"] = ref.pop("size")
        if self.points is not None:
            out["points"] = self.points
        if self.caption is not None:
            out["caption"] = self.caption
        out.update(ref)
        return out
