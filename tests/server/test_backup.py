"""``wandblite server backup DEST``: a consistent copy of a SQLite store taken while a sync writes into it.

Every copy taken during the sync is opened with the store and must be one state of the database:
its migrations all there, its history exactly the first ``n`` rows of the local run where ``n`` is
the position it records (no torn batch, no gap), and SQLite's integrity check clean.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from wandblite.server import read
from wandblite.server.backup import backup_sqlite
from wandblite.server.migrations import MIGRATIONS
from wandblite.server.store import Store

from .conftest import CLI, ROOT, ServerProc, canon, clean_env, cli, local_rows, uniq, write_run

STEPS = 4000


def copied_rows(copy: Path, project: str, run_id: str) -> tuple[int, list[object]]:
    """The position and the history rows a copy holds for the run (0 and [] before the run arrived)."""
    assert [r[0] for r in sqlite3.connect(copy).execute("PRAGMA integrity_check")] == ["ok"]
    store = Store(f"sqlite:///{copy}", migrate=False)
    try:
        assert store.applied_migrations() == sorted(name for name, _step in MIGRATIONS)
        n = store.position(project, run_id)["rows"]
        if n == 0:
            return 0, []
        page = read.get_history(store, project, run_id, 0, STEPS + 10)
        assert [r["idx"] for r in page["rows"]] == list(range(n)), "a gap or a torn batch in the copy"
        return n, [r["row"] for r in page["rows"]]
    finally:
        store.close()


def test_copies_taken_while_a_sync_writes_are_each_one_state_of_the_store(fresh_server: ServerProc,
                                                                         tmp_path: Path) -> None:
    srv = fresh_server.start()
    project = uniq("bk")
    runs = tmp_path / "runs"
    write_run(runs, project, "r", STEPS)
    want = local_rows(runs / "r")
    sync = subprocess.Popen([*CLI, "sync", str(runs), "--server", srv.url, "--api-key", srv.key, "--batch-size", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                            env=clean_env(WANDBLITE_HOME=str(tmp_path / "synchome")))
    copies: list[Path] = []
    while sync.poll() is None or not copies:
        dest = tmp_path / "copies" / f"{len(copies)}.db"
        res = backup_sqlite(srv.db or "", dest)
        assert res.dest == dest and res.size == dest.stat().st_size and res.pages > 0
        copies.append(dest)
    out, err = sync.communicate()
    assert sync.returncode == 0, out + err
    seen = []
    for copy in copies:
        n, rows = copied_rows(copy, project, "r")
        assert canon(rows) == canon(want[:n])
        seen.append(n)
    assert seen == sorted(seen), "a later copy holds less than an earlier one"
    assert any(0 < n < STEPS for n in seen), f"no copy was taken mid-sync: {seen}"
    assert not list((tmp_path / "copies").glob("*.partial-*"))

    # The command, after the sync: the whole run, one self-contained file (no -wal beside it).
    final = tmp_path / "final.db"
    r = cli("server", "backup", str(final), "--db", srv.db or "", home=tmp_path / "h")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"wandblite: copied {srv.db[len('sqlite:///'):]} to {final} (")  # type: ignore[index]
    assert "integrity ok" in r.stderr and r.stdout == ""
    assert not Path(str(final) + "-wal").exists()
    n, rows = copied_rows(final, project, "r")
    assert n == STEPS and canon(rows) == canon(want)
    assert srv.alive()


def test_backup_refuses_what_it_cannot_copy_and_never_leaves_a_partial_file(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.close()
    dest = tmp_path / "copy.db"
    dest.write_text("an older copy")
    r = cli("server", "backup", str(dest), "--db", f"sqlite:///{tmp_path / 'store.db'}", home=tmp_path / "h")
    assert r.returncode == 1 and r.stderr == f"wandblite: error: {dest} exists; pass --force to replace it\n"
    assert dest.read_text() == "an older copy"
    r = cli("server", "backup", str(dest), "--force", "--db", f"sqlite:///{tmp_path / 'store.db'}", home=tmp_path / "h")
    assert r.returncode == 0, r.stderr
    assert [x[0] for x in sqlite3.connect(dest).execute("PRAGMA integrity_check")] == ["ok"]
    r = cli("server", "backup", str(tmp_path / "pg.db"), "--db", "postgresql://postgres@127.0.0.1/x", home=tmp_path)
    assert r.returncode == 1 and "pg_dump" in r.stderr and len(r.stderr.splitlines()) == 1
    with pytest.raises(ValueError, match="no SQLite store"):
        backup_sqlite(f"sqlite:///{tmp_path / 'absent.db'}", tmp_path / "c2.db")
    with pytest.raises(ValueError, match="is the store itself"):
        backup_sqlite(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "store.db", replace=True)
    # The embedded store of $WANDBLITE_HOME is the default source.
    home = tmp_path / "home"
    Store.embedded(home).close()
    r = cli("server", "backup", str(tmp_path / "emb.db"), home=home)
    assert r.returncode == 0 and str(home / "store.db") in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if ".partial-" in p.name) == []
