"""``Molecule`` (wandb.Molecule): 3D molecular structures, and the atoms of their files for a viewer.

Layer 3. Accepted without any extra dependency: a path or a file object (text or binary mode, the
type from ``file_type=`` or the handle's name, as ``Object3D``) of wandb's types (pdb, pqr, mmcif,
mcif, cif, sdf, sd, gro, mol2, mmtf) and also mol and xyz; the bytes are kept as given. With rdkit
installed (``pip install rdkit``), ``Molecule.from_smiles`` and ``Molecule.from_rdkit`` (an
``rdkit.Chem.Mol`` or a mol/sdf file) make a PDB block as wandb does: hydrogens added, 3D
coordinates embedded and MMFF-optimized unless ``convert_to_3d_and_optimize=False``. rdkit is
imported only there; without it they raise ``DataError`` naming rdkit.

JSON: ``{"_type": "molecule-file", "path", "sha256", "size"[, "caption"]}`` plus ``blob``/``offset``
(wandb's shape; the path is ``media/molecule/<key>_<step>_<sha>.<ext>``). A list of molecules is
``{"_type": "molecule", "count", "filenames", "captions", "molecules"}`` (``data_types``).

``read_structure(data, ext)`` reads the atoms (coordinates and elements) and bonds of a molecule
file of every text type above, with the standard library only: what the dashboard's 3D viewer
draws (``wandblite.server.media_query``) and what the W&B export converts the types wandb does
not take (mol, xyz) from.
"""

from __future__ import annotations

import io
import math
import os
import shlex
from typing import TYPE_CHECKING, Any

from wandblite.data_types._base import Media, is_path, read_path, store_bytes
from wandblite.data_types.object3d import handle_extension, read_handle
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["MOLECULE_TYPES", "RDKIT_TYPES", "Molecule", "read_structure", "to_pdb"]

#: wandb's Molecule types, then the two wandblite also takes (MDL mol, XYZ)
MOLECULE_TYPES = ("pdb", "pqr", "mmcif", "mcif", "cif", "sdf", "sd", "gro", "mol2", "mmtf", "mol", "xyz")
#: the file types ``Molecule.from_rdkit`` reads with rdkit (wandb's)
RDKIT_TYPES = ("mol", "sdf")
_RDKIT_MISSING = "wandblite.Molecule.{} needs rdkit, which is not installed: pip install rdkit"


def _molecule_extension(name: str) -> str:
    base = os.path.basename(name).lower()
    return base.rsplit(".", 1)[-1] if "." in base else ""


def _rdkit(call: str) -> tuple[Any, Any]:
    """``rdkit.Chem`` and ``rdkit.Chem.AllChem``, or ``DataError`` naming rdkit."""
    try:
        from rdkit import Chem
        from rdkit.Chem import AllChem
    except ImportError:
        raise DataError(_RDKIT_MISSING.format(call)) from None
    return Chem, AllChem


