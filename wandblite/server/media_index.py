"""The media index: which content-addressed blobs the store holds, in the ``media`` table and in its blob store.

Layer 5 (the server). Functions over the store's engines and its blob store (the bytes, a
``blobs.BlobStore``: a directory or a bucket). What it promises:

* ``missing`` answers which of up to 100000 sha256s the client must upload. The blob store is the
  truth for the bytes: a ``media`` row whose blob went missing asks for the bytes again.
* ``put`` stores a blob from byte chunks (``BlobStore.put``: hashed, size-limited by the caller,
  visible only when the hash matches), then records it once with its extension (two processes
  storing the same blob at once both succeed: the loser of the insert finds the row). An
  extension that is not plain ASCII (``wire.media_ext``) is stored as none, and a stored one is
  checked again when read, so no stored value can break a later response.
* ``blob`` finds a stored blob: a ``MediaBlob`` (its size and extension, and the ways to serve
  it: a local file, a presigned URL, or a stream); 404 when the row or the bytes are absent.
* A store without a blob store answers 503 ``no_media_dir`` wherever bytes are needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from wandblite.server.blobs import BlobStore
from wandblite.server.db import retrying
from wandblite.server.errors import ApiError, bad_request, not_found
from wandblite.server.schema import media
from wandblite.server.wire import media_ext, validate_sha256

__all__ = ["MediaBlob", "blob", "missing", "put"]


@dataclass(frozen=True)
class MediaBlob:
    """A stored blob: its sha256, size (bytes), extension, and the blob store holding it."""

    sha256: str
    size: int
    ext: str | None
    store: BlobStore

    def open(self, start: int = 0, length: int | None = None) -> IO[bytes]:
        """The bytes (or ``length`` of them from ``start``) as a stream (close it); 404 when they
        vanished since the lookup."""
        return self.store.open(self.sha256, start, length)

    def read_bytes(self) -> bytes:
        return self.store.read_bytes(self.sha256)

    def local_path(self) -> Path | None:
        """The file to serve when the blob is one on this machine, else None."""
        return self.store.local_path(self.sha256)

    def presign(self, content_type: str, disposition: str | None = None) -> str | None:
        """A URL the client may fetch the bytes from directly (``--s3-presign``), else None."""
        return self.store.presign(self.sha256, content_type, disposition)


def _chunks(seq: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _blob_store(blobs: BlobStore | None) -> BlobStore:
    if blobs is None:
        raise ApiError(503, "no_media_dir", "this server has no media directory (--media)")
    return blobs


def missing(engine: Engine, blobs: BlobStore | None, shas: Any) -> list[str]:
    """The sha256s of ``shas`` (a list, at most 100000) not stored, in their first order, once each."""
    if not isinstance(shas, list) or len(shas) > 100_000:
        raise bad_request("sha256 must be a list of at most 100000 hashes")
    wanted = [validate_sha256(s) for s in shas]
    store = _blob_store(blobs)
    have: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(sorted(set(wanted)), 500):
            have.update(r[0] for r in conn.execute(sa.select(media.c.sha256).where(media.c.sha256.in_(chunk))))
    # The blob store is the truth for the bytes: a row whose blob went missing asks for the bytes again.
    present = store.stored(have)
    return [s for s in dict.fromkeys(wanted) if s not in present]


def put(engine: Engine, blobs: BlobStore | None, sha: str, chunks: Iterable[bytes], ext: str | None,
        limit: int) -> int:
    """Store a blob of at most ``limit`` bytes after checking its sha256; return its size."""
    validate_sha256(sha)
    size = _blob_store(blobs).put(sha, chunks, limit)
    ext = media_ext(ext)  # normalised before it is stored: it becomes a file name and a header

    def index() -> None:
        with engine.begin() as conn:
            if conn.execute(sa.select(media.c.sha256).where(media.c.sha256 == sha)).first() is None:
                conn.execute(media.insert().values(sha256=sha, size=size, ext=ext, created_at=time.time()))

    try:
        retrying(index, f"indexing media blob {sha}")
    except sa.exc.IntegrityError:
        pass  # another process (a replica) indexed the same blob between our look and our insert
    return size


def blob(engine: Engine, blobs: BlobStore | None, sha: str) -> MediaBlob:
    """The stored blob named ``sha`` (404 when its row or its bytes are absent)."""
    validate_sha256(sha)
    with engine.connect() as conn:
        r = conn.execute(sa.select(media.c.size, media.c.ext).where(media.c.sha256 == sha)).first()
    store = _blob_store(blobs)
    if r is None or not store.exists(sha):
        raise not_found(f"no media blob {sha}")
    return MediaBlob(sha, int(r[0]), media_ext(r[1]), store)
