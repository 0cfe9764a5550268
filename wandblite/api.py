"""``wandblite.Api``: read runs back from a wandblite server, or from the embedded local store.

Layer 5 (a client of the server's read API). ``import wandblite`` does not import this module:
``wandblite.Api`` loads it on first use. Over HTTP it needs only ``requests`` (the plain install);
the embedded store is read through ``wandblite.server`` (the ``server`` extra, SQLAlchemy), with
the very functions the HTTP endpoints call, so both answer the same. Without the extra, reading
the embedded store fails with one line saying to install it; HTTP never imports it.

::

    api = wandblite.Api()                       # $WANDBLITE_SERVER / login settings, else ~/.wandblite
    for run in api.runs("mnist", filters={"config.lr": {"$gt": 0.01}}, order="-summary.acc"):
        print(run.id, run.state, run.summary.get("acc"))
    run = api.run("mnist/abc123")
    df = run.history(keys=["train/loss"], samples=500)        # downsampled on the server (min/max kept)
    for row in run.scan_history():                             # every row, constant memory
        ...
    run.file("model.pt").download(root="out")                  # a file the run saved
    api.artifact("mnist/dataset:latest").download()           # ./artifacts/dataset:v0

It takes wandb's paths and calls: ``"entity/project"`` and ``"entity/project/run_id"`` (the
entity is ignored: a wandblite server has one namespace of projects), ``runs(path, filters,
order, per_page)`` with wandb's filter names (``display_name``, ``createdAt`` as an ISO time,
``summary_metrics.x``, ``config.x.value``, ``duration``) and orders (``+created_at``,
``-summary_metrics.loss``), ``history(samples, keys, x_axis, pandas)`` in wandb's argument order.

A ``Run`` reads like ``wandblite.replay(path)``: ``.id .name .project .state .config .summary .tags
.group .job_type .notes .created_at`` (seconds since the epoch), ``.history()``, ``.scan_history()``
(nested rows with ``_step``/``_runtime``/``_timestamp``, media values as mappings with ``.bytes()``),
so notebook code works on both. ``run.alerts()`` lists its alerts, each marked ``throttled`` as the
server decided. As in wandb, ``run.name = ...; run.tags = [...]; run.notes = ...; run.update()``
stores an edit, ``run.delete()`` deletes the run (its owner or a project admin; ``docs/roles.md``);
``run.archived = True; run.update()`` archives it, ``run.move(project)`` moves it. Errors raise ``ApiRequestError`` (a ``wandblite.Error``) with the server's ``status``,
``code`` and message.

Where wandb answers in another shape, ``wandblite.api_compat.Api`` (what ``wandb.Api`` is under the
drop-in alias) follows wandb; this module keeps wandblite's own answers:

* ``runs()``'s default order: here newest first (``-created_at``); wandb's oldest first (``+created_at``).
* a filter's or order's ``name``: here the run's display name; wandb's the run id (its display name
  is ``display_name`` in both).
* ``run.created_at`` (``updated_at``, ``heartbeat_at``): here seconds since the epoch; wandb's ISO
  8601 UTC text.
* ``run.path``: here ``"project/run_id"``; wandb's ``[entity, project, run_id]``.
* ``history()``: here each numeric key downsampled on its own, each bucket's minimum and maximum
  kept (spikes survive), merged into one row per x; wandb's: whole rows sampled evenly over the run
  (first and last kept), every key, flattened to ``a.b`` columns, and with ``keys`` only the rows
  holding all of them.
* ``scan_history()``: here nested rows with media as ``RemoteMedia``, and with ``keys`` ``_step`` plus
  the keys; wandb's flat rows with media as plain dicts, and with ``keys`` exactly the keys.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import hashlib
import io
import json
import mimetypes
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, overload
from urllib.parse import quote

from wandblite.errors import CommError, Error
from wandblite.fold import get_path, has_path, split_name
from wandblite.media import MediaMapping
from wandblite.term import termwarn
from wandblite.vocab import HISTORY_MSGPACK, STEP, TYPE_KEY, file_name_problem, home_dir, spread

__all__ = ["Api", "ApiRequestError", "ArtifactManifest", "File", "ManifestEntry", "Project", "RemoteMedia", "Run", "Runs",
           "StoredArtifact", "iso_time", "wandb_filters", "wandb_order"]

_CHUNK = 1 << 20  # bytes read or written at a time when a file or blob is copied out


class ApiRequestError(CommError):
    """A read failed: ``status`` (HTTP status, 0 when the server could not be reached), ``code``, message.
    A ``CommError``, as wandb's public API raises when a request fails."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({status} {code})" if status else message)
        self.status = status
        self.code = code


# --------------------------------------------------------------------------- backends