class Molecule(Media):
    """wandb.Molecule: a molecule file (pdb, pqr, mmcif, cif, sdf, mol, xyz, ...) shown in 3D."""

    _log_type = "molecule-file"
    SUPPORTED_TYPES = MOLECULE_TYPES
    SUPPORTED_RDKIT_TYPES = RDKIT_TYPES

    def __init__(self, data_or_path: Any, caption: str | None = None, **kwargs: Any) -> None:
        self.caption = None if caption is None else str(caption)
        file_type = kwargs.pop("file_type", None)
        if kwargs:
            raise DataError(f"Molecule got unexpected keyword arguments: {sorted(kwargs)}")
        if is_path(data_or_path):
            name = os.fspath(data_or_path)
            ext = str(file_type).lower() if file_type else _molecule_extension(name)
            if ext not in MOLECULE_TYPES:
                raise DataError("Molecule only supports files of the type: " + ", ".join(MOLECULE_TYPES))
            self._data = read_path(name)
        elif hasattr(data_or_path, "read"):
            ext = str(file_type).lower() if file_type else handle_extension(data_or_path)
            if not ext:
                raise DataError("Must pass file_type keyword argument when using io objects.")
            if ext not in MOLECULE_TYPES:
                raise DataError("Molecule 3D only supports files of the type: " + ", ".join(MOLECULE_TYPES))
            self._data = read_handle(data_or_path, ext)
        else:
            raise DataError("Data must be file name or a file object")
        self.ext = ext

    @classmethod
    def from_rdkit(
        cls,
        data_or_path: Any,
        caption: str | None = None,
        convert_to_3d_and_optimize: bool = True,
        mmff_optimize_molecule_max_iterations: int = 200,
    ) -> Molecule:
        """From an ``rdkit.Chem.Mol`` or a mol/sdf file read with rdkit (wandb's ``from_rdkit``)."""
        chem, all_chem = _rdkit("from_rdkit")
        if is_path(data_or_path):
            path = os.fspath(data_or_path)
            ext = _molecule_extension(path)
            if ext not in RDKIT_TYPES:
                raise DataError("Molecule.from_rdkit only supports files of the type: " + ", ".join(RDKIT_TYPES))
            if ext == "sdf":
                with chem.SDMolSupplier(path) as supplier:
                    molecule = next(iter(supplier), None)  # the first molecule, as wandb
            else:
                molecule = chem.MolFromMolFile(path)
            if molecule is None:
                raise DataError(f"rdkit could not read a molecule from {path!r}")
        elif isinstance(data_or_path, chem.rdchem.Mol):
            molecule = data_or_path
        else:
            raise DataError("Data must be file name or an rdkit.Chem.rdchem.Mol object")
        if convert_to_3d_and_optimize:
            molecule = chem.AddHs(molecule)
            all_chem.EmbedMolecule(molecule)
            all_chem.MMFFOptimizeMolecule(molecule, maxIters=mmff_optimize_molecule_max_iterations)
        pdb_block = chem.rdmolfiles.MolToPDBBlock(molecule)
        return cls(io.StringIO(pdb_block), caption=caption, file_type="pdb")

    @classmethod
    def from_smiles(
        cls,
        data: str,
        caption: str | None = None,
        sanitize: bool = True,
        convert_to_3d_and_optimize: bool = True,
        mmff_optimize_molecule_max_iterations: int = 200,
    ) -> Molecule:
        """From a SMILES string, through rdkit (wandb's ``from_smiles``)."""
        chem, _all_chem = _rdkit("from_smiles")
        molecule = chem.MolFromSmiles(data, sanitize=sanitize)
        if molecule is None:
            raise DataError("Unable to parse the SMILES string.")
        return cls.from_rdkit(
            molecule,
            caption=caption,
            convert_to_3d_and_optimize=convert_to_3d_and_optimize,
            mmff_optimize_molecule_max_iterations=mmff_optimize_molecule_max_iterations,
        )

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        ref = store_bytes(store, self._data, self.ext, "molecule", key, step)
        out: dict[str, Any] = {"_type": self._log_type, "path": ref.pop("path"), "sha256": ref.pop("sha256")}
        out["size"] = ref.pop("size")
        if self.caption is not None:
            out["caption"] = self.caption
        out.update(ref)
        return out


# ----------------------------------------------------------------------------- reading structures

#: covalent radii in angstroms (Cordero et al. 2008) of the common elements; bonds are guessed from
#: them for files that list none (xyz, cif, a pdb without CONECT)
_COVALENT = {
    "H": 0.31, "B": 0.84, "C": 0.76, "N": 0.71, "O": 0.66, "F": 0.57, "NA": 1.66, "MG": 1.41, "AL": 1.21,
    "SI": 1.11, "P": 1.07, "S": 1.05, "CL": 1.02, "K": 2.03, "CA": 1.76, "MN": 1.39, "FE": 1.32, "CO": 1.26,
    "NI": 1.24, "CU": 1.32, "ZN": 1.22, "SE": 1.20, "BR": 1.20, "I": 1.39,
}
_GUESS_BONDS_MAX_ATOMS = 3000  # all pairs are compared: beyond this, no guessed bonds
_TWO_LETTER = {e for e in _COVALENT if len(e) == 2}


