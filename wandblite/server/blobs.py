"""Blob storage by sha256: the one ``BlobStore`` interface, the local-disk backend, and its settings.

Layer 5; standard library only (the S3 backend lives in ``blobstore_s3``; ``serve.open_blob_store``
picks one for a location). Media blobs, saved files and artifact objects are all content-addressed blobs.

What every backend promises (``tests/server/test_blobstore_contract.py`` runs one test class
against each):

* ``put(sha, chunks, limit)`` consumes the bytes as an iterable of chunks, hashes them as they
  arrive, stops with 413 ``too_large`` as soon as more than ``limit`` bytes have arrived, and makes
  the blob visible under its name only when the hash matches the name (400 ``hash_mismatch``
  otherwise). A reader never sees a partial or wrong blob; a mismatch, a refused size, a client that
  goes away mid-body (the iterable raises) or a storage fault stores nothing and cleans up what the
  attempt wrote before the error leaves ``put``.
* Putting a blob that is already stored is a no-op: the chunks are hashed (and checked, so a wrong
  body is still 400 ``hash_mismatch``) but not written.
* ``open`` streams a stored blob, or ``length`` bytes of it from byte ``start`` (404 when absent); ``exists``, ``size`` and ``delete`` do what they
  say; ``presign`` gives a URL a client may fetch the bytes from directly, or None (the disk, or an
  object store not configured for it); ``local_path`` gives a file to serve, or None.
* A process killed mid-``put`` leaves debris nobody can see (a temporary file, an unfinished
  multipart upload); ``sweep`` removes what has not been written to for ``stale_seconds`` (an upload
  in progress keeps touching its debris), so several servers may share one store.
* A storage fault the caller cannot fix (a full disk, an unreachable or refusing object store) is a
  5xx ``ApiError`` in the server's one error shape, never a bare exception; on the disk
  (``storage_fault``) a full one is 507, one that cannot be written (read-only, permissions) 503,
  each saying what the operator should do.
* The sha256 is validated by the caller (64 lowercase hex digits) before it becomes a path or a key.

``max_blob_bytes`` reads the one setting, ``$WANDBLITE_MAX_BLOB_SIZE``, used by the HTTP server and
the embedded store alike; ``wandblite server --max-blob-size`` overrides it for one server, parsed by
the same ``parse_size``. ``BlobStore.put`` and ``Store.put_media`` take the limit from their caller
and have no default of their own.

Local disk: ``<media>/ab/cd/<sha256>``; an upload is written to ``<media>/tmp/``, fsynced and
renamed into place; every ``put`` sweeps ``tmp/``.
"""

from __future__ import annotations

import abc
import errno
import hashlib
import io
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

from wandblite.server.errors import ApiError, bad_request, not_found

__all__ = ["DEFAULT_MAX_BLOB_BYTES", "STALE_TMP_SECONDS", "S3_SCHEME", "BlobStore", "DiskBlobStore", "checked_chunks",
           "max_blob_bytes", "parse_size", "storage_fault", "verify_sha256"]

#: The largest blob a store accepts unless ``$WANDBLITE_MAX_BLOB_SIZE`` says otherwise: 16 GiB.
DEFAULT_MAX_BLOB_BYTES = 16 << 30
#: An upload's debris untouched this long belongs to an upload that died with its process.
STALE_TMP_SECONDS = 3600.0
#: A ``--media`` location with this prefix is an S3-compatible bucket (``s3://bucket/prefix``).
S3_SCHEME = "s3://"

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


def checked_chunks(chunks: Iterable[bytes], limit: int, h: hashlib._Hash) -> Iterator[bytes]:
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


def verify_sha256(h: hashlib._Hash, sha: str) -> None:
    """400 ``hash_mismatch`` unless the bytes hashed into ``h`` are the blob named ``sha``."""
    if h.hexdigest() != sha:
        raise bad_request(f"the bytes hash to {h.hexdigest()}, not {sha}; nothing was stored", code="hash_mismatch")


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def storage_fault(exc: OSError, location: str, what: str) -> ApiError:
    """The 5xx for a file-system fault of the blob store at ``location``, saying what the operator
    should do: 507 ``insufficient_storage`` when it is full (or a file-size limit was met), 503
    ``storage_read_only`` when it cannot be written, 503 ``storage_unavailable`` otherwise.
    ``what`` says how far the request got (``"with 10 bytes of the blob received; nothing was stored"``)."""
    why = exc.strerror or type(exc).__name__
    if exc.errno in _FULL:
        return ApiError(507, "insufficient_storage", f"the media store {location} is full ({why}) {what}: free "
                                                     "space there or move it to a larger disk (--media), then sync again")
    if exc.errno in _NOT_WRITABLE:
        return ApiError(503, "storage_read_only", f"the media store {location} cannot be written ({why}) {what}: "
                                                  "make it writable by the server's user (or remount it read-write), "
                                                  "then sync again")
    return ApiError(503, "storage_unavailable", f"the media store {location} failed ({why}) {what}: check the disk "
                                                "and the server's log, then sync again")


