"""The runs table's fast paths (no filter, no search) give the answer of the general path, on SQLite and PostgreSQL.

``runs_query.list_runs`` without a filter or a search sorts light stand-ins and shapes only the
page; with a filter that every run matches it shapes every run and sorts those. Both must give the
same runs in the same order, for every way of ordering, any page, values missing or unorderable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import backend_store
from wandblite.server import runs_query
from wandblite.server.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with backend_store(request.param, tmp_path, "wl_runs_order") as s:
        yield s


def test_fast_paths_order_as_the_general_path(store: Store) -> None:
    rnd = random.Random(5)
    names = ["alpha", "Alpha", "beta", "B", None, "10", "9", "gamma"]
    for i in range(60):
        meta: dict[str, Any] = {"state": rnd.choice(["running", "finished", "crashed"]), "created_at": 1.7e9 + rnd.randrange(20),
                                "config": {"lr": rnd.choice([0.1, 0.01, None, "x", True]), "nested": {"a": i % 4}},
                                "summary": {"loss": rnd.choice([1.0, 0.5, float("nan"), None, 2, {"min": 1}]),
                                            "_runtime": rnd.choice([1.5, 20.0, 3])}}
        name = rnd.choice(names)
        if name is not None:
            meta["name"] = name
        if rnd.random() < 0.5:
            meta["group"] = rnd.choice(["g1", "G2", "g3"])
        rows = [{"idx": k, "row": {"_step": k, "v": k}} for k in range(rnd.randrange(4))]
        store.apply_batch("ro", f"run-{i:02d}", {"run": meta, "rows": rows})
    every = {"id": {"$exists": True}}  # matches all: the general path
    orders = ["created_at", "-created_at", "name", "-name", "id", "-id", "rows", "-rows", "group", "-group",
              "state", "exit_code", "updated_at", "heartbeat_at", "runtime", "-runtime", "summary.loss",
              "-summary.loss", "config.lr", "-config.lr", "config.nested.a", "job_type"]
    for order in orders:
        for limit, offset in ((1000, 0), (7, 0), (7, 13), (5, 58), (3, 70)):
            fast = runs_query.list_runs(store, "ro", order=order, limit=limit, offset=offset)
            slow = runs_query.list_runs(store, "ro", filters=every, order=order, limit=limit, offset=offset)
            assert fast["total"] == slow["total"] == 60
            assert [r["id"] for r in fast["runs"]] == [r["id"] for r in slow["runs"]], (order, limit, offset)
            assert fast["runs"] == slow["runs"] or _same_with_nan(fast["runs"], slow["runs"])


def _same_with_nan(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    import json

    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
