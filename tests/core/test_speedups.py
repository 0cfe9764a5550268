"""The optional C accelerator (wandblite/_speedups.c) agrees with the pure-Python paths, byte for byte.

It frames scalar log calls and scans/decodes records; everything it does has a Python twin that
runs when it is not built (or with WANDBLITE_NO_SPEEDUPS=1, which CI also runs the core tests
under). These tests compare the two on generated inputs, on the edges of every msgpack encoding,
and on damaged files. A skip here means the extension was not built: CI forbids skips.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wandblite
from wandblite import events as ev
from wandblite import format as fmt
from wandblite.fold import Fold

sp: Any = pytest.importorskip("wandblite._speedups", reason="the C accelerator is not built (needs a C compiler)")

SWITCHED_OFF = bool(os.environ.get("WANDBLITE_NO_SPEEDUPS"))  # read at import: fixtures clear WANDBLITE_*
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOGS = ev.LOG_SCALARS
INT_EDGES = [0, 1, 31, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
             -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]

keys = st.one_of(st.text(max_size=40), st.sampled_from(["a", "train/loss", "x" * 31, "y" * 32, "é" * 20, "_step", ""]))
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(INT_EDGES),
    st.booleans(),
    st.text(max_size=70),
)
dicts = st.dictionaries(keys, scalars, max_size=20)


def python_frame(data: dict[str, Any], ts: float, step: Any, commit: Any) -> bytes:
    return fmt.frame(LOGS, ev.new_packer().pack([ts, data, step, commit]))


def c_frame(data: Any, ts: Any, step: Any = None, commit: Any = None) -> bytes | None:
    result: bytes | None = sp.frame_log(data, ts, step, commit, LOGS, fmt.MAX_RECORD_SIZE)
    return result


def c_scan(buf: bytes, decode_kind: int = LOGS, kinds: frozenset[int] | None = None) -> tuple[list[Any], int]:
    mask = None if kinds is None else bytes(1 if k in kinds else 0 for k in range(256))
    records, end = sp.scan(buf, 0, 0, mask, decode_kind, 10**9)
    return records, end


def test_the_accelerator_is_in_use() -> None:
    assert fmt.ACCELERATED is not SWITCHED_OFF
    assert sp.MAX_RECORD_SIZE == fmt.MAX_RECORD_SIZE


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2**32 - 1))
@SETTINGS
def test_crc32_is_zlibs(data: bytes, seed: int) -> None:
    assert sp.crc32(data, seed) == zlib.crc32(data, seed)


@given(dicts, st.floats(allow_nan=False), st.one_of(st.none(), st.integers(0, 2**40)), st.sampled_from([None, True, False]))
@SETTINGS
def test_frame_log_is_byte_identical_to_the_python_path(data: dict[str, Any], ts: float, step: Any, commit: Any) -> None:
    framed = c_frame(data, ts, step, commit)
    try:
        expected = python_frame(data, ts, step, commit)
    except UnicodeEncodeError:  # lone surrogates in a key or value: the Python path's business
        assert framed is None
        return
    assert framed == expected


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65535, 65536])
def test_frame_log_map_sizes(n: int) -> None:
    data = {f"k{i}": float(i) for i in range(n)}
    assert c_frame(data, 1.5) == python_frame(data, 1.5, None, None)


@pytest.mark.parametrize("size", [31, 32, 255, 256, 65535, 65536, 200_000])
def test_frame_log_string_sizes(size: int) -> None:
    data = {"s" * min(size, 70_000): "v" * size}
    assert c_frame(data, 2.0, 7, False) == python_frame(data, 2.0, 7, False)


@pytest.mark.parametrize(
    ("data", "ts", "step", "commit", "why"),
    [
        ({1: 1.0}, 1.0, None, None, "a non-str key: the Python path raises wandb's error"),
        ({"a": 2**63}, 1.0, None, None, "an int beyond int64: stored as a float by the Python path"),
        ({"a": -(2**63) - 1}, 1.0, None, None, "below int64"),
        ({"a": {"b": 1.0}}, 1.0, None, None, "a nested dict: merged per leaf"),
        ({"a": None}, 1.0, None, None, "None is not a LOG_SCALARS value"),
        ({"a": [1, 2]}, 1.0, None, None, "a list"),
        ({"a": "\ud800"}, 1.0, None, None, "a lone surrogate"),
        ({"\udfff": 1.0}, 1.0, None, None, "a lone surrogate key"),
        ({"a": 1.0}, 1, None, None, "an int timestamp"),
        ({"a": 1.0}, 1.0, 1.5, None, "a float step: the Python path raises"),
        ({"a": 1.0}, 1.0, 2**64, None, "a step beyond int64"),
        ({"a": 1.0}, 1.0, None, 1, "a non-bool commit is packed as given by the Python path"),
        ({"a": b"raw"}, 1.0, None, None, "bytes"),
    ],
)
def test_frame_log_declines_what_is_not_plain(data: Any, ts: Any, step: Any, commit: Any, why: str) -> None:
    assert c_frame(data, ts, step, commit) is None, why


def test_frame_log_declines_numpy_and_subclasses() -> None:
    np = pytest.importorskip("numpy")

    class D(dict):  # type: ignore[type-arg]
        pass

    class F(float):
        pass

    assert c_frame({"a": np.float32(1.0)}, 1.0) is None
    assert c_frame({"a": np.int64(1)}, 1.0) is None
    assert c_frame({"a": F(1.0)}, 1.0) is None
    assert c_frame(D(a=1.0), 1.0) is None


@pytest.mark.parametrize(("step", "commit"), [(None, None), (None, False), (3, True), (7, None), (0, False)])
def test_frame_log_without_a_timestamp_stamps_time_time_and_is_otherwise_identical(step: Any, commit: Any) -> None:
    data = {"loss": 0.25, "phase": "train", "n": 3, "ok": True}
    before = time.time()
    framed = c_frame(data, None, step, commit)
    after = time.time()
    assert framed is not None
    ts = msgpack.unpackb(framed[fmt.FRAME_HEADER_SIZE:], raw=False)[0]
    assert type(ts) is float and before <= ts <= after
    assert framed == python_frame(data, ts, step, commit)


def test_frame_log_declines_an_oversized_record() -> None:
    assert sp.frame_log({"a": "x" * 1000}, 1.0, None, None, LOGS, 500) is None


# ------------------------------------------------------------------ scan and decode

def payload_of(obj: Any) -> bytes:
    return ev.new_packer().pack(obj)


def decoded_like_python(payload: bytes) -> Any:
    return ev.decode(payload)


@given(dicts, st.floats(), st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1)), st.sampled_from([None, True, False]))
@SETTINGS
def test_scan_decodes_exactly_as_msgpack(data: dict[str, Any], ts: float, step: Any, commit: Any) -> None:
    try:
        payload = payload_of([ts, data, step, commit])
    except UnicodeEncodeError:
        return
    buf = fmt.frame(LOGS, payload)
    records, end = c_scan(buf)
    assert end == len(buf)
    [(offset, kind, obj)] = records
    assert (offset, kind) == (0, LOGS)
    assert type(obj) is list
    expected = decoded_like_python(payload)
    assert repr(obj) == repr(expected)  # repr: NaN compares unequal to itself


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb([1.0, {"a": {"b": 1}}, None, None]),  # nested map
        msgpack.packb([1.0, {"a": [1, 2]}, None, None]),  # array value
        msgpack.packb([1.0, {"a": b"bin"}, None, None], use_bin_type=True),  # bin
        msgpack.packb([1.0, {1: 2.0}, None, None]),  # int key
        msgpack.packb([1.0, {"a": 1.0}, None]),  # 3 elements
        msgpack.packb([1.0, {"a": 1.0}, None, None]) + b"\xc0",  # trailing bytes
        msgpack.packb([1.0, {"a": 1.0}, None, None])[:-3],  # truncated
        msgpack.packb([1.0, {"a": msgpack.ExtType(5, b"xy")}, None, None]),  # ext
        b"\x94\xcb",  # cut in the timestamp
        b"\x94\xcb" + b"\0" * 8 + b"\xdf\xff\xff\xff\xff",  # a map count far beyond the payload
        b"\x93",
        b"\xc1",
    ],
)
def test_scan_leaves_everything_else_to_msgpack(payload: bytes) -> None:
    buf = fmt.frame(LOGS, payload)
    records, end = c_scan(buf)
    assert end == len(buf)
    [(_offset, _kind, obj)] = records
    assert obj == payload  # the bytes, for the general unpacker (or the damage report)


def test_scan_decodes_invalid_utf8_like_msgpack() -> None:
    payload = b"\x94\xcb" + b"\0" * 8 + b"\x82\xa2\xff\xfe\xa1x\xa1k\xa3a\xc3(" + b"\xc0\xc0"
    records, _ = c_scan(fmt.frame(LOGS, payload))
    assert records[0][2] == decoded_like_python(payload)


def test_scan_decodes_only_the_asked_kind_and_filters_kinds() -> None:
    p = payload_of([1.0, {"a": 1.0}, None, None])
    buf = fmt.frame(LOGS, p) + fmt.frame(ev.CONFIG, p) + fmt.frame(ev.LOG, p)
    records, end = c_scan(buf)
    assert end == len(buf)
    assert [type(r[2]) for r in records] == [list, bytes, bytes]
    assert [r[0] for r in records] == [0, 10 + len(p), 20 + 2 * len(p)]
    records, _ = c_scan(buf, decode_kind=-1, kinds=frozenset({ev.CONFIG}))
    assert [(r[1], r[2]) for r in records] == [(ev.CONFIG, p)]


@pytest.mark.parametrize("cut", ["magic", "zero-length", "crc", "torn", "too-large"])
def test_scan_stops_before_any_frame_python_would_not_accept(cut: str) -> None:
    good = fmt.frame(LOGS, payload_of([1.0, {"a": 1.0}, None, None]))
    bad = bytearray(fmt.frame(LOGS, payload_of([2.0, {"a": 2.0}, None, None])))
    if cut == "magic":
        bad[0] = 0
    elif cut == "zero-length":
        bad[2:6] = b"\0\0\0\0"
    elif cut == "crc":
        bad[-1] ^= 1
    elif cut == "torn":
        bad = bad[:-1]
    else:
        bad[2:6] = (fmt.MAX_RECORD_SIZE + 1).to_bytes(4, "little")
    records, end = c_scan(good + bytes(bad) + good)
    assert len(records) == 1 and end == len(good)


def _reader_view(path: Path, monkeypatch: pytest.MonkeyPatch, accelerated: bool) -> tuple[list[Any], Any, Any, int]:
    monkeypatch.setattr(fmt, "_scan_c", sp.scan if accelerated else None)
    reader = fmt.RecordReader(path, decode_kind=LOGS)
    records = [(o, k, ev.decode(p) if type(p) is bytes else p) for o, k, p in reader]
    for o, k, p in records:
        if k == LOGS:
            assert type(p) is list, (o, k)
    return [repr(r) for r in records], reader.damage, reader.tail, reader.end_offset


def test_reader_with_and_without_the_accelerator_agree_on_a_damaged_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    run = wandblite.init(project="p", id="dmg", dir=str(tmp_path),
                         settings=wandblite.Settings(console="off", disable_stats=True))
    for i in range(3000):
        run.log({"loss": rng.random(), "i": i, "tag": "x" * (i % 40), "flag": i % 2 == 0})
        if i % 500 == 0:
            run.log({"nested": {"a": i}}, commit=False)
    run.finish()
    [seg] = wandblite.runfile.segments(tmp_path / "dmg")
    data = bytearray(seg.read_bytes())
    for _ in range(40):  # bit flips, a zeroed range and garbage in the middle
        data[rng.randrange(100, len(data))] ^= 1 << rng.randrange(8)
    data[5000:5300] = b"\0" * 300
    data[len(data) // 2 : len(data) // 2] = bytes(rng.randrange(256) for _ in range(777))
    seg.write_bytes(bytes(data[:-7]))  # and a torn tail
    with_c = _reader_view(seg, monkeypatch, True)
    without = _reader_view(seg, monkeypatch, False)
    assert with_c == without
    assert with_c[1], "the damage was found"


def _history_and_state(run_dir: Path, monkeypatch: pytest.MonkeyPatch, accelerated: bool) -> Any:
    monkeypatch.setattr(fmt, "_scan_c", sp.scan if accelerated else None)
    r = wandblite.replay(run_dir)
    rows = list(r.scan_history())
    return repr(rows), repr(r.summary), r.step, r.rows, r.state


def test_replay_with_and_without_the_accelerator_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = wandblite.init(project="p", id="mix", dir=str(tmp_path))
    run.define_metric("acc", summary="max")
    for i in range(200):
        run.log({"loss": 1.0 / (i + 1), "acc": (i * 7 % 13) / 13, "s": str(i)})
        if i % 10 == 0:
            run.log({"extra": i}, commit=False)
        if i % 50 == 0:
            run.log({"img": wandblite.Histogram([1, 2, 3])})
            run.log({"deep": {"x": i, "y": {"z": float(i)}}}, step=run.step + 2)
    run.finish()
    assert _history_and_state(tmp_path / "mix", monkeypatch, True) == _history_and_state(tmp_path / "mix", monkeypatch, False)


def test_fold_records_equals_apply_one_event_at_a_time(tmp_path: Path) -> None:
    run = wandblite.init(project="p", id="fr", dir=str(tmp_path),
                         settings=wandblite.Settings(console="off", disable_stats=True))
    for i in range(300):
        run.log({"a": i, "b": float(i)})
        if i == 100:
            run.define_metric("a", summary="min")
        if i % 33 == 0:
            run.log({"c": 1}, commit=False)
    run.finish()
    events = [(e.kind, e.data) for e in wandblite.runfile.read_events(tmp_path / "fr")]
    one = Fold()
    rows_one = [row for kind, data in msgpack.unpackb(msgpack.packb(events), strict_map_key=False)
                for row in one.apply(kind, data)]
    batch = Fold()
    records = [(0, kind, msgpack.packb(data)) for kind, data in events]  # bytes, as the reader gives
    rows_batch, _unflat = batch.fold_records(records, ev.decode, pytest.fail)
    assert rows_batch == rows_one
    for attr in ("summary", "step", "rows", "events", "first_ts", "last_ts", "config", "meta"):
        assert getattr(batch, attr) == getattr(one, attr), attr


def test_the_speedups_switch(tmp_path: Path) -> None:
    code = "import wandblite.format as f; print(f.ACCELERATED)"
    env = {**os.environ, "WANDBLITE_NO_SPEEDUPS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env.pop("WANDBLITE_NO_SPEEDUPS")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# --------------------------------------------------------------------------- summary updates
# update_rows (Fold.add_rows' summary updates) and fold_scalars' summary skip a row whose keys the
# next row repeats, same objects in the same order: the result must be the plain loop of updates,
# key order and key objects included.

POOL = ["loss", "train/acc", "_timestamp", "_step", "_runtime", "", "x" * 70]


@st.composite
def row_lists(draw: Any, values: Any = scalars, pairs: bool = True) -> list[Any]:
    """Rows as folds make them (keys are shared str objects, so runs of rows repeat one key
    sequence), with every way of breaking a run: a new key set, the same keys in another order, a
    key more or less, an equal key that is another object, a non-str key, a dict subclass, and
    (``pairs``) a list of pairs, which dict.update also takes."""
    rows: list[Any] = []
    for _ in range(draw(st.integers(0, 14))):
        prev = rows[-1] if rows and type(rows[-1]) is dict else None
        how = draw(st.sampled_from(["repeat", "repeat", "new", "reorder", "more", "less", "copy", "int", "sub", "pairs"]))
        if how == "repeat" and prev:
            keys = list(prev)
        elif how == "reorder" and prev:
            keys = list(reversed(prev))
        elif how == "more" and prev:
            keys = [*prev, draw(st.sampled_from(POOL))]
        elif how == "less" and prev:
            keys = list(prev)[1:]
        elif how == "copy" and prev:  # equal keys, new objects (not interned)
            keys = [k.encode().decode() if isinstance(k, str) and len(k) > 1 else k for k in prev]
        elif how == "int":
            keys = [*(prev or []), draw(st.integers(-3, 3))]
        else:
            keys = draw(st.lists(st.sampled_from(POOL), max_size=6))
        row = {k: draw(values) for k in keys}
        if how == "sub":
            rows.append(type("Row", (dict,), {})(row))
        elif how == "pairs" and pairs:
            rows.append(list(row.items()))
        else:
            rows.append(row)
    return rows


def _as_built(d: dict[Any, Any]) -> list[tuple[int, str, str]]:
    """A dict's keys (the objects: id) and values (type and repr: NaN, -0.0, 1 vs True), in order."""
    return [(id(k), type(v).__name__, repr(v)) for k, v in d.items()]


