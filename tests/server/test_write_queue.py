"""SQLite writers wait their turn: a batch that meets another process's write lock waits for it and
is stored (never "database is locked"); one that waits longer than the store allows is a 503 ``busy``
that stored nothing, which the client retries; many threads of one process writing at once queue
for the one write connection and every batch is stored."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import ServerProc, uniq


def _rows(start: int, n: int) -> list[dict[str, Any]]:
    return [{"idx": i, "row": {"_step": i, "_runtime": float(i), "_timestamp": 1e9 + i, "loss": 1.0 / (i + 1)}}
            for i in range(start, start + n)]


class _HeldWriteLock:
    """Another process's write transaction on the SQLite file (``BEGIN IMMEDIATE``), held until ``release``."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_batch_meeting_another_process_write_lock_waits_and_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    srv = ServerProc(f"sqlite:///{db}", tmp_path / "media", tmp_path / "home").start()
    try:
        project = uniq("q")
        held = _HeldWriteLock(db)
        answer: list[Any] = []
        t = threading.Thread(target=lambda: answer.append(
            srv.post(f"/api/v1/projects/{project}/runs/r/batch", {"rows": _rows(0, 50)})))
        t.start()
        time.sleep(1.5)  # the batch is now waiting behind the held lock
        assert not answer, "the batch was answered while another process held the write lock"
        held.release()
        t.join(60)
        (resp,) = answer
        assert resp.status_code == 200, resp.text
        assert resp.json()["rows"] == 50
        assert len(srv.history(project, "r")) == 50
    finally:
        srv.stop()


def test_a_writer_kept_waiting_too_long_gets_503_busy_and_nothing_is_stored(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from wandblite.server import db as dbmod
    from wandblite.server.errors import ApiError
    from wandblite.server.store import Store

    monkeypatch.setattr(dbmod, "WAIT_SECONDS", 0.3)  # busy timeout, pool wait and retry budget of this store
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    try:
        held = _HeldWriteLock(path)
        try:
            with pytest.raises(ApiError) as info:
                store.apply_batch("p", "r", {"rows": _rows(0, 5)})
        finally:
            held.release()
        assert info.value.status == 503 and info.value.code == "busy"
        assert "p/r" in info.value.message and "retry" in info.value.message
        assert store.position("p", "r")["rows"] == 0
        # The lock gone, the same batch goes through.
        assert store.apply_batch("p", "r", {"rows": _rows(0, 5)})["rows"] == 5
    finally:
        store.close()


def test_many_threads_writing_at_once_all_get_their_batches_stored(tmp_path: Path) -> None:
    from wandblite.server.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    errors: list[BaseException] = []
    barrier = threading.Barrier(48)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            for b in range(5):
                store.apply_batch("p", f"r{n}", {"rows": _rows(b * 20, 20)})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors[:3]
        assert all(store.position("p", f"r{n}")["rows"] == 100 for n in range(48))
    finally:
        store.close()
