"""The layers, checked statically: every module of ``wandblite/`` and ``cli/`` has a layer in the table
of ``docs/architecture.md``, and no import (lazy ones inside functions included) goes up a layer, joins
sync with the server, or closes a cycle.

The table is the one home of the layering rule; this test reads it from there. Modules are named by
their import names (``wandblite_cli`` for the ``cli/`` folder); a row may name a package with ``.*`` to
place every module below it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "architecture.md"
PACKAGES = {"wandblite": ROOT / "wandblite", "wandblite_cli": ROOT / "cli"}


def project_modules() -> dict[str, Path]:
    """Import name -> source file of every module of the project (C extensions by their ``.c`` source)."""
    out: dict[str, Path] = {}
    for pkg, folder in PACKAGES.items():
        for path in sorted([*folder.rglob("*.py"), *folder.rglob("*.c")]):
            parts = [pkg, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def layer_table(text: str) -> list[tuple[int, str]]:
    """(layer, module or ``package.*`` pattern) of each module the table's rows name."""
    rows: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|([^|]*)\|", line)
        if m:
            rows.extend((int(m[1]), name) for name in re.findall(r"`([\w.*]+)`", m[2]))
    return rows


def layer_of(module: str, table: list[tuple[int, str]]) -> list[int]:
    """The layers the table gives ``module``: an exact row wins over a ``.*`` row, the longest pattern wins."""
    exact = [layer for layer, name in table if name == module]
    if exact:
        return exact
    best: list[tuple[int, int]] = [(len(name), layer) for layer, name in table
                                   if name.endswith(".*") and (module == name[:-2] or module.startswith(name[:-1]))]
    if not best:
        return []
    longest = max(n for n, _ in best)
    return [layer for n, layer in best if n == longest]


def lazy_reexports(tree: ast.Module) -> set[int]:
    """Line numbers of the imports inside a package's module-level ``__getattr__`` (PEP 562): the
    facade naming an upper layer's class lazily (``wandblite.Api``), which the SDK never loads itself."""
    return {node.lineno for fn in tree.body if isinstance(fn, ast.FunctionDef) and fn.name == "__getattr__"
            for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, project module) of every import in ``path``, at any depth of the code, once each."""
    if path.suffix != ".py":
        return
    is_pkg = path.name == "__init__.py"
    seen: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        for hit in _imports_in(node, module, is_pkg, known):
            if hit not in seen:
                seen.add(hit)
                yield hit


def _imports_in(node: ast.AST, module: str, is_pkg: bool, known: set[str]) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield from _resolve(node.lineno, alias.name, known)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolved against this module's package
            anchor = module.split(".") if is_pkg else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            if f"{base}.{alias.name}" in known:  # ``from package import submodule``
                yield node.lineno, f"{base}.{alias.name}"
            else:
                yield from _resolve(node.lineno, base, known)


def _resolve(lineno: int, name: str, known: set[str]) -> Iterator[tuple[int, str]]:
    """The project module ``name`` imports (its longest known prefix), if it is one of ours."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in known:
            yield lineno, cand
            return
        parts.pop()


MODULES = project_modules()
TABLE_ROWS = layer_table(TABLE.read_text(encoding="utf-8"))


def _lazy_lines(path: Path) -> set[int]:
    return lazy_reexports(ast.parse(path.read_text(encoding="utf-8"))) if path.name == "__init__.py" else set()


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, PEP 562 re-exports left out (they bind a name for the
    user; the facade's own code does not depend on them)."""
    known = set(MODULES)
    graph: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        lazy = _lazy_lines(path)
        graph[mod] = {t for ln, t in imports_of(mod, path, known) if t != mod and ln not in lazy}
    return graph


def test_every_module_has_exactly_one_layer() -> None:
    unplaced = [m for m in MODULES if not layer_of(m, TABLE_ROWS)]
    doubled = [m for m in MODULES if len(set(layer_of(m, TABLE_ROWS))) > 1]
    stale = [name for _l, name in TABLE_ROWS
             if not (name in MODULES or (name.endswith(".*") and any(layer_of(m, [(0, name)]) for m in MODULES)))]
    assert not unplaced, f"modules in no layer of docs/architecture.md: {unplaced}"
    assert not doubled, f"modules in two layers of docs/architecture.md: {doubled}"
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def test_no_import_goes_up_a_layer() -> None:
    known = set(MODULES)
    upward = []
    for mod, path in MODULES.items():
        own = max(layer_of(mod, TABLE_ROWS), default=-1)
        lazy = _lazy_lines(path)
        for lineno, target in imports_of(mod, path, known):
            if lineno in lazy:
                continue
            theirs = max(layer_of(target, TABLE_ROWS), default=99)
            if theirs > own:
                upward.append(f"{path.relative_to(ROOT)}:{lineno} {mod} (layer {own}) imports {target} (layer {theirs})")
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize(("a", "b"), [("wandblite.sync", "wandblite.server"), ("wandblite.server", "wandblite.sync")])
def test_sync_and_server_do_not_import_each_other(a: str, b: str) -> None:
    known = set(MODULES)
    bad = [f"{p.relative_to(ROOT)}:{ln} imports {t}" for m, p in MODULES.items() if m == a or m.startswith(a + ".")
           for ln, t in imports_of(m, p, known) if t == b or t.startswith(b + ".")]
    assert not bad, f"{a} imports {b}:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import cycles (lazy imports count):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion depth is not ours to spend)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root, children0 in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(children0)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
    return out
