"""The contract of the ``Store`` facade, run against SQLite and PostgreSQL alike.

One test class, one parametrised fixture: every test runs on a fresh SQLite file and on a fresh
PostgreSQL database (``fresh_postgres_database``), through the facade only (what the HTTP app and
the embedded sync path call), with real databases and a real media directory. What the contract
says is in ``wandblite/server/PROTOCOL.md`` and the docstrings of ``store.py`` and ``ingest.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from wandblite.server.errors import ApiError
from wandblite.server.history_store import pending_row, read_rows
from wandblite.server.migrations import MIGRATIONS
from wandblite.server.schema import console, runs, system
from wandblite.server.store import Store
from wandblite.server.wire import artifact_digest

from .conftest import backend_store

LIMIT = 1 << 20
ZEROS = {"rows": 0, "pending": False, "console": 0, "system": 0, "digest": None, "state": None,
         "files": 0, "artifacts": 0, "uses": 0, "alerts": 0}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with backend_store(request.param, tmp_path, "wl_contract") as s:
        yield s


def _rows(start: int, stop: int, final_last: bool = True, **extra: Any) -> list[dict[str, Any]]:
    out = [{"idx": i, "final": True, "row": {"_step": i, "v": i * 1.5, **extra}} for i in range(start, stop)]
    if out and not final_last:
        out[-1]["final"] = False
    return out


def _stored(store: Store, table: sa.Table, run_id: str) -> list[Any]:
    """The run's records in ``table`` by idx, read straight from the database."""
    with store.read_engine.connect() as conn:
        pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == run_id)).scalar()
        if pk is None:
            return []
        return list(conn.execute(sa.select(table).where(table.c.run == pk).order_by(table.c.idx)).mappings())


