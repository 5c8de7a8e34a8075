"""The targets a module runs on, behind one interface: `Runner`.

`make_runner(module, target)` is the one place a target name (`--target`) becomes a runner:

- `reference` interprets the IR with NumPy, op by op (`reference.Reference`);
- `cpu` runs it as Numba `@njit` code (`cpu.CpuRunner`);
- `cuda` runs it as Numba CUDA kernels, on a GPU or in Numba's simulator (`cuda.CudaRunner`).

Training, evaluation and the CLI see only the `Runner` protocol. A compiled target's module is
imported when it is asked for, so the reference target never imports Numba.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

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
TARGETS = tuple(RUNNERS)
"""The names `--target` takes."""


def make_runner(
    module: ModuleOp,
    target: str = "reference",
    *,
    float_dtype: Any = None,
    source_name: str = "",
    world: World | None = None,
) -> Runner:
    """The runner of `module` (after `driver.PIPELINE`) on `target`, one of `TARGETS`.

    `float_dtype=np.float64` computes every float in float64; `source_name` is the file the
    module came from (compiled targets key their cache by it); `world` is the processes of a
    data-parallel job. The cuda target refuses, saying what to do, where neither a GPU nor
    Numba's simulator is there."""
    make = RUNNERS.get(target)
    if make is None:
        raise IrnError(f"unknown target '{target}'; the targets are {', '.join(TARGETS)}")
    return make(module, float_dtype, source_name, world or World())


EMITTERS = {"cpu": "irnet.cpu", "cuda": "irnet.cuda"}
"""The targets that `irnet compile` writes a module for, and where each one's `compile_file`
lives."""


def compile_file(args: argparse.Namespace) -> None:
    """`irnet compile FILE --target cpu|cuda`: the module the target emits."""
    importlib.import_module(EMITTERS[args.target]).compile_file(args)
