"""The sync client's pipeline: bodies encoded ahead, sent in order, cut in parts when too large.

Against a real server process (SQLite and PostgreSQL): a run synced with small batches whose bodies
are also over a (lowered) size limit arrives whole, every request carried at most the limit (or a
single row), each body was encoded before the request that sent it, and a re-sync sends nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from wandblite.sync import client
from wandblite.sync.client import Syncer
from wandblite.sync.transport import HttpTransport

from .conftest import ServerProc, assert_same_history, uniq, write_run


class _Recording(HttpTransport):
    """An HttpTransport that records each body it sends, and the thread that encoded it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sent: list[tuple[int, bool]] = []  # (bytes, encoded ahead of the call)
        self.encoded_in: set[str] = set()

    def encode_batch(self, body: dict[str, Any]) -> bytes:
        self.encoded_in.add(threading.current_thread().name)
        return super().encode_batch(body)

    def batch(self, project: str, run_id: str, body: Any) -> dict[str, Any]:
        ahead = isinstance(body, bytes)
        data = body if ahead else self.encode_batch(body)
        self.sent.append((len(data), ahead))
        return super().batch(project, run_id, data)


def test_large_bodies_go_in_parts_encoded_ahead_and_the_run_arrives_whole(
        server: ServerProc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = uniq()
    write_run(tmp_path / "runs", project, "big", 900)
    monkeypatch.setattr(client, "MAX_BATCH_BYTES", 6_000)
    transport = _Recording(server.url, server.key)
    res = Syncer(transport, batch_size=300, use_cache=False).sync_path(tmp_path / "runs" / "big")
    assert res.ok and res.rows == 900, res
    assert_same_history(server, project, "big", tmp_path / "runs" / "big")
    assert len(transport.sent) > 4  # three batches of 300 rows and the last: cut in parts
    assert all(size <= 6_000 for size, _ahead in transport.sent[:-1])  # the last one carries the metadata
    assert all(ahead for _size, ahead in transport.sent)
    assert threading.main_thread().name in transport.encoded_in  # encoded by the reading thread
    again = Syncer(_Recording(server.url, server.key), batch_size=300, use_cache=False).sync_path(
        tmp_path / "runs" / "big")
    assert again.ok and again.rows == 0