class BlobStore(abc.ABC):
    """Content-addressed blobs (see the module docstring for what every backend promises).

    Thread-safe: the HTTP app calls one instance from many worker threads at once.
    """

    #: Where the blobs live, for messages (a directory, or ``s3://bucket/prefix``).
    location: str
    #: Debris of an upload untouched this long is swept (``sweep``).
    stale_seconds: float

    @abc.abstractmethod
    def put(self, sha: str, chunks: Iterable[bytes], limit: int) -> int:
        """Store the blob named ``sha`` from ``chunks``; return its size."""

    @abc.abstractmethod
    def exists(self, sha: str) -> bool:
        """Whether the blob is stored (a finished ``put``)."""

    def stored(self, shas: Iterable[str]) -> set[str]:
        """Which of ``shas`` are stored (a backend may ask about several at once)."""
        return {s for s in shas if self.exists(s)}

    @abc.abstractmethod
    def size(self, sha: str) -> int | None:
        """The blob's size in bytes, or None when it is not stored."""

    @abc.abstractmethod
    def open(self, sha: str, start: int = 0, length: int | None = None) -> IO[bytes]:
        """A binary stream of the blob's bytes (close it when done): all of them, or ``length`` (> 0)
        bytes from byte ``start`` (both within the blob); 404 ``not_found`` when absent."""

    @abc.abstractmethod
    def delete(self, sha: str) -> bool:
        """Remove the blob; whether it was there."""

    @abc.abstractmethod
    def sweep(self) -> int:
        """Remove the debris of uploads untouched for ``stale_seconds``; how many were removed."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise ``ApiError`` (5xx) when the store cannot be used at all (checked once at server start)."""

    def presign(self, sha: str, content_type: str, disposition: str | None) -> str | None:
        """A URL serving the blob with these response headers for a while, or None (serve it yourself)."""
        return None

    def local_path(self, sha: str) -> Path | None:
        """The blob's file when it is one on this machine (served as a file), else None."""
        return None

    def read_bytes(self, sha: str) -> bytes:
        with self.open(sha) as f:
            return f.read()


class _Window(io.RawIOBase):
    """At most ``length`` bytes of an open file, from where it stands; closing it closes the file."""

    def __init__(self, f: IO[bytes], length: int) -> None:
        super().__init__()
        self._f, self._left = f, length

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        got = self._f.readinto(memoryview(b)[:n])  # type: ignore[attr-defined]
        self._left -= got
        return int(got)

    def close(self) -> None:
        self._f.close()
        super().close()


class DiskBlobStore(BlobStore):
    """Blobs as files ``<root>/ab/cd/<sha256>`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], stale_seconds: float = STALE_TMP_SECONDS) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.stale_seconds = stale_seconds

    def path(self, sha: str) -> Path:
        # The caller validated sha as 64 hex digits, so it can never climb out of root.
        return self.root / sha[:2] / sha[2:4] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def size(self, sha: str) -> int | None:
        try:
            return self.path(sha).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, sha: str, start: int = 0, length: int | None = None) -> IO[bytes]:
        try:
            f = open(self.path(sha), "rb")
        except FileNotFoundError:
            raise not_found(f"no media blob {sha}")
        except OSError as exc:
            raise storage_fault(exc, self.location, f"reading blob {sha}") from exc
        f.seek(start)
        return f if length is None else cast(IO[bytes], _Window(f, length))

    def local_path(self, sha: str) -> Path | None:
        p = self.path(sha)
        return p if p.is_file() else None

    def delete(self, sha: str) -> bool:
        try:
            os.unlink(self.path(sha))
            return True
        except FileNotFoundError:
            return False

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ApiError(503, "storage_unavailable", f"cannot use the media directory {self.root}: {exc}") from exc

    def put(self, sha: str, chunks: Iterable[bytes], limit: int) -> int:
        final = self.path(sha)
        h = hashlib.sha256()
        if final.is_file():
            size = sum(len(c) for c in checked_chunks(chunks, limit, h))
            verify_sha256(h, sha)
            return size
        tmp_dir = self.root / "tmp"
        tmp = tmp_dir / f"{sha}.{secrets.token_hex(6)}"
        size = 0

        def fs(op: Any, *args: Any) -> Any:
            """A file operation of this upload; its fault (not the body's, a client gone) is the store's."""
            try:
                return op(*args)
            except OSError as exc:
                raise storage_fault(exc, self.location, f"with {size} bytes of the blob received; "
                                                        "nothing was stored") from exc

        try:
            fs(lambda: tmp_dir.mkdir(parents=True, exist_ok=True))
            self.sweep()
            fd = fs(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                for chunk in checked_chunks(chunks, limit, h):
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[fs(os.write, fd, view):]
                verify_sha256(h, sha)
                fs(os.fsync, fd)
            finally:
                os.close(fd)
            fs(lambda: final.parent.mkdir(parents=True, exist_ok=True))
            fs(os.replace, tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return size

    def sweep(self) -> int:
        """Remove temporary files nobody has written to for ``stale_seconds`` (died with their process)."""
        cutoff = time.time() - self.stale_seconds
        try:
            entries = list(os.scandir(self.root / "tmp"))
        except OSError:
            return 0
        removed = 0
        for e in entries:
            try:
                if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(e.path)
                    removed += 1
            except OSError:
                pass  # gone already, or another server's: never a reason to fail an upload
        return removed
