"""``wandblite.Api``: read runs back from a wandblite server, or from the embedded local store.

Layer 5 (a client of the server's read API). ``import wandblite`` does not import this module:
``wandblite.Api`` loads it on first use, and ``requests`` is imported only here, only when a server
is configured. The embedded store is read through ``wandblite.server`` (the ``server`` extra),
with the very functions the HTTP endpoints call, so both answer the same.

::

    api = wandblite.Api()                       # $WANDBLITE_SERVER / login settings, else ~/.wandblite
    for run in api.runs("mnist", filters={"config.lr": {"$gt": 0.01}}, order="-summary.acc"):
        print(run.id, run.state, run.summary.get("acc"))
    run = api.run("mnist/abc123")
    df = run.history(keys=["train/loss"], samples=500)        # downsampled on the server (min/max kept)
    for row in run.scan_history():                             # every row, constant memory
        ...

A ``Run`` reads like ``wandblite.replay(path)``: ``.id .name .project .state .config .summary .tags
.group .job_type .notes .created_at``, ``.history()``, ``.scan_history()`` (nested rows with
``_step``/``_runtime``/``_timestamp``, media values as mappings with ``.bytes()``), so notebook code
works on both. ``run.alerts()`` lists its alerts, each marked ``throttled`` as the server decided.
Errors raise ``ApiRequestError`` (a ``wandblite.Error``) with the server's ``status``,
``code`` and message.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wandblite.errors import Error
from wandblite.fold import get_path, has_path, split_name
from wandblite.media import MediaMapping
from wandblite.vocab import STEP, TYPE_KEY, home_dir

__all__ = ["Api", "ApiRequestError", "Project", "RemoteMedia", "Run"]


class ApiRequestError(Error):
    """A read failed: ``status`` (HTTP status, 0 when the server could not be reached), ``code``, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({status} {code})" if status else message)
        self.status = status
        self.code = code


# --------------------------------------------------------------------------- backends


