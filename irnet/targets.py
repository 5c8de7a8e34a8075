"""The targets a module runs on, behind one interface: `Runner`.

`make_runner(module, target)` is the one place a target name (`--target`) becomes a runner:

- `reference` interprets the IR with NumPy, op by op (`reference.Reference`);
- `cpu` runs it as Numba `@njit` code (`cpu.CpuRunner`);
- `cuda` runs it as Numba CUDA kernels, on a GPU or in Numba's simulator (`cuda.CudaRunner`);
- `auto` is `cpu` where Numba works on this machine and `reference` otherwise (`numba_problem`
  says why not, once, on stderr).

The commands that run code take `--target`, by default `IRNET_TARGET` or else `auto`
(`default_target`). Training, evaluation and the CLI see only the `Runner` protocol. A compiled
target's module is imported when it is asked for, so the reference target never imports Numba;
`auto` imports it when a runner is made, never at start-up.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from . import threads
from .diagnostics import IrnError
from .distributed import World

if TYPE_CHECKING:
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ModuleOp

Array = Any
"""A value as a runner holds it: a NumPy array, or a device array on the cuda target."""


@runtime_checkable
class Runner(Protocol):
    """Runs the public functions of one module."""

    runs_allreduce: bool
    """Whether `run` carries out a step's `dist.allreduce` itself, between the processes of
    its world. If not, a data-parallel step runs `@m.grad`, allreduces the loss and gradients
    between processes, then runs `@m.update`."""

    def run(
        self,
        function_name: str,
        args: Sequence[Array] | Mapping[str, Array],
        *,
        training: bool = False,
        step: int = 0,
        seed: int = 0,
        check_finite: bool = False,
    ) -> tuple[Array, ...]:
        """The results of `@function_name` on `args` (positional, or by argument name), each
        checked against its type. `training` is what `nn.training` returns; `seed` and `step`
        pick the stream of `nn.random_uniform`; `check_finite` stops at the first op that
        makes a NaN or an infinity and names its source line. Arguments may be NumPy arrays
        or what an earlier `run` returned; results stay where the runner keeps them."""
        ...

    def function(self, name: str) -> func.FuncOp:
        """The function `@name` of the module (the `@` is optional); an error naming the
        module's functions when there is none."""
        ...

    def to_host(self, value: Array) -> np.ndarray:
        """`value` (a result of `run`, or of `from_host`) as a NumPy array: what checkpoints,
        metrics and printing need. Copies it off the device on the cuda target."""
        ...

    def from_host(self, array: np.ndarray) -> Array:
        """`array` where `run` keeps its values, to be passed to `run` step after step:
        on the device for the cuda target, the array itself elsewhere."""
        ...


def _reference(module: ModuleOp, float_dtype: Any, source_name: str, world: World) -> Runner:
    from .reference import Reference

    return Reference(module, float_dtype=float_dtype, world=world)


def _cpu(module: ModuleOp, float_dtype: Any, source_name: str, world: World) -> Runner:
    from .cpu import CpuRunner

    return CpuRunner(module, float_dtype=float_dtype, source_name=source_name)


def _cuda(module: ModuleOp, float_dtype: Any, source_name: str, world: World) -> Runner:
    if world.size > 1:
        raise IrnError("--distributed runs on the reference or cpu target, not cuda")
    from .cuda import CudaRunner

    return CudaRunner(module, float_dtype=float_dtype, source_name=source_name)


RUNNERS: dict[str, Callable[[ModuleOp, Any, str, World], Runner]] = {
    "reference": _reference,
    "cpu": _cpu,
    "cuda": _cuda,
}
AUTO = "auto"
TARGETS = (AUTO, *RUNNERS)
"""The names `--target` takes."""
TARGET_ENV = "IRNET_TARGET"


def default_target(given: str | None = None, otherwise: str = AUTO) -> str:
    """The target a command runs on: `given` (its `--target`), else `IRNET_TARGET`, else
    `otherwise`."""
    if given is not None:
        return given
    named = os.environ.get(TARGET_ENV, "").strip()
    if not named:
        return otherwise
    if named not in TARGETS:
        raise IrnError(
            f"{TARGET_ENV}={named}: unknown target; the targets are {', '.join(TARGETS)}"
        )
    return named


def resolve(target: str) -> str:
    """The runner `target` names: `auto` becomes `cpu` or `reference`, others stay."""
    if target != AUTO:
        return target
    problem = numba_problem()
    if problem is None:
        return "cpu"
    report_fallback(problem)
    return "reference"


@functools.cache
def report_fallback(problem: str) -> None:
    """Say once per process why `auto` runs on the reference target."""
    print(
        f"irnet: --target auto runs on the reference target (NumPy): {problem}",
        file=sys.stderr,
        flush=True,
    )


@functools.cache
def numba_problem() -> str | None:
    """Why the cpu target cannot run on this machine, or None when it can; checked once per
    process, in a few milliseconds after Numba's import.

    Importing Numba also checks that its NumPy and llvmlite fit it; SciPy must be there for
    the BLAS that compiled matmuls call; and LLVM must compile a function to machine code and
    run it, which fails where LLVM does not load or the system forbids executable memory.
    A whole `@njit` compile would check more but costs 0.3 s, a third of a cached start."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0").strip() not in ("", "0"):
        return "NUMBA_DISABLE_JIT is set"
    try:
        import numba  # noqa: F401
    except Exception as e:  # ImportError, or an OSError from a broken llvmlite
        return f"Numba does not import ({type(e).__name__}: {e})"
    if importlib.util.find_spec("scipy") is None:
        return "SciPy is not installed (compiled matmuls call its BLAS)"
    try:
        jit_probe()
    except Exception as e:
        return f"LLVM cannot compile and run code here ({type(e).__name__}: {e})"
    return None


PROBE_IR = """
define i64 @add_one(i64 %x) {
  %y = add i64 %x, 1
  ret i64 %y
}
"""


def jit_probe() -> None:
    """Compile `PROBE_IR` to machine code in memory and call it, as Numba's JIT does."""
    import ctypes

    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    machine = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(PROBE_IR), machine)
    engine.finalize_object()
    add_one = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(
        engine.get_function_address("add_one")
    )
    if add_one(41) != 42:
        raise RuntimeError("the probe function computed a wrong result")


def make_runner(
    module: ModuleOp,
    target: str = "reference",
    *,
    float_dtype: Any = None,
    source_name: str = "",
    world: World | None = None,
) -> Runner:
    """The runner of `module` (after `driver.PIPELINE`) on `target`, one of `TARGETS`, with
    the thread pools sized for it (`threads.size_pools`).

    `float_dtype=np.float64` computes every float in float64; `source_name` is the file the
    module came from (compiled targets key their cache by it); `world` is the processes of a
    data-parallel job. The cuda target refuses, saying what to do, where neither a GPU nor
    Numba's simulator is there."""
    target = resolve(target)
    make = RUNNERS.get(target)
    if make is None:
        raise IrnError(f"unknown target '{target}'; the targets are {', '.join(TARGETS)}")
    threads.size_pools(target)
    return make(module, float_dtype, source_name, world or World())


EMITTERS = {"cpu": "irnet.cpu", "cuda": "irnet.cuda"}
"""The targets that `irnet compile` writes a module for, and where each one's `compile_file`
lives."""


def compile_file(args: argparse.Namespace) -> None:
    """`irnet compile FILE --target cpu|cuda`: the module the target emits."""
    importlib.import_module(EMITTERS[args.target]).compile_file(args)
