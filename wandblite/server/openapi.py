"""The HTTP API's contract: an OpenAPI 3 document generated from the app's route table, and the
query-parameter check every API request passes.

Layer 5 (the server). ``OPERATIONS`` describes each ``(method, path)`` of ``app._routes``: its query
parameters, its request body, its answer. ``build(routes)`` walks the route table the app serves and
joins each route to its operation; a route without an operation, or an operation without a route,
is a ``LookupError`` when the app is made, so the contract cannot drift from the code (the app serves
the result at ``GET /api/v1/openapi.json``). The limits in the parameters are the constants the
handlers check (``read.MAX_PAGE``, ``runs_query.MAX_RUNS_PAGE``, ...), not copies of them.

What it promises:

* ``checked(routes)`` wraps every API endpoint so that its query string is validated against the
  declared parameters before the handler runs: integers and numbers parse and lie in their range,
  required parameters are present, strings are within their length and hold no NUL (PostgreSQL's
  text refuses it). A bad value is a 400 ``bad_request`` in the one error shape; undeclared parameters
  are ignored (as wandb's clients may send some).
* Every operation answers its success schema or the one error shape (``ERROR``), as ``default``.
* Routes outside ``/api/v1`` (the dashboard's pages and static files) are not part of the contract.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wandblite.runfile import PROJECT_NAME_PATTERN, RUN_ID_PATTERN
from wandblite.server.audit import MAX_PAGE as MAX_AUDIT_PAGE
from wandblite.server.edits import MAX_NAME, MAX_TAG, MAX_TAGS
from wandblite.server.errors import bad_request
from wandblite.server.group_query import MAX_BUCKETS
from wandblite.server.login import MAX_PASSWORD_CHARS
from wandblite.server.media_query import MAX_MEDIA_STEPS
from wandblite.server.read import MAX_PAGE, MAX_SEARCH, MAX_TAIL
from wandblite.server.runs_query import ARCHIVED_VIEWS, MAX_RUNS_PAGE, ORDER_COLUMNS
from wandblite.server.series_query import MAX_SAMPLES
from wandblite.server.users import USER_NAME_PATTERN
from wandblite.server.wire import ARTIFACT_NAME_PATTERN, MAX_ARTIFACT_VERSION
from wandblite.server.workspaces import VIEW_ID_PATTERN, WORKSPACE_VERSION
from wandblite.vocab import (
    BATCH_MSGPACK,
    FILE_NAME_MAX,
    FILE_NAME_PATTERN,
    HISTORY_MSGPACK,
    KEY_SCOPES,
    MAX_SAMPLED_ROWS,
    ROLES,
    VISIBILITIES,
    WRITER_LABEL_RE,
)

__all__ = ["API_PREFIX", "ERROR", "OPERATIONS", "Operation", "Param", "build", "check_query", "checked"]

API_PREFIX = "/api/v1"
#: The largest index a page may start at (the store's indexes are below 2**62).
_MAX_INDEX = (1 << 62) - 1
#: A query string value longer than this is refused, whatever the parameter (a filter, a search).
_MAX_QUERY_TEXT = 8192  # the maxLength of ``_TEXT`` (``serve`` lets uvicorn read a URL this long)

# ------------------------------------------------------------------------------ schema pieces

STR: dict[str, Any] = {"type": "string"}
#: A text query parameter: bounded, without NUL (``_check_value``).
_TEXT: dict[str, Any] = {"type": "string", "maxLength": _MAX_QUERY_TEXT, "pattern": "^[^\\x00]*$"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}
BOOL: dict[str, Any] = {"type": "boolean"}
ANY: dict[str, Any] = {}
OBJ: dict[str, Any] = {"type": "object"}


def _null(s: dict[str, Any]) -> dict[str, Any]:
    return {**s, "nullable": True}


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    """An object with every one of ``props`` required (more keys allowed: answers may grow)."""
    return {"type": "object", "required": sorted(props), "properties": props}


#: The one error shape (``errors.ApiError.body``): every 4xx and 5xx.
ERROR = _obj(error={"type": "object", "required": ["code", "message"],
                    "properties": {"code": STR, "message": STR}})

_SHA = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
#: What ``runs_query.order_key`` orders by: a column, or summary.<key>/config.<key>; '-' for descending.
_ORDER_PATTERN = "^[-+]*(?:" + "|".join(ORDER_COLUMNS) + "|(?:summary|config)\\.[^\\x00]*)$"
_NEXT = _null(INT)
_POSITION = _obj(rows=INT, pending=BOOL, console=INT, system=INT, digest=_null(STR), state=_null(STR))
_RUN_ITEM = _obj(id=STR, name=_null(STR), state=_null(STR), tags=_arr(STR), group=_null(STR), job_type=_null(STR),
                 notes=_null(STR), created_at=_null(NUM), updated_at=_null(NUM), heartbeat_at=_null(NUM),
                 runtime=_null(NUM), host=_null(STR), exit_code=_null(INT), rows=INT, config=OBJ, summary=OBJ,
                 owner=_null(STR), archived=BOOL)
_RUN = {**_RUN_ITEM, "required": sorted([*_RUN_ITEM["required"], "project", "position", "pending", "console",
                                         "system"]),
        "properties": {**_RUN_ITEM["properties"], "project": STR, "entity": _null(STR), "ended_at": _null(NUM),
                       "metrics": OBJ, "context": ANY, "error": ANY, "signal": _null(STR), "pending": BOOL,
                       "console": INT, "system": INT, "position": _POSITION, "writers": _arr(OBJ),
                       "stopped_first": _null(OBJ)}}
_SESSION = _obj(authenticated=BOOL, public_read=BOOL)
_ME = _obj(user=STR, key_id=_null(INT), scope=_null({"type": "string", "enum": list(KEY_SCOPES)}), admin=BOOL, audit=BOOL)
_ME["properties"].update(role=_null({"type": "string", "enum": list(ROLES)}), manage=BOOL)  # with ?project= only
_MEMBERS = _obj(project=STR, visibility={"type": "string", "enum": list(VISIBILITIES)},
                members=_arr(_obj(user=STR, role={"type": "string", "enum": list(ROLES)})))
_ARTIFACT_VERSION = _obj(version=INT, digest=STR, size=INT, run=_null(STR), created_at=_null(NUM), aliases=_arr(STR))
_BLOB_TYPES = ("application/octet-stream", "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
               "video/mp4", "video/webm", "audio/ogg", "audio/wav", "audio/mpeg", "audio/flac", "application/json")

#: A saved workspace document (``workspaces.validate_workspace`` is its full schema and check).
_WORKSPACE = {"type": "object", "required": ["version"], "additionalProperties": False,
              "properties": {"version": {"type": "integer", "enum": [WORKSPACE_VERSION]}, "runs": OBJ,
                             "selection": _arr(STR), "charts": OBJ, "sections": OBJ, "panels": OBJ, "grouping": OBJ}}
_WORKSPACE_ENTRY = _obj(workspace=_WORKSPACE, updated_at=NUM, updated_by=_null(STR))
_WORKSPACE_SAVED = {**_WORKSPACE_ENTRY, "required": sorted([*_WORKSPACE_ENTRY["required"], "project", "slot"]),
                    "properties": {**_WORKSPACE_ENTRY["properties"], "project": STR, "slot": STR}}
_WORKSPACE_RESET = _obj(project=STR, slot=STR, reset=BOOL)

# ------------------------------------------------------------------------------ operations


@dataclass(frozen=True)
class Param:
    """A query parameter: its JSON schema (integer, number, string, or an array of strings), whether required."""

    name: str
    schema: dict[str, Any]
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Operation:
    """What one ``(method, path)`` of the API takes and answers."""

    summary: str
    answer: dict[str, Any] | None = None  # the 200 JSON schema; None: ``blob`` or no JSON
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # a JSON request body's schema
    blob_body: bool = False  # the request body is raw bytes (a media upload)
    blob: bool = False  # the answer is a blob's bytes (200, 206, 302)
    auth: bool = True  # needs a key (or a session, for reads)
    tags: tuple[str, ...] = field(default=())
    also: tuple[tuple[str, str], ...] = ()  # other media types of the 200 answer (``Accept``): (type, description)
    body_also: tuple[tuple[str, str], ...] = ()  # other media types of the JSON request body: (type, description)


def _int(name: str, lo: int, hi: int, doc: str = "", required: bool = False) -> Param:
    return Param(name, {"type": "integer", "minimum": lo, "maximum": hi}, required, doc)


_PAGE = (_int("start", 0, _MAX_INDEX, "the first index wanted"), _int("limit", 1, MAX_PAGE, "how many at most"))
def _writer_item(item: dict[str, Any]) -> dict[str, Any]:
    """A console or system item: a shared run's also names its ``writer`` (label)."""
    return {**item, "properties": {**item["properties"], "writer": STR}}


