"""The per-target state file: atomic, merged under a lock, and never fatal when damaged."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from wandblite.interop.state import SyncState, run_digest, run_key


def _bump(home: str, n: int) -> None:
    st = SyncState("mlflow", "http://x", home)
    for i in range(n):
        st.update(f"run-{i}", rows=i)


def test_records_survive_a_reload_and_merge_field_by_field(tmp_path: Path) -> None:
    st = SyncState("mlflow", "http://127.0.0.1:5000\nexp", tmp_path)
    st.update("k", rows=3, done=False)
    st.update("k", done=True)
    assert SyncState("mlflow", "http://127.0.0.1:5000\nexp", tmp_path).get("k") == {"rows": 3, "done": True}
    assert SyncState("mlflow", "http://other", tmp_path).get("k") == {}  # another target, another file
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".json"] == [st.path.name]
    st.forget("k")
    assert st.get("k") == {}


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump, args=(str(tmp_path), 20)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    st = SyncState("mlflow", "http://x", tmp_path)
    assert all(st.get(f"run-{i}") == {"rows": i} for i in range(20))
    assert not list(tmp_path.glob(".tmp-*"))  # no temporary file left behind


def test_a_damaged_state_file_means_send_again_not_crash(tmp_path: Path) -> None:
    st = SyncState("wandb", "offline", tmp_path)
    st.update("k", rows=1)
    st.path.write_text("{torn")
    assert st.get("k") == {}
    assert "unreadable" in st.warnings[0]
    st.update("k", rows=2)
    assert st.get("k") == {"rows": 2}


def test_key_and_digest_follow_the_run_files(tmp_path: Path) -> None:
    d = tmp_path / "r1"
    d.mkdir()
    (d / "events-000.wlr").write_bytes(b"x" * 10)
    assert run_key(d, "r1") == f"{d.resolve()}#r1"
    assert run_digest(d) == {"events-000.wlr": 10}
    (d / "events-001.wlr").write_bytes(b"y")
    assert run_digest(d) == {"events-000.wlr": 10, "events-001.wlr": 1}
