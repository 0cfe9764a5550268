"""A run's history in the compact layout: writing chunks at ingest, reading rows and points back.

Layer 5 (the server). The tables are ``history_chunks``, ``series_chunks`` and ``history_pending``
(``schema.py``); the codec is ``chunks.py``. What it promises:

* ``write_rows(conn, pk, held, pending, recs)`` stores a batch's rows (``wire.Row``, indexes from
  ``held`` on) in the caller's transaction: a provisional row stored before is dropped, final rows
  are appended to the run's chunks (the partial last chunk is read, extended and written again; every
  other chunk a batch touches is new), and a provisional last row goes to ``history_pending``.
  Each chunk's statistics are computed as it is written, so a reader never writes. Statements are
  one ``executemany`` per table (a batch of 10,000 rows of 10 keys is 5 row chunks and 50 series
  chunks: a few dozen database rows instead of 110,000).
* ``read_rows(conn, pk, lo, hi)`` gives the final rows with indexes in ``[lo, hi)`` (the caller
  bounds ``hi`` by ``rows_final``) exactly as they were sent; ``pending_row`` gives the provisional row.
  ``read_blocks`` gives the same rows as blocks for the msgpack history answer: a flat template's
  rows as numpy columns cut straight from the decoded chunk (``chunks.flat_blocks``), other rows built.
* ``key_sums`` (one key's stored block sums, ``chunks.point_sums``; None for a chunk written before
  they were, which a reader decodes instead) serves the grouped charts; ``fill_sums`` sums such chunks.
* ``key_chunks`` (statistics of one key's chunks), ``key_points`` (decoded points of some chunks) and
  ``row_values`` (a reserved column at some indexes) serve the charts; ``key_summaries`` the key list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wandblite.server.chunks import (
    CHUNK_ROWS,
    CHUNK_SHIFT,
    RowColumns,
    decode_points,
    decode_rows,
    dense_points,
    encode_points,
    encode_rows,
    flat_blocks,
    join_blocks,
    join_rows,
    point_stats,
    point_sums,
)
from wandblite.server.schema import history_chunks, history_pending, series_chunks

__all__ = ["PendingRow", "RowValues", "fill_sums", "key_chunks", "key_points", "key_sums", "key_summaries", "pending_row", "read_blocks",
           "read_rows", "row_values", "rows_at", "write_rows"]

#: A provisional row: (idx, step, runtime, timestamp, row).
PendingRow = tuple[int, Any, Any, Any, dict[str, Any]]
_COLUMNS = ("step", "runtime", "timestamp")


# --------------------------------------------------------------------------- writing


def write_rows(conn: Connection, pk: int, held: int, pending: bool, recs: Sequence[tuple[int, Any]]) -> None:
    """Store ``recs`` (``(idx, wire.Row)``, idx from ``held`` on, only the last one may be provisional)."""
    if pending:
        conn.execute(history_pending.delete().where(history_pending.c.run == pk))
    finals = [rec for rec in recs if rec[1].final]
    if finals:
        _append(conn, pk, held, finals)
    idx, last = recs[-1]
    if not last.final:
        conn.execute(history_pending.insert().values(run=pk, idx=idx, step=last.step, runtime=last.runtime,
                                                     timestamp=last.timestamp, row=last.text))


class _ChunkBuild:
    """One chunk being written: its rows' templates and columns, and each key's points."""

    __slots__ = ("groups", "rewrite", "rt", "step", "templates", "ts")

    def __init__(self) -> None:
        self.templates: list[str] = []
        self.step: list[int | None] = []
        self.rt: list[float | None] = []
        self.ts: list[float | None] = []
        # template -> (its keys, positions of its rows, their points): rows of one template have the
        # same numeric keys in the same order, so their values make a matrix, one column per key.
        self.groups: dict[str, tuple[tuple[str, ...], list[int], list[dict[str, float]]]] = {}
        self.rewrite = False  # the chunk exists (partial) and is written again

    def points(self) -> dict[str, tuple[Any, Any]]:
        """key -> (positions, values) of the rows added, in position order."""
        import numpy as np

        parts: dict[str, list[tuple[Any, Any]]] = {}
        for keys, pos, vals in self.groups.values():
            if not keys:
                continue
            p = np.asarray(pos, dtype=np.int64)
            m = np.fromiter(chain.from_iterable(map(dict.values, vals)), dtype=np.float64,
                            count=len(pos) * len(keys)).reshape(len(pos), len(keys))
            for j, key in enumerate(keys):
                parts.setdefault(key, []).append((p, m[:, j]))
        out: dict[str, tuple[Any, Any]] = {}
        for key, got in parts.items():
            if len(got) == 1:
                out[key] = got[0]
                continue
            p = np.concatenate([g[0] for g in got])
            v = np.concatenate([g[1] for g in got])
            order = np.argsort(p, kind="stable")
            out[key] = (p[order], v[order])
        return out


def _append(conn: Connection, pk: int, held: int, finals: Sequence[tuple[int, Any]]) -> None:
    import numpy as np

    builds: dict[int, _ChunkBuild] = {}
    old_points: dict[str, tuple[Any, Any]] = {}
    c0 = held >> CHUNK_SHIFT
    if held & (CHUNK_ROWS - 1):
        # The partial last chunk: its rows are read back and written again with the new ones.
        b = builds[c0] = _ChunkBuild()
        b.rewrite = True
        cols = _row_chunk(conn, pk, c0)
        if cols is None or len(cols) != held - (c0 << CHUNK_SHIFT):
            raise RuntimeError(f"run {pk}: history chunk {c0} does not end at row {held}")
        b.templates = [cols.templates[t] for t in cols.tid]
        b.step, b.rt, b.ts = cols.step, cols.runtime, cols.timestamp
        for key, blob in conn.execute(sa.select(series_chunks.c.key, series_chunks.c.data).where(
                series_chunks.c.run == pk, series_chunks.c.chunk == c0)):
            old_points[key] = decode_points(blob)
    cur_c, cur = -1, _ChunkBuild()
    for idx, row in finals:
        c = idx >> CHUNK_SHIFT
        if c != cur_c:
            cur_c = c
            cur = builds.setdefault(c, _ChunkBuild())
        b = cur
        pos = len(b.templates)
        t = row.template
        b.templates.append(t)
        b.step.append(row.step)
        b.rt.append(row.runtime)
        b.ts.append(row.timestamp)
        g = b.groups.get(t)
        if g is None:
            g = b.groups[t] = (tuple(row.points), [], [])
        g[1].append(pos)
        g[2].append(row.points)
    row_params: list[dict[str, Any]] = []
    ser_params: list[dict[str, Any]] = []
    replaced_keys: list[str] = []
    for c, b in builds.items():
        first = c << CHUNK_SHIFT
        blob, step0 = encode_rows(b.templates, b.step, b.rt, b.ts)
        row_params.append({"run": pk, "chunk": c, "n": len(b.templates), "step0": step0, "data": blob})
        for key, (off, val) in b.points().items():
            if b.rewrite and key in old_points:
                o_off, o_val = old_points[key]
                off, val = np.concatenate([o_off, off]), np.concatenate([o_val, val])
                replaced_keys.append(key)
            stats = point_stats(first, off, val)
            ser_params.append({"run": pk, "key": key, "chunk": c, **stats,
                               "first_step": b.step[int(off[0])], "last_step": b.step[int(off[-1])],
                               "data": encode_points(off, val), "sums": point_sums(off, val)})
    if c0 in builds and builds[c0].rewrite:
        conn.execute(history_chunks.delete().where(history_chunks.c.run == pk, history_chunks.c.chunk == c0))
        for i in range(0, len(replaced_keys), 500):
            conn.execute(series_chunks.delete().where(series_chunks.c.run == pk, series_chunks.c.chunk == c0,
                                                      series_chunks.c.key.in_(replaced_keys[i:i + 500])))
    conn.execute(history_chunks.insert(), row_params)
    if ser_params:
        conn.execute(series_chunks.insert(), ser_params)


# --------------------------------------------------------------------------- reading rows


def _row_chunk(conn: Connection, pk: int, c: int) -> RowColumns | None:
    blob = conn.execute(sa.select(history_chunks.c.data).where(
        history_chunks.c.run == pk, history_chunks.c.chunk == c)).scalar()
    return None if blob is None else decode_rows(c << CHUNK_SHIFT, blob)


def read_rows(conn: Connection, pk: int, lo: int, hi: int) -> list[tuple[int, dict[str, Any]]]:
    """``(idx, row)`` of the run's final rows with ``lo <= idx < hi`` (``hi`` at most ``rows_final``), in order."""
    return rows_at(conn, pk, range(lo, hi)) if hi > lo else []


