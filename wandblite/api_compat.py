"""``wandb.Api`` under the drop-in alias: wandblite's query client answering in wandb's shapes.

Layer 5, beside ``wandblite.api`` and built on it (same backends: a server over HTTP with
``requests`` only, or the embedded store with the ``server`` extra). Under the alias
(``wandblite.integrations.as_wandb()``, the drop-in runner, ``WANDBLITE_AS_WANDB=1``), ``wandb.Api``,
``wandb.apis.public.Api`` and ``wandb.apis.PublicApi`` are this module's ``Api``; ``wandblite.Api``
outside the alias keeps wandblite's own answers (``wandblite.api``'s docstring has the table of
differences). Notebook code written for ``wandb.Api()`` runs unchanged::

    api = wandb.Api()                                   # the server of $WANDB_BASE_URL / login, else the store
    runs = api.runs("entity/project", filters={"config.lr": {"$gt": 0.01}}, order="-summary_metrics.acc")
    len(runs); runs[0].summary["acc"]
    run = api.run("entity/project/run_id")
    df = run.history()                                  # a DataFrame of <= 500 rows, every key, flat columns
    for row in run.scan_history(keys=["loss"]): ...     # {"loss": ...}: exactly the keys asked for
    run.file("model.pt").download(root="out", replace=True)
    api.artifact("entity/project/data:latest").download()

What follows wandb here:

* ``Api(overrides=None, timeout=None, api_key=None)``: ``overrides`` may hold ``base_url`` (the
  server; else ``$WANDBLITE_SERVER``, ``$WANDB_BASE_URL`` or what ``login`` saved, else the embedded
  store), ``entity`` and ``project`` (else ``$WANDB_ENTITY``, ``$WANDB_PROJECT``): the defaults for
  paths that leave them out. ``api.settings`` holds them; ``api.default_entity`` is that entity,
  else the user name of this process (wandb's default entity is its user).
* ``runs()`` defaults to oldest first (``+created_at``) and 50 runs a request; a filter's or
  order's ``name`` is the run id and ``display_name`` the run's name, as in wandb.
* ``Run``: ``created_at``/``heartbeat_at``/``updated_at`` are ISO 8601 UTC text, ``path`` is
  ``[entity, project, id]``, ``entity`` is the one in the path asked with, else the run's
  (``init(entity=)``), else ``default_entity``; ``display_name``, ``summary_metrics``, ``storage_id``,
  ``lastHistoryStep``; ``summary`` is a dict with wandb's ``_json_dict``.
* ``history(samples=500, keys=None, x_axis="_step", pandas=True, stream="default")``: at most
  ``samples`` history rows evenly spaced over the run, the first and last kept (wandb samples on
  its server too; which rows it keeps in between is its own), flattened to ``a.b`` columns, media
  values as their plain dicts. Without ``keys``: whole rows (every key). With ``keys``: only the
  rows holding ``x_axis`` and every key, reduced to them. ``stream="system"``: system metrics as
  ``system.<metric>`` columns. A DataFrame unless ``pandas=False`` (or pandas is missing: the list,
  with one warning, as wandb does).
* ``scan_history(keys=None, page_size=1000, min_step=0, max_step=None)``: every row, flat; with
  ``keys`` only the rows holding all of them, each reduced to exactly those keys (ask for ``_step``
  to get it); ``min_step`` inclusive, ``max_step`` exclusive.
* ``run.files()``, ``run.file(name).download(root=".", replace=False, exist_ok=False)``,
  ``run.logged_artifacts()``, ``run.used_artifacts()``, ``api.artifact(name, type=None)``,
  ``api.projects()``, ``api.project(name)``: as ``wandblite.api`` has them (already wandb's shapes).

What is offline here: the files a run lists are those it saved (``wandb.save``/``run.save``),
not wandb's own ``output.log``/``config.yaml``/``wandb-metadata.json``; ``run.url`` is the run's
page on the wandblite dashboard. ``run.update()`` stores ``name``, ``tags``, ``notes`` (and
``archived``) and ``run.delete()`` deletes the run, as ``wandblite.api.Run`` does; ``config`` and
``summary`` (``summary.update()``) change only through ``wandblite sync`` of the run's directory.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wandblite import api as _api
from wandblite.api import ApiRequestError, File, Runs, StoredArtifact, iso_time
from wandblite.errors import Error
from wandblite.replay import flatten
from wandblite.term import termwarn
from wandblite.vocab import MAX_SAMPLED_ROWS, STEP, spread

__all__ = ["Api", "ApiRequestError", "File", "Project", "Run", "Runs", "StoredArtifact", "Summary"]


@dataclass(frozen=True)
class Project:
    """wandb's ``Project``: ``name``, ``entity``, ``run_count``, ``created_at`` (ISO text)."""

    name: str
    entity: str
    run_count: int
    created_at: str | None

    @property
    def path(self) -> list[str]:
        return [self.entity, self.name]


