#!/usr/bin/env python
"""Fails (exit 1) when the project's modules import each other in a cycle, or a layer imports up.

A cycle only works while every module in it happens to be imported in one order, and a
function-level import added to dodge one hides the tangle instead of removing it; CI runs this
before the tests so a new cycle fails at once, naming its path. Stdlib only: it parses the
files and imports none of them.

Edges counted: every `import` and `from ... import` of a project module, at module level or inside a
function (lazy imports run too, only later). Skipped, and why:
- imports under `if TYPE_CHECKING:` never run; they let two data types name each other in
  annotations. `--type-checking` counts them as well, so such references cannot hide a cycle
  (CI runs both).
- the implicit import of a module's own parent packages: `models.fusion` importing `models.spec`
  runs no `models/__init__.py` (it is already being initialised), while `benchmark.run.grid`
  importing `models.registry` does run it, so that edge (to `models`) counts.
- names imported through `importlib` (`data_pipeline/__init__.py`'s lazy `__getattr__`): not
  statements, so not seen; the modules they name import nothing of their package's `__init__`.

    python scripts/check_imports.py [ROOT] [--type-checking]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGES = ("benchmark", "models", "data_pipeline")
SCRIPTS = ("run_benchmark.py",)
# Top-level name -> the top-level names it must never import (docs/development.md, "Layout").
FORBIDDEN = {
    "models": {"benchmark", "data_pipeline", "run_benchmark"},
    "data_pipeline": {"benchmark", "models", "run_benchmark"},
    "benchmark": {"run_benchmark"},
}


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages and scripts."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    for script in SCRIPTS:
        if (root / script).is_file():
            found[script.removesuffix(".py")] = root / script
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, type_checking: bool):
    """Every import node, descending into functions; `if TYPE_CHECKING:` bodies only when asked."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            children = list(node.orelse)  # the guarded body never runs
        stack.extend(children)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` refers to: itself, or the nearest enclosing module that exists."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path], type_checking: bool) -> set[str]:
    """The project modules one module imports (see the module docstring for what counts)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path)), type_checking):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative; in a package's __init__, `from . import x` is the package
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from a.b import c` imports the module a.b.c when it exists, else the name c of a.b.
            names = [f"{base}.{alias.name}" for alias in node.names]
            targets = [name if name in modules else base for name in names]
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved and resolved != module:
                found.add(resolved)
                found.update(_packages_entered(module, resolved, modules))
    return found


def _packages_entered(module: str, target: str, modules: dict[str, Path]) -> set[str]:
    """The packages, not enclosing `module`, whose `__init__` importing `target` runs."""
    parts = target.split(".")
    packages = {".".join(parts[:i]) for i in range(1, len(parts))}
    return {p for p in packages if p in modules and p != module and not module.startswith(p + ".")}


def import_graph(root: Path, type_checking: bool = False) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imports_of(name, path, modules, type_checking) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path per strongly connected group of modules importing each other (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(start: str) -> None:  # iterative: a deep import chain cannot hit the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return [_cycle_path(graph, group) for group in groups]


def _cycle_path(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest loop through a group's first module: a -> b -> ... -> a (breadth-first)."""
    start, members = group[0], set(group)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    return [*group, group[0]]  # unreachable for a strongly connected group


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if target.split(".")[0] in FORBIDDEN.get(module.split(".")[0], set())
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument(
        "--type-checking", action="store_true", help="count imports under `if TYPE_CHECKING:` too"
    )
    args = parser.parse_args(argv)
    graph = import_graph(Path(args.root), type_checking=args.type_checking)
    problems = [f"import cycle: {' -> '.join(path)}" for path in find_cycles(graph)]
    problems += [f"layer: {violation}" for violation in layer_violations(graph)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"imports: {len(graph)} modules, no cycle, layers point one way")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
