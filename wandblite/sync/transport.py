"""How ``wandblite sync`` talks to a store: the ``Transport`` interface, ``HttpTransport``, the sync errors.

Layer 5. The only module of wandblite that imports ``requests``; imports nothing from
``wandblite.server``. The embedded store (no server configured) is reached through
``wandblite.embedded.LocalTransport``, a ``Transport`` defined a layer above both sync and the
server, so that neither of them imports the other.

Every transport has the same four calls and raises the same errors (the sync branch of the one
exception tree, ``wandblite.errors``):

* ``GapError``: the server's position is not where the batch starts (409); carries the position.
* ``RejectedError``: the server refused the request for good (any other 4xx): the run is reported,
  not retried.
* ``UnavailableError``: connection errors, timeouts and 5xx answers, after ``retries`` attempts
  with exponential backoff (0.25 s doubling, at most 8 s between attempts).

Every request is safe to repeat (the protocol is idempotent), so a retry after a lost answer never
duplicates anything.

``HttpTransport`` sends a batch as msgpack (``vocab.BATCH_MSGPACK``: the same object, packed and
parsed several times faster than JSON text of floats), or as JSON when msgpack cannot carry it
exactly (an int beyond 64 bits, a lone surrogate) or the server says so: ``not_json`` (a map key
that is not a string: JSON turns it into one) sends that batch as JSON, and a server that predates
msgpack batches (it answers ``malformed_json`` or 415) gets JSON from then on. Either refusal stores
nothing, so the batch sent again as JSON is the same batch.

``put_media`` takes an open binary file positioned at the blob's first byte and streams it: over
HTTP as the body of one PUT with a ``Content-Length`` (``requests`` reads the file in blocks), each
retry starting again from that first byte; into the embedded store in 1 MiB chunks. A blob is never
read into memory whole. ``max_blob_bytes`` is the store's blob limit once known (the answer of
``missing_media`` carries it; ``None`` before that, or from a server that does not say).
"""

from __future__ import annotations

import json
import os
import time
from typing import IO, Any

from wandblite.errors import Error
from wandblite.vocab import BATCH_MSGPACK, json_text

__all__ = [
    "GapError",
    "HttpTransport",
    "RejectedError",
    "SyncError",
    "Transport",
    "UnavailableError",
    "dumps",
]


class SyncError(Error):
    """Base of the sync errors: a run could not be uploaded (the sync branch of ``wandblite.Error``)."""


class GapError(SyncError):
    def __init__(self, message: str, position: dict[str, Any]) -> None:
        super().__init__(message)
        self.position = position


class RejectedError(SyncError):
    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class UnavailableError(SyncError):
    pass


def dumps(obj: Any) -> str:
    """The wire's JSON (``vocab.json_text``): NaN/Infinity as tokens, as the store writes and reads them."""
    return json_text(obj)


