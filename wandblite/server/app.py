"""The HTTP API: a Starlette app over a ``Store``, served by uvicorn (``wandblite server``).

Layer 5. Routes live under ``/api/v1`` (see ``PROTOCOL.md``). What it promises:

* ``GET /api/v1/openapi.json`` is the API's OpenAPI 3 contract, built from this module's route
  table (``openapi.build``: the app is not made when a route and its operation differ); every query
  string is checked against its operation before the handler runs (``openapi.checked``).
* Every error, whatever its cause (bad JSON, wrong types, unknown route, a gap, a crash in a
  handler), is answered as ``{"error": {"code": "...", "message": "..."}}`` with a 4xx/5xx status;
  a bad request changes nothing and the server goes on serving. A database that is busy or
  restarting (after the store's own retries of a write, ``db.retrying``) is a 503 ``busy`` with
  ``Retry-After``, which sync retries; one that cannot be reached at all is a 503
  ``database_unavailable`` saying what the operator should check; 500 ``internal`` is left for a defect.
* The app keeps no state of its own between requests: keys, sessions and positions are read from
  the database on every request, so any number of server processes may serve one database
  (``docs/deployment.md`` lists what a process holds and why none of it can go stale).
* Every write needs a valid, unrevoked, unexpired API key of write scope (``Authorization: Bearer
  <key>``) of an enabled user; reads need a key or a session too, unless the project is public or
  the app was made with ``public_read=True``. Who may read and write which project and run is
  decided per request from the database (``access.py``; ``docs/roles.md`` draws the matrix): 401
  without valid credentials, 403 ``forbidden`` with credentials that do not reach; either changes
  nothing. ``/api/v1/health`` is open (it says only that the server is up).
* Browsers: ``POST /api/v1/session`` with ``{"user", "password"}`` or ``{"api_key"}``
  (``application/json`` only: 415 for a form or ``text/plain``, which a cross-site page could post)
  sets an HttpOnly, SameSite=Strict session cookie (a random token; the store keeps its sha256, tied
  to the key, so revoking the key ends it, or to the user, so disabling the user ends it; failed
  logins are throttled and audited: ``login.py``). Reads accept the Bearer key or the cookie;
  writes accept only the Bearer header, except the dashboard's own writes (a project's members and
  visibility, a run's edits, move and deletion, saved workspaces: ``workspaces.py``), which take the cookie only with the header
  ``X-Requested-With: wandblite`` (``PAGE_HEADER``), which no cross-site page can send without a CORS
  preflight this server never grants.
* Bodies are limited: ``MAX_JSON_BYTES`` for JSON and for a sync batch sent as msgpack
  (``vocab.BATCH_MSGPACK``, read by ``wire.unpack_body``; both read into memory), the blob limit for a media
  blob (``$WANDBLITE_MAX_BLOB_SIZE``, 16 GiB by default; ``blobs.max_blob_bytes``). A declared
  ``Content-Length`` over the limit is refused before the body is read; a body without one is cut
  off at the limit.
* A media blob is never held in memory: ``PUT /api/v1/media/{sha256}`` streams the body, a piece of
  at most ``_PIECE`` bytes at a time, into ``BlobStore.put`` (a worker thread hashing and writing a
  temporary file, or a multipart upload to a bucket, that becomes visible only when the hash
  matches). A client that goes away mid-body leaves nothing behind. An upload holds one worker of
  Starlette's thread pool (anyio's default: 40) until its body has arrived.
* Blocking database work runs in Starlette's thread pool, never on the event loop.
* Blobs (media, saved files, artifact objects) are served as a file from a media directory, as a
  stream from a bucket, or, with ``--s3-presign``, as a 302 to a presigned URL of the bucket
  (``_blob_response``); a storage fault is a 502/503 in the one error shape.
* Media is served with a content type from a short list of passive types; anything else (HTML,
  SVG, unknown) goes out as ``application/octet-stream`` attachment with ``nosniff`` and a
  ``sandbox`` CSP, so a logged HTML blob cannot run script in the server's origin.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import IO, Any
from urllib.parse import quote

import anyio.from_thread
from sqlalchemy import exc as sa_exc
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Match, Route

from wandblite.server import (
    audit,
    blobs,
    edits,
    media_query,
    openapi,
    read,
    records,
    runs_query,
    series_query,
    workspaces,
)
from wandblite.server.access import forbidden
from wandblite.server.auth import Principal
from wandblite.server.db import busy, dumps, is_transient
from wandblite.server.errors import ApiError, bad_request, unauthorized
from wandblite.server.group_query import grouped_args, grouped_series
from wandblite.server.media_index import MediaBlob
from wandblite.server.store import Store
from wandblite.server.wire import MAX_JSON_DEPTH, check_depth, pack_history, unpack_body, validate_sha256
from wandblite.vocab import BATCH_MSGPACK, HISTORY_MSGPACK

__all__ = ["MAX_JSON_BYTES", "PAGE_HEADER", "SESSION_COOKIE", "JSONResponse", "create_app"]

#: The browser session cookie (HttpOnly, SameSite=Strict, Path=/): reads only, never writes.
SESSION_COOKIE = "wandblite_session"
#: The header (and value) the dashboard sends with the writes its session may make (members, visibility,
#: run edits, saved workspaces): no cross-site page can send it without a CORS preflight.
PAGE_HEADER = ("x-requested-with", "wandblite")

MAX_JSON_BYTES = 32 << 20
#: How much of a media body is handed to the writing thread at once (bounds the memory of an upload).
_PIECE = 1 << 20

#: Media types served as themselves; they cannot run script when opened in a browser.
_PASSIVE_TYPES = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "bmp": "image/bmp", "mp4": "video/mp4", "webm": "video/webm", "ogg": "audio/ogg", "wav": "audio/wav",
    "mp3": "audio/mpeg", "flac": "audio/flac", "json": "application/json", "table.json": "application/json",
    "pts.json": "application/json", "boxes2D.json": "application/json",
}


class JSONResponse(Response):
    """JSON with NaN/Infinity kept as tokens (the store's extended JSON; Python's json reads it)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("ascii")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