_WRITER = Param("writer", {"type": "string", "pattern": WRITER_LABEL_RE.pattern},
                doc="a shared run's writer label: only that writer's records (without: every writer's)")
_PROJECT_PATH = API_PREFIX + "/projects/{project}"
_RUN_PATH = _PROJECT_PATH + "/runs/{run_id}"


def _paged(field_name: str, item: dict[str, Any]) -> dict[str, Any]:
    return _obj(**{field_name: _arr(item), "next": _NEXT})


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", API_PREFIX + "/health"): Operation("Whether the server is up", _obj(ok=BOOL), auth=False),
    ("GET", API_PREFIX + "/openapi.json"): Operation("This contract", OBJ, auth=False),
    ("GET", API_PREFIX + "/session"): Operation("Whether the request is authenticated", _SESSION, auth=False),
    ("POST", API_PREFIX + "/session"): Operation(
        "Log in: a session cookie for a user's name and password, or for a valid API key (JSON only; "
        "failed logins are throttled per name: 429)", _SESSION, auth=False,
        body={"oneOf": [{"type": "object", "required": ["user", "password"], "additionalProperties": False,
                         "properties": {"user": STR, "password": {"type": "string", "maxLength": MAX_PASSWORD_CHARS}}},
                        {"type": "object", "required": ["api_key"], "additionalProperties": False,
                         "properties": {"api_key": STR}}]}),
    ("DELETE", API_PREFIX + "/session"): Operation("Log out", _SESSION, auth=False),
    ("GET", API_PREFIX + "/projects"): Operation(
        "The projects", _obj(projects=_arr(_obj(name=STR, runs=INT, created_at=_null(NUM), updated_at=_null(NUM))))),
    ("GET", API_PREFIX + "/projects/{project}/runs"): Operation(
        "A project's runs: filtered, searched, ordered, paged", _obj(runs=_arr(_RUN_ITEM), total=INT),
        params=(Param("filters", _TEXT, doc="a JSON filter (MongoDB-like, as wandb's api.runs(filters=))"),
                Param("order", {**_TEXT, "pattern": _ORDER_PATTERN},
                      doc="a column or summary.<key>/config.<key>, '-' for descending"),
                Param("search", _TEXT, doc="text found in a run's name, id, notes or tags"),
                Param("archived", {"type": "string", "enum": list(ARCHIVED_VIEWS)},
                      doc="hide (default): runs not archived; include: all; only: archived runs"),
                _int("limit", 1, MAX_RUNS_PAGE), _int("offset", 0, _MAX_INDEX))),
    ("GET", _PROJECT_PATH + "/grouped-series"): Operation(
        "A group of runs' metrics aligned on x buckets: mean, median, min, max, std per bucket",
        _obj(x_axis=STR, buckets=INT, runs=INT, series={"type": "object", "additionalProperties": _obj(
            x=_arr(NUM), mean=_arr(NUM), median=_arr(NUM), min=_arr(NUM), max=_arr(NUM), std=_arr(NUM),
            stderr=_arr(NUM), n=_arr(INT), runs=INT, lo=_null(NUM), hi=_null(NUM))}),
        params=(Param("runs", {**_TEXT, "minLength": 1}, True, "comma-separated run ids of the group"),
                Param("keys", {**_TEXT, "minLength": 1}, True, "comma-separated metric keys"),
                Param("x_axis", _TEXT, doc="_step (default), _runtime, _timestamp or a metric"),
                _int("buckets", 1, MAX_BUCKETS), Param("min_x", NUM), Param("max_x", NUM))),
    ("GET", _RUN_PATH): Operation("One run", _RUN),
    ("PATCH", _RUN_PATH): Operation(
        "Edit a run: rename, tags, notes, archive or restore (its owner or a project admin)", _RUN,
        body={"type": "object", "minProperties": 1, "additionalProperties": False, "properties": {
            "name": _null({**STR, "maxLength": MAX_NAME}), "notes": _null(STR), "archived": BOOL,
            "tags": {"type": "array", "maxItems": MAX_TAGS, "items": {**STR, "minLength": 1, "maxLength": MAX_TAG}}}}),
    ("DELETE", _RUN_PATH): Operation(
        "Delete a run, its records and the blobs no other run names (its owner or a project admin)",
        _obj(project=STR, run_id=STR, deleted=BOOL, blobs_deleted=_arr(_SHA), blobs_left=_arr(_SHA))),
    ("POST", _RUN_PATH + "/move"): Operation(
        "Move a run to another project (its owner or a project admin, and a writer there)", _RUN,
        body=_obj(project={"type": "string", "pattern": PROJECT_NAME_PATTERN})),
    ("GET", _RUN_PATH + "/keys"): Operation(
        "A run's metric and media keys",
        _obj(keys=_arr({"type": "object", "required": ["key", "kind", "count"],
                        "properties": {"key": STR, "kind": STR, "count": INT, "first_step": _null(NUM),
                                       "last_step": _null(NUM), "type": STR}}))),
    ("GET", _RUN_PATH + "/series"): Operation(
        "Metrics downsampled for a chart",
        _obj(x_axis=STR, series={"type": "object", "additionalProperties": _obj(
            x=_arr(ANY), y=_arr(ANY), y_min=_arr(ANY), y_max=_arr(ANY), count=INT)}),
        params=(Param("keys", {**_TEXT, "minLength": 1}, True, "comma-separated metric keys (at most 100)"),
                Param("x_axis", _TEXT, doc="_step (default), _runtime, _timestamp or a metric"),
                _int("samples", 2, MAX_SAMPLES), Param("min_x", NUM), Param("max_x", NUM))),
    ("GET", _RUN_PATH + "/media"): Operation(
        "The rows holding a media key", _obj(key=STR, count=INT, steps=_arr(_obj(step=_null(INT), idx=INT,
                                                                                  value=ANY))),
        params=(Param("key", {**_TEXT, "minLength": 1}, True), _int("limit", 1, MAX_MEDIA_STEPS))),
    ("GET", _RUN_PATH + "/position"): Operation("Where the store stands for a run (sync)", OBJ),
    ("POST", _RUN_PATH + "/batch"): Operation(
        "Store one sync batch, exactly once (PROTOCOL.md)", OBJ,
        body={"type": "object", "properties": {  # null: as if absent
            "run": _null(OBJ), **{f: _null(_arr(OBJ)) for f in ("rows", "console", "system", "files", "artifacts",
                                                                  "uses", "alerts")}}},
        body_also=((BATCH_MSGPACK, "the same object as msgpack: maps with string keys, arrays, strings, numbers, "
                                   "booleans, nil (PROTOCOL.md)"),)),
    ("GET", _RUN_PATH + "/history"): Operation(
        "History rows by index", _paged("rows", _obj(idx=INT, final=BOOL, row=OBJ)), params=_PAGE,
        also=((HISTORY_MSGPACK, 'when Accept names it: msgpack of {"blocks": [[first idx, keys or null, '
                                'columns or rows]], "pending": [idx, row] or null, "next"} (PROTOCOL.md)'),)),
    ("GET", _RUN_PATH + "/history/sampled"): Operation(
        "History rows sampled over the run", _obj(rows=_arr(OBJ), matched=INT),
        params=(_int("samples", 1, MAX_SAMPLED_ROWS),
                Param("key", {"type": "array", "items": {**_TEXT, "minLength": 1}},
                      doc="flat key names (repeat the parameter)"))),
    ("GET", _RUN_PATH + "/console"): Operation(
        "Console records by index", _paged("console", _writer_item(_obj(idx=INT, ts=_null(NUM), stream=_null(STR),
                                                                        text=STR))),
        params=(*_PAGE, _WRITER)),
    ("GET", _RUN_PATH + "/console/lines"): Operation(
        "The last console lines, joined",
        _obj(lines=_arr(_writer_item(_obj(ts=_null(NUM), stream=_null(STR), text=STR, open=BOOL))),
             total=INT, matched=INT, records=INT),
        params=(_int("tail", 1, MAX_TAIL), Param("search", {**_TEXT, "maxLength": MAX_SEARCH}), _WRITER)),
    ("GET", _RUN_PATH + "/system"): Operation(
        "System metrics records by index", _paged("system", _writer_item(_obj(idx=INT, ts=_null(NUM), metrics=ANY))),
        params=(*_PAGE, _WRITER)),
    ("POST", API_PREFIX + "/media/missing"): Operation(
        "Which blobs the server lacks", _obj(missing=_arr(_SHA), max_size=INT),
        body={"type": "object", "required": ["sha256"],
              "properties": {"sha256": {"type": "array", "maxItems": 100_000, "items": _SHA}}}),
    ("PUT", API_PREFIX + "/media/{sha256}"): Operation(
        "Upload a blob named by its sha256", _obj(sha256=_SHA, size=INT), blob_body=True,
        params=(Param("ext", _TEXT, doc="its extension (kept when plain ASCII, else served as .bin)"),)),
    ("GET", API_PREFIX + "/media/{sha256}"): Operation(
        "A blob's bytes (to whoever may read a project holding a run that names it)", blob=True),
    ("GET", API_PREFIX + "/media/{sha256}/mesh"): Operation("A 3D blob as JSON for a viewer", OBJ),
    ("GET", _RUN_PATH + "/files"): Operation(
        "A run's saved files (latest version of each)",
        _obj(files=_arr(_obj(name=STR, sha256=_SHA, size=INT, policy=_null(STR), ts=_null(NUM), lost=BOOL,
                             versions=INT)))),
    ("GET", _RUN_PATH + "/files/{name}"): Operation("A saved file's bytes (an attachment)", blob=True),
    ("GET", _RUN_PATH + "/alerts"): Operation(
        "A run's alerts by index",
        _obj(alerts=_arr(_obj(idx=INT, ts=_null(NUM), title=STR, text=STR, level=STR, wait_duration=_null(NUM),
                              throttled=BOOL)), next=_NEXT, sent=INT), params=_PAGE),
    ("GET", _RUN_PATH + "/artifacts"): Operation(
        "What a run logged and used", _obj(logged=_arr(OBJ), used=_arr(OBJ))),
    ("GET", API_PREFIX + "/projects/{project}/artifacts"): Operation(
        "A project's artifacts",
        _obj(artifacts=_arr(_obj(name=STR, type=_null(STR), versions=_arr(_ARTIFACT_VERSION), aliases=OBJ)))),
    ("GET", API_PREFIX + "/me"): Operation(
        "Who the key or session belongs to; with project=, their role in it and whether they manage it",
        _ME,
        (Param("project", {"type": "string", "pattern": PROJECT_NAME_PATTERN}, doc="a project to learn one's role in"),)),
    ("GET", API_PREFIX + "/audit"): Operation(
        "The audit log, newest first (the server admin; a project's admins with project=)",
        _obj(entries=_arr(_obj(id=INT, ts=NUM, user=_null(STR), key_id=_null(INT), client=_null(STR), action=STR,
                               project=_null(STR), run_id=_null(STR), detail=ANY)), next=_NEXT),
        (Param("project", {"type": "string", "pattern": PROJECT_NAME_PATTERN}),
         _int("limit", 1, MAX_AUDIT_PAGE, "how many at most"), _int("before", 0, _MAX_INDEX, "entries older than this id"))),
    ("GET", API_PREFIX + "/projects/{project}/members"): Operation("A project's visibility and members", _MEMBERS),
    ("PUT", API_PREFIX + "/projects/{project}/members/{user}"): Operation(
        "Give a user a role in the project (its admins)", _MEMBERS,
        body=_obj(role={"type": "string", "enum": list(ROLES)})),
    ("DELETE", API_PREFIX + "/projects/{project}/members/{user}"): Operation(
        "Remove a member (its admins)", _MEMBERS),
    ("PUT", API_PREFIX + "/projects/{project}/visibility"): Operation(
        "Set the project's visibility (its admins)", _MEMBERS,
        body=_obj(visibility={"type": "string", "enum": list(VISIBILITIES)})),
    ("POST", _RUN_PATH + "/grants"): Operation(
        "Let a key append to the run (its owner or a project admin)",
        _obj(project=STR, run_id=STR, granted=INT), body=_obj(key_id={"type": "integer", "minimum": 1})),
    ("GET", _PROJECT_PATH + "/workspace"): Operation(
        "The asker's own saved workspace and the project's default (each null when none is saved)",
        _obj(project=STR, user=_null(_WORKSPACE_ENTRY), default=_null(_WORKSPACE_ENTRY), version=INT)),
    ("PUT", _PROJECT_PATH + "/workspace/user"): Operation(
        "Save the asker's own workspace (a key or the session cookie; JSON only)", _WORKSPACE_SAVED,
        body=_WORKSPACE),
    ("DELETE", _PROJECT_PATH + "/workspace/user"): Operation(
        "Reset the asker's own workspace: the project default shows again", _WORKSPACE_RESET),
    ("PUT", _PROJECT_PATH + "/workspace/default"): Operation(
        "Save the project's default workspace (its writers and admins, write scope)", _WORKSPACE_SAVED,
        body=_WORKSPACE),
    ("DELETE", _PROJECT_PATH + "/workspace/default"): Operation(
        "Reset the project's default workspace (its writers and admins, write scope)", _WORKSPACE_RESET),
    ("POST", _PROJECT_PATH + "/workspace/views"): Operation(
        "Share a workspace: an immutable snapshot with an id for a URL", _obj(project=STR, id=STR), body=_WORKSPACE),
    ("GET", _PROJECT_PATH + "/workspace/views/{view_id}"): Operation(
        "A shared workspace snapshot (whoever may read the project)",
        {**_WORKSPACE_ENTRY, "required": sorted([*_WORKSPACE_ENTRY["required"], "project", "id"]),
         "properties": {**_WORKSPACE_ENTRY["properties"], "project": STR, "id": STR}}),
    ("GET", API_PREFIX + "/projects/{project}/artifacts/{name}/{ref}"): Operation(
        f"One artifact version's manifest, by vN (N up to {MAX_ARTIFACT_VERSION}) or an alias",
        _obj(name=STR, type=_null(STR), version=INT, digest=STR, aliases=_arr(STR), size=INT, entries=OBJ,
             metadata=OBJ)),
}

