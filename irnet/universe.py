"""irnet's plug-in for xDSL's tools (entry point `xdsl.universe`): with irnet installed, stock
`xdsl-opt examples/mnist_mlp.irn -p inline-functions,canonicalize,cse,dce,autodiff -t numba-cpu`
parses `.irn` files, knows irnet's dialects and passes, and writes the Numba module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.universe import Universe
from xdsl.utils.exceptions import DiagnosticException
from xdsl.utils.frontend import Frontend
from xdsl.utils.target import Target

from . import driver
from .diagnostics import IrnError


@dataclass(frozen=True)
class IrnFrontend(Frontend):
    """Reads `.irn` source through irnet's frontend."""

    name = "irn"

    def parse(self, ctx: Context, input: IO[bytes], input_name: str) -> ModuleOp:
        text = input.read().decode("utf-8", errors="replace")
        try:
            return driver.compile_source(text, input_name, Path(input_name)).module
        except IrnError as e:
            raise DiagnosticException(str(e)) from None


@dataclass(frozen=True)
class NumbaCpuTarget(Target):
    """Writes the cpu target's Python module (what `irnet compile --target cpu` writes) for IR
    whose derivative requests are expanded (after `autodiff`)."""

    name = "numba-cpu"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from irnet.lowering.emit_cpu import emit_module

        self.write(emit_module, module, output)

    @staticmethod
    def write(emit_module, module: ModuleOp, output: IO[str]) -> None:
        from .cpu import lower

        try:
            emitted = emit_module(lower(module))
            errors = [e.error for e in emitted.entries.values() if e.error is not None]
            if errors:
                raise errors[0]
        except IrnError as e:
            raise DiagnosticException(str(e)) from None
        output.write(emitted.source)


@dataclass(frozen=True)
class NumbaCudaTarget(Target):
    """Writes the cuda target's Python module (what `irnet compile --target cuda` writes)."""

    name = "numba-cuda"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from irnet.lowering.emit_cuda import emit_module

        NumbaCpuTarget.write(emit_module, module, output)


def _nn_dialect():
    from irnet.dialects.nn import NN

    return NN


def _ad_dialect():
    from irnet.dialects.ad import AD

    return AD


def _dist_dialect():
    from irnet.dialects.dist import DIST

    return DIST


def _kernel_dialect():
    from irnet.dialects.kernel import KERNEL

    return KERNEL


IRNET_UNIVERSE = Universe(
    all_dialects={
        "nn": _nn_dialect,
        "ad": _ad_dialect,
        "dist": _dist_dialect,
        "kernel": _kernel_dialect,
    },
    all_targets={"numba-cpu": lambda: NumbaCpuTarget, "numba-cuda": lambda: NumbaCudaTarget},
    all_passes={name: driver.PASSES[name] for name in driver.IRNET_PASSES},
    all_frontends={"irn": lambda: IrnFrontend},
)
