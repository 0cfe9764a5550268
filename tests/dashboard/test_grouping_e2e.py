"""The grouped workspace end to end: a real server (SQLite, then PostgreSQL), runs stored through the
sync protocol's batches, a real headless Chromium reading plotly's trace data from the page.

Pinned down: grouped by ``group`` (then by a config key), a chart draws one mean (or median) line
per group whose values, and band (min..max or +-std), equal what this test computes from the logged
rows (the definition of ``group_query``); smoothing smooths the line and the band edges; expanding a
group lists its runs in the table and draws them; a scatter of a config value against a summary value
has one point per run at the run's coordinates, and clicking a point opens that run; the parallel
coordinates list the runs a box dragged over an axis selects, whose links open the runs, and
clicking a run's line opens it; hostile group names,
config keys and values show as text. Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.dashboard.conftest import BACKENDS, database, shot
from tests.server.conftest import ServerProc

pytestmark = pytest.mark.browser

PROJECT = "grp"

HOSTILE_GROUP = '<img src=x onerror="window.__xss=1">beta'
HOSTILE_KEY = "<b>opt</b>"
HOSTILE_VALUE = '<script>window.__xss=2</script>'

#: run id -> (group, lr, opt, first step, stride, how many points, loss at point i)
RUNS: dict[str, dict[str, Any]] = {
    "a1": {"group": "alpha", "lr": 0.1, "opt": "adam", "start": 0, "stride": 1, "n": 60, "f": lambda i: 1.0 + 0.05 * i},
    "a2": {"group": "alpha", "lr": 0.2, "opt": "sgd", "start": 0, "stride": 2, "n": 30, "f": lambda i: 3.0 - 0.02 * i},
    "a3": {"group": "alpha", "lr": 0.3, "opt": "adam", "start": 10, "stride": 1, "n": 40, "f": lambda i: 2.0 + math.sin(i)},
    "b1": {"group": HOSTILE_GROUP, "lr": 0.01, "opt": HOSTILE_VALUE, "start": 0, "stride": 3, "n": 20, "f": lambda i: 0.5 * i},
    "b2": {"group": HOSTILE_GROUP, "lr": 0.02, "opt": "sgd", "start": 0, "stride": 3, "n": 20, "f": lambda i: 10.0 - i},
    "c1": {"group": None, "lr": 0.05, "opt": "adam", "start": 5, "stride": 5, "n": 10, "f": lambda i: 4.0},
}


def _rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"_step": spec["start"] + spec["stride"] * i, "_runtime": 0.5 * i, "loss": spec["f"](i)}
            for i in range(spec["n"])]


def _summary(rid: str) -> dict[str, Any]:
    rows = _rows(RUNS[rid])
    return {"loss": rows[-1]["loss"], "best": min(r["loss"] for r in rows), "_step": rows[-1]["_step"]}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp(f"grp-{request.param}")
    with database(request.param, tmp / "store.db") as url:
        srv = ServerProc(url, tmp / "media", tmp / "home", public_read=True).start()
        try:
            for rid, spec in RUNS.items():
                body = {"run": {"name": f"run-{rid}", "group": spec["group"], "job_type": "train", "state": "finished",
                                "config": {"lr": spec["lr"], HOSTILE_KEY: spec["opt"]}, "summary": _summary(rid)},
                        "rows": [{"idx": i, "row": r} for i, r in enumerate(_rows(spec))]}
                r = srv.post(f"/api/v1/projects/{PROJECT}/runs/{rid}/batch", body)
                assert r.status_code == 200, r.text
            yield srv
        finally:
            srv.stop()


def _expected(members: list[str], buckets: int = 500) -> dict[str, list[float]]:
    """group_query's definition, point by point: buckets over the x range, a run's mean per bucket,
    then mean/median/min/max/std over the runs."""
    pts = {rid: [(float(r["_step"]), r["loss"]) for r in _rows(RUNS[rid])] for rid in members}
    xs = [x for p in pts.values() for x, _ in p]
    lo, hi = min(xs), max(xs)
    per: dict[int, list[tuple[float, float]]] = {}
    for p in pts.values():
        got: dict[int, list[tuple[float, float]]] = {}
        for x, y in p:
            b = 0 if hi == lo else min(buckets - 1, math.floor((x - lo) * buckets / (hi - lo)))
            got.setdefault(b, []).append((x, y))
        for b, xy in got.items():
            per.setdefault(b, []).append((sum(x for x, _ in xy) / len(xy), sum(y for _, y in xy) / len(xy)))
    out: dict[str, list[float]] = {k: [] for k in ("x", "mean", "median", "min", "max", "std")}
    for b in sorted(per):
        ys = [y for _, y in per[b]]
        out["x"].append(statistics.fmean(x for x, _ in per[b]))
        out["mean"].append(statistics.fmean(ys))
        out["median"].append(statistics.median(ys))
        out["min"].append(min(ys))
        out["max"].append(max(ys))
        out["std"].append(statistics.pstdev(ys))
    return out


def _ema(ys: list[float], w: float) -> list[float]:
    last, out = 0.0, []
    for n, y in enumerate(ys, 1):
        last = last * w + (1 - w) * y
        out.append(last / (1 - w ** n))
    return out


def _traces(page: Any, key: str, n: int = 1) -> list[dict[str, Any]]:
    sel = f'#group-charts .group-panel[data-key="{key}"] .js-plotly-plot'
    page.wait_for_function("([s, n]) => { const g = document.querySelector(s); return g && g.data && g.data.length >= n; }",
                           arg=[sel, n])
    return list(page.evaluate("s => document.querySelector(s).data.map(t => ({x: Array.from(t.x || []), "
                              "y: Array.from(t.y || []), name: t.name, meta: t.meta}))", sel))


def _approx(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) for x, y in zip(a, b))


def _group_id(*values: str) -> str:
    """A group's id as grouping.js makes it (JSON.stringify of its values)."""
    return json.dumps(list(values), separators=(",", ":"))


