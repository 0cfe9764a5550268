"""The compact history layout gives back every row exactly, on SQLite and PostgreSQL.

Rows of many shapes (flat, nested, media references, lists, strings, bools, None, NaN, +-Infinity,
-0.0, ints beyond a double's precision and range, a dotted key logged twice, reserved keys of odd
types) are sent in batches of odd sizes across chunk boundaries, with a crash's provisional row
replaced; every row read back (``GET .../history`` through ``read.get_history``) is the row sent,
compared as JSON text (key order, int vs float, NaN tokens). The chunks' statistics agree with the
points, and a chart keeps each bucket's true minimum and maximum.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from wandblite.server import read, series_query
from wandblite.server.chunks import CHUNK_ROWS, SUM_BLOCK, decode_points, point_sums, read_sums
from wandblite.server.schema import history_chunks, runs, series_chunks
from wandblite.server.store import Store
from wandblite.vocab import json_text

from .conftest import backend_store

IMG = {"_type": "image-file", "path": "media/images/x.png", "sha256": "0" * 64, "width": 8, "height": 8}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with backend_store(request.param, tmp_path, "wl_chunks") as s:
        yield s


def _row(i: int, rnd: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {"_step": i, "loss": rnd.gauss(0, 1), "acc": rnd.randint(0, 100)}
    kind = i % 13
    if kind == 1:
        row["nested"] = {"a": rnd.random(), "b": {"c": i, "d": "text"}, "e": [1, 2.5, None]}
    elif kind == 2:
        row.update(nan=float("nan"), inf=float("inf"), ninf=-float("inf"), zero=-0.0)
    elif kind == 3:
        row.update(big=2**60 + 1, huge=10**400, neg=-(2**53) - 3, flag=True, none=None)
    elif kind == 4:
        row["img"] = IMG
        row["table"] = {"_type": "table-file", "ncols": 2, "nrows": 3}
    elif kind == 5:
        row["a.b"] = 1.5
        row["a"] = {"b": 2.5}  # the same dotted key twice
    elif kind == 6:
        row["_runtime"] = 3  # an int runtime: not the column's float
        row["_timestamp"] = "later"
    elif kind == 7:
        row = {"other": 0.5, "_step": float(i), "_runtime": i * 0.25, "_timestamp": 1.7e9 + i}  # key order, float step
    elif kind == 8:
        row["_step"] = 2**64  # beyond the step column (no x for a chart: this row has no loss)
        del row["loss"]
    elif kind == 9:
        row["s"] = "\u00e9\x00\ud800 line\nbreak"
    if i % 17 == 0:
        row["_runtime"], row["_timestamp"] = i * 0.5, 1.7e9 + i * 0.5
    return row


def _text(rows: list[dict[str, Any]]) -> list[str]:
    return [json_text(r) for r in rows]


def _sent(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the wire delivers them (JSON text parsed: NUL and surrogates as the server cleans nothing here)."""
    import json

    return [json.loads(json_text(r)) for r in rows]


def _history(store: Store, run: str) -> list[dict[str, Any]]:
    out, start = [], 0
    while start is not None:
        page = read.get_history(store, "p", run, start=start, limit=997)
        out.extend(page["rows"])
        start = page["next"]
    return out


