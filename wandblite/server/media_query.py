"""A run's media, key by key, and 3D files as JSON for a viewer.

Layer 5 (server). ``list_media`` reads ``store.media_rows`` (which final rows hold a ``_type``
value under which key, written by the store with the final rows) and the history rows it points
to, plus a crashed run's provisional rows read raw; it writes nothing and reads one snapshot.
``mesh`` reads a stored media file by sha256: point clouds (``.pts.json``) as JSON, meshes
(``MESH_FORMATS``) with trimesh, imported only when a mesh is asked for. Both thin what they send
(``MAX_MEDIA_STEPS`` steps, ``MAX_POINTS`` points, ``MAX_MESH_FACES`` faces) and say so.
"""

from __future__ import annotations

import io
import json
from typing import Any

import sqlalchemy as sa

from wandblite.data_types.molecule import MOLECULE_TYPES, read_structure
from wandblite.errors import DataError
from wandblite.server.errors import bad_request
from wandblite.server.history_store import row_values, rows_at
from wandblite.server.media_index import MediaBlob
from wandblite.server.read import run_row, tail_rows
from wandblite.server.schema import media_rows
from wandblite.server.store import Store
from wandblite.vocab import is_typed_value

__all__ = ["MAX_MEDIA_STEPS", "MAX_MESH_FACES", "MAX_POINTS", "MESH_FORMATS", "list_media", "mesh"]

MAX_MEDIA_STEPS = 100_000
MAX_POINTS = 200_000  # point clouds beyond this are thinned with an even stride
MAX_MESH_FACES = 300_000  # meshes beyond this keep an evenly spaced subset of their faces
MESH_FORMATS = ("obj", "stl", "glb", "gltf", "ply", "off")  # file extensions trimesh reads for ``mesh``


def _leaf(row: Any, key: str) -> tuple[bool, Any]:
    """The value at a dotted key path (a key with dots of its own is found too)."""
    if not isinstance(row, dict):
        return False, None
    if key in row:
        return True, row[key]
    i = key.find(".")
    while i >= 0:
        head = key[:i]
        if head in row:
            found, v = _leaf(row[head], key[i + 1:])
            if found:
                return True, v
        i = key.find(".", i + 1)
    return False, None


def list_media(store: Store, project: str, run_id: str, key: str, limit: int = 10_000) -> dict[str, Any]:
    """``{"key", "count", "steps": [{"step", "idx", "value"}]}``: each row where ``key`` holds a
    ``_type`` value (images, videos, audio, histograms, tables, charts, 3D, html), in index order.

    ``count`` is the number of such rows; beyond ``limit`` of them, ``steps`` keeps ``limit``
    evenly spaced ones, always including the first and the last.
    """
    if not key:
        raise bad_request("key is required")
    if not 1 <= limit <= MAX_MEDIA_STEPS:
        raise bad_request(f"limit must be between 1 and {MAX_MEDIA_STEPS}")
    with store.snapshot() as conn:
        r = run_row(conn, project, run_id)
        pk, final = r.id, int(r.rows_final)
        m = media_rows.c
        idxs = [i for (i,) in conn.execute(sa.select(m.idx).where(m.run == pk, m.key == key).order_by(m.idx))]
        total = len(idxs)
        if total > limit:
            idxs = sorted({idxs[round(j * (total - 1) / (limit - 1))] for j in range(limit)}) if limit > 1 else [idxs[-1]]
        steps = []
        step_of = row_values(conn, pk, "step")
        step_of.preload(idxs)
        for idx, row in rows_at(conn, pk, [i for i in idxs if i < final]):
            found, v = _leaf(row, key)
            if found:
                steps.append({"step": step_of.get(idx), "idx": idx, "value": v})
        for idx, step, row in tail_rows(conn, pk, final):
            found, v = _leaf(row, key)
            if found and is_typed_value(v):
                steps.append({"step": step, "idx": idx, "value": v})
                total += 1
    return {"key": key, "count": total, "steps": steps}