def _row(gid: str) -> str:
    """The CSS selector of a group's row in the table (a CSS string escapes as JSON does here)."""
    return f"#group-table tr.group-row[data-group={json.dumps(gid)}]"


def _open(page: Any, server: ServerProc) -> None:
    page.goto(f"{server.url}/#/p/{PROJECT}/groups")
    page.wait_for_selector("#group-by-1")


def _select(page: Any, sel: str, value: str) -> None:
    page.select_option(sel, value)


def test_grouped_chart_mean_and_band_equal_the_logged_data(page: Any, server: ServerProc) -> None:
    _open(page, server)
    _select(page, "#group-by-1", "group")
    alpha = _group_id("alpha")

    def agg_of(ts: list[dict[str, Any]], gid: str, role: str) -> dict[str, Any]:
        return next(t for t in ts if t["meta"]["group"] == gid and t["meta"]["role"] == role)

    page.wait_for_function("id => [...document.querySelectorAll('#group-charts .js-plotly-plot')].some(g => "
                           "g.data && g.data.some(t => t.meta && t.meta.group === id && t.meta.aggregate === 'mean'))",
                           arg=alpha)
    ts = _traces(page, "loss", 3)
    want = _expected(["a1", "a2", "a3"])
    line = agg_of(ts, alpha, "aggregate")
    assert line["name"] == "alpha (3)" and line["meta"]["runs"] == 3
    assert _approx(line["x"], want["x"]) and _approx(line["y"], want["mean"])
    assert _approx(agg_of(ts, alpha, "band-upper")["y"], want["max"])
    assert _approx(agg_of(ts, alpha, "band-lower")["y"], want["min"])
    hostile = _group_id(HOSTILE_GROUP)
    wb = _expected(["b1", "b2"])
    assert _approx(agg_of(ts, hostile, "aggregate")["y"], wb["mean"])
    assert agg_of(ts, _group_id("(none)"), "aggregate")["meta"]["runs"] == 1
    shot(page, "grouping-mean-minmax")

    # Median with a standard-deviation band.
    _select(page, "#group-aggregate", "median")
    _select(page, "#group-band", "std")
    page.wait_for_function("() => document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot').data.some(t => "
                           "t.meta && t.meta.aggregate === 'median' && t.meta.band === 'std')")
    ts = _traces(page, "loss", 3)
    assert _approx(agg_of(ts, alpha, "aggregate")["y"], want["median"])
    assert _approx(agg_of(ts, alpha, "band-upper")["y"], [m + s for m, s in zip(want["mean"], want["std"])])
    assert _approx(agg_of(ts, alpha, "band-lower")["y"], [m - s for m, s in zip(want["mean"], want["std"])])

    # Smoothing smooths the drawn line and both band edges alike.
    page.evaluate("() => { const s = document.querySelector('#group-smoothing'); s.value = '0.6';"
                  " s.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot').data.some(t => "
                           "t.meta && t.meta.role === 'raw')")
    ts = _traces(page, "loss", 3)
    assert _approx(agg_of(ts, alpha, "aggregate")["y"], _ema(want["median"], 0.6))
    assert _approx(agg_of(ts, alpha, "raw")["y"], want["median"])
    assert _approx(agg_of(ts, alpha, "band-upper")["y"], _ema([m + s for m, s in zip(want["mean"], want["std"])], 0.6))
    shot(page, "grouping-median-std-smoothed")

    # The state a saved workspace keeps, and restores.
    st = page.evaluate("() => import('/static/grouping.js').then(m => m.getGroupingState())")
    assert st["groupBy"] == ["group"] and st["aggregate"] == "median" and st["band"] == "std" and st["smoothing"] == 0.6
    page.evaluate("() => import('/static/grouping.js').then(m => m.setGroupingState({groupBy: ['group'], aggregate: 'mean', "
                  "band: 'minmax', smoothing: 0, xAxis: '_runtime'}))")
    page.wait_for_function("() => document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot').layout.xaxis.title.text === '_runtime'")
    assert page.input_value("#group-aggregate") == "mean" and page.input_value("#group-x-axis") == "_runtime"


