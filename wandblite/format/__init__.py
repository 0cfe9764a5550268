"""The run file's framing: a file header, then length- and checksum-framed records.

Layer 0: standard library only. The byte layout is specified in ``SPEC.md`` beside this file;
this module is its only implementation. It knows nothing of what a record *says* (that is
``wandblite.events``): a record here is ``(offset, kind, payload bytes)``.

Promises:

* ``frame(kind, payload)`` returns the exact bytes of one record; the writer hands them to the
  kernel in one ``write``.
* ``RecordReader`` streams records in constant memory (one read buffer of about 1 MiB, more
  only while one record is larger than that), starting at the header or at any record offset.
* A torn tail (an incomplete record at end of file, what a crash mid-``write`` leaves and what a
  live writer is producing right now) ends the scan: it is exposed as ``reader.tail`` and
  ``reader.end_offset`` points at its first byte, where a later scan resumes.
* A damaged record elsewhere is reported as a ``Damage(offset, length, reason)`` to the reporter
  and skipped; reading resumes at the next record whose frame and checksum verify. Arbitrary
  bytes never raise (except ``FormatError`` for a file that is not a run file at all) and never
  hang: each byte is examined a bounded number of times.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple

from wandblite.errors import FormatError

__all__ = [
    "ACCELERATED",
    "FILE_HEADER_SIZE",
    "FILE_MAGIC",
    "FORMAT_VERSION",
    "FRAME_HEADER_SIZE",
    "MAX_RECORD_SIZE",
    "RECORD_MAGIC",
    "Damage",
    "Record",
    "RecordReader",
    "check_file_header",
    "file_header",
    "fold_scalars",
    "frame",
    "frame_log",
    "merge_scalars",
    "update_rows",
]

FILE_MAGIC = b"\x89WLRUN\r\n"
FORMAT_VERSION = 1
_FILE_HDR = struct.Struct("<8sHHI")
FILE_HEADER_SIZE = _FILE_HDR.size  # 16

RECORD_MAGIC = 0xD7
_FRAME = struct.Struct("<BBII")  # magic, kind, payload length, crc32(payload, seed=kind)
FRAME_HEADER_SIZE = _FRAME.size  # 10
MAX_RECORD_SIZE = 64 << 20  # 64 MiB: the writer refuses larger records; the reader calls them damage

_CHUNK = 1 << 20
_BATCH = 512  # records per call into the C scanner: bounds what one window batch holds in memory


def _load_speedups() -> object | None:
    """The optional C accelerator (``wandblite/_speedups.c``), unless absent or switched off."""
    if os.environ.get("WANDBLITE_NO_SPEEDUPS"):
        return None
    try:
        from wandblite import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None
    if getattr(_speedups, "MAX_RECORD_SIZE", None) != MAX_RECORD_SIZE:
        return None  # built from another version of the format: not to be trusted
    return _speedups


_speedups = _load_speedups()
#: ``frame_log(data, ts, step, commit, kind, max_payload)``: a scalar log call framed in C, or None.
frame_log = getattr(_speedups, "frame_log", None)
_scan_c = getattr(_speedups, "scan", None)
#: Fold.fold_records' plain-row fast path in C (``wandblite.fold`` uses it when built), or None
fold_scalars = getattr(_speedups, "fold_scalars", None)
#: ``update_rows(summary, rows)``: ``Fold.add_rows``' summary updates in C (replay hands it in), or None
update_rows = getattr(_speedups, "update_rows", None)
#: ``merge_scalars(writers, kind, rows)``: a shared run's writers logging in step, folded and merged
#: in one pass (``wandblite.replay``), or None
merge_scalars = getattr(_speedups, "merge_scalars", None)
ACCELERATED = _speedups is not None


def file_header(version: int = FORMAT_VERSION, flags: int = 0) -> bytes:
    """The 16 bytes every run file starts with."""
    head = struct.pack("<8sHH", FILE_MAGIC, version, flags)
    return head + struct.pack("<I", zlib.crc32(head))


def check_file_header(data: bytes, path: str = "<run file>") -> int | None:
    """Validate a file's first bytes; return the format version.

    Returns None when ``data`` is a proper prefix of a header (a file whose header write was torn:
    an empty run). Raises ``FormatError`` when the bytes are not a wandblite run file or the
    version is newer than this reader understands.
    """
    if len(data) < FILE_HEADER_SIZE:
        if FILE_MAGIC.startswith(data[:8]):
            return None
        raise FormatError(f"{path}: not a wandblite run file (bad magic at byte 0)")
    magic, version, _flags, crc = _FILE_HDR.unpack_from(data, 0)
    if magic != FILE_MAGIC:
        raise FormatError(f"{path}: not a wandblite run file (bad magic at byte 0)")
    if zlib.crc32(data[:12]) != crc:
        raise FormatError(f"{path}: damaged file header (checksum mismatch in bytes 0-15)")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: run file format version {version} is newer than this wandblite "
            f"understands ({FORMAT_VERSION}); upgrade wandblite to read it"
        )
    return int(version)


def frame(kind: int, payload: bytes) -> bytes:
    """Frame one record: 10 header bytes, then the payload."""
    return _FRAME.pack(RECORD_MAGIC, kind, len(payload), zlib.crc32(payload, kind)) + payload


class Record(NamedTuple):
    """The shape of what ``RecordReader`` yields (it yields plain tuples, for speed)."""

    offset: int  # byte offset of the frame header in the file
    kind: int
    payload: bytes


class Damage(NamedTuple):
    offset: int  # first damaged byte
    length: int  # number of bytes skipped
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"offset": self.offset, "length": self.length, "reason": self.reason}


Reporter = Callable[[Damage], None]


class _Window:
    """A sliding read window over a file: ``data`` holds bytes [base, base + len(data))."""

    __slots__ = ("base", "data", "eof", "f")

    def __init__(self, f: BinaryIO, base: int) -> None:
        self.f = f
        self.base = base
        self.data = b""
        self.eof = False

    def fill(self, keep_from: int, need_end: int) -> None:
        """Drop bytes before ``keep_from``; read until bytes up to ``need_end`` are held or EOF."""
        cut = keep_from - self.base
        if cut > 0:
            self.data = self.data[cut:]
            self.base = keep_from
        parts = [self.data]
        have = self.base + len(self.data)
        want = max(need_end, keep_from + _CHUNK)
        while have < want and not self.eof:
            chunk = self.f.read(max(want - have, _CHUNK))
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        if len(parts) > 1:
            self.data = b"".join(parts)

    @property
    def end(self) -> int:
        return self.base + len(self.data)


class RecordReader:
    """Iterate the records of one run file, from ``start`` (default: just after the header).

    After iteration ``end_offset`` is the offset just past the last good record (the first byte of
    the torn tail when there is one): where a later scan resumes. ``tail`` is the torn tail as a
    ``Damage``, or None. Damage in the middle goes to ``reporter`` and is collected in ``damage``.
    ``kinds``: when given, records of other kinds are verified but not copied out or yielded.
    ``decode_kind``: records of this kind may be yielded already decoded (a list, exactly what
    ``msgpack.unpackb(payload, raw=False, strict_map_key=False, unicode_errors="replace")``
    returns) instead of as payload bytes; callers check ``type(payload) is list``. Only the C
    accelerator does this, and only for flat ``[ts, {str: scalar}, step, commit]`` payloads.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        start: int | None = None,
        reporter: Reporter | None = None,
        kinds: frozenset[int] | None = None,
        decode_kind: int | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.start = start
        self.reporter = reporter
        self.kinds = kinds
        self.decode_kind = -1 if decode_kind is None else decode_kind
        self._mask = None if kinds is None else bytes(1 if k in kinds else 0 for k in range(256))
        self.damage: list[Damage] = []
        self.tail: Damage | None = None
        self.end_offset = start if start is not None else FILE_HEADER_SIZE
        self.version: int | None = None

    def _report(self, d: Damage) -> None:
        self.damage.append(d)
        if self.reporter is not None:
            self.reporter(d)

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:  # (payload may be a list: see decode_kind)
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[tuple[int, int, bytes]]]:
        """The same records as iteration gives, in lists of up to a few hundred (for hot loops)."""
        with open(self.path, "rb", buffering=0) as f:
            yield from self._scan(f)

    def _scan(self, f: BinaryIO) -> Iterator[list[tuple[int, int, bytes]]]:
        head = f.read(FILE_HEADER_SIZE)
        self.version = check_file_header(head, self.path)
        if self.version is None:
            self.end_offset = 0
            if head:
                self.tail = Damage(0, len(head), "torn tail: file header cut short at end of file")
            return
        pos = FILE_HEADER_SIZE if self.start is None else max(self.start, FILE_HEADER_SIZE)
        f.seek(pos)
        w = _Window(f, pos)
        w.fill(pos, pos + _CHUNK)
        unpack = _FRAME.unpack_from
        crc32 = zlib.crc32
        kinds = self.kinds
        hsize = FRAME_HEADER_SIZE
        while True:
            buf = w.data
            n = len(buf)
            i = pos - w.base
            # Fast path: whole, verified records inside the window (in C when it is built).
            while _scan_c is not None:
                batch, i = _scan_c(buf, i, w.base, self._mask, self.decode_kind, _BATCH)
                if batch:
                    yield batch
                if len(batch) < _BATCH:
                    break
            out: list[tuple[int, int, bytes]] = []
            while i + hsize <= n:
                magic, kind, length, crc = unpack(buf, i)
                end = i + hsize + length
                if end > n or magic != RECORD_MAGIC or length == 0 or length > MAX_RECORD_SIZE:
                    break
                if kinds is not None and kind not in kinds:
                    if crc32(memoryview(buf)[i + hsize : end], kind) != crc:
                        break
                else:
                    payload = buf[i + hsize : end]
                    if crc32(payload, kind) != crc:
                        break
                    out.append((w.base + i, kind, payload))
                    if len(out) >= _BATCH:
                        yield out
                        out = []
                i = end
            if out:
                yield out
            pos = w.base + i
            # Slow path: the window ends, or the frame at pos is bad.
            if n - i < hsize:
                if not w.eof:
                    w.fill(pos, pos + hsize)
                    continue
                self.end_offset = pos
                if n > i:
                    self.tail = Damage(pos, n - i, "torn tail: frame header cut short at end of file")
                return
            magic, kind, length, crc = unpack(buf, i)
            sane = magic == RECORD_MAGIC and 0 < length <= MAX_RECORD_SIZE
            if sane and i + hsize + length > n and not w.eof:
                w.fill(pos, pos + hsize + length)  # a record larger than the window
                continue
            if not sane:
                reason = "bad frame header"
            elif i + hsize + length > n:
                reason = "record runs past end of file"
            else:
                reason = "checksum mismatch"
            nxt = _resync(w, pos + 1)
            if nxt is None:
                self.end_offset = pos
                self.tail = Damage(pos, w.end - pos, f"{reason}: torn or garbage tail at end of file")
                return
            self._report(Damage(pos, nxt - pos, reason))
            pos = nxt


