"""The dashboard end to end: a real ``wandblite server``, runs logged by the real SDK and synced,
driven in a real headless Chromium. Each step leaves a screenshot in ``test-artifacts/dashboard/``.

What is pinned down: the page and its assets come from the server with a strict CSP; the runs
table lists the runs; a run's workspace groups keys into sections by the text before their last
slash and draws line charts whose plotted values are the logged ones; a media slider changes the
image and its caption; two runs compare as two traces; smoothing, log scale and x-axis choice
change the charts; histograms, tables, PR curves, point clouds, video and audio render; logged
HTML and hostile names never run as code; a run's saved files and artifacts are listed and
download their bytes, its alerts show as text with a count badge, the project lists its
artifacts; a running run refreshes by itself; a private server asks for an API key and logs in
with a session cookie.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.dashboard.conftest import ROOT, Dash, database, shot
from tests.dashboard.make_runs import (
    ALERT_TEXT,
    ALERT_TITLE,
    ARTIFACT,
    ARTIFACT_ENTRIES,
    HOSTILE_NAME,
    SAVED_BYTES,
    SAVED_NAME,
    STEPS,
)
from tests.server.conftest import ServerProc, clean_env

pytestmark = pytest.mark.browser

PANEL = "k => document.querySelector('.panel[data-key=\"' + CSS.escape(k) + '\"]')"


def traces(page: Any, key: str, min_traces: int = 1) -> list[dict[str, Any]]:
    """The plotly traces of a line panel once drawn (scrolled into view first: panels draw lazily)."""
    page.locator(f'.panel[data-key="{key}"]').scroll_into_view_if_needed()
    page.wait_for_function(
        f"([k, n]) => {{ const p = ({PANEL})(k); const g = p && p.querySelector('.js-plotly-plot');"
        " return g && g.data && g.data.length >= n; }", arg=[key, min_traces])
    return list(page.evaluate(
        f"k => ({PANEL})(k).querySelector('.js-plotly-plot').data.map(t => ({{x: Array.from(t.x || []),"
        " y: Array.from(t.y || []), name: t.name, meta: t.meta, type: t.type || 'scatter'}))", key))


def layout(page: Any, key: str) -> dict[str, Any]:
    return dict(page.evaluate(f"k => {{ const l = ({PANEL})(k).querySelector('.js-plotly-plot').layout;"
                              " return {xtitle: l.xaxis.title.text, ytype: l.yaxis.type}; }", key))


def raw(ts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in ts if (t.get("meta") or {}).get("role") == "raw"]


def open_run(page: Any, dash: Dash, run_id: str, tab: str = "") -> None:
    page.goto(f"{dash.url}/#/p/dash/r/{run_id}" + (f"/{tab}" if tab else ""))
    page.wait_for_selector(".tab-body")


# ------------------------------------------------------------------------------------------ page


def test_page_and_assets_come_from_the_server_with_a_strict_csp(dash: Dash) -> None:
    r = requests.get(dash.url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'",
                      "img-src 'self' data: blob:", "media-src 'self' blob:", "style-src 'self' 'unsafe-inline'"):
        assert directive in csp
    assert "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    # No asset from anywhere else: air-gapped users have no CDN.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text)
    js = requests.get(dash.url + "/static/vendor/plotly.min.js", timeout=30, headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200 and "plotly.js v" in js.text[:200] and js.headers["content-type"].startswith("text/javascript")
    for name in ("app.js", "api.js", "dom.js", "panels.js", "records.js", "app.css"):
        assert requests.get(f"{dash.url}/static/{name}", timeout=10).status_code == 200
        # The app builds its DOM with text nodes only: no HTML parsing APIs anywhere in its code.
        code = (ROOT / "wandblite/server/static" / name).read_text()
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|createContextualFragment", code)
    # The API's errors stay JSON next to the dashboard's routes.
    assert requests.get(dash.url + "/static/nope.js", timeout=10).status_code == 404
    assert requests.get(dash.url + "/api/v1/nope", timeout=10).json()["error"]["code"] == "not_found"


def test_runs_table_lists_the_runs_and_shows_a_hostile_name_as_text(page: Any, dash: Dash) -> None:
    page.goto(dash.url + "/")
    page.get_by_role("link", name="dash", exact=True).click()
    rows = page.locator("#runs-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2
    names = page.locator("#runs-table a.run-link").all_text_contents()
    assert sorted(names) == sorted(["alpha", HOSTILE_NAME])
    # The name is text: no <img src=x> element exists and its onerror never ran.
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("window.__xss") is None
    headers = page.locator("#runs-table thead th").all_text_contents()
    assert any(h.startswith("best") for h in headers) and any(h.startswith("lr") for h in headers)
    shot(page, "01-runs-table")

    # Sort by a summary column (server-side): ascending "best" puts alpha (0.05) first.
    page.locator("#runs-table th[data-field='summary.best']").click()
    page.wait_for_function("() => document.querySelector('#runs-table th[data-field=\"summary.best\"]').textContent.includes('▼')")
    page.locator("#runs-table th[data-field='summary.best']").click()
    page.wait_for_function("() => document.querySelector('#runs-table th[data-field=\"summary.best\"]').textContent.includes('▲')")
    assert page.locator("#runs-table a.run-link").first.text_content() == "alpha"
    # Search and filter narrow the table.
    page.fill("#run-search", "alph")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 1")
    page.fill("#run-search", "")
    # Wait for the cleared search to show both runs again, so the filter below is what narrows it.
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 2")
    page.fill("#run-filter", "config.lr >= 0.015")
    page.press("#run-filter", "Enter")
    page.wait_for_function(
        "(name) => { const a = document.querySelectorAll('#runs-table a.run-link');"
        " return a.length === 1 && a[0].textContent === name; }", arg=HOSTILE_NAME)
    assert page.locator("#runs-table a.run-link").first.text_content() == HOSTILE_NAME
    shot(page, "02-runs-table-filtered")


def test_run_workspace_has_sections_and_line_charts_of_the_logged_values(page: Any, dash: Dash) -> None:
    page.goto(f"{dash.url}/#/p/dash")
    page.get_by_role("link", name="alpha", exact=True).click()
    page.wait_for_selector(".section[data-section='train']")
    sections = page.eval_on_selector_all(".section", "els => els.map(e => e.dataset.section)")
    # Grouped by the text before the LAST slash: opt/group/lr goes to "opt/group".
    assert {"train", "val", "opt/group", "samples", "weights", "eval", "scene", "report", "clips"} <= set(sections)
    assert "opt" not in sections
    train = page.locator(".section[data-section='train']")
    assert train.locator("summary .section-name").text_content() == "train"
    assert sorted(train.locator(".panel").evaluate_all("els => els.map(e => e.dataset.key)")) == ["train/acc", "train/loss"]

    logged = dash.run("runa")
    ts = raw(traces(page, "train/loss"))
    assert len(ts) == 1
    assert ts[0]["x"] == list(range(STEPS))
    assert ts[0]["y"] == pytest.approx(logged["loss"], rel=1e-12)
    assert raw(traces(page, "train/acc"))[0]["y"] == pytest.approx(logged["acc"], rel=1e-12)
    val = raw(traces(page, "val/loss"))[0]
    assert val["x"] == [0, 5, 10, 15]
    assert val["y"] == pytest.approx([logged["loss"][s] + 0.05 for s in (0, 5, 10, 15)])
    page.locator(".section[data-section='train']").scroll_into_view_if_needed()
    shot(page, "03-run-workspace")

    # Smoothing adds an EMA trace; log scale and the x-axis choice reach the layout.
    page.locator("#smoothing").fill("0.5")
    ts = traces(page, "train/loss", 2)
    sm = [t for t in ts if (t.get("meta") or {}).get("role") == "smoothed"]
    assert len(sm) == 1
    want, last = [], 0.0
    for n, y in enumerate(logged["loss"], 1):
        last = last * 0.5 + 0.5 * y
        want.append(last / (1 - 0.5 ** n))
    assert sm[0]["y"] == pytest.approx(want)
    page.check("#log-y")
    page.wait_for_function(f"() => ({PANEL})('train/loss').querySelector('.js-plotly-plot').layout.yaxis.type === 'log'")
    page.select_option("#x-axis", "_runtime")
    page.wait_for_function(f"() => ({PANEL})('train/loss').querySelector('.js-plotly-plot').layout.xaxis.title.text === '_runtime'")
    assert layout(page, "train/loss") == {"xtitle": "_runtime", "ytype": "log"}
    shot(page, "04-smoothing-log-runtime")
    # Another logged metric as the x-axis: train/loss against train/acc, point by point.
    page.select_option("#x-axis", "train/acc")
    page.wait_for_function(f"() => ({PANEL})('train/loss').querySelector('.js-plotly-plot').layout.xaxis.title.text === 'train/acc'")
    ts = raw(traces(page, "train/loss"))
    assert ts[0]["x"] == pytest.approx(logged["acc"]) and ts[0]["y"] == pytest.approx(logged["loss"])


def test_media_slider_changes_the_image_and_its_caption(page: Any, dash: Dash) -> None:
    open_run(page, dash, "runa")
    panel = page.locator(".panel[data-key='samples/images']")
    panel.scroll_into_view_if_needed()
    caption = panel.locator("figcaption.caption")
    caption.wait_for()
    # The newest step shows first; captions are text (no <i> element made from them).
    assert panel.locator(".step-label").text_content() == "step 10"
    assert caption.text_content() == "caption step 10 <i>x</i>"
    assert panel.locator("figcaption i").count() == 0
    src10 = panel.locator(".img-stage img").get_attribute("src")
    panel.locator(".box-label").first.wait_for()
    assert panel.locator(".box-label").first.text_content() == "<b>cat</b> 10 p=0.9"
    assert panel.locator("canvas.mask").count() == 1
    shot(page, "05-media-step-10")

    panel.locator("input.step-slider").fill("0")
    page.wait_for_function(f"() => ({PANEL})('samples/images').querySelector('.step-label').textContent === 'step 0'")
    assert caption.text_content() == "caption step 0 <i>x</i>"
    assert panel.locator(".img-stage img").get_attribute("src") != src10
    panel.locator(".box-label").first.wait_for()
    assert panel.locator(".box-label").first.text_content() == "<b>cat</b> 0 p=0.9"
    page.wait_for_function(f"() => ({PANEL})('samples/images').querySelector('.img-stage img').naturalWidth === 48")
    shot(page, "06-media-step-0")

    panel.locator("input.step-slider").fill("1")
    page.wait_for_function(f"() => ({PANEL})('samples/images').querySelector('.step-label').textContent === 'step 5'")
    assert caption.text_content() == "caption step 5 <i>x</i>"


def test_two_runs_compare_as_two_traces(page: Any, dash: Dash) -> None:
    page.goto(f"{dash.url}/#/p/dash")
    page.locator("#runs-table tbody tr").first.wait_for()
    for box in page.locator("#runs-table tbody input[type=checkbox]").all():
        box.check()
    assert page.locator("#compare").text_content() == "compare 2 selected"
    page.click("#compare")
    page.wait_for_selector(".section[data-section='train']")
    assert "/compare/" in page.url
    ts = raw(traces(page, "train/loss", 2))
    assert len(ts) == 2
    by_run = {t["meta"]["run"]: t for t in ts}
    for run_id in ("runa", "runb"):
        assert by_run[run_id]["y"] == pytest.approx(dash.run(run_id)["loss"], rel=1e-12)
    # plotly renders some HTML in names: the hostile name reaches it escaped, and shows as text.
    assert by_run["runb"]["name"] == HOSTILE_NAME.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    legend = page.locator(".panel[data-key='train/loss'] .legendtext").all_text_contents()
    assert HOSTILE_NAME in legend and "alpha" in legend
    assert page.locator(".run-legend li").count() == 2
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("window.__xss") is None
    shot(page, "07-compare-two-runs")
    page.get_by_role("link", name="overview").click()
    page.wait_for_selector("#config-table")
    heads = page.locator("#config-table thead th").all_text_contents()
    assert heads[0] == "key" and sorted(heads[1:]) == sorted(["alpha", HOSTILE_NAME])
    assert page.locator("#config-table tr.differs th").all_text_contents() == ["lr", "model.depth"]
    shot(page, "08-compare-config")


def test_logged_html_is_sandboxed_and_its_script_never_runs(page: Any, dash: Dash) -> None:
    open_run(page, dash, "runa")
    panel = page.locator(".panel[data-key='report/html']")
    panel.scroll_into_view_if_needed()
    frame_el = panel.locator("iframe")
    frame_el.wait_for()
    assert frame_el.get_attribute("sandbox") == ""
    page.wait_for_function(f"() => ({PANEL})('report/html').querySelector('iframe').srcdoc.includes('<h1>report')")
    frame = frame_el.element_handle().content_frame()
    frame.wait_for_selector("h1")
    assert frame.locator("h1").text_content() == "report"
    time.sleep(0.3)
    assert page.evaluate("window.__html_ran") is None
    assert frame.evaluate("window.__html_ran") is None
    shot(page, "09-html-sandboxed")


def test_histograms_tables_charts_3d_video_and_audio_render(page: Any, dash: Dash) -> None:
    open_run(page, dash, "runa")

    hist = page.locator(".panel[data-key='weights/hist']")
    hist.scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({PANEL})('weights/hist').querySelector('.js-plotly-plot')?.data?.length === 1")
    h = page.evaluate(f"() => {{ const t = ({PANEL})('weights/hist').querySelector('.js-plotly-plot').data[0];"
                      " return {type: t.type, x: t.x, total: t.z.map(r => r.reduce((a, b) => a + b, 0)).reduce((a, b) => a + b, 0)}; }")
    assert h["type"] == "heatmap" and h["x"] == [0, 5, 10, 15] and h["total"] == 4 * 500

    table = page.locator(".panel[data-key='eval/table']")
    table.scroll_into_view_if_needed()
    table.locator("table.data tbody tr").first.wait_for()
    assert table.locator("table.data tbody tr").count() == 3
    assert table.locator("td .img-stage img").count() == 3
    assert table.locator("td").all_text_contents()[2] == "<script>row 0</script>"
    assert "rows 1\u20133 of 3" in table.locator(".pager").text_content()

    page.locator(".panel[data-key='eval/pr']").scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({PANEL})('eval/pr').querySelector('.js-plotly-plot')?.data?.length === 2")
    assert page.evaluate(f"() => ({PANEL})('eval/pr').querySelector('.js-plotly-plot').data.map(t => t.name)") == ["neg", "pos"]

    page.locator(".panel[data-key='scene/points']").scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({PANEL})('scene/points').querySelector('.js-plotly-plot')?.data?.length === 1")
    p3 = page.evaluate(f"() => {{ const t = ({PANEL})('scene/points').querySelector('.js-plotly-plot').data[0];"
                       " return {type: t.type, n: t.x.length}; }")
    assert p3 == {"type": "scatter3d", "n": 200}

    assert page.locator(".panel[data-key='clips/video'] img").count() == 1
    assert page.locator(".panel[data-key='clips/audio'] audio").count() == 1
    shot(page, "10-media-panels")


def test_overview_console_and_system_tabs(page: Any, dash: Dash) -> None:
    open_run(page, dash, "runa", "overview")
    page.wait_for_selector("#config-table")
    cfg = dict(zip(page.locator("#config-table th").all_text_contents(), page.locator("#config-table td").all_text_contents(), strict=True))
    assert cfg["lr"] == "0.01" and cfg["model.depth"] == "4"
    assert "best" in page.locator("#summary-table").text_content()
    shot(page, "11-overview")
    page.get_by_role("link", name="console").click()
    page.wait_for_function("() => document.querySelector('#console')?.textContent.includes('console of runa')")
    assert "console of runa: <b>not bold</b>" in page.locator("#console").text_content()
    assert page.locator("#console b").count() == 0
    # Console records are pieces of lines; the dashboard joins them as `wandblite logs` does.
    import wandblite

    records = [r[2] for r in wandblite.replay(dash.runs_dir / "runa").console()]
    assert "epoch 1 " in records and "\rbar 100%\n" in records, records  # recorded in pieces
    text = page.locator("#console").text_content()
    assert "epoch 1 done\n" in text and "bar 100%\n" in text and "bar 10%" not in text, text
    shot(page, "12-console")
    page.get_by_role("link", name="system").click()
    page.wait_for_selector(".tab-body .panel, .tab-body p.muted")


def fetch(page: Any, dash: Dash, href: str | None) -> Any:
    """GET a link of the page with the page's own cookies (same origin only)."""
    assert href and href.startswith("/api/v1/") and not href.startswith("//")
    r = page.request.get(dash.url + href)
    assert r.status == 200, (href, r.status)
    return r


