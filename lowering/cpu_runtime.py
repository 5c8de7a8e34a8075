"""The fixed parts of a module emitted by `emit_cpu`, as text: PRELUDE (host code: argument
checks, buffers, random draws, errors) and HELPERS, the hand-written `@njit` kernels for
convolution and pooling, which a module gets only when one of its kernels uses them.

The code is ordinary Python in `runtime/`: `host` (shared with the cuda target), `cpu_host`
and `cpu_kernels`. The emitted module imports only NumPy and Numba.
"""

from __future__ import annotations

from .runtime import text

IMPORTS = """
import math

import numpy as np
from numba import njit, prange
"""
"""The emitted module's imports: the prelude's and the generated kernels'."""


# Pooling: each kernel calls its body, inlined (Numba IR); specialised, with the window as
# constants when it is one of COMMON_WINDOWS, so that LLVM unrolls the window loops (3-6x faster
# on 2x2).

COMMON_WINDOWS = ((2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 3, 2, 2, 0, 0), (3, 3, 1, 1, 1, 1))
"""(KH, KW, sh, sw, ph, pw) of the pooling windows with specialised code."""

WINDOW = "KH, KW, sh, sw, ph, pw"


def specialising(kernel: str) -> str:
    """The source `kernel`, whose last line calls its body with the window (`WINDOW`), with that
    call made with the window as literals when it is one of COMMON_WINDOWS."""
    head, call = kernel.rsplit("\n", 1)
    lines = [head]
    for k, common in enumerate(COMMON_WINDOWS):
        test = " and ".join(f"{v} == {c}" for v, c in zip(WINDOW.split(", "), common))
        lines += [f"    {'if' if k == 0 else 'elif'} {test}:"]
        lines += ["    " + call.replace(f"{WINDOW})", f"{', '.join(map(str, common))})")]
    lines += ["    else:", "    " + call]
    return "\n".join(lines)


SPECIALISED = ("_max_pool2d", "_max_pool2d_grad", "_avg_pool2d", "_avg_pool2d_grad")


def texts() -> dict[str, object]:
    """PRELUDE; HELPERS, the hand-written kernels by name; DEPENDS, the helpers that each helper
    uses (copied before it)."""
    helpers = text.helpers(text.read("cpu_kernels"), text.imports(IMPORTS))
    helpers.update({name: specialising(helpers[name]) for name in SPECIALISED})
    prelude = text.prelude(IMPORTS, "host", "cpu_host")
    return {"PRELUDE": prelude, "HELPERS": helpers, "DEPENDS": text.depends(helpers)}


__getattr__ = text.lazily(texts)
"""PRELUDE, HELPERS and DEPENDS, made on first use."""


SOURCES = ("runtime.text", "runtime.host", "runtime.cpu_host", "runtime.cpu_kernels")
"""The modules of `irnet.lowering`, besides this one, whose text makes PRELUDE and HELPERS."""