def _resync(w: _Window, p: int) -> int | None:
    """The offset of the next verified record at or after ``p``, or None if none before EOF.

    Each byte is examined as a candidate once; the window keeps bytes from the candidate on, so
    memory stays bounded by one (sane-length) record plus a chunk.
    """
    magic_byte = bytes((RECORD_MAGIC,))
    hsize = FRAME_HEADER_SIZE
    while True:
        if w.end - p < hsize and not w.eof:
            w.fill(p, p + _CHUNK)
        k = w.data.find(magic_byte, p - w.base)
        if k == -1:
            if w.eof:
                return None
            p = max(p, w.end - hsize + 1)
            w.fill(p, w.end + _CHUNK)
            continue
        kabs = w.base + k
        if k + hsize > len(w.data):
            if w.eof:
                return None
            w.fill(kabs, kabs + _CHUNK)
            continue
        _magic, kind, length, crc = _FRAME.unpack_from(w.data, k)
        if 0 < length <= MAX_RECORD_SIZE:
            end = k + hsize + length
            if end > len(w.data) and not w.eof:
                w.fill(kabs, kabs + hsize + length)
                continue
            if end <= len(w.data) and zlib.crc32(memoryview(w.data)[k + hsize : end], kind) == crc:
                return kabs
        p = kabs + 1
