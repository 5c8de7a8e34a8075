"""`irnet warmup`: compile kernels ahead, into the kernel cache (`irnet.kernel_cache`), so that a
model's first step loads most of its kernels instead of compiling them.

Kernels take their sizes from their arguments, and every model made of the same layer chains
(a dense layer with relu, cross-entropy, an Adam update, a 5x5 convolution, 2x2 max pooling)
emits the same ones, whatever its sizes. The programs in `irnet/warmup/` are small models of the
common chains, each trained with each optimiser; warming up runs every public function of each
(training step, evaluation, prediction) once on the cpu target, on small random inputs, which
compiles and caches all their kernels. `./scripts/setup` runs it once per machine; a model made
of other chains compiles its own kernels at its first step, and they are cached for the next.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

from . import driver
from .diagnostics import IrnError
from .dialects.dtypes import numpy_dtype
from .dialects.shapes import DYN

PROGRAMS = Path(__file__).parent / "warmup"
BATCH = 3
"""The size of every `?` dimension in the inputs: any works, the kernels take it at run time."""


@dataclass
class Warmed:
    file: str
    compiled: int
    loaded: int
    seconds: float


def programs() -> list[Path]:
    """The warm-up programs shipped with irnet."""
    return sorted(PROGRAMS.glob("*.irn"))


def warm_up(files: Iterable[str | Path]) -> Iterator[Warmed]:
    """Compile every public function of each `.irn` file in `files` on the cpu target and run
    it once; per file, how many kernels compiled and how many the cache already had."""
    from .cpu import CpuRunner

    for file in files:
        start = time.perf_counter()
        module = driver.load(file).module
        driver.run_passes(module, ",".join(driver.PIPELINE))
        runner = CpuRunner(module, source_name=str(file))
        for fn in public_functions(module):
            runner.run(fn.sym_name.data, example_inputs(fn), training=True)
        stats = runner.stats()
        yield Warmed(str(file), stats["compiled"], stats["cache_hits"], time.perf_counter() - start)


def public_functions(module: ModuleOp) -> list[func.FuncOp]:
    return [
        op
        for op in module.ops
        if isinstance(op, func.FuncOp) and op.sym_visibility is None and op.body.blocks
    ]


def example_inputs(fn: func.FuncOp) -> list[np.ndarray]:
    """Small arguments of `fn`'s types: random floats, zeros for integers (valid labels and
    indices), `BATCH` for each `?` dimension."""
    rng = np.random.default_rng(0)
    inputs = []
    for arg in fn.args:
        if not isinstance(arg.type, TensorType):
            raise IrnError(f"@{fn.sym_name.data}: argument type {arg.type} is not a tensor")
        shape = tuple(BATCH if d == DYN else d for d in arg.type.get_shape())
        dtype = numpy_dtype(arg.type)
        if dtype.kind == "f":
            inputs.append(rng.normal(0, 0.5, shape).astype(dtype))
        else:
            inputs.append(np.zeros(shape, dtype))
    return inputs
