"""The stages of compiling a file for a target, by name: what `irnet dump` prints.

A target's stages are the frontend, each pass of its pipeline (`driver.TARGET_PIPELINES`),
and, for a compiled target, the kernels its emitter writes:

    reference  frontend, inline-functions, canonicalize, cse, dce, autodiff
    cpu        frontend, ..., autodiff, fuse-elementwise, plan-memory, emit-cpu, kernels
    cuda       frontend, ..., autodiff, fuse-elementwise, plan-memory, emit-cuda, kernels

A pass's stage is the IR after it, named as `irnet opt -p` names the pass. `frontend` is the
IR the frontend builds. `kernels` is the kernel IR of a compiled target: the Python module of
Numba kernels that `irnet compile` writes. The IR after `emit-cpu` is the IR after
`plan-memory` with each op marked by the kernel it became (`cpu.kernel`); the marks do not
change what the emitter writes, so `kernels` is emitted from it.
A pipeline given with `-p` has the same stages: the frontend, its passes, and the kernels
when its last pass is an emitter.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp

from . import driver
from .diagnostics import IrnError

FRONTEND = "frontend"
KERNELS = "kernels"
EMITTERS = {"emit-cpu": "irnet.cpu:CPU", "emit-cuda": "irnet.cuda:CUDA"}
"""Each emit pass, and the `cpu.Target` whose module the `kernels` stage after it prints."""
DEFAULT_STAGE = driver.PIPELINE[-1]
"""What `irnet dump` prints without a stage flag or `-p`: the IR every target starts from."""


@dataclass(frozen=True)
class Stages:
    """The passes of one `irnet dump`, in xDSL's spec syntax, and the names of its stages."""

    passes: tuple[str, ...]
    names: tuple[str, ...]
    origin: str
    """Whose stages they are, for messages: `--target cpu`, `-p PIPELINE`."""

    @classmethod
    def of(cls, target: str, pipeline: str | None = None) -> Stages:
        """The stages of `target`, or of `pipeline` (xDSL's syntax) when it is given."""
        if pipeline is None:
            spec, origin = ",".join(driver.TARGET_PIPELINES[target]), f"--target {target}"
        else:
            spec, origin = pipeline, f"-p '{pipeline}'"
        passes = driver.pipeline(spec).passes if spec else ()
        names = [p.name for p in passes]
        kernels = [KERNELS] if names and names[-1] in EMITTERS else []
        specs = tuple(str(p.pipeline_pass_spec()) for p in passes)
        return cls(specs, (FRONTEND, *names, *kernels), origin)

    def index(self, name: str, flag: str, first: int = 0) -> int:
        """Where stage `name` is, counting from `first`; an error listing the stages there
        are otherwise."""
        if name in self.names[first:]:
            return self.names.index(name, first)
        if name in self.names:
            raise IrnError(f"{flag} {name}: no stage comes before {name}")
        known = ", ".join(self.names[first:]) or "none"
        raise IrnError(f"{flag} {name}: no such stage; the stages of {self.origin} are {known}")

    def run(
        self, module: ModuleOp, source_name: str, last: int
    ) -> Iterator[tuple[str, ModuleOp | str]]:
        """Run the stages up to index `last`, yielding each one's name and result: `module`
        itself, changed in place (print it before asking for the next stage), or the kernels'
        source."""
        yield FRONTEND, module
        for spec, name in zip(self.passes, self.names[1 : last + 1]):
            driver.run_passes(module, spec)
            yield name, module
        if last == len(self.names) - 1 and self.names[last] == KERNELS:
            yield KERNELS, kernel_source(module, self.names[-2], source_name)


def kernel_source(module: ModuleOp, emitter: str, source_name: str) -> str:
    """The module that `irnet compile` writes for `module` (the IR after the emit pass
    `emitter`), with the same options."""
    from irnet.lowering.emit_cpu import CpuOptions

    from .cpu import default_parallel

    path, _, name = EMITTERS[emitter].partition(":")
    target = getattr(importlib.import_module(path), name)
    emitted = target.emit(module, CpuOptions(parallel=default_parallel()), source_name)
    for entry in emitted.entries.values():
        if entry.error is not None:  # as `irnet compile` does
            raise entry.error
    return emitted.source


def header(name: str) -> str:
    """The line `--print-ir-after-all` prints above stage `name`."""
    if name == KERNELS:
        return "// -----// kernels: the Numba module `irnet compile` writes //----- //"
    return f"// -----// IR after {name} //----- //"
