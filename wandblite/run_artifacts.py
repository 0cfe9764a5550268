"""The artifacts wandb's Run makes for you: ``log_code``, ``log_model``, ``use_model``, ``link_model``.

Layer 4. Stdlib, ``artifacts``, ``term`` and ``util``; it works with a run through its
``RunSurface`` and never imports ``run`` (``Run``'s methods of the same names call in here).

* ``log_code(root=".", name=None, include_fn, exclude_fn)``: the source files below ``root`` (by
  default ``*.py``, ``Dockerfile*`` and ``requirements.txt``, nothing under ``wandb/`` or
  ``.wandb/``), kept with the run as an artifact of type ``code`` named, as in wandb,
  ``source-<project>-<program path>`` made artifact-safe. No matching file: one warning, None.
* ``log_model(path, name=None, aliases=None)``: ``path`` (a file or a directory) as an artifact of
  type ``model`` (name ``run-<id>-<basename>`` by default, wandb's rule). Returns None, as wandb's.
* ``use_model(name)``: the model artifact ``name[:alias]`` found among the runs under this run's
  root, recorded as used, downloaded; returns the path (the file itself for a one-file model).
  wandb raises ``RuntimeError`` offline; here the local artifact is there to be used.
* ``link_model(path, registered_model_name, name=None, aliases=None)``: logs the model as
  ``log_model`` does; W&B's model registry is in its cloud, so offline the same files are also
  logged as the artifact ``registered_model_name`` (with ``aliases``), the local stand-in for
  the registered model's versions, and one line on stderr says so.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from wandblite.env import active_run
from wandblite.surface import RunSurface
from wandblite.term import termwarn
from wandblite.util import make_artifact_name_safe

__all__ = ["default_code_file", "link_model", "link_model_run", "log_code_run", "log_model", "log_model_run",
           "save_program", "use_model", "use_model_run"]

_WANDB_DIRS = ("wandb", ".wandb")


def default_code_file(path: str, root: str = "") -> bool:
    """wandb's default ``include_fn``: Python files, Dockerfiles and ``requirements.txt``."""
    base = os.path.basename(path)
    return base.endswith(".py") or base.startswith("Dockerfile") or base == "requirements.txt"


def _not_in_wandb_dir(path: str, root: str) -> bool:
    rel = os.path.relpath(path, root)
    return any(rel.startswith(d + os.sep) for d in _WANDB_DIRS)


def _call(fn: Callable[..., bool], path: str, root: str) -> bool:
    """``fn(path, root)`` or ``fn(path)``: wandb accepts both shapes of filter."""
    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n = 2
    return bool(fn(path, root) if n >= 2 else fn(path))


def _program_relpath() -> str | None:
    program = _program_path()
    return None if program is None else os.path.relpath(os.path.abspath(program))


def save_program(run: RunSurface) -> str | None:
    """``init(save_code=True)``: copy the main script into ``<run.dir>/code/...`` and record it.
    No script (an interactive session): one warning, None."""
    import shutil

    rel = _program_relpath()
    if rel is None:
        termwarn("save_code=True: no program file to save (an interactive session?)", repeat=False)
        return None
    rel = rel.replace(os.sep, "/")
    while rel.startswith("../"):
        rel = rel[3:]  # a script outside the working directory is kept under its remaining path
    dest = os.path.join(run.dir, "code", rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(os.path.abspath(_program_path() or ""), dest)
    run.save(dest, policy="now")
    return dest


def _program_path() -> str | None:
    main = sys.modules.get("__main__")
    program = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    return program if program and os.path.isfile(program) else None


def log_code_run(run: RunSurface, root: str | os.PathLike[str] | None = ".", name: str | None = None,
                 include_fn: Callable[..., bool] = default_code_file,
                 exclude_fn: Callable[..., bool] = _not_in_wandb_dir) -> Any:
    """``run.log_code``: the source files below ``root`` as a ``code`` artifact of ``run``."""
    from wandblite.artifacts import Artifact

    if name is None:
        name = make_artifact_name_safe(f"source-{run.project}-{_program_relpath()}")
    art = Artifact(name, "code")
    added = False
    if root is not None:
        base = os.path.abspath(root)
        runs_root = os.path.abspath(run.runs_root)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            # never the run directories themselves (a runs root inside the code tree)
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != runs_root]
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                if _call(include_fn, full, base) and not _call(exclude_fn, full, base):
                    art.add_file(full, name=os.path.relpath(full, base).replace(os.sep, "/"))
                    added = True
    if not added:
        termwarn("No relevant files were detected in the specified directory. No code will be logged to your run.")
        return None
    return run.log_artifact(art)


def log_model_run(run: RunSurface, path: str | os.PathLike[str], name: str | None = None,
                  aliases: list[str] | None = None) -> None:
    """``run.log_model``: ``path`` as a ``model`` artifact of ``run`` (wandb returns None)."""
    run.log_artifact(os.fspath(path), name=name, type="model", aliases=aliases)


def use_model_run(run: RunSurface, name: str) -> str:
    """``run.use_model``: download the model artifact ``name`` and return its path."""
    art = run.use_artifact(name)
    if "model" not in str(art.type).lower():
        raise AssertionError(
            "You can only use this method for 'model' artifacts. For an artifact to be a 'model' artifact, "
            "its type property must contain the substring 'model'."
        )
    path = art.download()
    entries = os.listdir(path)
    if len(entries) == 1 and len(art.files()) == 1:
        return os.path.join(path, entries[0])
    return str(path)


def link_model_run(run: RunSurface, path: str | os.PathLike[str], registered_model_name: str,
                   name: str | None = None, aliases: list[str] | None = None) -> Any:
    """``run.link_model``: log the model and, offline, the registered model as an artifact too."""
    if len(registered_model_name.split("/")) != 1:
        raise AssertionError(
            "Please provide only the name of the registered model. Do not append the entity or project name."
        )
    model = run.log_artifact(os.fspath(path), name=name, type="model")
    termwarn(f"link_model: W&B's model registry is in its cloud; offline, {model.name} is also logged as "
             f"the artifact {registered_model_name!r} (type model), this run's stand-in for the registered "
             "model", repeat=False)
    linked = run.log_artifact(os.fspath(path), name=make_artifact_name_safe(registered_model_name), type="model",
                              aliases=list(aliases or []))
    return linked


# ---------------------------------------------------------------------------- module-level (wandb.log_model, ...)


def log_model(path: str | os.PathLike[str], name: str | None = None, aliases: list[str] | None = None) -> None:
    """wandb's module-level ``log_model``: into the active run (wandb's pre-init error without one)."""
    log_model_run(active_run("wandb.log_model()"), path, name=name, aliases=aliases)


def use_model(name: str) -> str:
    """wandb's module-level ``use_model``."""
    return use_model_run(active_run("wandb.use_model()"), name)


def link_model(path: str | os.PathLike[str], registered_model_name: str, name: str | None = None,
               aliases: list[str] | None = None) -> Any:
    """wandb's module-level ``link_model``."""
    return link_model_run(active_run("wandb.link_model()"), path, registered_model_name, name=name, aliases=aliases)
