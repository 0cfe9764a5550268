"""MediaStore: durability framing, dedupe, few files, damage detection, fork guard, read side."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from wandblite import media
from wandblite.data_types import Image, Table
from wandblite.errors import DataError
from wandblite.media import (
    MediaCorruptionError,
    MediaNotFoundError,
    MediaStore,
    MediaValue,
    describe,
    export,
    iter_refs,
    read_blob,
    verify,
    wrap_media,
)


def test_put_returns_sha_size_and_location_and_reads_back(store: MediaStore, run_dir: Path) -> None:
    ref = store.put(b"hello", "txt")
    assert ref["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert ref["size"] == 5
    assert ref["blob"] == "media/pack-000000.wlpack"
    assert ref["offset"] == 0
    assert read_blob(run_dir, ref) == b"hello"


def test_bytes_are_in_the_file_when_put_returns(store: MediaStore, run_dir: Path) -> None:
    ref = store.put(b"x" * 1000, "bin")
    # Read through a separate file handle, without close/fsync: nothing is held in user space.
    data = (run_dir / ref["blob"]).read_bytes()
    assert b"x" * 1000 in data


def test_same_bytes_twice_are_stored_once(store: MediaStore, run_dir: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    a = Image(arr).to_json(store, "img", 0)
    size_after_one = (run_dir / "media" / "pack-000000.wlpack").stat().st_size
    b = Image(arr).to_json(store, "img", 1)
    assert a["sha256"] == b["sha256"]
    assert (run_dir / "media" / "pack-000000.wlpack").stat().st_size == size_after_one
    assert a["path"] != b["path"]  # the logical name carries the step, as in wandb


def test_dedupe_survives_a_process_restart(run_dir: Path) -> None:
    s1 = MediaStore(run_dir)
    r1 = s1.put(b"same bytes", "bin")
    s1.close()
    s2 = MediaStore(run_dir)
    r2 = s2.put(b"same bytes", "bin")
    r3 = s2.put(b"new bytes", "bin")
    s2.close()
    assert r2 == r1
    assert read_blob(run_dir, r3) == b"new bytes"
    assert len(list((run_dir / "media").glob("*.wlpack"))) == 1


def test_1000_small_images_create_a_handful_of_files(store: MediaStore, run_dir: Path) -> None:
    rng = np.random.default_rng(1)
    before = sum(len(f) + len(d) for _, d, f in os.walk(run_dir))
    refs = [Image(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).to_json(store, "i", n) for n in range(1000)]
    store.fsync()
    after = sum(len(f) + len(d) for _, d, f in os.walk(run_dir))
    assert after - before <= 3
    assert read_blob(run_dir, refs[500]) and verify(run_dir, refs) == []


def test_large_blob_is_a_file_of_its_own(store: MediaStore, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "STANDALONE_MIN_BYTES", 1000)
    ref = store.put(b"v" * 5000, "mp4")
    assert ref["blob"] == f"media/blobs/{ref['sha256']}.mp4"
    assert "offset" not in ref
    assert read_blob(run_dir, ref) == b"v" * 5000
    assert store.put(b"v" * 5000, "mp4") == ref
    assert not [p for p in (run_dir / "media" / "blobs").iterdir() if p.name.startswith(".tmp")]


def test_torn_pack_tail_is_reported_and_earlier_blobs_still_read(run_dir: Path) -> None:
    s = MediaStore(run_dir)
    refs = [s.put(bytes([i]) * 300, "bin") for i in range(5)]
    s.close()
    pack = run_dir / refs[-1]["blob"]
    with open(pack, "r+b") as f:
        f.truncate(refs[-1]["offset"] + 100)  # cut the last blob mid-payload
    damage = verify(run_dir)
    assert len(damage) == 1
    d = damage[0]
    assert d["file"] == "media/pack-000000.wlpack" and d["offset"] == refs[-1]["offset"]
    assert d["length"] == 100 and "torn tail" in d["reason"]
    for i, ref in enumerate(refs[:-1]):
        assert read_blob(run_dir, ref) == bytes([i]) * 300
    with pytest.raises(MediaCorruptionError, match="torn"):
        read_blob(run_dir, refs[-1])


def test_writer_after_a_torn_tail_starts_a_new_pack(run_dir: Path) -> None:
    s = MediaStore(run_dir)
    refs = [s.put(bytes([i]) * 300, "bin") for i in range(3)]
    s.close()
    with open(run_dir / refs[-1]["blob"], "r+b") as f:
        f.truncate(refs[-1]["offset"] + 10)
    s2 = MediaStore(run_dir)
    again = s2.put(bytes([2]) * 300, "bin")  # the torn blob is not in the index: written anew
    dup = s2.put(bytes([0]) * 300, "bin")
    s2.close()
    assert again["blob"] == "media/pack-000001.wlpack"
    assert dup == refs[0]
    assert read_blob(run_dir, again) == bytes([2]) * 300
    assert [d["reason"].split(":")[0] for d in verify(run_dir)] == ["torn tail"]


def test_flipped_payload_byte_is_detected_by_sha256(store: MediaStore, run_dir: Path) -> None:
    refs = [store.put(bytes([i]) * 200, "bin") for i in range(3)]
    pack = run_dir / refs[1]["blob"]
    raw = bytearray(pack.read_bytes())
    raw[refs[1]["offset"] + media.HEADER_SIZE + 3 + 50] ^= 0xFF
    pack.write_bytes(bytes(raw))
    with pytest.raises(MediaCorruptionError, match="expected sha256"):
        read_blob(run_dir, refs[1])
    assert read_blob(run_dir, refs[2]) == bytes([2]) * 200
    damage = verify(run_dir)
    assert [d["offset"] for d in damage] == [refs[1]["offset"]]
    assert "sha256 mismatch" in damage[0]["reason"]


def test_flipped_header_byte_is_skipped_and_later_frames_found(store: MediaStore, run_dir: Path) -> None:
    refs = [store.put(bytes([i]) * 200, "bin") for i in range(3)]
    pack = run_dir / refs[1]["blob"]
    raw = bytearray(pack.read_bytes())
    raw[refs[1]["offset"] + 10] ^= 0x01  # inside the length field
    pack.write_bytes(bytes(raw))
    damage = verify(run_dir)
    assert len(damage) == 1 and "crc32" in damage[0]["reason"]
    assert damage[0]["offset"] == refs[1]["offset"]
    assert damage[0]["length"] == refs[2]["offset"] - refs[1]["offset"]
    assert read_blob(run_dir, {"sha256": refs[2]["sha256"]}) == bytes([2]) * 200  # found by scanning


def test_missing_blob_raises_not_found(run_dir: Path) -> None:
    with pytest.raises(MediaNotFoundError) as e:
        read_blob(run_dir, {"sha256": "0" * 64, "path": "media/images/x.png"})
    assert isinstance(e.value, FileNotFoundError)


def test_verify_reports_referenced_but_missing_media(store: MediaStore, run_dir: Path) -> None:
    ok = store.put(b"ok", "bin")
    gone = {"sha256": "1" * 64, "path": "media/images/gone.png", "size": 3}
    damage = verify(run_dir, [{**ok, "path": "media/x.bin"}, gone])
    assert len(damage) == 1 and "gone.png" in damage[0]["reason"]


def test_forked_child_cannot_put(store: MediaStore) -> None:
    store.put(b"parent", "bin")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            store.put(b"child", "bin")
            msg = b"wrote"
        except DataError as e:
            msg = str(e).encode()
        except BaseException as e:
            msg = repr(e).encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as f:
        got = f.read().decode()
    assert got == "media cannot be logged from a forked child process"


def test_put_after_close_raises(run_dir: Path) -> None:
    s = MediaStore(run_dir)
    s.close()
    with pytest.raises(DataError):
        s.put(b"x", "bin")


def test_export_writes_logical_paths_including_table_cells(store: MediaStore, run_dir: Path, tmp_path: Path) -> None:
    img = Image(np.zeros((4, 5, 3), np.uint8), caption="c")
    t = Table(columns=["id", "img"], data=[[1, Image(np.full((2, 2), 7, np.uint8))]])
    row = {"a": img.to_json(store, "a", 0), "t": t.to_json(store, "t", 0)}
    out = tmp_path / "out"
    written = export(run_dir, out, list(iter_refs(row)))
    assert row["a"]["path"] in written and row["t"]["path"] in written
    cell = json.loads((out / row["t"]["path"]).read_bytes())["data"][0][1]
    assert (out / cell["path"]).is_file()
    from PIL import Image as PILImage

    assert PILImage.open(out / row["a"]["path"]).size == (5, 4)


def test_export_without_refs_writes_every_blob(store: MediaStore, run_dir: Path, tmp_path: Path) -> None:
    a = store.put(b"a", "txt")
    store.put(b"b", "png")
    written = export(run_dir, tmp_path / "o")
    assert sorted(written) == sorted([f"media/blobs/{a['sha256']}.txt", f"media/blobs/{hashlib.sha256(b'b').hexdigest()}.png"])


def test_media_value_acts_like_its_dict_and_gives_bytes_path_open(store: MediaStore, run_dir: Path) -> None:
    j = Image(np.full((64, 64, 3), 9, np.uint8)).to_json(store, "img", 3)
    v = wrap_media(j, run_dir)
    assert isinstance(v, MediaValue)
    assert v == j and j == v
    assert v["_type"] == "image-file" and v["width"] == 64
    assert repr(v) == "<image 64x64 png>"
    assert hashlib.sha256(v.bytes()).hexdigest() == j["sha256"]
    p = v.path()
    assert p.startswith(str(run_dir / "media" / "cache")) and Path(p).read_bytes() == v.bytes()
    assert v.path() == p
    im = v.open()
    assert im.size == (64, 64) and im.mode == "RGB"
    assert v.to_dict() == j
    with pytest.raises(TypeError):
        v["x"] = 1  # type: ignore[index]


def test_wrap_media_leaves_other_dicts_alone(run_dir: Path) -> None:
    h = {"_type": "histogram", "values": [1], "bins": [0, 1]}
    assert wrap_media(h, run_dir) is h
    assert wrap_media({"a": 1}, run_dir) == {"a": 1}
    assert wrap_media(5, run_dir) == 5


def test_describe_summaries(store: MediaStore) -> None:
    assert describe({"_type": "histogram", "values": [0] * 64, "bins": [0] * 65}) == "<histogram 64 bins>"
    t = Table(columns=["a", "b", "c"], data=[[i, i, i] for i in range(10)]).to_json(store, "t", 0)
    assert describe(t) == "<table 10 rows x 3 cols>"
    assert describe({"_type": "video-file", "path": "media/videos/v_0_x.gif", "width": 8, "height": 6, "frames": 4}) == (
        "<video 8x6 gif 4 frames>"
    )
    assert describe({"_type": "chart", "kind": "pr_curve", "title": "PR"}) == "<chart pr_curve 'PR'>"


def test_media_value_open_gives_table_dict(store: MediaStore, run_dir: Path) -> None:
    j = Table(columns=["x"], data=[[1], [2]]).to_json(store, "t", 0)
    assert wrap_media(j, run_dir).open() == {"columns": ["x"], "data": [[1], [2]]}


def test_pack_rolls_over_and_a_reopened_store_starts_after_a_full_pack(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "PACK_ROLLOVER_BYTES", 1000)
    s = MediaStore(run_dir)
    refs = [s.put(bytes([i]) * 300, "bin") for i in range(7)]
    s.close()
    packs = sorted(p.name for p in (run_dir / "media").glob("*.wlpack"))
    assert len(packs) >= 3 and all((run_dir / "media" / p).stat().st_size <= 1000 for p in packs)
    assert [read_blob(run_dir, r) for r in refs] == [bytes([i]) * 300 for i in range(7)]
    s2 = MediaStore(run_dir)
    assert s2.put(bytes([3]) * 300, "bin") == refs[3]
    new = s2.put(b"fresh" * 100, "bin")
    s2.close()
    assert new["blob"] >= refs[-1]["blob"] and verify(run_dir) == []
