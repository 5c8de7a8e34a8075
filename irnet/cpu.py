"""The `cpu` target: IR -> `fuse-elementwise`, `plan-memory` -> a Python module of Numba kernels
(`lowering/emit_cpu.py`), cached on disk and imported; `CpuRunner` runs its entry points as a
`targets.Runner`, the interface of the reference interpreter, so the trainer can use either.

The compile cache lives in `$IRNET_CACHE_DIR` (default `$XDG_CACHE_HOME/irnet`, else
`~/.cache/irnet`), one folder per key: `cpu/<key>/model_cpu.py`, the module's host code (checks,
buffers, entry points). Its compiled functions live in the machine-wide kernel cache beside it
(`irnet.kernel_cache`: one file per function, named by its content, shared by every model that
emits it, with Numba's cache of its machine code). The key hashes the IR before lowering
without source locations (a moved file, a comment or a blank line finds the same entry; errors
take their locations from the current IR), the target and its options, the text of the packages
that define the ops and lower and emit them (`GENERATOR`), and the versions of irnet, the
emitter, Python, NumPy, Numba and llvmlite; so a second run of the same model neither lowers
nor emits: it imports the same file and loads its kernels' machine code instead of compiling.

Code in the cache runs in the user's process, so an entry is trusted only as far as it is the
user's own and intact. Every folder irnet makes there is created mode 0700, and a cache folder
that another user owns or can write is refused (`cache_files.private_folder`). Each entry has a
manifest, written last and atomically, holding its key and the SHA-256 of the module (and, for
a target that keeps its kernels in the module, of Numba's `.nbi`/`.nbc` files); a load checks it
before running anything, executes exactly the bytes it hashed (never a `.pyc`), rebuilds an
entry whose module or manifest does not match, and deletes Numba files the manifest does not
list, which Numba then compiles again. Numba writes those files lazily, at each kernel's first
call, so a runner adds them to the manifest after the `run` that wrote them. A lock file beside
each entry serialises checking and writing it between processes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import os
import platform
import shutil
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.printer import Printer

from irnet.dialects.dtypes import numpy_dtype
from irnet.lowering.emit_cpu import EMITTER_VERSION, CpuOptions, EmittedModule, emit_module

from . import driver, reference
from .cache_files import (
    cache_root,
    folder_state,
    locked,
    private_folder,
    sha256,
    write_atomically,
)
from .diagnostics import IrnError, error_at
from .kernel_cache import KernelCache, UnitMissing, kernel_cache, split
from .version import __version__

PARALLEL_ENV = "IRNET_CPU_PARALLEL"
LOWERING = ("fuse-elementwise", "plan-memory")
"""The passes after `driver.PIPELINE` that the cpu target runs before emission."""

ArrayLike = Any


def default_parallel() -> bool:
    """Parallel loops pay with four cores or more; `IRNET_CPU_PARALLEL=0/1` decides."""
    setting = os.environ.get(PARALLEL_ENV)
    if setting is not None:
        return setting.strip().lower() not in ("", "0", "false", "no")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores >= 4


def versions() -> dict[str, str]:
    import llvmlite
    import numba

    return {
        "irnet": __version__,
        "emit_cpu": EMITTER_VERSION,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "machine": platform.machine(),
    }


def print_ir(module: ModuleOp) -> str:
    """`module`'s text without source locations: the cache key's part, so that a moved file,
    a comment or a blank line finds the same entry (errors take their locations from the
    current IR, never from the cached code)."""
    out = io.StringIO()
    Printer(out, print_debuginfo=False).print_op(module)
    return out.getvalue()


def lower(module: ModuleOp) -> ModuleOp:
    """A copy of `module` (after `driver.PIPELINE`) through the cpu target's passes."""
    lowered = module.clone()
    driver.run_passes(lowered, ",".join(LOWERING))
    return lowered


GENERATOR = ("irnet.dialects", "irnet.lowering")
"""The packages whose code turns IR into a target's file: the ops' traits and scalar formulas,
the passes, emitters and runtime helpers. The cache key is taken before lowering, so it hashes
the text of every module in them: an edit to any makes a new entry."""