def _history(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's history rows ``{"idx", "final", "row"}`` read straight from the chunks and the pending table."""
    with store.read_engine.connect() as conn:
        r = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if r is None:
            return []
        out = [{"idx": i, "final": True, "row": row} for i, row in read_rows(conn, r.id, 0, int(r.rows_final))]
        p = pending_row(conn, r.id)
        if p is not None:
            out.append({"idx": p[0], "final": False, "row": p[4]})
        return out


def _put(store: Store, data: bytes, ext: str | None = "txt") -> str:
    sha = hashlib.sha256(data).hexdigest()
    assert store.put_media(sha, [data], ext, LIMIT) == len(data)
    return sha


class TestStoreContract:
    def test_position_of_an_unknown_run_is_zeros(self, store: Store) -> None:
        pos = store.position("nobody", "nothing")
        assert pos == ZEROS
        assert list(pos) == list(ZEROS)  # the answer's key order is part of the wire format

    def test_a_retried_batch_changes_nothing(self, store: Store) -> None:
        body = {"run": {"state": "running", "digest": "d1"}, "rows": _rows(0, 5),
                "console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "hi\n"}],
                "system": [{"idx": 0, "ts": 1.0, "metrics": {"cpu": 3.5}}]}
        first = store.apply_batch("p", "r", body)
        assert first == {**ZEROS, "rows": 5, "console": 1, "system": 1, "digest": "d1", "state": "running"}
        assert store.apply_batch("p", "r", body) == first
        assert store.position("p", "r") == first
        assert [h["idx"] for h in _history(store, "r")] == [0, 1, 2, 3, 4]
        assert len(_stored(store, console, "r")) == 1 and len(_stored(store, system, "r")) == 1
        # An overlapping batch skips what is stored and appends the rest.
        over = store.apply_batch("p", "r", {"rows": _rows(3, 7, tag="new")})
        assert over["rows"] == 7
        assert ["tag" in h["row"] for h in _history(store, "r")] == [False] * 5 + [True] * 2

    def test_a_gap_is_409_with_the_position_and_stores_nothing(self, store: Store) -> None:
        store.apply_batch("p", "r", {"rows": _rows(0, 5)})
        before = store.position("p", "r")
        with pytest.raises(ApiError) as gap:
            store.apply_batch("p", "r", {"run": {"state": "finished"}, "rows": _rows(7, 8),
                                         "console": [{"idx": 0, "text": "x"}]})
        assert gap.value.status == 409 and gap.value.code == "gap"
        assert gap.value.extra["position"]["rows"] == 5
        assert gap.value.message == "rows start at idx 7 but the server holds 5 rows of run p/r: resend from 5"
        assert store.position("p", "r") == before  # neither the console record nor the state was stored
        # A gap in a counted stream is the same rule: nothing of the batch is stored.
        with pytest.raises(ApiError) as alert_gap:
            store.apply_batch("p", "r", {"rows": _rows(5, 6), "alerts": [{"idx": 2, "title": "t", "text": "x"}]})
        assert alert_gap.value.status == 409 and alert_gap.value.extra["position"]["alerts"] == 0
        assert alert_gap.value.message == ("alerts records start at idx 2 but the server holds 0 of run r: "
                                           "resend from 0")
        assert store.position("p", "r") == before

    def test_a_provisional_row_is_replaced_by_the_next_row_at_its_index(self, store: Store) -> None:
        pos = store.apply_batch("p", "r", {"rows": _rows(0, 2, final_last=False)})
        assert pos["rows"] == 1 and pos["pending"] is True
        pos = store.apply_batch("p", "r", {"rows": [{"idx": 1, "row": {"_step": 1, "v": -1.0}}]})
        assert pos["rows"] == 2 and pos["pending"] is False
        stored = _history(store, "r")
        assert [(h["idx"], h["final"]) for h in stored] == [(0, True), (1, True)]
        assert stored[1]["row"] == {"_step": 1, "v": -1.0}

    def test_every_stream_advances_its_own_position(self, store: Store) -> None:
        sha = _put(store, b"weights")
        entries = {"w.bin": {"sha256": sha, "size": 7}}
        batches: list[tuple[str, dict[str, Any]]] = [
            ("rows", {"idx": 0, "row": {"_step": 0, "loss": 1.0}}),
            ("console", {"idx": 0, "ts": 1.0, "stream": "stdout", "text": "hello\n"}),
            ("system", {"idx": 0, "ts": 1.0, "metrics": {"cpu": 1.0}}),
            ("files", {"idx": 0, "name": "out/w.bin", "sha256": sha, "size": 7, "policy": "now", "ts": 1.0}),
            ("artifacts", {"idx": 0, "name": "model", "type": "model", "version": 0, "aliases": ["best"],
                           "digest": artifact_digest(entries), "entries": entries, "ts": 1.0}),
            ("uses", {"idx": 0, "name": "model", "version": 0, "digest": artifact_digest(entries), "type": "model",
                      "run": "r", "ts": 2.0}),
            ("alerts", {"idx": 0, "title": "t", "text": "x", "level": "WARN", "ts": 3.0}),
        ]
        want = dict(ZEROS)
        for stream, record in batches:
            got = store.apply_batch("p", "r", {stream: [record]})
            want = {**want, stream: 1, "state": "running"}
            assert got == want, stream
            assert store.apply_batch("p", "r", {stream: [record]}) == want, f"{stream}: a retry moved the position"

    def test_records_naming_missing_bytes_are_refused_whole(self, store: Store) -> None:
        absent = hashlib.sha256(b"never uploaded").hexdigest()
        with pytest.raises(ApiError) as refused:
            store.apply_batch("p", "r", {"rows": _rows(0, 1),
                                         "files": [{"idx": 0, "name": "a", "sha256": absent, "size": 1}]})
        assert refused.value.status == 400 and refused.value.code == "missing_blob"
        assert store.position("p", "r") == ZEROS

    def test_keys_are_created_checked_and_revoked(self, store: Store) -> None:
        key_id, key = store.create_key("ci")
        other_id, other = store.create_key("other")
        assert store.check_key(key) and store.check_key(other)
        assert not store.check_key("wl_" + "x" * 43) and not store.check_key(None) and not store.check_key("")
        listed = {k["id"]: k for k in store.list_keys()}
        assert listed[key_id]["name"] == "ci" and listed[key_id]["prefix"] == key[:10]
        assert listed[key_id]["revoked_at"] is None
        assert all(key not in str(v) for k in listed.values() for v in k.values())  # only a hash is kept
        assert store.revoke_key(str(key_id)) == 1
        assert not store.check_key(key) and store.check_key(other)
        assert store.revoke_key(str(key_id)) == 0  # already revoked
        assert store.revoke_key(other) == 1  # by the full key
        assert not store.check_key(other)
        assert {k["id"] for k in store.list_keys() if k["revoked_at"] is not None} == {key_id, other_id}

    def test_the_first_key_is_made_once(self, store: Store) -> None:
        admin = store.ensure_admin_key()
        assert admin is not None and store.check_key(admin)
        assert store.ensure_admin_key() is None

    def test_sessions_end_when_their_key_is_revoked(self, store: Store) -> None:
        _key_id, key = store.create_key("browser")
        assert store.create_session("wl_wrong") is None and store.create_session(None) is None
        token = store.create_session(key)
        assert token is not None and store.check_session(token)
        other = store.create_session(key)
        store.end_session(other)
        assert not store.check_session(other) and store.check_session(token)
        assert store.revoke_key(key[:10]) == 1  # by the shown prefix
        assert not store.check_session(token)
        assert store.create_session(key) is None

    def test_media_put_and_missing(self, store: Store) -> None:
        data = b"\x89PNG not really"
        sha = hashlib.sha256(data).hexdigest()
        absent = hashlib.sha256(b"absent").hexdigest()
        assert store.missing_media([sha, absent, sha]) == [sha, absent]
        assert _put(store, data, "png") == sha
        assert _put(store, data, "png") == sha  # a blob already stored is a no-op
        assert store.missing_media([sha, absent]) == [absent]
        blob = store.media_blob(sha)
        assert blob.read_bytes() == data and (blob.ext, blob.size) == ("png", len(data))
        with pytest.raises(ApiError) as mismatch:
            store.put_media(absent, [b"other bytes"], None, LIMIT)
        assert mismatch.value.status == 400 and mismatch.value.code == "hash_mismatch"
        assert store.missing_media([absent]) == [absent]
        with pytest.raises(ApiError) as unknown:
            store.media_blob(absent)
        assert unknown.value.status == 404
        with pytest.raises(ApiError) as bad:
            store.missing_media(["not-a-sha"])
        assert bad.value.status == 400 and bad.value.code == "invalid_sha256"

    def test_migrations_are_idempotent(self, store: Store) -> None:
        names = [name for name, _step in MIGRATIONS]
        assert store.applied_migrations() == sorted(names)
        assert store.migrate() == []
        again = Store(store.url, media_dir=store.media_dir)
        try:
            assert again.migrate() == [] and again.applied_migrations() == sorted(names)
        finally:
            again.close()
        assert store.apply_batch("p", "r", {"rows": _rows(0, 1)})["rows"] == 1  # the schema still serves
