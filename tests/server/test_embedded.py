"""The embedded local store: ``wandblite sync`` with no server writes into $WANDBLITE_HOME, and
``wandblite server`` with no --db serves that same store."""

from __future__ import annotations

import json
from pathlib import Path

from wandblite.server import read
from wandblite.server.store import Store

from .conftest import ServerProc, canon, cli, local_rows, write_run


def test_sync_without_a_server_writes_the_embedded_store_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runs = tmp_path / "runs"
    write_run(runs, "emb", "e1", 700)
    write_run(runs, "emb", "e2", 5, mode="fail")
    first = cli("sync", str(runs), "--json", home=home)
    assert first.returncode == 0, first.stderr
    sent = {d["run_id"]: d for d in map(json.loads, first.stdout.splitlines())}
    assert sent["e1"]["rows"] == 700 and sent["e2"]["rows"] == 5
    assert (home / "store.db").is_file()
    store = Store.embedded(home)
    try:
        rows = read.get_history(store, "emb", "e1", 0, 10_000)["rows"]
        assert canon([r["row"] for r in rows]) == canon(local_rows(runs / "e1"))
        assert read.get_run(store, "emb", "e2")["state"] == "failed"
        from wandblite.server.migrations import MIGRATIONS

        assert store.applied_migrations() == [name for name, _step in MIGRATIONS]  # every one, once, in order
    finally:
        store.close()
    second = cli("sync", str(runs), "--json", home=home)
    assert second.returncode == 0, second.stderr
    again = [json.loads(line) for line in second.stdout.splitlines()]
    assert [(d["rows"], d["console"], d["system"], d["meta_updated"]) for d in again] == [(0, 0, 0, False)] * 2
    # `wandblite server` with no --db serves the same store.
    srv = ServerProc(None, None, home).start()
    try:
        assert srv.position("emb", "e1")["rows"] == 700
        assert len(srv.history("emb", "e1")) == 700
    finally:
        srv.stop()