_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")


def _template(path: str) -> str:
    """A Starlette path (``{name:path}``) as an OpenAPI path template (``{name}``)."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _api_pairs(routes: list[Route]) -> list[tuple[str, str, Route]]:
    out = []
    for r in routes:
        if not isinstance(r, Route) or not r.path.startswith(API_PREFIX + "/"):
            continue
        for m in sorted(r.methods or ()):
            if m != "HEAD":  # Starlette adds HEAD to every GET
                out.append((m, _template(r.path), r))
    return out


def _path_schema(path: str, name: str) -> dict[str, Any]:
    """A path segment's schema: the very pattern its validator matches (``runfile``, ``vocab``, ``wire``)."""
    if name == "sha256":
        return _SHA
    if name == "project":
        return {"type": "string", "pattern": PROJECT_NAME_PATTERN}
    if name == "run_id":
        return {"type": "string", "pattern": RUN_ID_PATTERN}
    if name == "name" and "/files/" in path:
        return {"type": "string", "maxLength": FILE_NAME_MAX, "pattern": f"^(?:{FILE_NAME_PATTERN})$"}
    if name == "user":
        return {"type": "string", "pattern": USER_NAME_PATTERN}
    if name == "view_id":
        return {"type": "string", "pattern": VIEW_ID_PATTERN}
    if name in ("name", "ref"):  # an artifact's name; a version (vN) or an alias
        return {"type": "string", "pattern": ARTIFACT_NAME_PATTERN}
    raise LookupError(f"no schema for the path parameter {name!r} of {path} (wandblite/server/openapi.py)")


