"""The runtime modules as the text that emitted modules copy.

The files are read and parsed, never imported: emitting a module imports neither Numba nor the
CUDA simulator (which the cuda host code patches when imported).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

FOLDER = Path(__file__).parent


def read(module: str) -> str:
    """The text of runtime module `module` (a name in this package)."""
    return (FOLDER / f"{module}.py").read_text()


def prelude(imports: str, *modules: str) -> str:
    """An emitted module's fixed top part: `imports`, then the code of the runtime `modules`
    in that order, each without its docstring and imports (`imports` stands for them)."""
    return "\n\n\n".join([imports.strip("\n"), *(body(read(m)) for m in modules)])


def body(text: str) -> str:
    """A module's code without its docstring and its top-level imports."""
    tree = ast.parse(text)
    skipped: set[int] = set()
    has_docstring = ast.get_docstring(tree, clean=False) is not None
    for k, node in enumerate(tree.body):
        if (k == 0 and has_docstring) or isinstance(node, ast.Import | ast.ImportFrom):
            skipped.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    lines = text.splitlines()
    return "\n".join(line for i, line in enumerate(lines) if i not in skipped).strip("\n")


def helpers(text: str, imported: Collection[str]) -> dict[str, str]:
    """Each top-level function of module `text` by name, as an emitted module gets it: its
    source, decorators included, under the module's imports of the names it reads that the
    emitted module does not import itself (`imported`). Imports within this package are never
    copied: what they import is the emitted module's prelude."""
    lines = text.splitlines()
    absolute = imports(text)
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            code = "\n".join(lines[first - 1 : node.end_lineno])
            needs = sorted(absolute[n] for n in reads(code) if n in absolute and n not in imported)
            if needs:
                code = "\n".join(needs) + "\n\n\n" + code
            found[node.name] = code
    return found


def imports(text: str) -> dict[str, str]:
    """Each name that a top-level absolute import in `text` binds: an import of it alone."""
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = ast.unparse(ast.Import([alias]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                single = ast.ImportFrom(node.module, [alias], level=0)
                found[alias.asname or alias.name] = ast.unparse(single)
    return found


def depends(helpers: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """For each helper that uses others: those, in the order that its code first reads them."""
    found = {}
    for name, code in helpers.items():
        uses = tuple(n for n in reads(code) if n in helpers and n != name)
        if uses:
            found[name] = uses
    return found


def reads(code: str) -> list[str]:
    """The names that `code` reads, in order of first appearance. Its locals count too, which
    is harmless while no helper names a local after another helper."""
    loads = [
        (node.lineno, node.col_offset, node.id)
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    ]
    return list(dict.fromkeys(name for *_, name in sorted(loads)))


LAZY = ("PRELUDE", "HELPERS", "DEPENDS")


def lazily(make: Callable[[], Mapping[str, object]]) -> Callable[[str], object]:
    """A module `__getattr__` serving the names in LAZY from `make()`, called once, on first
    use: parsing a runtime's source takes 15 ms that a command which emits nothing should not
    pay."""
    made = functools.cache(make)

    def module_getattr(name: str) -> object:
        if name in LAZY:
            return made()[name]
        raise AttributeError(name)

    return module_getattr
