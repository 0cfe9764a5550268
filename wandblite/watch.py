"""``wandblite.watch`` / ``unwatch``: histograms of a PyTorch model's gradients and parameters.

Layer 4. torch is imported only inside ``watch`` when a model is passed (``import wandblite`` never
loads it); numpy is used through ``wandblite.Histogram``. It works with a run through its
``RunSurface`` (``wandblite.surface``) and never imports ``run``.

What it records, as wandb does:

* ``log="gradients"`` (the default): a hook on every parameter that requires grad; each hook counts
  the times its parameter's gradient is computed and, when the count reaches ``log_freq`` (the
  ``log_freq``-th backward, then the ``2*log_freq``-th, ...; never the first unless ``log_freq`` is
  1 or less), a 64-bin histogram of that gradient becomes ``gradients/<prefix><name>``.
* ``log="parameters"``: a forward hook on the model counts its forward calls the same way (eval
  and ``no_grad`` calls count too, as in wandb); at every ``log_freq``-th, a histogram of every
  parameter becomes ``parameters/<prefix><name>``.
* ``log="all"``: both. ``log=None``: no histograms (only the graph, with ``log_graph=True``).

``<prefix>`` is empty for the first watched model of a run and ``graph_<idx>`` for the next ones
(wandb's naming). Histograms wait with the run (``run.add_to_next_row``) and are attached to the
next ``run.log`` row (user keys win on a clash), like wandb's ``commit=False`` logging from its hooks.

Cost between samples: one Python call and an integer increment per hook call; the histogram work
(``torch.histc`` on the tensor's device, one copy of 64 counts) happens only on sampled steps.
NaN and inf are left out of a histogram rather than failing the training step; a tensor with no
finite value logs nothing. A constant tensor is one bin ``[numel]`` over ``[v, v]``, and a sparse
tensor's implicit zeros are counted in the bin holding 0 (its range widened to take 0), as wandb does.

``log_graph=True`` (Lightning's ``WandbLogger.watch`` passes it by default): forward pre/post
hooks on every module of the model record the module tree on the model's first forward pass, as
wandb does: each module's dotted name, class, own parameters (name, shape) and counts, and the
shapes of the tensors it took and returned (tuples, lists and dicts are walked; other values are
named by type). The pass ends when the model's own call returns; if the training code calls
submodules without calling the model itself (``self.net(x)`` in a LightningModule), it ends when
one of them is called again at the top, or at ``unwatch``/``finish`` (recording what was seen). Then the hooks are
removed and the graph becomes the summary value ``graph_<idx>`` (a ``graph-file``,
``wandblite.data_types.Graph``). A failure while recording becomes one warning per cause; the
forward pass itself is never disturbed. ``unwatch`` before the first pass records nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from wandblite.env import active_run
from wandblite.surface import RunSurface
from wandblite.term import termwarn

__all__ = ["NUM_BINS", "unwatch", "watch"]

NUM_BINS = 64
_LOG_CHOICES = ("gradients", "parameters", "all", None)


class _Watched:
    """The hooks wandblite holds on one model for one run."""

    def __init__(self, run: RunSurface, model: Any, prefix: str, log: str | None, log_freq: int,
                 graph_idx: int | None = None) -> None:
        self.run = run
        self.model = model
        self.prefix = prefix
        self.log_freq = max(int(log_freq), 1)
        self.handles: list[Any] = []
        self._lock = threading.Lock()
        self.graph = _GraphCapture(run, model, graph_idx) if graph_idx is not None else None
        if log in ("parameters", "all"):
            self.handles.append(model.register_forward_hook(self._make_forward_hook()))
        if log in ("gradients", "all"):
            for name, param in model.named_parameters():
                if param.requires_grad:
                    self.handles.append(param.register_hook(self._make_grad_hook(name)))

    def _add(self, key: str, tensor: Any) -> None:
        hist = _histogram(tensor)
        if hist is None:
            return
        with self._lock:
            self.run.add_to_next_row(key, hist)

    def _make_forward_hook(self) -> Any:
        count = [0]
        freq = self.log_freq

        def hook(module: Any, inputs: Any, output: Any) -> None:
            n = count[0] + 1
            if n < freq:
                count[0] = n
                return
            count[0] = 0
            for name, param in module.named_parameters():
                self._add(f"parameters/{self.prefix}{name}", param)

        return hook

    def _make_grad_hook(self, name: str) -> Any:
        count = [0]
        freq = self.log_freq
        key = f"gradients/{self.prefix}{name}"

        def hook(grad: Any) -> None:
            n = count[0] + 1
            if n < freq:
                count[0] = n
                return
            count[0] = 0
            self._add(key, grad)

        return hook

    def remove(self, flush_graph: bool = False) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        if self.graph is not None:
            self.graph.close(flush=flush_graph)


_watched: list[_Watched] = []

#: at most this many tensor shapes are kept per module input/output (a module returning a long list)
MAX_SHAPES = 16


def _graph_warn(cause: str) -> None:
    termwarn(f"watch(log_graph=True): {cause}; the model graph may be incomplete", repeat=False)


def _shapes(value: Any, out: list[Any], depth: int = 0) -> None:
    """Append the shape of every tensor in ``value`` (tuples, lists, dict values, walked) to ``out``;
    other leaves are named by their type (``None`` stays None)."""
    if len(out) >= MAX_SHAPES:
        return
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        try:
            out.append([int(d) for d in shape])
        except (TypeError, ValueError):  # symbolic sizes
            out.append([str(d) for d in shape])
        return
    if depth < 4 and isinstance(value, (list, tuple)):
        for v in value:
            _shapes(v, out, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for v in value.values():
            _shapes(v, out, depth + 1)
    elif value is None:
        out.append(None)
    else:
        out.append(type(value).__name__)


class _GraphCapture:
    """Forward hooks that record a model's module tree on its first forward pass (``log_graph``).

    Per module, a pre-hook counts the nesting depth of module calls and a post-hook records the
    input/output shapes. The pass is over when the depth returns to 0 after the model itself
    returned, or when a module already seen is called again at depth 0 (the next pass began).
    """

    def __init__(self, run: RunSurface, model: Any, idx: int) -> None:
        self.run = run
        self.model = model
        self.idx = idx
        self.seen: dict[int, dict[str, Any]] = {}  # id(module) -> {"input_shape", "output_shape", "call_order"}
        self.depth = 0
        self.done = False
        self.elapsed = 0.0  # seconds spent in the hooks and in building the graph (the capture overhead)
        self.handles: list[Any] = []
        try:
            for _name, module in model.named_modules():
                self.handles.append(module.register_forward_pre_hook(self._pre))
                self.handles.append(module.register_forward_hook(self._post))
        except Exception as exc:  # noqa: BLE001 - an exotic module must not stop watch()
            _graph_warn(f"cannot hook the model ({type(exc).__name__}: {exc})")
            self.close()

    def _pre(self, module: Any, inputs: Any) -> None:
        if self.done:
            return
        t0 = time.perf_counter()
        try:
            if self.depth == 0 and id(module) in self.seen:
                self._finish()  # the next pass started: the first one is complete
                return
            self.depth += 1
        finally:
            self.elapsed += time.perf_counter() - t0

    def _post(self, module: Any, inputs: Any, output: Any) -> None:
        if self.done:
            return
        t0 = time.perf_counter()
        try:
            self.depth = max(self.depth - 1, 0)
            if id(module) not in self.seen:
                ins: list[Any] = []
                outs: list[Any] = []
                try:
                    _shapes(inputs, ins)
                    _shapes(output, outs)
                except Exception as exc:  # noqa: BLE001
                    _graph_warn(f"cannot read the shapes of {type(module).__name__}'s values ({type(exc).__name__})")
                self.seen[id(module)] = {"input_shape": ins, "output_shape": outs, "call_order": len(self.seen)}
            if self.depth == 0 and module is self.model:
                self._finish()
        finally:
            self.elapsed += time.perf_counter() - t0

    def close(self, flush: bool = False) -> None:
        """Remove the hooks; with ``flush``, record what was seen if the pass never completed."""
        if flush and not self.done and self.seen:
            self._finish()
        self.done = True
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _finish(self) -> None:
        self.done = True
        for h in self.handles:
            h.remove()
        self.handles.clear()
        try:
            graph = self.build()
        except Exception as exc:  # noqa: BLE001
            _graph_warn(f"cannot build the graph ({type(exc).__name__}: {exc})")
            return
        try:
            self.run.summary[f"graph_{self.idx}"] = graph
        except Exception as exc:  # noqa: BLE001 - a logging failure never stops training
            _graph_warn(f"cannot store the graph ({type(exc).__name__}: {exc})")

    def build(self) -> Any:
        """The ``Graph`` of the module tree with what the pass recorded."""
        from wandblite.data_types import Graph

        graph = Graph(format="torch")
        ids: dict[int, int] = {}
        for name, module in self.model.named_modules():
            own = [[pname, [int(d) for d in p.shape], int(p.numel())]
                   for pname, p in module.named_parameters(recurse=False)]
            parent = None
            depth = 0
            if name:
                parent_name = name.rsplit(".", 1)[0] if "." in name else ""
                parent_mod = self.model.get_submodule(parent_name) if parent_name else self.model
                parent = ids.get(id(parent_mod))
                depth = name.count(".") + 1
            node: dict[str, Any] = {
                "name": name, "class_name": type(module).__name__, "parent": parent, "depth": depth,
                "parameters": [[p[0], p[1]] for p in own], "num_parameters": sum(p[2] for p in own),
                "total_parameters": sum(int(p.numel()) for p in module.parameters()),
            }
            call = self.seen.get(id(module))
            if call is not None:
                node.update(call)
            ids[id(module)] = graph.add_node(**node)["id"]
            if parent is not None:
                graph.add_edge(parent, ids[id(module)])
        return graph


def _histogram(tensor: Any) -> Any:
    """A 64-bin ``Histogram`` of a tensor's finite values (wandb's rules above), or None when it has none."""
    import torch

    from wandblite.data_types import Histogram

    t = tensor.detach()
    implicit_zeros = 0
    if t.is_sparse:
        t = t.coalesce()
        implicit_zeros = int(t.numel()) - int(t.values().numel())
        t = t.values()
    t = t.reshape(-1)
    if not t.is_floating_point():
        t = t.float()
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.float()  # histc has no half-precision kernel on every device
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        t = t[finite]
    if t.numel() == 0:
        return None
    lo, hi = float(t.min()), float(t.max())
    if implicit_zeros:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if lo == hi:
        return Histogram(np_histogram=([int(t.numel()) + implicit_zeros], [lo, hi]))
    counts = torch.histc(t, bins=NUM_BINS, min=lo, max=hi).cpu().to(torch.int64).numpy()
    edges = torch.linspace(lo, hi, NUM_BINS + 1).numpy()  # torch's default dtype (float32), as wandb
    if implicit_zeros:
        # the first bin whose range holds 0 (or the last, when 0 is its upper edge)
        at = next((i for i in range(NUM_BINS) if edges[i] <= 0 < edges[i + 1]), NUM_BINS - 1)
        counts[at] += implicit_zeros
    return Histogram(np_histogram=(counts, edges))


def _models(models: Any) -> list[Any]:
    import torch

    seq = list(models) if isinstance(models, (list, tuple)) else [models]
    for m in seq:
        if not isinstance(m, torch.nn.Module):
            raise ValueError(f"Expected a pytorch model (torch.nn.Module). Received {type(m)}")
    return seq


def watch_run(
    run: RunSurface,
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> list[Any]:
    """``run.watch``: hook ``models`` so that histograms are attached to the run's next rows."""
    if log not in _LOG_CHOICES:
        raise ValueError('log must be one of "gradients", "parameters", "all", or None')
    if models is None or (isinstance(models, (list, tuple)) and not models):
        raise ValueError("watch() needs at least one torch.nn.Module")
    seq = _models(models)
    start = idx if idx is not None else sum(1 for w in _watched if w.run is run)
    if not any(w.run is run for w in _watched):
        run.add_finish_callback(lambda: release_run(run))
    for i, model in enumerate(seq):
        g = start + i
        prefix = f"graph_{g}" if g > 0 else ""
        _watched.append(_Watched(run, model, prefix, log, log_freq, graph_idx=g if log_graph else None))
    return []


