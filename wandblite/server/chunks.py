"""The compact history codec: a run's rows as chunks, each metric's points as packed float64.

Layer 5 (the server). Pure functions, no database: ``history_store.py`` reads and writes what they
make. numpy and zstandard are imported when first needed.

What it promises
----------------
* A history row is split (``split_row``) into its *template* and its numeric leaves. The template is
  the row with every numeric leaf replaced by a placeholder (``0``: an int read back from the
  metric's series, ``0.0``: a float read back from it, ``1``: the next of the row's literals), and
  the reserved keys ``_step``/``_runtime``/``_timestamp`` replaced the same way when the row's
  columns (``step``, ``runtime``, ``timestamp``) give them back exactly. The leaves are the values a
  metric's points hold: the same keys and values ``indexes.numeric_leaves`` gives, except that a
  NaN stays a NaN (and a second leaf with a dotted key already taken stays a literal). Rows of one run mostly share one template, so a chunk stores each distinct
  template once. A flat row of plain numbers (the usual scalar row) is split by a plan made once per
  row shape (its keys and value types), without walking its keys. ``join_rows`` gives back rows equal to the ones split (key order, nested dicts,
  media references, ints vs floats, NaN and +-Infinity, -0.0, ints beyond a double's precision).
* A run's rows are chunked by index: chunk ``c`` holds rows ``[c * CHUNK_ROWS, (c + 1) * CHUNK_ROWS)``
  (final rows only, the last chunk possibly partial). A row chunk (``encode_rows``) holds, per row,
  its template number, step (delta-encoded, with a null mask), runtime and timestamp (float64,
  NaN for null, byte-shuffled), all in one zstandard frame. A series chunk (``encode_points``)
  holds one key's points in the same index range: index offsets delta-encoded and the values as
  float64 (byte-shuffled), one zstandard frame; ``point_stats`` gives the statistics stored beside
  it (count, min and max over finite values with their indexes) so that a chart reads statistics
  first and decodes only the chunks a bucket boundary cuts. ``point_sums`` gives the sums stored
  beside them too: per block of ``SUM_BLOCK`` positions, the count and sum of the finite values and
  the sum of their positions, so that a grouped chart (``group_query``) takes a block lying inside
  one of its buckets without decoding.
* ``join_blocks`` gives a chunk's rows as blocks (a flat template's rows as one list per key) and
  ``flat_blocks`` the same as numpy columns straight from a chunk's blob, so that a reader sending
  rows on (the msgpack history answer) builds no row of a flat template.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from wandblite.vocab import RESERVED_KEYS, RUNTIME, STEP, TIMESTAMP, TYPE_KEY, json_text

__all__ = [
    "CHUNK_ROWS", "RowColumns", "decode_points", "decode_rows", "encode_points", "encode_rows", "flat_blocks", "join_blocks",
    "join_rows",
    "SUM_BLOCK", "SUM_BLOCKS", "SUM_DTYPE", "SUM_SHIFT", "point_stats", "point_sums", "read_sums", "split_row",
]

#: Rows per chunk (and the index span of a series chunk). A power of two: ``idx >> CHUNK_SHIFT``.
CHUNK_SHIFT = 11
CHUNK_ROWS = 1 << CHUNK_SHIFT
#: Positions per block of a series chunk's stored sums (``point_sums``); a chunk holds ``SUM_BLOCKS`` blocks.
SUM_SHIFT = 8
SUM_BLOCK = 1 << SUM_SHIFT
SUM_BLOCKS = CHUNK_ROWS >> SUM_SHIFT
#: Per block holding a finite value: count, sum of positions in the chunk, sum (a numpy dtype spec).
SUM_DTYPE = "<u2,<u4,<f8"
_ZSTD_LEVEL = 3
_EXACT_INT = 1 << 53  # ints up to this magnitude survive a float64
_INT, _FLOAT, _LIT = 0, 0.0, 1  # placeholders in a template (tested by type and value)
_COLUMN_OF = {STEP: 0, RUNTIME: 1, TIMESTAMP: 2}
_JSON_NAN = json.loads("NaN")


# --------------------------------------------------------------------------- templates


def _split(d: dict[str, Any], prefix: str, leaves: dict[str, float], lits: list[Any],
           cols: tuple[Any, ...] | None = None) -> dict[str, Any]:
    """The template of a (sub)tree: numeric leaves moved to ``leaves``, kept literals to ``lits``;
    at the top (``cols``: the row's columns) the reserved keys come from the columns.

    Hot path: the number test (``vocab.is_plain_number``) and the subtree test (``vocab.is_subtree``)
    are inlined, as in ``indexes.numeric_leaves``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        t = type(v)
        if cols is not None and k in _COLUMN_OF:
            if t is int or t is float:
                ph = _from_column(v, cols[_COLUMN_OF[k]])
                if ph is None:
                    out[k] = _LIT
                    lits.append(v)
                else:
                    out[k] = ph
            else:
                out[k] = v
        elif t is float:
            key = prefix + k
            if key in leaves:  # a second leaf with the same dotted key ({"a.b": 1, "a": {"b": 2}})
                out[k] = _LIT
                lits.append(v)
            else:
                leaves[key] = v
                out[k] = _FLOAT
        elif t is int:
            key = prefix + k
            try:
                f = float(v)
            except OverflowError:  # no chart value; the row keeps it
                out[k] = _LIT
                lits.append(v)
                continue
            if key in leaves:
                out[k] = _LIT
                lits.append(v)
                continue
            leaves[key] = f
            if -_EXACT_INT <= v <= _EXACT_INT:
                out[k] = _INT
            else:  # the chart gets float(v); the row keeps the exact int
                out[k] = _LIT
                lits.append(v)
        elif t is dict and TYPE_KEY not in v:
            out[k] = _split(v, f"{prefix}{k}.", leaves, lits)
        else:
            out[k] = v
    return out


def _from_column(v: Any, c: Any) -> Any:
    """The placeholder for reserved value ``v`` when column value ``c`` gives it back exactly, else None."""
    if c is None:
        return None
    t = type(v)
    if t is int:
        return _INT if type(c) is int and c == v and -_EXACT_INT <= v <= _EXACT_INT else None
    if t is float and v == v:
        f = float(c)
        return _FLOAT if f == v and math.copysign(1.0, f) == math.copysign(1.0, v) else None
    return None


def split_row(row: dict[str, Any], step: int | None, runtime: float | None, timestamp: float | None,
              ) -> tuple[str, dict[str, float]]:
    """``(template text, {dotted key: value})`` of a history row whose columns are ``step``,
    ``runtime`` and ``timestamp`` (``wire.prep_rows``'s ``int64``/``finite_number`` of its reserved keys)."""
    shape = (tuple(row), tuple(map(type, row.values())))
    plan = _FLAT_NUMERIC.get(shape)
    if plan is None and shape not in _FLAT_NUMERIC:
        if len(_FLAT_NUMERIC) >= 4096:
            _FLAT_NUMERIC.clear()
        plan = _FLAT_NUMERIC[shape] = _numeric_plan(*shape)
    if plan:
        got = _split_numeric(row, plan, (step, runtime, timestamp))
        if got is not None:
            return got
    leaves: dict[str, float] = {}
    lits: list[Any] = []
    out = _split(row, "", leaves, lits, (step, runtime, timestamp))
    if lits:
        return json_text([out, lits]), leaves
    try:  # a flat template's text is looked up by its items and their types (0 == 0.0 == False)
        sig = (tuple(out.items()), tuple(map(type, out.values())))
        text = _TEXTS.get(sig)
    except TypeError:  # a subtree, a list or a typed value: unhashable
        return json_text(out), leaves
    if text is None:
        if len(_TEXTS) >= 4096:
            _TEXTS.clear()
        text = _TEXTS[sig] = json_text(out)
    return text, leaves


#: A flat row of plain numbers' plan: its template text, its reserved keys with their column
#: numbers, its int leaves (``_numeric_plan``).
_NumericPlan = tuple[str, tuple[tuple[str, int], ...], tuple[str, ...]]


def _numeric_plan(keys: tuple[str, ...], types: tuple[type, ...]) -> _NumericPlan | None:
    """For rows with these keys whose values have these types, all ints and floats (not bools): the
    template ``_split`` makes when every reserved value comes back from its column and every int is
    exact in a double, and what ``_split_numeric`` checks for that. None for any other row shape."""
    if not all(t is int or t is float for t in types):
        return None
    template = {k: _INT if t is int else _FLOAT for k, t in zip(keys, types)}
    reserved = tuple((k, _COLUMN_OF[k]) for k in keys if k in _COLUMN_OF)
    ints = tuple(k for k, t in zip(keys, types) if t is int and k not in _COLUMN_OF)
    return json_text(template), reserved, ints


def _split_numeric(row: dict[str, Any], plan: _NumericPlan, cols: tuple[Any, ...]) -> tuple[str, dict[str, float]] | None:
    """``split_row`` of a flat row of plain numbers by its ``_numeric_plan``: the hot path of a
    scalar history (no per-key walk). None when the plan does not hold for this row (a reserved value
    its column does not give back, an int beyond a double's precision): ``_split`` decides then."""
    text, reserved, ints = plan
    for k, c in reserved:
        v, col = row[k], cols[c]
        # The usual case at once: the column holds the row's own object (wire.prep_rows passes a
        # finite float, or an int64 step, through), which gives back a float (not NaN) and an exact int.
        if v is col and (v == v if type(v) is float else -_EXACT_INT <= v <= _EXACT_INT):
            continue
        if _from_column(v, col) is None:
            return None
    leaves = row.copy()
    for k, _c in reserved:
        del leaves[k]
    for k in ints:
        v = leaves[k]
        if not -_EXACT_INT <= v <= _EXACT_INT:
            return None
        leaves[k] = float(v)
    return text, leaves


#: Plans of flat numeric rows by (keys, value types): most runs log a handful of row shapes.
_FLAT_NUMERIC: dict[tuple[tuple[str, ...], tuple[type, ...]], _NumericPlan | None] = {}

_local = threading.local()

#: Template texts of flat templates by signature: most runs log a handful of row shapes.
_TEXTS: dict[Any, str] = {}


#: A template's fill plan: (path to the container, key in it, dotted key or column number, kind).
_Plan = list[tuple[tuple[str, ...], str, Any, Any]]


def _plan(tree: dict[str, Any], path: tuple[str, ...], prefix: str, top: bool, plan: _Plan) -> None:
    for k, v in tree.items():
        t = type(v)
        if t is int or t is float:
            if top and k in _COLUMN_OF:
                plan.append((path, k, None if v == _LIT and t is int else _COLUMN_OF[k], v))
            else:
                plan.append((path, k, None if v == _LIT and t is int else prefix + k, v))
        elif t is dict and TYPE_KEY not in v and not (top and k in _COLUMN_OF):
            _plan(v, (*path, k), f"{prefix}{k}.", False, plan)


class RowColumns:
    """A decoded row chunk: the first index, per row its template number, step, runtime, timestamp."""

    __slots__ = ("first", "runtime", "step", "templates", "tid", "timestamp")

    def __init__(self, first: int, templates: list[str], tid: list[int], step: list[int | None],
                 runtime: list[float | None], timestamp: list[float | None]) -> None:
        self.first, self.templates, self.tid = first, templates, tid
        self.step, self.runtime, self.timestamp = step, runtime, timestamp

    def __len__(self) -> int:
        return len(self.tid)


_FLAT_CONST = (str, bool, type(None))  # values a flat template may share between its rows (immutable)


def _flat_plan(obj: Any) -> list[tuple[str, int, Any, Any]] | None:
    """For a template whose values are placeholders or immutable scalars only (no literals, no
    subtree, no list or typed value): per key ``(key, source, what, kind)``, source 0 a constant,
    1 a point (``what``: the key), 2 a row column (``what``: its number). Else None."""
    if type(obj) is not dict:
        return None
    plan: list[tuple[str, int, Any, Any]] = []
    for k, v in obj.items():
        t = type(v)
        if t is int or t is float:
            if t is int and v == _LIT:
                return None
            if k in _COLUMN_OF:
                plan.append((k, 2, _COLUMN_OF[k], v))
            else:
                plan.append((k, 1, k, v))
        elif t in _FLAT_CONST:
            plan.append((k, 0, v, None))
        else:
            return None
    return plan


def join_rows(cols: RowColumns, points: dict[str, list[float]], positions: Sequence[int]) -> list[dict[str, Any]]:
    """The rows at ``positions`` (increasing) of a chunk: ``points`` maps each key to its values by
    position in the chunk (``dense_points``). Rows of a flat template are built a column at a time."""
    rows: list[dict[str, Any]] = []
    for _pos, keys, got in join_blocks(cols, points, positions):
        if keys is None:
            rows.extend(got)
        else:
            rows.extend(dict(zip(keys, v)) for v in zip(*got))
    return rows


def join_blocks(cols: RowColumns, points: dict[str, list[float]], positions: Sequence[int],
                ) -> list[tuple[Sequence[int], list[str] | None, list[Any]]]:
    """The rows at ``positions`` (increasing) of a chunk as blocks of consecutive positions, each
    ``(positions, keys, columns)``: rows of one flat template as its keys and one list of values per
    key (row ``i`` of the block is ``dict(zip(keys, [c[i] for c in columns]))``; every value a
    number, a str, a bool or None), or ``(positions, None, rows)`` for rows of any other template.
    A reader that sends rows on (``history_store.read_blocks``) need not build the flat ones."""
    flat: dict[int, list[tuple[str, int, Any, Any]] | None] = {}
    out: list[tuple[Sequence[int], list[str] | None, list[Any]]] = []
    tid = cols.tid
    columns = (cols.step, cols.runtime, cols.timestamp)
    n = len(positions)
    start = 0
    one = n > 0 and positions[-1] - positions[0] + 1 == n  # dense: one template throughout?
    if one:
        sl = tid[positions[0]:positions[-1] + 1]
        one = sl.count(sl[0]) == n
    while start < n:
        t = tid[positions[start]]
        end = n if one else start + 1
        while end < n and tid[positions[end]] == t:
            end += 1
        if t not in flat:
            flat[t] = _flat_plan(json.loads(cols.templates[t]))
        plan = flat[t]
        pos = positions[start:end]
        if not plan:  # None, or an empty row: no column to count the rows by
            out.append((pos, None, _join_slow(cols, points, pos)))
        else:
            lo, hi = pos[0], pos[-1] + 1
            dense = hi - lo == len(pos)
            keys = [k for k, _src, _what, _kind in plan]
            vals: list[Any] = []
            for _k, src, what, kind in plan:
                if src == 0:
                    vals.append([what] * len(pos))
                    continue
                full: list[Any] = points[what] if src == 1 else columns[what]
                col = full[lo:hi] if dense else [full[i] for i in pos]
                if type(kind) is int:
                    if src == 1 or what != 0:  # a column's steps are ints already
                        col = list(map(int, col))
                elif src == 2 and what == 0:  # runtime and timestamp columns are floats already
                    col = list(map(float, col))
                vals.append(col)
            out.append((pos, keys, vals))
        start = end
    return out


def _join_slow(cols: RowColumns, points: dict[str, list[float]], positions: Iterable[int]) -> list[dict[str, Any]]:
    """Rows of any template: parsed, then filled by the template's plan."""
    plans: dict[int, tuple[bool, _Plan]] = {}
    rows: list[dict[str, Any]] = []
    columns = (cols.step, cols.runtime, cols.timestamp)
    loads = json.loads
    for i in positions:
        t = cols.tid[i]
        text = cols.templates[t]
        obj = loads(text)
        got = plans.get(t)
        if got is None:
            lits_form = type(obj) is list
            plan: _Plan = []
            _plan(obj[0] if lits_form else obj, (), "", True, plan)
            got = plans[t] = (lits_form, plan)
        lits_form, plan = got
        lits: list[Any] = []
        if lits_form:
            obj, lits = obj
        n_lit = 0
        for path, k, src, kind in plan:
            box = obj
            for p in path:
                box = box[p]
            if src is None:
                box[k] = lits[n_lit]
                n_lit += 1
                continue
            v: Any = columns[src][i] if type(src) is int else points[src][i]
            box[k] = int(v) if type(kind) is int else float(v) if v == v else _JSON_NAN
        rows.append(obj)
    return rows


# --------------------------------------------------------------------------- byte containers


def _zstd() -> Any:
    import zstandard

    return zstandard


def _decompressor() -> Any:
    """A decompressor for this thread (zstandard's objects are not thread-safe; making one costs)."""
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = _zstd().ZstdDecompressor()
    return d


def _pack(parts: Sequence[bytes]) -> bytes:
    head = struct.pack(f"<I{len(parts)}I", len(parts), *(len(p) for p in parts))
    return _zstd().ZstdCompressor(level=_ZSTD_LEVEL).compress(head + b"".join(parts))


def _unpack(blob: bytes) -> list[Any]:
    """The parts ``_pack`` packed, as memoryviews of one decompressed buffer (no copies)."""
    raw = memoryview(_decompressor().decompress(blob))
    (n,) = struct.unpack_from("<I", raw)
    sizes = struct.unpack_from(f"<{n}I", raw, 4)
    out, pos = [], 4 + 4 * n
    for s in sizes:
        out.append(raw[pos:pos + s])
        pos += s
    return out


def _shuffle(a: Any) -> bytes:
    """float64 values with their bytes grouped by significance (exponents together): zstd then
    finds the repetition a slowly moving series has."""
    import numpy as np

    return np.ascontiguousarray(a.astype("<f8").view(np.uint8).reshape(-1, 8).T).tobytes()


def _unshuffle(b: bytes, n: int) -> Any:
    import numpy as np

    return np.frombuffer(b, dtype=np.uint8).reshape(8, n).T.copy().view("<f8").reshape(n)


def _delta(a: Any) -> bytes:
    import numpy as np

    return np.diff(a.astype(np.int64), prepend=np.int64(0)).astype("<i8").tobytes()


def _undelta(b: bytes) -> Any:
    import numpy as np

    return np.cumsum(np.frombuffer(b, dtype="<i8"))


# --------------------------------------------------------------------------- row chunks


def encode_rows(templates: list[str], step: list[int | None], runtime: list[float | None],
                timestamp: list[float | None]) -> tuple[bytes, int | None]:
    """A row chunk's blob from its rows' templates and columns, and its ``step0``: the first step
    when every step is ``step0 + position`` (then readers place a point without decoding)."""
    import numpy as np

    n = len(templates)
    distinct: dict[str, int] = {}
    tid = np.fromiter((distinct.setdefault(t, len(distinct)) for t in templates), dtype="<u2", count=n)
    null = np.fromiter((s is None for s in step), dtype=np.uint8, count=n)
    steps = np.fromiter((0 if s is None else s for s in step), dtype=np.int64, count=n)
    nan = math.nan
    rt = np.fromiter((nan if v is None else v for v in runtime), dtype=np.float64, count=n)
    ts = np.fromiter((nan if v is None else v for v in timestamp), dtype=np.float64, count=n)
    text = "\n".join(distinct).encode("utf-8")  # json_text never writes a raw newline
    blob = _pack([text, tid.tobytes(), null.tobytes(), _delta(steps), _shuffle(rt), _shuffle(ts)])
    step0 = None
    if n and not null.any() and bool((steps == steps[0] + np.arange(n, dtype=np.int64)).all()):
        step0 = int(steps[0])
    return blob, step0


def _nullable(a: Any) -> list[float | None]:
    """float64 values as a list, NaN (a null column) as None."""
    import numpy as np

    out: list[float | None] = a.tolist()
    for i in np.flatnonzero(np.isnan(a)).tolist():
        out[i] = None
    return out


def decode_rows(first: int, blob: bytes) -> RowColumns:
    import numpy as np

    text, tid_b, null_b, steps_b, rt_b, ts_b = _unpack(blob)
    tid = np.frombuffer(tid_b, dtype="<u2")
    n = len(tid)
    null = np.frombuffer(null_b, dtype=np.uint8).astype(bool)
    steps: list[int | None] = _undelta(steps_b).tolist()
    if null.any():
        for i in np.flatnonzero(null).tolist():
            steps[i] = None
    rt, ts = (_nullable(_unshuffle(b, n)) for b in (rt_b, ts_b))
    return RowColumns(first, str(text, "utf-8").split("\n"), tid.tolist(), steps, rt, ts)


def flat_blocks(first: int, blob: bytes, points: dict[str, tuple[Any, Any]], lo: int, hi: int,
                ) -> list[tuple[int, list[str], list[Any]]] | None:
    """``join_blocks`` of the rows at positions ``[lo, hi)`` of a row chunk (``blob``, first index
    ``first``) with numpy columns, when every row there has a flat template: ``(first idx, keys,
    columns)``, a column a float64 or int64 array (the values ``join_rows`` gives, as those types)
    or a list of one constant. ``points``: key -> ``decode_points`` of the chunk. None when some
    row's template is not flat (the caller then takes ``join_blocks``)."""
    import numpy as np

    text, tid_b, _null_b, steps_b, rt_b, ts_b = _unpack(blob)
    templates = str(text, "utf-8").split("\n")
    tid = np.frombuffer(tid_b, dtype="<u2")
    n = len(tid)
    hi = min(hi, n)
    if hi <= lo:
        return []
    t_slice = tid[lo:hi]
    cuts = (np.flatnonzero(t_slice[1:] != t_slice[:-1]) + 1).tolist()
    plans: dict[int, Any] = {}
    segs = []
    for a, b in zip([0, *cuts], [*cuts, hi - lo]):
        t = int(t_slice[a])
        if t not in plans:
            plans[t] = _flat_plan(json.loads(templates[t]))
        if not plans[t]:
            return None
        segs.append((lo + a, lo + b, plans[t]))
    cols: dict[Any, Any] = {}

    def column(src: int, what: Any) -> Any:
        got = cols.get((src, what))
        if got is None:
            if src == 1:
                off, val = points[what]
                got = np.full(n, np.nan)
                got[off] = val
            elif what == 0:
                got = _undelta(steps_b)
            else:
                got = _unshuffle(rt_b if what == 1 else ts_b, n)
            cols[(src, what)] = got
        return got

    out: list[tuple[int, list[str], list[Any]]] = []
    for a, b, plan in segs:
        keys, vals = [], []
        for k, src, what, kind in plan:
            keys.append(k)
            if src == 0:
                vals.append([what] * (b - a))
                continue
            col = column(src, what)[a:b]
            want = np.int64 if type(kind) is int else np.float64
            vals.append(col if col.dtype == want else col.astype(want))
        out.append((first + a, keys, vals))
    return out


# --------------------------------------------------------------------------- series chunks


def encode_points(offsets: Any, values: Any) -> bytes:
    """One key's points in a chunk: ``offsets`` (positions in the chunk, increasing) and float64 values."""
    return _pack([_delta(offsets), _shuffle(values)])


def decode_points(blob: bytes) -> tuple[Any, Any]:
    """``(offsets, values)`` as numpy arrays (int64, float64)."""
    off_b, val_b = _unpack(blob)
    offsets = _undelta(off_b)
    return offsets, _unshuffle(val_b, len(offsets))


def point_stats(first: int, offsets: Any, values: Any) -> dict[str, Any]:
    """``n``, ``first_idx``, ``last_idx``, and over finite values ``min_v``/``min_idx``/``max_v``/
    ``max_idx`` (the first index holding each; None when there is no finite value)."""
    import numpy as np

    finite = np.isfinite(values)
    out: dict[str, Any] = {"n": len(offsets), "first_idx": first + int(offsets[0]),
                           "last_idx": first + int(offsets[-1]), "min_v": None, "min_idx": None,
                           "max_v": None, "max_idx": None}
    if finite.any():
        lo = np.where(finite, values, np.inf)
        hi = np.where(finite, values, -np.inf)
        i, j = int(np.argmin(lo)), int(np.argmax(hi))
        out.update(min_v=float(values[i]), min_idx=first + int(offsets[i]), max_v=float(values[j]),
                   max_idx=first + int(offsets[j]))
    return out


def point_sums(offsets: Any, values: Any) -> bytes:
    """The sums stored beside a series chunk: one byte, bit ``k`` set when block ``k`` (positions
    ``[k * SUM_BLOCK, (k + 1) * SUM_BLOCK)``) holds a finite value, then per such block, in block
    order, the count of its finite values (uint16), the sum of their positions in the chunk (uint32)
    and the sum of the values (float64). Little-endian; 1 + 14 bytes per block."""
    import numpy as np

    finite = np.isfinite(values)
    off = np.asarray(offsets, dtype=np.int64)[finite]
    val = np.asarray(values, dtype=np.float64)[finite]
    blk = off >> SUM_SHIFT
    cnt = np.bincount(blk, minlength=SUM_BLOCKS)
    has = np.flatnonzero(cnt)
    out = np.zeros(len(has), dtype=np.dtype(SUM_DTYPE))
    out["f0"] = cnt[has]
    out["f1"] = np.bincount(blk, weights=off, minlength=SUM_BLOCKS)[has]
    out["f2"] = np.bincount(blk, weights=val, minlength=SUM_BLOCKS)[has]
    mask = int(np.bitwise_or.reduce(np.left_shift(1, has))) if len(has) else 0
    return bytes([mask]) + out.tobytes()


def read_sums(blob: bytes) -> tuple[Any, Any, Any, Any]:
    """``point_sums``'s blob as arrays over the blocks holding a finite value: ``(block, count,
    sum of positions, sum of values)``."""
    import numpy as np

    mask = blob[0]
    blocks = np.array([k for k in range(SUM_BLOCKS) if mask >> k & 1], dtype=np.int64)
    rec = np.frombuffer(blob, dtype=np.dtype(SUM_DTYPE), offset=1, count=len(blocks))
    return blocks, rec["f0"].astype(np.int64), rec["f1"].astype(np.float64), rec["f2"].astype(np.float64)


def dense_points(n: int, offsets: Any, values: Any) -> list[float]:
    """A key's values by position in a chunk of ``n`` rows (NaN where the key has no point)."""
    import numpy as np

    dense = np.full(n, np.nan)
    dense[offsets] = values
    out: list[Any] = dense.tolist()
    for i in offsets[np.isnan(values)].tolist():  # NaN as json.loads gives it (one shared object)
        out[i] = _JSON_NAN
    return out


assert tuple(_COLUMN_OF) == RESERVED_KEYS  # the three row columns are the reserved keys
