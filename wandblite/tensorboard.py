"""``wandb.tensorboard``: what a TensorBoard ``SummaryWriter`` writes also goes to the run's history.

``init(sync_tensorboard=True)`` or ``wandblite.tensorboard.patch()`` wraps the ``EventFileWriter``
class of ``tensorboard.summary.writer.event_file_writer``, ``torch.utils.tensorboard.writer`` and
``tensorboardX.writer`` (each when installed). Every event a writer adds is still written to its
file unchanged, and is also read here, in the writing thread: no helper process, no file watching.

What lands in history, as wandb's TensorBoard sync does:

* one history row per TensorBoard step: the row holds each tag written at that step and
  ``global_step`` (the writer's step); wandb's own ``_step`` counts rows as usual;
* scalars (``simple_value``, and tensors of the ``scalars`` plugin) as floats under their tag;
* images (``add_image``; tensors of the ``images`` plugin) as ``Image`` (GIF bytes, from
  ``add_video``, as ``Video``) under the tag with ``/`` and ``\\`` replaced by ``_``; tags ending
  in ``/<n>`` are gathered into one list;
* histograms (``add_histogram``'s ``HistogramProto``; tensors of the ``histograms`` plugin) as
  ``Histogram`` with TensorBoard's buckets as bins (the two open outer buckets get the width of
  their neighbours);
* a row is written when a writer's step goes up (events of one step from several writers are one
  row) and when a writer is closed or the run finishes;
* several log directories: with ``root_logdir`` (or when a directory lies below the first one seen,
  as ``add_scalars`` makes them) a directory's tags are prefixed with its path relative to the root,
  and the row also holds ``<prefix>/global_step``.

Other summaries (text, audio, hparams, PR curves, graphs) stay in the event file only: one warning
per kind says so. With ``save=True`` (the default) the event files are kept with the run at finish
(``run.save(..., policy="end")``), as wandb uploads them. Events written while no run is active are
not in any history: one warning says so.

Layer 4: stdlib, ``env``, ``errors``, ``term``; ``data_types`` and numpy when an image or a
histogram arrives; the writer modules only inside ``patch``. Thread-safe (one lock).
"""

from __future__ import annotations

import importlib
import io
import os
import re
import threading
import weakref
from typing import Any

from wandblite.env import current_run
from wandblite.errors import Error
from wandblite.surface import RunSurface
from wandblite.term import termwarn

__all__ = ["patch", "unpatch", "patched", "flush"]

# The modules whose EventFileWriter name wandb wraps (tensorboard's own, torch's, tensorboardX's).
WRITER_MODULES = (
    "tensorboard.summary.writer.event_file_writer",
    "torch.utils.tensorboard.writer",
    "tensorboardX.writer",
)
_ORIGINAL = "_wandblite_original_EventFileWriter"

# wandb.patched["tensorboard"]: [module, attribute] for each wrapped writer.
patched: list[list[str]] = []

_lock = threading.RLock()


class _SyncState:
    """Where the rows stand: per-directory steps, the row being gathered, the run it goes to."""

    def __init__(self, root_logdir: str, save: bool) -> None:
        self.root_logdir = root_logdir
        self.save = save
        self.logdirs: list[str] = []  # in the order writers were opened
        self.steps: dict[str, int] = {}  # namespace -> its last step
        self.max_step = 0
        self.row: dict[str, Any] = {}
        self.run: Any = None  # weakref to the run the pending row belongs to
        self.hooked_runs: weakref.WeakSet[Any] = weakref.WeakSet()
        self.saved: set[tuple[int, str]] = set()
        self.unpatch_at_finish = False


_state: _SyncState | None = None


# ---------------------------------------------------------------------------- patch / unpatch


