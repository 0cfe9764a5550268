"""A shared run's writers on the dashboard (real server on SQLite and PostgreSQL, real headless
Chromium): a crashed run of three writers logged by the real SDK in three processes (one SIGKILLed
first, ``tests/server/shared_writers.py``) and synced. The overview names the writer that stopped
first with the figures ``wandblite show --json`` gives; the Console tab's writer picker shows each
writer's own lines; the System tab draws one line per writer whose plotted values are the samples
each writer recorded, and one writer's alone when picked; the compare view overlays runs' system
metrics. Hosts, errors and console lines are untrusted: a hostile writer's facts and HTML in console
lines stay text. Screenshots go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import wandblite
from tests.dashboard.conftest import Dash, shot
from tests.server.conftest import cli
from tests.server.shared_writers import HOSTILE, LABELS, make_crashed_shared_run
from wandblite.vocab import PROCESS_RSS_KEY

pytestmark = pytest.mark.browser

PROJECT = "dash-writers"
RUN = "shared1"
EVIL = '"><img src=x onerror="window.__xss=3">'


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's directory, written once for every backend."""
    return make_crashed_shared_run(tmp_path_factory.mktemp("dash-writers") / "runs", PROJECT, RUN)


@pytest.fixture
def synced(dash: Dash, shared_run: Path) -> Path:
    """The shared run synced to the backend's server (again: a second sync sends nothing), and a run
    whose writer's facts (so its writers table and crash report) are hostile, sent as batches."""
    r = cli("sync", str(shared_run.parent), "--server", dash.url, "--api-key", dash.server.key, "--project",
            PROJECT, home=dash.server.home)
    assert r.returncode == 0, r.stderr
    # A writer's label is checked by the server (``vocab.WRITER_LABEL_RE``); the rest of what a writer
    # says of itself (host, error, console lines, memory figures) is its own text.
    facts = {"label": "evil", "host": EVIL, "pid": 1, "primary": True, "update_finish_state": True,
             "state": "crashed", "exit_code": None, "signal": None, "started_at": 1.7e9, "last_record": 1.7e9,
             "last_alive": 1.7e9, "steps": 1, "rows": 1, "attempts": 1, "error": {"type": EVIL, "message": EVIL},
             "last_lines": [EVIL], "last_memory": {EVIL: 1.0}, "rss_mb": None}
    writer = {"label": "evil", "primary": True, "update_finish_state": True, "fold": {}, "state": "crashed",
              "digest": "d", "facts": facts}
    resp = dash.server.post(f"/api/v1/projects/{PROJECT}/runs/hostile/batch", {"writer": writer})
    assert resp.status_code == 200, resp.text
    batch = {"system": [{"idx": i, "ts": 1.7e9 + i, "metrics": {PROCESS_RSS_KEY: 100.0 + i}} for i in range(3)]}
    resp = dash.server.post(f"/api/v1/projects/{PROJECT}/runs/hostile/batch", batch)
    assert resp.status_code == 200, resp.text
    return shared_run


def system_traces(page: Any, key: str, n: int) -> list[dict[str, Any]]:
    sel = f'.panel[data-key="{key}"] .js-plotly-plot'
    page.wait_for_function("([s, n]) => { const g = document.querySelector(s); return g && g.data && g.data.length === n; }",
                           arg=[sel, n])
    return list(page.evaluate("s => document.querySelector(s).data.map(t => ({x: Array.from(t.x), y: Array.from(t.y),"
                              " name: t.name}))", sel))


def expected(r: Any, label: str, t0: float) -> tuple[list[float], list[float]]:
    pts = [(ts, m[PROCESS_RSS_KEY]) for ts, m in r.system_metrics(writer=label) if PROCESS_RSS_KEY in m]
    return [ts - t0 for ts, _v in pts], [v for _ts, v in pts]


def test_overview_names_the_writer_that_stopped_first(page: Any, dash: Dash, synced: Path) -> None:
    show = json.loads(cli("show", str(synced), "--json").stdout)
    first = show["stopped_first"]
    assert first["writer"] == "rank1"
    page.goto(f"{dash.url}/#/p/{PROJECT}/r/{RUN}/overview")
    page.wait_for_selector("#crash-report")
    assert page.locator("#crash-report .stopped-writer").text_content() == "rank1"
    assert f"{first['seconds_before_others']:.1f} s" in page.locator("#crash-report .gap").text_content()
    host = show["writers"][1]["host"]
    assert f"on {host} (pid {first['pid']})" in page.locator("#crash-report .stopped-first").text_content()
    assert page.locator("#crash-report .last-lines").text_content() == "".join(x + "\n" for x in first["last_lines"])
    assert f"rank1 says {HOSTILE}" in first["last_lines"]
    mem = page.locator("#crash-report .last-memory th").all_text_contents()
    assert mem == list(first["last_memory"]) and PROCESS_RSS_KEY in mem
    rows = page.locator("#writers-table tbody tr")
    assert [rows.nth(i).locator("td").first.text_content() for i in range(rows.count())] == list(LABELS)
    states = [rows.nth(i).locator("td").nth(4).text_content() for i in range(3)]
    assert [s.split(" ")[0] for s in states] == [w["state"] for w in show["writers"]] == ["crashed", "crashed", "finished"]
    assert page.locator("#crash-report img, #crash-report script").count() == 0
    assert page.evaluate("() => window.__xss") is None
    shot(page, "20-writers-overview")


