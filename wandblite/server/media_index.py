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
* ``media_refs`` says which run names which blob (``add_refs``, in the writer's transaction): the
  sha256s of the media values in its history rows (``row_shas``: only rows with typed values are
  looked at, so a media-free batch costs nothing), of the files it saved and of the blob-store files
  of the artifact versions it logged. ``backfill_refs`` builds it for a store made before it
  (migration ``0012_media_refs``), one run per transaction, resumably. A blob named only inside
  another blob (a table's images) is not looked for.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from wandblite.server.blobs import BlobStore
from wandblite.server.chunks import CHUNK_SHIFT, decode_rows
from wandblite.server.db import loads, retrying
from wandblite.server.errors import ApiError, bad_request, not_found
from wandblite.server.schema import (
    artifacts,
    history_chunks,
    history_pending,
    media,
    media_refs,
    media_rows,
    run_artifacts,
    run_files,
    runs,
)
from wandblite.server.wire import media_ext, validate_sha256

__all__ = ["MediaBlob", "add_refs", "backfill_refs", "blob", "missing", "put", "row_shas", "run_refs", "shas_in"]

_SHA = re.compile(r"\b[0-9a-f]{64}\b")


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


# --------------------------------------------------------------------------- which run names which blob


def shas_in(texts: Iterable[str]) -> set[str]:
    """Every sha256 (64 lowercase hex digits standing alone) the texts name."""
    out: set[str] = set()
    for t in texts:
        out.update(_SHA.findall(t))
    return out


def row_shas(rows: Iterable[Any]) -> set[str]:
    """The sha256s the media values of history rows (``wire.Row``) name; rows without one are skipped."""
    return shas_in((r.template if r.final else (r.text or r.template)) for r in rows if r.media)


def add_refs(conn: Connection, pk: int, shas: Iterable[str]) -> None:
    """Record that run ``pk`` names each of ``shas`` (those already recorded are left alone)."""
    wanted = sorted(set(shas))
    if not wanted:
        return
    have: set[str] = set()
    for chunk in _chunks(wanted, 500):
        have.update(str(s) for (s,) in conn.execute(sa.select(media_refs.c.sha256).where(
            media_refs.c.run == pk, media_refs.c.sha256.in_(chunk))))
    new = [{"run": pk, "sha256": s} for s in wanted if s not in have]
    for i in range(0, len(new), 5000):
        conn.execute(media_refs.insert(), new[i:i + 5000])


def run_refs(conn: Connection, pk: int) -> set[str]:
    """The sha256s run ``pk`` names (its ``media_refs``)."""
    return {str(s) for (s,) in conn.execute(sa.select(media_refs.c.sha256).where(media_refs.c.run == pk))}


def _named_by_records(conn: Connection, pk: int) -> set[str]:
    """What run ``pk``'s stored records name, read from the records themselves (for ``backfill_refs``):
    the chunks holding its media rows, its provisional row, its saved files, its artifact versions."""
    found: set[str] = set()
    chunk = media_rows.c.idx // (1 << CHUNK_SHIFT)
    for (c,) in conn.execute(sa.select(chunk.label("chunk")).where(media_rows.c.run == pk).distinct()):
        data = conn.execute(sa.select(history_chunks.c.data).where(
            history_chunks.c.run == pk, history_chunks.c.chunk == int(c))).scalar()
        if data is not None:
            found |= shas_in(decode_rows(0, data).templates)
    found |= shas_in(t for (t,) in conn.execute(sa.select(history_pending.c.row).where(history_pending.c.run == pk)))
    found |= {str(s) for (s,) in conn.execute(sa.select(run_files.c.sha256).where(
        run_files.c.run == pk, run_files.c.lost == sa.false()))}
    q = sa.select(artifacts.c.manifest).join(run_artifacts, run_artifacts.c.artifact == artifacts.c.id).where(
        run_artifacts.c.run == pk)
    for (manifest,) in conn.execute(q):
        entries = loads(manifest) or {}
        if isinstance(entries, dict):
            found |= {str(e["sha256"]) for e in entries.values() if isinstance(e, dict) and "ref" not in e
                      and isinstance(e.get("sha256"), str) and _SHA.fullmatch(e["sha256"])}
    return found


def backfill_refs(engine: Engine, lock: Callable[[Connection], None], progress: Callable[[str], None]) -> None:
    """Build ``media_refs`` from the stored records of every run that has none yet, one run per
    transaction (under the migration ``lock``): a restart, or a second server, goes on from there."""
    with engine.begin() as conn:
        lock(conn)
        media_refs.create(conn, checkfirst=True)
        has_refs = sa.exists().where(media_refs.c.run == runs.c.id)
        names_some = sa.or_(*(sa.exists().where(t.c.run == runs.c.id)
                              for t in (media_rows, history_pending, run_files, run_artifacts)))
        todo = [int(pk) for (pk,) in conn.execute(
            sa.select(runs.c.id).where(names_some, ~has_refs).order_by(runs.c.id))]
    for n, pk in enumerate(todo, 1):
        with engine.begin() as conn:
            lock(conn)
            if conn.execute(sa.select(media_refs.c.run).where(media_refs.c.run == pk).limit(1)).first():
                continue  # another process did this run
            add_refs(conn, pk, _named_by_records(conn, pk))
        if n % 100 == 0 or n == len(todo):
            progress(f"indexing which run names which media blob: run {n}/{len(todo)}")
