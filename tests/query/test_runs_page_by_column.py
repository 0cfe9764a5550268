"""The runs table's fast page (no filter or search, ordered by created_at or updated_at: only that
column of every run is sorted, only the page is decoded) answers exactly what the general path does,
ties, missing values and both directions included, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.conftest import backend_store
from wandblite.server import runs_query


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_page_by_a_column_is_the_page_of_the_general_path(backend: str, tmp_path: Path) -> None:
    with backend_store(backend, tmp_path, "wl_runs_page") as store:
        for i in range(37):
            meta: dict[str, object] = {"name": f"n{i}", "config": {"i": i}}
            if i % 5:
                meta["created_at"] = 1.7e9 + (i % 4)  # ties, and runs without a creation time
            store.apply_batch("pg", f"r{i:02d}", {"run": meta})
        for order in ("created_at", "-created_at", "updated_at", "-updated_at", "+created_at"):
            for offset, limit in ((0, 10), (10, 10), (30, 10), (0, 1000), (40, 5)):
                fast = runs_query.list_runs(store, "pg", order=order, limit=limit, offset=offset)
                # A filter every run matches takes the general path.
                full = runs_query.list_runs(store, "pg", order=order, limit=limit, offset=offset,
                                            filters={"config.i": {"$gte": 0}})
                assert fast == full, (order, offset, limit)
                assert fast["total"] == 37