#: Seconds a client is asked to wait before retrying a 503 (``Retry-After``).
RETRY_AFTER_SECONDS = 1


async def _api_error(_req: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
    if exc.status == 429 and isinstance(exc.extra.get("retry_after"), int):
        headers = {"Retry-After": str(exc.extra["retry_after"])}
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _database_error(req: Request, exc: Exception) -> Response:
    """A database error no handler caught: a transient one (a read that met a restart or a locked
    file, a full pool) is a 503 ``busy`` the client retries; anything else is an internal error."""
    if isinstance(exc, sa_exc.TimeoutError) or is_transient(exc):
        return await _api_error(req, busy(f"{req.method} {req.url.path}", "the database is busy or restarting"))
    if isinstance(exc, sa_exc.OperationalError):  # no connection: refused, shut down, not accepting any
        why = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return await _api_error(req, ApiError(
            503, "database_unavailable", f"{req.method} {req.url.path}: the database cannot be reached ({why}); "
                                         "the request changed nothing. Operator: check that the database server "
                                         "is running and accepts connections from this server (--db), then retry"))
    return await _internal_error(req, exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "bad_request",
               415: "unsupported_media_type"}


def _allowed(request: Request) -> str:
    """The methods every route of this path answers (Starlette's 405 names only the first route's)."""
    literal: set[str] = set()  # routes naming this very path (``/media/missing``) come before templates
    templated: set[str] = set()
    for r in request.app.routes:
        if isinstance(r, Route) and r.matches({**request.scope, "method": "GET"})[0] != Match.NONE:
            (templated if r.param_convertors else literal).update(r.methods or ())
    return ", ".join(sorted(literal or templated))


async def _http_error(req: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    resp = _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))
    resp.headers.update(exc.headers or {})
    if exc.status_code == 405:
        resp.headers["Allow"] = _allowed(req)  # RFC 9110: every method the resource answers
    return resp


async def _internal_error(_req: Request, exc: Exception) -> Response:
    return _error(500, "internal", f"internal server error: {type(exc).__name__}; the request changed nothing")


def _bearer(request: Request) -> str | None:
    h = request.headers.get("authorization", "")
    scheme, _, key = h.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def _check_declared_length(request: Request, limit: int, blob: bool = False) -> None:
    """413 before the body is read when its declared ``Content-Length`` is over ``limit``; for a media
    blob the message says how to raise the limit, as the streamed cut-off's does (``blobs.checked_chunks``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if blob:
            raise ApiError(413, "too_large", f"the media blob of {int(declared)} bytes is larger than this server's "
                                             f"limit of {limit} bytes (raise it with `wandblite server "
                                             "--max-blob-size` or $WANDBLITE_MAX_BLOB_SIZE on the server); "
                                             "nothing was stored")
        raise ApiError(413, "too_large", f"the body of {declared} bytes exceeds the limit of {limit} bytes")


def _media_type(request: Request) -> str:
    """The request's ``Content-Type`` without its parameters, lowercase ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    _check_declared_length(request, limit)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise ApiError(413, "too_large", f"the body exceeds the limit of {limit} bytes")
    return bytes(buf)


