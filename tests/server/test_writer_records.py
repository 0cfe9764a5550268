"""A shared run's console and system records per writer on the server: a crashed run of three
writers (real SDK processes, one SIGKILLed first) synced with ``wandblite sync`` to a real server on
SQLite and PostgreSQL; ``?writer=`` reads give each writer's lines and samples exactly as replay
gives them (``Replay.output(writer=)``, ``system_metrics(writer=)``), without it every writer's as
replay merges them, and the run carries the writers and crash report ``wandblite show --json`` gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import wandblite

from .conftest import ServerProc, cli, uniq
from .shared_writers import HOSTILE, LABELS, make_crashed_shared_run


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crashed_shared_run(tmp_path_factory.mktemp("writers") / "runs", "wr", "shared1")


def _sync(server: ServerProc, run_dir: Path, project: str) -> None:
    done = cli("sync", str(run_dir.parent), "--server", server.url, "--api-key", server.key, "--project", project,
               home=server.home)
    assert done.returncode == 0, done.stderr


def _get(server: ServerProc, path: str, **params: Any) -> Any:
    r = server.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _lines(server: ServerProc, base: str, **params: Any) -> list[str]:
    return [x["text"] for x in _get(server, base + "/console/lines", tail=100_000, **params)["lines"]]


def _system(server: ServerProc, base: str, **params: Any) -> list[tuple[float, dict[str, Any]]]:
    recs = _get(server, base + "/system", limit=10_000, **params)["system"]
    return [(x["ts"], x["metrics"]) for x in recs]


def test_reads_per_writer_equal_the_replay_and_the_run_carries_show_s_crash_report(server: ServerProc,
                                                                                     shared_run: Path) -> None:
    r = wandblite.replay(shared_run)
    assert r.state == "crashed" and [w["label"] for w in r.writers] == list(LABELS)
    shown = cli("show", str(shared_run), "--json")
    assert shown.returncode == 0, shown.stderr
    want = json.loads(shown.stdout)
    project = uniq("wr")
    _sync(server, shared_run, project)
    base = f"/api/v1/projects/{project}/runs/shared1"

    run = _get(server, base)
    assert run["state"] == "crashed"
    assert run["writers"] == want["writers"]
    assert run["stopped_first"] == want["stopped_first"]
    first = run["stopped_first"]
    assert first["writer"] == "rank1" and first["seconds_before_others"] >= 0.5
    assert first["last_lines"][-2:] == [f"rank1 says {HOSTILE}", "ready"] and first["last_memory"]

    for label in LABELS:
        own = _lines(server, base, writer=label)
        assert own == r.output(writer=label).splitlines()
        assert f"{label} says {HOSTILE}" in own and own[0] == f"{label} step 0" and len(own) >= 9
        samples = _system(server, base, writer=label)
        assert samples == r.system_metrics(writer=label) and len(samples) >= 3
        recs = _get(server, base + "/console", writer=label)["console"]
        assert {x["writer"] for x in recs} == {label}
    every = _lines(server, base)
    assert every == r.output().splitlines()
    assert {line.split(" ", 1)[0] for line in every} == {f"[{x}]" for x in LABELS}
    assert _system(server, base) == r.system_metrics()
    searched = _get(server, base + "/console/lines", writer="rank2", search="STEP 3")
    assert [x["text"] for x in searched["lines"]] == ["rank2 step 3"] and searched["lines"][0]["writer"] == "rank2"


def test_node_local_syncs_give_the_crash_report_of_all_files_together(server: ServerProc, shared_run: Path,
                                                                      tmp_path: Path) -> None:
    """Each writer's files synced from a node of their own (no machine sees every writer): the run's
    writers and crash report, computed by the server from what each writer sent, equal
    ``wandblite show --json`` of all the files together; the reads equal the replay's."""
    shown = cli("show", str(shared_run), "--json")
    assert shown.returncode == 0, shown.stderr
    want = json.loads(shown.stdout)
    project = uniq("wrn")
    for label in reversed(LABELS):  # the primary's node last
        node = tmp_path / f"node-{label}" / "runs"
        shutil.copytree(shared_run, node / shared_run.name)
        for f in (node / shared_run.name).iterdir():
            own = f.name.split("-")[1] if f.name.startswith("events-") else f.name.partition("-")[2]
            if own and f.name.startswith(("events-", ".lock-")) and own != label:
                f.unlink()
        _sync(server, node / shared_run.name, project)
    base = f"/api/v1/projects/{project}/runs/{shared_run.name}"
    run = _get(server, base)
    assert run["state"] == want["state"] == "crashed"
    assert run["writers"] == want["writers"] and [w["label"] for w in run["writers"]] == list(LABELS)
    assert run["stopped_first"] == want["stopped_first"] and run["stopped_first"]["writer"] == "rank1"
    r = wandblite.replay(shared_run)
    assert _lines(server, base) == r.output().splitlines()
    assert _system(server, base) == r.system_metrics()
    for label in LABELS:
        assert _system(server, base, writer=label) == r.system_metrics(writer=label)