def test_files_and_artifacts_tab_lists_and_downloads_them(page: Any, dash: Dash) -> None:
    open_run(page, dash, "runa")
    page.get_by_role("link", name="files & artifacts").click()
    page.wait_for_selector("#files-table")
    assert page.url.endswith("/r/runa/files")
    row = page.locator("#files-table tbody tr")
    assert row.count() == 1
    cells = row.first.locator("td").all_text_contents()
    assert cells[0] == SAVED_NAME and cells[1] == f"{len(SAVED_BYTES)} B" and cells[2] == "now" and cells[4] == "1"
    link = row.first.locator("a.download")
    href = link.get_attribute("href")
    assert href == "/api/v1/projects/dash/runs/runa/files/notes/run-notes.txt"
    assert link.get_attribute("download") == "run-notes.txt"
    r = fetch(page, dash, href)
    assert r.body() == SAVED_BYTES
    assert r.headers["content-type"] == "application/octet-stream" and r.headers["content-disposition"].startswith("attachment")

    # The artifact it logged: name:version, type, aliases, size; expands to its manifest.
    art = page.locator("#logged-artifacts details.artifact")
    assert art.count() == 1
    summary = art.first.locator("summary")
    assert summary.locator(".artifact-name").text_content() == f"{ARTIFACT}:v0"
    assert summary.locator(".artifact-type").text_content().strip() == "dataset"
    assert sorted(summary.locator(".alias").all_text_contents()) == ["best", "latest"]
    assert summary.locator(".artifact-size").text_content() == f"{sum(map(len, ARTIFACT_ENTRIES.values()))} B"
    summary.click()
    entries = art.first.locator(".manifest-entries tbody tr")
    entries.first.wait_for()
    assert entries.locator(".entry-path").all_text_contents() == sorted(ARTIFACT_ENTRIES)
    for i, path in enumerate(sorted(ARTIFACT_ENTRIES)):
        href = entries.nth(i).locator("a.download").get_attribute("href")
        assert re.fullmatch(r"/api/v1/media/[0-9a-f]{64}", href or "")
        assert fetch(page, dash, href).body() == ARTIFACT_ENTRIES[path]
    assert "two small files" in art.first.locator(".manifest").text_content()
    shot(page, "13-files-and-artifacts")

    # The run that used it lists it under "used", and says it saved no files.
    open_run(page, dash, "runb", "files")
    page.wait_for_selector("#used-artifacts")
    assert page.locator("#files-empty").count() == 1
    used = page.locator("#used-artifacts details.artifact summary")
    assert used.locator(".artifact-name").all_text_contents() == [f"{ARTIFACT}:v0"]
    assert "from run runa" in used.first.text_content()
    assert page.locator("img[src='x']").count() == 0
    shot(page, "14-used-artifacts")


