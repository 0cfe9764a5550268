"""``wandb.util``: the helpers of wandb's ``util`` module that training scripts call.

The ones public code uses (a survey of training repositories): ``generate_id`` by far the most,
then ``get_module``, ``make_artifact_name_safe``, ``json_friendly``/``json_friendly_val``,
``get_full_typename`` and the ``is_*`` type tests, path-slash conversion, human-readable sizes,
``downsample``, ``random_string`` and ``make_tarfile``. Each behaves as wandb 0.31's does;
none needs a server.

Layer 4. Stdlib (the heavier modules imported by the helper that needs them), ``errors`` and
``term``; numpy only when a value is a numpy value (it is then
imported already). Nothing here touches a run.
"""

from __future__ import annotations

import datetime as _dt
import enum
import importlib
import math
import os
import re
import string
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from wandblite.errors import Error, UsageError
from wandblite.term import termwarn

if TYPE_CHECKING:
    import tarfile

__all__ = [
    "POW_10_BYTES",
    "POW_2_BYTES",
    "downsample",
    "from_human_size",
    "generate_id",
    "get_full_typename",
    "get_module",
    "get_optional_module",
    "has_num",
    "is_numpy_array",
    "is_pandas_data_frame",
    "is_pytorch_tensor",
    "isatty",
    "json_friendly",
    "json_friendly_val",
    "make_artifact_name_safe",
    "make_tarfile",
    "mkdir_exists_ok",
    "random_string",
    "to_forward_slash_path",
    "to_human_size",
    "to_native_slash_path",
]

_ID_ALPHABET = string.ascii_lowercase + string.digits  # base 36, wandb's run-id alphabet

POW_10_BYTES = [("B", 10**0), ("KB", 10**3), ("MB", 10**6), ("GB", 10**9), ("TB", 10**12), ("PB", 10**15),
                ("EB", 10**18)]
POW_2_BYTES = [("B", 2**0), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40), ("PiB", 2**50),
               ("EiB", 2**60)]

_not_importable: set[str] = set()


def generate_id(length: int = 8) -> str:
    """A random base-36 string of ``length`` characters (a run id), from the OS's random source,
    never from the ``random`` module that seeded training scripts reset."""
    import secrets  # not at import: it loads random, hmac and base64, and `import wandblite` stays lean

    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def random_string(length: int = 12) -> str:
    """A random string of lowercase letters and digits."""
    return generate_id(length)


def get_module(name: str, required: str | None = None, lazy: bool = True) -> Any:
    """The module ``name`` (absolute, dotted), or None when it cannot be imported. With ``required``,
    a missing module raises ``wandblite.Error(required)`` instead. ``lazy`` is accepted for wandb's
    signature; the module is imported at once (wandb defers the import until first use)."""
    if name not in _not_importable:
        try:
            return importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any failure to import means "not available", as in wandb
            _not_importable.add(name)
    if required:
        raise Error(required)
    return None


def get_optional_module(name: str) -> Any:
    """``get_module(name)``: the module or None."""
    return get_module(name)


def get_full_typename(o: Any) -> str:
    """``"module.Class"`` of ``o``'s type (a module gives its own name): tells types apart without
    importing their libraries."""
    name = f"{type(o).__module__}.{type(o).__name__}"
    if name in ("builtins.module", "__builtin__.module"):
        return str(o.__name__)
    return name


def is_numpy_array(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray)


def is_pandas_data_frame(obj: Any) -> bool:
    name = get_full_typename(obj)
    return name.startswith("pandas.") and "DataFrame" in name


def is_pytorch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def json_friendly(obj: Any) -> tuple[Any, bool]:
    """``(value, converted)``: ``obj`` made closer to JSON, as wandb's ``json_friendly`` does.

    Tensors become numpy (a one-element tensor its number); a numpy array of one element becomes
    that element, of at most 32 its list; numpy scalars Python numbers; bytes text; dates ISO text;
    callables their qualified name; NaN None; sets tuples; enums their name. ``converted`` is False
    when nothing applied."""
    if is_pytorch_tensor(obj):
        t = obj.detach()
        if t.numel() == 1:
            return t.reshape(()).item(), True
        obj = t.cpu().numpy()
    np = sys.modules.get("numpy")
    converted = True
    if np is not None and isinstance(obj, np.ndarray):
        if obj.size == 1:
            obj = obj.reshape(-1)[0]
        elif obj.size <= 32:
            obj = obj.tolist()
    elif np is not None and isinstance(obj, np.generic):
        obj = obj.item()
    elif isinstance(obj, bytes):
        obj = obj.decode("utf-8")
    elif isinstance(obj, (_dt.datetime, _dt.date)):
        obj = obj.isoformat()
    elif callable(obj):
        qual, mod = getattr(obj, "__qualname__", None), getattr(obj, "__module__", None)
        obj = f"{mod}.{qual}" if qual and mod else str(obj)
    elif isinstance(obj, float) and math.isnan(obj):
        obj = None
    elif isinstance(obj, set):
        obj = tuple(obj)
    elif isinstance(obj, enum.Enum):
        obj = obj.name
    else:
        converted = False
    return obj, converted