def _empty_is_absent(p: Param) -> bool:
    """Whether an empty value of ``p`` means "not given" (a number: the handlers' ``or default``)."""
    return p.schema.get("type") in ("integer", "number")


def _query_schema(p: Param) -> dict[str, Any]:
    d: dict[str, Any] = {"name": p.name, "in": "query", "required": p.required, "schema": p.schema}
    if _empty_is_absent(p) and not p.required:
        d["allowEmptyValue"] = True
    if p.schema.get("type") == "array":
        d.update(style="form", explode=True)
    if p.doc:
        d["description"] = p.doc
    return d


def _operation(method: str, path: str, op: Operation) -> dict[str, Any]:
    params = [{"name": n, "in": "path", "required": True, "schema": _path_schema(path, n)}
              for n in _PATH_PARAM.findall(path)]
    params += [_query_schema(p) for p in op.params]
    error = {"description": "the one error shape", "content": {"application/json": {"schema": ERROR}}}
    if op.blob:
        blob_content = {t: {"schema": {"type": "string", "format": "binary"}} for t in _BLOB_TYPES}
        responses: dict[str, Any] = {"200": {"description": "the bytes", "content": blob_content},
                                     "206": {"description": "one byte range", "content": blob_content},
                                     "302": {"description": "a presigned URL of the bucket (--s3-presign)"}}
    else:
        responses = {"200": {"description": "success",
                             "content": {"application/json": {"schema": op.answer if op.answer is not None else OBJ}}}}
        for media_type, what in op.also:
            responses["200"]["content"][media_type] = {"schema": {"type": "string", "format": "binary",
                                                                  "description": what}}
    responses["default"] = error
    out: dict[str, Any] = {"operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path[len(API_PREFIX):].lower()).strip('_')}",
                           "summary": op.summary, "parameters": params, "responses": responses}
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
        for media_type, what in op.body_also:
            out["requestBody"]["content"][media_type] = {"schema": {"type": "string", "format": "binary",
                                                                    "description": what}}
    if op.blob_body:
        out["requestBody"] = {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    if not op.auth:
        out["security"] = []
    elif method == "GET" and (path.startswith(_PROJECT_PATH) or path.startswith(API_PREFIX + "/media/{sha256}")):
        # a public project's reads (and its runs' blobs) need no key (``access.py``; docs/roles.md)
        out["security"] = [{"bearer": []}, {"session": []}, {}]
    return out


def build(routes: list[Route], version: str = "") -> dict[str, Any]:
    """The OpenAPI 3 document of the API routes among ``routes`` (``LookupError`` on any drift)."""
    pairs = _api_pairs(routes)
    served = {(m, p) for m, p, _r in pairs}
    undocumented = sorted(served - OPERATIONS.keys())
    unserved = sorted(OPERATIONS.keys() - served)
    if undocumented or unserved:
        raise LookupError(f"the API contract and the route table differ: routes without an operation "
                          f"{undocumented}, operations without a route {unserved} (wandblite/server/openapi.py)")
    paths: dict[str, dict[str, Any]] = {}
    for m, p, _r in pairs:
        paths.setdefault(p, {})[m.lower()] = _operation(m, p, OPERATIONS[(m, p)])
    return {
        "openapi": "3.0.3",
        "info": {"title": "wandblite server API", "version": version or "1",
                 "description": "Sync and read runs (see wandblite/server/PROTOCOL.md). Every error is "
                                "{\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
            "session": {"type": "apiKey", "in": "cookie", "name": "wandblite_session",
                        "description": "a browser session (reads; and a project's members and visibility "
                                       "with the header X-Requested-With: wandblite)"}},
            "schemas": {"Error": ERROR}},
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
    }