def patch(save: bool = True, tensorboard_x: bool | None = None, pytorch: bool | None = None,
          root_logdir: str = "") -> None:
    """Wrap the TensorBoard writers so their events also go to the active run's history (wandb's
    ``wandb.tensorboard.patch``). ``ValueError`` when already patched, as in wandb."""
    global _state
    with _lock:
        if patched:
            raise ValueError(
                "Tensorboard already patched. Call `wandb.tensorboard.unpatch()` first; "
                "remove `sync_tensorboard=True` from `wandb.init`; "
                "or only call `wandb.tensorboard.patch` once."
            )
        found = []
        for name in WRITER_MODULES:
            if tensorboard_x is False and name.startswith("tensorboardX"):
                continue
            if pytorch is False and name.startswith("torch"):
                continue
            try:
                found.append((name, importlib.import_module(name)))
            except Exception:  # noqa: BLE001 - not installed (or broken): nothing of it to wrap
                continue
        if not found:
            raise Error("Please install tensorboard package: no TensorBoard writer (tensorboard, "
                        "torch.utils.tensorboard or tensorboardX) could be imported")
        _state = _SyncState(root_logdir or "", save)
        for name, module in found:
            original = getattr(module, "EventFileWriter", None)
            if original is None:
                continue
            original = getattr(module, _ORIGINAL, original)
            setattr(module, _ORIGINAL, original)
            setattr(module, "EventFileWriter", _synced_writer_class(original))  # noqa: B010
            patched.append([name, "EventFileWriter"])


def unpatch() -> None:
    """Put the original writer classes back (the pending row is written first)."""
    global _state
    with _lock:
        flush()
        for name, attr in patched:
            module = importlib.import_module(name)
            original = getattr(module, _ORIGINAL, None)
            if original is not None:
                setattr(module, attr, original)
                delattr(module, _ORIGINAL)
        patched.clear()
        _state = None


def flush() -> None:
    """Write the row being gathered to its run now (a writer's close and the run's finish do this)."""
    with _lock:
        st = _state
        if st is None or not st.row:
            return
        run = st.run() if st.run is not None else None
        row, st.row = st.row, {}
        if run is None or run.finished:
            return
        try:
            run.log(row)
        except Exception as exc:  # noqa: BLE001 - a logging failure never kills training
            termwarn(f"TensorBoard sync: a row at global_step {row.get('global_step')} was not logged: {exc}")


def sync_from_init(run: RunSurface, settings: Any = None) -> None:
    """``init(sync_tensorboard=True)``: patch (unless patched already) and unpatch at the run's finish,
    as wandb's init does. A missing TensorBoard is one warning; the run goes on."""
    with _lock:
        if not patched:
            try:
                patch(root_logdir=str(_setting(settings, "root_logdir") or ""))
            except Error as exc:
                termwarn(f"sync_tensorboard=True: {exc}; TensorBoard data will not be in the run's history",
                         repeat=False)
                return
            if _state is not None:
                _state.unpatch_at_finish = True
        _hook_run(run)


def _setting(settings: Any, name: str) -> Any:
    if isinstance(settings, dict):
        return settings.get(name)
    return getattr(settings, name, None)


def _hook_run(run: Any) -> None:
    """Once per run: write the pending row and keep the event files at its finish."""
    st = _state
    if st is None or run in st.hooked_runs:
        return
    st.hooked_runs.add(run)

    def at_finish() -> None:
        with _lock:
            if _state is not None and _state.run is not None and _state.run() is run:
                flush()
            if _state is not None and _state.unpatch_at_finish:
                unpatch()

    run.add_finish_callback(at_finish)


# ---------------------------------------------------------------------------- the wrapped writer


def _synced_writer_class(base: type) -> type:
    class SyncedEventFileWriter(base):  # type: ignore[misc, valid-type]
        """The original writer; each added event is also read into the run's history."""

        def __init__(self, logdir: Any, *args: Any, **kwargs: Any) -> None:
            self._wandblite_logdir = os.fspath(logdir)
            _opened(self._wandblite_logdir)
            super().__init__(logdir, *args, **kwargs)

        def add_event(self, event: Any) -> None:
            super().add_event(event)
            try:
                _take(self._wandblite_logdir, event)
            except Exception as exc:  # noqa: BLE001 - a logging failure never kills training
                termwarn(f"TensorBoard sync: an event of {self._wandblite_logdir} was not read: {exc}", repeat=False)

        def close(self) -> None:
            flush()
            super().close()

    SyncedEventFileWriter.__name__ = SyncedEventFileWriter.__qualname__ = base.__name__
    SyncedEventFileWriter.__module__ = base.__module__
    return SyncedEventFileWriter


