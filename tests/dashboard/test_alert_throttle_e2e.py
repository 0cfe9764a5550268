"""The dashboard and ``run.alert``'s ``wait_duration``: the badge counts only the alerts wandb would
have sent, and a throttled one is listed dimmed with the reason (real server, real Chromium).

The run is sent as a batch in a project of its own, so the ``dash`` project the other tests count
is untouched.
"""

from __future__ import annotations

from typing import Any

from .conftest import Dash, shot

T0 = 1.7e9


def test_badge_counts_sent_alerts_and_throttled_ones_are_dimmed(page: Any, dash: Dash) -> None:
    alerts = [{"idx": 0, "title": "loss is nan", "text": "step 10", "level": "ERROR", "ts": T0},
              {"idx": 1, "title": "loss is nan", "text": "step 11", "level": "ERROR", "ts": T0 + 20},  # within 60 s
              {"idx": 2, "title": "slow epoch", "text": "2 h", "level": "WARN", "ts": T0 + 25, "wait_duration": 5}]
    r = dash.server.post("/api/v1/projects/dash-alerts/runs/thr/batch",
                         {"rows": [{"idx": 0, "row": {"loss": 1.0}}], "alerts": alerts})
    assert r.status_code == 200, r.text
    page.goto(f"{dash.url}/#/p/dash-alerts/r/thr/overview")
    page.wait_for_selector("#alerts-table")
    rows = page.locator("#alerts-table tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).get_attribute("class") for i in range(3)] == [None, "throttled", None]
    dimmed = rows.nth(1)
    assert dimmed.locator(".alert-text").text_content() == "step 11"
    assert dimmed.locator(".alert-note").text_content() == "suppressed: same title within 60 s"
    assert float(dimmed.evaluate("(tr) => getComputedStyle(tr).opacity")) < 1
    assert float(rows.nth(0).evaluate("(tr) => getComputedStyle(tr).opacity")) == 1
    assert page.locator("#alerts .alert-note").count() == 1
    assert page.locator("#alerts h2 .count").text_content().strip() == "2 (+1 suppressed)"
    badge = page.locator(".run-header #alert-badge")
    badge.wait_for()
    assert badge.text_content().strip() == "⚠ 2" and badge.get_attribute("aria-label") == "2 alerts"
    shot(page, "16-alerts-throttled")