@given(row_lists(), st.lists(st.sampled_from(POOL), max_size=4))
@SETTINGS
def test_update_rows_is_the_loop_of_dict_updates(rows: list[Any], start: list[str]) -> None:
    python = dict.fromkeys(start, 0)
    for row in rows:
        python.update(row)
    c = dict.fromkeys(start, 0)
    assert sp.update_rows(c, rows) is None
    assert _as_built(c) == _as_built(python)


def test_update_rows_refuses_what_is_not_a_dict_and_a_list() -> None:
    with pytest.raises(TypeError):
        sp.update_rows([], [{}])
    with pytest.raises(TypeError):
        sp.update_rows({}, ({"a": 1},))
    with pytest.raises(TypeError):
        sp.update_rows({}, [{"a": 1}, 5])  # what dict.update raises for a row that is not a mapping


@given(row_lists(st.one_of(scalars, st.none(), st.just({"x": 1.0})), pairs=False))
@SETTINGS
def test_add_rows_with_and_without_the_c_summary_updates(rows: list[Any]) -> None:
    rows = [dict(r) for r in rows if all(isinstance(k, str) for k in r)]  # committed rows: str keys
    for i, row in enumerate(rows):
        row["_step"] = i
    c, python, one = Fold(), Fold(), Fold()
    c.add_rows([dict(r) for r in rows], True, sp.update_rows)
    python.add_rows([dict(r) for r in rows], True)
    for r in rows:
        one.add_row(dict(r))
    assert _as_built(c.summary) == _as_built(python.summary)
    assert repr(c.summary) == repr(one.summary)
    assert (c.rows, c.step) == (python.rows, python.step) == (one.rows, one.step)