def _opened(logdir: str) -> None:
    with _lock:
        st = _state
        if st is None:
            return
        if logdir not in st.logdirs:
            st.logdirs.append(logdir)
            if len(st.logdirs) > 1 and not st.root_logdir and _namespace(st, logdir) == "":
                termwarn("When using several event log directories, please call "
                         '`wandb.tensorboard.patch(root_logdir="...")` before `wandb.init`', repeat=False)


def _namespace(st: _SyncState, logdir: str) -> str:
    """The tag prefix of ``logdir``: its path below ``root_logdir`` (or below the first directory seen)."""
    root = st.root_logdir or (st.logdirs[0] if st.logdirs else "")
    if not root:
        return ""
    rel = os.path.relpath(os.path.abspath(logdir), os.path.abspath(root))
    if rel == "." or rel.startswith(".."):
        return ""
    return rel.replace(os.sep, "/")


def _take(logdir: str, event: Any) -> None:
    """One event: its values join the row; a step that goes up writes the row before."""
    if not event.HasField("summary") or not event.summary.value:
        return
    with _lock:
        st = _state
        if st is None:
            return
        run = current_run()
        if run is None or run.finished or not hasattr(run, "log"):
            termwarn("TensorBoard sync: events written while no run is active are only in the event "
                     "file, not in any run's history (create the SummaryWriter's events after wandb.init)",
                     repeat=False)
            return
        if st.run is None or st.run() is not run:
            flush()
            st.run = weakref.ref(run)
            st.steps.clear()
            st.max_step = 0
        _hook_run(run)
        if st.save:
            _keep_event_files(st, run, logdir)
        ns = _namespace(st, logdir)
        step = int(event.step)
        values = _summary_values(event.summary, ns)
        if not values:
            return
        values[_tag("global_step", ns)] = step
        write_before = st.steps.get(ns, 0) < step and step != st.max_step
        st.max_step = max(st.max_step, step)
        if ns:
            values["global_step"] = st.max_step
        st.steps[ns] = step
        if write_before:
            flush()
            st.run = weakref.ref(run)
        st.row.update(values)


def _keep_event_files(st: _SyncState, run: Any, logdir: str) -> None:
    key = (id(run), logdir)
    if key in st.saved:
        return
    st.saved.add(key)
    base = st.root_logdir or os.path.dirname(os.path.abspath(logdir))
    try:
        run.save(os.path.join(os.path.abspath(logdir), "*tfevents*"), base_path=base, policy="end")
    except Exception as exc:  # noqa: BLE001
        termwarn(f"TensorBoard sync: the event files of {logdir} will not be kept with the run: {exc}",
                 repeat=False)


# ---------------------------------------------------------------------------- summaries -> values


def _tag(tag: str, ns: str) -> str:
    return f"{ns}/{tag}" if ns else tag


def _image_key(tag: str, ns: str) -> str:
    return _tag(re.sub(r"[/\\]", "_", tag), ns)