def json_friendly_val(val: Any) -> Any:
    """Any value (dicts, slices, sequences, dataclasses included) made JSON-friendly, recursively;
    an object of no builtin type becomes its ``str``."""
    if isinstance(val, Mapping):
        return {k: json_friendly_val(v) for k, v in val.items()}
    if isinstance(val, slice):
        return {"slice_start": val.start, "slice_step": val.step, "slice_stop": val.stop}
    import dataclasses

    val, _ = json_friendly(val)
    if isinstance(val, Sequence) and not isinstance(val, (str, bytes)):
        return [json_friendly_val(v) for v in val]
    if dataclasses.is_dataclass(val) and not isinstance(val, type):
        return json_friendly_val(dataclasses.asdict(val))
    if type(val).__module__ not in ("builtins", "__builtin__"):
        return str(val)
    return val


def make_artifact_name_safe(name: str) -> str:
    """``name`` with every character but letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``;
    longer than 128 characters: its first and last 63 joined by ``..``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_\-.]", "_", name)
    if len(cleaned) <= 128:
        return cleaned
    return f"{cleaned[:63]}..{cleaned[-63:]}"


def to_forward_slash_path(path: str) -> str:
    return path.replace("\\", "/") if os.sep == "\\" else path


def to_native_slash_path(path: str) -> str:
    return path.replace("/", os.sep)


def mkdir_exists_ok(path: str | os.PathLike[str]) -> None:
    """Create ``path`` and its parents; an existing directory is fine."""
    os.makedirs(path, exist_ok=True)


def to_human_size(size: int, units: list[tuple[str, Any]] | None = None) -> str:
    """``1234567`` -> ``"1.2MB"`` (powers of ten unless ``units`` says otherwise)."""
    units = units or POW_10_BYTES
    for i, (unit, factor) in enumerate(units):
        value = round(float(size) / factor, 1)
        if value < 1024 or i == len(units) - 1:
            return f"{value}{unit}"
    raise AssertionError("unreachable: the last unit always answers")


def from_human_size(size: str, units: list[tuple[str, Any]] | None = None) -> int:
    """``"10MB"`` -> ``10000000``; ``ValueError`` for text that is not a size."""
    units = units or POW_10_BYTES
    by_name = {u.upper(): f for u, f in units}
    m = re.match(r"(\d+\.?\d*)\s*({})?".format("|".join(by_name)), size, re.IGNORECASE)
    if not m:
        raise ValueError("size must be of the form `10`, `10B` or `10 B`.")
    return int(float(m.group(1)) * (by_name[m.group(2).upper()] if m.group(2) else 1))


def downsample(values: Iterable[Any], target_length: int) -> list[Any]:
    """At most ``target_length`` of ``values``, evenly spaced, first and last included."""
    if not target_length > 1:
        raise UsageError("target_length must be > 1")
    vals = list(values)
    if len(vals) < target_length:
        return vals
    ratio = (len(vals) - 1) / (target_length - 1)
    return [vals[int(i * ratio)] for i in range(target_length)]


def has_num(dictionary: Mapping[Any, Any], key: Any) -> bool:
    """True when ``dictionary[key]`` exists and is a number."""
    import numbers

    return key in dictionary and isinstance(dictionary[key], numbers.Number)


def isatty(ob: IO[Any]) -> bool:
    return hasattr(ob, "isatty") and bool(ob.isatty())


def make_tarfile(output_filename: str, source_dir: str, archive_name: str,
                 custom_filter: Callable[[tarfile.TarInfo], tarfile.TarInfo | None] | None = None) -> None:
    """A gzip tarball of ``source_dir`` under ``archive_name``, with every mtime 0 (so the same files
    give the same bytes)."""
    def zero_mtime(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        info.mtime = 0
        return info if custom_filter is None else custom_filter(info)

    import gzip
    import tarfile

    with open(output_filename, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w:") as tar:
        tar.add(source_dir, arcname=archive_name, filter=zero_mtime)


def __getattr__(name: str) -> Any:
    """A ``wandb.util`` helper wandblite does not offer: an AttributeError that says so."""
    if name.startswith("__"):
        raise AttributeError(name)
    termwarn(f"wandb.util.{name} is not provided by wandblite", repeat=False)
    raise AttributeError(f"module 'wandb.util' (wandblite.util) has no attribute {name!r}")
