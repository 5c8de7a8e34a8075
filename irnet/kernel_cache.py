"""The cpu target's kernel cache: every compiled function of an emitted module (`@njit` kernels,
hand-written helpers, fast paths) is stored once per machine, named by its content, and shared
by every model that emits the same function, so a kernel compiles once per machine rather than
once per model. Kernels take their shapes from their arguments, so two models whose layers
fuse into the same chain (a dense layer with relu, cross-entropy, an Adam update) share it
whatever their sizes.

`split` cuts an emitted module into its host code (argument checks, buffers, entry points),
which stays in the model's own cache entry (`irnet.cpu`), and its *units*: one compiled
function each, in a file of the shared folder `<cache>/kernels/`:

    k_<sha256 of the file>.py         the module's imports, the names its decorator reads (JIT),
                                      `_USES` (the units it calls: local name -> unit), and
                                      the function, renamed to a name without the model's
                                      kernel number (`k7_matmul_add` -> `k_matmul_add`)
    k_<sha>.numba.json                the SHA-256 of each of Numba's files for it
    __pycache__/k_<sha>.<fn>-<line>.py311.nb[ic]   Numba's cache of its machine code

A unit's name covers its text and, through `_USES`, the units it calls: the same name is the
same code. Loading checks a unit's text against its name and its Numba files (pickles) against
its manifest before anything runs; a file that does not match is deleted and compiled again.
Numba writes its files at a kernel's first call, so `record` adds them to the manifests after
a run. A lock file serialises those checks and records between processes.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import json
import os
import re
import sys
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .cache_files import folder_state, locked, private_folder, sha256, write_atomically

COMPILED = ("njit", "intrinsic")
"""Decorators that make a top-level function of an emitted module a unit."""
NUMBA_FILES = (".nbi", ".nbc")
"""Numba's cache of compiled code: an index and the machine code, both pickled."""
KERNEL_NUMBER = re.compile(r"k\d+_(\w+)")


@dataclass
class Unit:
    """One compiled function of an emitted module."""

    local: str
    """Its name in the module."""
    code: str
    """Its source, decorators included."""
    uses: list[str] = field(default_factory=list)
    """The other units it reads, by local name."""
    header: str = ""
    """The module's imports and assignments that it reads."""

    @property
    def name(self) -> str:
        """Its name in its unit file: without a model's kernel number (`k7_abs` -> `k_abs`,
        never a builtin's name)."""
        numbered = KERNEL_NUMBER.fullmatch(self.local)
        return f"k_{numbered.group(1)}" if numbered else self.local


@dataclass
class Split:
    host: str
    """The emitted module without its units."""
    units: dict[str, Unit]
    """By local name, each after the units it uses."""


def split(source: str) -> Split:
    """Cut an emitted module's `source` into its host code and its units."""
    tree = ast.parse(source)
    lines = source.splitlines()
    units: dict[str, Unit] = {}
    cut: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
            decorator_name(d) in COMPILED for d in node.decorator_list
        ):
            first = min(d.lineno for d in node.decorator_list)
            units[node.name] = Unit(node.name, "\n".join(lines[first - 1 : node.end_lineno]))
            cut.update(range(first - 1, node.end_lineno or first))
    definitions = module_globals(tree, lines)
    for unit in units.values():
        unit.uses = [n for n in reads(unit.code) if n in units and n != unit.local]
        unit.header = header(unit.code, definitions)
    host = "\n".join(line for i, line in enumerate(lines) if i not in cut)
    return Split(host, ordered(units))


def decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return target.id if isinstance(target, ast.Name) else ""


def names_in(node: ast.AST) -> list[ast.Name]:
    """The names that `node` reads."""
    return [n for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]


def reads(code: str) -> list[str]:
    """The names `code` reads, in order of first appearance."""
    loads = sorted((n.lineno, n.col_offset, n.id) for n in names_in(ast.parse(code)))
    return list(dict.fromkeys(name for *_, name in loads))


