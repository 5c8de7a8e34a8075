"""The compiler driver: load a `.irn` or `.mlir` file into IR, and run named passes over it.

`PASSES` is the one registry of passes; the CLI, `xdsl-opt` (through `irnet.universe`) and the
tests all draw from it. `PIPELINE` is the default order, and `TARGET_PIPELINES` what each
target runs; `irnet dump --after NAME` prints any of their stages (`irnet/stages.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.dialects.func import Func
from xdsl.passes import ModulePass, PassPipeline
from xdsl.transforms.canonicalize import CanonicalizePass
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination
from xdsl.transforms.dead_code_elimination import DeadCodeElimination
from xdsl.utils.exceptions import ArgSpecParseError, ParseError, VerifyException

from irnet.dialects.ad import AD
from irnet.dialects.dist import DIST
from irnet.dialects.kernel import KERNEL
from irnet.dialects.nn import NN
from irnet.lowering.autodiff import AutodiffPass
from irnet.lowering.emit_cpu import EmitCpuPass
from irnet.lowering.emit_cuda import EmitCudaPass
from irnet.lowering.fusion import FuseElementwisePass
from irnet.lowering.inline import InlineFunctionsPass
from irnet.lowering.memplan import PlanMemoryPass

from . import train_ir
from .diagnostics import IrnError, read_source, remember_source
from .imports import LoadedModule, Program
from .irgen import IRGen
from .train_config import TrainConfig

PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "inline-functions": lambda: InlineFunctionsPass,
    "autodiff": lambda: AutodiffPass,
    "canonicalize": lambda: CanonicalizePass,
    "cse": lambda: CommonSubexpressionElimination,
    "dce": lambda: DeadCodeElimination,
    "fuse-elementwise": lambda: FuseElementwisePass,
    "plan-memory": lambda: PlanMemoryPass,
    "emit-cpu": lambda: EmitCpuPass,
    "emit-cuda": lambda: EmitCudaPass,
}

PIPELINE = ("inline-functions", "canonicalize", "cse", "dce", "autodiff")
"""The target-independent passes, which every target runs after the frontend; `irnet dump`
prints the IR after them unless asked for another stage."""

CPU_PIPELINE = (*PIPELINE, "fuse-elementwise", "plan-memory", "emit-cpu")
"""What the CPU target (`irnet/cpu.py`) runs: the default pipeline, then the lowering passes
(`irnet dump FILE --after fuse-elementwise` prints a stage; `irnet/stages.py`)."""

CUDA_PIPELINE = (*PIPELINE, "fuse-elementwise", "plan-memory", "emit-cuda")
"""What the cuda target (`irnet/cuda.py`) runs: the cpu target's lowering, its own emitter."""

TARGET_PIPELINES = {"reference": PIPELINE, "cpu": CPU_PIPELINE, "cuda": CUDA_PIPELINE}
"""Each target's passes, which `irnet dump --target NAME` shows stage by stage."""

IRNET_PASSES = (
    "inline-functions",
    "autodiff",
    "fuse-elementwise",
    "plan-memory",
    "emit-cpu",
    "emit-cuda",
)
"""The passes irnet defines (the others are xDSL's), registered with `xdsl-opt`."""


def context() -> Context:
    ctx = Context()
    for dialect in (Builtin, Func, NN, AD, DIST, KERNEL):
        ctx.load_dialect(dialect)
    return ctx


@dataclass
class Compiled:
    """The frontend's output: verified IR, the main file's AST, the settings of its train
    blocks by model, and the text of every source file (for checkpoints' source hash)."""

    module: ModuleOp
    source: LoadedModule | None = None
    trains: dict[str, TrainConfig] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    path: Path | None = None
    """The file, as the caller named it: data paths in train blocks resolve beside it."""


def compile_source(
    text: str,
    name: str,
    path: Path | None = None,
    overrides: dict | None = None,
    distributed: bool = False,
    float64: bool = False,
) -> Compiled:
    """Frontend: `.irn` text to verified IR. `overrides` are command-line train settings;
    `distributed` makes each training step reduce its gradients across processes; `float64`
    builds every `f32` of the program as `f64` (`--f64`: a float64 computation, literals
    and optimiser constants included)."""
    program = Program()
    main = program.load_text(text, name, (path or Path(name)).resolve())
    gen = IRGen(program, main, float64)
    gen.generate()
    trains = train_ir.generate(gen, overrides, distributed)
    gen.module_op.verify()
    sources = [m.text for m in program.modules.values()]
    return Compiled(gen.module_op, main, trains, sources, path or Path(name))


def load(
    path: str | Path,
    overrides: dict | None = None,
    distributed: bool = False,
    float64: bool = False,
) -> Compiled:
    """A `.irn` file through the frontend (see `compile_source`), or a `.mlir` file through
    xDSL's parser."""
    path = Path(path)
    text = read_source(path)
    if path.suffix == ".mlir":
        return Compiled(parse_mlir(text, str(path)))
    return compile_source(text, str(path), path, overrides, distributed, float64)


def parse_mlir(text: str, name: str) -> ModuleOp:
    from xdsl.parser import Parser

    remember_source(name, text)
    try:
        module = Parser(context(), text, name).parse_module()
        module.verify()
    except ParseError as e:
        raise IrnError(str(e).strip()) from None
    except VerifyException as e:
        raise IrnError(f"{name}: invalid IR: {e}") from None
    return module


def pipeline(spec: str, callback=None) -> PassPipeline:
    try:
        return PassPipeline.parse_spec(PASSES, spec, callback)
    except (ValueError, ArgSpecParseError) as e:  # the latter is not an Exception
        known = ", ".join(PASSES)
        raise IrnError(f"bad pass pipeline '{spec}': {e} (known passes: {known})") from None


def run_passes(
    module: ModuleOp, spec: str, callback=None, verify_each: bool | None = None
) -> ModuleOp:
    """Apply a pipeline in xDSL's pass-spec syntax (`a,b{opt=1}`), then verify the result.

    With `verify_each` (default: the environment's `IRNET_VERIFY_EACH=1`, as the tests set it;
    `irnet opt` always) the IR is verified after every pass, so that an error names the pass
    that broke it. Otherwise once at the end: verifying after each of the five passes was half
    the passes' time (0.05-0.1 s of a command's start)."""
    if verify_each is None:
        verify_each = os.environ.get("IRNET_VERIFY_EACH", "") not in ("", "0")

    def verify(after: str) -> None:
        try:
            module.verify()
        except VerifyException as e:
            hint = "" if verify_each else " (IRNET_VERIFY_EACH=1 names the pass)"
            raise IrnError(f"the IR after {after} does not verify{hint}: {e}") from None

    def verify_then(prev, mod, nxt):
        if prev is not None and verify_each:
            verify(f"pass '{prev.name}'")
        if callback is not None:
            callback(prev, mod, nxt)

    if spec:
        pipeline(spec, verify_then).apply(context(), module)
        if not verify_each:
            verify(f"the passes '{spec}'")
    elif callback is not None:
        callback(None, module, None)
    return module