async def _read_json(request: Request, limit: int = MAX_JSON_BYTES) -> Any:
    raw = await _read_body(request, limit)
    try:
        body = json.loads(raw)
    except RecursionError:
        raise bad_request(f"the body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep", code="too_deep")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", code="malformed_json")
    check_depth(body, MAX_JSON_DEPTH, "the body")
    return body


def _pieces(request: Request) -> Iterator[bytes]:
    """The request body as pieces of up to ``_PIECE`` bytes, for a worker thread of this request.

    Each piece is read on the event loop (``anyio.from_thread.run``); ``ClientDisconnect`` raised
    there surfaces here, in the thread, so the consumer's cleanup runs.
    """
    stream = request.stream()

    async def piece() -> bytes:
        buf = bytearray()
        while len(buf) < _PIECE:
            try:
                buf += await stream.__anext__()
            except StopAsyncIteration:
                break
        return bytes(buf)

    while True:
        data = anyio.from_thread.run(piece)
        if not data:
            return
        yield data


def _stream(f: IO[bytes]) -> Iterator[bytes]:
    """A blob's bytes, ``_PIECE`` at a time (Starlette iterates it in a worker thread); closes ``f``."""
    with f:
        while chunk := f.read(_PIECE):
            yield chunk


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a single ``Range: bytes=...`` request header within ``size`` bytes;
    None to send the whole blob (no header, several ranges, or one this server does not read);
    ``(size, size)`` when the range starts past the end (416)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes="):].strip().partition("-")
    if not sep or not (first or last) or not (first or "0").isdigit() or not (last or "0").isdigit():
        return None
    if not first:  # the last N bytes
        n = int(last)
        return (max(size - n, 0), size) if n else (size, size)
    start = int(first)
    if start >= size:
        return size, size
    stop = min(int(last) + 1, size) if last else size
    return (start, stop) if stop > start else None


async def _blob_response(blob: MediaBlob, media_type: str, headers: dict[str, str],
                         filename: str | None = None, range_header: str | None = None) -> Response:
    """A stored blob as a response: a 302 to a presigned URL (``--s3-presign``), a local file, or a stream.

    ``filename`` makes it an attachment of that name. Headers the bucket cannot be told to send
    (the CSP, nosniff) do not follow a redirect, but neither does the server's origin: the client
    reads the bytes from the bucket's. A stream answers one byte range (206) as a file does, so a
    video can seek.
    """
    disposition = None
    if filename is not None:
        # The form FileResponse writes: plain when the name is URL-safe, else RFC 5987 (a header is latin-1).
        quoted = quote(filename)
        disposition = (f'attachment; filename="{filename}"' if quoted == filename
                       else f"attachment; filename*=utf-8''{quoted}")
    url = await run_in_threadpool(blob.presign, media_type, disposition)
    if url is not None:
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "private, no-store"})
    path = blob.local_path()
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers, filename=filename,
                            content_disposition_type="attachment")
    out = {**headers, "Accept-Ranges": "bytes"}
    if disposition is not None:
        out["Content-Disposition"] = disposition
    span = _byte_range(range_header, blob.size)
    if span is not None and span[0] >= blob.size:
        resp = _error(416, "range_not_satisfiable", f"the blob has {blob.size} bytes; the range {range_header!r} "
                                                    "starts past its end")
        resp.headers["Content-Range"] = f"bytes */{blob.size}"
        return resp
    if span is None or span == (0, blob.size):
        # A fault or a vanished blob is an error before any byte is sent.
        f = await run_in_threadpool(blob.open)
        return StreamingResponse(_stream(f), media_type=media_type, headers={**out, "Content-Length": str(blob.size)})
    start, stop = span
    f = await run_in_threadpool(blob.open, start, stop - start)
    out.update({"Content-Length": str(stop - start), "Content-Range": f"bytes {start}-{stop - 1}/{blob.size}"})
    return StreamingResponse(_stream(f), status_code=206, media_type=media_type, headers=out)