def mesh(store: Store, sha: str) -> dict[str, Any]:
    """A stored 3D file as JSON for a viewer.

    Meshes (obj, stl, glb, gltf, ply, off; read with trimesh): ``{"vertices": [[x, y, z], ...],
    "faces": [[i, j, k], ...]}``; beyond ``MAX_MESH_FACES`` faces an evenly spaced subset is kept.
    Point clouds (``.pts.json``): ``{"points": [[x, y, z(, c | r, g, b)], ...]}`` plus ``boxes`` and
    ``vectors`` of a scene; beyond ``MAX_POINTS`` points an even stride is kept. Molecules
    (``Molecule``'s text types): ``{"molecule": true, "atoms", "elements", "bonds", "guessed"}``, the
    first ``MAX_POINTS`` atoms. Either way
    ``truncated`` says whether something was dropped, ``total`` how many there were.
    """
    blob = store.media_blob(sha)
    ext = (blob.ext or "").lower()
    if ext in MOLECULE_TYPES:
        return _molecule(blob, sha, ext)
    if ext.endswith("json"):
        return _point_cloud(blob, sha)
    if ext not in MESH_FORMATS:
        raise bad_request(f"media {sha} ({ext or 'no extension'}) is not a mesh or point cloud", code="bad_media")
    return _mesh_file(blob, sha, ext)


def _molecule(blob: MediaBlob, sha: str, ext: str) -> dict[str, Any]:
    """A molecule file's atoms, elements and bonds (``data_types.molecule.read_structure``)."""
    try:
        out = read_structure(blob.read_bytes(), ext)
    except DataError as exc:
        raise bad_request(f"media {sha} could not be read as {ext}: {exc}", code="bad_media")
    total = len(out["atoms"])
    out.update(molecule=True, total=total, truncated=total > MAX_POINTS)
    if total > MAX_POINTS:
        keep = MAX_POINTS
        out["atoms"], out["elements"] = out["atoms"][:keep], out["elements"][:keep]
        out["bonds"] = [b for b in out["bonds"] if b[0] < keep and b[1] < keep]
    return out


def _point_cloud(blob: MediaBlob, sha: str) -> dict[str, Any]:
    """A ``.pts.json`` scene: its points (an even stride beyond ``MAX_POINTS``), boxes and vectors."""
    try:
        data = json.loads(blob.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"media {sha} is not a JSON point cloud: {exc}")
    scene = data if isinstance(data, dict) else {"points": data}
    pts = scene.get("points")
    if not isinstance(pts, list):
        raise bad_request(f"media {sha} has no point list")
    total = len(pts)
    stride = -(-total // MAX_POINTS) if total > MAX_POINTS else 1
    out: dict[str, Any] = {"points": pts[::stride], "total": total, "truncated": stride > 1}
    for extra in ("boxes", "vectors", "type"):
        if extra in scene:
            out[extra] = scene[extra]
    return out


def _mesh_file(blob: MediaBlob, sha: str, ext: str) -> dict[str, Any]:
    """A mesh read with trimesh: vertices and faces (an evenly spaced subset beyond ``MAX_MESH_FACES``)."""
    try:
        import trimesh
    except ImportError:
        raise bad_request("this server cannot read meshes: pip install trimesh", code="unsupported")
    import numpy as np

    # trimesh seeks: a local file is opened, a bucket's object is read whole (as trimesh would); a
    # storage fault while reading is the store's error, not a bad mesh.
    path = blob.local_path()
    source = open(path, "rb") if path is not None else io.BytesIO(blob.read_bytes())
    try:
        with source as f:
            m = trimesh.load(f, file_type=ext, force="mesh", process=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's, not the server's
        raise bad_request(f"media {sha} could not be read as {ext}: {exc}", code="bad_media")
    vertices = np.asarray(getattr(m, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(m, "faces", np.zeros((0, 3))), dtype=np.int64)
    total = len(faces)
    truncated = total > MAX_MESH_FACES
    if truncated:
        faces = faces[np.linspace(0, total - 1, MAX_MESH_FACES).astype(np.int64)]
        used, inverse = np.unique(faces, return_inverse=True)
        vertices, faces = vertices[used], inverse.reshape(faces.shape)
    if not np.all(np.isfinite(vertices)):
        vertices = np.nan_to_num(vertices, nan=0.0, posinf=0.0, neginf=0.0)
    return {"vertices": vertices.tolist(), "faces": faces.tolist(), "total": total, "truncated": bool(truncated)}
