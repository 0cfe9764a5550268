"""The run file's framing under damage, in the manner of LevelDB's log_test.cc.

Each test damages bytes on purpose and checks both what comes back (every undamaged record) and
what is reported (offset, length, reason).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from wandblite.errors import FormatError
from wandblite.format import (
    FILE_HEADER_SIZE,
    FRAME_HEADER_SIZE,
    RecordReader,
    check_file_header,
    file_header,
    frame,
)


def write_file(path: Path, payloads: list[bytes], kind: int = 2) -> list[int]:
    """Write a run file; return each record's offset."""
    offsets = []
    with open(path, "wb") as f:
        f.write(file_header())
        pos = FILE_HEADER_SIZE
        for p in payloads:
            offsets.append(pos)
            data = frame(kind, p)
            f.write(data)
            pos += len(data)
    return offsets


def read_all(path: Path, start: int | None = None) -> tuple[list[bytes], RecordReader]:
    r = RecordReader(path, start=start)
    return [payload for _off, _kind, payload in r], r


def payloads(n: int, seed: int = 0) -> list[bytes]:
    rnd = random.Random(seed)
    return [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 200))) for _ in range(n)]


def test_round_trip_returns_every_record_with_offsets_and_kinds(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    data = payloads(500)
    offsets = write_file(p, data)
    r = RecordReader(p)
    recs = list(r)
    assert [x[2] for x in recs] == data
    assert [x[0] for x in recs] == offsets
    assert all(x[1] == 2 for x in recs)
    assert r.damage == [] and r.tail is None
    assert r.end_offset == p.stat().st_size


def test_reader_can_start_at_any_record_offset(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    data = payloads(50)
    offsets = write_file(p, data)
    for i in (0, 1, 25, 49):
        got, r = read_all(p, start=offsets[i])
        assert got == data[i:]
    got, r = read_all(p, start=p.stat().st_size)
    assert got == [] and r.end_offset == p.stat().st_size


def test_records_larger_than_the_read_buffer(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    data = [b"a" * 10, os.urandom(3 << 20), b"b" * 10, os.urandom(1 << 20)]
    write_file(p, data)
    got, r = read_all(p)
    assert got == data and not r.damage


def test_torn_tail_is_end_of_file_not_corruption(tmp_path: Path) -> None:
    """Truncate at every byte of the last record: all earlier records, the tail reported as such."""
    p = tmp_path / "f.wlr"
    data = payloads(20, seed=3)
    offsets = write_file(p, data)
    full = p.read_bytes()
    last = offsets[-1]
    for cut in range(last + 1, len(full)):
        p.write_bytes(full[:cut])
        got, r = read_all(p)
        assert got == data[:-1], cut
        assert r.damage == [], cut  # nothing in the middle is damaged
        assert r.tail is not None and r.tail.offset == last and r.tail.length == cut - last, cut
        assert r.end_offset == last  # a later scan resumes exactly there
    p.write_bytes(full)
    assert read_all(p)[0] == data


def test_every_cut_of_the_last_record_is_reported_as_a_torn_tail(tmp_path: Path) -> None:
    """A SIGKILL mid-write can leave any prefix of a frame, even 1 byte when the write crossed a page
    boundary; whatever is left, the reason names it a torn tail (what replay's readers look for)."""
    p = tmp_path / "f.wlr"
    offsets = write_file(p, payloads(3, seed=5))
    full = p.read_bytes()
    for cut in [*range(offsets[-1] + 1, offsets[-1] + FRAME_HEADER_SIZE + 2), len(full) - 1]:
        p.write_bytes(full[:cut])
        _got, r = read_all(p)
        assert r.tail is not None and "tail" in r.tail.reason, (cut, r.tail)
    for n in range(1, FILE_HEADER_SIZE):
        p.write_bytes(file_header()[:n])
        _got, r = read_all(p)
        assert r.tail is not None and "tail" in r.tail.reason, (n, r.tail)


def test_truncated_file_header_is_an_empty_run(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    for n in range(FILE_HEADER_SIZE):
        p.write_bytes(file_header()[:n])
        got, r = read_all(p)
        assert got == []
        assert (r.tail is None) == (n == 0)


def test_not_a_run_file_raises_format_error_naming_the_path(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    p.write_bytes(b"hello world, not a run file at all")
    with pytest.raises(FormatError, match="not a wandblite run file"):
        list(RecordReader(p))
    with pytest.raises(FormatError, match="newer"):
        check_file_header(file_header(version=99))


def test_flipped_bits_in_the_middle_are_reported_and_skipped(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    data = payloads(100, seed=5)
    offsets = write_file(p, data)
    full = p.read_bytes()
    rnd = random.Random(7)
    for trial in range(200):
        i = rnd.randrange(5, 95)  # a record in the middle
        start = offsets[i]
        end = offsets[i + 1]
        pos = rnd.randrange(start, end)
        bit = 1 << rnd.randrange(8)
        damaged = bytearray(full)
        damaged[pos] ^= bit
        p.write_bytes(bytes(damaged))
        got, r = read_all(p)
        assert got == data[:i] + data[i + 1 :], (trial, pos)
        assert len(r.damage) == 1, (trial, pos, r.damage)
        d = r.damage[0]
        assert d.offset == start and d.length == end - start, (trial, d)
        assert d.reason in ("checksum mismatch", "bad frame header", "record runs past end of file") or d.reason
        assert r.tail is None


def test_zeroed_range_loses_only_the_records_it_touches(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    data = payloads(100, seed=9)
    offsets = write_file(p, data)
    full = bytearray(p.read_bytes())
    a, b = offsets[30] + 3, offsets[40] + 5  # from inside record 30 to inside record 40
    full[a:b] = bytes(b - a)
    p.write_bytes(bytes(full))
    got, r = read_all(p)
    assert got == data[:30] + data[41:]
    assert len(r.damage) == 1
    assert r.damage[0].offset == offsets[30]
    assert r.damage[0].offset + r.damage[0].length == offsets[41]


def test_appended_garbage_is_reported_as_a_tail_and_nothing_is_lost(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    data = payloads(30, seed=11)
    write_file(p, data)
    size = p.stat().st_size
    with open(p, "ab") as f:
        f.write(os.urandom(5000))
    got, r = read_all(p)
    assert got == data
    assert r.tail is not None and r.tail.offset == size and r.tail.length == 5000


def test_garbage_between_good_records_then_resync(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    a, b = payloads(10, 1), payloads(10, 2)
    write_file(p, a)
    size = p.stat().st_size
    junk = os.urandom(3000)
    with open(p, "ab") as f:
        f.write(junk)
        for x in b:
            f.write(frame(2, x))
    got, r = read_all(p)
    assert got == a + b
    assert len(r.damage) == 1 and r.damage[0].offset == size and r.damage[0].length == len(junk)


def test_arbitrary_garbage_never_raises_and_never_hangs(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    rnd = random.Random(13)
    for _trial in range(30):
        body = bytearray(os.urandom(rnd.randint(0, 20000)))
        # sprinkle plausible frame starts so the resync path is exercised hard
        for _ in range(50):
            if body:
                body[rnd.randrange(len(body))] = 0xD7
        p.write_bytes(file_header() + bytes(body))
        got, r = read_all(p)
        covered = sum(d.length for d in r.damage) + (r.tail.length if r.tail else 0)
        assert covered + sum(len(g) + FRAME_HEADER_SIZE for g in got) == len(body)


def test_length_field_damage_pointing_past_eof_is_damage_when_records_follow(tmp_path: Path) -> None:
    p = tmp_path / "f.wlr"
    data = payloads(20, seed=17)
    offsets = write_file(p, data)
    full = bytearray(p.read_bytes())
    full[offsets[5] + 2 : offsets[5] + 6] = (10_000_000).to_bytes(4, "little")
    p.write_bytes(bytes(full))
    got, r = read_all(p)
    assert got == data[:5] + data[6:]
    assert len(r.damage) == 1 and r.damage[0].offset == offsets[5]
