"""Media blobs on local disk, addressed by sha256: ``<media>/ab/cd/<sha256>``.

Layer 5; standard library only. What it promises:

* ``BlobStore.put`` consumes the bytes as an iterable of chunks and never holds more than one chunk:
  it writes them to a temporary file in ``<media>/tmp/``, hashes them as they arrive, stops with
  413 ``too_large`` as soon as more than ``limit`` bytes have arrived, fsyncs, and renames the file
  into place only when the hash matches the name. A reader never sees a partial or wrong blob; a
  mismatch, a refused size, a client that goes away mid-body (the iterable raises) or a full disk
  stores nothing and removes the temporary file before the error leaves ``put``.
* Putting a blob that is already stored is a no-op: the chunks are hashed (and checked, so a wrong
  body is still 400 ``hash_mismatch``) but not written.
* A process killed mid-``put`` leaves one temporary file; any later ``put`` removes temporary files
  nobody has written to for ``STALE_TMP_SECONDS`` (an upload in progress touches its file with
  every chunk), so several servers may share one media directory.
* The sha256 is validated by the caller (64 lowercase hex digits) before it becomes a path.

``max_blob_bytes`` reads the one setting, ``$WANDBLITE_MAX_BLOB_SIZE``, used by the HTTP server and
the embedded store alike; ``wandblite server --max-blob-size`` overrides it for one server, parsed by
the same ``parse_size``. ``BlobStore.put`` and ``Store.put_media`` take the limit from their caller
and have no default of their own.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from wandblite.server.errors import ApiError, bad_request

__all__ = ["DEFAULT_MAX_BLOB_BYTES", "STALE_TMP_SECONDS", "BlobStore", "max_blob_bytes", "parse_size"]

#: The largest blob a store accepts unless ``$WANDBLITE_MAX_BLOB_SIZE`` says otherwise: 16 GiB.
DEFAULT_MAX_BLOB_BYTES = 16 << 30
#: A temporary file untouched this long belongs to an upload that died with its process.
STALE_TMP_SECONDS = 3600.0

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:([KMGT])(?:I?B)?|B)?\s*$", re.IGNORECASE)
_UNITS = {"K": 10, "M": 20, "G": 30, "T": 40}


def parse_size(raw: str, what: str = "WANDBLITE_MAX_BLOB_SIZE") -> int:
    """A size in bytes from ``17179869184``, ``500M``, ``16G`` or ``1TiB`` (powers of 1024).

    Raises ``ValueError`` naming ``what`` (the variable the text came from; "" for none) when
    ``raw`` is not a positive size.
    """
    m = _SIZE_RE.match(raw)
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"{what + '=' if what else ''}{raw.strip()!r} is not a size: use bytes (17179869184) or a number with "
                         "K, M, G or T (16G; powers of 1024)")
    return int(m.group(1)) << _UNITS.get((m.group(2) or "").upper(), 0)


def max_blob_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The blob size limit: ``$WANDBLITE_MAX_BLOB_SIZE`` (``parse_size``), else ``DEFAULT_MAX_BLOB_BYTES``.

    ``wandblite server --max-blob-size`` overrides it for that server (``create_app``'s argument).
    Raises ``ValueError`` naming the variable when the value is not such a size.
    """
    raw = (os.environ if environ is None else environ).get("WANDBLITE_MAX_BLOB_SIZE", "").strip()
    return parse_size(raw) if raw else DEFAULT_MAX_BLOB_BYTES


def _checked(chunks: Iterable[bytes], limit: int, h: hashlib._Hash) -> Iterator[bytes]:
    """``chunks``, hashed into ``h``; 413 as soon as they add up to more than ``limit`` bytes."""
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the media blob is larger than this server's limit of {limit} bytes "
                                             "(--max-blob-size or $WANDBLITE_MAX_BLOB_SIZE on the server); "
                                             "nothing was stored")
        h.update(chunk)
        yield chunk


class BlobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        # The caller validated sha as 64 hex digits, so it can never climb out of root.
        return self.root / sha[:2] / sha[2:4] / sha

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, sha: str, chunks: Iterable[bytes], limit: int) -> int:
        """Store the blob named ``sha`` from ``chunks`` (see the module docstring); return its size."""
        final = self.path(sha)
        h = hashlib.sha256()
        if final.is_file():
            size = sum(len(c) for c in _checked(chunks, limit, h))
            self._verify(h, sha)
            return size
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.sweep(tmp_dir)
        tmp = tmp_dir / f"{sha}.{secrets.token_hex(6)}"
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                for chunk in _checked(chunks, limit, h):
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                self._verify(h, sha)
                os.fsync(fd)
            finally:
                os.close(fd)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ApiError(507, "insufficient_storage", f"the media directory is full ({exc.strerror}) after "
                                                            f"{size} bytes; nothing was stored") from exc
            raise
        return size

    @staticmethod
    def _verify(h: hashlib._Hash, sha: str) -> None:
        if h.hexdigest() != sha:
            raise bad_request(f"the bytes hash to {h.hexdigest()}, not {sha}; nothing was stored", code="hash_mismatch")

    @staticmethod
    def sweep(tmp_dir: Path, max_age: float = STALE_TMP_SECONDS) -> None:
        """Remove temporary files nobody has written to for ``max_age`` seconds (died with their process)."""
        cutoff = time.time() - max_age
        try:
            entries = list(os.scandir(tmp_dir))
        except OSError:
            return
        for e in entries:
            try:
                if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(e.path)
            except OSError:
                pass  # gone already, or another server's: never a reason to fail an upload