@dataclass(frozen=True)
class Target:
    """What a compiled target emits, and the cache folder and module names it uses."""

    name: str
    emit: Callable[..., EmittedModule]
    """`emit(lowered, options, source_name)`: the module's source."""
    shared_kernels: bool = False
    """Whether its compiled functions go to the machine-wide `KernelCache`, shared by every
    model, rather than staying in the model's module."""


CPU = Target("cpu", emit_module, shared_kernels=True)


@functools.cache
def generator_digest() -> str:
    digest = hashlib.sha256()
    for package in GENERATOR:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations
        for folder in spec.submodule_search_locations:
            for path in sorted(Path(folder).rglob("*.py")):
                digest.update(str(path.relative_to(folder)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(ir_text: str, options: CpuOptions, target: Target = CPU) -> str:
    """The key of the module emitted from IR `ir_text` (`print_ir`, before lowering)."""
    blob = json.dumps(
        {
            "target": target.name,
            "options": options.key(),
            "versions": versions(),
            "generator": generator_digest(),
            "ir": ir_text,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


MANIFEST = "manifest.json"
NUMBA_FILES = (".nbi", ".nbc")
"""Numba's cache of compiled kernels: an index and the machine code, both pickled."""


@dataclass
class CacheEntry:
    """One folder of the compile cache: the emitted module, Numba's cache of its kernels in
    `__pycache__`, and `manifest.json` with the hashes of both, always written last."""

    folder: Path
    key: str
    filename: str
    module_hash: str = ""
    seen: tuple[int, int] | None = None
    """`__pycache__`'s modification time and size when its files were last hashed."""
    next_look: float = 0.0
    """When `record_kernels` next looks at `__pycache__` (`time.monotonic()`)."""

    @property
    def path(self) -> Path:
        return self.folder / self.filename

    @property
    def numba_folder(self) -> Path:
        return self.folder / "__pycache__"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        # beside the folder, not in it: a damaged entry is deleted while the lock is held
        return locked(self.folder.with_name(f"{self.folder.name}.lock"))

    def verified_source(self) -> bytes | None:
        """The module's bytes if they match the manifest, else None, with the entry deleted
        (it is rebuilt). Numba files the manifest does not list, or lists with another hash,
        are deleted. Call with the lock held."""
        if not self.folder.exists():
            return None
        private_folder(self.folder)
        try:
            manifest = json.loads((self.folder / MANIFEST).read_bytes())
            source = self.path.read_bytes()
            intact = manifest["key"] == self.key and manifest["module"] == sha256(source)
            kernels = dict(manifest["kernels"])
        except (OSError, ValueError, KeyError, TypeError):
            intact = False
        if not intact:
            if self.path.exists():
                print(f"irnet: rebuilding the damaged compile cache entry {self.folder}",
                      file=sys.stderr)  # fmt: skip
            shutil.rmtree(self.folder)
            return None
        private_folder(self.numba_folder)
        for file in self.numba_folder.iterdir():
            if file.suffix in NUMBA_FILES and kernels.get(file.name) != sha256(file.read_bytes()):
                file.unlink(missing_ok=True)
        self.module_hash = manifest["module"]
        self.seen = folder_state(self.numba_folder)
        return source

    def write(self, source: bytes) -> None:
        """Write a fresh entry for `source`. Call with the lock held."""
        private_folder(self.folder)
        # made here, mode 0700, so that Numba does not make it with the umask's mode
        private_folder(self.numba_folder)
        write_atomically(self.path, source)
        self.module_hash = sha256(source)
        self.write_manifest({})
        self.seen = folder_state(self.numba_folder)

    def write_manifest(self, kernels: dict[str, str]) -> None:
        manifest = {"key": self.key, "module": self.module_hash, "kernels": kernels}
        write_atomically(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())

    def record_kernels(self) -> None:
        """Add the Numba files written since the last look to the manifest. A runner calls this
        after every run, so it looks at most once a second (a `stat` would be a fifth of a tiny
        step): a kernel compiled in between is recorded at the next look, or, if the process
        ends first, found unlisted at the next load and compiled again."""
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + 1.0
        state = folder_state(self.numba_folder)
        if state == self.seen:
            return
        self.seen = state
        try:
            kernels = {
                file.name: sha256(file.read_bytes())
                for file in sorted(self.numba_folder.iterdir())
                if file.suffix in NUMBA_FILES
            }
            self.write_manifest(kernels)
        except OSError:
            pass  # another process replaced a file meanwhile; the next load re-checks them


@dataclass
class CompiledCpu:
    """An emitted module, imported: `module.FUNCTIONS[name](*args)` runs a function."""

    module: types.ModuleType
    emitted: EmittedModule
    lowered: ModuleOp
    path: Path
    key: str
    created: bool
    """Whether this call wrote the module (a cold cache entry)."""
    entry: CacheEntry
    kernels: KernelCache | None = None
    """Where its compiled functions are, if the target shares them between models."""

    def record(self) -> None:
        """Hash the Numba files that the last run wrote into the manifests."""
        self.entry.record_kernels()
        if self.kernels is not None:
            self.kernels.record()


class CachedCpu(CompiledCpu):
    """A module found in the cache, imported without lowering or emitting anything; `lowered`
    and `emitted` (the sites that errors map back to) are computed when first asked for."""

    def __init__(
        self,
        module: types.ModuleType,
        entry: CacheEntry,
        kernels: KernelCache | None,
        source: ModuleOp,
        emit: Callable[[ModuleOp], EmittedModule],
    ):
        self.module, self.entry, self.kernels, self.created = module, entry, kernels, False
        self.path, self.key = entry.path, entry.key
        self.source, self.emit = source, emit

    @functools.cached_property
    def lowered(self) -> ModuleOp:  # type: ignore[override]
        return lower(self.source)

    @functools.cached_property
    def emitted(self) -> EmittedModule:  # type: ignore[override]
        return self.emit(self.lowered)


_LOADED: dict[str, types.ModuleType] = {}


def load_module(
    path: Path, name: str, source: bytes | None = None, kernels: KernelCache | None = None
) -> types.ModuleType:
    """Import the emitted file `path` as module `name` (once per process), running `source`
    (the file's bytes, as already verified) if given, with the compiled functions its `UNITS`
    names from `kernels`. Never reads or writes a `.pyc`: the code run is the code checked."""
    if name in _LOADED:
        return _LOADED[name]
    if source is None:
        source = path.read_bytes()
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)
    if kernels is not None:
        kernels.bind(module, module.UNITS)
    _LOADED[name] = module
    return module


def compile_module(
    module: ModuleOp,
    options: CpuOptions | None = None,
    *,
    source_name: str = "",
    cache: Path | None = None,
    target: Target = CPU,
) -> CompiledCpu:
    """Import `module` (after `driver.PIPELINE`) from the disk cache, or lower, emit, write
    and import it. `source_name` names the `.irn` file in a module that is not cached by
    content (`target.shared_kernels` false)."""
    options = options or CpuOptions(parallel=default_parallel())
    key = cache_key(print_ir(module), options, target)
    root = cache or cache_root()
    name = f"irnet_{target.name}_{key[:32]}"
    # a module shared by every copy of the model names no file
    shown_name = "" if target.shared_kernels else source_name

    def emit(lowered: ModuleOp) -> EmittedModule:
        return target.emit(lowered, options, shown_name)

    try:
        private_folder(root)
        kernels = kernel_cache(root) if target.shared_kernels else None
        entry = CacheEntry(
            private_folder(root / target.name) / key[:32], key, f"model_{target.name}.py"
        )
        for rebuild in (False, True):
            with entry.lock():
                source = None if rebuild else entry.verified_source()
                created = source is None
                if created:
                    lowered = lower(module)
                    emitted = emit(lowered)
                    source = host_source(emitted.source, kernels)
                    entry.write(source)
            try:
                loaded = load_module(entry.path, name, source, kernels)
                break
            except UnitMissing as e:
                print(f"irnet: rebuilding the compile cache entry {entry.folder}: {e}",
                      file=sys.stderr)  # fmt: skip
    except OSError as e:
        raise IrnError(f"cannot use the compile cache {root}: {e.strerror or e}") from None
    if not created:
        return CachedCpu(loaded, entry, kernels, module, emit)
    return CompiledCpu(loaded, emitted, lowered, entry.path, key, True, entry, kernels)


def host_source(source: str, kernels: KernelCache | None) -> bytes:
    """What a cache entry holds of an emitted module: all of it, or, with a kernel cache, the
    host code, with its compiled functions stored in the kernel cache and named in `UNITS`."""
    if kernels is None:
        return source.encode()
    parts = split(source)
    refs = kernels.store(parts)
    table = "\n".join(f"    {local!r}: {ref!r}," for local, ref in refs.items())
    return (
        f"{parts.host.rstrip()}\n\n\n"
        "# The compiled functions, from the kernel cache (irnet.kernel_cache):\n"
        f"UNITS = {{\n{table}\n}}\n"
    ).encode()


def compile_stats(module: types.ModuleType) -> dict[str, int]:
    """Numba's cache hits and misses (compilations) over the module's kernels so far."""
    from numba.core.dispatcher import Dispatcher

    hits = misses = 0
    for value in vars(module).values():
        if isinstance(value, Dispatcher):
            hits += sum(value.stats.cache_hits.values())
            misses += sum(value.stats.cache_misses.values())
    return {"cache_hits": hits, "compiled": misses}


class CpuRunner:
    """Runs functions of one module on the cpu target, a `targets.Runner`.

    `float_dtype=np.float64` computes every float in float64 (as the reference's option);
    `parallel` turns on parallel loops (default: `default_parallel()`); `cache` overrides the
    cache folder. Kernels compile on their first call (or load from the cache)."""

    target = CPU
    runs_allreduce = False
    """The compiled steps hold no collectives: a data-parallel trainer reduces between
    `@m.grad` and `@m.update`."""

    def __init__(
        self,
        module: ModuleOp,
        *,
        float_dtype: ArrayLike = None,
        parallel: bool | None = None,
        cache: Path | str | None = None,
        source_name: str = "",
    ):
        self.reference = reference.Reference(module, float_dtype=float_dtype)
        self.module = module
        self.float_dtype = self.reference.float_dtype
        options = CpuOptions(
            float_dtype=self.float_dtype.name if self.float_dtype is not None else None,
            parallel=default_parallel() if parallel is None else bool(parallel),
        )
        self.options = options
        self.compiled = compile_module(
            module,
            options,
            source_name=source_name,
            cache=Path(cache) if cache else None,
            target=self.target,
        )
        self._signatures: dict[str, tuple[func.FuncOp, list[tuple[np.dtype, tuple]]]] = {}
        self._entries: dict[str, tuple[func.FuncOp, list, str, Callable]] = {}

    def function(self, name: str) -> func.FuncOp:
        return self.signature(name)[0]

    def signature(self, name: str) -> tuple[func.FuncOp, list[tuple[np.dtype, tuple]]]:
        """The function, and the dtype and shape (-1 for `?`) of each argument."""
        if name not in self._signatures:
            fn = self.reference.function(name)
            types = []
            for arg in fn.args:
                t = arg.type
                if not isinstance(t, TensorType):
                    types = []
                    break
                dtype = numpy_dtype(t, self.float_dtype)
                types.append((dtype, tuple(t.get_shape())))
            self._signatures[name] = (fn, types)
        return self._signatures[name]

    def run(
        self,
        function_name: str,
        args: Sequence[ArrayLike] | Mapping[str, ArrayLike],
        *,
        training: bool = False,
        step: int = 0,
        seed: int = 0,
        check_finite: bool = False,
    ) -> tuple[np.ndarray, ...]:
        """The results of `@function_name` on `args` (positional, or by argument name), as
        `Reference.run`: `training` is what `nn.training` returns, `seed` and `step` pick the
        stream of `nn.random_uniform`, `check_finite` stops at the first kernel that makes a
        NaN or an infinity and names the op (and its source line) that made it."""
        fn, types, name, entry = self.entry(function_name)
        kernels = self.compiled.module
        # No np.errstate: the kernels are Numba code, which NumPy's error state does not
        # reach, and the entry points do no NumPy arithmetic that could warn.
        training, step, seed, check = bool(training), int(step), int(seed), bool(check_finite)
        try:
            if type(args) in (list, tuple) and len(args) == len(types) and types:
                try:  # the entry point checks its arguments itself
                    return entry(*args, training=training, step=step, seed=seed,
                                 check_finite=check)  # fmt: skip
                except kernels.ArgumentError:
                    pass  # converted by the reference's rules, or a located error, below
            values = self.reference.arguments(fn, args)
            return entry(*values, training=training, step=step, seed=seed, check_finite=check)
        except kernels.NonFiniteError as e:
            raise self.blame(e, training, step, seed) from None
        except kernels.KernelError as e:
            site = self.compiled.emitted.sites[e.site]
            ops = [o for o in site.ops if o.name != "nn.constant"] or [site.op]
            raise error_at(f"{ops[-1].name}: {e.message}", ops[-1].location) from None
        except NotImplementedError:  # the stub of a function that could not be compiled
            error = self.compiled.emitted.entries[name].error
            if error is None:
                raise
            raise error from None
        finally:
            # kernels compiled by this call wrote their Numba files: hash them into the manifest
            self.compiled.record()

    def entry(self, function_name: str) -> tuple[func.FuncOp, list, str, Callable]:
        """The function, its argument types, its symbol and its entry point (looked up once:
        `run` is called every step)."""
        found = self._entries.get(function_name)
        if found is None:
            fn, types = self.signature(function_name)
            name = fn.sym_name.data
            entry = self.compiled.module.FUNCTIONS.get(name)
            if entry is None:
                raise IrnError(f"@{name} is private; the cpu target compiles public functions only")
            found = self._entries[function_name] = (fn, types, name, entry)
        return found

    def blame(self, e: Any, training: bool, step: int, seed: int) -> IrnError:
        """The first op of the kernel whose value is not finite, found by running the kernel's
        ops one by one with the reference's NumPy implementations on the kernel's inputs."""
        site = self.compiled.emitted.sites[e.site]
        message = f"produced {e.kind} (stopped by --detect-anomaly)"
        blamed = site.outputs[e.output].owner
        functions = reference.NNFunctions(self.float_dtype, bool(training), int(seed), int(step))
        impls = dict(reference.NNFunctions._impls())
        values = dict(zip(site.inputs, e.inputs))
        try:
            with np.errstate(all="ignore"):
                for op in site.ops:
                    if type(op) not in impls:
                        continue
                    args = tuple(values[v] for v in op.operands)
                    done = impls[type(op)](functions, None, op, args)  # type: ignore[arg-type]
                    results = tuple(getattr(done, "values", done))
                    values.update(zip(op.results, results))
                    floats = [r for r in results if r.dtype.kind == "f"]
                    if any(not np.all(np.isfinite(r)) for r in floats):
                        kind = "NaN" if any(np.isnan(r).any() for r in floats) else "an infinity"
                        return error_at(
                            f"{op.name}: produced {kind} (stopped by --detect-anomaly)",
                            op.location,
                        )
        except (IrnError, KeyError, ValueError):
            pass
        return error_at(f"{blamed.name}: {message}", blamed.location)

    def to_host(self, value: ArrayLike) -> np.ndarray:
        return np.asarray(value)

    def from_host(self, array: np.ndarray) -> ArrayLike:
        return array

    def stats(self) -> dict[str, int]:
        return compile_stats(self.compiled.module)


# --- the CLI's `compile` and `run --target cpu` ------------------------------------------------


def compile_file(args: argparse.Namespace, target: Target = CPU) -> None:
    """`irnet compile FILE --target cpu [-o OUT]`: the emitted module, to a file or stdout."""
    compiled = driver.load(args.file, float64=args.f64)
    driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
    lowered = lower(compiled.module)
    parallel = default_parallel() if args.parallel is None else args.parallel
    options = CpuOptions(parallel=parallel)
    emitted = target.emit(lowered, options, args.file)
    errors = [e.error for e in emitted.entries.values() if e.error is not None]
    if errors:
        raise errors[0]
    if args.output:
        Path(args.output).write_text(emitted.source, encoding="utf-8")
        kernels = len({site.kernel for site in emitted.sites} - {"reshape", "_uniform"})
        print(
            f"wrote {args.output}: {len(emitted.entries)} entry points, {kernels} kernels, "
            f"{len(emitted.sites)} kernel calls"
        )
    else:
        sys.stdout.write(emitted.source)