def module_globals(tree: ast.Module, lines: list[str]) -> dict[str, tuple[int, str, list[str]]]:
    """Each name that a top-level import or assignment of the module binds: where (imports
    first), the statement's source (an import of that name alone), and the names it reads."""
    found = {}
    for k, node in enumerate(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = (k, import_of(node, alias), [])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                found[alias.asname or alias.name] = (k, import_of(node, alias), [])
        elif isinstance(node, ast.Assign):
            code = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            uses = [n.id for n in names_in(node.value)]
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = (len(tree.body) + k, code, uses)
    return found


def import_of(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    """The statement `node` importing `alias` alone."""
    if isinstance(node, ast.Import):
        return ast.unparse(ast.Import(names=[alias]))
    return ast.unparse(ast.ImportFrom(module=node.module, names=[alias], level=node.level))


def header(code: str, definitions: Mapping[str, tuple[int, str, list[str]]]) -> str:
    """The imports and assignments of the module that `code` needs, directly or through another
    (`JIT` reads `FASTMATH`), in the module's order: a unit file holds only what it uses, so
    that a kernel's file is the same whichever model emits it."""
    wanted: set[str] = set()
    todo = [n for n in reads(code) if n in definitions]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [n for n in definitions[name][2] if n in definitions]
    statements = sorted({definitions[n][:2] for n in wanted})
    return "\n".join(source for _, source in statements)


def ordered(units: dict[str, Unit]) -> dict[str, Unit]:
    """`units` with each after those it uses."""
    done: dict[str, Unit] = {}

    def visit(unit: Unit) -> None:
        if unit.local not in done:
            for used in unit.uses:
                visit(units[used])
            done[unit.local] = unit

    for unit in units.values():
        visit(unit)
    return done


# --- the shared folder ----------------------------------------------------------------------

Listing = dict[str, list[Path]]
"""Numba's files in the kernel cache, by the unit they belong to."""


class KernelCache:
    """The folder of units under a compile cache's root."""

    def __init__(self, root: Path):
        self.folder = private_folder(root / "kernels")
        self.numba_folder = private_folder(self.folder / "__pycache__")
        self.loaded: dict[str, types.ModuleType] = {}
        self.recorded: dict[str, dict[str, str]] = {}
        """Per unit loaded here, the Numba files its manifest lists."""
        self.seen: tuple[int, int] | None = None
        self.next_look = 0.0
        atexit.register(self.record, now=True)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.folder.with_name("kernels.lock"))

    def store(self, parts: Split) -> dict[str, str]:
        """Write the units of `parts` that are not stored yet; per local name, the unit's
        reference: 'k_<sha>:function'."""
        refs: dict[str, str] = {}
        for unit in parts.units.values():
            text = unit_text(unit, {used: refs[used] for used in unit.uses})
            data = text.encode()
            key = "k_" + sha256(data)[:40]
            path = self.folder / f"{key}.py"
            if not (path.exists() and path.read_bytes() == data):  # missing, or damaged
                write_atomically(path, data)
            refs[unit.local] = f"{key}:{unit.name}"
        return refs

    def bind(self, module: types.ModuleType, refs: Mapping[str, str]) -> None:
        """Set each unit of `refs` (local name -> 'k_<sha>:function') as a global of
        `module`."""
        with self.lock():
            listing = self.numba_listing()
            self.bind_units(module, refs, listing)
            self.seen = folder_state(self.numba_folder)

    def bind_units(
        self, module: types.ModuleType, refs: Mapping[str, str], listing: Listing
    ) -> None:
        for local, ref in refs.items():
            key, name = ref.split(":", 1)
            setattr(module, local, getattr(self.load(key, listing), name))

    def load(self, key: str, listing: Listing) -> types.ModuleType:
        """Unit `key`, imported after the units it uses, once per process. Call locked."""
        if key in self.loaded:
            return self.loaded[key]
        path = self.folder / f"{key}.py"
        try:
            source = path.read_bytes()
        except OSError:
            source = b""
        if not re.fullmatch(r"k_[0-9a-f]{40}", key) or "k_" + sha256(source)[:40] != key:
            raise UnitMissing(key)
        self.recorded[key] = self.check_numba_files(key, listing.get(key, []))
        module = types.ModuleType(f"irnet_unit_{key}")
        module.__file__ = str(path)
        sys.modules[module.__name__] = module
        exec(compile(source, str(path), "exec"), module.__dict__)
        self.bind_units(module, module._USES, listing)
        self.loaded[key] = module
        return module

    def numba_listing(self) -> Listing:
        """Numba's files in the folder, by the unit they belong to."""
        found: dict[str, list[Path]] = {}
        for entry in os.scandir(self.numba_folder):
            if entry.name.endswith(NUMBA_FILES):
                found.setdefault(entry.name.split(".", 1)[0], []).append(Path(entry.path))
        return found

    def check_numba_files(self, key: str, files: list[Path]) -> dict[str, str]:
        """Delete those of unit `key`'s Numba `files` that its manifest does not list with their
        hash (Numba compiles them again); the manifest's entries."""
        try:
            listed = dict(json.loads(self.manifest(key).read_bytes()))
        except (OSError, ValueError, TypeError):
            listed = {}
        for file in files:
            if listed.get(file.name) != sha256(file.read_bytes()):
                file.unlink(missing_ok=True)
        return listed

    def manifest(self, key: str) -> Path:
        return self.folder / f"{key}.numba.json"

    def record(self, now: bool = False) -> None:
        """Add the Numba files written since the last look to the manifests of the units
        loaded here. A runner calls this after every run, so it looks at most once a second
        (a `stat` would be a fifth of a tiny step) unless `now`; a kernel compiled in between
        is recorded at the next look, or when the process exits."""
        if not now and time.monotonic() < self.next_look:
            return
        self.next_look = time.monotonic() + 1.0
        state = folder_state(self.numba_folder)
        if state == self.seen:
            return
        self.seen = state
        try:
            with self.lock():
                listing = self.numba_listing()
                for key, listed in self.recorded.items():
                    files = {f.name: sha256(f.read_bytes()) for f in listing.get(key, [])}
                    if files != listed:
                        write_atomically(self.manifest(key), json.dumps(files).encode())
                        self.recorded[key] = files
        except OSError:
            pass  # another process replaced a file meanwhile; the next load re-checks them


_OPEN: dict[Path, KernelCache] = {}


def kernel_cache(root: Path) -> KernelCache:
    """The kernel cache under compile cache `root`, one per process: a unit is loaded once,
    whichever models use it."""
    folder = root.resolve()
    if folder not in _OPEN:
        _OPEN[folder] = KernelCache(folder)
    return _OPEN[folder]


class UnitMissing(Exception):
    """A unit that a model's entry names is missing or does not match its name: the entry is
    rebuilt, which stores it again."""


def unit_text(unit: Unit, uses: Mapping[str, str]) -> str:
    """A unit's file: its header, the units it uses (local name -> 'k_<sha>:function'), its
    code."""
    code = unit.code
    if unit.name != unit.local:
        code = code.replace(f"def {unit.local}(", f"def {unit.name}(", 1)
    return "\n".join(
        [
            "# irnet kernel cache unit, named by the SHA-256 of this text (irnet.kernel_cache)",
            unit.header,
            "",
            f"_USES = {dict(uses)!r}",
            '"""The units this one calls: local name -> unit key and its function there."""',
            "",
            "",
            code,
            "",
        ]
    )
