"""``wandblite.save`` / ``run.save``: files kept with the run, listed by replay.

Layer 4. Stdlib, ``events``, ``env``, ``term`` and ``vocab``; it works with a run through its ``RunSurface``
(``wandblite.surface``) and never imports ``run``.

A saved file is copied, under its name, into the run's ``files/`` directory (``run.dir``), the
same place wandb keeps a run's files, and a FILES record (see ``wandblite.events``) names it with
its size and sha256. ``replay(path).files`` maps each name to its latest record; the bytes are at
``<run dir>/<record["path"]>``. A file that already lives in ``run.dir`` is recorded, not copied.

Names follow wandb: a relative glob is matched from the current directory and each file keeps its
path relative to ``base_path`` (default ``.``); an absolute glob without ``base_path`` is relative
to its own directory; a glob inside ``run.dir`` is named relative to ``run.dir``. A glob may not
reach above ``base_path``.

Policies:

* ``"now"``: the matching files are copied and recorded at once.
* ``"live"`` (the default): copied at once, and again at ``finish`` when their content changed
  (the glob is matched again then, so files created later are kept too).
* ``"end"``: matched, copied and recorded at ``finish`` only.

A copy is written to a temporary name and renamed, so a crash never leaves a half-written copy under
a recorded name. A file that cannot be read becomes one warning; training goes on.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import os
import time
import weakref
from pathlib import Path
from typing import Any

from wandblite import events as ev
from wandblite.env import active_run
from wandblite.surface import RunSurface
from wandblite.term import termwarn
from wandblite.vocab import FILES_DIR

__all__ = ["POLICIES", "save", "save_run"]

POLICIES = ("live", "now", "end")
_CHUNK = 1 << 20


def _copy_hashed(src: str, dest: Path) -> tuple[int, str]:
    """Copy ``src`` to ``dest`` (atomically) and return its size and sha256; hash only if same file."""
    h = hashlib.sha256()
    size = 0
    same = dest.exists() and os.path.samefile(src, dest)
    if same:
        with open(src, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
        return size, h.hexdigest()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}-{os.getpid()}")
    with open(src, "rb") as f, open(tmp, "wb") as out:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
    os.replace(tmp, dest)
    return size, h.hexdigest()


def _resolve(glob_str: str, base_path: str | None) -> tuple[str, str]:
    if "://" in glob_str:
        raise ValueError(f"cannot save a URL ({glob_str}): log it with an Artifact and add_reference")
    if base_path is None:
        base_path = os.path.dirname(glob_str) if os.path.isabs(glob_str) else "."
        # An absolute glob with wildcards in its directory part is relative to the fixed part.
        while any(c in base_path for c in "*?["):
            base_path = os.path.dirname(base_path)
    pattern = os.path.abspath(glob_str if os.path.isabs(glob_str) else os.path.join(".", glob_str))
    base = os.path.abspath(base_path)
    rel = os.path.relpath(pattern, base)
    if rel == ".." or rel.startswith(".." + os.sep):
        raise ValueError(f"save({glob_str!r}): the glob reaches above base_path {base_path!r}")
    return pattern, base


class _Saved:
    """The globs a run keeps until finish (policies live and end) and what was recorded last."""

    def __init__(self) -> None:
        self.globs: list[tuple[str, str, str]] = []  # (pattern, base, policy)
        self.recorded: dict[str, str] = {}  # name -> sha256 last recorded


#: each run's saved-file state, held here (not on the run) for as long as the run lives
_saved: weakref.WeakKeyDictionary[RunSurface, _Saved] = weakref.WeakKeyDictionary()


def _state(run: RunSurface) -> _Saved:
    st = _saved.get(run)
    if st is None:
        st = _saved[run] = _Saved()
        run.add_finish_callback(lambda: _at_finish(run, st))
    return st


def _keep(run: RunSurface, pattern: str, base: str, policy: str, only_changed: bool) -> list[str]:
    """Copy the files matching ``pattern`` into ``run.dir`` and write one FILES record."""
    st = _state(run)
    files_dir = Path(run.dir)
    entries: list[dict[str, Any]] = []
    kept: list[str] = []
    for match in sorted(_glob.glob(pattern, recursive=True)):
        if not os.path.isfile(match):
            continue
        name = os.path.relpath(match, base).replace(os.sep, "/")
        dest = files_dir / name
        try:
            size, sha = _copy_hashed(match, dest)
        except OSError as exc:
            termwarn(f"save: could not keep {match} with run {run.id}: {exc}")
            continue
        kept.append(str(dest))
        if only_changed and st.recorded.get(name) == sha:
            continue
        st.recorded[name] = sha
        entries.append({"name": name, "path": f"{FILES_DIR}/{name}", "size": size, "sha256": sha, "policy": policy})
    if entries:
        run.append_event(ev.FILES, [time.time(), entries], call="save")
    return kept


def _at_finish(run: RunSurface, st: _Saved) -> None:
    for pattern, base, policy in st.globs:
        _keep(run, pattern, base, policy, only_changed=True)


def save_run(run: RunSurface, glob_str: Any = None, base_path: Any = None, policy: str = "live") -> list[str] | bool:
    """``run.save``: keep the files matching ``glob_str`` with ``run``; returns the kept paths."""
    if glob_str is None:
        termwarn("Calling wandb.run.save without any arguments is deprecated.", repeat=False)
        return True
    if policy not in POLICIES:
        raise ValueError('Invalid policy. Must be one of "live", "now" or "end".')
    pattern, base = _resolve(os.fspath(glob_str), None if base_path is None else os.fspath(base_path))
    files_dir = os.path.abspath(run.dir)
    if base_path is None and pattern.startswith(files_dir + os.sep):
        base = files_dir  # a file already in run.dir keeps its name there, however the glob was spelled
    if policy == "end":
        _state(run).globs.append((pattern, base, policy))
        return []
    kept = _keep(run, pattern, base, policy, only_changed=False)
    if policy == "live":
        _state(run).globs.append((pattern, base, policy))
    return kept


def save(glob_str: Any = None, base_path: Any = None, policy: str = "live") -> Any:
    """wandb's ``save``: keep files matching ``glob_str`` with the active run (see the module doc)."""
    run = active_run("wandb.save()")
    return run.save(glob_str, base_path=base_path, policy=policy)
