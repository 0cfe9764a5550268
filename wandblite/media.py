"""The media blob store: content-addressed bytes for images, videos, audio, tables, ...

What it promises
----------------
* ``MediaStore(run_dir).put(data, ext)`` writes ``data`` with **one** ``os.write`` of a complete
  frame (looping only if the kernel accepts a short write) into an append-only pack file and
  returns a reference ``{"sha256", "size", "blob", "offset"}``. When ``put`` returns, the bytes
  are in the kernel: a SIGKILL of the process cannot lose them. Power loss needs ``fsync()``,
  which the core calls at ``finish`` and periodically. The core writes the run-file record that
  refers to a blob only after ``put`` has returned, so no record ever points at missing or
  half-written bytes.
* The same bytes are stored once per run (dedupe by sha256), including across process restarts:
  the first ``put`` of a process scans the frame headers of the existing packs (headers only, no
  hashing) to rebuild the index.
* Few files: small blobs go into ``<run_dir>/media/pack-NNNNNN.wlpack`` (a new pack after
  ``PACK_ROLLOVER_BYTES``). Blobs larger than ``STANDALONE_MIN_BYTES`` are files of their own,
  ``<run_dir>/media/blobs/<sha256>.<ext>``, written under a temporary name and renamed.
* One writer: the core holds the run directory's lock. A forked child must not write: ``put``
  in a process other than the one that opened the store raises ``DataError``.
* ``put`` is thread-safe.
* The read side (``read_blob``, ``verify``, ``export``, ``MediaValue``, ``wrap_media``,
  ``describe``) never writes to the packs. A torn tail is reported, never raised from a scan;
  reading a blob whose bytes do not hash to the expected sha256 raises ``MediaCorruptionError``.

Pack format (version 1)
-----------------------
Specified in ``wandblite/format/MEDIA_SPEC.md``: the frame layout (magic ``WLB1``, lengths, header
crc32, payload sha256), standalone blobs, the writing rules, what a reader does with a torn tail or
a damaged frame, and how the format is versioned. ``HEADER`` below is the frame header's fixed part.

Logical paths
-------------
History JSON carries wandb's logical path ``media/<subdir>/{key}_{step}_{sha256[:20]}.{ext}``
(see ``wandblite.data_types``). It names the file ``export`` writes; the bytes themselves are
located by ``blob``/``offset`` or, failing that, by sha256.

Imports: stdlib and numpy only at module level; Pillow is imported by ``MediaValue.open``.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from wandblite._fsio import write_all
from wandblite.errors import DataError, Error
from wandblite.vocab import MEDIA_DIR, TYPE_KEY

__all__ = [
    "MediaStore",
    "MediaCorruptionError",
    "MediaNotFoundError",
    "MediaMapping",
    "MediaValue",
    "read_blob",
    "verify",
    "export",
    "wrap_media",
    "describe",
    "iter_refs",
    "MEDIA_FILE_TYPES",
]

MAGIC = b"WLB1"
HEADER = struct.Struct("<4sHHQ32sI")
HEADER_SIZE = HEADER.size  # 52
PACK_ROLLOVER_BYTES = 256 * 1024 * 1024
STANDALONE_MIN_BYTES = 4 * 1024 * 1024
PACK_GLOB = "pack-*.wlpack"

#: ``_type`` values whose dict refers to stored bytes (the ``path``/``sha256`` of one blob).
MEDIA_FILE_TYPES = frozenset(
    {
        "image-file",
        "video-file",
        "audio-file",
        "table-file",
        "object3D-file",
        "molecule-file",
        "html-file",
        "graph-file",
        "boxes2D",
        "mask",
        "chart",
    }
)
#: ``_type`` values of media collections (lists of media).
MEDIA_LIST_TYPES = frozenset({"images/separated", "videos", "audio", "object3D", "molecule"})


class MediaCorruptionError(Error):
    """Stored media bytes do not match their sha256 or their frame is damaged."""


class MediaNotFoundError(Error, FileNotFoundError):
    """No stored bytes for a reference (the blob is absent from every pack and file)."""


def _pack_name(n: int) -> str:
    return f"pack-{n:06d}.wlpack"


def _frame_header(data: bytes, digest: bytes, ext_b: bytes) -> bytes:
    head = struct.pack("<4sHHQ32s", MAGIC, len(ext_b), 0, len(data), digest)
    crc = zlib.crc32(ext_b, zlib.crc32(head))
    return head + struct.pack("<I", crc) + ext_b


class _Frame:
    __slots__ = ("ext", "length", "offset", "payload_offset", "sha256")

    def __init__(self, offset: int, ext: str, length: int, sha256: str, payload_offset: int) -> None:
        self.offset = offset
        self.ext = ext
        self.length = length
        self.sha256 = sha256
        self.payload_offset = payload_offset


def _parse_header(buf: bytes | mmap.mmap, pos: int, size: int) -> tuple[_Frame | None, str]:
    """Parse the frame at ``pos``. Returns (frame, "") or (None, reason); reason "torn" = past EOF."""
    if pos + HEADER_SIZE > size:
        return None, "torn"
    magic, ext_len, _flags, length, digest, crc = HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        return None, "bad magic"
    if pos + HEADER_SIZE + ext_len > size:
        # The crc cannot be checked yet; treat as torn only if the fixed part is plausible.
        return None, "torn"
    ext_b = bytes(buf[pos + HEADER_SIZE : pos + HEADER_SIZE + ext_len])
    if zlib.crc32(ext_b, zlib.crc32(bytes(buf[pos : pos + 48]))) != crc:
        return None, "header crc32 mismatch"
    payload_offset = pos + HEADER_SIZE + ext_len
    frame = _Frame(pos, ext_b.decode("ascii", "replace"), length, digest.hex(), payload_offset)
    if payload_offset + length > size:
        return frame, "torn"
    return frame, ""


def _scan_pack(path: Path, *, hash_payloads: bool) -> tuple[list[_Frame], list[dict[str, Any]]]:
    """All intact frames of one pack, and damage entries (LevelDB style: reported, not raised)."""
    frames: list[_Frame] = []
    damage: list[dict[str, Any]] = []
    rel = f"{MEDIA_DIR}/{path.name}"
    size = path.stat().st_size
    if size == 0:
        return frames, damage
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos = 0
        while pos < size:
            frame, reason = _parse_header(mm, pos, size)
            if reason == "torn":
                if frame is not None:
                    have = size - frame.payload_offset
                    why = f"torn tail: frame holds {frame.length} payload bytes, only {have} present"
                else:
                    why = "torn tail: incomplete frame header"
                damage.append({"file": rel, "offset": pos, "length": size - pos, "reason": why})
                break
            if frame is None:
                nxt = _resync(mm, pos + 1, size)
                end = size if nxt < 0 else nxt
                damage.append(
                    {"file": rel, "offset": pos, "length": end - pos, "reason": f"corrupt frame: {reason}"}
                )
                if nxt < 0:
                    break
                pos = nxt
                continue
            end = frame.payload_offset + frame.length
            if hash_payloads:
                got = hashlib.sha256(mm[frame.payload_offset : end]).hexdigest()
                if got != frame.sha256:
                    damage.append(
                        {
                            "file": rel,
                            "offset": pos,
                            "length": end - pos,
                            "reason": f"sha256 mismatch: frame says {frame.sha256}, bytes hash to {got}",
                        }
                    )
                    pos = end
                    continue
            frames.append(frame)
            pos = end
    return frames, damage


def _resync(mm: mmap.mmap, start: int, size: int) -> int:
    """Offset of the next frame whose header checks (or a torn frame at EOF), else -1."""
    pos = start
    while True:
        pos = mm.find(MAGIC, pos)
        if pos < 0:
            return -1
        frame, reason = _parse_header(mm, pos, size)
        if frame is not None:
            return pos
        if reason == "torn" and pos + HEADER_SIZE > size:
            return pos
        pos += 1


def _media_dir(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / MEDIA_DIR


def _list_packs(media_dir: Path) -> list[Path]:
    if not media_dir.is_dir():
        return []
    return sorted(media_dir.glob(PACK_GLOB))


class MediaStore:
    """Writer of one run's media blobs. See the module docstring for the guarantees."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.media_dir = self.run_dir / MEDIA_DIR
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, Any]] | None = None  # sha256 -> location
        self._fd: int | None = None
        self._pack_no = -1
        self._pack_size = 0
        self._unsynced: list[Path] = []
        self._closed = False

    # -- write side -----------------------------------------------------------------------

    def put(self, data: bytes, ext: str) -> dict[str, Any]:
        """Store ``data`` (once per sha256) and return ``{"sha256", "size", "blob"[, "offset"]}``."""
        if os.getpid() != self._pid:
            raise DataError("media cannot be logged from a forked child process")
        if self._closed:
            raise DataError(f"the media store of {self.run_dir} is closed")
        ext_b = ext.encode("ascii")
        if not ext_b or len(ext_b) > 64:
            raise DataError(f"media file extension {ext!r} must be 1..64 ASCII characters")
        data = bytes(data)
        digest = hashlib.sha256(data).digest()
        sha = digest.hex()
        with self._lock:
            index = self._ensure_index()
            loc = index.get(sha)
            if loc is not None:
                return {"sha256": sha, "size": len(data), **loc}
            if len(data) >= STANDALONE_MIN_BYTES:
                loc = self._put_standalone(data, sha, ext)
            else:
                loc = self._put_packed(data, digest, ext_b)
            index[sha] = loc
            return {"sha256": sha, "size": len(data), **loc}

    def _ensure_index(self) -> dict[str, dict[str, Any]]:
        if self._index is not None:
            return self._index
        index: dict[str, dict[str, Any]] = {}
        packs = _list_packs(self.media_dir)
        clean_tail = True
        for pack in packs:
            frames, damage = _scan_pack(pack, hash_payloads=False)
            for fr in frames:
                index.setdefault(fr.sha256, {"blob": f"{MEDIA_DIR}/{pack.name}", "offset": fr.offset})
            if pack is packs[-1]:
                clean_tail = not damage
        blobs = self.media_dir / "blobs"
        if blobs.is_dir():
            for p in blobs.iterdir():
                sha = p.name.split(".", 1)[0]
                if len(sha) == 64 and not p.name.startswith(".tmp"):
                    index.setdefault(sha, {"blob": f"{MEDIA_DIR}/blobs/{p.name}"})
        if packs:
            last = int(packs[-1].name[5:11])
            size = packs[-1].stat().st_size
            if clean_tail and size < PACK_ROLLOVER_BYTES:
                self._pack_no, self._pack_size = last, size
            else:
                self._pack_no, self._pack_size = last + 1, 0
        else:
            self._pack_no, self._pack_size = 0, 0
        self._index = index
        return index

    def _open_pack(self) -> int:
        if self._fd is None:
            self.media_dir.mkdir(parents=True, exist_ok=True)
            path = self.media_dir / _pack_name(self._pack_no)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._pack_size = os.fstat(self._fd).st_size
            self._unsynced.append(self.media_dir)  # the directory entry of a new pack
        return self._fd

    def _put_packed(self, data: bytes, digest: bytes, ext_b: bytes) -> dict[str, Any]:
        header = _frame_header(data, digest, ext_b)
        if self._fd is not None and self._pack_size + len(header) + len(data) > PACK_ROLLOVER_BYTES:
            self._roll()
        fd = self._open_pack()
        offset = self._pack_size
        try:
            # One write of the whole frame: no user-space buffer holds bytes after we return.
            write_all(fd, header + data)
        except BaseException:
            # A partial frame may be on disk: never append after it, start a new pack.
            self._roll()
            raise
        self._pack_size += len(header) + len(data)
        return {"blob": f"{MEDIA_DIR}/{_pack_name(self._pack_no)}", "offset": offset}

    def _roll(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None
        self._pack_no += 1
        self._pack_size = 0

    def _put_standalone(self, data: bytes, sha: str, ext: str) -> dict[str, Any]:
        blobs = self.media_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        final = blobs / f"{sha}.{ext}"
        rel = f"{MEDIA_DIR}/blobs/{final.name}"
        if final.exists() and final.stat().st_size == len(data):
            return {"blob": rel}
        tmp = blobs / f".tmp-{sha}-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._unsynced.extend([final, blobs])
        return {"blob": rel}

    def fsync(self) -> None:
        """Make every blob written so far durable against power loss."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
            pending, self._unsynced = self._unsynced, []
            for p in dict.fromkeys(pending):
                try:
                    fd = os.open(p, os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.fsync(fd)
                except OSError:
                    pass  # some filesystems refuse fsync on directories
                finally:
                    os.close(fd)

    def close(self) -> None:
        """fsync and close. Further ``put`` calls raise ``DataError``."""
        if self._closed:
            return
        if os.getpid() == self._pid:
            self.fsync()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._closed = True

    def __enter__(self) -> MediaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- read side ------------------------------------------------------------------------------


def _read_frame_at(path: Path, offset: int, sha: str) -> bytes | None:
    """The payload of the frame at ``offset`` if that frame is the one for ``sha``; else None."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(HEADER_SIZE + 64)
        if len(head) < HEADER_SIZE:
            return None
        frame, _reason = _parse_header(head, 0, len(head))  # "torn" here only means "read more"
        if frame is None or frame.sha256 != sha:
            return None
        f.seek(offset + frame.payload_offset)
        payload = f.read(frame.length)
    if len(payload) != frame.length:
        raise MediaCorruptionError(
            f"media blob {sha} in {path} at offset {offset} is torn: "
            f"{len(payload)} of {frame.length} bytes present"
        )
    return payload


def _check(data: bytes, sha: str, where: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        raise MediaCorruptionError(
            f"media blob {where} is corrupt: expected sha256 {sha}, bytes hash to {got}; "
            "run `wandblite verify` on the run directory"
        )
    return data


def read_blob(run_dir: str | os.PathLike[str], ref: Mapping[str, Any]) -> bytes:
    """The bytes of a media reference, verified against its sha256.

    Looks at the ref's ``blob``/``offset`` first, then searches every pack and standalone blob
    by sha256. Raises ``MediaNotFoundError`` if no bytes exist, ``MediaCorruptionError`` if
    the bytes do not hash to ``ref["sha256"]``.
    """
    sha = ref.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise DataError(f"not a media reference (no sha256): {dict(ref)!r}")
    root = Path(run_dir)
    blob = ref.get("blob")
    if isinstance(blob, str) and ".." not in Path(blob).parts:
        path = root / blob
        if path.is_file():
            offset = ref.get("offset")
            where = f"{sha} in {path}"
            if path.name.endswith(".wlpack") and isinstance(offset, int):
                payload = _read_frame_at(path, offset, sha)
                if payload is not None:
                    return _check(payload, sha, f"{where} at offset {offset}")
            elif not path.name.endswith(".wlpack"):
                return _check(path.read_bytes(), sha, where)
    return _find_by_sha(root, sha)


def _find_by_sha(root: Path, sha: str) -> bytes:
    media = _media_dir(root)
    for p in (media / "blobs").glob(f"{sha}.*") if (media / "blobs").is_dir() else []:
        return _check(p.read_bytes(), sha, f"{sha} in {p}")
    for pack in _list_packs(media):
        frames, _ = _scan_pack(pack, hash_payloads=False)
        for fr in frames:
            if fr.sha256 == sha:
                with open(pack, "rb") as f:
                    f.seek(fr.payload_offset)
                    return _check(f.read(fr.length), sha, f"{sha} in {pack} at offset {fr.offset}")
    raise MediaNotFoundError(f"media blob {sha} is not stored under {media}")


def iter_refs(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict with a ``sha256`` and a ``path`` inside a JSON value (depth first)."""
    if isinstance(value, Mapping):
        if isinstance(value.get("sha256"), str) and isinstance(value.get("path"), str):
            yield dict(value)
        for v in value.values():
            yield from iter_refs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_refs(v)


def refs_with_children(run_dir: Path, refs: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """``refs`` plus the refs inside referenced tables (media in table cells)."""
    seen: set[tuple[str, str]] = set()
    stack = [dict(r) for r in refs]
    while stack:
        ref = stack.pop()
        k = (ref["sha256"], ref["path"])
        if k in seen:
            continue
        seen.add(k)
        yield ref
        if ref.get(TYPE_KEY) == "table-file":
            try:
                table = json.loads(read_blob(run_dir, ref))
            except (Error, OSError, ValueError):
                continue
            stack.extend(iter_refs(table.get("data", [])))


def verify(
    run_dir: str | os.PathLike[str], refs: Iterable[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Damage in a run's media: ``[{"file", "offset", "length", "reason"}]``, empty if sound.

    Checks every frame of every pack (header crc32 and payload sha256), every standalone blob
    against the sha256 in its name, and, if ``refs`` (media refs from the history, e.g. from
    ``iter_refs``) are given, that each one's bytes exist and verify.
    """
    root = Path(run_dir)
    media = _media_dir(root)
    damage: list[dict[str, Any]] = []
    for pack in _list_packs(media):
        damage.extend(_scan_pack(pack, hash_payloads=True)[1])
    blobs = media / "blobs"
    if blobs.is_dir():
        for p in sorted(blobs.iterdir()):
            if p.name.startswith(".tmp"):
                continue
            sha = p.name.split(".", 1)[0]
            got = hashlib.sha256(p.read_bytes()).hexdigest()
            if got != sha:
                damage.append(
                    {
                        "file": f"{MEDIA_DIR}/blobs/{p.name}",
                        "offset": 0,
                        "length": p.stat().st_size,
                        "reason": f"sha256 mismatch: bytes hash to {got}",
                    }
                )
    if refs is not None:
        for ref in refs_with_children(root, refs):
            try:
                read_blob(root, ref)
            except (Error, OSError) as e:
                damage.append(
                    {
                        "file": str(ref.get("blob") or ref["path"]),
                        "offset": int(ref.get("offset") or 0),
                        "length": int(ref.get("size") or 0),
                        "reason": f"referenced media {ref['path']} unreadable: {e}",
                    }
                )
    return damage


def _safe_relpath(path: str) -> str:
    parts = [p for p in Path(path.replace("\\", "/")).parts if p not in ("", "/", ".", "..")]
    return "/".join(parts) or "unnamed"


def export(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    refs: Iterable[Mapping[str, Any]] | None = None,
) -> list[str]:
    """Write media out as ordinary files; returns the paths written (relative to ``out_dir``).

    With ``refs`` (the history's media refs, e.g. ``iter_refs(row)`` for every row), each is
    written at its wandb logical path (``media/images/x_0_<sha20>.png``), including media held
    in table cells. Without refs, every stored blob is written as ``media/blobs/<sha256>.<ext>``.
    Unreadable blobs are skipped (``verify`` reports them).
    """
    root, out = Path(run_dir), Path(out_dir)
    written: list[str] = []

    def emit(rel: str, data: bytes) -> None:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        written.append(rel)

    if refs is not None:
        for ref in refs_with_children(root, refs):
            try:
                emit(_safe_relpath(ref["path"]), read_blob(root, ref))
            except (Error, OSError):
                continue
        return written
    media = _media_dir(root)
    for pack in _list_packs(media):
        frames, _ = _scan_pack(pack, hash_payloads=True)
        with open(pack, "rb") as f:
            for fr in frames:
                f.seek(fr.payload_offset)
                emit(f"{MEDIA_DIR}/blobs/{fr.sha256}.{_safe_relpath(fr.ext)}", f.read(fr.length))
    blobs = media / "blobs"
    if blobs.is_dir():
        for p in sorted(blobs.iterdir()):
            if not p.name.startswith(".tmp"):
                emit(f"{MEDIA_DIR}/blobs/{p.name}", p.read_bytes())
    return written


# -- values returned by replay --------------------------------------------------------------


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _ext_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    for compound in ("pts.json", "table.json", "boxes2D.json", "graph.json"):
        if name.endswith("." + compound):
            return compound
    return name.rsplit(".", 1)[-1] if "." in name else ""


def describe(value: Mapping[str, Any]) -> str:
    """A one-line summary of a media JSON value, e.g. ``<image 64x64 png>`` (for ``show``)."""
    t = value.get(TYPE_KEY)
    path = str(value.get("path", ""))
    if t == "image-file":
        return f"<image {value.get('width')}x{value.get('height')} {value.get('format') or _ext_of(path)}>"
    if t == "images/separated":
        return f"<images {value.get('count')}x {value.get('width')}x{value.get('height')} {value.get('format')}>"
    if t == "video-file":
        dims = f" {value['width']}x{value['height']}" if "width" in value else ""
        frames = f" {value['frames']} frames" if "frames" in value else ""
        return f"<video{dims} {_ext_of(path)}{frames}>"
    if t == "videos":
        return f"<videos {value.get('count')}x>"
    if t == "audio-file":
        bits = [_ext_of(path)]
        if "duration" in value:
            bits.append(f"{float(value['duration']):.2f}s")
        if "sample_rate" in value:
            bits.append(f"{value['sample_rate']}Hz")
        return f"<audio {' '.join(bits)}>"
    if t == "audio":
        return f"<audio {value.get('count')}x>"
    if t == "histogram":
        return f"<histogram {len(value.get('values', []))} bins>"
    if t == "table-file":
        return f"<table {value.get('nrows')} rows x {value.get('ncols')} cols>"
    if t == "object3D-file":
        pts = f" {value['points']} points" if "points" in value else ""
        return f"<object3D {_ext_of(path)}{pts}>"
    if t == "object3D":
        return f"<object3D {value.get('count')}x>"
    if t == "molecule-file":
        return f"<molecule {_ext_of(path)}>"
    if t == "molecule":
        return f"<molecule {value.get('count')}x>"
    if t == "html-file":
        return f"<html {_fmt_size(int(value.get('size', 0)))}>"
    if t == "chart":
        title = value.get("title")
        return f"<chart {value.get('kind')}{' ' + repr(title) if title else ''}>"
    if t == "graph-file":
        return f"<graph {value.get('format') or 'torch'} {value.get('nodes', '?')} modules>"
    if t in ("boxes2D", "mask"):
        return f"<{t}>"
    return f"<{t}>"


class MediaMapping(Mapping[str, Any]):
    """A read-only mapping of a media value's JSON; ``MediaValue`` and ``wandblite.api``'s
    ``RemoteMedia`` add the ways to get the bytes (from the run's files, or from a server)."""

    __slots__ = ("_value",)

    def __init__(self, value: Mapping[str, Any]) -> None:
        self._value = dict(value)

    def __getitem__(self, key: str) -> Any:
        return self._value[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def to_dict(self) -> dict[str, Any]:
        """A plain (JSON-able) copy of the value."""
        return json.loads(json.dumps(self._value))

    def _items(self) -> list[Any]:
        """A collection's member values (a list of images, videos, audio or 3D objects; [] for a leaf)."""
        return list(self._value.get(_COLLECTION_ITEMS.get(str(self._value.get(TYPE_KEY)), ""), []))


#: The key under which each collection ``_type`` (what ``log({"k": [img, img]})`` writes) lists its members.
_COLLECTION_ITEMS = {"images/separated": "images", "videos": "videos", "audio": "audio", "object3D": "objects",
                     "molecule": "molecules"}


class MediaValue(MediaMapping):
    """A media leaf of replayed history: a read-only mapping of its JSON plus its bytes.

    ``v["_type"]``, ``v["width"]`` and ``v == {...the JSON dict...}`` work as on the dict.

    * ``bytes()``: the blob, verified against its sha256 (a chart gives its table's JSON bytes).
    * ``path()``: a real file holding the bytes, cached under ``<run_dir>/media/cache/`` at
      the wandb logical path minus its ``media/`` (``media/cache/images/img_0_<sha20>.png``),
      or under a temporary directory if the run dir is read-only.
    * ``open()``: images and GIF videos -> a ``PIL.Image.Image``; tables and charts -> the table
      dict ``{"columns", "data"}``; ``.pts.json`` point clouds -> the parsed JSON; audio ``.wav``
      -> a ``wave.Wave_read``; html -> ``str``; anything else -> a binary file object.
    * ``media()``: for collections (``images/separated``, ``videos``, ``audio``, ``object3D``),
      the member values.
    """

    __slots__ = ("_run_dir",)

    def __init__(self, value: Mapping[str, Any], run_dir: str | os.PathLike[str]) -> None:
        super().__init__(value)
        self._run_dir = Path(run_dir)

    def __repr__(self) -> str:
        return describe(self._value)

    def _ref(self) -> Mapping[str, Any]:
        if self._value.get(TYPE_KEY) == "chart":
            return self._value["table"]  # type: ignore[no-any-return]
        if "sha256" not in self._value:
            raise DataError(f"{describe(self._value)} is a collection: use .media() for its items")
        return self._value

    def media(self) -> list[MediaValue]:
        return [MediaValue(v, self._run_dir) for v in self._items()]

    def bytes(self) -> bytes:
        return read_blob(self._run_dir, self._ref())

    def path(self) -> str:
        ref = self._ref()
        rel = _safe_relpath(str(ref.get("path") or f"{ref['sha256']}"))
        rel = rel[len(MEDIA_DIR) + 1 :] if rel.startswith(MEDIA_DIR + "/") else rel
        for base in (self._run_dir / MEDIA_DIR / "cache", Path(tempfile.gettempdir()) / "wandblite-media"):
            dest = base / rel
            try:
                if dest.is_file() and dest.stat().st_size == ref.get("size"):
                    return str(dest)
                data = self.bytes()
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
                tmp.write_bytes(data)
                os.replace(tmp, dest)
                return str(dest)
            except PermissionError:
                continue
        raise OSError(f"cannot write a cache file for {ref.get('path')}")

    def open(self) -> Any:
        import io

        t = self._value.get(TYPE_KEY)
        ext = _ext_of(str(self._ref().get("path", "")))
        data = self.bytes()
        if t in ("image-file", "mask") or (t == "video-file" and ext == "gif"):
            from PIL import Image as PILImage

            im = PILImage.open(io.BytesIO(data))
            return im
        if t in ("table-file", "chart", "boxes2D", "graph-file") or ext in ("pts.json", "json"):
            return json.loads(data)
        if t == "audio-file" and ext == "wav":
            import wave

            return wave.open(io.BytesIO(data), "rb")
        if t == "html-file":
            return data.decode("utf-8", "replace")
        return io.BytesIO(data)


def wrap_media(value: Any, run_dir: str | os.PathLike[str]) -> Any:
    """``MediaValue`` for a dict whose ``_type`` names stored media; anything else unchanged."""
    if isinstance(value, dict):
        t = value.get(TYPE_KEY)
        if t in MEDIA_FILE_TYPES or t in MEDIA_LIST_TYPES:
            return MediaValue(value, run_dir)
    return value