def rows_at(conn: Connection, pk: int, idxs: Sequence[int]) -> list[tuple[int, dict[str, Any]]]:
    """``(idx, row)`` of the run's final rows at the increasing indexes ``idxs`` (all below
    ``rows_final``), each chunk read and decoded once."""
    out: list[tuple[int, dict[str, Any]]] = []
    for first, cols, points, mine in _chunk_parts(conn, pk, idxs):
        out.extend(zip([first + p for p in mine], join_rows(cols, points, mine)))
    return out


def read_blocks(conn: Connection, pk: int, lo: int, hi: int) -> list[tuple[int, list[str] | None, list[Any]]]:
    """The final rows ``[lo, hi)`` (``hi`` at most ``rows_final``) as ``(first idx, keys, columns)``
    blocks of consecutive rows (``chunks.join_blocks``: ``keys`` None means ``columns`` are the
    rows themselves). What ``read_rows`` gives, without building the rows of a flat template."""
    out: list[tuple[int, list[str] | None, list[Any]]] = []
    if hi <= lo:
        return out
    h, s = history_chunks.c, series_chunks.c
    c_lo, c_hi = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
    for g in range(c_lo, c_hi + 1, 64):  # a few chunks per statement: bounded memory, few round trips
        g_hi = min(c_hi, g + 63)
        blobs = dict(conn.execute(sa.select(h.chunk, h.data).where(h.run == pk, h.chunk >= g, h.chunk <= g_hi)).all())
        points: dict[int, dict[str, tuple[Any, Any]]] = {c: {} for c in blobs}
        for c, key, blob in conn.execute(sa.select(s.chunk, s.key, s.data).where(
                s.run == pk, s.chunk >= g, s.chunk <= g_hi)):
            if c in points:
                points[c][key] = decode_points(blob)
        for c in range(g, g_hi + 1):
            if c not in blobs:
                continue
            first = c << CHUNK_SHIFT
            a, b = max(lo, first) - first, min(hi, first + CHUNK_ROWS) - first
            got = flat_blocks(first, blobs[c], points[c], a, b)
            if got is None:  # some template not flat: rows built one by one
                cols = decode_rows(first, blobs[c])
                dense = {k: dense_points(len(cols), off, val) for k, (off, val) in points[c].items()}
                mine = list(range(a, min(b, len(cols))))
                out.extend((first + pos[0], keys, rows) for pos, keys, rows in join_blocks(cols, dense, mine))
            else:
                out.extend(got)
    return out


