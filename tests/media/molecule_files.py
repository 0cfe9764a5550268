"""Tiny molecule files of every format ``Molecule`` reads without rdkit, written here by hand.

Each holds water (one oxygen, two hydrogens 0.957 A from it, 104.5 degrees apart), so every reader
must find 3 atoms, the elements O, H, H and the two O-H bonds (listed by the file or guessed from
distances). ``write_molecule_files(dir)`` writes them and returns ``{format: path}``.
"""

from __future__ import annotations

from pathlib import Path

WATER = [("O", 0.0, 0.0, 0.0), ("H", 0.757, 0.586, 0.0), ("H", -0.757, 0.586, 0.0)]
ATOMS = len(WATER)
ELEMENTS = [el for el, *_ in WATER]
BONDS = [[0, 1], [0, 2]]
FORMATS = ("pdb", "pqr", "cif", "mol", "sdf", "xyz")


def _pdb() -> str:
    names = (" O  ", " H1 ", " H2 ")
    lines = [f"HETATM{k:5d} {names[k - 1]} HOH A   1    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          {el:>2s}"
             for k, (el, x, y, z) in enumerate(WATER, start=1)]
    return "\n".join(["COMPND    WATER", *lines, "CONECT    1    2    3", "END"]) + "\n"


def _pqr() -> str:
    charges = (-0.834, 0.417, 0.417)
    radii = (1.7683, 0.2245, 0.2245)
    names = ("O", "H1", "H2")
    lines = [f"ATOM  {k:5d}  {names[k - 1]:<3s} HOH     1    {x:8.3f}{y:8.3f}{z:8.3f} {charges[k - 1]:7.4f} {radii[k - 1]:6.4f}"
             for k, (_el, x, y, z) in enumerate(WATER, start=1)]
    return "\n".join(["REMARK   water in PQR", *lines, "END"]) + "\n"


def _cif() -> str:
    head = ["data_water", "#", "loop_", "_atom_site.group_PDB", "_atom_site.id", "_atom_site.type_symbol",
            "_atom_site.label_atom_id", "_atom_site.label_comp_id", "_atom_site.Cartn_x", "_atom_site.Cartn_y",
            "_atom_site.Cartn_z"]
    names = ("O", "H1", "H2")
    rows = [f"HETATM {k} {el} {names[k - 1]} HOH {x:.3f} {y:.3f} {z:.3f}" for k, (el, x, y, z) in enumerate(WATER, start=1)]
    return "\n".join([*head, *rows, "#"]) + "\n"


def _mol() -> str:
    atoms = [f"{x:10.4f}{y:10.4f}{z:10.4f} {el:<3s} 0  0  0  0  0  0  0  0  0  0  0  0" for el, x, y, z in WATER]
    bonds = [f"{a + 1:3d}{b + 1:3d}  1  0  0  0  0" for a, b in BONDS]
    counts = f"{ATOMS:3d}{len(BONDS):3d}  0  0  0  0  0  0  0  0999 V2000"
    return "\n".join(["water", "  wandblite tests", "", counts, *atoms, *bonds, "M  END"]) + "\n"


def _xyz() -> str:
    return "\n".join([str(ATOMS), "water", *(f"{el} {x:.3f} {y:.3f} {z:.3f}" for el, x, y, z in WATER)]) + "\n"


def molecule_texts() -> dict[str, str]:
    return {"pdb": _pdb(), "pqr": _pqr(), "cif": _cif(), "mol": _mol(), "sdf": _mol() + "$$$$\n", "xyz": _xyz()}


def write_molecule_files(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for fmt, text in molecule_texts().items():
        p = directory / f"water.{fmt}"
        p.write_text(text)
        out[fmt] = p
    return out
