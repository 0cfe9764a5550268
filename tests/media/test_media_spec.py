"""wandblite/format/MEDIA_SPEC.md, byte for byte: frames built by hand from the document alone
(``struct``, ``zlib``, ``hashlib``; nothing from ``wandblite.media``'s internals) are what the
store writes, and what it reads."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

from wandblite import media
from wandblite.media import MediaStore, read_blob, verify

SPEC = Path(media.__file__).resolve().parent / "format" / "MEDIA_SPEC.md"


def frame(payload: bytes, ext: str, flags: int = 0) -> bytes:
    """One frame as the spec's table lays it out."""
    e = ext.encode("ascii")
    fixed = b"WLB1" + struct.pack("<HHQ", len(e), flags, len(payload)) + hashlib.sha256(payload).digest()
    crc = zlib.crc32(fixed + e)
    return fixed + struct.pack("<I", crc) + e + payload


def test_the_store_writes_exactly_the_frames_the_spec_describes(run_dir: Path) -> None:
    with MediaStore(run_dir) as store:
        a = store.put(b"first blob", "png")
        b = store.put(b"second", "table.json")
    expected = frame(b"first blob", "png") + frame(b"second", "table.json")
    assert (run_dir / "media" / "pack-000000.wlpack").read_bytes() == expected
    assert a == {
        "sha256": hashlib.sha256(b"first blob").hexdigest(),
        "size": 10,
        "blob": "media/pack-000000.wlpack",
        "offset": 0,
    }
    assert b["offset"] == len(frame(b"first blob", "png"))  # no file header, no padding


def test_a_hand_built_pack_reads_back_and_verifies(run_dir: Path) -> None:
    payloads = [(b"x" * 100, "bin"), (b"", "txt"), (b"\x89PNG...", "png")]
    (run_dir / "media").mkdir()
    (run_dir / "media" / "pack-000000.wlpack").write_bytes(b"".join(frame(p, e) for p, e in payloads))
    assert verify(run_dir) == []
    for p, _ext in payloads:
        assert read_blob(run_dir, {"sha256": hashlib.sha256(p).hexdigest()}) == p


def test_flags_are_ignored_when_read(run_dir: Path) -> None:
    (run_dir / "media").mkdir()
    (run_dir / "media" / "pack-000000.wlpack").write_bytes(frame(b"hint", "bin", flags=0x8001))
    assert verify(run_dir) == []
    assert read_blob(run_dir, {"sha256": hashlib.sha256(b"hint").hexdigest()}) == b"hint"


def test_a_frame_of_another_version_is_reported_as_damage_never_misread(run_dir: Path) -> None:
    v1 = frame(b"old", "bin")
    v2 = b"WLB2" + frame(b"new", "bin")[4:]
    (run_dir / "media").mkdir()
    (run_dir / "media" / "pack-000000.wlpack").write_bytes(v2 + v1)
    damage = verify(run_dir)
    assert [(d["offset"], d["length"], d["reason"]) for d in damage] == [
        (0, len(v2), "corrupt frame: bad magic")
    ]
    assert read_blob(run_dir, {"sha256": hashlib.sha256(b"old").hexdigest()}) == b"old"
    with pytest.raises(media.MediaNotFoundError):
        read_blob(run_dir, {"sha256": hashlib.sha256(b"new").hexdigest()})


def test_a_standalone_blob_is_the_bare_bytes_named_by_their_sha256(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "STANDALONE_MIN_BYTES", 16)
    data = b"a large blob, unframed"
    with MediaStore(run_dir) as store:
        ref = store.put(data, "mp4")
    sha = hashlib.sha256(data).hexdigest()
    assert ref == {"sha256": sha, "size": len(data), "blob": f"media/blobs/{sha}.mp4"}
    assert (run_dir / "media" / "blobs" / f"{sha}.mp4").read_bytes() == data


def test_the_specs_numbers_are_the_codes() -> None:
    text = SPEC.read_text()
    assert media.MAGIC == b"WLB1" and "`WLB1`" in text
    assert media.HEADER_SIZE == 52 and "| 52+E" in text
    assert media.STANDALONE_MIN_BYTES == 4 * 1024 * 1024 and "at least 4 MiB" in text
    assert media.PACK_ROLLOVER_BYTES == 256 * 1024 * 1024 and "past 256 MiB" in text
