"""Dashboard benchmark in headless Chromium against a seeded ``wandblite server`` (SQLite).

Run: ``python tests/bench/bench_dashboard.py [--panels 200] [--runs 10000] [--repeat 5]``. Not a
test: nothing here asserts a time. Printed, as medians of ``--repeat`` page loads, each beside a
floor measured in the same run:

  (a) a workspace of 200 line panels (a run with 200 numeric keys in 10 sections): time from the
      navigation to the first drawn chart, and to every chart of the first screen drawn;
      floor: the same page for a run with one key
  (b) scrolling that workspace from top to bottom (``--step`` px per frame): frame intervals
      (median, p95, worst) and how many plots exist at the end (only those near the viewport are
      drawn; the rest are undrawn, panels.js); floor: the frame interval of the idle page
  (c) the runs table of a project of 10,000 runs opens (navigation to the table drawn)
                                                                               target <= 1 s
      floor: the runs table of a project of 10 runs

The page is loaded with ``--public-read`` (no login); Chromium is Debian's (``/usr/bin/chromium``).
"""

from __future__ import annotations

import argparse
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(store: Any, panels: int, nruns: int) -> None:
    """Project "wide": run "wide" (``panels`` keys, 10 sections, 300 rows) and run "narrow" (one key);
    project "many": ``nruns`` runs with 20 config and 20 summary values; project "few": 10 such runs."""
    import sqlalchemy as sa

    from wandblite.server.db import dumps
    from wandblite.server.schema import projects, runs

    keys = [f"sec{i % 10}/metric{i:03d}" for i in range(panels)]
    rows = [{"idx": s, "final": True, "row": {"_step": s, "_runtime": s * 0.5, "_timestamp": 1.7e9 + s,
                                              **{k: math.sin(s / 20 + j) + j * 0.01 for j, k in enumerate(keys)}}}
            for s in range(300)]
    store.apply_batch("wide", "wide", {"run": {"name": "wide", "state": "finished", "created_at": 1.7e9}, "rows": rows})
    store.apply_batch("wide", "narrow", {"run": {"name": "narrow", "state": "finished", "created_at": 1.7e9},
                                         "rows": [{"idx": s, "final": True, "row": {"_step": s, "loss": 1 / (s + 1)}}
                                                  for s in range(300)]})
    for project, n in (("few", 10), ("many", nruns)):
        store.apply_batch(project, "r0", {"run": {"name": "r0", "state": "finished", "created_at": 1.7e9}})
        now = time.time()
        with store.write_engine.begin() as conn:
            pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar_one()
            batch = []
            for r in range(1, n):
                batch.append({"project_id": pid, "run_id": f"r{r}", "name": f"run-{r}", "tags": dumps(["t", f"g{r % 7}"]),
                              "config": dumps({f"c{k}": r * k * 0.1 for k in range(20)}),
                              "summary": dumps({f"s{k}": math.sin(r + k) for k in range(20)}),
                              "state": ["finished", "failed", "crashed"][r % 3], "created_at": 1.7e9 + r,
                              "updated_at": now, "rows_final": 0, "pending": False, "console_count": 0,
                              "system_count": 0})
                if len(batch) == 2000:
                    conn.execute(runs.insert(), batch)
                    batch = []
            if batch:
                conn.execute(runs.insert(), batch)


_FIRST_CHART = "() => document.querySelector('.sections .js-plotly-plot .main-svg') !== null"
_SCREEN_DRAWN = """() => {
  const panels = [...document.querySelectorAll('.sections .panel')].filter((p) => {
    const r = p.getBoundingClientRect(); return !p.hidden && r.top < innerHeight && r.bottom > 0; });
  return panels.length > 0 && panels.every((p) => p.querySelector('.js-plotly-plot .main-svg'));
}"""
_SCROLL = """async (step) => {
  const frames = [];
  let last = performance.now();
  await new Promise((done) => {
    const tick = (t) => {
      frames.push(t - last); last = t;
      if (window.scrollY + innerHeight >= document.documentElement.scrollHeight - 2) return done();
      window.scrollBy(0, step);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  return { frames: frames.slice(1), plots: document.querySelectorAll('.sections .js-plotly-plot .main-svg').length,
           panels: document.querySelectorAll('.sections .panel').length };
}"""
_IDLE = """async (n) => {
  const frames = [];
  let last = performance.now();
  await new Promise((done) => {
    const tick = (t) => { frames.push(t - last); last = t; if (frames.length > n) return done(); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  return frames.slice(1);
}"""


