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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_compact_history_migration_resumes_where_a_killed_start_stopped(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import sqlalchemy as sa

    from wandblite.server import migrations, read
    from wandblite.server.store import Store

    from .old_layout import to_old_layout

    url = (request.getfixturevalue("fresh_postgres") if backend == "postgres"
           else f"sqlite:///{tmp_path / 'store.db'}")
    store = Store(url, tmp_path / "media")
    for run in ("a", "b"):
        rows = [{"idx": i, "row": {"_step": i, "loss": 1.0 / (i + 1), "n": {"x": i}}} for i in range(5000)]
        rows[-1]["final"] = False
        store.apply_batch("p", run, {"rows": rows})
    want = {run: json.dumps(read.get_history(store, "p", run, 0, 10_000)) for run in ("a", "b")}
    assert to_old_layout(store) == 10_000
    store.close()

    monkeypatch.setattr(migrations, "CONVERT_PIECE", 2048)
    calls = [0]
    real = migrations.write_rows

    def dies_on_the_fourth_piece(*args: object, **kw: object) -> None:
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt("killed mid-migration")
        real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(migrations, "write_rows", dies_on_the_fourth_piece)
    store = Store(url, tmp_path / "media", migrate=False)
    with pytest.raises(KeyboardInterrupt):
        migrations.migrate(store.write_engine, lambda _line: None)
    with store.read_engine.connect() as conn:  # run a converted in three pieces, b's first piece undone
        assert conn.execute(sa.text("SELECT count(*) FROM history")).scalar() == 5000
        assert conn.execute(sa.text("SELECT count(*) FROM history_chunks")).scalar() == 3
    assert "0006_compact_history" not in store.applied_migrations()
    monkeypatch.setattr(migrations, "write_rows", real)
    lines: list[str] = []
    assert migrations.migrate(store.write_engine, lines.append) == ["0006_compact_history"]
    assert lines == ["migrating history to chunks: run 1/1 (b), 2048/4999 rows",
                     "migrating history to chunks: run 1/1 (b), 4096/4999 rows",
                     "migrating history to chunks: run 1/1 (b), 4999/4999 rows"]  # only what was left
    for run in ("a", "b"):
        assert json.dumps(read.get_history(store, "p", run, 0, 10_000)) == want[run]
    store.close()
