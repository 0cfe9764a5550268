"""Several server processes starting at once on one fresh database migrate it exactly once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import fresh_postgres_database

MIGRATE = """
import sys
from wandblite.server.store import Store
store = Store(sys.argv[1], sys.argv[2])
print(",".join(store.applied_migrations()))
store.close()
"""


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    with fresh_postgres_database("wl_mig") as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_first_starts_migrate_once(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (request.getfixturevalue("fresh_postgres") if backend == "postgres"
           else f"sqlite:///{tmp_path / 'store.db'}")
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, url, str(tmp_path / f"media{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    from wandblite.server.migrations import MIGRATIONS

    expected = ",".join(name for name, _step in MIGRATIONS)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == expected