class _HttpBackend:
    """The server's REST API under ``/api/v1`` (Bearer key)."""

    def __init__(self, server: str, api_key: str | None, timeout: float) -> None:
        import requests

        self._requests = requests
        self.base = server.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, Any] | None = None, raw: bool = False) -> Any:
        try:
            r = self.session.get(self.base + path, params=params, timeout=self.timeout)
        except self._requests.RequestException as exc:
            raise ApiRequestError(0, "connection", f"cannot reach {self.base}: {exc}") from exc
        if r.status_code != 200:
            try:
                err = r.json()["error"]
                code, msg = str(err.get("code")), str(err.get("message"))
            except (ValueError, KeyError, TypeError, AttributeError):
                code, msg = "http_error", r.text[:200]
            raise ApiRequestError(r.status_code, code, msg)
        return r.content if raw else json.loads(r.content)

    @staticmethod
    def _run(project: str, run_id: str) -> str:
        return f"/projects/{quote(project, safe='')}/runs/{quote(run_id, safe='')}"

    def projects(self) -> dict[str, Any]:
        return dict(self._get("/projects"))

    def runs(self, project: str, filters: Any, order: str, search: str | None, limit: int, offset: int) -> Any:
        params: dict[str, Any] = {"order": order, "limit": limit, "offset": offset}
        if filters:
            params["filters"] = json.dumps(filters)
        if search:
            params["search"] = search
        return self._get(f"/projects/{quote(project, safe='')}/runs", params)

    def run(self, project: str, run_id: str) -> Any:
        return self._get(self._run(project, run_id))

    def keys(self, project: str, run_id: str) -> Any:
        return self._get(self._run(project, run_id) + "/keys")

    def series(self, project: str, run_id: str, keys: list[str], x_axis: str, samples: int) -> Any:
        params = {"keys": ",".join(keys), "x_axis": x_axis, "samples": samples}
        return self._get(self._run(project, run_id) + "/series", params)

    def history(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._get(self._run(project, run_id) + "/history", {"start": start, "limit": limit})

    def media(self, project: str, run_id: str, key: str, limit: int) -> Any:
        return self._get(self._run(project, run_id) + "/media", {"key": key, "limit": limit})

    def alerts(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._get(self._run(project, run_id) + "/alerts", {"start": start, "limit": limit})

    def media_bytes(self, sha256: str) -> bytes:
        return bytes(self._get(f"/media/{quote(sha256, safe='')}", raw=True))

    def close(self) -> None:
        self.session.close()


class _LocalBackend:
    """The embedded local store (``$WANDBLITE_HOME``), read with the server's own query functions."""

    def __init__(self, home: str | os.PathLike[str] | None) -> None:
        try:
            from wandblite.server import media_query, read, records, runs_query, series_query
            from wandblite.server.errors import ApiError
            from wandblite.server.store import Store
        except ImportError as exc:
            raise Error("with no server configured, wandblite.Api() reads the embedded store, which needs "
                        f"the server extra: pip install 'wandblite[server]' ({exc})") from exc
        h = Path(home) if home is not None else home_dir()
        if not (h / "store.db").is_file():
            raise Error(f"no server configured (pass server=, set $WANDBLITE_SERVER or wandblite.login(host=...)) "
                        f"and no embedded store at {h / 'store.db'}: run `wandblite sync <runs>` first")
        self.store = Store.embedded(h)
        self.read, self.records, self._api_error = read, records, ApiError
        self.runs_query, self.series_query, self.media_query = runs_query, series_query, media_query

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return json.loads(json.dumps(fn(self.store, *args, **kwargs)))  # the same values HTTP gives
        except self._api_error as exc:
            raise ApiRequestError(exc.status, exc.code, exc.message) from exc

    def projects(self) -> Any:
        return self._call(self.read.list_projects)

    def runs(self, project: str, filters: Any, order: str, search: str | None, limit: int, offset: int) -> Any:
        return self._call(self.runs_query.list_runs, project, filters=filters, order=order, search=search, limit=limit,
                          offset=offset)

    def run(self, project: str, run_id: str) -> Any:
        return self._call(self.read.get_run, project, run_id)

    def keys(self, project: str, run_id: str) -> Any:
        return self._call(self.series_query.run_keys, project, run_id)

    def series(self, project: str, run_id: str, keys: list[str], x_axis: str, samples: int) -> Any:
        return self._call(self.series_query.get_series, project, run_id, keys, x_axis=x_axis, samples=samples)

    def history(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._call(self.read.get_history, project, run_id, start, limit)

    def media(self, project: str, run_id: str, key: str, limit: int) -> Any:
        return self._call(self.media_query.list_media, project, run_id, key, limit=limit)

    def alerts(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._call(self.records.list_alerts, project, run_id, start, limit)

    def media_bytes(self, sha256: str) -> bytes:
        try:
            return bytes(self.store.media_blob(sha256).read_bytes())
        except self._api_error as exc:
            raise ApiRequestError(exc.status, exc.code, exc.message) from exc

    def close(self) -> None:
        self.store.close()


# --------------------------------------------------------------------------- values


class RemoteMedia(MediaMapping):
    """A media value of a stored row: a read-only mapping of its JSON, plus ``bytes()``.

    ``bytes()`` fetches the blob by its sha256 (a chart gives its table's JSON); ``media()`` gives
    the members of a collection (``images/separated``, ``videos``, ``audio``, ``object3D``);
    ``open()`` gives a ``PIL.Image`` for images and GIF videos, the parsed JSON for tables, charts
    and point clouds, ``str`` for html, and a binary file object otherwise.
    """

    __slots__ = ("_api",)

    def __init__(self, value: Mapping[str, Any], api: Api) -> None:
        super().__init__(value)
        self._api = api

    def __repr__(self) -> str:
        return f"<RemoteMedia {self._value.get(TYPE_KEY)} {self._value.get('path', '')}>"

    def _sha(self) -> str:
        ref = self._value.get("table") if self._value.get(TYPE_KEY) == "chart" else self._value
        if not isinstance(ref, Mapping) or "sha256" not in ref:
            raise Error(f"{self!r} is a collection or has no bytes: use .media() for its items")
        return str(ref["sha256"])

    def bytes(self) -> bytes:
        return self._api.media_bytes(self._sha())

    def media(self) -> list[RemoteMedia]:
        return [RemoteMedia(v, self._api) for v in self._items()]

    def open(self) -> Any:
        t = str(self._value.get(TYPE_KEY))
        data = self.bytes()
        if t == "image-file" or (t == "video-file" and str(self._value.get("path", "")).endswith(".gif")):
            from PIL import Image

            return Image.open(io.BytesIO(data))
        if t in ("table-file", "chart") or str(self._value.get("path", "")).endswith(".json"):
            return json.loads(data)
        if t == "html-file":
            return data.decode("utf-8", "replace")
        return io.BytesIO(data)


def _wrap(v: Any, api: Api) -> Any:
    if type(v) is dict:
        if TYPE_KEY in v:
            return RemoteMedia(v, api)
        return {k: _wrap(x, api) for k, x in v.items()} if any(type(x) in (dict, list) for x in v.values()) else v
    if type(v) is list and v and type(v[0]) is dict:
        return [_wrap(x, api) for x in v]
    return v


@dataclass(frozen=True)
class Project:
    """A project on the server: its name, how many runs it has, when it was created and last updated."""

    name: str
    run_count: int
    created_at: float | None
    updated_at: float | None


class Run:
    """A stored run. Attributes as ``wandblite.replay``'s: ``id name project state config summary tags
    group job_type notes created_at updated_at heartbeat_at runtime host exit_code rows``; the run's
    ``metrics`` (define_metric), ``context``, ``error``, ``signal`` load on first use."""

    def __init__(self, api: Api, project: str, data: dict[str, Any]) -> None:
        self._api = api
        self.project = project
        self._data = data
        self._set(data)

    def _set(self, d: dict[str, Any]) -> None:
        self._data = d
        self.id: str = d["id"]
        self.name: str | None = d.get("name")
        self.state: str = d.get("state") or "running"
        self.config: dict[str, Any] = d.get("config") or {}
        self.summary: dict[str, Any] = d.get("summary") or {}
        self.tags: list[str] = list(d.get("tags") or [])
        self.group: str | None = d.get("group")
        self.job_type: str | None = d.get("job_type")
        self.notes: str | None = d.get("notes")
        self.created_at: float | None = d.get("created_at")
        self.updated_at: float | None = d.get("updated_at")
        self.heartbeat_at: float | None = d.get("heartbeat_at")
        self.runtime: float | None = d.get("runtime")
        self.host: str | None = d.get("host")
        self.exit_code: int | None = d.get("exit_code")
        self.rows: int = int(d.get("rows") or 0)

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} {self.name} {self.state} rows={self.rows}>"

    @property
    def path(self) -> str:
        """``project/run_id``: what ``Api.run`` takes."""
        return f"{self.project}/{self.id}"

    def _detail(self) -> dict[str, Any]:
        if "position" not in self._data:
            self._set(self._api._backend.run(self.project, self.id))
        return self._data

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self._detail().get("metrics") or {})

    @property
    def context(self) -> dict[str, Any]:
        return dict(self._detail().get("context") or {})

    @property
    def error(self) -> Any:
        return self._detail().get("error")

    @property
    def signal(self) -> str | None:
        return self._detail().get("signal")

    def refresh(self) -> Run:
        """Read the run's metadata, config, summary and state again from the server."""
        self._set(self._api._backend.run(self.project, self.id))
        return self

    def list_keys(self) -> list[dict[str, Any]]:
        """The run's keys: ``[{"key", "kind", "count", "first_step", "last_step"}]`` (numbers, then media)."""
        return list(self._api._backend.keys(self.project, self.id)["keys"])

    # ------------------------------------------------------------------ history
    def scan_history(self, keys: list[str] | None = None, page_size: int = 1000,
                     min_step: int | None = None, max_step: int | None = None) -> Iterator[dict[str, Any]]:
        """Every stored row in order, a page at a time (constant memory), as ``replay().scan_history()``
        gives them: nested, with ``_step``/``_runtime``/``_timestamp``; media values are ``RemoteMedia``.
        With ``keys``: only rows holding all of them, reduced to ``_step`` and those keys."""
        want = [split_name(k) for k in keys or ()]  # a reserved key has no dot: one column
        start: int | None = 0
        while start is not None:
            page = self._api._backend.history(self.project, self.id, start, page_size)
            for item in page["rows"]:
                row = _wrap(item["row"], self._api)
                if min_step is not None and row.get(STEP, 0) < min_step:
                    continue
                if max_step is not None and row.get(STEP, 0) >= max_step:
                    continue
                if want:
                    if not all(has_path(row, p) for p in want):
                        continue
                    row = {STEP: row.get(STEP), **{k: get_path(row, p) for k, p in zip(keys or (), want)}}
                yield row
            start = page["next"]

    def history(self, keys: list[str] | None = None, samples: int = 500, x_axis: str = STEP,
                pandas: bool = True) -> Any:
        """Numeric metrics downsampled on the server (each bucket's min and max kept), one row per x.

        ``keys``: metric keys (default: every numeric key). Rows are ``{x_axis: x, key: y, ...}``
        sorted by x; a key without a point at an x is missing from that row (NaN in the DataFrame);
        several points of a key at one x (an ``epoch`` axis) make several rows.
        ``pandas=False`` gives the list of dicts.
        """
        if keys is None:
            keys = [k["key"] for k in self.list_keys() if k["kind"] == "number" and k["key"] != x_axis]
        # x -> rows at that x; a key with several points at one x (an epoch axis) fills several rows.
        merged: dict[Any, list[dict[str, Any]]] = {}
        for i in range(0, len(keys), 100):
            res = self._api._backend.series(self.project, self.id, keys[i:i + 100], x_axis, samples)
            for key, s in res["series"].items():
                seen: dict[Any, int] = {}
                for x, y in zip(s["x"], s["y"]):
                    j = seen[x] = seen.get(x, -1) + 1
                    at = merged.setdefault(x, [])
                    if j == len(at):
                        at.append({x_axis: x})
                    at[j][key] = y
        rows = [r for x in sorted(merged) for r in merged[x]]
        if not pandas:
            return rows
        import pandas as pd

        return pd.DataFrame(rows, columns=[x_axis, *keys])

    # ------------------------------------------------------------------ media
    def media(self, key: str, limit: int = 10_000) -> list[dict[str, Any]]:
        """Each row where ``key`` holds a media value: ``[{"step", "idx", "value": RemoteMedia}]``."""
        res = self._api._backend.media(self.project, self.id, key, limit)
        return [{"step": s["step"], "idx": s["idx"], "value": RemoteMedia(s["value"], self._api)}
                for s in res["steps"]]


    # ------------------------------------------------------------------ alerts
    def alerts(self, include_throttled: bool = True, page_size: int = 1000) -> list[dict[str, Any]]:
        """The run's ``run.alert`` calls in order: ``[{"idx", "ts", "title", "text", "level",
        "wait_duration", "throttled"}]``. ``throttled`` is true for an alert wandb would not have sent
        (an earlier sent alert of the same title less than its ``wait_duration``, default 60 s, before;
        the rule is in ``wandblite/throttle.py``). ``include_throttled=False`` leaves them out."""
        out: list[dict[str, Any]] = []
        start: int | None = 0
        while start is not None:
            page = self._api._backend.alerts(self.project, self.id, start, page_size)
            out.extend(a for a in page["alerts"] if include_throttled or not a.get("throttled"))
            start = page["next"]
        return out


class Api:
    """Read access to stored runs: a wandblite server, or the embedded local store.

    The server is ``server``, else ``$WANDBLITE_SERVER``, else what ``wandblite.login`` saved (or
    ``$WANDBLITE_BASE_URL``); the key likewise (``api_key``, ``$WANDBLITE_API_KEY``, the settings
    file). With no server at all, the embedded store of ``$WANDBLITE_HOME`` (``~/.wandblite``) is
    read directly (``home`` overrides it).
    """

    def __init__(self, server: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 home: str | os.PathLike[str] | None = None) -> None:
        from wandblite.login import credentials

        saved = credentials() if not (server and api_key) else {"server": None, "api_key": None}
        server = server or os.environ.get("WANDBLITE_SERVER") or saved.get("server")
        api_key = api_key or os.environ.get("WANDBLITE_API_KEY") or saved.get("api_key")
        self.server = server
        self._backend: _HttpBackend | _LocalBackend = (
            _HttpBackend(server, api_key, timeout) if server else _LocalBackend(home))

    def __repr__(self) -> str:
        return f"<Api {self.server or 'embedded store'}>"

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def projects(self) -> list[Project]:
        return [Project(p["name"], int(p.get("runs") or 0), p.get("created_at"), p.get("updated_at"))
                for p in self._backend.projects()["projects"]]

    def runs(self, project: str, filters: dict[str, Any] | None = None, order: str = "-created_at",
             search: str | None = None, per_page: int = 1000) -> list[Run]:
        """The project's runs matching ``filters`` (MongoDB-like, as wandb's), ordered by ``order``
        (``created_at``, ``-summary.acc``, ``config.lr`` ...); ``search`` matches name, id, tags, notes."""
        project = project.rsplit("/", 1)[-1]  # "entity/project" as wandb writes it
        out: list[Run] = []
        offset = 0
        while True:
            page = self._backend.runs(project, filters, order, search, per_page, offset)
            out.extend(Run(self, project, d) for d in page["runs"])
            offset += len(page["runs"])
            if not page["runs"] or offset >= page["total"]:
                return out

    def run(self, path: str) -> Run:
        """``"project/run_id"`` (or wandb's ``"entity/project/run_id"``)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2:
            raise Error(f"run path {path!r}: expected 'project/run_id'")
        project, run_id = parts[-2], parts[-1]
        return Run(self, project, self._backend.run(project, run_id))

    def media_bytes(self, sha256: str) -> bytes:
        """The bytes of a stored media blob."""
        return self._backend.media_bytes(sha256)
