"""``Run.log`` plans a call's step with the fold's tables on its common paths; the answer is ``plan_log``'s.

The tables (``fold.FLUSH_AFTER_NO_STEP``/``FLUSH_AFTER_AT_STEP``) are derived from ``plan_log``, the
one rule; these tests hold ``run.step`` after every call of random call sequences (no step, the
current step, a later one, an earlier one; commit None, True, False, or a non-bool; plain scalars
the C path frames and values only the Python path takes) to what ``plan_log`` says, and the
finished run's file to the same steps. They run with and without the C accelerator in CI.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wandblite
from wandblite.fold import FLUSH_AFTER_AT_STEP, FLUSH_AFTER_NO_STEP, plan_log


def test_the_tables_are_plan_logs_answers() -> None:
    for cur in (0, 5):
        for pending in (False, True):
            for commit in (None, True, False):
                assert plan_log(cur, pending, None, commit) == (False, False, cur, FLUSH_AFTER_NO_STEP[commit])
                for step in (cur, cur + 3):
                    drop, _before, at, after = plan_log(cur, pending, step, commit)
                    assert (drop, at, after) == (False, step, FLUSH_AFTER_AT_STEP[commit])


@pytest.mark.parametrize("seed", range(6))
def test_run_step_follows_plan_log_call_by_call(new_run: Callable[..., Any], tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    run = new_run(id=f"plan{seed}", settings=wandblite.Settings(quiet=True))
    cur, pending = 0, False
    for i in range(300):
        step = rng.choice([None, None, "cur", "later", "earlier"])
        step_arg = {None: None, "cur": cur, "later": cur + rng.randint(1, 3), "earlier": cur - 1}[step]
        if step_arg is not None and step_arg < 0:
            step_arg = None
        commit = rng.choice([None, None, True, False, False, 1])
        data: dict[str, Any] = {"x": float(i), "n": i} if rng.random() < 0.8 else {"x": [i], "s": None}
        drop, _before, at, after = plan_log(cur, pending, step_arg, commit)
        run.log(data, step=step_arg, commit=commit)
        if not drop:
            cur, pending = (at + 1, False) if after else (at, True)
        assert run.step == cur, (i, step_arg, commit)
    run.finish()
    assert run.step == (cur + 1 if pending else cur) == wandblite.replay(tmp_path / f"plan{seed}").step
