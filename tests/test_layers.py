"""The project's folders are layers that import one way, and no modules import each other in a
cycle.

    irnet.grammar  <-  irnet.dialects  <-  irnet.lowering  <-  irnet (the irnet/ folder)

The one exception is `irnet.diagnostics`, a leaf of the irnet/ folder (errors and source
locations) that dialects and lowering may report through. The import graph is read from the
source with `ast`, so it holds every import, inside functions and under `if TYPE_CHECKING:`
too: those still tie the modules together, for a reader and for the next refactoring.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIAGNOSTICS = "irnet.diagnostics"


@dataclass(frozen=True, order=True)
class Import:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} (line {self.line})"


@dataclass(frozen=True)
class Rule:
    """The modules of the folder `importers` import nothing from the folders `forbidden`, save
    the modules `allowed`. A folder is named by its package, as pyproject maps it."""

    importers: str
    forbidden: tuple[str, ...]
    allowed: frozenset[str] = frozenset()

    def __str__(self) -> str:
        exceptions = f", except {', '.join(sorted(self.allowed))}" if self.allowed else ""
        return f"{self.importers} imports nothing from {', '.join(self.forbidden)}{exceptions}"


RULES = {
    "dialects": Rule("irnet.dialects", ("irnet.lowering", "irnet"), frozenset({DIAGNOSTICS})),
    "lowering": Rule("irnet.lowering", ("irnet",), frozenset({DIAGNOSTICS})),
    "grammar": Rule("irnet.grammar", ("irnet.dialects", "irnet.lowering", "irnet")),
}


# --- the import graph --------------------------------------------------------------------------


def package_dirs(root: Path) -> dict[str, Path]:
    """Each top-level package and its folder, as pyproject installs them."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return {
        name: root / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()
    }


def project_modules(packages: Mapping[str, Path]) -> dict[str, Path]:
    """Every module's dotted name and its file; a package is named by its `__init__.py`."""
    modules = {}
    for package, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def import_graph(packages: Mapping[str, Path]) -> list[Import]:
    """Every import of one project module by another, once per line."""
    modules = project_modules(packages)
    return sorted(
        {found for name, path in modules.items() for found in imports_of(name, path, modules)}
    )


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> Iterator[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(node, package)
            targets = [submodule_or_base(base, alias.name, modules) for alias in node.names]
        else:
            continue
        for target in targets:
            imported = enclosing_module(target, modules)
            if imported is not None:
                yield Import(module, imported, node.lineno)


def absolute_base(node: ast.ImportFrom, package: str) -> str:
    """The module `from <base> import ...` names, with a relative base made absolute."""
    if node.level == 0:
        return node.module or ""
    parent = package.rsplit(".", node.level - 1)[0]
    return f"{parent}.{node.module}" if node.module else parent


def submodule_or_base(base: str, name: str, modules: Mapping[str, Path]) -> str:
    """`from pkg import name` imports the submodule `pkg.name` when there is one, else `pkg`."""
    submodule = f"{base}.{name}"
    return submodule if submodule in modules else base


def enclosing_module(dotted: str, modules: Mapping[str, Path]) -> str | None:
    """The project module `dotted` names (its longest prefix that is one), None outside it."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return None


# --- the checks --------------------------------------------------------------------------------


def import_cycles(imports: Iterable[Import]) -> list[str]:
    """Each module's shortest import cycle, as a chain `a -> b -> a`, without repeats."""
    graph: dict[str, set[str]] = defaultdict(set)
    for found in imports:
        graph[found.importer].add(found.imported)
    cycles = {
        rotate_to_smallest(c) for module in sorted(graph) if (c := shortest_cycle(graph, module))
    }
    return sorted(" -> ".join([*cycle, cycle[0]]) for cycle in cycles)


def shortest_cycle(graph: Mapping[str, set[str]], start: str) -> list[str] | None:
    """The modules on the shortest chain of imports from `start` back to it (breadth-first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(graph.get(module, ())):
            if imported == start:
                chain = [module]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return chain[::-1]
            if imported not in came_from:
                came_from[imported] = module
                queue.append(imported)
    return None


def rotate_to_smallest(cycle: list[str]) -> tuple[str, ...]:
    """One spelling per cycle, whichever module it was found from."""
    first = cycle.index(min(cycle))
    return tuple(cycle[first:] + cycle[:first])


def folder_of(module: str, packages: Iterable[str]) -> str:
    """The package whose folder holds `module`: the longest one that prefixes its name."""
    return max((p for p in packages if module == p or module.startswith(p + ".")), key=len)


def rule_violations(imports: Iterable[Import], rule: Rule, packages: Iterable[str]) -> list[str]:
    packages = list(packages)
    return [
        str(found)
        for found in imports
        if folder_of(found.importer, packages) == rule.importers
        and folder_of(found.imported, packages) in rule.forbidden
        and found.imported not in rule.allowed
    ]


# --- the project -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packages() -> dict[str, Path]:
    return package_dirs(ROOT)


@pytest.fixture(scope="module")
def imports(packages: dict[str, Path]) -> list[Import]:
    return import_graph(packages)


def test_no_import_cycles(imports: list[Import]) -> None:
    cycles = import_cycles(imports)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_layers_import_one_way(
    imports: list[Import], packages: dict[str, Path], rule: Rule
) -> None:
    violations = rule_violations(imports, rule, packages)
    assert not violations, f"{rule}, but:\n" + "\n".join(violations)


def test_diagnostics_is_a_leaf(packages: dict[str, Path], imports: list[Import]) -> None:
    # Without the module the rules above would allow nothing, and this test would pass unread.
    assert DIAGNOSTICS in project_modules(packages), f"{DIAGNOSTICS} does not exist"
    violations = [str(found) for found in imports if found.importer == DIAGNOSTICS]
    assert not violations, f"{DIAGNOSTICS} is a leaf, but:\n" + "\n".join(violations)


def test_the_checker_finds_a_cycle_and_a_layer_violation(tmp_path: Path) -> None:
    """A tiny tree with one cycle (through a function-level import) and one lowering module
    importing the irnet/ folder (under TYPE_CHECKING): the checks must see both."""
    files = {
        "irnet/__init__.py": "",
        "irnet/a.py": "from . import b\n",
        "irnet/b.py": "def f():\n    from irnet.a import thing\n",
        "lowering/__init__.py": "",
        "lowering/lower.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from irnet import b\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    packages = {"irnet": tmp_path / "irnet", "irnet.lowering": tmp_path / "lowering"}
    graph = import_graph(packages)

    assert import_cycles(graph) == ["irnet.a -> irnet.b -> irnet.a"]
    assert rule_violations(graph, RULES["lowering"], packages) == [
        "irnet.lowering.lower imports irnet.b (line 3)"
    ]
