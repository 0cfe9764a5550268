"""``wandblite.watch`` / ``unwatch``: histograms of a PyTorch model's gradients and parameters.

Layer 4. torch is imported only inside ``watch`` when a model is passed (``import wandblite`` never
loads it); numpy is used through ``wandblite.Histogram``.

What it records, as wandb does:

* ``log="gradients"`` (the default): a hook on every parameter that requires grad; every
  ``log_freq``-th time a parameter's gradient is computed (its 0th, ``log_freq``-th, ... backward),
  a 64-bin histogram of that gradient becomes ``gradients/<prefix><name>``.
* ``log="parameters"``: a forward hook on the model; every ``log_freq``-th training-mode forward
  call, a histogram of every parameter becomes ``parameters/<prefix><name>``.
* ``log="all"``: both. ``log=None``: nothing (wandb would log only the graph).

``<prefix>`` is empty for the first watched model of a run and ``graph_<idx>`` for the next ones
(wandb's naming). Histograms wait in ``run._pending_hist`` and are attached to the next
``run.log`` row (user keys win on a clash), like wandb's ``commit=False`` logging from its hooks.

Cost between samples: one Python call and an integer increment per hook call; the histogram work
(``torch.histc`` on the tensor's device, one copy of 64 counts) happens only on sampled steps.
NaN and inf are left out of a histogram rather than failing the training step. ``log_graph`` is
accepted and not recorded offline.
"""

from __future__ import annotations

import threading
from typing import Any

from wandblite.env import active_run, on_finish

__all__ = ["NUM_BINS", "unwatch", "watch"]

NUM_BINS = 64
_LOG_CHOICES = ("gradients", "parameters", "all", None)


class _Watched:
    """The hooks wandblite holds on one model for one run."""

    def __init__(self, run: Any, model: Any, prefix: str, log: str | None, log_freq: int) -> None:
        self.run = run
        self.model = model
        self.prefix = prefix
        self.log_freq = max(int(log_freq), 1)
        self.handles: list[Any] = []
        self._lock = threading.Lock()
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
            pending = self.run._pending_hist
            pending = {} if pending is None else pending
            pending[key] = hist
            self.run._pending_hist = pending

    def _make_forward_hook(self) -> Any:
        count = [0]
        freq = self.log_freq

        def hook(module: Any, inputs: Any, output: Any) -> None:
            if not module.training:
                return
            n = count[0]
            count[0] = n + 1
            if n % freq:
                return
            for name, param in module.named_parameters():
                self._add(f"parameters/{self.prefix}{name}", param)

        return hook

    def _make_grad_hook(self, name: str) -> Any:
        count = [0]
        freq = self.log_freq
        key = f"gradients/{self.prefix}{name}"

        def hook(grad: Any) -> None:
            n = count[0]
            count[0] = n + 1
            if n % freq == 0:
                self._add(key, grad)

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


_watched: list[_Watched] = []


def _histogram(tensor: Any) -> Any:
    """A 64-bin ``Histogram`` of a tensor's finite values, or None when it has none."""
    import torch

    from wandblite.data_types import Histogram

    t = tensor.detach()
    if t.is_sparse:
        t = t.coalesce().values()
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
    if lo == hi:  # numpy's convention for a constant tensor
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(t, bins=NUM_BINS, min=lo, max=hi).cpu().to(torch.int64).numpy()
    edges = torch.linspace(lo, hi, NUM_BINS + 1, dtype=torch.float64).numpy()
    return Histogram(np_histogram=(counts, edges))


def _models(models: Any) -> list[Any]:
    import torch

    seq = list(models) if isinstance(models, (list, tuple)) else [models]
    for m in seq:
        if not isinstance(m, torch.nn.Module):
            raise ValueError(f"Expected a pytorch model (torch.nn.Module). Received {type(m)}")
    return seq


def watch_run(
    run: Any,
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
    if log_graph:
        from wandblite.run import termwarn

        termwarn("watch(log_graph=True): the model graph is not recorded offline", repeat=False)
    start = idx if idx is not None else sum(1 for w in _watched if w.run is run)
    if not any(w.run is run for w in _watched):
        on_finish(run, lambda: release_run(run))
    for i, model in enumerate(seq):
        g = start + i
        prefix = f"graph_{g}" if g > 0 else ""
        _watched.append(_Watched(run, model, prefix, log, log_freq))
    return []


def unwatch_run(run: Any, models: Any = None) -> None:
    """``run.unwatch``: remove the hooks on ``models`` (all of the run's models when None)."""
    keep: list[_Watched] = []
    targets = None
    if models is not None:
        targets = {id(m) for m in (models if isinstance(models, (list, tuple)) else [models])}
    for w in _watched:
        if w.run is run and (targets is None or id(w.model) in targets):
            w.remove()
        else:
            keep.append(w)
    _watched[:] = keep
    if not any(w.run is run for w in keep):
        run._pending_hist = None


def release_run(run: Any) -> None:
    """Drop every hook held for ``run`` (called when it finishes)."""
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