def unwatch_run(run: RunSurface, models: Any = None) -> None:
    """``run.unwatch``: remove the hooks on ``models`` (all of the run's models when None).

    A graph whose first pass began but has not ended is recorded as far as it was seen; one whose
    pass never began records nothing."""
    keep: list[_Watched] = []
    targets = None
    if models is not None:
        targets = {id(m) for m in (models if isinstance(models, (list, tuple)) else [models])}
    for w in _watched:
        if w.run is run and (targets is None or id(w.model) in targets):
            w.remove(flush_graph=True)
        else:
            keep.append(w)
    _watched[:] = keep
    if not any(w.run is run for w in keep):
        run.clear_next_row()


def release_run(run: RunSurface) -> None:
    """Drop every hook held for ``run`` (called when it finishes); record a partly seen graph."""
    unwatch_run(run)


def watch(
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> Any:
    """wandb's ``watch``: log histograms of ``models``' gradients/parameters into the active run."""
    run = active_run("wandb.watch()")
    return run.watch(models, criterion=criterion, log=log, log_freq=log_freq, idx=idx, log_graph=log_graph)


def unwatch(models: Any = None) -> None:
    """wandb's ``unwatch``: remove the hooks ``watch`` installed (on ``models``, or all)."""
    run = active_run("wandb.unwatch()")
    run.unwatch(models)

