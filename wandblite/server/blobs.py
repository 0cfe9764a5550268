"""Media blobs on local disk, addressed by sha256: ``<media>/ab/cd/<sha256>``.

Layer 5; standard library only. ``BlobStore.put`` writes the bytes to a temporary file in
``<media>/tmp/``, hashes them as they arrive, fsyncs, and renames the file into place only when the
hash matches the name: a reader never sees a partial or wrong blob, a crash leaves at most a
temporary file (removed by the next ``put`` of the same process, harmless otherwise), and a
mismatch stores nothing. Writing the same sha256 twice is harmless (same bytes, atomic rename).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from wandblite.server.errors import ApiError, bad_request

__all__ = ["BlobStore"]


class BlobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        # The caller validated sha as 64 hex digits, so it can never climb out of root.
        return self.root / sha[:2] / sha[2:4] / sha

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, sha: str, chunks: Iterable[bytes], limit: int) -> int:
        final = self.path(sha)
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{sha}.{secrets.token_hex(6)}"
        h = hashlib.sha256()
        size = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, "too_large", f"media blob larger than {limit} bytes")
                    h.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                if h.hexdigest() != sha:
                    raise bad_request(f"the bytes hash to {h.hexdigest()}, not {sha}; nothing was stored",
                                      code="hash_mismatch")
                os.fsync(fd)
            finally:
                os.close(fd)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return size
