"""The media index: which content-addressed blobs the store holds, in the ``media`` table and on disk.

Layer 5 (the server). Functions over the store's engines and its media directory (the bytes, a
``blobs.BlobStore``). What it promises:

* ``missing`` answers which of up to 100000 sha256s the client must upload. The file is the truth
  for the bytes: a ``media`` row whose file went missing asks for the bytes again.
* ``put`` stores a blob from byte chunks (``BlobStore.put``: hashed, size-limited by the caller,
  renamed into place only when the hash matches), then records it once with its extension (two
  processes storing the same blob at once both succeed: the loser of the insert finds the row).
* ``path`` finds a stored blob's file and extension; 404 when the row or the file is absent.
* A store without a media directory answers 503 ``no_media_dir`` wherever bytes are needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from wandblite.server.blobs import BlobStore
from wandblite.server.db import retrying
from wandblite.server.errors import ApiError, bad_request, not_found
from wandblite.server.schema import media
from wandblite.server.wire import clean_text, validate_sha256

__all__ = ["missing", "path", "put"]


def _chunks(seq: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _blob_store(media_dir: Path | None) -> BlobStore:
    if media_dir is None:
        raise ApiError(503, "no_media_dir", "this server has no media directory (--media)")
    return BlobStore(media_dir)


def missing(engine: Engine, media_dir: Path | None, shas: Any) -> list[str]:
    """The sha256s of ``shas`` (a list, at most 100000) not stored, in their first order, once each."""
    if not isinstance(shas, list) or len(shas) > 100_000:
        raise bad_request("sha256 must be a list of at most 100000 hashes")
    wanted = [validate_sha256(s) for s in shas]
    blobs = _blob_store(media_dir)
    have: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(sorted(set(wanted)), 500):
            have.update(r[0] for r in conn.execute(sa.select(media.c.sha256).where(media.c.sha256.in_(chunk))))
    # The file is the truth for the bytes: a row whose file went missing asks for the bytes again.
    return [s for s in dict.fromkeys(wanted) if s not in have or not blobs.has(s)]


def put(engine: Engine, media_dir: Path | None, sha: str, chunks: Iterable[bytes], ext: str | None,
        limit: int) -> int:
    """Store a blob of at most ``limit`` bytes after checking its sha256; return its size."""
    validate_sha256(sha)
    size = _blob_store(media_dir).put(sha, chunks, limit)
    ext = clean_text(ext, "ext", 64)

    def index() -> None:
        with engine.begin() as conn:
            if conn.execute(sa.select(media.c.sha256).where(media.c.sha256 == sha)).first() is None:
                conn.execute(media.insert().values(sha256=sha, size=size, ext=ext, created_at=time.time()))

    try:
        retrying(index, f"indexing media blob {sha}")
    except sa.exc.IntegrityError:
        pass  # another process (a replica) indexed the same blob between our look and our insert
    return size


def path(engine: Engine, media_dir: Path | None, sha: str) -> tuple[Path, str | None]:
    """The blob file of a stored sha256 and its extension (404 when absent)."""
    validate_sha256(sha)
    with engine.connect() as conn:
        r = conn.execute(sa.select(media.c.ext).where(media.c.sha256 == sha)).first()
    blobs = _blob_store(media_dir)
    if r is None or not blobs.has(sha):
        raise not_found(f"no media blob {sha}")
    return blobs.path(sha), r[0]