def _save(chunks: Iterable[bytes], target: Path, sha256: str | None = None) -> None:
    """Write ``chunks`` to a temporary file beside ``target``, check its sha256 (when given), then rename
    it into place: a failed or interrupted copy never leaves a partial ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                h.update(chunk)
                out.write(chunk)
        if sha256 is not None and h.hexdigest() != sha256:
            raise Error(f"the bytes read for {target.name} do not match their sha256 {sha256}; nothing was written")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _blob_chunks(blob: Any) -> Iterator[bytes]:
    """The bytes of a stored blob (``server.media_index.MediaBlob``), read in pieces."""
    with blob.open() as f:
        while chunk := f.read(_CHUNK):
            yield chunk


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
            self._refuse(r)
        return r.content if raw else json.loads(r.content)

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        """A write (``PATCH``/``POST``/``DELETE``) with a JSON body; its JSON answer."""
        try:
            r = self.session.request(method, self.base + path, json=body, timeout=self.timeout)
        except self._requests.RequestException as exc:
            raise ApiRequestError(0, "connection", f"cannot reach {self.base}: {exc}") from exc
        if r.status_code != 200:
            self._refuse(r)
        return json.loads(r.content)

    @staticmethod
    def _refuse(r: Any) -> None:
        """Raise the server's error answer ``r`` as an ``ApiRequestError``."""
        try:
            err = r.json()["error"]
            code, msg = str(err.get("code")), str(err.get("message"))
        except (ValueError, KeyError, TypeError, AttributeError):
            code, msg = "http_error", r.text[:200]
        raise ApiRequestError(r.status_code, code, msg)

    def _stream(self, path: str, target: Path, sha256: str | None = None) -> None:
        try:
            with self.session.get(self.base + path, stream=True, timeout=self.timeout) as r:
                if r.status_code != 200:
                    self._refuse(r)
                _save(r.iter_content(_CHUNK), target, sha256)
        except self._requests.RequestException as exc:
            raise ApiRequestError(0, "connection", f"cannot reach {self.base}: {exc}") from exc

    @staticmethod
    def _run(project: str, run_id: str) -> str:
        return f"/projects/{quote(project, safe='')}/runs/{quote(run_id, safe='')}"

    def projects(self) -> dict[str, Any]:
        return dict(self._get("/projects"))

    def runs(self, project: str, filters: Any, order: str, search: str | None, limit: int, offset: int,
             archived: str = "hide") -> Any:
        params: dict[str, Any] = {"order": order, "limit": limit, "offset": offset, "archived": archived}
        if filters:
            params["filters"] = json.dumps(filters)
        if search:
            params["search"] = search
        return self._get(f"/projects/{quote(project, safe='')}/runs", params)

    def run(self, project: str, run_id: str) -> Any:
        return self._get(self._run(project, run_id))

    def edit(self, project: str, run_id: str, changes: dict[str, Any]) -> Any:
        return self._send("PATCH", self._run(project, run_id), changes)

    def move(self, project: str, run_id: str, target: str) -> Any:
        return self._send("POST", self._run(project, run_id) + "/move", {"project": target})

    def delete(self, project: str, run_id: str) -> Any:
        return self._send("DELETE", self._run(project, run_id))

    def keys(self, project: str, run_id: str) -> Any:
        return self._get(self._run(project, run_id) + "/keys")

    def series(self, project: str, run_id: str, keys: list[str], x_axis: str, samples: int) -> Any:
        params = {"keys": ",".join(keys), "x_axis": x_axis, "samples": samples}
        return self._get(self._run(project, run_id) + "/series", params)

    def history(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._get(self._run(project, run_id) + "/history", {"start": start, "limit": limit})

    def history_raw(self, project: str, run_id: str, start: int, limit: int) -> Any:
        """A page of history rows asked for as msgpack, in that form (``_history_page`` reads it); a
        server that answers JSON (an older one, or a page msgpack cannot carry) is put in the same form."""
        try:
            r = self.session.get(self.base + self._run(project, run_id) + "/history",
                                 params={"start": start, "limit": limit}, timeout=self.timeout,
                                 headers={"Accept": f"{HISTORY_MSGPACK}, application/json;q=0.9"})
        except self._requests.RequestException as exc:
            raise ApiRequestError(0, "connection", f"cannot reach {self.base}: {exc}") from exc
        if r.status_code != 200:
            self._refuse(r)
        if r.headers.get("content-type", "").split(";")[0].strip() == HISTORY_MSGPACK:
            import msgpack

            return msgpack.unpackb(r.content, raw=False, strict_map_key=False, ext_hook=_history_column)
        page = json.loads(r.content)
        return {"blocks": [[start, None, [item["row"] for item in page["rows"]]]], "pending": None, "next": page["next"]}

    def media(self, project: str, run_id: str, key: str, limit: int) -> Any:
        return self._get(self._run(project, run_id) + "/media", {"key": key, "limit": limit})

    def alerts(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._get(self._run(project, run_id) + "/alerts", {"start": start, "limit": limit})

    def media_bytes(self, sha256: str) -> bytes:
        return bytes(self._get(f"/media/{quote(sha256, safe='')}", raw=True))

    def sampled(self, project: str, run_id: str, samples: int, keys: list[str] | None) -> Any:
        return self._get(self._run(project, run_id) + "/history/sampled", {"samples": samples, "key": keys or []})

    def system(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._get(self._run(project, run_id) + "/system", {"start": start, "limit": limit})

    def files(self, project: str, run_id: str) -> Any:
        return self._get(self._run(project, run_id) + "/files")

    def file_to(self, project: str, run_id: str, name: str, target: Path, sha256: str | None) -> None:
        self._stream(self._run(project, run_id) + "/files/" + quote(name, safe="/"), target, sha256)

    def file_url(self, project: str, run_id: str, name: str) -> str:
        return self.base + self._run(project, run_id) + "/files/" + quote(name, safe="/")

    def media_to(self, sha256: str, target: Path) -> None:
        self._stream(f"/media/{quote(sha256, safe='')}", target, sha256)

    def run_artifacts(self, project: str, run_id: str) -> Any:
        return self._get(self._run(project, run_id) + "/artifacts")

    def artifact(self, project: str, name: str, ref: str) -> Any:
        return self._get(f"/projects/{quote(project, safe='')}/artifacts/{quote(name, safe='')}/{quote(ref, safe='')}")

    def run_url(self, project: str, run_id: str) -> str:
        """The run's page on the server's dashboard."""
        return f"{self.base[:-len('/api/v1')]}/#/p/{quote(project, safe='')}/r/{quote(run_id, safe='')}"

    def close(self) -> None:
        self.session.close()


class _LocalBackend:
    """The embedded local store (``$WANDBLITE_HOME``), read with the server's own query functions."""

    def __init__(self, home: str | os.PathLike[str] | None) -> None:
        try:
            from wandblite.server import edits, media_query, read, records, runs_query, series_query
            from wandblite.server.errors import ApiError
            from wandblite.server.store import Store
        except ImportError as exc:
            raise Error("with no server configured, wandblite.Api() reads the embedded store, which needs the "
                        f"server extra ({exc}): pip install 'wandblite[server]', or pass server=") from None
        h = Path(home) if home is not None else home_dir()
        if not (h / "store.db").is_file():
            raise Error(f"no server configured (pass server=, set $WANDBLITE_SERVER or wandblite.login(host=...)) "
                        f"and no embedded store at {h / 'store.db'}: run `wandblite sync <runs>` first")
        self.store = Store.embedded(h)
        self.read, self.records, self.edits, self._api_error = read, records, edits, ApiError
        self.runs_query, self.series_query, self.media_query = runs_query, series_query, media_query

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return json.loads(json.dumps(fn(self.store, *args, **kwargs)))  # the same values HTTP gives
        except self._api_error as exc:
            raise ApiRequestError(exc.status, exc.code, exc.message) from exc

    def projects(self) -> Any:
        return self._call(self.read.list_projects)

    def runs(self, project: str, filters: Any, order: str, search: str | None, limit: int, offset: int,
             archived: str = "hide") -> Any:
        return self._call(self.runs_query.list_runs, project, filters=filters, order=order, search=search, limit=limit,
                          offset=offset, archived=archived)

    def run(self, project: str, run_id: str) -> Any:
        return self._call(self.read.get_run, project, run_id)

    def edit(self, project: str, run_id: str, changes: dict[str, Any]) -> Any:
        return self._call(self.edits.edit_run, project, run_id, changes)

    def move(self, project: str, run_id: str, target: str) -> Any:
        return self._call(self.edits.move_run, project, run_id, target)

    def delete(self, project: str, run_id: str) -> Any:
        return self._call(self.edits.delete_run, project, run_id)

    def keys(self, project: str, run_id: str) -> Any:
        return self._call(self.series_query.run_keys, project, run_id)

    def series(self, project: str, run_id: str, keys: list[str], x_axis: str, samples: int) -> Any:
        return self._call(self.series_query.get_series, project, run_id, keys, x_axis=x_axis, samples=samples)

    def history(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._call(self.read.get_history, project, run_id, start, limit)

    def history_raw(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._call(self.read.get_history_blocks, project, run_id, start, limit)


    def media(self, project: str, run_id: str, key: str, limit: int) -> Any:
        return self._call(self.media_query.list_media, project, run_id, key, limit=limit)

    def alerts(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._call(self.records.list_alerts, project, run_id, start, limit)

    def _blob(self, sha256: str) -> Any:
        try:
            return self.store.media_blob(sha256)
        except self._api_error as exc:
            raise ApiRequestError(exc.status, exc.code, exc.message) from exc

    def media_bytes(self, sha256: str) -> bytes:
        return bytes(self._blob(sha256).read_bytes())

    def sampled(self, project: str, run_id: str, samples: int, keys: list[str] | None) -> Any:
        return self._call(self.read.sample_history, project, run_id, samples, keys)

    def system(self, project: str, run_id: str, start: int, limit: int) -> Any:
        return self._call(self.read.get_system, project, run_id, start, limit)

    def files(self, project: str, run_id: str) -> Any:
        return self._call(self.records.list_files, project, run_id)

    def _file_blob(self, project: str, run_id: str, name: str) -> Any:
        try:
            blob, _name = self.records.run_file(self.store, project, run_id, name)
        except self._api_error as exc:
            raise ApiRequestError(exc.status, exc.code, exc.message) from exc
        return blob

    def file_to(self, project: str, run_id: str, name: str, target: Path, sha256: str | None) -> None:
        _save(_blob_chunks(self._file_blob(project, run_id, name)), target, sha256)

    def file_url(self, project: str, run_id: str, name: str) -> str:
        """Where the stored bytes of the file's latest version are: a ``file://`` URI for a media
        directory, a presigned URL for a bucket that allows it, else the ``s3://`` address."""
        blob = self._file_blob(project, run_id, name)
        local = blob.local_path()
        if local is not None:
            return str(Path(local).resolve().as_uri())
        url = blob.presign("application/octet-stream")
        if not url:
            raise Error(f"{name!r} is stored in a bucket that gives no presigned URLs; read it with "
                        "file(name).download() instead")
        return str(url)

    def media_to(self, sha256: str, target: Path) -> None:
        _save(_blob_chunks(self._blob(sha256)), target, sha256)

    def run_artifacts(self, project: str, run_id: str) -> Any:
        return self._call(self.records.run_artifacts_of, project, run_id)

    def artifact(self, project: str, name: str, ref: str) -> Any:
        return self._call(self.records.get_artifact, project, name, ref)

    @staticmethod
    def run_url(project: str, run_id: str) -> str:
        """The run's page where ``wandblite server`` serves this store (its default or $WANDBLITE_HOST/PORT)."""
        host = os.environ.get("WANDBLITE_HOST") or "127.0.0.1"
        port = os.environ.get("WANDBLITE_PORT") or "8080"
        return f"http://{host}:{port}/#/p/{quote(project, safe='')}/r/{quote(run_id, safe='')}"

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


_MAKERS: dict[int, Any] = {}


def _row_maker(keys: tuple[str, ...]) -> Any:
    """A function of ``len(keys)`` values giving the dict of ``keys`` to them, in order: a dict display
    over the arguments (about twice as fast as ``dict(zip(keys, values))`` per row). Its source holds
    only the count; the keys are bound as a tuple, never written into code."""
    n = len(keys)
    make = _MAKERS.get(n)
    if make is None:
        args = ",".join(f"a{i}" for i in range(n))
        body = ",".join(f"K[{i}]:a{i}" for i in range(n))
        make = eval(f"lambda K: lambda {args}: {{{body}}}")  # noqa: S307 (digits and names only)
        if len(_MAKERS) < 256:
            _MAKERS[n] = make
    return make(keys)


def _history_column(code: int, data: bytes) -> list[Any]:
    """A history page's column sent as bytes (msgpack extension 1: float64, 2: int64, little-endian)."""
    import array
    import sys

    if code not in (1, 2) or len(data) % 8:
        raise ApiRequestError(200, "bad_answer", f"history page: unknown column encoding {code}")
    a = array.array("d" if code == 1 else "q", data)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


def _history_page(page: dict[str, Any]) -> tuple[list[tuple[list[dict[str, Any]], bool]], int | None]:
    """A page of ``GET .../history`` in its msgpack form (``server.read.get_history_blocks``) as
    ``([(rows, plain)], next)``: ``plain`` rows hold numbers, strings, booleans and None only (a
    flat template's rows, sent as columns), so nothing in them needs wrapping."""
    out: list[tuple[list[dict[str, Any]], bool]] = []
    for _first, keys, cols in page["blocks"]:
        if keys is None:
            out.append((cols, False))
        else:
            cols = [c if type(c) is list else c.tolist() for c in cols]  # numpy, from the embedded store
            out.append((list(map(_row_maker(tuple(keys)), *cols)), True))
    pending = page.get("pending")
    if pending is not None:
        out.append(([pending[1]], False))
    return out, page["next"]


def _wrap(v: Any, api: Api) -> Any:
    if type(v) is dict:
        if TYPE_KEY in v:
            return RemoteMedia(v, api)
        return {k: _wrap(x, api) for k, x in v.items()} if any(type(x) in (dict, list) for x in v.values()) else v
    if type(v) is list and v and type(v[0]) is dict:
        return [_wrap(x, api) for x in v]
    return v


# --------------------------------------------------------------------------- wandb's names


def iso_time(ts: float | None) -> str | None:
    """Seconds since the epoch as wandb writes a time: ISO 8601 in UTC, to the second (``2026-01-02T03:04:05Z``)."""
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> float:
    """An ISO 8601 time (``Z`` or an offset; none means UTC, as wandb's times are) as seconds since the epoch."""
    try:
        t = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Error(f"filters: {text!r} is not an ISO 8601 time (2026-01-02T03:04:05Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


#: wandb's names for the run fields that have another name here (filters and orders).
_FIELD_NAMES = {"duration": "runtime", "createdAt": "created_at", "updatedAt": "updated_at",
                "heartbeatAt": "heartbeat_at", "jobType": "job_type", "displayName": "name", "display_name": "name"}
_TIME_FIELDS = frozenset({"created_at", "updated_at", "heartbeat_at"})


def _field(key: str, name_is_id: bool) -> str:
    """A filter key or order field in wandb's words -> the server's (``runs_query``)."""
    if name_is_id and key == "name":
        return "id"  # wandb's ``name`` is the run id; its display name is ``display_name``
    head, dot, rest = key.partition(".")
    if head == "summary_metrics":
        return f"summary.{rest}" if dot else "summary"
    if head == "config" and rest.endswith(".value"):
        return "config." + rest[: -len(".value")]
    return _FIELD_NAMES.get(key, key)


def _times(cond: Any) -> Any:
    """ISO times in a condition on a time field -> seconds since the epoch (the server compares numbers)."""
    if isinstance(cond, str):
        return _epoch(cond)
    if isinstance(cond, list):
        return [_times(c) for c in cond]
    if isinstance(cond, dict):
        return {op: (v if op in ("$exists", "$options", "$regex") else _times(v)) for op, v in cond.items()}
    return cond


def wandb_filters(filters: Any, name_is_id: bool = False) -> Any:
    """wandb's MongoDB-style ``filters`` in the server's filter language (``wandblite/server/runs_query.py``).

    The operators are the same; field names are mapped (``duration`` -> ``runtime``, ``createdAt`` ->
    ``created_at``, ``summary_metrics.x`` -> ``summary.x``, ``config.x.value`` -> ``config.x``, and
    with ``name_is_id`` wandb's ``name``, the run id, -> ``id``); an ISO time compared with
    ``created_at``/``updated_at``/``heartbeat_at`` becomes seconds since the epoch.
    """
    if isinstance(filters, list):
        return [wandb_filters(f, name_is_id) for f in filters]
    if not isinstance(filters, dict):
        return filters
    out: dict[str, Any] = {}
    for k, v in filters.items():
        if k in ("$and", "$or", "$nor"):
            out[k] = wandb_filters(v, name_is_id)
            continue
        field = k if k.startswith("$") else _field(k, name_is_id)
        out[field] = _times(v) if field in _TIME_FIELDS else v
    return out


def wandb_order(order: str, name_is_id: bool = False) -> str:
    """wandb's ``order`` (``+created_at``, ``-summary_metrics.loss``, ``config.lr.value``) in the server's words."""
    sign = "-" if order.startswith("-") else ""
    return sign + _field(order.lstrip("+-"), name_is_id)


def _project_of(path: str | None, default: str | None) -> str:
    """The project of ``"entity/project"`` or ``"project"`` (None: ``default``)."""
    parts = [p for p in (path or "").strip("/ ").split("/") if p]
    if not parts:
        if default:
            return default
        raise Error("which project? pass 'entity/project' or 'project' (or set $WANDB_PROJECT)")
    return parts[-1]


def _run_path(path: str, default_project: str | None) -> tuple[str | None, str, str]:
    """(entity, project, run id) of the run paths wandb takes: ``entity/project/runs/id``,
    ``entity/project/id``, ``entity/project:id``, ``project/id``, ``project:id`` and ``id``
    (with ``default_project``)."""
    parts = [p.strip() for p in path.strip("/ ").replace("/runs/", "/").split("/") if p.strip()]
    entity: str | None = None
    project: str | None = default_project
    if len(parts) == 3:
        entity, project, run_id = parts
    elif len(parts) == 2 and ":" in parts[1]:
        entity = parts[0]
        project, run_id = parts[1].split(":", 1)
    elif len(parts) == 2:
        project, run_id = parts
    elif len(parts) == 1 and ":" in parts[0]:
        project, run_id = parts[0].split(":", 1)
    elif len(parts) == 1:
        run_id = parts[0]
    else:
        raise Error(f"run path {path!r}: expected 'entity/project/run_id' or 'project/run_id'")
    if not project or not run_id:
        raise Error(f"run path {path!r}: expected 'entity/project/run_id' or 'project/run_id'")
    return entity, project, run_id


# --------------------------------------------------------------------------- projects, files, artifacts


@dataclass(frozen=True)
class Project:
    """A project on the server: its name, how many runs it has, when it was created and last updated."""

    name: str
    run_count: int
    created_at: float | None
    updated_at: float | None


class File:
    """A file a run saved (``wandblite.save``): wandb's ``File``. ``name size sha256 versions`` (how
    many times it was saved), ``ts`` (seconds) and ``updated_at`` (ISO text), ``mimetype``, ``url`` (the
    server's download address; for the embedded store the ``file://`` URI of the stored bytes);
    ``download(root=".", replace=False, exist_ok=False)`` writes ``root/name`` and opens it as wandb does."""

    def __init__(self, run: Run, d: Mapping[str, Any]) -> None:
        self.run = run
        self.name: str = d["name"]
        self.size: int = int(d.get("size") or 0)
        self.sha256: str | None = d.get("sha256")
        self.versions: int = int(d.get("versions") or 1)
        self.ts: float | None = d.get("ts")
        self.lost: bool = bool(d.get("lost"))
        self.mimetype: str = mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    def __repr__(self) -> str:
        return f"<File {self.name} ({self.mimetype}) {self.size} bytes>"

    @property
    def updated_at(self) -> str | None:
        return iso_time(self.ts)

    @property
    def url(self) -> str:
        return self.run._api._backend.file_url(self.run.project, self.run.id, self.name)

    def download(self, root: str | os.PathLike[str] = ".", replace: bool = False, exist_ok: bool = False,
                 api: Any = None) -> IO[str]:
        """Write the file to ``root/<name>`` (verified against its sha256) and return it opened for reading.

        An existing file is an error (``ValueError``) unless ``replace`` (written again) or ``exist_ok``
        (left as it is), as in wandb."""
        problem = file_name_problem(self.name)
        if problem is not None:
            raise Error(f"file {self.name!r} of run {self.run.path}: {problem}; not written")
        target = Path(root) / self.name
        if target.exists() and not replace:
            if exist_ok:
                return open(target)
            raise ValueError(f"File already exists, pass replace=True to overwrite or exist_ok=True to leave it "
                             f"as is and don't error: {target}")
        self.run._api._backend.file_to(self.run.project, self.run.id, self.name, target, self.sha256)
        return open(target)


@dataclass(frozen=True)
class ManifestEntry:
    """One path of a stored artifact: ``digest`` is its sha256 (or None for a reference), ``ref`` the
    referenced URI (or None)."""

    path: str
    digest: str | None
    size: int
    ref: str | None
    artifact: StoredArtifact

    def download(self, root: str | os.PathLike[str] | None = None) -> str:
        """Download this one file (under ``root``, default the artifact's); return its path."""
        return str(Path(self.artifact.download(root, path_prefix=self.path)) / self.path)


@dataclass(frozen=True)
class ArtifactManifest:
    """wandb's ``artifact.manifest``: ``entries``, path -> ``ManifestEntry``."""

    entries: dict[str, ManifestEntry]


class StoredArtifact:
    """One artifact version read from the server or the embedded store (what ``api.artifact``,
    ``run.logged_artifacts()`` and ``run.used_artifacts()`` give).

    wandb's read surface: ``name`` (``name:vN``), ``source_name``, ``qualified_name``
    (``entity/project/name:vN``), ``type version aliases digest size metadata description
    created_at`` (ISO text) ``project entity``, ``manifest.entries`` (path -> ``ManifestEntry``),
    ``files()`` (the paths), ``download(root=None, path_prefix=None)``, ``file(root=None)``,
    ``get_entry(path)``/``get_path(path)``, ``logged_by()``.
    """

    def __init__(self, api: Api, project: str, rec: Mapping[str, Any], entity: str | None = None) -> None:
        self._api = api
        self.project = project
        self.entity = entity
        self._base_name: str = rec["name"]
        self.type: str = rec.get("type") or ""
        self.version = f"v{int(rec['version'])}"
        self.aliases: list[str] = list(rec.get("aliases") or [])
        self.digest: str = rec.get("digest") or ""
        self.size: int = int(rec.get("size") or 0)
        self.metadata: dict[str, Any] = dict(rec.get("metadata") or {})
        self.description: str | None = rec.get("description")
        self.source_run: str | None = rec.get("run")
        self._created: float | None = rec.get("created_at")
        self._entries: dict[str, Any] = dict(rec.get("entries") or {})

    def __repr__(self) -> str:
        return f"<Artifact {self.qualified_name} type={self.type}>"

    @property
    def name(self) -> str:
        return f"{self._base_name}:{self.version}"

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def qualified_name(self) -> str:
        return "/".join(p for p in (self.entity, self.project, self.name) if p)

    @property
    def created_at(self) -> str | None:
        return iso_time(self._created)

    @property
    def manifest(self) -> ArtifactManifest:
        """wandb's manifest: ``.entries`` maps each path to its ``ManifestEntry``."""
        return ArtifactManifest({p: ManifestEntry(p, e.get("sha256"), int(e.get("size") or 0), e.get("ref"), self)
                                 for p, e in sorted(self._entries.items())})

    def files(self) -> list[str]:
        return sorted(self._entries)

    def get_entry(self, name: str) -> ManifestEntry:
        entry = self.manifest.entries.get(name)
        if entry is None:
            raise KeyError(f"{name!r} is not in artifact {self.name}")
        return entry

    get_path = get_entry

    def logged_by(self) -> Run | None:
        """The run that logged this version (None when the server does not know it)."""
        if not self.source_run:
            return None
        return self._api.run(f"{self.project}/{self.source_run}")

    def default_root(self) -> Path:
        """Where ``download()`` writes without ``root``: ``$WANDB_ARTIFACT_DIR`` (else ``./artifacts``)/``name:vN``."""
        return Path(os.environ.get("WANDB_ARTIFACT_DIR") or "artifacts") / self.name

    def download(self, root: str | os.PathLike[str] | None = None, allow_missing_references: bool = False,
                 skip_cache: bool | None = None, path_prefix: str | None = None, multipart: bool | None = None) -> str:
        """Write the artifact's files under ``root`` (default ``default_root()``); return the directory.

        Each object is checked against its sha256; a file already there with the right content is
        kept. Files already under ``root`` that the artifact does not hold are left alone, as wandb
        does. A ``file://`` reference is copied when that file exists; other references cannot be
        downloaded offline (one warning, unless ``allow_missing_references``)."""
        from urllib.parse import unquote, urlparse

        dest = Path(root) if root is not None else self.default_root()
        for path, e in sorted(self._entries.items()):
            if path_prefix and not path.startswith(path_prefix):
                continue
            problem = file_name_problem(path)
            if problem is not None:
                raise Error(f"artifact {self.name}: entry path {path!r} would leave the download directory ({problem})")
            target = dest / path
            sha = e.get("sha256")
            if sha and target.is_file() and _sha256(target) == sha:
                continue
            if "ref" in e:
                parsed = urlparse(str(e["ref"]))
                src = Path(unquote(parsed.path))
                if parsed.scheme == "file" and src.is_file():
                    _save(_file_chunks(src), target, sha)
                elif not allow_missing_references:
                    termwarn(f"artifact {self.name}: reference {e['ref']} cannot be downloaded offline", repeat=False)
                continue
            self._api._backend.media_to(str(sha), target)
        return str(dest)

    def file(self, root: str | os.PathLike[str] | None = None) -> str:
        """The downloaded path of a one-file artifact."""
        if len(self._entries) != 1:
            raise ValueError("This method should only be called on an artifact with exactly one file")
        return str(Path(self.download(root)) / next(iter(self._entries)))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    for chunk in _file_chunks(path):
        h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- runs


class Runs:
    """The runs of one query, read a page at a time as they are reached (wandb's lazy ``Runs``).

    ``len()`` is the number of matching runs (read with the first page); iteration, ``[i]`` and
    slices read further pages as needed; ``total`` is the count the latest page reported."""

    def __init__(self, api: Api, project: str, filters: Any, order: str, search: str | None, per_page: int,
                 make: Any, archived: str = "hide") -> None:
        if not 1 <= per_page <= 10_000:
            raise Error(f"per_page must be between 1 and 10000, not {per_page}")
        self._api, self.project, self.filters, self.order = api, project, filters, order
        self._search, self._per_page, self._make, self._archived = search, per_page, make, archived
        self._runs: list[Run] = []
        self.total: int | None = None
        self._done = False

    def __repr__(self) -> str:
        return f"<Runs {self.project} ({len(self)})>"

    def _more(self) -> bool:
        """Read the next page; False when there is none."""
        if self._done:
            return False
        page = self._api._backend.runs(self.project, self.filters, self.order, self._search, self._per_page,
                                       len(self._runs), self._archived)
        self.total = int(page["total"])
        self._runs.extend(self._make(d) for d in page["runs"])
        self._done = not page["runs"] or len(self._runs) >= self.total
        return bool(page["runs"])

    def __len__(self) -> int:
        if self.total is None:
            self._more()
        return int(self.total or 0)

    def __iter__(self) -> Iterator[Run]:
        i = 0
        while i < len(self._runs) or self._more():
            yield self._runs[i]
            i += 1

    @overload
    def __getitem__(self, i: int) -> Run: ...
    @overload
    def __getitem__(self, i: slice) -> list[Run]: ...
    def __getitem__(self, i: int | slice) -> Run | list[Run]:
        if isinstance(i, slice) or i < 0:
            return list(self)[i]
        while i >= len(self._runs) and self._more():
            pass
        return self._runs[i]


def _values_text(config: Any, summary: Any) -> str:
    """A run's config and summary as text to compare (NaN equal to NaN, as the wire writes it)."""
    return json.dumps([config, dict(summary)], sort_keys=True, default=str)


class Run:
    """A stored run. Attributes as ``wandblite.replay``'s: ``id name project state config summary tags
    group job_type notes created_at updated_at heartbeat_at runtime host exit_code rows``; the run's
    ``metrics`` (define_metric), ``context``, ``error``, ``signal``, ``entity`` load on first use."""

    def __init__(self, api: Api, project: str, data: dict[str, Any], entity: str | None = None) -> None:
        self._api = api
        self.project = project
        self._entity_hint = entity  # the entity the caller named in its path (wandb's paths carry one)
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
        self.created_at: Any = d.get("created_at")
        self.updated_at: Any = d.get("updated_at")
        self.heartbeat_at: Any = d.get("heartbeat_at")
        self.runtime: float | None = d.get("runtime")
        self.host: str | None = d.get("host")
        self.exit_code: int | None = d.get("exit_code")
        self.rows: int = int(d.get("rows") or 0)
        self.archived: bool = bool(d.get("archived"))
        self._as_read = _values_text(self.config, self.summary)  # what update() compares config and summary to

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} {self.name} {self.state} rows={self.rows}>"

    # ------------------------------------------------------------------ editing (as wandb's run.update / delete)
    def update(self) -> Run:
        """Store the changes made to ``name``, ``tags``, ``notes`` and ``archived`` on the server (or the
        embedded store), as wandb's ``run.update()``; only the fields changed since the run was read
        are sent. Needs the run's owner or a project admin (``docs/roles.md``). Changes to ``config``
        or ``summary`` are refused with an ``Error`` before anything is sent: they change through a sync
        of the run's file only. A later sync keeps these edits unless the file itself changes the field."""
        d = self._data
        if _values_text(self.config, self.summary) != self._as_read:
            raise Error(f"run {self.project}/{self.id}: config and summary change only through `wandblite sync` of "
                        "the run's directory; update() stores name, tags, notes and archived")
        changes: dict[str, Any] = {}
        if self.name != d.get("name"):
            changes["name"] = self.name
        if list(self.tags) != list(d.get("tags") or []):
            changes["tags"] = list(self.tags)
        if self.notes != d.get("notes"):
            changes["notes"] = self.notes
        if self.archived != bool(d.get("archived")):
            changes["archived"] = self.archived
        if changes:
            self._set(self._api._backend.edit(self.project, self.id, changes))
        return self

    save = update  # wandb's older name

    def move(self, project: str) -> Run:
        """Move the run to ``project`` (an existing project where the caller is a writer)."""
        self._set(self._api._backend.move(self.project, self.id, project))
        self.project = project
        return self

    def delete(self, delete_artifacts: bool = False) -> None:
        """Delete the run from the server with every record of it and the blobs no other run names
        (wandb's ``run.delete()``). Artifact versions it logged stay in their project:
        ``delete_artifacts=True`` is refused with an ``Error`` before anything is deleted. Syncing the
        run's directory again uploads it as a new run."""
        if delete_artifacts:
            raise Error(f"run {self.project}/{self.id}: delete(delete_artifacts=True) is not offered: the artifact "
                        "versions a run logged stay in their project; nothing was deleted")
        self._api._backend.delete(self.project, self.id)

    @property
    def path(self) -> Any:
        """``project/run_id``: what ``Api.run`` takes."""
        return f"{self.project}/{self.id}"

    @property
    def url(self) -> str:
        """The run's page on the dashboard (for the embedded store: where ``wandblite server`` would serve it)."""
        return self._api._backend.run_url(self.project, self.id)

    def _detail(self) -> dict[str, Any]:
        if "position" not in self._data:
            self._set(self._api._backend.run(self.project, self.id))
        return self._data

    @property
    def entity(self) -> str | None:
        """The entity the run was logged with (``init(entity=)``), else the one named in the path, else None."""
        return self._detail().get("entity") or self._entity_hint

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

    load = refresh

    def list_keys(self) -> list[dict[str, Any]]:
        """The run's keys: ``[{"key", "kind", "count", "first_step", "last_step"}]`` (numbers, then media)."""
        return list(self._api._backend.keys(self.project, self.id)["keys"])

    # ------------------------------------------------------------------ history
    def _pages(self, page_size: int) -> Iterator[dict[str, Any]]:
        """Every stored row as stored (nested, plain JSON values), a page at a time."""
        for rows, _plain in self._blocks(page_size):
            yield from rows

    def _blocks(self, page_size: int) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """``_pages``'s rows in blocks of ``(rows, plain)`` (``_history_page``)."""
        backend = self._api._backend
        start: int | None = 0
        while start is not None:
            blocks, start = _history_page(backend.history_raw(self.project, self.id, start, page_size))
            yield from blocks

    def scan_history(self, keys: list[str] | None = None, page_size: int = 1000,
                     min_step: int | None = None, max_step: int | None = None) -> Iterator[dict[str, Any]]:
        """Every stored row in order, a page at a time (constant memory), as ``replay().scan_history()``
        gives them: nested, with ``_step``/``_runtime``/``_timestamp``; media values are ``RemoteMedia``.
        With ``keys``: only rows holding all of them, reduced to ``_step`` and those keys.
        ``min_step`` is inclusive, ``max_step`` exclusive, as in wandb."""
        want = [split_name(k) for k in keys or ()]  # a reserved key has no dot: one column
        api = self._api
        for rows, plain in self._blocks(page_size):
            if plain and not want and min_step is None and max_step is None:
                yield from rows  # the common case: rows of scalars, nothing to wrap or filter
                continue
            for stored in rows:
                row = stored if plain else _wrap(stored, api)
                if min_step is not None and row.get(STEP, 0) < min_step:
                    continue
                if max_step is not None and row.get(STEP, 0) >= max_step:
                    continue
                if want:
                    if not all(has_path(row, p) for p in want):
                        continue
                    row = {STEP: row.get(STEP), **{k: get_path(row, p) for k, p in zip(keys or (), want)}}
                yield row

    def history(self, samples: int = 500, keys: list[str] | None = None, x_axis: str = STEP,
                pandas: bool = True, stream: str = "default") -> Any:
        """Numeric metrics downsampled on the server (each bucket's min and max kept), one row per x.

        wandb's arguments, in wandb's order. ``keys``: metric keys (default: every numeric key). Rows are
        ``{x_axis: x, key: y, ...}`` sorted by x; a key without a point at an x is missing from that row
        (NaN in the DataFrame); several points of a key at one x (an ``epoch`` axis) make several rows.
        ``pandas=False`` (or no pandas installed: one warning) gives the list of dicts.
        ``stream="system"``: the system metrics instead (see ``system_history``).
        """
        if stream == "system":
            return _frame(self.system_history(samples), pandas)
        if stream != "default":
            raise Error(f"history(stream={stream!r}): expected 'default' or 'system'")
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
        return _frame(rows, pandas, [x_axis, *keys])

    def system_history(self, samples: int = 500) -> list[dict[str, Any]]:
        """The run's system metrics (``wandblite.system``), at most ``samples`` rows evenly spaced (first and
        last kept), in wandb's shape: ``{"_timestamp", "_runtime", "system.<metric>": value}``."""
        recs: list[dict[str, Any]] = []
        start: int | None = 0
        while start is not None:
            page = self._api._backend.system(self.project, self.id, start, 10_000)
            recs.extend(page["system"])
            start = page["next"]
        recs = [recs[i] for i in spread(len(recs), samples)]
        t0 = self._data.get("created_at")
        return [{"_timestamp": r["ts"], "_runtime": r["ts"] - t0 if t0 is not None else None,
                 **{f"system.{k}": v for k, v in (r.get("metrics") or {}).items()}} for r in recs]

    # ------------------------------------------------------------------ media
    def media(self, key: str, limit: int = 10_000) -> list[dict[str, Any]]:
        """Each row where ``key`` holds a media value: ``[{"step", "idx", "value": RemoteMedia}]``."""
        res = self._api._backend.media(self.project, self.id, key, limit)
        return [{"step": s["step"], "idx": s["idx"], "value": RemoteMedia(s["value"], self._api)}
                for s in res["steps"]]

    # ------------------------------------------------------------------ files and artifacts
    def files(self, names: list[str] | None = None, pattern: str | None = None, per_page: int = 50) -> list[File]:
        """The files the run saved (the latest version of each name), sorted by name. ``names``: only
        those; ``pattern``: wandb's SQL ``LIKE`` pattern (``%`` any text, ``_`` one character)."""
        if names and pattern:
            raise ValueError("pass names or pattern, not both")
        files = [File(self, d) for d in self._api._backend.files(self.project, self.id)["files"]]
        if names:
            files = [f for f in files if f.name in set(names)]
        elif pattern:
            glob = "".join("*" if c == "%" else "?" if c == "_" else "[" + c + "]" if c in "*?[" else c for c in pattern)
            files = [f for f in files if fnmatch.fnmatchcase(f.name, glob)]
        return files

    def file(self, name: str) -> File:
        """The file ``name`` the run saved (``ApiRequestError`` 404 when it has none)."""
        for f in self.files(names=[name]):
            return f
        raise ApiRequestError(404, "not_found", f"run {self.project}/{self.id} has no file {name!r}")

    def logged_artifacts(self, per_page: int = 100) -> list[StoredArtifact]:
        """The artifact versions this run logged, in the order it logged them."""
        got = self._api._backend.run_artifacts(self.project, self.id)["logged"]
        return [self._api._artifact(self.project, a["name"], f"v{a['version']}", self.entity) for a in got]

    def used_artifacts(self, per_page: int = 100) -> list[StoredArtifact]:
        """The artifact versions this run used (``use_artifact``), in the order it used them. A version
        this store does not hold (its logging run was never synced here) is left out, with one warning."""
        out: list[StoredArtifact] = []
        for a in self._api._backend.run_artifacts(self.project, self.id)["used"]:
            try:
                art = self._api._artifact(self.project, a["name"], f"v{a['version']}", self.entity)
            except ApiRequestError as exc:
                if exc.status != 404:
                    raise
                art = None
            if art is None or (a.get("digest") and art.digest != a["digest"]):
                termwarn(f"run {self.project}/{self.id} used artifact {a['name']} (digest {a.get('digest')}), which "
                         "this store does not hold: sync the run that logged it", repeat=False)
                continue
            out.append(art)
        return out

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


def _frame(rows: list[dict[str, Any]], pandas: bool, columns: list[str] | None = None) -> Any:
    """``rows`` as a ``pandas.DataFrame`` when asked and pandas is installed; else (one warning) the list."""
    if not pandas:
        return rows
    try:
        import pandas as pd
    except ImportError:
        termwarn("history(pandas=True) needs pandas, which is not installed: the rows come back as a list of "
                 "dicts (pass pandas=False to say so)", repeat=False)
        return rows
    if columns is not None:
        return pd.DataFrame(rows, columns=columns)
    return pd.DataFrame.from_records(rows)


class Api:
    """Read access to stored runs: a wandblite server, or the embedded local store.

    The server is ``server``, else ``$WANDBLITE_SERVER``, else what ``wandblite.login`` saved (or
    ``$WANDBLITE_BASE_URL``); the key likewise (``api_key``, ``$WANDBLITE_API_KEY``, the settings
    file). With no server at all, the embedded store of ``$WANDBLITE_HOME`` (``~/.wandblite``) is
    read directly (``home`` overrides it).
    """

    #: The ``Run`` class this Api makes, and whether a filter's ``name`` is the run id (wandb) or its name.
    run_class: type[Run] = Run
    name_is_id = False
    default_order = "-created_at"

    def __init__(self, server: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 home: str | os.PathLike[str] | None = None) -> None:
        from wandblite.login import credentials

        saved = credentials() if not (server and api_key) else {"server": None, "api_key": None}
        server = server or os.environ.get("WANDBLITE_SERVER") or saved.get("server")
        api_key = api_key or os.environ.get("WANDBLITE_API_KEY") or saved.get("api_key")
        self.server = server
        self.default_project: str | None = None
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

    def projects(self, entity: str | None = None, per_page: int = 200) -> list[Any]:
        """Every project (``entity`` is accepted and ignored: one namespace of projects)."""
        return [Project(p["name"], int(p.get("runs") or 0), p.get("created_at"), p.get("updated_at"))
                for p in self._backend.projects()["projects"]]

    def runs(self, path: str | None = None, filters: dict[str, Any] | None = None, order: str | None = None,
             per_page: int = 1000, include_sweeps: bool = False, lazy: bool = True, *,
             search: str | None = None, archived: str = "hide") -> Runs:
        """The runs of ``path`` (``"entity/project"`` or ``"project"``) matching ``filters`` (MongoDB-like,
        as wandb's; wandb's field names are mapped, see ``wandb_filters``), ordered by ``order``
        (``created_at``, ``-summary.acc``, ``+summary_metrics.loss``, ``config.lr`` ...; ``-`` descending;
        default ``default_order``); ``search`` matches name, id, tags and notes; ``archived``: ``"hide"``
        (archived runs left out, the default), ``"include"`` or ``"only"``. Read lazily, ``per_page``
        runs a request (the first one before this returns); ``len()`` is the number of matching runs."""
        project = _project_of(path, self.default_project)
        entity = path.strip("/ ").split("/")[0] if path and path.count("/") else None
        runs = Runs(self, project, wandb_filters(filters, self.name_is_id) if filters else None,
                    wandb_order(order or self.default_order, self.name_is_id), search, per_page,
                    lambda d: self.run_class(self, project, d, entity), archived)
        len(runs)  # the first page now: a bad filter or an unknown project raises here, not mid-loop
        return runs

    def run(self, path: str) -> Run:
        """``"project/run_id"``, or any of wandb's run paths (``entity/project/run_id``,
        ``entity/project/runs/run_id``, ``project:run_id``, ...)."""
        entity, project, run_id = _run_path(path, self.default_project)
        return self.run_class(self, project, self._backend.run(project, run_id), entity)

    def _artifact(self, project: str, name: str, ref: str, entity: str | None = None) -> StoredArtifact:
        return StoredArtifact(self, project, self._backend.artifact(project, name, ref), entity)

    def artifact(self, name: str, type: str | None = None) -> StoredArtifact:  # noqa: A002 - wandb's keyword
        """An artifact version: ``"entity/project/name:alias"``, ``"project/name:vN"`` or ``"name"``
        (``latest``; the project from ``default_project``). ``type``, when given, must match."""
        spec, _, alias = name.partition(":")
        parts = [p for p in spec.strip("/").split("/") if p]
        if not parts:
            raise Error(f"artifact {name!r}: expected 'entity/project/name:alias'")
        entity = parts[-3] if len(parts) >= 3 else None
        project = parts[-2] if len(parts) >= 2 else _project_of(None, self.default_project)
        art = self._artifact(project, parts[-1], alias or "latest", entity)
        if type is not None and art.type != type:
            raise ValueError(f"artifact {art.name} is of type {art.type!r}, not {type!r}")
        return art

    def media_bytes(self, sha256: str) -> bytes:
        """The bytes of a stored media blob."""
        return self._backend.media_bytes(sha256)