def _chunk_parts(conn: Connection, pk: int, idxs: Sequence[int],
                 ) -> Iterator[tuple[int, RowColumns, dict[str, list[float]], list[int]]]:
    """Per chunk holding some of the increasing ``idxs``: its first index, its decoded row columns,
    its keys' values by position (``dense_points``) and the positions of the wanted rows in it."""
    if not idxs:
        return
    by_chunk: dict[int, list[int]] = {}
    if isinstance(idxs, range) and idxs.step == 1:
        for c in range(idxs.start >> CHUNK_SHIFT, ((idxs.stop - 1) >> CHUNK_SHIFT) + 1):
            first = c << CHUNK_SHIFT
            by_chunk[c] = list(range(max(idxs.start, first), min(idxs.stop, first + CHUNK_ROWS)))
    else:
        for i in idxs:
            by_chunk.setdefault(i >> CHUNK_SHIFT, []).append(i)
    want = sorted(by_chunk)
    h, s = history_chunks.c, series_chunks.c
    for g in range(0, len(want), 64):  # a few chunks per statement: bounded memory, few round trips
        part = want[g:g + 64]
        cond_h = h.chunk.in_(part) if len(part) < part[-1] - part[0] + 1 else sa.and_(h.chunk >= part[0], h.chunk <= part[-1])
        chunks = {int(c): decode_rows(int(c) << CHUNK_SHIFT, blob)
                  for c, blob in conn.execute(sa.select(h.chunk, h.data).where(h.run == pk, cond_h))}
        cond_s = s.chunk.in_(part) if len(part) < part[-1] - part[0] + 1 else sa.and_(s.chunk >= part[0], s.chunk <= part[-1])
        points: dict[int, dict[str, list[float]]] = {c: {} for c in chunks}
        for c, key, blob in conn.execute(sa.select(s.chunk, s.key, s.data).where(s.run == pk, cond_s)):
            cols = chunks.get(int(c))
            if cols is not None:
                off, val = decode_points(blob)
                points[int(c)][key] = dense_points(len(cols), off, val)
        for c in part:
            cols = chunks.get(c)
            if cols is None:
                continue
            first = c << CHUNK_SHIFT
            n = len(cols)
            got = by_chunk[c]
            if got[-1] - first < n:
                mine = [i - first for i in got]
            else:
                mine = [i - first for i in got if i - first < n]
            if mine:
                yield first, cols, points[c], mine