def _media_params(q: Any) -> dict[str, Any]:
    try:
        return {"key": q.get("key") or "", "limit": int(q.get("limit") or 10_000)}
    except ValueError:
        raise bad_request("limit must be an integer")


async def health(_request: Request) -> Response:
    return JSONResponse({"ok": True})


async def openapi_json(request: Request) -> Response:
    """The API's contract, made from the route table when the app was (``openapi.build``)."""
    return JSONResponse(request.app.state.openapi)


def _not_media_missing(request: Request) -> None:
    """405 for another method on ``/media/missing``: the path of ``POST .../media/missing``, not a blob's."""
    if request.path_params["sha256"] == "missing":
        raise HTTPException(405)


class _Handlers:
    """The endpoints of one app: its store, whether reads are public, and its blob size limit."""

    def __init__(self, store: Store, public_read: bool, blob_limit: int) -> None:
        self.store, self.public_read, self.blob_limit = store, public_read, blob_limit

    async def auth(self, request: Request, write: bool, project: str | None = None,
                   manage: bool = False, anyone: bool = False) -> Principal:
        """Who is asking, after the check a read (of ``project``) or a write needs (401/403). A
        ``manage`` write (a project's members, visibility) may come from the dashboard's session."""
        client = request.client.host if request.client else None
        key = _bearer(request)
        from_page = manage and request.headers.get(PAGE_HEADER[0]) == PAGE_HEADER[1]
        if write and key is None and from_page:
            found = await run_in_threadpool(self.store.principal_of_session, request.cookies.get(SESSION_COOKIE))
            if found is None or found.user_id is None:
                raise unauthorized("log in again: this change needs a session (or a Bearer key)")
            if not found.may("write"):
                raise forbidden(f"user {found.user!r} logged in with a {found.scope} key: changes need the write scope")
            return found.at(client)
        if key is not None or write:
            # Other writes take the Bearer header only: a cookie, which a browser attaches by itself,
            # never authorises one (no cross-site write, whatever SameSite a browser implements).
            who = await run_in_threadpool(self.store.principal_of_key, key)
            if who is None:
                raise unauthorized()
            who = who.at(client)
            if write and not who.may("write"):
                raise forbidden(f"user {who.user!r} sent a {who.scope} key: writing needs a key of write scope")
        else:
            who = (await run_in_threadpool(self.store.principal_of_session, request.cookies.get(SESSION_COOKIE))
                   or Principal.anonymous()).at(client)
        if not write:
            if project is not None:
                await run_in_threadpool(self.store.check_read, who, project, self.public_read)
            elif who.user_id is None and not self.public_read and not anyone:
                raise unauthorized("a valid API key (Authorization: Bearer <key>) or a session cookie is required")
        return who

    def reader(self, fn: Callable[..., Any], paged: bool = False,
               params: Callable[[Any], dict[str, Any]] | None = None) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint answering ``fn(store, *path params[, start, limit], **params(query))`` after a read check."""
        async def endpoint(request: Request) -> Response:
            await self.auth(request, write=False, project=request.path_params.get("project"))
            args = list(request.path_params.values())
            if paged:
                args.extend(read.page_args(request.query_params.get("start"), request.query_params.get("limit")))
            kwargs = params(request.query_params) if params is not None else {}
            return JSONResponse(await run_in_threadpool(lambda: fn(self.store, *args, **kwargs)))

        return endpoint

    async def history(self, request: Request) -> Response:
        """History rows by index: JSON, or msgpack with a flat template's rows as columns when the
        client's ``Accept`` names ``vocab.HISTORY_MSGPACK`` (and msgpack can carry the page exactly)."""
        await self.auth(request, write=False, project=request.path_params.get("project"))
        p = request.path_params
        start, limit = read.page_args(request.query_params.get("start"), request.query_params.get("limit"))
        if HISTORY_MSGPACK in request.headers.get("accept", ""):
            def packed() -> bytes | None:
                return pack_history(read.get_history_blocks(self.store, p["project"], p["run_id"], start, limit))

            body = await run_in_threadpool(packed)
            if body is not None:
                return Response(body, media_type=HISTORY_MSGPACK)
        return JSONResponse(await run_in_threadpool(read.get_history, self.store, p["project"], p["run_id"],
                                                    start, limit))

    async def projects(self, request: Request) -> Response:
        """The projects the asker may read."""
        who = await self.auth(request, write=False)
        answer = await run_in_threadpool(read.list_projects, self.store)
        names = await run_in_threadpool(self.store.readable_projects, who, self.public_read)
        if names is not None:
            answer["projects"] = [p for p in answer["projects"] if p["name"] in names]
        return JSONResponse(answer)

    # ---------------------------------------------------------------- members, grants, the audit log
    async def audit_get(self, request: Request) -> Response:
        """The audit log: all of it for the server admin's admin-scope key, a project's for its admins."""
        who = await self.auth(request, write=False)
        args = audit.page_args(request.query_params)
        if args["project"] is None:
            if not who.reads_whole_audit:
                raise forbidden("the whole audit log needs the server admin's key of admin scope; "
                                "a project's admins may read its part (?project=NAME)")
        elif await run_in_threadpool(self.store.role_of, who, args["project"]) != "admin" or not who.may("write"):
            raise forbidden(f"the audit log of project {args['project']!r} needs its admin role")
        return JSONResponse(await run_in_threadpool(lambda: self.store.audit(**args)))

    async def members_get(self, request: Request) -> Response:
        project = request.path_params["project"]
        await self.auth(request, write=False, project=project)
        return JSONResponse(await run_in_threadpool(self.store.list_members, project))

    async def member_put(self, request: Request) -> Response:
        who = await self.auth(request, write=True, manage=True)
        body = await _read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("role"), str):
            raise bad_request('expected {"role": "viewer" | "writer" | "admin"}')
        p = request.path_params
        await run_in_threadpool(self.store.set_member, p["project"], p["user"], body["role"], who)
        return JSONResponse(await run_in_threadpool(self.store.list_members, p["project"]))

    async def member_delete(self, request: Request) -> Response:
        who = await self.auth(request, write=True, manage=True)
        p = request.path_params
        await run_in_threadpool(self.store.remove_member, p["project"], p["user"], who)
        return JSONResponse(await run_in_threadpool(self.store.list_members, p["project"]))

    async def visibility_put(self, request: Request) -> Response:
        who = await self.auth(request, write=True, manage=True)
        body = await _read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("visibility"), str):
            raise bad_request('expected {"visibility": "private" | "internal" | "public"}')
        project = request.path_params["project"]
        await run_in_threadpool(self.store.set_visibility, project, body["visibility"], who)
        return JSONResponse(await run_in_threadpool(self.store.list_members, project))

    async def grant_post(self, request: Request) -> Response:
        who = await self.auth(request, write=True)
        body = await _read_json(request)
        key_id = body.get("key_id") if isinstance(body, dict) else None
        if not isinstance(key_id, int) or isinstance(key_id, bool) or not 0 < key_id < 2**31:
            raise bad_request('expected {"key_id": <the id of the key to grant, from `keys list`>}')
        p = request.path_params
        await run_in_threadpool(self.store.grant, p["project"], p["run_id"], key_id, who)
        return JSONResponse({"project": p["project"], "run_id": p["run_id"], "granted": key_id})

    # ---------------------------------------------------------------- editing runs (edits.py)
    async def edit_auth(self, request: Request) -> Principal:
        """Who edits a run: the Bearer key, or the dashboard's session sent with ``PAGE_HEADER`` (the
        one rule of the dashboard's writes, ``auth(manage=True)``)."""
        return await self.auth(request, write=True, manage=True)

    async def run_patch(self, request: Request) -> Response:
        who = await self.edit_auth(request)
        body = await _read_json(request)
        p = request.path_params
        return JSONResponse(await run_in_threadpool(edits.edit_run, self.store, p["project"], p["run_id"], body, who))

    async def run_move(self, request: Request) -> Response:
        who = await self.edit_auth(request)
        body = await _read_json(request)
        if not isinstance(body, dict) or set(body) != {"project"}:
            raise bad_request('expected {"project": "<the target project>"}')
        p = request.path_params
        return JSONResponse(await run_in_threadpool(edits.move_run, self.store, p["project"], p["run_id"],
                                                    body["project"], who))

    async def run_delete(self, request: Request) -> Response:
        who = await self.edit_auth(request)
        p = request.path_params
        return JSONResponse(await run_in_threadpool(edits.delete_run, self.store, p["project"], p["run_id"], who))

    # ---------------------------------------------------------------- saved workspaces
    async def workspace_user(self, request: Request) -> Principal:
        """Who saves a workspace of the project: a Bearer key or the session cookie (module docstring),
        who may read the project and is a user (401/403 otherwise)."""
        if request.method in ("PUT", "POST"):
            ctype = _media_type(request)
            if ctype != "application/json":
                raise ApiError(415, "unsupported_media_type", "send the workspace as JSON (Content-Type: "
                                                              f"application/json), not {ctype or 'no content type'}")
        if (_bearer(request) is None and request.cookies.get(SESSION_COOKIE)
                and request.headers.get(PAGE_HEADER[0]) != PAGE_HEADER[1]):
            raise forbidden("a workspace saved through the session cookie is sent by the dashboard (with the header "
                            "X-Requested-With: wandblite); scripts send a Bearer key")
        who = await self.auth(request, write=False, project=request.path_params["project"])
        if who.user_id is None:
            raise unauthorized("saving a workspace needs a user: log in, or send a user's API key")
        return who

    async def workspace_get(self, request: Request) -> Response:
        project = request.path_params["project"]
        who = await self.auth(request, write=False, project=project)
        return JSONResponse(await run_in_threadpool(self.store.workspaces, who, project))

    def workspace_put(self, which: str) -> Callable[[Request], Awaitable[Response]]:
        """Save the asker's own workspace (``which`` "user") or the project default ("default")."""
        async def endpoint(request: Request) -> Response:
            who = await self.workspace_user(request)
            body = await _read_json(request, workspaces.MAX_WORKSPACE_BYTES)
            project = request.path_params["project"]
            return JSONResponse(await run_in_threadpool(self.store.save_workspace, who, project, which, body))

        return endpoint

    def workspace_delete(self, which: str) -> Callable[[Request], Awaitable[Response]]:
        """Reset the asker's own workspace (back to the project default) or the project default."""
        async def endpoint(request: Request) -> Response:
            who = await self.workspace_user(request)
            project = request.path_params["project"]
            return JSONResponse(await run_in_threadpool(self.store.reset_workspace, who, project, which))

        return endpoint

    async def workspace_share(self, request: Request) -> Response:
        who = await self.workspace_user(request)
        body = await _read_json(request, workspaces.MAX_WORKSPACE_BYTES)
        return JSONResponse(await run_in_threadpool(self.store.share_workspace, who, request.path_params["project"],
                                                    body))

    async def workspace_view(self, request: Request) -> Response:
        p = request.path_params
        await self.auth(request, write=False, project=p["project"])
        return JSONResponse(await run_in_threadpool(self.store.workspace_view, p["project"], p["view_id"]))

    # ---------------------------------------------------------------- browser sessions
    async def session_get(self, request: Request) -> Response:
        key, token = _bearer(request), request.cookies.get(SESSION_COOKIE)
        who = (await run_in_threadpool(self.store.principal_of_key, key)) if key else (
            await run_in_threadpool(self.store.principal_of_session, token))
        return JSONResponse({"authenticated": who is not None, "public_read": self.public_read})

    async def me(self, request: Request) -> Response:
        """Who the key or session belongs to (401 for neither); with ``?project=`` also their role in it."""
        who = await self.auth(request, write=False)
        if who.user_id is None:
            raise unauthorized()
        answer = {"user": who.user, "key_id": who.key_id, "scope": who.scope, "admin": who.is_admin,
                  "audit": who.reads_whole_audit}
        project = request.query_params.get("project")
        if project:
            role = await run_in_threadpool(self.store.role_of, who, project)
            answer["role"] = role
            answer["manage"] = role == "admin"  # role_in never makes a read-only key an admin
        return JSONResponse(answer)

    async def session_post(self, request: Request) -> Response:
        # JSON only: a form or text/plain body is what a cross-site page can post without a CORS
        # preflight, so refusing every other type closes login CSRF whatever SameSite a browser does.
        ctype = _media_type(request)
        if ctype != "application/json":
            raise ApiError(415, "unsupported_media_type", f"log in with a JSON body (Content-Type: application/json), "
                                                          f"not {ctype or 'no content type'}")
        body = await _read_json(request)
        client = request.client.host if request.client else None
        token = await run_in_threadpool(self.store.open_session, body, client)
        resp = JSONResponse({"authenticated": True, "public_read": self.public_read})
        resp.set_cookie(SESSION_COOKIE, token, max_age=int(self.store.SESSION_SECONDS), path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
        return resp

    async def session_delete(self, request: Request) -> Response:
        await run_in_threadpool(self.store.end_session, request.cookies.get(SESSION_COOKIE))
        resp = JSONResponse({"authenticated": False, "public_read": self.public_read})
        resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
        return resp

    # ---------------------------------------------------------------- sync: positions, batches, media
    async def position(self, request: Request) -> Response:
        p = request.path_params
        await self.auth(request, write=False, project=p["project"])
        return JSONResponse(await run_in_threadpool(self.store.position, p["project"], p["run_id"]))

    async def batch(self, request: Request) -> Response:
        who = await self.auth(request, write=True)
        if _media_type(request) == BATCH_MSGPACK:
            body = unpack_body(await _read_body(request, MAX_JSON_BYTES))
        else:
            body = await _read_json(request)
        p = request.path_params
        return JSONResponse(await run_in_threadpool(self.store.apply_batch, p["project"], p["run_id"], body, who))

    async def media_missing(self, request: Request) -> Response:
        await self.auth(request, write=True)
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise bad_request("expected {\"sha256\": [...]}")
        missing = await run_in_threadpool(self.store.missing_media, body.get("sha256"))
        return JSONResponse({"missing": missing, "max_size": self.blob_limit})

    async def media_put(self, request: Request) -> Response:
        _not_media_missing(request)
        await self.auth(request, write=True)
        sha = validate_sha256(request.path_params["sha256"])
        _check_declared_length(request, self.blob_limit, blob=True)
        ext = request.query_params.get("ext")
        try:
            size = await run_in_threadpool(self.store.put_media, sha, _pieces(request), ext, self.blob_limit)
        except ClientDisconnect:
            # Nobody is left to read an answer; the error shape keeps the log quiet (no traceback).
            raise bad_request("the client closed the connection before the whole body arrived; nothing was stored")
        return JSONResponse({"sha256": sha, "size": size})

    async def media_auth(self, request: Request) -> None:
        """A blob's read: whoever may read a project holding a run that names it (``access.check_media_read``)."""
        who = await self.auth(request, write=False, anyone=True)
        await run_in_threadpool(self.store.check_media_read, who, request.path_params["sha256"], self.public_read)

    async def media_mesh(self, request: Request) -> Response:
        await self.media_auth(request)
        return JSONResponse(await run_in_threadpool(media_query.mesh, self.store, request.path_params["sha256"]))

    async def media_get(self, request: Request) -> Response:
        _not_media_missing(request)
        await self.media_auth(request)
        blob = await run_in_threadpool(self.store.media_blob, request.path_params["sha256"])
        ctype = _PASSIVE_TYPES.get((blob.ext or "").lower())
        headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
                   "Cache-Control": "private, max-age=31536000, immutable"}
        if ctype is not None:
            return await _blob_response(blob, ctype, headers, range_header=request.headers.get("range"))
        return await _blob_response(blob, "application/octet-stream", headers,
                                    filename=f"{blob.sha256}.{blob.ext or 'bin'}", range_header=request.headers.get("range"))

    async def run_file(self, request: Request) -> Response:
        # A file the run saved (wandblite.save): always an attachment, never rendered in the server's origin.
        p = request.path_params
        await self.auth(request, write=False, project=p["project"])
        blob, filename = await run_in_threadpool(records.run_file, self.store, p["project"], p["run_id"], p["name"])
        headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
                   "Cache-Control": "private, no-cache"}
        return await _blob_response(blob, "application/octet-stream", headers, filename=filename,
                                    range_header=request.headers.get("range"))