def test_two_levels_and_expanding_a_group_to_its_runs(page: Any, server: ServerProc) -> None:
    _open(page, server)
    _select(page, "#group-by-1", "group")
    _select(page, "#group-by-2", f"config.{HOSTILE_KEY}")
    sub = _group_id("alpha", "adam")
    page.wait_for_function("id => { const g = document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot');"
                           " return g && g.data.some(t => t.meta && t.meta.group === id); }", arg=sub)
    ts = _traces(page, "loss", 3)
    line = next(t for t in ts if t["meta"]["group"] == sub and t["meta"]["role"] == "aggregate")
    assert line["name"] == "alpha / adam (2)" and _approx(line["y"], _expected(["a1", "a3"])["mean"])
    # The table: top-level groups with counts; expanding alpha shows its sub-groups, then their runs.
    rows = page.locator("#group-table tr.group-row")
    assert rows.count() == 3
    assert page.locator(_row(_group_id("alpha")) + " .group-count").inner_text() == "3"
    assert page.locator(_row(_group_id(HOSTILE_GROUP)) + " .group-count").inner_text() == "2"
    page.click(_row(_group_id("alpha")) + " .group-toggle")
    page.click(_row(sub) + " .group-toggle")
    page.wait_for_selector('#group-table tr.group-member[data-run="a3"]')
    assert sorted(page.eval_on_selector_all("#group-table tr.group-member", "rs => rs.map(r => r.dataset.run)")) == ["a1", "a3"]
    # The expanded group's runs are drawn too, each its own (unaggregated) line.
    page.wait_for_function("id => document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot').data.filter(t => "
                           "t.meta && t.meta.group === id && t.meta.role === 'member').length === 2", arg=sub)
    ts = _traces(page, "loss", 3)
    a3 = next(t for t in ts if t["meta"].get("run") == "a3")
    assert _approx(a3["y"], [r["loss"] for r in _rows(RUNS["a3"])])
    shot(page, "grouping-two-levels-expanded")
    page.click('#group-table tr.group-member[data-run="a3"] a.run-link')
    page.wait_for_function("() => location.hash.endsWith('/r/a3')")