def pending_row(conn: Connection, pk: int) -> PendingRow | None:
    """The run's provisional row, or None."""
    p = history_pending.c
    r = conn.execute(sa.select(p.idx, p.step, p.runtime, p.timestamp, p.row).where(p.run == pk)).first()
    return None if r is None else (int(r.idx), r.step, r.runtime, r.timestamp, json.loads(r.row))


# --------------------------------------------------------------------------- reading points


def key_summaries(conn: Connection, pk: int) -> dict[str, tuple[int, Any, Any]]:
    """``key -> (points, first step, last step)`` over the run's final rows."""
    s = series_chunks.c
    out: dict[str, tuple[int, Any, Any]] = {}
    for key, n, first_step, last_step in conn.execute(
            sa.select(s.key, s.n, s.first_step, s.last_step).where(s.run == pk).order_by(s.key, s.chunk)):
        got = out.get(key)
        out[key] = (int(n), first_step, last_step) if got is None else (got[0] + int(n), got[1], last_step)
    return out


def key_chunks(conn: Connection, pk: int, key: str) -> list[tuple[Any, ...]]:
    """Statistics of the key's chunks in index order, as tuples ``(chunk, first_idx, last_idx, n,
    min_v, min_idx, max_v, max_idx)``."""
    s = series_chunks.c
    rows = conn.execute(sa.select(s.chunk, s.first_idx, s.last_idx, s.n, s.min_v, s.min_idx, s.max_v,
                                  s.max_idx).where(s.run == pk, s.key == key).order_by(s.chunk)).all()
    return list(map(tuple, rows))


def key_sums(conn: Connection, pk: int, key: str) -> dict[int, bytes | None]:
    """``chunk -> chunks.point_sums`` blob of the key's chunks (None where not stored yet)."""
    s = series_chunks.c
    return {int(c): None if b is None else bytes(b)
            for c, b in conn.execute(sa.select(s.chunk, s.sums).where(s.run == pk, s.key == key))}


