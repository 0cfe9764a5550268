"""Golden test of migration 0006: a store in the layout before it answers every read as recorded.

The golden fixture is synced by the real CLI into a real server (SQLite and PostgreSQL), the store
is turned back into the layout the code before migration 0006 wrote (``tests/server/old_layout.py``:
``history`` rows, ``series`` points and the ``series_agg`` pyramid, table for table what that code
wrote for this fixture), and a server started on it migrates it, printing its progress. Every JSON
read of ``test_golden.JSON_READS`` is then compared with the recorded answers, strictly, as the
golden test does; a second start migrates nothing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from wandblite.server.store import Store

from ..server.conftest import ServerProc, fresh_postgres_database
from ..server.old_layout import to_old_layout
from .test_golden import FIXTURE_RUN, JSON_READS, _speedups_env, _sync_and_check, check, normalise_rest


@pytest.fixture(params=["sqlite", "postgres"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProc]:
    shutil.copytree(FIXTURE_RUN, tmp_path / "runs" / "golden")
    home = tmp_path / "home"
    home.mkdir()
    with fresh_postgres_database("wl_golden_mig") if request.param == "postgres" else contextlib.nullcontext() as pg:
        db = pg or f"sqlite:///{tmp_path / 'store.db'}"
        srv = ServerProc(db, tmp_path / "media", home, env=_speedups_env()).start()
        try:
            _sync_and_check(tmp_path, home, srv)
            srv.stop()
            store = Store(db, media_dir=tmp_path / "media", migrate=False)
            assert to_old_layout(store) == 32
            with store.read_engine.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM series")).scalar() == 129
            store.close()
            srv.start()
            yield srv
        finally:
            srv.stop()
    assert srv.proc is not None


def test_a_store_from_before_the_compact_layout_answers_every_read_as_recorded(migrated: ServerProc) -> None:
    http = requests.Session()
    http.headers.update(migrated.h())
    for name, path in JSON_READS.items():
        resp = http.get(migrated.url + path, timeout=30)
        check(f"rest/{name}", {"request": path, "status": resp.status_code,
                               "content_type": resp.headers.get("content-type"),
                               "body": normalise_rest(name, json.loads(json.dumps(resp.json())))})
    store = Store(migrated.db or "", migrate=False)
    try:
        assert "0006_compact_history" in store.applied_migrations()
        with store.read_engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert "history" not in tables and "series" not in tables and "history_chunks" in tables
        assert store.migrate() == []  # a second start has nothing to do
    finally:
        store.close()
