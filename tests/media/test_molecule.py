"""``Molecule`` and ``Object3D`` from files and file handles, as wandb's users write them.

Molecules: every format read without rdkit (pdb, pqr, cif, mol, sdf, xyz), from a path, a text
handle, a binary handle and a ``StringIO`` with ``file_type=``; logged, replayed, the bytes kept
and their atoms read back; SMILES and rdkit molecules through the installed rdkit, and a clear
error naming rdkit in an interpreter where rdkit cannot be imported. Object3D: the seed's three
lines, verbatim (``open("sample.glb")`` is a binary file opened in text mode), in a fresh
interpreter; their bytes equal the files' and open as meshes.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

import wandblite
from tests.conftest import run_script
from tests.media.molecule_files import ATOMS, BONDS, ELEMENTS, FORMATS, molecule_texts, write_molecule_files
from wandblite.data_types.molecule import read_structure, to_pdb
from wandblite.errors import DataError


def _replayed_values(run_dir: Path) -> dict[str, Any]:
    r = wandblite.replay(run_dir)
    assert r.state == "finished" and r.damage == []
    return {k: v for row in r.history() for k, v in row.items() if not k.startswith("_")}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_molecule_files(tmp_path / "molecules")


def test_every_format_from_a_path_and_from_text_binary_and_string_handles(files: dict[str, Path], tmp_path: Path) -> None:
    run = wandblite.init(project="mol", id="m1", dir=str(tmp_path / "runs"), settings=wandblite.Settings(quiet=True))
    logged: dict[str, bytes] = {}
    for fmt, path in files.items():
        with open(path) as text_handle, open(path, "rb") as binary_handle:
            values = {
                f"{fmt}/path": wandblite.Molecule(str(path), caption=f"water {fmt}"),
                f"{fmt}/text": wandblite.Molecule(text_handle),
                f"{fmt}/binary": wandblite.Molecule(binary_handle),
                f"{fmt}/string": wandblite.Molecule(io.StringIO(path.read_text()), file_type=fmt),
            }
        run.log(values)
        logged.update({k: path.read_bytes() for k in values})
    run.finish()
    values = _replayed_values(tmp_path / "runs" / "m1")
    assert set(values) == set(logged)
    for key, raw in logged.items():
        v = values[key]
        fmt = key.split("/")[0]
        assert v["_type"] == "molecule-file" and v["path"].startswith("media/molecule/") and v["path"].endswith("." + fmt)
        assert v.bytes() == raw and v["size"] == len(raw)
        s = read_structure(v.bytes(), fmt)
        assert len(s["atoms"]) == ATOMS and s["elements"] == ELEMENTS and s["bonds"] == BONDS
        assert s["atoms"][1] == pytest.approx([0.757, 0.586, 0.0])
    assert values["pdb/path"]["caption"] == "water pdb" and "caption" not in values["pdb/text"]


def test_a_list_of_molecules_is_wandbs_molecule_collection(files: dict[str, Path], tmp_path: Path) -> None:
    run = wandblite.init(project="mol", id="m2", dir=str(tmp_path / "runs"), settings=wandblite.Settings(quiet=True))
    run.log({"gallery": [wandblite.Molecule(str(files["pdb"]), caption="a"), wandblite.Molecule(str(files["xyz"]))]})
    run.finish()
    v = _replayed_values(tmp_path / "runs" / "m2")["gallery"]
    assert v["_type"] == "molecule" and v["count"] == 2 and v["captions"] == ["a", None]
    assert [m["path"] for m in v["molecules"]] == v["filenames"]
    assert [m.bytes() for m in v.media()] == [files["pdb"].read_bytes(), files["xyz"].read_bytes()]


def test_what_molecule_refuses(files: dict[str, Path], tmp_path: Path) -> None:
    odd = tmp_path / "water.txt"
    odd.write_text("O 0 0 0")
    with pytest.raises(DataError, match="Molecule only supports files of the type: pdb, pqr"):
        wandblite.Molecule(str(odd))
    with pytest.raises(DataError, match=re.escape("Must pass file_type keyword argument when using io objects.")):
        wandblite.Molecule(io.StringIO(molecule_texts()["pdb"]))
    with pytest.raises(DataError, match="Molecule 3D only supports files of the type"):
        wandblite.Molecule(io.StringIO("x"), file_type="png")
    with pytest.raises(DataError, match="Data must be file name or a file object"):
        wandblite.Molecule(42)
    with pytest.raises(FileNotFoundError):
        wandblite.Molecule(str(tmp_path / "missing.pdb"))
    with pytest.raises(DataError, match="no _atom_site loop"):
        read_structure(b"data_x\n", "cif")
    with pytest.raises(DataError, match=re.escape("cannot read the atoms of a .mmtf")):
        read_structure(b"\x80", "mmtf")


def test_to_pdb_writes_the_same_atoms_and_bonds(files: dict[str, Path]) -> None:
    for fmt in FORMATS:
        s = read_structure(files[fmt].read_bytes(), fmt)
        again = read_structure(to_pdb(s, title=fmt).encode(), "pdb")
        assert again["elements"] == s["elements"] and again["bonds"] == s["bonds"] and not again["guessed"]
        assert [c for a in again["atoms"] for c in a] == pytest.approx([c for a in s["atoms"] for c in a])


def test_from_smiles_and_from_rdkit_make_pdb_with_hydrogens_and_3d_coordinates(files: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    from rdkit import Chem

    run = wandblite.init(project="mol", id="m3", dir=str(tmp_path / "runs"), settings=wandblite.Settings(quiet=True))
    run.log({
        "ethanol": wandblite.Molecule.from_smiles("CCO", caption="ethanol"),
        "flat": wandblite.Molecule.from_smiles("CCO", convert_to_3d_and_optimize=False),
        "from_mol": wandblite.Molecule.from_rdkit(str(files["mol"])),
        "from_sdf": wandblite.Molecule.from_rdkit(str(files["sdf"])),
        "from_obj": wandblite.Molecule.from_rdkit(Chem.MolFromSmiles("c1ccccc1")),
    })
    run.finish()
    values = _replayed_values(tmp_path / "runs" / "m3")
    ethanol = read_structure(values["ethanol"].bytes(), "pdb")
    assert values["ethanol"]["path"].endswith(".pdb") and values["ethanol"]["caption"] == "ethanol"
    assert sorted(ethanol["elements"]) == ["C", "C", "H", "H", "H", "H", "H", "H", "O"]  # hydrogens added
    assert len(ethanol["bonds"]) == 8
    assert any(abs(a[2]) > 0.1 for a in ethanol["atoms"])  # embedded in 3D
    assert sorted(read_structure(values["flat"].bytes(), "pdb")["elements"]) == ["C", "C", "O"]
    for key in ("from_mol", "from_sdf"):
        assert sorted(read_structure(values[key].bytes(), "pdb")["elements"]) == ["H", "H", "O"]
    assert len(read_structure(values["from_obj"].bytes(), "pdb")["atoms"]) == 12
    with pytest.raises(DataError, match=re.escape("Unable to parse the SMILES string.")):
        wandblite.Molecule.from_smiles("not a smiles ((")
    with pytest.raises(DataError, match=re.escape("Molecule.from_rdkit only supports files of the type: mol, sdf")):
        wandblite.Molecule.from_rdkit(str(files["pdb"]))


def test_without_rdkit_smiles_and_rdkit_molecules_raise_an_error_naming_rdkit(files: dict[str, Path]) -> None:
    code = """
    import sys
    sys.modules["rdkit"] = None  # what an interpreter without rdkit sees: import rdkit fails
    import wandblite
    m = wandblite.Molecule(sys.argv[1])  # files need no rdkit
    for call in (lambda: wandblite.Molecule.from_smiles("CCO"), lambda: wandblite.Molecule.from_rdkit(sys.argv[1])):
        try:
            call()
        except wandblite.DataError as exc:
            print("error:", exc)
    """
    r = run_script(code, str(files["pdb"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "error: wandblite.Molecule.from_smiles needs rdkit, which is not installed: pip install rdkit",
        "error: wandblite.Molecule.from_rdkit needs rdkit, which is not installed: pip install rdkit",
    ]


# ------------------------------------------------------------------------------ Object3D handles


def _samples(d: Path) -> None:
    """sample.obj, sample.gltf (buffer embedded) and sample.glb: one triangle each."""
    (d / "sample.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    positions = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "scene": 0, "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "buffers": [{"byteLength": len(positions)}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(positions)}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
    }
    uri = "data:application/octet-stream;base64," + base64.b64encode(positions).decode()
    (d / "sample.gltf").write_text(json.dumps(dict(gltf, buffers=[{"byteLength": len(positions), "uri": uri}])))
    js = json.dumps(gltf).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(positions), 0x004E4942) + positions
    (d / "sample.glb").write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)


SEED_3D = """
import sys
import wandblite as wandb