def fill_sums(conn: Connection, limit: int) -> int:
    """Store the block sums of up to ``limit`` series chunks lacking them (decoding each); how many."""
    s = series_chunks.c
    todo = conn.execute(sa.select(s.run, s.key, s.chunk, s.data).where(s.sums.is_(None)).limit(limit)).all()
    params = [{"r": r, "k": k, "c": c, "s": point_sums(*decode_points(blob))} for r, k, c, blob in todo]
    if params:
        conn.execute(series_chunks.update().where(s.run == sa.bindparam("r"), s.key == sa.bindparam("k"),
                                                  s.chunk == sa.bindparam("c")).values(sums=sa.bindparam("s")),
                     params)
    return len(params)


def key_points(conn: Connection, pk: int, key: str, chunks: Iterable[int]) -> dict[int, tuple[Any, Any]]:
    """``chunk -> (indexes, values)`` (numpy int64, float64) of the key's points in those chunks."""
    s = series_chunks.c
    want = sorted(set(chunks))
    out: dict[int, tuple[Any, Any]] = {}
    for i in range(0, len(want), 500):
        part = want[i:i + 500]
        for c, blob in conn.execute(sa.select(s.chunk, s.data).where(s.run == pk, s.key == key, s.chunk.in_(part))):
            off, val = decode_points(blob)
            out[int(c)] = (off + (int(c) << CHUNK_SHIFT), val)
    return out


class RowValues:
    """A reserved column (``step``, ``runtime``, ``timestamp``) of a run's final rows, read by chunk on demand."""

    def __init__(self, conn: Connection, pk: int, column: str) -> None:
        self.conn, self.pk, self.col = conn, pk, _COLUMNS.index(column)
        self._chunks: dict[int, RowColumns | None] = {}
        self._step0: dict[int, tuple[int, Any]] = {}

    def preload(self, idxs: Iterable[int]) -> None:
        """Read the chunks holding ``idxs`` in a few statements (a chunk whose steps are regular is not decoded)."""
        want = sorted({i >> CHUNK_SHIFT for i in idxs} - set(self._chunks) - set(self._step0))
        h = history_chunks.c
        for i in range(0, len(want), 500):
            part = want[i:i + 500]
            if self.col == 0:
                # Regular chunks by a range (small rows, no blob; an IN list of hundreds costs more to build).
                wanted = set(part)
                regular = {c: (n, s0) for c, n, s0 in self.conn.execute(
                    sa.select(h.chunk, h.n, h.step0).where(h.run == self.pk, h.chunk >= part[0], h.chunk <= part[-1],
                                                           h.step0.is_not(None))).all() if c in wanted}
                self._step0.update(regular)
                part = [c for c in part if c not in regular]
                if not part:
                    continue
            for c, blob in self.conn.execute(sa.select(h.chunk, h.data).where(h.run == self.pk, h.chunk.in_(part))):
                self._chunks[int(c)] = decode_rows(int(c) << CHUNK_SHIFT, blob)
            for c in part:
                self._chunks.setdefault(c, None)

    def get(self, idx: int) -> Any:
        """The column's value at final row ``idx`` (None when the row has none or does not exist)."""
        c = idx >> CHUNK_SHIFT
        reg = self._step0.get(c)
        if reg is not None:
            pos = idx - (c << CHUNK_SHIFT)
            return reg[1] + pos if pos < reg[0] else None
        if c not in self._chunks:
            self.preload([idx])
            return self.get(idx)
        cols = self._chunks[c]
        if cols is None:
            return None
        pos = idx - cols.first
        if pos >= len(cols):
            return None
        return (cols.step, cols.runtime, cols.timestamp)[self.col][pos]


def row_values(conn: Connection, pk: int, column: str) -> RowValues:
    """A reader of one reserved column of the run's final rows (``RowValues``)."""
    return RowValues(conn, pk, column)
