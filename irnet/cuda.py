"""The `cuda` target: IR -> the cpu target's passes (`fuse-elementwise`, `plan-memory`) -> a
Python module of Numba CUDA kernels (`lowering/emit_cuda.py`), cached on disk beside the cpu
target's modules (`$IRNET_CACHE_DIR/cuda/<key>/model_cuda.py`) and imported.

`CudaRunner` is a `targets.Runner` whose `run` returns device arrays, which stay on the GPU: a
trainer that feeds a step's new parameters and optimiser state back into the next step never
copies them to the host (`to_host` does, when a checkpoint needs them). Without a
GPU, Numba's simulator (`NUMBA_ENABLE_CUDASIM=1`, set before Numba is imported) runs the same
kernels on the CPU; without either, `CudaRunner` refuses with a clear message.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from irnet.lowering.emit_cuda import emit_module

from . import cpu
from .cpu import CpuRunner, Target, load_module
from .diagnostics import IrnError

SIMULATOR_ENV = "NUMBA_ENABLE_CUDASIM"


def device_problem() -> str | None:
    """Why the cuda target cannot run here, or None when a GPU or the simulator is there."""
    try:
        from numba import config, cuda
    except ImportError as e:  # pragma: no cover - numba is a dependency
        return f"cannot import numba.cuda ({e})"
    if config.ENABLE_CUDASIM:
        return None
    if os.environ.get(SIMULATOR_ENV, "0") not in ("", "0"):
        return f"{SIMULATOR_ENV} was set after Numba was imported"
    try:
        if cuda.is_available():
            return None
    except Exception:  # noqa: BLE001 - a broken driver is reported as no GPU
        pass
    return (
        "the cuda target needs an NVIDIA GPU with a working driver, and none is usable here; "
        f"set {SIMULATOR_ENV}=1 to run its kernels in Numba's CUDA simulator (slowly, on the "
        "CPU), or use --target cpu"
    )


def simulated() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def require_device() -> None:
    problem = device_problem()
    if problem is not None:
        raise IrnError(problem)


CUDA = Target("cuda", emit_module)


class CudaRunner(CpuRunner):
    """Runs functions of one module on the GPU (or the simulator), a `targets.Runner` whose
    `run` returns device arrays."""

    target = CUDA

    def __init__(
        self,
        module: ModuleOp,
        *,
        float_dtype: Any = None,
        cache: Path | str | None = None,
        source_name: str = "",
    ):
        require_device()
        if simulated():
            # the simulator runs each CUDA thread as a Python thread, and its barriers wait
            # on the interpreter's thread switches: switching every 0.1 ms, not every 5 ms,
            # runs the kernels about ten times faster
            sys.setswitchinterval(min(sys.getswitchinterval(), 1e-4))
        super().__init__(
            module, float_dtype=float_dtype, parallel=False, cache=cache, source_name=source_name
        )

    def to_host(self, value: Any) -> np.ndarray:
        return value.copy_to_host() if hasattr(value, "copy_to_host") else np.asarray(value)

    def from_host(self, array: np.ndarray) -> Any:
        from numba import cuda

        return cuda.to_device(np.asarray(array, order="C"))  # 0-d arrays stay 0-d


def ptx(path: Path, cc: tuple[int, int] = (9, 0)) -> dict[str, str]:
    """Every kernel of the emitted module at `path` compiled to PTX for compute capability
    `cc`, by the argument types in its SIGNATURES table. Needs the CUDA toolkit's NVVM, not a
    GPU; not in the simulator, which compiles nothing."""
    from numba import config, cuda

    if config.ENABLE_CUDASIM:
        raise IrnError(f"PTX needs Numba's real CUDA target: unset {SIMULATOR_ENV}")
    module = load_module(path, f"irnet_ptx_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}")
    compiled = {}
    for name, signatures in module.SIGNATURES.items():
        for k, signature in enumerate(signatures):
            kernel = getattr(module, name).py_func
            try:
                text, _ = cuda.compile_ptx(kernel, f"void({', '.join(signature)})", cc=cc)
            except Exception as e:  # noqa: BLE001 - a toolkit or typing failure, named
                raise IrnError(f"{path}: kernel {name} does not compile to PTX: {e}") from None
            compiled[name if k == 0 else f"{name}.{k}"] = text
    return compiled


def write_ptx(module_path: Path, folder: Path, cc: tuple[int, int]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    kernels = ptx(module_path, cc)
    for name, text in kernels.items():
        (folder / f"{name}.ptx").write_text(text, encoding="utf-8")
    return len(kernels)


def compile_file(args: argparse.Namespace) -> None:
    """`irnet compile FILE --target cuda [-o OUT] [--ptx DIR]`: the emitted module, and each
    of its kernels as PTX. Needs no GPU: the module is written, not run."""
    cpu.compile_file(args, CUDA)
    if args.ptx:
        if not args.output:
            raise IrnError("--ptx needs -o (the module whose kernels it compiles)")
        cc = compute_capability(args.cc)
        count = write_ptx(Path(args.output), Path(args.ptx), cc)
        print(f"wrote {count} kernels as PTX for sm_{cc[0]}{cc[1]} to {args.ptx}")


def compute_capability(text: str) -> tuple[int, int]:
    """`"9.0"` -> (9, 0)."""
    major, _, minor = text.partition(".")
    if not (major.isdigit() and (minor or "0").isdigit()):
        raise IrnError(f"--cc {text}: give a compute capability such as 9.0 (H100) or 8.0")
    return int(major), int(minor or 0)
