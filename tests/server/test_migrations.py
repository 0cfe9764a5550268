"""Several server processes starting at once on one fresh database migrate it exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import PG_ADMIN

MIGRATE = """
import sys
from wandblite.server.store import Store
store = Store(sys.argv[1], sys.argv[2])
print(",".join(store.applied_migrations()))
store.close()
"""


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except Exception as exc:  # noqa: BLE001
        msg = f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc})"
        if os.environ.get("WANDBLITE_REQUIRE_POSTGRES") == "1":
            pytest.fail(msg + " and WANDBLITE_REQUIRE_POSTGRES=1")
        pytest.skip(msg)
    name = f"wl_mig_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_first_starts_migrate_once(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (request.getfixturevalue("fresh_postgres") if backend == "postgres"
           else f"sqlite:///{tmp_path / 'store.db'}")
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, url, str(tmp_path / f"media{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    from wandblite.server.store import MIGRATIONS

    expected = ",".join(name for name, _step in MIGRATIONS)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == expected