@given(row_lists(pairs=False), st.lists(st.sampled_from([None, "next", "back"]), max_size=14))
@SETTINGS
def test_fold_scalars_summary_equals_the_python_fold(rows: list[Any], steps: list[Any]) -> None:
    """Plain rows whose keys repeat, change order, grow and shrink (reserved and empty keys
    included) fold to the same rows and summary in C and in Python."""
    rows = [r for r in rows if type(r) is dict and all(isinstance(k, str) for k in r)]

    def records() -> list[tuple[int, int, Any]]:
        out: list[tuple[int, int, Any]] = []
        for i, r in enumerate(rows):
            how = steps[i] if i < len(steps) else None
            step = i * 2 if how == "next" else 0 if how == "back" else None
            out.append((i, LOGS, [100.0 + i, dict(r), step, True if step is not None else None]))
        return out

    c, python = Fold(), Fold()
    rows_c, _ = c.fold_records(records(), ev.decode, pytest.fail, sp.fold_scalars)
    rows_py, _ = python.fold_records(records(), ev.decode, pytest.fail, None)
    assert [_as_built(r) for r in rows_c] == [_as_built(r) for r in rows_py]
    assert _as_built(c.summary) == _as_built(python.summary)
    assert (c.step, c.rows, c.events, c.last_ts) == (python.step, python.rows, python.events, python.last_ts)


def test_scanned_records_are_not_left_to_the_garbage_collector() -> None:
    import gc

    buf = python_frame({"a": 1.0, "b": "x"}, 1.0, 3, True) + fmt.frame(ev.START, b"\x90")
    records = c_scan(buf, kinds=frozenset({LOGS, ev.START}))[0]
    (_off, _kind, p), (_off2, _kind2, raw) = records
    assert p == [1.0, {"a": 1.0, "b": "x"}, 3, True] and raw == b"\x90"
    for obj in (*records, p, p[1]):
        assert not gc.is_tracked(obj)
    p[1]["c"] = [1]  # a container put in later: the dict is tracked again (a list is not looked at)
    assert gc.is_tracked(p[1])