def test_alerts_show_as_text_with_a_count_badge(page: Any, dash: Dash) -> None:
    open_run(page, dash, "runa", "overview")
    page.wait_for_selector("#alerts-table")
    rows = page.locator("#alerts-table tbody tr")
    assert rows.count() == 1
    assert rows.first.locator(".alert-title").text_content() == ALERT_TITLE
    assert rows.first.locator(".alert-text").text_content() == ALERT_TEXT
    assert rows.first.locator(".level").text_content() == "WARN"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows.first.locator("td").first.text_content())
    # Text, not markup: no <b> or <script> element was made from it.
    assert page.locator("#alerts b, #alerts script").count() == 0
    badge = page.locator(".run-header #alert-badge")
    badge.wait_for()
    assert badge.text_content().strip().endswith("1")
    shot(page, "15-alerts")
    # A run without alerts: no badge, and the overview says so.
    open_run(page, dash, "runb", "overview")
    page.wait_for_function("() => document.querySelector('#alerts')?.textContent.includes('No alerts')")
    assert page.locator("#alert-badge").count() == 0


def test_project_page_lists_its_artifacts(page: Any, dash: Dash) -> None:
    page.goto(f"{dash.url}/#/p/dash")
    page.locator("#runs-table tbody tr").first.wait_for()
    page.click("#artifacts-link")
    page.wait_for_selector("#project-artifacts")
    assert page.url.endswith("#/p/dash/artifacts")
    group = page.locator(f"#project-artifacts .artifact-group[data-name='{ARTIFACT}']")
    assert group.locator(".artifact-group-name").text_content() == ARTIFACT
    assert "1 version" in group.locator("h2").text_content()
    assert sorted(group.locator(".aliases .alias").all_text_contents()) == ["best \u2192 v0", "latest \u2192 v0"]
    version = group.locator("details.artifact")
    assert version.count() == 1
    assert version.first.locator(".artifact-name").text_content() == f"{ARTIFACT}:v0"
    assert "run runa" in version.first.locator("summary").text_content()
    version.first.locator("summary").click()
    version.first.locator(".manifest-entries tbody tr").first.wait_for()
    assert version.first.locator(".entry-path").all_text_contents() == sorted(ARTIFACT_ENTRIES)
    shot(page, "16-project-artifacts")
    page.get_by_role("link", name="Runs", exact=True).click()
    page.wait_for_selector("#runs-table")