def _click_until_run(page: Any, xy: list[float], run: str) -> None:
    """Click at ``xy`` until the page opens ``run``: plotly binds its click to the hover it saw, so on a
    busy machine it may take another hover."""
    for _attempt in range(5):
        page.mouse.move(xy[0] - 3, xy[1])
        page.mouse.move(xy[0], xy[1])
        page.wait_for_timeout(100)
        page.mouse.click(xy[0], xy[1])
        try:
            page.wait_for_function(f"() => location.hash.endsWith('/r/{run}')", timeout=3000)
            return
        except Exception:  # noqa: BLE001 (playwright's TimeoutError): hover and click again
            continue
    page.wait_for_function(f"() => location.hash.endsWith('/r/{run}')")


def test_scatter_has_one_point_per_run_and_clicking_opens_it(page: Any, server: ServerProc) -> None:
    _open(page, server)
    _select(page, "#scatter-x", "config.lr")
    _select(page, "#scatter-y", "summary.best")
    _select(page, "#scatter-color", f"config.{HOSTILE_KEY}")
    sel = "#scatter-panel .js-plotly-plot"
    page.wait_for_function("s => { const g = document.querySelector(s); return g && g.data && g.data.length > 1; }", arg=sel)
    pts = page.evaluate("s => document.querySelector(s).data.flatMap(t => t.customdata.map((id, i) => "
                        "[id, t.x[i], t.y[i], t.name]))", sel)
    got = {p[0]: (p[1], p[2]) for p in pts}
    assert got == {rid: (spec["lr"], _summary(rid)["best"]) for rid, spec in RUNS.items()}
    assert HOSTILE_VALUE.replace("<", "&lt;").replace(">", "&gt;") in {p[3] for p in pts}  # plotText: shown as text
    shot(page, "grouping-scatter")
    # Click the point of run b2 where plotly draws it.
    page.locator(sel).scroll_into_view_if_needed()
    xy = page.evaluate("""s => { const g = document.querySelector(s); const L = g._fullLayout;
        for (const t of g.data) { const i = t.customdata.indexOf('b2'); if (i < 0) continue;
          const r = g.querySelector('.nsewdrag').getBoundingClientRect();
          return [r.left + L.xaxis.l2p(t.x[i]), r.top + L.yaxis.l2p(t.y[i])]; } }""", sel)
    _click_until_run(page, xy, "b2")


