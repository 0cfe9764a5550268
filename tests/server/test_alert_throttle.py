"""``run.alert``'s ``wait_duration``: which alerts wandb would not have sent (``throttled``).

The rule (``wandblite/throttle.py``) on its own; then through a real server on SQLite and
PostgreSQL with the alerts split over several batches (and a retried one) and read through pages
of every size, through ``wandblite.Api``; a store from before migration 0005 gets the flags from
the migration; and ``wandblite show`` marks a run file's alerts as the server does after a sync.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import wandblite
from wandblite.server import records
from wandblite.server.schema import schema_migrations
from wandblite.server.store import Store
from wandblite.throttle import throttle

from .conftest import ServerProc, clean_env, cli, fresh_postgres_database, uniq

T0 = 1.7e9

#: (title, seconds after T0 or None, wait_duration, throttled?) in the run's order.
SCENARIO: list[tuple[str, float | None, float | None, bool]] = [
    ("nan", 0, None, False),     # the first of its title
    ("nan", 30, None, True),     # within wandb's default minute of the sent one at 0
    ("other", 31, 5, False),     # another title has its own window
    ("nan", 59, None, True),     # still the window of 0: the throttled one at 30 did not restart it
    ("nan", 60, None, False),    # exactly 60 s later: sent
    ("nan", 70, 5, False),       # its own wait (5 s) decides, not the earlier calls'
    ("nan", 72, 300, True),      # its own wait (300 s) decides
    ("other", 33, 0, True),      # 0 means the default minute
    ("other", 35, 2, False),     # 4 s after the sent one at 31, wait 2 s
    ("nan", 10, None, False),    # timed before the last sent one (a clock step back): sent
    ("nan", None, None, False),  # no time: sent
    ("nan", 80, None, False),    # its sent predecessor has no time: sent
    ("nan", 81, -1, False),      # a negative wait never throttles
]
EXPECTED = [t for *_x, t in SCENARIO]


def _alerts() -> list[dict[str, Any]]:
    return [{"idx": i, "title": title, "text": f"alert {i}", "level": "WARN", "wait_duration": wait,
             "ts": None if dt is None else T0 + dt} for i, (title, dt, wait, _t) in enumerate(SCENARIO)]


def test_the_rule_in_order_and_in_any_split() -> None:
    assert throttle(_alerts()) == EXPECTED
    rng = random.Random(5)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(SCENARIO)), rng.randint(0, 5)))
        last: dict[str, float | None] = {}
        flags: list[bool] = []
        for a, b in zip([0, *cuts], [*cuts, len(SCENARIO)]):
            flags += throttle(_alerts()[a:b], last)
        assert flags == EXPECTED, cuts


def _flags(srv: ServerProc, project: str, limit: int) -> tuple[list[bool], set[int]]:
    flags: list[bool] = []
    sent: set[int] = set()
    start: int | None = 0
    while start is not None:
        page = srv.get(f"/api/v1/projects/{project}/runs/r/alerts", params={"start": start, "limit": limit}).json()
        flags += [a["throttled"] for a in page["alerts"]]
        sent.add(page["sent"])
        start = page["next"]
    return flags, sent


def test_flags_are_the_same_however_batched_and_paged(server: ServerProc) -> None:
    project = uniq("thr")
    batch = f"/api/v1/projects/{project}/runs/r/batch"
    alerts = _alerts()
    for a, b in ((0, 3), (3, 4), (2, 9), (9, 13)):  # (2, 9) resends 2 and 3: a retry skips them
        r = server.post(batch, {"alerts": alerts[a:b]})
        assert r.status_code == 200, r.text
    assert server.position(project, "r")["alerts"] == len(SCENARIO)
    for limit in (1, 2, 5, 1000):
        assert _flags(server, project, limit) == (EXPECTED, {EXPECTED.count(False)}), limit
    # A page that starts after the alert whose window it is in still says throttled.
    (a6,) = server.get(f"/api/v1/projects/{project}/runs/r/alerts", params={"start": 6, "limit": 1}).json()["alerts"]
    assert (a6["idx"], a6["throttled"], a6["wait_duration"]) == (6, True, 300.0)

    with wandblite.Api(server=server.url, api_key=server.key) as api:
        run = api.run(f"{project}/r")
        assert [a["throttled"] for a in run.alerts(page_size=3)] == EXPECTED
        assert [a["idx"] for a in run.alerts(include_throttled=False)] == [
            i for i, t in enumerate(EXPECTED) if not t]


def _store_with_alerts(url: str, media: Path) -> Store:
    store = Store(url, media_dir=media)
    store.apply_batch("old", "r", {"alerts": _alerts()[:7]})
    store.apply_batch("old", "r", {"alerts": _alerts()[7:]})
    store.apply_batch("old", "quiet", {"alerts": [{"idx": 0, "title": "t", "text": "x", "ts": T0}]})
    return store


def _migration_check(url: str, tmp_path: Path) -> None:
    store = _store_with_alerts(url, tmp_path / "media")
    assert [a["throttled"] for a in records.list_alerts(store, "old", "r")["alerts"]] == EXPECTED
    with store.write_engine.begin() as conn:  # back to the 0004 state: no column, 0005 not applied
        conn.execute(sa.text("ALTER TABLE alerts DROP COLUMN throttled"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.name == "0005_alert_throttle"))
    store.close()
    store = Store(url, media_dir=tmp_path / "media")  # a server start: the migration runs once
    try:
        assert "0005_alert_throttle" in store.applied_migrations()
        got = records.list_alerts(store, "old", "r", start=0, limit=4)
        assert [a["throttled"] for a in got["alerts"]] == EXPECTED[:4] and got["sent"] == EXPECTED.count(False)
        assert [a["throttled"] for a in records.list_alerts(store, "old", "r")["alerts"]] == EXPECTED
        assert [a["throttled"] for a in records.list_alerts(store, "old", "quiet")["alerts"]] == [False]
        # Alerts synced after the migration continue the windows the migration decided.
        store.apply_batch("old", "r", {"alerts": [{"idx": len(SCENARIO), "title": "nan", "text": "x", "ts": T0 + 90}]})
        assert records.list_alerts(store, "old", "r")["alerts"][-1]["throttled"] is True
    finally:
        store.close()


def test_a_store_from_before_migration_0005_gets_the_flags_sqlite(tmp_path: Path) -> None:
    _migration_check(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)


def test_a_store_from_before_migration_0005_gets_the_flags_postgres(tmp_path: Path) -> None:
    with fresh_postgres_database("wl_thr") as url:
        _migration_check(url, tmp_path)


WRITER = r"""
import sys, time, wandblite
run = wandblite.init(project=sys.argv[1], id="al", dir=sys.argv[2])
run.alert("loss is nan", "first")
run.alert("loss is nan", "again")                       # within the default minute: throttled
time.sleep(0.05)
run.alert("loss is nan", "own wait", wait_duration=0.01)  # its own 10 ms have passed: sent
run.alert("slow", "epoch took 2h", level="INFO")
run.finish()
"""


def test_show_marks_what_the_server_marks(server: ServerProc, tmp_path: Path) -> None:
    project = uniq("shw")
    runs = tmp_path / "runs"
    p = subprocess.run([sys.executable, "-c", WRITER, project, str(runs)], capture_output=True, text=True,
                       timeout=120, env=clean_env(WANDBLITE_CONSOLE="off", WANDBLITE_DISABLE_STATS="1"))
    assert p.returncode == 0, p.stderr
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    shown = cli("show", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    lines = [ln.strip() for ln in shown.stdout.splitlines() if ln.strip().startswith("[")]
    assert lines == ["[INFO] loss is nan: first", "[INFO] loss is nan: again  (suppressed: same title within 60 s)",
                     "[INFO] loss is nan: own wait", "[INFO] slow: epoch took 2h"]
    doc = json.loads(cli("show", str(run_dir), "--json").stdout)
    local = [(a["text"], a["throttled"]) for a in doc["alerts"]]
    assert local == [("first", False), ("again", True), ("own wait", False), ("epoch took 2h", False)]
    assert all(isinstance(a["ts"], float) for a in doc["alerts"])
    r = cli("sync", str(runs), "--server", server.url, "--api-key", server.key, home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    got = server.get(f"/api/v1/projects/{project}/runs/al/alerts").json()
    assert [(a["text"], a["throttled"]) for a in got["alerts"]] == local and got["sent"] == 3
