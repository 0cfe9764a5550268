"""The fast paths of a shared run's replay give what the plain paths give.

* ``merge_windows`` (what replay uses: windows of rows, the lowest-ranked writer's row updated in
  place, whole lists of same-step rows combined at once) yields the rows a step-by-step reference
  merge gives (rows grouped by ``_step``, ``combine_rows`` in precedence order), whatever the
  batching of the streams, the ``flat`` answers (true only where the rows are flat) and ``inplace``.
* ``Fold.add_rows`` leaves the fold as ``add_row`` on each row does, flat or not (a None, a
  subtree, a media value, metric definitions), whatever ``flat`` claims.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wandblite.fold import Fold
from wandblite.merge import combine_rows, merge_batches, merge_rows, merge_windows
from wandblite.vocab import RUNTIME, STEP, TIMESTAMP

KEYS = ("a", "b", "c", "d")


def _value(draw: Any, flat: bool) -> Any:
    if flat:
        return draw(st.one_of(st.integers(-3, 3), st.floats(0, 1), st.booleans(), st.sampled_from(["s", "t"])))
    return draw(st.one_of(st.integers(-3, 3), st.none(), st.just({"x": 1}), st.just({"y": None, "z": 2}),
                          st.just({"_type": "image-file", "path": "p.png"})))


@st.composite
def step_lists(draw: Any) -> list[int]:
    steps, step = [], draw(st.integers(-1, 3))
    for _ in range(draw(st.integers(0, 30))):
        step += draw(st.sampled_from([1, 1, 1, 2, 5]))
        steps.append(step)
    return steps


@st.composite
def writer_rows(draw: Any, label: str, steps: list[int] | None = None, nested: bool = True) -> list[dict[str, Any]]:
    """One writer's committed rows: increasing steps (``steps``, or its own), scalars (mostly,
    when ``nested``: sometimes more)."""
    rows = []
    for step in steps if steps is not None else draw(step_lists()):
        flat = not nested or draw(st.integers(0, 5)) > 0
        row: dict[str, Any] = {}
        for k in draw(st.lists(st.sampled_from([*KEYS, f"own_{label}"]), max_size=4, unique=True)):
            row[k] = _value(draw, flat)
        row[TIMESTAMP] = float(step) + draw(st.sampled_from([0.0, 0.5]))
        row[STEP] = step
        row[RUNTIME] = float(step) / 2
        rows.append(row)
    return rows


def _is_flat(row: dict[str, Any]) -> bool:
    return all(type(v) in (str, int, float, bool) for v in row.values())


def _batches(rows: list[dict[str, Any]], cuts: list[int]) -> list[list[dict[str, Any]]]:
    out, i = [], 0
    for c in cuts:
        out.append(rows[i:i + c])
        i += c
    out.append(rows[i:])
    return out  # some of them empty


def _reference(streams: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    by_step: dict[int, list[dict[str, Any]]] = {}
    for rows in streams:  # highest-ranked first
        for row in rows:
            by_step.setdefault(row[STEP], []).append(row)
    return [combine_rows(by_step[s]) for s in sorted(by_step)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(1, 5), lockstep=st.booleans(), nested=st.booleans())
def test_merge_windows_gives_the_step_by_step_merge(data: Any, n: int, lockstep: bool, nested: bool) -> None:
    steps = data.draw(step_lists()) if lockstep else None  # ranks logging in step, or each its own
    streams = [data.draw(writer_rows(f"w{i}", steps, nested)) for i in range(n)]
    want = _reference(copy.deepcopy(streams))
    # every stream cut into random batches
    batched = []
    for rows in streams:
        cuts = data.draw(st.lists(st.integers(0, 7), max_size=8))
        batched.append(_batches(rows, cuts))
    inplace = data.draw(st.booleans())
    lie_flat = data.draw(st.booleans())  # without a flat callback, or one that knows
    asked: list[int] = []

    def flat(rows: list[dict[str, Any]]) -> bool:
        asked.extend(map(id, rows))
        return all(map(_is_flat, rows))

    given_rows = copy.deepcopy(batched)
    got: list[dict[str, Any]] = []
    for rows, rows_flat in merge_windows(given_rows, flat=flat if lie_flat else None, inplace=inplace):
        if rows_flat:
            assert all(map(_is_flat, rows))
        got.extend(rows)
    assert got == want
    assert [list(row) for row in got] == [list(row) for row in want]  # the keys in the same order too
    assert [row[STEP] for row in got] == sorted({row[STEP] for rows in streams for row in rows})
    if lie_flat:  # asked once about every row
        assert len(asked) == len(set(asked)) == sum(map(len, streams))
    if not inplace:  # the given rows are left as they were
        assert given_rows == batched


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_merge_rows_and_batches_agree_with_windows_and_rank(data: Any) -> None:
    n = data.draw(st.integers(2, 4))
    steps = data.draw(st.one_of(st.none(), step_lists()))
    streams = [data.draw(writer_rows(f"w{i}", steps)) for i in range(n)]
    order = data.draw(st.permutations(range(n)))
    ranked = [streams[i] for i in order]  # the reference wants highest-ranked first
    want = _reference(copy.deepcopy(ranked))
    rank = {i: pos for pos, i in enumerate(order)}.__getitem__
    assert list(merge_rows(copy.deepcopy(streams), rank=rank)) == want
    assert list(merge_batches([[r] for r in copy.deepcopy(streams)], rank=rank)) == want


@st.composite
def summary_rows(draw: Any) -> list[dict[str, Any]]:
    rows = []
    for step in range(draw(st.integers(0, 12))):
        flat = draw(st.integers(0, 3)) > 0
        row = {k: _value(draw, flat) for k in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True))}
        row[STEP] = step
        rows.append(row)
    return rows


def _fold_state(f: Fold) -> tuple[Any, ...]:
    return f.summary, list(f.summary), f.rows, f.step


@settings(max_examples=300, deadline=None)
@given(before=summary_rows(), rows=summary_rows(), flat=st.booleans(), metric=st.booleans())
def test_add_rows_is_add_row_on_each(before: list[dict[str, Any]], rows: list[dict[str, Any]], flat: bool,
                                     metric: bool) -> None:
    one, many = Fold(), Fold()
    if metric:
        for f in (one, many):
            f.define({"name": "a", "summary": ["max"], "step_metric": None, "step_sync": None, "hidden": None,
                      "goal": None, "overwrite": False})
    for f in (one, many):  # the same start, with a None or a subtree already in the summary at times
        for row in copy.deepcopy(before):
            f.add_row(row)
    for row in copy.deepcopy(rows):
        one.add_row(row)
    many.add_rows(copy.deepcopy(rows), flat)
    assert _fold_state(many) == _fold_state(one)