def test_parallel_coordinates_box_select_lists_the_runs_and_a_line_opens_its_run(page: Any, server: ServerProc) -> None:
    _open(page, server)
    sel = "#parcoords-panel .js-plotly-plot"
    page.wait_for_selector(sel)
    _select(page, "#parcoords-metric", "summary.loss")
    page.wait_for_function("s => { const g = document.querySelector(s); return g && g.layout && "
                           "g.layout.xaxis.ticktext.length >= 3 && g.layout.xaxis.ticktext.slice(-1)[0] === 'summary.loss'; }",
                           arg=sel)
    labels = page.evaluate("s => document.querySelector(s).layout.xaxis.ticktext", sel)
    assert "config.lr" in labels and "config.&lt;b&gt;opt&lt;/b&gt;" in labels  # a hostile key as text
    lines = page.evaluate("s => document.querySelector(s).data.map(t => [t.meta.run, t.meta.values, Array.from(t.y)])", sel)
    i = labels.index("config.lr")
    assert {run: float(vals[i]) for run, vals, _y in lines} == {rid: spec["lr"] for rid, spec in RUNS.items()}
    assert {run: vals[-1] for run, vals, _y in lines}["b2"] == "-9"
    assert page.locator("#parcoords-runs li").count() == len(RUNS)
    # Drag a box over the top of the lr axis (lr from 0.2 up, scaled over 0.01..0.3): a2 and a3 remain.
    page.locator(sel).scroll_into_view_if_needed()
    box = page.evaluate("""([s, i]) => { const g = document.querySelector(s); const L = g._fullLayout;
        const r = g.querySelector('.nsewdrag').getBoundingClientRect();
        const px = (x, y) => [r.left + L.xaxis.l2p(x), r.top + L.yaxis.l2p(y)];
        return [px(i - 0.2, 1.08), px(i + 0.2, 0.6)]; }""", [sel, i])
    page.mouse.move(*box[0])
    page.mouse.down()
    page.mouse.move((box[0][0] + box[1][0]) / 2, (box[0][1] + box[1][1]) / 2, steps=5)
    page.mouse.move(*box[1], steps=5)
    page.mouse.up()
    page.wait_for_function("() => document.querySelectorAll('#parcoords-runs li').length === 2")
    assert sorted(page.eval_on_selector_all("#parcoords-runs a", "as => as.map(a => a.dataset.run)")) == ["a2", "a3"]
    shot(page, "grouping-parcoords")
    page.click('#parcoords-runs a[data-run="a3"]')
    page.wait_for_function("() => location.hash.endsWith('/r/a3')")
    # Clicking a run's line (its marker on the metric axis, where b2's lowest loss sits alone) opens that run.
    _open(page, server)
    _select(page, "#parcoords-metric", "summary.loss")
    page.wait_for_function("s => { const g = document.querySelector(s); return g && g.layout && "
                           "g.layout.xaxis.ticktext.slice(-1)[0] === 'summary.loss'; }", arg=sel)
    page.locator(sel).scroll_into_view_if_needed()
    xy = page.evaluate("""s => { const g = document.querySelector(s); const L = g._fullLayout;
        const t = g.data.find(t => t.meta.run === 'b2'); const k = t.x.length - 1;
        const r = g.querySelector('.nsewdrag').getBoundingClientRect();
        return [r.left + L.xaxis.l2p(t.x[k]), r.top + L.yaxis.l2p(t.y[k])]; }""", sel)
    _click_until_run(page, xy, "b2")


def test_hostile_names_keys_and_values_are_text(page: Any, server: ServerProc) -> None:
    _open(page, server)
    _select(page, "#group-by-1", "group")
    _select(page, "#group-by-2", f"config.{HOSTILE_KEY}")
    page.click(_row(_group_id(HOSTILE_GROUP)) + " .group-toggle")
    page.wait_for_selector(_row(_group_id(HOSTILE_GROUP, HOSTILE_VALUE)))
    labels = page.eval_on_selector_all("#group-table .group-label", "ls => ls.map(l => l.textContent)")
    assert HOSTILE_GROUP in labels and HOSTILE_VALUE in labels
    assert page.locator(f'#group-by-2 option[value="config.{HOSTILE_KEY}"]').inner_text() == f"config.{HOSTILE_KEY}"
    page.wait_for_function("() => { const g = document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot'); return g && g.data.length; }")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#main img[src='x'], #main script, #main b").count() == 0
    names = page.evaluate("() => document.querySelector('#group-charts .group-panel[data-key=loss] .js-plotly-plot').data.map(t => t.name).filter(Boolean)")
    assert any("&lt;img" in n for n in names)
    assert page.evaluate("() => document.querySelector('#group-charts').innerHTML.includes('<img src=\"x\"')") is False
    shot(page, "grouping-hostile")


def test_grouped_endpoint_over_http_answers_the_contract(server: ServerProc) -> None:
    ok = requests.get(f"{server.url}/api/v1/projects/{PROJECT}/grouped-series",
                      params={"runs": "a1,a2,a3", "keys": "loss", "buckets": "500"}, timeout=30)
    assert ok.status_code == 200
    s = ok.json()["series"]["loss"]
    assert _approx(s["mean"], _expected(["a1", "a2", "a3"])["mean"])
    for bad, status in (({"runs": "a1"}, 400), ({"runs": "a1", "keys": "loss", "buckets": "0"}, 400),
                        ({"runs": "a1,zz", "keys": "loss"}, 404), ({"runs": "a1", "keys": "loss", "min_x": "nan"}, 400)):
        r = requests.get(f"{server.url}/api/v1/projects/{PROJECT}/grouped-series", params=bad, timeout=30)
        assert r.status_code == status, (bad, r.text)
        assert set(r.json()["error"]) >= {"code", "message"}