class Transport:
    """The calls sync makes; see the module docstring for the errors."""

    target: str  # names the store, for messages and the sync-state cache
    max_blob_bytes: int | None = None  # the store's blob limit, once known

    def position(self, project: str, run_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def batch(self, project: str, run_id: str, body: Any) -> dict[str, Any]:
        """Apply a batch: its body as a dict, or as ``encode_batch`` gave it."""
        raise NotImplementedError

    def encode_batch(self, body: dict[str, Any]) -> Any:
        """A batch's body as ``batch`` will send it, made ahead (sync encodes the next batch while the
        last one is in flight); the default keeps the dict."""
        return body

    def missing_media(self, shas: list[str]) -> list[str]:
        raise NotImplementedError

    def put_media(self, sha: str, f: IO[bytes], ext: str | None) -> None:
        """Upload the bytes of ``f`` from its current position to its end as blob ``sha``."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Packed(bytes):
    """A batch's body packed as msgpack (``vocab.BATCH_MSGPACK``) by ``HttpTransport.encode_batch``."""


#: What a server answers a msgpack batch it does not take, by error code: True when it never will
#: (it predates msgpack batches and parsed the body as JSON, or refuses the media type).
_REFUSED_MSGPACK = {"not_json": False, "malformed_json": True, "unsupported_media_type": True}


class HttpTransport(Transport):
    def __init__(self, server: str, api_key: str | None, retries: int = 6, timeout: float = 120.0) -> None:
        import requests

        self._requests = requests
        self.base = server.rstrip("/")
        self.target = self.base
        self.retries = max(1, retries)
        self.timeout = timeout
        self.msgpack_batches = True  # until the server shows it does not take them
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "wandblite-sync"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, body: bytes | IO[bytes] | None = None, json_body: bool = True,
              timeout: float | None = None, content_type: str | None = None) -> Any:
        url = self.base + path
        delay = 0.25
        last = ""
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        for attempt in range(self.retries):
            if attempt:
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
            if body is not None and not isinstance(body, bytes):
                body.seek(start)  # a streamed body is sent again from its first byte
            try:
                headers = {"Content-Type": content_type or ("application/json" if json_body else "application/octet-stream")}
                resp = self.session.request(method, url, data=body, headers=headers if body is not None else None,
                                            timeout=(10, timeout or self.timeout))
            except (self._requests.ConnectionError, self._requests.Timeout) as exc:
                last = f"cannot reach {self.base}: {type(exc).__name__}"
                continue
            if resp.status_code >= 500:
                last = f"{self.base} answered {resp.status_code}: {_message(resp)}"
                continue
            if resp.status_code == 409:
                err = _error_obj(resp)
                raise GapError(err.get("message", "gap"), err.get("position") or {})
            if resp.status_code >= 400:
                err = _error_obj(resp)
                raise RejectedError(f"{method} {path}: {resp.status_code} {err.get('message') or resp.reason}",
                                    resp.status_code, str(err.get("code") or "http_error"))
            try:
                return json.loads(resp.content)
            except ValueError:
                last = f"{self.base} answered {resp.status_code} with a body that is not JSON"
                continue
        raise UnavailableError(f"{last} (gave up after {self.retries} attempts)")

    @staticmethod
    def _run_path(project: str, run_id: str) -> str:
        from urllib.parse import quote

        return f"/api/v1/projects/{quote(project, safe='')}/runs/{quote(run_id, safe='')}"

    def position(self, project: str, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", self._run_path(project, run_id) + "/position"))

    def encode_batch(self, body: dict[str, Any]) -> bytes:
        """msgpack (a ``_Packed``) while the server takes it and msgpack carries the body exactly, else JSON."""
        if self.msgpack_batches:
            import msgpack

            try:
                return _Packed(msgpack.packb(body, use_bin_type=True))
            except (OverflowError, UnicodeEncodeError, TypeError, ValueError):
                pass  # an int beyond 64 bits, a lone surrogate: JSON text carries them
        return dumps(body).encode()

    def batch(self, project: str, run_id: str, body: Any) -> dict[str, Any]:
        data = body if isinstance(body, bytes) else self.encode_batch(body)
        path = self._run_path(project, run_id) + "/batch"
        if isinstance(data, _Packed) and self.msgpack_batches:
            try:
                return dict(self._call("POST", path, data, content_type=BATCH_MSGPACK))
            except RejectedError as exc:
                if exc.code not in _REFUSED_MSGPACK:
                    raise
                if _REFUSED_MSGPACK[exc.code]:
                    self.msgpack_batches = False
        if isinstance(data, _Packed):  # refused, or packed ahead before the server refused another
            import msgpack

            data = dumps(msgpack.unpackb(data, raw=False, strict_map_key=False)).encode()
        return dict(self._call("POST", path, data))

    def missing_media(self, shas: list[str]) -> list[str]:
        answer = self._call("POST", "/api/v1/media/missing", dumps({"sha256": shas}).encode())
        limit = answer.get("max_size")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            self.max_blob_bytes = limit
        return list(answer["missing"])

    def put_media(self, sha: str, f: IO[bytes], ext: str | None) -> None:
        from urllib.parse import quote

        q = f"?ext={quote(ext, safe='')}" if ext else ""
        # The server answers after hashing, fsyncing and renaming the blob: give a big one time for that.
        here = f.tell()
        size = f.seek(0, os.SEEK_END) - here
        f.seek(here)
        self._call("PUT", f"/api/v1/media/{sha}{q}", f, json_body=False, timeout=self.timeout + size / (32 << 20))


def _error_obj(resp: Any) -> dict[str, Any]:
    try:
        err = json.loads(resp.content).get("error")
        return err if isinstance(err, dict) else {}
    except (ValueError, AttributeError):
        return {}


def _message(resp: Any) -> str:
    return str(_error_obj(resp).get("message") or resp.reason)

