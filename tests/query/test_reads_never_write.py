"""Reads never write: the history chunks, their statistics and the media index are built as sync batches are stored.

On SQLite and PostgreSQL: after the batches of a plain run, a crashed-and-resumed run and a run
whose provisional rows were replaced, no chart, key, media or runs read issues one INSERT, UPDATE,
DELETE or DDL statement (counted on the store's engines), and the reads also succeed through a
PostgreSQL role that may only SELECT and a SQLite file opened read-only. The chunks grown batch by
batch (a crash, a resume, provisional rows replaced) are byte for byte the chunks of the same final
rows sent in one batch, and a store in the layout before migration 0006 gets those same chunks, and
the same answers, from that migration.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from tests.server.conftest import PG_ADMIN, fresh_postgres_database
from tests.server.old_layout import to_old_layout
from wandblite.server import media_query, read, runs_query, series_query
from wandblite.server.chunks import CHUNK_ROWS
from wandblite.server.schema import history_chunks, media_rows, runs, series_chunks
from wandblite.server.store import Store

from .conftest import Dataset, uniq

N = 30_000  # 8 chunks: whole-run charts take chunk statistics and decode the chunks buckets cut
IMG = {"_type": "image-file", "path": "media/images/x.png", "sha256": "0" * 64, "width": 8, "height": 8}
WRITES = ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "REPLACE", "TRUNCATE")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test (the migration test rewrites the schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 's.db'}"
        return
    with fresh_postgres_database("wl_ro") as u:
        yield u


def _row(i: int, v: float) -> dict[str, Any]:
    row: dict[str, Any] = {"_step": i, "_runtime": i * 0.5, "_timestamp": 1.7e9 + i, "v": v, "epoch": i // 1000,
                           "nested": {"w": -v}}
    if i % 11 == 0:
        row["v"] = float("nan")
    if i % 5000 == 7:
        row["img"] = IMG
    return row


def _send(store: Store, project: str, run: str, start: int, vals: np.ndarray, batch: int,
          pending_last: bool = False) -> None:
    items = [{"idx": i, "final": True, "row": _row(i, float(v))} for i, v in enumerate(vals, start)]
    if pending_last:
        items[-1]["final"] = False
    for b in range(0, len(items), batch):
        store.apply_batch(project, run, {"rows": items[b:b + batch], "run": {"state": "running"}})


def _make_runs(store: Store, project: str) -> dict[str, np.ndarray]:
    """The final values of three runs as a sync leaves them (the provisional tail row included)."""
    rng = np.random.default_rng(7)
    vals = np.cumsum(rng.normal(size=N))
    _send(store, project, "plain", 0, vals, 2000)
    # Crashed at 7,778 with a pending row, resumed: the same row comes back final, then the rest.
    cut = 7_778
    _send(store, project, "resumed", 0, vals[:cut + 1], 1000, pending_last=True)
    _send(store, project, "resumed", cut, vals[cut:], 3001)
    # A provisional spike (with an image) that the resume replaces by an ordinary final row, and a
    # provisional dip that is still pending at the end.
    bad = vals.copy()
    bad[cut] = 1e9
    _send(store, project, "replaced", 0, bad[:cut + 1], 1000, pending_last=True)
    assert max(series_query.get_series(store, project, "replaced", ["v"], samples=200)["series"]["v"]["y"]) == 1e9
    img_row = _row(cut, 0.0)
    img_row["img"] = IMG
    store.apply_batch(project, "replaced", {"rows": [{"idx": cut, "final": False, "row": img_row}]})
    tail = vals.copy()
    tail[-1] = -1e9
    _send(store, project, "replaced", cut, tail[cut:], 2500, pending_last=True)
    return {"plain": vals, "resumed": vals, "replaced": tail}


def _reads(store: Store, project: str, run: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for samples in (100, 1500):
        out[f"s{samples}"] = series_query.get_series(store, project, run, ["v", "epoch", "nested.w"], samples=samples)
    out["zoom"] = series_query.get_series(store, project, run, ["v"], samples=300, min_x=5000, max_x=27_000)
    out["epoch"] = series_query.get_series(store, project, run, ["v"], samples=300, x_axis="epoch")
    out["keys"] = series_query.run_keys(store, project, run)
    out["media"] = media_query.list_media(store, project, run, "img")
    out["runs"] = runs_query.list_runs(store, project)
    out["run"] = read.get_run(store, project, run)
    out["history"] = read.get_history(store, project, run, start=N - 3)
    return out


def _indexes(store: Store) -> dict[str, tuple[list[Any], list[Any], list[Any]]]:
    """Per run id: its history chunks, series chunks and media rows (without the run's surrogate key)."""
    out = {}
    with store.read_engine.connect() as conn:
        for pk, run_id in conn.execute(sa.select(runs.c.id, runs.c.run_id)):
            out[run_id] = tuple(sorted(tuple(v for k, v in r._mapping.items() if k != "run")
                                       for r in conn.execute(sa.select(t).where(t.c.run == pk)))
                                for t in (history_chunks, series_chunks, media_rows))
    return out


class _WriteCounter:
    """Counts the writing SQL statements executed on a store's engines."""

    def __init__(self, store: Store) -> None:
        self.statements: list[str] = []
        self.engines = {store.write_engine, store.read_engine}
        for eng in self.engines:
            sa.event.listen(eng, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in WRITES:
            self.statements.append(statement)

    def close(self) -> None:
        for eng in self.engines:
            sa.event.remove(eng, "before_cursor_execute", self._seen)


def test_reads_never_write_and_the_indexes_grown_by_batches_equal_a_build_in_one_go(url: str, tmp_path: Path) -> None:
    store = Store(url, media_dir=tmp_path / "media")
    project = uniq("rw")
    counter = _WriteCounter(store)
    try:
        finals = _make_runs(store, project)
        assert counter.statements, "the counter saw the ingest's writes"
        counter.statements.clear()
        before = {run: _reads(store, project, run) for run in finals}
        assert counter.statements == [], counter.statements[:3]
    finally:
        counter.close()

    for run, vals in finals.items():
        s = before[run]["s1500"]["series"]["v"]
        finite = [float(v) for i, v in enumerate(vals) if i % 11 != 0]
        assert s["count"] == N and len(s["x"]) <= 1500
        assert max(s["y"]) == max(finite) and min(s["y"]) == min(finite), run
        assert all(vals[int(x)] == y for x, y in zip(s["x"], s["y"]))  # real points at their own steps
        assert before[run]["keys"]["keys"][0]["count"] == N  # epoch, from the pyramid's top level
        steps = [d["idx"] for d in before[run]["media"]["steps"]]
        assert steps == [i for i in range(N) if i % 5000 == 7], run  # the replaced row's image is gone
    replaced = before["replaced"]["s1500"]["series"]["v"]
    assert 1e9 not in replaced["y"] and replaced["y"][-1] == -1e9 and replaced["x"][-1] == N - 1
    assert before["replaced"]["run"]["pending"] is True

    # Grown batch by batch == the same final rows in one batch.
    grown = _indexes(store)
    assert all(grown["plain"]) and len(grown["plain"][0]) == -(-N // CHUNK_ROWS)
    assert grown["resumed"] == grown["plain"]  # a crash at 7,778 and a resume change no byte
    items = [{"idx": i, "final": True, "row": _row(i, float(v))} for i, v in enumerate(finals["plain"])]
    store.apply_batch(project, "once", {"rows": items, "run": {"state": "running"}})
    assert _indexes(store)["once"] == grown["plain"]
    store.close()


def test_a_store_in_the_layout_before_migration_0006_is_converted_with_the_same_chunks_and_answers(
        url: str, tmp_path: Path) -> None:
    store = Store(url, media_dir=tmp_path / "media")
    project = uniq("mg")
    finals = _make_runs(store, project)
    grown = _indexes(store)
    before = {run: _reads(store, project, run) for run in finals}
    assert to_old_layout(store) == 3 * N  # every row (the replaced run: N - 1 final, one provisional)
    store.close()

    import wandblite.server.migrations as migrations

    lines: list[str] = []
    old_piece = migrations.CONVERT_PIECE
    migrations.CONVERT_PIECE = CHUNK_ROWS * 5  # several transactions per run
    try:
        store = Store(url, media_dir=tmp_path / "media", migrate=False)
        assert migrations.migrate(store.write_engine, lines.append) == ["0006_compact_history"]
    finally:
        migrations.CONVERT_PIECE = old_piece
    assert len(lines) == 3 * 3 and lines[-1].endswith(f"{N - 1}/{N - 1} rows")  # progress per piece
    with store.read_engine.connect() as conn:
        assert not {"history", "series", "series_agg"} & set(sa.inspect(conn).get_table_names())
    assert _indexes(store) == grown
    for run in finals:
        after = _reads(store, project, run)
        for k in before[run]:
            if k not in ("runs", "run"):
                assert json.dumps(after[k]) == json.dumps(before[run][k]), (run, k)  # NaN equal to NaN
    store.close()


def _read_only_url(url: str, stack: list[Any]) -> str:
    """A URL to the same database that can only read: a SELECT-only PostgreSQL role, a read-only SQLite open."""
    if url.startswith("sqlite"):
        return f"sqlite:///file:{url[len('sqlite:///'):]}?mode=ro&uri=true"
    import psycopg

    role = f"wl_ro_{uuid.uuid4().hex[:8]}"
    dbname = url.rsplit("/", 1)[1]
    admin = psycopg.connect(PG_ADMIN.replace("dbname=test", f"dbname={dbname}"), autocommit=True)
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    admin.execute(f'GRANT CONNECT ON DATABASE "{dbname}" TO "{role}"')
    admin.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')

    def drop() -> None:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')
        admin.close()

    stack.append(drop)
    return f"postgresql://{role}@127.0.0.1:5432/{dbname}"


def test_charts_keys_and_media_are_served_by_a_user_that_may_only_read(url: str, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from wandblite.server.app import create_app

    store = Store(url, media_dir=tmp_path / "media")
    project = uniq("ro")
    _make_runs(store, project)
    expected = {run: _reads(store, project, run) for run in ("plain", "replaced")}
    store.close()
    cleanup: list[Any] = []
    ro = Store(_read_only_url(url, cleanup), media_dir=tmp_path / "media", migrate=False)
    try:
        with ro.write_engine.connect() as conn, pytest.raises(sa.exc.DBAPIError):  # the user really cannot write
            conn.execute(series_chunks.delete())
        for run, want in expected.items():
            got = _reads(ro, project, run)
            assert {k: v for k, v in got.items() if k != "runs"} == {k: v for k, v in want.items() if k != "runs"}
        client = TestClient(create_app(ro, public_read=True))
        base = f"/api/v1/projects/{project}/runs/replaced"
        for path, params in ((base + "/series", {"keys": "v,epoch", "samples": "1500"}), (base + "/keys", {}),
                             (base + "/media", {"key": "img"}), (f"/api/v1/projects/{project}/runs", {}),
                             (base + "/history", {"start": "29990"})):
            r = client.get(path, params=params)
            assert r.status_code == 200, (path, r.text)
        assert client.get(base + "/series", params={"keys": "v", "samples": "1500"}).json()["series"]["v"] == \
            expected["replaced"]["s1500"]["series"]["v"]
    finally:
        ro.close()
        for fn in cleanup:
            fn()


def test_after_a_real_sync_a_read_only_connection_gives_the_servers_answers(data: Dataset) -> None:
    """The query data set, synced by the real CLI into a real server, read back through a connection
    that cannot write: the same series, keys and media listings the server answers over HTTP."""
    cleanup: list[Any] = []
    assert data.srv.db is not None
    ro = Store(_read_only_url(data.srv.db, cleanup), media_dir=data.srv.media, migrate=False)
    try:
        for run in ("a", "b", "crash"):  # long with media; short; crashed with a provisional row
            for keys, x_axis in (("loss,acc,noisy,train.inner", "_step"), ("loss", "epoch")):
                params = {"keys": keys, "samples": "300", "x_axis": x_axis}
                want = data.get(f"/runs/{run}/series", params=params)
                got = series_query.get_series(ro, data.project, run, keys.split(","), samples=300, x_axis=x_axis)
                assert json.loads(json.dumps(got)) == want, (run, keys)
            assert json.loads(json.dumps(series_query.run_keys(ro, data.project, run))) == data.get(f"/runs/{run}/keys")
            want_media = data.get(f"/runs/{run}/media", params={"key": "img"})
            assert json.loads(json.dumps(media_query.list_media(ro, data.project, run, "img"))) == want_media
        assert data.get("/runs/a/media", params={"key": "img"})["count"] == 6
    finally:
        ro.close()
        for fn in cleanup:
            fn()
