"""Upgrade to users and roles (migration 0007): a store written before it, with the golden fixture
synced into it and two keys, migrates when a server starts on it: its keys become the "admin"
user's (admin scope) and keep working, its projects become internal, its runs the admin's, and
every JSON read answers exactly as the golden answers record, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.golden.test_golden import (
    FIXTURE_RUN,
    JSON_READS,
    _speedups_env,
    _sync_and_check,
    check,
    normalise_rest,
)
from tests.server.conftest import ServerProc, fresh_postgres_database
from tests.server.pre_users import to_pre_users


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_store_from_before_users_migrates_and_answers_every_read_as_recorded(kind: str, tmp_path: Path) -> None:
    from wandblite.server.schema import projects, runs, users
    from wandblite.server.store import Store

    shutil.copytree(FIXTURE_RUN, tmp_path / "runs" / "golden")
    home = tmp_path / "home"
    home.mkdir()
    with fresh_postgres_database("wl_users_mig") if kind == "postgres" else contextlib.nullcontext() as pg:
        db = pg or f"sqlite:///{tmp_path / 'store.db'}"
        srv = ServerProc(db, tmp_path / "media", home, env=_speedups_env()).start()
        try:
            _sync_and_check(tmp_path, home, srv)
            srv.stop()
            store = Store(db, migrate=False)
            _old_id, old_key = store.create_key("made before users")
            to_pre_users(store)
            store.close()
            srv.start()  # migrates
            store = Store(db, migrate=False)
            assert "0007_users_roles_audit" in store.applied_migrations()
            keys = store.list_keys()
            assert len(keys) == 2 and {(k["user"], k["scope"]) for k in keys} == {("admin", "admin")}
            with store.read_engine.connect() as conn:
                assert {v for (v,) in conn.execute(sa.select(projects.c.visibility))} == {"internal"}
                owners = conn.execute(sa.select(users.c.name).join(runs, runs.c.owner_id == users.c.id)).scalars()
                assert set(owners) == {"admin"}
            for key in (srv.key, old_key):
                http = requests.Session()
                http.headers.update(srv.h(key))
                for name, path in JSON_READS.items():
                    resp = http.get(srv.url + path, timeout=30)
                    check(f"rest/{name}", {"request": path, "status": resp.status_code,
                                           "content_type": resp.headers.get("content-type"),
                                           "body": normalise_rest(name, json.loads(json.dumps(resp.json())))})
            assert store.migrate() == []  # a second start has nothing to do
            store.close()
        finally:
            srv.stop()