class Summary(dict[str, Any]):
    """wandb's ``run.summary`` read side: a dict of the run's summary, plus ``_json_dict`` (the plain dict
    wandb's export snippets read). It is not written back: ``update()`` says so instead of keeping a
    change only here."""

    @property
    def _json_dict(self) -> dict[str, Any]:
        return dict(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise Error("run.summary.update(): a stored run changes only through `wandblite sync` of its run "
                    "directory; wandblite's Api reads, it does not write")


class Run(_api.Run):
    """A stored run with wandb's attributes and answers (see the module docstring)."""

    _api: Api

    def _set(self, d: dict[str, Any]) -> None:
        super()._set(d)
        self.summary = Summary(self.summary)
        self.created_at = iso_time(d.get("created_at"))
        self.updated_at = iso_time(d.get("updated_at"))
        self.heartbeat_at = iso_time(d.get("heartbeat_at"))

    def __repr__(self) -> str:
        return f"<Run {'/'.join(self.path)} ({self.state})>"

    @property
    def entity(self) -> str:
        """The entity named in the path the run was asked with (as wandb echoes it), else the run's own
        (``init(entity=)``), else ``default_entity``."""
        return self._entity_hint or super().entity or self._api.default_entity

    @property
    def path(self) -> list[str]:
        """``[entity, project, run_id]``, as wandb's."""
        return [self.entity, self.project, self.id]

    @property
    def display_name(self) -> str | None:
        return self.name

    @property
    def storage_id(self) -> str:
        return self.id

    @property
    def summary_metrics(self) -> dict[str, Any]:
        return self.summary

    @property
    def lastHistoryStep(self) -> int:  # noqa: N802 - wandb's name
        """The last ``_step`` of the run's history (-1 for none): the step of its last row."""
        rows = self._api._backend.sampled(self.project, self.id, 2, None)["rows"]  # the first and the last
        return int(rows[-1].get(STEP, -1)) if rows else -1

    def history(self, samples: int = 500, keys: list[str] | None = None, x_axis: str = STEP,
                pandas: bool = True, stream: str = "default") -> Any:
        """wandb's sampled history (see the module docstring)."""
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
            termwarn("history(keys=...) must be a list of strings", repeat=False)
            return []
        if stream == "system":
            return _api._frame(self.system_history(samples), pandas)
        if stream != "default":
            raise Error(f"history(stream={stream!r}): expected 'default' or 'system'")
        want = [x_axis, *(k for k in keys if k != x_axis)] if keys else None
        if samples > MAX_SAMPLED_ROWS:  # more than one request may ask for: every row, picked here alike
            every = list(self._scan(want, 10_000, None, None))
            rows = [every[i] for i in spread(len(every), samples)]
        else:
            rows = self._api._backend.sampled(self.project, self.id, samples, want)["rows"]
        return _api._frame(rows, pandas)

    def scan_history(self, keys: list[str] | None = None, page_size: int = 1000,  # type: ignore[override]
                     min_step: int | None = 0, max_step: int | None = None) -> Iterator[dict[str, Any]]:
        """Every history row, flat, a page at a time (see the module docstring)."""
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
            raise ValueError("keys must be specified in a list of strings")
        return self._scan(keys, page_size, min_step, max_step)

    def _scan(self, keys: list[str] | None, page_size: int, min_step: int | None,
              max_step: int | None) -> Iterator[dict[str, Any]]:
        for stored in self._pages(page_size):
            step = stored.get(STEP, 0)
            if (min_step is not None and step < min_step) or (max_step is not None and step >= max_step):
                continue
            row = flatten(stored)
            if keys:
                if not all(k in row for k in keys):
                    continue
                row = {k: row[k] for k in keys}
            yield row


class Api(_api.Api):
    """wandb's ``Api``: read runs, files and artifacts from a wandblite server or the embedded store."""

    run_class = Run
    name_is_id = True
    default_order = "+created_at"

    def __init__(self, overrides: dict[str, Any] | None = None, timeout: float | None = None,
                 api_key: str | None = None, *, server: str | None = None,
                 home: str | os.PathLike[str] | None = None) -> None:
        o = dict(overrides or {})
        super().__init__(server=server or o.get("base_url"), api_key=api_key,
                         timeout=float(timeout) if timeout else 60.0, home=home)
        self.settings: dict[str, Any] = {
            "base_url": self.server,
            "entity": o.get("entity") or os.environ.get("WANDB_ENTITY"),
            "project": o.get("project") or os.environ.get("WANDB_PROJECT"),
        }
        self.default_project = self.settings["project"]

    @property
    def default_entity(self) -> str:
        """``overrides["entity"]``, else ``$WANDB_ENTITY``, else this process's user name."""
        return str(self.settings.get("entity") or getpass.getuser())

    def flush(self) -> None:
        """wandb's cache reset: nothing to do, this client keeps no answers between calls."""

    def runs(self, path: str | None = None, filters: dict[str, Any] | None = None, order: str | None = "+created_at",
             per_page: int = 50, include_sweeps: bool = False, lazy: bool = True, *,
             search: str | None = None, archived: str = "hide") -> Runs:
        return super().runs(path, filters, order, per_page, include_sweeps, lazy, search=search, archived=archived)

    def projects(self, entity: str | None = None, per_page: int = 200) -> list[Any]:
        """Every project, as wandb's ``Project`` (``name``, ``entity``, ``run_count``, ``created_at``)."""
        who = entity or self.default_entity
        return [Project(p.name, who, p.run_count, iso_time(p.created_at)) for p in super().projects()]

    def project(self, name: str, entity: str | None = None) -> Project:
        """The project ``name`` (``ApiRequestError`` 404 when the store has none)."""
        for p in self.projects(entity):
            if p.name == name:
                return p  # type: ignore[no-any-return]
        raise ApiRequestError(404, "not_found", f"no project {name!r}")