def _element(symbol: str, atom_name: str = "") -> str:
    """An element symbol, upper case: the given one, else from the atom name.

    A PDB atom name (4 columns) puts a two-letter element in its first column (``"FE  "``) and a
    one-letter one in its second (``" CA "`` is an alpha carbon); a bare name is one letter."""
    s = "".join(c for c in symbol if c.isalpha()).upper()
    if s:
        return s
    letters = "".join(c for c in atom_name if c.isalpha()).upper()
    if len(atom_name) == 4 and atom_name[0].isalpha() and letters[:2] in _TWO_LETTER:
        return letters[:2]
    return letters[:1] or "X"


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"not a number in the {what}: {text.strip()!r}") from None
    if not math.isfinite(v):
        raise DataError(f"a coordinate is not finite in the {what}: {text.strip()!r}")
    return v


def _pdb(text: str) -> tuple[list[list[float]], list[str], list[list[int]]]:
    coords: list[list[float]] = []
    elements: list[str] = []
    bonds: list[list[int]] = []
    serials: dict[int, int] = {}
    conect: list[tuple[int, int]] = []
    for line in text.splitlines():
        rec = line[:6]
        if rec in ("ATOM  ", "HETATM"):
            try:
                serials[int(line[6:11])] = len(coords)
            except ValueError:
                pass
            coords.append([_float(line[30:38], "PDB"), _float(line[38:46], "PDB"), _float(line[46:54], "PDB")])
            elements.append(_element(line[76:78], line[12:16]))
        elif rec == "CONECT":
            fields = [line[i:i + 5] for i in range(6, len(line.rstrip()), 5)]
            try:
                nums = [int(f) for f in fields if f.strip()]
            except ValueError:
                continue
            conect.extend((nums[0], other) for other in nums[1:])
        elif rec.startswith("ENDMDL"):
            break  # the first model of a multi-model file
    seen: set[tuple[int, int]] = set()
    for a, b in conect:
        if a in serials and b in serials:
            pair = (min(serials[a], serials[b]), max(serials[a], serials[b]))
            if pair[0] != pair[1] and pair not in seen:
                seen.add(pair)
                bonds.append(list(pair))
    return coords, elements, bonds


def _pqr(text: str) -> tuple[list[list[float]], list[str], list[list[int]]]:
    """PQR: whitespace separated (the chain is optional): ... x y z charge radius."""
    coords: list[list[float]] = []
    elements: list[str] = []
    for line in text.splitlines():
        if line[:6] in ("ATOM  ", "HETATM") or line.split()[:1] in (["ATOM"], ["HETATM"]):
            f = line.split()
            if len(f) < 8:
                raise DataError(f"a PQR atom line has too few fields: {line!r}")
            coords.append([_float(f[-5], "PQR"), _float(f[-4], "PQR"), _float(f[-3], "PQR")])
            elements.append(_element("", f[2]))
    return coords, elements, []