# ------------------------------------------------------------------------------ the query check


def _check_value(p: Param, schema: dict[str, Any], raw: str) -> None:
    # The messages are the handlers' own where they had one ("tail must be an integer between 1 and 100000").
    if len(raw) > _MAX_QUERY_TEXT or "\x00" in raw:
        raise bad_request(f"{p.name} must be a text of at most {_MAX_QUERY_TEXT} characters without NUL")
    t = schema.get("type")
    if t == "integer":  # every integer parameter has both bounds (``_int``)
        lo, hi = int(schema["minimum"]), int(schema["maximum"])
        if not re.fullmatch(r"[+-]?[0-9]+", raw.strip()) or not lo <= int(raw) <= hi:
            raise bad_request(f"{p.name} must be an integer between {lo} and {hi}")
    elif t == "number":
        try:
            v = float(raw)
        except ValueError:
            v = math.nan
        if math.isnan(v):
            raise bad_request(f"{p.name} must be a number")
    else:
        if not schema.get("minLength", 0) <= len(raw) <= schema.get("maxLength", _MAX_QUERY_TEXT):
            raise bad_request(f"{p.name} must have {schema.get('minLength', 0)} to "
                              f"{schema.get('maxLength', _MAX_QUERY_TEXT)} characters")
        if "pattern" in schema and re.search(schema["pattern"], raw) is None:
            raise bad_request(f"{p.name} {raw[:40]!r} is not valid" + (f": {p.doc}" if p.doc else ""))