def test_every_row_comes_back_exactly_across_chunks_batches_and_a_replaced_provisional_row(store: Store) -> None:
    rnd = random.Random(16)
    n = 2 * CHUNK_ROWS + 300
    rows = _sent([_row(i, rnd) for i in range(n)])
    i = 0
    sizes = [1, 2, CHUNK_ROWS - 3, 5000, 7, 1]
    k = 0
    while i < n:
        size = min(sizes[k % len(sizes)], n - i)
        k += 1
        items = [{"idx": j, "row": rows[j]} for j in range(i, i + size)]
        if k == 3:  # a crash: the last row of this batch provisional, with other values; then replaced
            items.append({"idx": i + size, "final": False, "row": {"_step": -1, "loss": 1e9, "img": IMG}})
            pos = store.apply_batch("p", "r", {"rows": items})
            assert pos["pending"] and pos["rows"] == i + size
            got = _history(store, "r")
            assert got[-1] == {"idx": i + size, "final": False, "row": items[-1]["row"]}
            keys = {d["key"]: d for d in series_query.run_keys(store, "p", "r")["keys"]}
            assert keys["loss"]["last_step"] == -1 and keys["loss"]["count"] == 1 + sum("loss" in r for r in rows[:i + size])
        else:
            store.apply_batch("p", "r", {"rows": items})
        i += size
    got = _history(store, "r")
    assert [g["idx"] for g in got] == list(range(n)) and all(g["final"] for g in got)
    assert _text([g["row"] for g in got]) == _text(rows)

    # Statistics beside each series chunk agree with its points.
    with store.read_engine.connect() as conn:
        pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == "r")).scalar_one()
        assert conn.execute(sa.select(sa.func.count()).select_from(history_chunks).where(
            history_chunks.c.run == pk)).scalar_one() == 3
        for st in conn.execute(sa.select(series_chunks).where(series_chunks.c.run == pk, series_chunks.c.key == "loss")):
            off, val = decode_points(st.data)
            base = st.chunk * CHUNK_ROWS
            assert st.n == len(off) and st.first_idx == base + off[0] and st.last_idx == base + off[-1]
            assert st.min_v == min(val) and st.max_v == max(val)

    # A chart keeps every bucket's true extremes (brute force over the rows sent).
    s = series_query.get_series(store, "p", "r", ["loss"], samples=100)["series"]["loss"]
    pts = [(r["_step"], r["loss"]) for r in rows if "loss" in r]
    assert s["count"] == len(pts)
    assert max(s["y"]) == max(v for _x, v in pts) and min(s["y"]) == min(v for _x, v in pts)
    nb, span = 50, n
    for b in range(nb):
        vals = [r["loss"] for j, r in enumerate(rows) if j * nb // span == b and "loss" in r]
        assert min(vals) in s["y"] and max(vals) in s["y"]
    acc = series_query.get_series(store, "p", "r", ["acc"], samples=100000)["series"]["acc"]
    charted = [r for r in rows if "acc" in r and type(r["_step"]) is int and r["_step"] < 2**63]  # x needs a step
    assert acc["y"] == [float(r["acc"]) for r in charted] and acc["x"] == [r["_step"] for r in charted]
    assert acc["count"] == sum("acc" in r for r in rows)


def test_block_sums_hold_each_blocks_finite_points() -> None:
    import numpy as np

    rnd = random.Random(3)
    off = np.array(sorted(rnd.sample(range(CHUNK_ROWS), 700)), dtype=np.int64)
    val = np.array([rnd.choice([float("nan"), float("inf"), -float("inf")]) if rnd.random() < 0.05
                    else rnd.gauss(0, 10) for _ in off])
    val[(off >= 3 * SUM_BLOCK) & (off < 4 * SUM_BLOCK)] = float("nan")  # a block of NaNs only: no entry
    blocks, n, off_sum, y_sum = read_sums(point_sums(off, val))
    want = {}
    for o, v in zip(off.tolist(), val.tolist()):
        if np.isfinite(v):
            got = want.setdefault(o // SUM_BLOCK, [0, 0, 0.0])
            got[0] += 1
            got[1] += o
            got[2] += v
    assert blocks.tolist() == sorted(want) and 3 not in want
    assert n.tolist() == [want[b][0] for b in sorted(want)]
    assert off_sum.tolist() == [want[b][1] for b in sorted(want)]
    assert y_sum.tolist() == pytest.approx([want[b][2] for b in sorted(want)], rel=1e-12)
    assert read_sums(point_sums(off[:3], np.full(3, float("nan"))))[0].tolist() == []  # no finite value
    assert len(point_sums(off, val)) <= 1 + 14 * (CHUNK_ROWS // SUM_BLOCK)


def test_ingest_stores_sums_and_migration_0013_fills_an_upgraded_store_resumably(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from wandblite.server import migrations
    from wandblite.server.schema import schema_migrations

    rnd = random.Random(5)
    for run in ("a", "b"):
        rows = [{"idx": i, "row": {"_step": i, "loss": rnd.random(), "acc": float("nan") if i % 7 else 0.5}}
                for i in range(5000)]
        for lo in range(0, 5000, 1500):  # batches across chunk boundaries: the partial chunk rewritten
            store.apply_batch("p", run, {"rows": rows[lo:lo + 1500]})
    s = series_chunks.c
    with store.write_engine.begin() as conn:
        written = sorted(map(tuple, conn.execute(sa.select(s.run, s.key, s.chunk, s.sums, s.data))))
    assert len(written) == 2 * 2 * 3
    for *_k, sums, data in written:
        assert sums == point_sums(*decode_points(data))
    # An upgraded store: the column missing, 0013 not applied.
    with store.write_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE series_chunks DROP COLUMN sums"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.name == "0013_chunk_sums"))
    monkeypatch.setattr(migrations, "SUM_PIECE", 5)
    real, calls = migrations.fill_sums, [0]

    def dies_on_the_second_piece(*args: Any) -> int:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt("killed mid-migration")
        return real(*args)

    monkeypatch.setattr(migrations, "fill_sums", dies_on_the_second_piece)
    with pytest.raises(KeyboardInterrupt):
        migrations.migrate(store.write_engine, lambda _line: None)
    with store.write_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(s.sums.is_not(None))).scalar_one() == 5
    monkeypatch.setattr(migrations, "fill_sums", real)
    lines: list[str] = []
    assert migrations.migrate(store.write_engine, lines.append) == ["0013_chunk_sums"]
    assert lines == ["summing series chunks: 5/7", "summing series chunks: 7/7"]  # only what was left
    with store.write_engine.begin() as conn:
        assert sorted(map(tuple, conn.execute(sa.select(s.run, s.key, s.chunk, s.sums, s.data)))) == written


def test_flat_numeric_rows_split_by_their_plan_as_the_walk_splits_them() -> None:
    """``split_row``'s plan for flat rows of plain numbers gives the template and points the
    general walk gives, including the rows the plan hands back to the walk (a reserved value its
    column does not give back, an int beyond a double's precision)."""
    from wandblite.server import chunks

    def walked(row: dict[str, Any], cols: tuple[Any, ...]) -> tuple[str, dict[str, float]]:
        leaves: dict[str, float] = {}
        lits: list[Any] = []
        out = chunks._split(row, "", leaves, lits, cols)
        return json_text([out, lits] if lits else out), leaves

    cases: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
        ({"_step": 3, "loss": 0.5, "acc": 7, "_runtime": 1.5, "_timestamp": 1.7e9}, (3, 1.5, 1.7e9)),
        ({"loss": 0.5, "_step": 3}, (3, None, None)),
        ({"_step": 3.0, "loss": 0.5}, (None, None, None)),  # a float step: no step column
        ({"_step": 3, "loss": 0.5}, (None, None, None)),  # a step beyond the column
        ({"_step": 3, "_runtime": float("nan"), "x": 1.0}, (3, None, None)),
        ({"_step": 3, "_runtime": -0.0, "x": 1.0}, (3, 0.0, None)),  # the sign of zero differs
        ({"_step": 3, "_runtime": 2, "x": 1.0}, (3, 2.0, None)),  # an int runtime: a literal
        ({"_step": 1, "big": 2**53 + 1, "x": float("nan"), "y": float("-inf")}, (1, None, None)),
        ({"_step": 1, "huge": 10**400}, (1, None, None)),
        ({"_step": 1, "edge": -(2**53), "z": -0.0}, (1, None, None)),
        ({}, (None, None, None)),
    ]
    nan, big, rt = float("nan"), 2**60, 2.5
    cases += [({"_step": big, "_runtime": rt, "x": 1.0}, (big, rt, None)),  # the columns hold the row's objects
              ({"_step": 1, "_runtime": nan}, (1, nan, None))]
    for row, cols in cases:
        for _ in range(2):  # the first call makes the plan, the second uses it
            got = chunks.split_row(row, *cols)
            want = walked(row, cols)
            # as text: key order, NaN, -0.0 and float vs int all count
            assert (got[0], json_text(list(got[1].items()))) == (want[0], json_text(list(want[1].items()))), row