def test_an_unknown_or_invalid_writer_is_a_clear_4xx(server: ServerProc) -> None:
    project = uniq("wr")
    base = f"/api/v1/projects/{project}/runs/w"
    batch = {"console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "a\n", "writer": "node1"}],
             "system": [{"idx": 0, "ts": 1.0, "metrics": {"cpu": 5.0}, "writer": "node1"}]}
    assert server.post(base + "/batch", batch).status_code == 200
    for path in ("/console", "/console/lines", "/system"):
        missing = server.get(base + path, params={"writer": "node2"})
        assert missing.status_code == 404, missing.text
        assert "node1" in missing.json()["error"]["message"]
        bad = server.get(base + path, params={"writer": "<b>x"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    assert _lines(server, base, writer="node1") == ["a"]
    assert _lines(server, base) == ["[node1] a"]
    assert _system(server, base) == [(1.0, {"node1/cpu": 5.0})]
    # A record's writer must be a label: refused whole, nothing stored.
    hostile = {"console": [{"idx": 1, "ts": 2.0, "stream": "stdout", "text": "b\n", "writer": "<script>"}]}
    refused = server.post(base + "/batch", hostile)
    assert refused.status_code == 400 and "writer" in refused.json()["error"]["message"]
    assert _get(server, base)["console"] == 1


def test_a_single_writer_run_reads_as_before(server: ServerProc) -> None:
    project = uniq("wr")
    base = f"/api/v1/projects/{project}/runs/one"
    batch = {"console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "hello\n"}],
             "system": [{"idx": 0, "ts": 1.0, "metrics": {"cpu": 1.5}}]}
    assert server.post(base + "/batch", batch).status_code == 200
    run = _get(server, base)
    assert run["writers"] == [] and run["stopped_first"] is None
    assert _get(server, base + "/console")["console"] == [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "hello\n"}]
    assert _get(server, base + "/console/lines")["lines"] == [{"ts": 1.0, "stream": "stdout", "text": "hello",
                                                               "open": False}]
    assert _get(server, base + "/system")["system"] == [{"idx": 0, "ts": 1.0, "metrics": {"cpu": 1.5}}]
    assert server.get(base + "/system", params={"writer": "rank0"}).status_code == 404


def test_every_writers_records_are_read_in_the_order_of_an_index_not_sorted_per_page(server: ServerProc,
                                                                                    shared_run: Path) -> None:
    # Paging through a shared run's records in time order (GET .../console and .../system without
    # ?writer=) reads the index of migration 0014 in its order: no sort of the whole run per page.
    import sqlalchemy as sa

    from wandblite.server import read
    from wandblite.server.schema import console, system
    from wandblite.server.store import Store

    project = uniq("wr")
    _sync(server, shared_run, project)
    assert server.db is not None
    store = Store(server.db)
    try:
        with store.read_engine.connect() as conn:
            r = read.run_row(conn, project, "shared1")
            pg = conn.dialect.name == "postgresql"
            for table in (console, system):
                q, _next = read._paged(conn, r, table, sa.select(*table.c), 5, 10, None)
                sql = str(q.compile(conn, compile_kwargs={"literal_binds": True}))
                if pg:  # a tiny table would be scanned and sorted: ask for the plan without either
                    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
                    conn.execute(sa.text("SET LOCAL enable_sort = off"))
                    plan = "\n".join(x[0] for x in conn.execute(sa.text("EXPLAIN " + sql)))
                    assert f"ix_{table.name}_writers_time" in plan and "Sort" not in plan, plan
                else:
                    plan = "\n".join(str(x[-1]) for x in conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql)))
                    assert f"INDEX ix_{table.name}_writers_time" in plan and "TEMP B-TREE" not in plan, plan
                whole = [tuple(x) for x in conn.execute(read._paged(conn, r, table, sa.select(*table.c), 0, None, None)[0])]
                assert [tuple(x) for x in conn.execute(q)] == whole[5:15]
    finally:
        store.close()
