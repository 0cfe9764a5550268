"""Molecules in the dashboard's 3D viewer: one run logs water in every format ``Molecule`` reads
without rdkit (and a list of two), ``wandblite sync`` uploads it, and Chromium draws each one as
atoms (CPK colours, the elements as hover text) and bonds. A run of its own project: the ``dash``
project the other tests count is untouched. The molecule files must reach the server for any of
this to draw: what sync uploads is part of what is tested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import wandblite
from tests.media.molecule_files import ATOMS, ELEMENTS, FORMATS, write_molecule_files

from .conftest import Dash, shot

PANEL = "k => document.querySelector('.panel[data-key=\"' + CSS.escape(k) + '\"]')"


def _molecule_run(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WANDBLITE_CONSOLE", "off")
    monkeypatch.setenv("WANDBLITE_DISABLE_STATS", "1")
    files = write_molecule_files(root / "files")
    run = wandblite.init(project="dash-mol", id="mols", dir=str(root / "runs"), mode="offline",
                         settings=wandblite.Settings(quiet=True))
    values: dict[str, Any] = {}
    for fmt, path in files.items():
        with open(path) as handle:  # a text handle, its type from its name
            values[f"mol/{fmt}"] = wandblite.Molecule(handle, caption=f"water ({fmt})")
    values["mol/list"] = [wandblite.Molecule(str(files["pdb"])), wandblite.Molecule(str(files["xyz"]))]
    run.log(values)
    run.finish()
    return root / "runs"


def _traces(page: Any, key: str, index: int = 0) -> list[dict[str, Any]]:
    page.locator(f'.panel[data-key="{key}"]').scroll_into_view_if_needed()
    page.wait_for_function(
        f"([k, i]) => (({PANEL})(k).querySelectorAll('.molecule-plot.js-plotly-plot')[i]?.data?.length === 2)",
        arg=[key, index])
    return list(page.evaluate(
        f"([k, i]) => ({PANEL})(k).querySelectorAll('.molecule-plot.js-plotly-plot')[i].data.map(t => ({{type: t.type,"
        " mode: t.mode, x: Array.from(t.x), text: t.text ? Array.from(t.text) : null,"
        " colors: t.marker ? Array.from(t.marker.color) : null}))", [key, index]))


def test_molecules_of_every_format_draw_as_atoms_and_bonds(page: Any, dash: Dash, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    dash.sync(_molecule_run(tmp_path, monkeypatch))
    page.goto(f"{dash.url}/#/p/dash-mol/r/mols")
    page.wait_for_selector(".tab-body")
    for fmt in FORMATS:
        bonds, atoms = _traces(page, f"mol/{fmt}")
        assert atoms["type"] == "scatter3d" and atoms["mode"] == "markers"
        assert len(atoms["x"]) == ATOMS and atoms["text"] == ELEMENTS, fmt
        assert atoms["colors"] == ["#ff0d0d", "#ffffff", "#ffffff"]  # oxygen red, hydrogens white
        assert atoms["x"][1] == pytest.approx(0.757)
        assert bonds["mode"] == "lines" and len(bonds["x"]) == 6 and bonds["x"][2] is None  # two O-H bonds
        caption = page.locator(f'.panel[data-key="mol/{fmt}"] figcaption.caption')
        assert caption.text_content() == f"water ({fmt})"
    for i in range(2):
        _bonds, atoms = _traces(page, "mol/list", i)
        assert atoms["text"] == ELEMENTS
    assert page.locator(".panel .error").count() == 0
    shot(page, "18-molecules")
