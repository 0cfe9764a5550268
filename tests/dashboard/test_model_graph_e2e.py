"""The run overview's Model section: the module tree ``watch(log_graph=True)`` recorded, as DOM text
(real torch model built from code, real ``wandblite sync`` to the server, real Chromium).

The run goes to a project of its own, so the ``dash`` project the other tests count is untouched.
Its summary-only ``graph_0`` blob reaching the server is part of what is tested: the table can only
load if sync uploaded it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import wandblite

from .conftest import Dash, shot

EVIL = '<img src=x onerror="__pwned=1"><b>bold</b>'


def _graph_run(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("WANDBLITE_CONSOLE", "off")
    monkeypatch.setenv("WANDBLITE_DISABLE_STATS", "1")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    model.add_module(EVIL, torch.nn.Linear(3, 1))  # run data is untrusted: a module name with HTML
    run = wandblite.init(project="dash-graph", id="graph", dir=str(root), mode="offline")
    run.watch(model, log=None, log_graph=True)
    run.log({"loss": model(torch.randn(8, 4)).pow(2).mean().item()})
    run.finish()
    return root


def test_overview_shows_the_model_graph_as_text(page: Any, dash: Dash, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dash.sync(_graph_run(tmp_path / "runs", monkeypatch))
    page.goto(f"{dash.url}/#/p/dash-graph/r/graph/overview")
    table = page.locator("#model table.model-graph")
    table.wait_for()
    assert page.locator("#model h3").text_content() == "graph_0 4 modules"
    rows = table.locator("tbody tr")
    assert [rows.nth(i).get_attribute("data-module") for i in range(rows.count())] == ["", "0", "1", EVIL]
    assert [rows.nth(i).get_attribute("data-depth") for i in range(4)] == ["0", "1", "1", "1"]
    first = [c.strip() for c in rows.nth(1).locator("td").all_text_contents()]
    assert first == ["0", "Linear", "weight [3, 4], bias [3]", "15", "[8, 4]", "[8, 3]"]
    assert rows.nth(0).locator("td").nth(3).text_content() == "19"  # 15 + 4, children included
    evil = rows.nth(3)
    assert evil.locator("td.module-name").text_content() == EVIL  # shown as text
    assert page.locator("#model img, #model b").count() == 0 and page.evaluate("window.__pwned") is None
    # the child rows are indented under the model
    pad = [float(rows.nth(i).locator("td.module-name").evaluate("(td) => parseFloat(getComputedStyle(td).paddingLeft)"))
           for i in (0, 1)]
    assert pad[1] > pad[0]
    shot(page, "17-model-graph")