def test_console_picker_shows_each_writer_s_lines(page: Any, dash: Dash, synced: Path) -> None:
    r = wandblite.replay(synced)
    page.goto(f"{dash.url}/#/p/{PROJECT}/r/{RUN}/console")
    page.wait_for_function("() => document.querySelector('#console')?.textContent.includes('[rank2] rank2 step 0')")
    assert page.locator("#console").text_content() == r.output()
    picker = page.locator("select.writer-picker")
    assert picker.locator("option").all_text_contents()[0] == "all writers (3)"
    for label in LABELS:
        picker.select_option(label)
        want = r.output(writer=label)
        page.wait_for_function("w => document.querySelector('#console').textContent === w", arg=want)
        assert f"{label} says {HOSTILE}\n" in want and "[" + label not in want
        if label == "rank1":
            shot(page, "21-writers-console-rank1")
    assert page.locator("#console img, #console script").count() == 0
    assert page.evaluate("() => window.__xss") is None


def test_system_tab_draws_one_line_per_writer_with_the_logged_values(page: Any, dash: Dash, synced: Path) -> None:
    r = wandblite.replay(synced)
    t0 = min(ts for ts, _m in r.system_metrics())
    page.goto(f"{dash.url}/#/p/{PROJECT}/r/{RUN}/system")
    traces = system_traces(page, PROCESS_RSS_KEY, 3)
    assert [t["name"] for t in traces] == list(LABELS)
    for t, label in zip(traces, LABELS):
        xs, ys = expected(r, label, t0)
        assert t["y"] == ys and len(ys) >= 3
        assert t["x"] == pytest.approx(xs, abs=1e-6)
    sections = page.locator("h3.system-section").all_text_contents()
    assert sections[:2] == ["CPU", "Memory"]
    shot(page, "22-writers-system")
    page.locator("select.writer-picker").select_option("rank2")
    page.wait_for_function("s => { const g = document.querySelector(s); return g && g.data && g.data.length === 1"
                           " && g.data[0].name === 'rank2'; }", arg=f'.panel[data-key="{PROCESS_RSS_KEY}"] .js-plotly-plot')
    (one,) = system_traces(page, PROCESS_RSS_KEY, 1)
    own = r.system_metrics(writer="rank2")
    xs, ys = expected(r, "rank2", own[0][0])
    assert one["y"] == ys and one["x"] == pytest.approx(xs, abs=1e-6)
    shot(page, "23-writers-system-rank2")


def test_compare_view_overlays_runs_system_metrics_and_hostile_writers_stay_text(page: Any, dash: Dash,
                                                                                 synced: Path) -> None:
    r = wandblite.replay(synced)
    page.goto(f"{dash.url}/#/p/{PROJECT}/compare/{RUN},hostile/system")
    traces = system_traces(page, PROCESS_RSS_KEY, 4)
    assert [t["name"] for t in traces] == [f"{r.name} · {x}" for x in LABELS] + ["hostile"]
    t0 = min(ts for ts, _m in r.system_metrics())
    assert traces[0]["y"] == expected(r, "rank0", t0)[1]
    assert traces[3]["y"] == [100.0, 101.0, 102.0] and traces[3]["x"] == [0.0, 1.0, 2.0]
    # a compare page has no edit section: nothing stands in its place (once the text "null")
    assert page.evaluate("() => [...document.querySelector('#main').childNodes].filter((n) => n.nodeType === 3).length") == 0
    shot(page, "24-writers-compare-system")
    page.goto(f"{dash.url}/#/p/{PROJECT}/r/hostile/overview")
    page.wait_for_selector("#crash-report")
    assert page.locator("#crash-report .stopped-writer").text_content() == "evil"
    assert page.locator("#writers-table tbody td").first.text_content() == "evil"
    assert page.locator("#writers-table tbody td").nth(1).text_content() == EVIL
    assert page.locator("#crash-report .last-lines").text_content() == EVIL + "\n"
    assert page.locator(".overview img").count() == 0
    page.goto(f"{dash.url}/#/p/{PROJECT}/r/hostile/console")
    page.wait_for_selector("select.writer-picker")
    assert page.locator("select.writer-picker option").nth(1).text_content() == f"evil on {EVIL}"
    assert page.evaluate("() => window.__xss") is None
    shot(page, "25-writers-hostile")