def check_query(op: Operation, query: Any) -> None:
    """400 ``bad_request`` unless the query string (a Starlette ``QueryParams``) fits ``op.params``."""
    for p in op.params:
        values = query.getlist(p.name)
        if values and values[-1] == "" and _empty_is_absent(p):
            values = []  # ?tail= : the handlers read an empty number as its default
        if not values:
            if p.required:
                raise bad_request(f"{p.name} is required" + (f": {p.doc}" if p.doc else ""))
            continue
        if p.schema.get("type") == "array":
            for raw in values:
                _check_value(p, p.schema["items"], raw)
        else:
            _check_value(p, p.schema, values[-1])


def checked(routes: list[Route]) -> list[Route]:
    """``routes`` with every API endpoint preceded by ``check_query`` against its operation."""
    out: list[Route] = []
    for r in routes:
        pairs = _api_pairs([r])
        ops = [OPERATIONS[(m, p)] for m, p, _r in pairs if (m, p) in OPERATIONS]
        if not ops or not any(op.params for op in ops):
            out.append(r)
            continue
        (op,) = ops  # the app gives each route one method
        out.append(Route(r.path, _with_check(r.endpoint, op), methods=[m for m in (r.methods or ()) if m != "HEAD"],
                         name=r.name))
    return out


def _with_check(endpoint: Callable[[Request], Awaitable[Response]], op: Operation,
                ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint_checked(request: Request) -> Response:
        check_query(op, request.query_params)
        return await endpoint(request)

    return endpoint_checked