run = wandb.init(project="seed-3d", id="seed3d", dir=sys.argv[1])
wandb.log(
    {
        "generated_samples": [
            wandb.Object3D(open("sample.obj")),
            wandb.Object3D(open("sample.gltf")),
            wandb.Object3D(open("sample.glb")),
        ]
    }
)
run.finish()
"""


def test_the_seeds_three_object3d_lines_run_verbatim_and_their_bytes_open(tmp_path: Path) -> None:
    import trimesh

    work = tmp_path / "work"
    work.mkdir()
    _samples(work)
    r = run_script(SEED_3D, str(tmp_path / "runs"), cwd=str(work))
    assert r.returncode == 0, r.stderr
    v = _replayed_values(tmp_path / "runs" / "seed3d")["generated_samples"]
    assert v["_type"] == "object3D" and v["count"] == 3
    objs = v.media()
    for obj, name in zip(objs, ("sample.obj", "sample.gltf", "sample.glb"), strict=True):
        ext = name.split(".")[1]
        assert obj["path"].endswith("." + ext)
        assert obj.bytes() == (work / name).read_bytes()
        mesh = trimesh.load(io.BytesIO(obj.bytes()), file_type=ext, force="mesh", process=False)
        assert len(mesh.vertices) == 3 and len(mesh.faces) == 1


def test_object3d_handles_binary_text_and_string_with_the_type_from_the_name_or_file_type(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _samples(tmp_path)
    glb = (tmp_path / "sample.glb").read_bytes()
    with open(tmp_path / "sample.glb", "rb") as f:
        f.read(5)  # a handle already read from: the whole file still
        assert wandblite.Object3D(f)._data == glb
    with open(tmp_path / "sample.glb") as f:
        assert wandblite.Object3D(f)._data == glb
    with open(tmp_path / "sample.obj") as f:
        assert wandblite.Object3D(f, file_type="obj").ext == "obj"
    crlf = tmp_path / "crlf.obj"
    crlf.write_bytes(b"v 0 0 0\r\nv 1 0 0\r\nv 0 1 0\r\nf 1 2 3\r\n")
    with open(crlf) as f:  # text mode would turn CRLF into LF: the bytes on disk are kept
        assert wandblite.Object3D(f)._data == crlf.read_bytes()
    monkeypatch.chdir(tmp_path)
    with open("sample.glb") as f:  # a relative name, then the cwd moves: the file under the handle counts
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        assert wandblite.Object3D(f)._data == glb
    text = (tmp_path / "sample.obj").read_text()
    assert wandblite.Object3D(io.StringIO(text), file_type="obj")._data == text.encode()
    assert wandblite.Object3D(io.BytesIO(glb), file_type="glb")._data == glb
    with pytest.raises(DataError, match=re.escape("Must pass file_type keyword argument when using io objects.")):
        wandblite.Object3D(io.BytesIO(glb))
    with pytest.raises(DataError, match="open it in binary mode"):
        wandblite.Object3D(io.StringIO("glTF"), file_type="glb")
