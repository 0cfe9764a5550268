"""Artifacts offline: ``Artifact``, ``run.log_artifact``, ``run.use_artifact``, ``artifact.download``.

Layer 4. Stdlib, ``events``, ``env``, ``term``, ``vocab`` and ``runfile``'s reader (to find
artifacts among runs); ``login`` and requests only on the server path. It works with a run through its
``RunSurface`` (``wandblite.surface``) and never imports ``run``.

Storage. ``log_artifact`` copies every file of the artifact into the logging run's content-addressed
object store ``<run dir>/artifacts/objects/<sha256>`` (written to a temporary name and renamed; one
copy per content however many artifacts hold it) and writes one ARTIFACT record, the manifest::

    {"name", "type", "version" (int), "digest", "aliases" (list, always with "latest"),
     "description", "metadata", "size", "run" (the logging run's id),
     "entries": {path: {"sha256", "size", "object": "artifacts/objects/<sha256>"}
                       | {"ref": uri[, "sha256", "size"]}}}

``digest`` is ``artifact_digest(entries)``: the sha256 of the sorted ``path, sha256-or-ref`` lines,
so two artifacts with the same files have the same digest whatever order they were added in.

Versions. The versions of a name are found among all the runs under the logging run's root
directory (``find_runs`` + the ARTIFACT records of each): the same digest as an existing version is
that version again (no new version; the new aliases are recorded on it), a new digest is
``max + 1`` (``v0`` first). Two processes logging a new digest of the same name at the same
instant could both take ``max + 1``; that race is accepted offline.

Aliases. ``name:latest`` (or a bare ``name``) is the version recorded most recently; a user alias is
the version of the most recent record carrying it; ``name:vN`` is version N. An
``entity/project/`` prefix is ignored offline. ``use_artifact`` writes a USE record
``{"name", "version", "digest", "type", "run" (the run that logged it)}``.

Server. When ``use_artifact`` finds no such artifact under the root and a server is configured
(``wandblite.login.credentials()``: ``$WANDBLITE_SERVER``/``$WANDB_BASE_URL`` or ``login(host=)``),
it asks the server for the manifest (``GET /api/v1/projects/{project}/artifacts/{name}/{alias}``,
the project from an ``entity/project/name`` prefix, else the run's) and ``download`` fetches each
object from ``/api/v1/media/{sha256}``, verified against its sha256 before it is renamed into
place. ``requests`` is imported only on that path. Entry paths that break the file-name rule
(``vocab.file_name_problem``: absolute, ``..``, a backslash or a control character, ...), so
could leave the download directory, are refused, wherever the manifest came from.

References (``add_reference``) are recorded, not copied; a ``file://`` reference to an existing
file records its sha256 and size, and ``download`` copies it; other schemes are listed only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from wandblite import events as ev
from wandblite.env import active_run
from wandblite.errors import Error
from wandblite.surface import RunSurface
from wandblite.term import termwarn
from wandblite.vocab import file_name_problem

if TYPE_CHECKING:
    import tempfile

__all__ = ["Artifact", "ArtifactNotFoundError", "artifact_digest", "log_artifact", "use_artifact"]

OBJECTS_DIR = "artifacts/objects"
_CHUNK = 1 << 20


class ArtifactNotFoundError(Error):
    """``use_artifact`` found no artifact with that name and alias under the runs' root."""


def _sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _store_object(run_dir: Path, src: str) -> tuple[str, int]:
    """Copy ``src`` into the run's object store; return its sha256 and size."""
    objects = run_dir / OBJECTS_DIR
    objects.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    tmp = objects / f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with open(src, "rb") as f, open(tmp, "wb") as out:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
        sha = h.hexdigest()
        final = objects / sha
        if final.exists() and final.stat().st_size == size:
            tmp.unlink()
        else:
            os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return sha, size


