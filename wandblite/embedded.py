"""The embedded store as a sync destination: ``LocalTransport`` joins ``wandblite.sync`` with ``wandblite.server``.

Layer 6: the one place where the sync client and the server's store meet, so that neither
``wandblite.sync`` nor ``wandblite.server`` imports the other. ``wandblite sync`` with no server
configured writes through ``LocalTransport`` straight into the store at ``$WANDBLITE_HOME`` (or
``~/.wandblite``), calling the very code the HTTP server runs (``Store.position``,
``Store.apply_batch``, ``Store.missing_media``, ``Store.put_media``).

It promises what every ``wandblite.sync.transport.Transport`` promises: the store's ``ApiError``
answers become the sync errors an HTTP server's answers become (409 -> ``GapError`` with the
store's position, any other -> ``RejectedError`` with its status and code); blobs are streamed in
1 MiB chunks, never read into memory whole; the blob limit is the server's setting
(``$WANDBLITE_MAX_BLOB_SIZE``, read by ``wandblite.server.blobs.max_blob_bytes``).

Importing this module imports the server's store (SQLAlchemy: the ``server`` extra); the CLI
imports it only when no server is configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from wandblite.server.blobs import max_blob_bytes
from wandblite.server.errors import ApiError
from wandblite.server.store import Store
from wandblite.sync.transport import GapError, RejectedError, Transport
from wandblite.vocab import home_dir

__all__ = ["LocalTransport"]

_T = TypeVar("_T")
_CHUNK = 1 << 20  # bytes handed to the store at a time


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


class LocalTransport(Transport):
    """Straight into the embedded store at ``home`` (``$WANDBLITE_HOME`` or ``~/.wandblite``)."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        h = Path(home) if home is not None else home_dir()
        self.store = Store.embedded(h)
        self.target = f"embedded:{h.resolve()}"

    def close(self) -> None:
        self.store.close()

    @staticmethod
    def _guard(fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return fn(*args)
        except ApiError as exc:
            if exc.status == 409:
                raise GapError(exc.message, exc.extra.get("position") or {})
            raise RejectedError(exc.message, exc.status, exc.code)

    def position(self, project: str, run_id: str) -> dict[str, Any]:
        return dict(self._guard(self.store.position, project, run_id))

    def batch(self, project: str, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._guard(self.store.apply_batch, project, run_id, body))

    @staticmethod
    def _limit() -> int:
        try:
            return max_blob_bytes()  # the server's setting holds for the embedded store
        except ValueError as exc:
            raise RejectedError(str(exc)) from None

    def missing_media(self, shas: list[str]) -> list[str]:
        self.max_blob_bytes = self._limit()
        return list(self._guard(self.store.missing_media, shas))

    def put_media(self, sha: str, f: IO[bytes], ext: str | None) -> None:
        self._guard(self.store.put_media, sha, _chunks(f), ext, self._limit())
