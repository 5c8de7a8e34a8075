"""Loading `.irn` files and resolving `import`: each file becomes a `LoadedModule` whose
namespace holds its functions and the names it imports.

`import nn` looks for `nn.irn` beside the importing file, then in the standard library;
`import "path/to/file.irn" as lib` names a file relative to the importing one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .diagnostics import IrnError, read_source
from .parser import parse

STDLIB_DIR = Path(__file__).parent / "stdlib"


@functools.cache
def stdlib_modules() -> dict[str, str]:
    """Each function the standard library defines -> the module that defines it (for the hint
    of an unknown name: the file's top-level `def` lines, without parsing it)."""
    homes = {}
    for path in sorted(STDLIB_DIR.glob("*.irn")):
        for name in re.findall(r"^def\s+([A-Za-z_]\w*)", path.read_text("utf-8"), re.M):
            homes.setdefault(name, path.stem)
    return homes


@dataclass
class FunctionRef:
    fn: ast.Function
    module: LoadedModule


@dataclass
class LoadedModule:
    prefix: str
    """Prefix of the symbols this module's functions get in the IR: "" or "nn."."""
    display: str
    """The file name that locations and errors show."""
    tree: ast.Module
    text: str = ""
    namespace: dict[str, FunctionRef | LoadedModule] = field(default_factory=dict)


class Program:
    """Every module that the main file reaches through imports, each loaded once."""

    def __init__(self) -> None:
        self.modules: dict[Path, LoadedModule] = {}
        self._loading: list[Path] = []

    def load_file(self, path: str | Path) -> LoadedModule:
        path = Path(path)
        text = read_source(path)
        return self.load_text(text, str(path), path.resolve())

    def load_text(
        self, text: str, display: str, key: Path | None = None, prefix: str = ""
    ) -> LoadedModule:
        key = key or Path(display)
        if key in self.modules:
            return self.modules[key]
        module = LoadedModule(prefix, display, parse(text, display), text)
        self._loading.append(key)
        try:
            for fn in module.tree.functions:
                self._define(module, fn.name, FunctionRef(fn, module), fn.loc)
            for imp in module.tree.imports:
                self._import(module, key, imp)
        finally:
            self._loading.pop()
        self.modules[key] = module
        return module

    def _define(self, module: LoadedModule, name: str, value, loc: ast.Loc) -> None:
        if name in module.namespace:
            raise IrnError(f"'{name}' is defined twice in {module.display}", loc)
        module.namespace[name] = value

    def _import(self, importer: LoadedModule, importer_key: Path, imp: ast.Import) -> None:
        path, display, prefix = self._find(importer, importer_key, imp)
        key = path.resolve()
        if key in self._loading:
            cycle = [p.name for p in self._loading[self._loading.index(key) :]] + [key.name]
            raise IrnError(f"import cycle: {' -> '.join(cycle)}", imp.loc)
        if key not in self.modules:
            try:
                text = read_source(path, display)
            except IrnError as e:
                if e.loc is None:  # the file cannot be read at all: blame the import
                    e.loc = imp.loc
                raise
            self.load_text(text, display, key, prefix)
        imported = self.modules[key]
        if imp.names is None:
            self._define(importer, imp.alias or Path(imp.module).stem, imported, imp.loc)
            return
        for name in imp.names:
            if not isinstance(imported.namespace.get(name), FunctionRef):
                from irnet.grammar.lexer import BUILTINS  # Pygments: only for this message

                builtin = f"; '{name}' is a builtin, usable without an import" * (name in BUILTINS)
                raise IrnError(f"{imported.display} defines no function '{name}'{builtin}", imp.loc)
            self._define(importer, name, imported.namespace[name], imp.loc)

    def _find(
        self, importer: LoadedModule, importer_key: Path, imp: ast.Import
    ) -> tuple[Path, str, str]:
        """The file an import names, the name locations show for it, and its symbol prefix."""
        name = imp.module
        relative = name if name.endswith(".irn") else f"{name}.irn"
        stem = Path(relative).stem
        beside = importer_key.parent / relative
        if beside.is_file():
            shown = str(Path(importer.display).parent / relative)
            return beside, shown, f"{stem}."
        library = STDLIB_DIR / relative
        if not name.endswith(".irn") and library.is_file():
            return library, f"stdlib/{relative}", f"{stem}."
        raise IrnError(
            f"cannot find module '{name}' (looked for {beside} and the standard library)",
            imp.loc,
        )