def _routes(h: _Handlers) -> list[Route]:
    """The API's routes under ``/api/v1`` (see ``PROTOCOL.md``)."""
    base = "/api/v1"
    run = base + "/projects/{project}/runs/{run_id}"
    reader = h.reader
    return [
        Route(base + "/health", health, methods=["GET"]),
        Route(base + "/openapi.json", openapi_json, methods=["GET"]),
        Route(base + "/session", h.session_get, methods=["GET"]),
        Route(base + "/session", h.session_post, methods=["POST"]),
        Route(base + "/session", h.session_delete, methods=["DELETE"]),
        Route(base + "/projects", h.projects, methods=["GET"]),
        Route(base + "/audit", h.audit_get, methods=["GET"]),
        Route(base + "/me", h.me, methods=["GET"]),
        Route(base + "/projects/{project}/members", h.members_get, methods=["GET"]),
        Route(base + "/projects/{project}/members/{user}", h.member_put, methods=["PUT"]),
        Route(base + "/projects/{project}/members/{user}", h.member_delete, methods=["DELETE"]),
        Route(base + "/projects/{project}/visibility", h.visibility_put, methods=["PUT"]),
        Route(run + "/grants", h.grant_post, methods=["POST"]),
        Route(base + "/projects/{project}/workspace", h.workspace_get, methods=["GET"]),
        Route(base + "/projects/{project}/workspace/user", h.workspace_put("user"), methods=["PUT"]),
        Route(base + "/projects/{project}/workspace/user", h.workspace_delete("user"), methods=["DELETE"]),
        Route(base + "/projects/{project}/workspace/default", h.workspace_put("default"), methods=["PUT"]),
        Route(base + "/projects/{project}/workspace/default", h.workspace_delete("default"), methods=["DELETE"]),
        Route(base + "/projects/{project}/workspace/views", h.workspace_share, methods=["POST"]),
        Route(base + "/projects/{project}/workspace/views/{view_id}", h.workspace_view, methods=["GET"]),
        Route(base + "/projects/{project}/runs", reader(runs_query.list_runs, params=runs_query.runs_args), methods=["GET"]),
        Route(base + "/projects/{project}/grouped-series",
              reader(grouped_series, params=grouped_args), methods=["GET"]),
        Route(run, reader(read.get_run), methods=["GET"]),
        Route(run, h.run_patch, methods=["PATCH"]),
        Route(run, h.run_delete, methods=["DELETE"]),
        Route(run + "/move", h.run_move, methods=["POST"]),
        Route(run + "/keys", reader(series_query.run_keys), methods=["GET"]),
        Route(run + "/series", reader(series_query.get_series, params=series_query.series_args), methods=["GET"]),
        Route(run + "/media", reader(media_query.list_media, params=_media_params), methods=["GET"]),
        Route(run + "/position", h.position, methods=["GET"]),
        Route(run + "/batch", h.batch, methods=["POST"]),
        Route(run + "/history", h.history, methods=["GET"]),
        Route(run + "/history/sampled", reader(read.sample_history, params=read.sampled_args), methods=["GET"]),
        Route(run + "/console", reader(read.get_console, paged=True, params=read.writer_arg), methods=["GET"]),
        Route(run + "/console/lines", reader(read.get_console_lines, params=read.console_lines_args), methods=["GET"]),
        Route(run + "/system", reader(read.get_system, paged=True, params=read.writer_arg), methods=["GET"]),
        Route(base + "/media/missing", h.media_missing, methods=["POST"]),
        Route(base + "/media/{sha256}", h.media_put, methods=["PUT"]),
        Route(base + "/media/{sha256}", h.media_get, methods=["GET"]),
        Route(base + "/media/{sha256}/mesh", h.media_mesh, methods=["GET"]),
        # Saved files, artifacts and alerts: written through the batch, read here.
        Route(run + "/files", reader(records.list_files), methods=["GET"]),
        Route(run + "/files/{name:path}", h.run_file, methods=["GET"]),
        Route(run + "/alerts", reader(records.list_alerts, paged=True), methods=["GET"]),
        Route(run + "/artifacts", reader(records.run_artifacts_of), methods=["GET"]),
        Route(base + "/projects/{project}/artifacts", reader(records.list_artifacts), methods=["GET"]),
        Route(base + "/projects/{project}/artifacts/{name}/{ref}", reader(records.get_artifact), methods=["GET"]),
    ]


def create_app(store: Store, public_read: bool = False, max_blob_bytes: int | None = None) -> Starlette:
    """The ASGI app serving ``store``; blobs up to ``max_blob_bytes`` (default: ``$WANDBLITE_MAX_BLOB_SIZE``)."""
    blob_limit = blobs.max_blob_bytes() if max_blob_bytes is None else max_blob_bytes
    api = _routes(_Handlers(store, public_read, blob_limit))
    contract = openapi.build(api)  # a route without its operation (or the reverse) fails here
    routes = openapi.checked(api)  # every query string checked against its operation first
    from wandblite.server.dashboard import dashboard_routes  # the web dashboard: /, /static

    routes += dashboard_routes()
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, sa_exc.DBAPIError: _database_error,
                            sa_exc.TimeoutError: _database_error, Exception: _internal_error},
    )
    app.state.store = store
    app.state.openapi = contract
    return app