def _summary_values(summary: Any, ns: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            out[_tag(value.tag, ns)] = float(value.simple_value)
        elif kind == "image":
            _add_images(out, value.tag, [value.image.encoded_image_string], ns)
        elif kind == "histo":
            _add_histogram(out, _tag(value.tag, ns), _histo_edges(value.histo))
        elif kind == "tensor":
            plugin = value.metadata.plugin_data.plugin_name
            if plugin in ("scalars", ""):
                arr = _tensor_array(value.tensor)
                if arr is not None and arr.size == 1 and arr.dtype.kind in "fiub":
                    out[_tag(value.tag, ns)] = arr.reshape(()).item()
                else:
                    termwarn(f"TensorBoard sync: tensor summary {value.tag!r} is not a number; not synced",
                             repeat=False)
            elif plugin == "images":
                _add_images(out, value.tag, list(value.tensor.string_val[2:]), ns)  # the first two: width, height
            elif plugin == "histograms":
                arr = _tensor_array(value.tensor)
                if arr is not None and arr.ndim == 2 and arr.shape[0] > 0 and arr.shape[1] == 3:
                    counts = arr[:, 2].tolist()
                    edges = [float(arr[0, 0]), *arr[:, 1].astype(float).tolist()]
                    _add_histogram(out, _tag(value.tag, ns), (counts, edges))
            else:
                _not_synced(plugin or "tensor")
        elif kind is not None:
            _not_synced(kind)
    return out


def _not_synced(kind: str) -> None:
    if kind == "graphs":
        return  # wandb ignores graphs too, without a word (the model graph is not a history value)
    termwarn(f"TensorBoard sync: {kind} summaries stay in the event file; they are not synced to the "
             "run's history", repeat=False)


def _histo_edges(histo: Any) -> tuple[list[float], list[float]] | None:
    """TensorBoard's buckets as (counts, edges): bucket_limit holds right edges, the first and last
    buckets are open; they get the width of their neighbour (wandb's rule). Fewer than three: None."""
    limits = list(histo.bucket_limit)
    if len(limits) < 3:
        return None
    first = 2 * limits[0] - limits[1]
    last = 2 * limits[-2] - limits[-3]
    return list(histo.bucket), [first, *limits[:-1], last]


def _add_histogram(out: dict[str, Any], key: str, hist: tuple[list[Any], list[float]] | None) -> None:
    if hist is None:
        termwarn(f"Not logging key {key!r}. Found a histogram with only 2 bins.", repeat=False)
        return
    from wandblite.data_types import Histogram

    try:
        out[key] = Histogram(np_histogram=hist)
    except ValueError:
        termwarn(f"Not logging key {key!r}. Histograms must have fewer than {Histogram.MAX_LENGTH} bins",
                 repeat=False)


def _add_images(out: dict[str, Any], tag: str, encoded: list[bytes], ns: str) -> None:
    if not encoded:
        return
    from PIL import Image as PILImage

    from wandblite.data_types import Image, Video

    media: list[Any] = []
    for data in encoded:
        if data.startswith(b"GIF"):
            media.append(Video(io.BytesIO(data), format="gif"))
        else:
            media.append(Image(PILImage.open(io.BytesIO(data))))
    head, _, last = tag.rpartition("/")
    if head and last.isdigit():
        out.setdefault(_image_key(head, ns), []).extend(media)
    else:
        out[_image_key(tag, ns)] = media


# TensorFlow's DataType numbers (tensorflow/core/framework/types.proto) and where a TensorProto keeps them.
_DTYPES = {1: ("float32", "float_val"), 2: ("float64", "double_val"), 3: ("int32", "int_val"),
           9: ("int64", "int64_val"), 10: ("bool", "bool_val"), 19: ("float16", "half_val")}


def _tensor_array(tensor: Any) -> Any:
    """A numeric TensorProto as a numpy array (None for strings and other kinds)."""
    import numpy as np

    spec = _DTYPES.get(int(tensor.dtype))
    if spec is None:
        return None
    dtype, field = spec
    shape = [int(d.size) for d in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        arr = np.frombuffer(tensor.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        vals = list(getattr(tensor, field))
        if dtype == "float16":
            arr = np.array(vals, dtype=np.uint16).view(np.float16)
        else:
            arr = np.array(vals, dtype=dtype)
        n = int(np.prod(shape)) if shape else 1
        if arr.size == 1 and n > 1:
            arr = np.full(n, arr[0], dtype=arr.dtype)  # a proto may store one value for a constant tensor
    return arr.reshape(shape) if shape else arr.reshape(())