def artifact_digest(entries: dict[str, dict[str, Any]]) -> str:
    """The digest of an artifact's manifest entries (``path -> {"sha256", ...} | {"ref", ...}``).

    The sha256 (hex) of one line ``<path>\\0<sha256, else ref>\\n`` per entry, in sorted path
    order: it depends only on which content (or reference) sits at which path, not on the order
    the files were added nor on sizes or object locations. The SDK stamps it on every ARTIFACT
    record; the server recomputes it to check a manifest it receives.
    """
    h = hashlib.sha256()
    for path in sorted(entries):
        e = entries[path]
        h.update(f"{path}\0{e.get('sha256') or e.get('ref')}\n".encode())
    return h.hexdigest()


def _split_name(spec: str) -> tuple[str, str]:
    """``"entity/project/name:alias"`` -> ``("name", "alias")`` (alias ``latest`` when absent)."""
    spec = spec.rsplit("/", 1)[-1]
    name, _, alias = spec.partition(":")
    return name, alias or "latest"


class Artifact:
    """wandb's ``Artifact``: a named, typed, versioned set of files.

    Build one with ``add_file``/``add_dir``/``new_file``/``add_reference`` and pass it to
    ``run.log_artifact``; ``run.use_artifact("name:alias")`` returns a logged one, whose
    ``download()`` copies its files out.
    """

    def __init__(
        self,
        name: str,
        type: str,  # noqa: A002 - wandb's keyword
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
    ) -> None:
        if not name or any(c in name for c in "/:"):
            raise ValueError(f"Artifact name {name!r} must be non-empty and may not contain '/' or ':'")
        self._base_name = name
        self.type = type
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.aliases: list[str] = []
        self.version: str | None = None
        self.digest: str | None = None
        self.size = 0
        self.source_run: str | None = None
        # pending (not yet logged): path -> local file, or ("ref", uri)
        self._pending: dict[str, Any] = {}
        self._entries: dict[str, dict[str, Any]] = {}
        self._run_dir: Path | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        # (server URL, API key, project) of an artifact whose manifest came from a server
        self._remote: tuple[str, str | None, str] | None = None

    # ------------------------------------------------------------------ identity
    @property
    def name(self) -> str:
        """``name`` before logging; ``name:vN`` for an artifact that was logged or used."""
        return self._base_name if self.version is None else f"{self._base_name}:{self.version}"

    @property
    def qualified_name(self) -> str:
        return self.name

    @property
    def logged(self) -> bool:
        return self._run_dir is not None or self._remote is not None

    def __repr__(self) -> str:
        return f"<Artifact {self.name} type={self.type}>"

    # ------------------------------------------------------------------ building
    def _check_mutable(self) -> None:
        if self.logged:
            raise Error(f"artifact {self.name} was logged already; create a new Artifact to change it")

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        is_tmp: bool | None = False,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        overwrite: bool = False,
    ) -> Any:
        """Add one file (its content is read when the artifact is logged)."""
        self._check_mutable()
        local = os.fspath(local_path)
        if not os.path.isfile(local):
            raise ValueError(f"Path is not a file: {local!r}")
        path = (name or os.path.basename(local)).replace(os.sep, "/").lstrip("/")
        if path in self._pending and not overwrite and self._pending[path] != local:
            raise ValueError(f"File with path {path!r} already exists in artifact {self._base_name}")
        self._pending[path] = local
        return path

    def add_dir(self, local_path: str | os.PathLike[str], name: str | None = None,
                skip_cache: bool | None = False, policy: str | None = "mutable", merge: bool = False) -> None:
        """Add every file below ``local_path`` (under the prefix ``name`` when given)."""
        self._check_mutable()
        root = os.fspath(local_path)
        if not os.path.isdir(root):
            raise ValueError(f"Path is not a directory: {root!r}")
        for dirpath, _dirs, filenames in os.walk(root):
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                self.add_file(full, name=f"{name.rstrip('/')}/{rel}" if name else rel, overwrite=True)

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: str | None = None) -> Iterator[IO[Any]]:
        """Open a new file to write into the artifact: ``with art.new_file("a.txt", "w") as f: ...``."""
        self._check_mutable()
        if self._tmpdir is None:
            import tempfile

            self._tmpdir = tempfile.TemporaryDirectory(prefix="wandblite-artifact-")
        path = Path(self._tmpdir.name) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if "b" not in mode and encoding is None:
            encoding = "utf-8"
        with open(path, mode, encoding=encoding) as f:
            yield f
        self.add_file(path, name=name, overwrite=True)

    def add_reference(self, uri: str, name: str | None = None, checksum: bool = True,
                      max_objects: int | None = None) -> list[str]:
        """Record a reference to ``uri`` (not copied; ``file://`` ones are hashed)."""
        from urllib.parse import unquote, urlparse

        self._check_mutable()
        parsed = urlparse(uri)
        path = name or (os.path.basename(unquote(parsed.path)) or parsed.netloc or uri)
        self._pending[path] = ("ref", uri)
        return [path]

    def add(self, obj: Any, name: str, overwrite: bool = False) -> Any:
        """Add a wandb data type (``Table``, ``Image``, ...) under ``name``, as wandb does: its JSON as
        ``<name>.<type>.json`` (a table: ``<name>.table.json`` holding ``columns`` and ``data``), the
        bytes of its media beside it at their ``media/...`` paths. ``get(name)`` reads it back."""
        from wandblite.data_types import Media, Table

        self._check_mutable()
        if not isinstance(obj, Media):
            raise ValueError(f"Artifact.add takes a wandb data type (Table, Image, ...), not {type(obj).__name__}; "
                             "use add_file or add_dir for files")
        store = _BytesStore()
        kind = _ADD_TYPES.get(obj._log_type, obj._log_type)
        if isinstance(obj, Table):
            data, _nrows = obj.table_bytes(store, name, 0)  # type: ignore[arg-type]
            doc: Any = json.loads(data)
            doc.update({"_type": "table", "ncols": len(obj.columns), "nrows": len(doc["data"])})
        else:
            doc = obj.to_json(store, name, 0)  # type: ignore[arg-type]
        path = f"{name}.{kind}.json"
        with self.new_file(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"), allow_nan=True)
        for rel, data in store.files(doc):
            with self.new_file(rel, "wb") as fb:
                fb.write(data)
        return self._entry_for(path)

    def get(self, name: str) -> Any:
        """What ``add(obj, name)`` stored: a ``Table`` for a table, else the data type's JSON (a dict)."""
        from wandblite.data_types import Table

        for path in self.files():
            if path.startswith(f"{name}.") and path.endswith(".json") and path.count(".") >= 2:
                doc = json.loads(self._read(path))
                if path.endswith(".table.json"):
                    return Table(columns=doc["columns"], data=doc["data"])
                return doc
        return None

    def _read(self, path: str) -> bytes:
        if path in self._entries and "object" in self._entries[path]:
            assert self._run_dir is not None
            return (self._run_dir / self._entries[path]["object"]).read_bytes()
        if path in self._entries and self._remote is not None:
            return Path(self.download(path_prefix=path), path).read_bytes()
        src = self._pending.get(path)
        if isinstance(src, str):
            return Path(src).read_bytes()
        raise KeyError(f"{path!r} is not a file of artifact {self.name}")

    def _entry_for(self, path: str) -> ManifestEntry:
        return self.manifest.entries[path]

    def remove(self, item: str) -> None:
        self._check_mutable()
        self._pending.pop(item, None)

    def wait(self, timeout: int | None = None) -> Artifact:
        return self

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise Error("Artifact.save() needs the server; log it with run.log_artifact(artifact) instead")

    # ------------------------------------------------------------------ contents
    @property
    def manifest(self) -> ArtifactManifest:
        """wandb's ``artifact.manifest``: ``.entries`` maps each path to a ``ManifestEntry``. It is also
        the mapping path -> entry dict (``{"sha256", "size", "object"}`` or ``{"ref", ...}``); before
        logging, the entries are the files added so far (with their ``local_path``)."""
        if self.logged:
            return ArtifactManifest({p: dict(e) for p, e in self._entries.items()}, {})
        entries: dict[str, dict[str, Any]] = {}
        local: dict[str, str] = {}
        for path, src in self._pending.items():
            if isinstance(src, tuple):
                entries[path] = {"ref": src[1]}
            else:
                sha, size = _sha256_file(src)
                entries[path] = {"sha256": sha, "size": size}
                local[path] = src
        return ArtifactManifest(entries, local)

    def files(self) -> list[str]:
        return sorted(self._entries or self._pending)

    def download(self, root: str | os.PathLike[str] | None = None, allow_missing_references: bool = False,
                 skip_cache: bool | None = None, path_prefix: str | None = None) -> str:
        """Copy the artifact's files to ``root`` (default ``./artifacts/<name>:<version>``); return it."""
        if not self.logged:
            raise Error(f"artifact {self._base_name} has not been logged; log it before downloading")
        import shutil
        from urllib.parse import unquote, urlparse

        assert self._run_dir is not None or self._remote is not None
        dest = Path(root) if root is not None else Path("artifacts") / self.name
        for path, entry in sorted(self._entries.items()):
            if path_prefix and not path.startswith(path_prefix):
                continue
            if file_name_problem(path) is not None:
                raise Error(f"artifact {self.name}: entry path {path!r} would leave the download directory")
            target = dest / path
            if self._remote is not None and "ref" not in entry:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not (target.is_file() and _sha256_file(target)[0] == entry.get("sha256")):
                    self._fetch(str(entry.get("sha256")), target)
                continue
            if "object" in entry:
                src = self._run_dir / entry["object"]
            else:
                parsed = urlparse(entry["ref"])
                if parsed.scheme != "file":
                    if not allow_missing_references:
                        termwarn(f"artifact {self.name}: reference {entry['ref']} cannot be downloaded offline",
                                 repeat=False)
                    continue
                src = Path(unquote(parsed.path))
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and _sha256_file(target)[0] == entry.get("sha256"):
                continue
            shutil.copyfile(src, target)
            want = entry.get("sha256")
            if want and _sha256_file(target)[0] != want:
                raise Error(f"artifact {self.name}: {path} copied from {src} does not match its sha256 {want}")
        return str(dest)

    def file(self, root: str | os.PathLike[str] | None = None) -> str:
        """The path of the downloaded file of a one-file artifact."""
        if len(self._entries) != 1:
            raise ValueError("This method should only be called on an artifact with exactly one file")
        return str(Path(self.download(root)) / next(iter(self._entries)))

    def get_path(self, name: str) -> _Entry:
        if name not in self._entries:
            raise KeyError(f"{name!r} is not in artifact {self.name}")
        return _Entry(self, name)

    # ------------------------------------------------------------------ internal
    def _fetch(self, sha: str, target: Path) -> None:
        """Download one object of a server artifact to ``target``: verified, then renamed into place."""
        import requests  # only an artifact that came from a server gets here

        assert self._remote is not None
        server, key, _project = self._remote
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
        h = hashlib.sha256()
        try:
            with requests.get(f"{server}/api/v1/media/{sha}", headers=headers, stream=True, timeout=(10, 300)) as resp:
                if resp.status_code != 200:
                    raise Error(f"artifact {self.name}: {server} answered {resp.status_code} for object {sha}")
                with open(tmp, "wb") as out:
                    for chunk in resp.iter_content(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
            if h.hexdigest() != sha:
                raise Error(f"artifact {self.name}: the object downloaded from {server} does not match its sha256 {sha}")
            os.replace(tmp, target)
        except requests.RequestException as exc:
            raise Error(f"artifact {self.name}: cannot download object {sha} from {server}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _freeze(self, run_dir: Path) -> None:
        """Copy the pending files into ``run_dir``'s object store and build the manifest."""
        from urllib.parse import unquote, urlparse

        entries: dict[str, dict[str, Any]] = {}
        for path, src in sorted(self._pending.items()):
            if isinstance(src, tuple):
                uri = src[1]
                entry: dict[str, Any] = {"ref": uri}
                parsed = urlparse(uri)
                local = unquote(parsed.path)
                if parsed.scheme == "file" and os.path.isfile(local):
                    entry["sha256"], entry["size"] = _sha256_file(local)
                entries[path] = entry
            else:
                sha, size = _store_object(run_dir, src)
                entries[path] = {"sha256": sha, "size": size, "object": f"{OBJECTS_DIR}/{sha}"}
        self._entries = entries
        self.digest = artifact_digest(entries)
        self.size = sum(int(e.get("size") or 0) for e in entries.values())

    def _manifest_record(self) -> dict[str, Any]:
        return {
            "name": self._base_name, "type": self.type, "version": int(str(self.version)[1:]),
            "digest": self.digest, "aliases": list(self.aliases), "description": self.description,
            "metadata": self.metadata, "size": self.size, "run": self.source_run, "entries": self._entries,
        }

    @classmethod
    def _from_record(cls, rec: dict[str, Any], run_dir: Path | None, aliases: list[str]) -> Artifact:
        art = cls(rec["name"], rec.get("type") or "", rec.get("description"), rec.get("metadata"))
        art.version = f"v{rec['version']}"
        art.digest = rec.get("digest")
        art.aliases = aliases
        art.size = int(rec.get("size") or 0)
        art.source_run = rec.get("run")
        art._entries = dict(rec.get("entries") or {})
        art._run_dir = run_dir
        return art


class _BytesStore:
    """A media store for ``Artifact.add``: keeps each blob in memory by sha256 (``put`` is all the data
    types call), so the bytes can be added to the artifact at the paths their JSON names."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes, ext: str) -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = bytes(data)
        return {"sha256": sha, "size": len(data)}

    def files(self, doc: Any) -> Iterator[tuple[str, bytes]]:
        """(path, bytes) of each blob that ``doc`` (a data type's JSON) names, once per path."""
        seen: set[str] = set()
        stack = [doc]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                sha, path = v.get("sha256"), v.get("path")
                if isinstance(path, str) and sha in self.blobs and path not in seen:
                    seen.add(path)
                    yield path, self.blobs[sha]
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)


# Artifact.add's file suffix per data type (wandb names a table "<name>.table.json").
_ADD_TYPES = {"table-file": "table"}


class ManifestEntry:
    """One entry of ``artifact.manifest.entries`` (wandb's ``ArtifactManifestEntry``): ``path``,
    ``digest`` (here the content's sha256, hex; wandb's is an MD5 in base64), ``size``, ``ref``
    (a reference's URI, else None) and ``local_path`` (the added file, before logging)."""

    def __init__(self, path: str, entry: dict[str, Any], local_path: str | None = None) -> None:
        self.path = path
        self.digest: str | None = entry.get("sha256") or entry.get("ref")
        self.sha256: str | None = entry.get("sha256")
        self.size: int | None = entry.get("size")
        self.ref: str | None = entry.get("ref")
        self.local_path = local_path

    def __repr__(self) -> str:
        return f"ManifestEntry(path={self.path!r}, digest={self.digest!r}, size={self.size!r})"


class ArtifactManifest(Mapping[str, dict[str, Any]]):
    """``artifact.manifest``: ``entries`` (path -> ``ManifestEntry``), and a read-only mapping of
    path -> entry dict."""

    def __init__(self, raw: dict[str, dict[str, Any]], local: dict[str, str]) -> None:
        self._raw = raw
        self.entries: dict[str, ManifestEntry] = {p: ManifestEntry(p, e, local.get(p)) for p, e in raw.items()}

    def __getitem__(self, path: str) -> dict[str, Any]:
        return self._raw[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def get_entry_by_path(self, path: str) -> ManifestEntry | None:
        return self.entries.get(path)

    def __repr__(self) -> str:
        return f"ArtifactManifest({len(self._raw)} entries)"


class _Entry:
    """``artifact.get_path(name)``: one file of a logged artifact."""

    def __init__(self, artifact: Artifact, path: str) -> None:
        self.artifact = artifact
        self.path = path

    def download(self, root: str | os.PathLike[str] | None = None) -> str:
        return str(Path(self.artifact.download(root, path_prefix=self.path)) / self.path)


# ---------------------------------------------------------------------------- finding versions


def _records(root: Path, name: str) -> list[tuple[float, dict[str, Any], Path]]:
    """Every ARTIFACT record of ``name`` among the runs under ``root``, oldest first."""
    from wandblite.runfile import find_runs, read_events

    out: list[tuple[float, dict[str, Any], Path]] = []
    if not root.is_dir():
        return out
    for run_dir in find_runs(root):
        for e in read_events(run_dir, kinds=frozenset({ev.ARTIFACT})):
            try:
                ts, rec = e.data[0], e.data[1]
            except (TypeError, IndexError, KeyError):
                continue
            if isinstance(rec, dict) and rec.get("name") == name:
                out.append((float(ts), rec, run_dir))
    out.sort(key=lambda t: t[0])
    return out


def _resolve(root: Path, name: str, alias: str) -> tuple[dict[str, Any], Path, list[str]]:
    recs = _records(root, name)
    if not recs:
        raise ArtifactNotFoundError(f"no artifact named {name!r} among the runs under {root}")
    chosen: tuple[float, dict[str, Any], Path] | None = None
    if alias[:1] == "v" and alias[1:].isdigit():
        want = int(alias[1:])
        matches = [r for r in recs if r[1].get("version") == want]
        chosen = matches[-1] if matches else None
    else:
        matches = [r for r in recs if alias in (r[1].get("aliases") or ())]
        chosen = matches[-1] if matches else None
    if chosen is None:
        raise ArtifactNotFoundError(f"artifact {name!r} has no version or alias {alias!r} under {root}")
    version = chosen[1].get("version")
    # The aliases a version holds now: each alias belongs to the last record that carried it.
    owner: dict[str, Any] = {}
    for _ts, rec, _d in recs:
        for a in rec.get("aliases") or ():
            owner[a] = rec.get("version")
    aliases = sorted(a for a, v in owner.items() if v == version)
    return chosen[1], chosen[2], aliases


def _spec_project(spec: str) -> str | None:
    """The project of an ``entity/project/name:alias`` or ``project/name:alias`` spec, else None."""
    parts = spec.partition(":")[0].split("/")
    return parts[-2] or None if len(parts) >= 2 else None


def _server_artifact(project: str, name: str, alias: str, cause: ArtifactNotFoundError) -> Artifact | None:
    """The artifact ``name:alias`` of ``project`` from the configured server; None without a server
    or when the server has no such artifact. An unreachable or refusing server is an
    ``ArtifactNotFoundError`` that says so."""
    from wandblite.login import credentials

    creds = credentials()
    server = (creds.get("server") or "").rstrip("/")
    if not server:
        return None
    from urllib.parse import quote

    import requests  # only when the artifact is not found locally and a server is configured

    key = creds.get("api_key")
    url = f"{server}/api/v1/projects/{quote(project, safe='')}/artifacts/{quote(name, safe='')}/{quote(alias, safe='')}"
    try:
        resp = requests.get(url, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=(10, 60))
    except requests.RequestException as exc:
        raise ArtifactNotFoundError(f"{cause}; and the server {server} cannot be reached: {exc}") from exc
    if resp.status_code == 404:
        return None
    try:
        rec = resp.json()
    except ValueError:
        rec = None
    if resp.status_code != 200 or not isinstance(rec, dict) or not isinstance(rec.get("entries"), dict):
        detail = (rec or {}).get("error", {}).get("message") if isinstance(rec, dict) else None
        raise ArtifactNotFoundError(f"{cause}; and the server {server} answered {resp.status_code}: "
                                    f"{detail or resp.reason}")
    art = Artifact._from_record(rec, None, list(rec.get("aliases") or []))
    art._remote = (server, key, project)
    return art


def log_artifact_run(run: RunSurface, artifact_or_path: Any, name: str | None = None, type: str | None = None,  # noqa: A002
                     aliases: list[str] | None = None, tags: list[str] | None = None) -> Artifact:
    """``run.log_artifact``: store the artifact with ``run`` and record its manifest."""
    if isinstance(artifact_or_path, Artifact):
        art = artifact_or_path
    else:
        path = os.fspath(artifact_or_path)
        if "://" in path:
            art = Artifact(name or os.path.basename(path.rstrip("/")), type or "unspecified")
            art.add_reference(path)
        else:
            art = Artifact(name or f"run-{run.id}-{os.path.basename(path.rstrip(os.sep))}", type or "unspecified")
            if os.path.isdir(path):
                art.add_dir(path)
            else:
                art.add_file(path)
    if art.logged:
        raise Error(f"artifact {art.name} was logged already; create a new Artifact to log new content")
    if isinstance(aliases, str):
        aliases = [aliases]
    user_aliases = [str(a) for a in (aliases or [])]
    for a in user_aliases:
        if a[:1] == "v" and a[1:].isdigit():
            raise ValueError(f"alias {a!r} is reserved for versions")
    run_dir = Path(run.path)
    art._freeze(run_dir)
    existing = _records(run.runs_root, art._base_name)
    version = None
    for _ts, rec, _d in existing:
        if rec.get("digest") == art.digest:
            version = rec.get("version")
            break
    if version is None:
        version = 1 + max((int(rec.get("version", -1)) for _ts, rec, _d in existing), default=-1)
    art.version = f"v{version}"
    art.aliases = ["latest", *[a for a in dict.fromkeys(user_aliases) if a != "latest"]]
    art.source_run = run.id
    art._run_dir = run_dir
    run.append_event(ev.ARTIFACT, [time.time(), art._manifest_record()], call="log_artifact")
    if art._tmpdir is not None:
        art._tmpdir.cleanup()
        art._tmpdir = None
    return art


def use_artifact_run(run: RunSurface, artifact_or_name: Any, type: str | None = None,  # noqa: A002
                     aliases: list[str] | None = None, use_as: str | None = None) -> Artifact:
    """``run.use_artifact``: find a logged artifact under the run's root and record the use."""
    if isinstance(artifact_or_name, Artifact):
        art = artifact_or_name
        if not art.logged:
            art = log_artifact_run(run, art, aliases=aliases)
    else:
        name, alias = _split_name(str(artifact_or_name))
        try:
            rec, run_dir, held = _resolve(run.runs_root, name, alias)
            art = Artifact._from_record(rec, run_dir, held)
        except ArtifactNotFoundError as exc:
            remote = _server_artifact(_spec_project(str(artifact_or_name)) or run.project, name, alias, exc)
            if remote is None:
                raise
            art = remote
        if type is not None and art.type != type:
            raise ValueError(f"artifact {art.name} is of type {art.type!r}, not {type!r}")
    ref = {"name": art._base_name, "version": int(str(art.version)[1:]), "digest": art.digest,
           "type": art.type, "run": art.source_run}
    run.append_event(ev.USE, [time.time(), ref], call="use_artifact")
    return art


def log_artifact(artifact_or_path: Any, name: str | None = None, type: str | None = None,  # noqa: A002
                 aliases: list[str] | None = None, tags: list[str] | None = None) -> Any:
    """wandb's module-level ``log_artifact``: log into the active run."""
    run = active_run("wandb.log_artifact()")
    return run.log_artifact(artifact_or_path, name=name, type=type, aliases=aliases, tags=tags)


def use_artifact(artifact_or_name: Any, type: str | None = None,  # noqa: A002
                 aliases: list[str] | None = None, use_as: str | None = None) -> Any:
    """wandb's module-level ``use_artifact``: use from the active run."""
    run = active_run("wandb.use_artifact()")
    return run.use_artifact(artifact_or_name, type=type, aliases=aliases, use_as=use_as)