def _timed_open(browser: Any, url: str, until: list[str]) -> list[float]:
    """Open ``url`` in a fresh context; seconds from the navigation until each predicate of ``until`` holds."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    page.goto(url.split("#")[0] + "#/")  # the app and plotly loaded (cached) before the clock starts
    page.wait_for_function("() => window.Plotly !== undefined && document.querySelector('#main table, #main p')")
    t0 = time.perf_counter()
    page.evaluate("(h) => { location.hash = h; }", "#" + url.split("#", 1)[1])
    out = []
    for pred in until:
        page.wait_for_function(pred, polling="raf")
        out.append(time.perf_counter() - t0)
    ctx.close()
    return out


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panels", type=int, default=200)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--step", type=int, default=60, help="pixels scrolled per frame")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from wandblite.server.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-dash-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    store = Store(url, media_dir=tmp / "media")
    t = time.perf_counter()
    seed(store, args.panels, args.runs)
    store.close()
    print(f"seeded {args.panels} panels and {args.runs:,} runs in {time.perf_counter() - t:.1f} s ({tmp})")
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from wandblite_cli.main import main; main(sys.argv[1:])",
                             "server", "--host", "127.0.0.1", "--port", str(port), "--db", url, "--media",
                             str(tmp / "media"), "--public-read"], cwd=str(ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        import requests

        deadline = time.time() + 60
        while True:
            try:
                if requests.get(base + "api/v1/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            wide = [_timed_open(browser, base + "#/p/wide/r/wide", [_FIRST_CHART, _SCREEN_DRAWN]) for _ in range(args.repeat)]
            narrow = [_timed_open(browser, base + "#/p/wide/r/narrow", [_FIRST_CHART, _SCREEN_DRAWN])
                      for _ in range(args.repeat)]
            w_first = statistics.median(x[0] for x in wide) * 1000
            w_screen = statistics.median(x[1] for x in wide) * 1000
            n_first = statistics.median(x[0] for x in narrow) * 1000
            print(f"(a) {args.panels}-panel workspace: first chart {w_first:.0f} ms, first screen drawn {w_screen:.0f} ms; "
                  f"floor (1 panel) {n_first:.0f} ms: x{w_first / n_first:.2f} / x{w_screen / n_first:.2f}")

            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(base + "#/p/wide/r/wide")
            page.wait_for_function(_SCREEN_DRAWN, polling="raf")
            idle = page.evaluate(_IDLE, 120)
            scrolls = [page.evaluate(_SCROLL, args.step)]
            for _ in range(args.repeat - 1):
                page.evaluate("() => window.scrollTo(0, 0)")
                page.wait_for_timeout(300)
                scrolls.append(page.evaluate(_SCROLL, args.step))
            ctx.close()
            frames = [f for s in scrolls for f in s["frames"]]
            idle_med = statistics.median(idle)
            print(f"(b) scrolling {scrolls[0]['panels']} panels ({len(frames)} frames): median {statistics.median(frames):.1f} ms, "
                  f"p95 {_pct(frames, 0.95):.1f} ms, worst {max(frames):.1f} ms; floor (idle frame) {idle_med:.1f} ms: "
                  f"p95 x{_pct(frames, 0.95) / idle_med:.2f}; plots alive at the bottom: "
                  f"{max(s['plots'] for s in scrolls)} of {scrolls[0]['panels']}")

            table = "() => document.querySelectorAll('#runs-table tbody tr').length > 0"
            many = statistics.median(_timed_open(browser, base + "#/p/many", [table])[0] for _ in range(args.repeat)) * 1000
            few = statistics.median(_timed_open(browser, base + "#/p/few", [table])[0] for _ in range(args.repeat)) * 1000
            print(f"(c) runs table of {args.runs:,} runs opens in {many:.0f} ms (target <= 1000 ms); "
                  f"floor (10 runs) {few:.0f} ms: x{many / few:.2f}")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