LIVE = r"""
import os, sys
import wandblite
run = wandblite.init(project="dash", id="live", name="live run", dir=os.environ["RUNS"])
for line in sys.stdin:
    n = int(line)
    for _ in range(n):
        run.log({"live/x": float(run.step)})
    print("logged", run.step, flush=True)
"""


def test_a_running_run_refreshes_by_itself(page: Any, dash: Dash, tmp_path: Path) -> None:
    runs = tmp_path / "live-runs"
    proc = subprocess.Popen([sys.executable, "-c", LIVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=clean_env(RUNS=str(runs), WANDBLITE_CONSOLE="off", WANDBLITE_DISABLE_STATS="1"))
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write("5\n")
        proc.stdin.flush()
        assert proc.stdout.readline().startswith("logged")
        dash.sync(runs)
        open_run(page, dash, "live")
        page.wait_for_selector(".run-header .state-running")
        first = len(raw(traces(page, "live/x"))[0]["y"])
        assert first >= 4
        shot(page, "17-live-before")
        proc.stdin.write("7\n")
        proc.stdin.flush()
        assert proc.stdout.readline().startswith("logged")
        dash.sync(runs)
        # No reload: the page polls while the run is running.
        page.wait_for_function(
            f"n => ({PANEL})('live/x').querySelector('.js-plotly-plot').data.find(t => t.meta.role === 'raw').y.length >= n",
            arg=first + 7, timeout=20_000)
        shot(page, "18-live-after")
    finally:
        proc.kill()
        proc.wait(10)


def test_a_private_server_asks_for_a_key_and_logs_in_with_a_cookie(page: Any, tmp_path: Path,
                                                                   dash_backend: str) -> None:
    with database(dash_backend, tmp_path / "private.db") as url:
        _login(page, ServerProc(url, tmp_path / "media", tmp_path / "home").start())


def _login(page: Any, srv: ServerProc) -> None:
    try:
        page.goto(srv.url + "/")
        page.wait_for_selector("#login-form")
        assert page.locator("#login-form").is_visible()
        shot(page, "19-login")
        page.fill("#api-key", "wl_wrong")
        page.click("#login-form button[type=submit]")
        page.wait_for_function("() => document.querySelector('#login-form [role=alert]').textContent.length > 0")
        assert "not valid" in page.locator("#login-form [role=alert]").text_content()
        page.fill("#api-key", srv.key)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("h1:has-text('Projects')")
        # The session cookie is HttpOnly: the page's scripts cannot read it.
        assert "wandblite_session" not in page.evaluate("document.cookie")
        assert any(c["name"] == "wandblite_session" and c["httpOnly"] for c in page.context.cookies())
        assert not page.locator("#logout").is_hidden()
        shot(page, "20-logged-in")
        page.click("#logout")
        page.wait_for_selector("#login-form")
        page.reload()
        page.wait_for_selector("#login-form")
    finally:
        srv.stop()