def _cif(text: str) -> tuple[list[list[float]], list[str], list[list[int]]]:
    """mmCIF: the ``_atom_site`` loop (Cartn_x/y/z, type_symbol or the atom's label)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "loop_" and i + 1 < len(lines) and lines[i + 1].strip().startswith("_atom_site."):
            names: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip().startswith("_atom_site."):
                names.append(lines[i].strip().split(".", 1)[1].split()[0])
                i += 1
            col = {n: k for k, n in enumerate(names)}
            if not {"Cartn_x", "Cartn_y", "Cartn_z"} <= col.keys():
                raise DataError("the mmCIF _atom_site loop has no Cartn_x/Cartn_y/Cartn_z columns")
            sym = col.get("type_symbol")
            label = col.get("label_atom_id", col.get("auth_atom_id"))
            coords: list[list[float]] = []
            elements: list[str] = []
            values: list[str] = []
            while i < len(lines):
                s = lines[i].strip()
                if not s or s.startswith(("#", "_", "loop_", "data_")):
                    break
                values.extend(shlex.split(s, posix=True))
                while len(values) >= len(names):
                    row, values = values[:len(names)], values[len(names):]
                    coords.append([_float(row[col[c]], "mmCIF") for c in ("Cartn_x", "Cartn_y", "Cartn_z")])
                    elements.append(_element(row[sym] if sym is not None else "",
                                             row[label] if label is not None else ""))
                i += 1
            return coords, elements, []
        i += 1
    raise DataError("no _atom_site loop in the mmCIF file")


def _molfile(text: str) -> tuple[list[list[float]], list[str], list[list[int]]]:
    """MDL mol / SDF (the first record): V2000 fixed columns or V3000 ``M  V30`` lines."""
    lines = text.splitlines()
    if len(lines) < 4:
        raise DataError("a mol/sdf record needs a header block and a counts line")
    counts = lines[3]
    coords: list[list[float]] = []
    elements: list[str] = []
    bonds: list[list[int]] = []
    if "V3000" in counts:
        section = ""
        for line in lines[4:]:
            if not line.startswith("M  V30"):
                if line.startswith("M  END"):
                    break
                continue
            body = line[6:].split()
            if body[:2] == ["BEGIN", "ATOM"] or body[:2] == ["BEGIN", "BOND"]:
                section = body[1]
            elif body[:1] == ["END"]:
                section = ""
            elif section == "ATOM" and len(body) >= 5:
                elements.append(_element(body[1]))
                coords.append([_float(body[2], "mol"), _float(body[3], "mol"), _float(body[4], "mol")])
            elif section == "BOND" and len(body) >= 4:
                bonds.append([int(body[2]) - 1, int(body[3]) - 1])
        return coords, elements, bonds
    try:
        n_atoms, n_bonds = int(counts[0:3]), int(counts[3:6])
    except ValueError:
        raise DataError(f"not a mol/sdf counts line: {counts!r}") from None
    if len(lines) < 4 + n_atoms + n_bonds:
        raise DataError(f"the mol/sdf record says {n_atoms} atoms and {n_bonds} bonds but is shorter")
    for line in lines[4:4 + n_atoms]:
        coords.append([_float(line[0:10], "mol"), _float(line[10:20], "mol"), _float(line[20:30], "mol")])
        elements.append(_element(line[31:34]))
    for line in lines[4 + n_atoms:4 + n_atoms + n_bonds]:
        try:
            a, b = int(line[0:3]) - 1, int(line[3:6]) - 1
        except ValueError:
            raise DataError(f"not a mol/sdf bond line: {line!r}") from None
        bonds.append([a, b])
    return coords, elements, bonds


def _xyz(text: str) -> tuple[list[list[float]], list[str], list[list[int]]]:
    """XYZ: an atom count, a comment line, then ``element x y z`` lines (the first frame)."""
    lines = text.splitlines()
    try:
        n = int(lines[0].split()[0])
    except (IndexError, ValueError):
        raise DataError("an XYZ file starts with its atom count") from None
    if len(lines) < 2 + n:
        raise DataError(f"the XYZ file says {n} atoms but has fewer lines")
    coords: list[list[float]] = []
    elements: list[str] = []
    for line in lines[2:2 + n]:
        f = line.split()
        if len(f) < 4:
            raise DataError(f"an XYZ atom line needs an element and x y z: {line!r}")
        elements.append(_element(f[0]))
        coords.append([_float(f[1], "XYZ"), _float(f[2], "XYZ"), _float(f[3], "XYZ")])
    return coords, elements, []


def _mol2(text: str) -> tuple[list[list[float]], list[str], list[list[int]]]:
    coords: list[list[float]] = []
    elements: list[str] = []
    bonds: list[list[int]] = []
    ids: dict[str, int] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("@<TRIPOS>"):
            section = line[9:].strip()
            continue
        f = line.split()
        if section == "ATOM" and len(f) >= 6:
            ids[f[0]] = len(coords)
            coords.append([_float(f[2], "mol2"), _float(f[3], "mol2"), _float(f[4], "mol2")])
            elements.append(_element(f[5].split(".")[0], f[1]))
        elif section == "BOND" and len(f) >= 3 and f[1] in ids and f[2] in ids:
            bonds.append([ids[f[1]], ids[f[2]]])
    return coords, elements, bonds


def _gro(text: str) -> tuple[list[list[float]], list[str], list[list[int]]]:
    """GROMACS gro: fixed columns, coordinates in nm (shown in angstroms, as the others)."""
    lines = text.splitlines()
    try:
        n = int(lines[1].strip())
    except (IndexError, ValueError):
        raise DataError("a gro file's second line is its atom count") from None
    coords: list[list[float]] = []
    elements: list[str] = []
    for line in lines[2:2 + n]:
        coords.append([10 * _float(line[20:28], "gro"), 10 * _float(line[28:36], "gro"), 10 * _float(line[36:44], "gro")])
        elements.append(_element("", line[10:15].strip()))
    return coords, elements, []


_READERS = {
    "pdb": _pdb, "pqr": _pqr, "mmcif": _cif, "mcif": _cif, "cif": _cif, "sdf": _molfile, "sd": _molfile,
    "mol": _molfile, "xyz": _xyz, "mol2": _mol2, "gro": _gro,
}


def _guess_bonds(coords: list[list[float]], elements: list[str]) -> list[list[int]]:
    """Pairs closer than 1.2 x the sum of their covalent radii (1.5 A for unknown elements)."""
    n = len(coords)
    if n > _GUESS_BONDS_MAX_ATOMS:
        return []
    radii = [_COVALENT.get(e, 0.75) for e in elements]
    bonds: list[list[int]] = []
    for i in range(n):
        xi, yi, zi = coords[i]
        for j in range(i + 1, n):
            cut = 1.2 * (radii[i] + radii[j])
            dx, dy, dz = coords[j][0] - xi, coords[j][1] - yi, coords[j][2] - zi
            d2 = dx * dx + dy * dy + dz * dz
            if 0.16 < d2 <= cut * cut:  # closer than 0.4 A: the same atom twice, not a bond
                bonds.append([i, j])
    return bonds


def read_structure(data: bytes, ext: str) -> dict[str, Any]:
    """``{"atoms": [[x, y, z], ...], "elements": [symbol, ...], "bonds": [[i, j], ...], "guessed"}``.

    ``bonds`` are the file's own (PDB CONECT, mol/sdf, mol2) or, when it lists none, guessed from
    distances (``guessed`` True). ``DataError`` when the type has no reader here (mmtf, a binary
    format) or the file is not what its type says.
    """
    reader = _READERS.get(ext.lower())
    if reader is None:
        raise DataError(f"cannot read the atoms of a .{ext} molecule file (readable: {', '.join(sorted(_READERS))})")
    text = data.decode("utf-8", errors="replace")
    coords, elements, bonds = reader(text)
    n = len(coords)
    bonds = [b for b in bonds if 0 <= b[0] < n and 0 <= b[1] < n]
    guessed = not bonds
    if guessed:
        bonds = _guess_bonds(coords, elements)
    return {"atoms": coords, "elements": elements, "bonds": bonds, "guessed": guessed}


def to_pdb(structure: dict[str, Any], title: str = "") -> str:
    """A PDB text of ``read_structure``'s atoms (HETATM lines) and bonds (CONECT lines)."""
    out = [f"COMPND    {title[:70]}"] if title else []
    for k, ((x, y, z), el) in enumerate(zip(structure["atoms"], structure["elements"], strict=True), start=1):
        name = el[:2].rjust(2) + "  " if len(el) < 3 else el[:4]
        out.append(f"HETATM{k:5d} {name:<4s} MOL A   1    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          {el[:2]:>2s}")
    partners: dict[int, list[int]] = {}
    for a, b in structure["bonds"]:
        partners.setdefault(a + 1, []).append(b + 1)
        partners.setdefault(b + 1, []).append(a + 1)
    for a in sorted(partners):
        for i in range(0, len(partners[a]), 4):
            out.append("CONECT" + f"{a:5d}" + "".join(f"{b:5d}" for b in partners[a][i:i + 4]))
    out.append("END")
    return "\n".join(out) + "\n"
