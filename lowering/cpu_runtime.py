"""The fixed parts of a module emitted by `emit_cpu`, as text: PRELUDE (host code: argument
checks, buffers, random draws, errors) and HELPERS, the hand-written `@njit` kernels for
convolution and pooling, which a module gets only when one of its kernels uses them.

The code is ordinary Python in `runtime/`: `host` (shared with the cuda target), `cpu_host`
and `cpu_kernels`. The emitted module imports only NumPy and Numba.
"""

from __future__ import annotations

import re

from .runtime import text

IMPORTS = """
import math

import numpy as np
from numba import njit, prange
"""
"""The emitted module's imports: the prelude's and the generated kernels'."""


# Pooling: each kernel calls its body, inlined (Numba IR). An emitted module gets it specialised
# for each window it uses, with the window as constants, so that LLVM unrolls the window loops
# (3-6x faster on 2x2) and Numba compiles the body once per window actually used.

POOLING = ("_max_pool2d", "_max_pool2d_grad", "_avg_pool2d", "_avg_pool2d_grad")
"""The kernels whose last line calls their body with the window (`WINDOW`)."""
WINDOW = "KH, KW, sh, sw, ph, pw"


def specialised(kernel: str, name: str, window: tuple[int, ...]) -> str:
    """The source of pooling `kernel` as kernel `name` for one window (values of `WINDOW`):
    without the window's parameters, and calling its body with the window as literals."""
    head, call = kernel.rsplit("\n", 1)
    head = re.sub(r"def \w+\((.*), " + WINDOW + r"\):", rf"def {name}(\1):", head, count=1)
    return head + "\n" + call.replace(f"{WINDOW})", f"{', '.join(map(str, window))})")


def texts() -> dict[str, object]:
    """PRELUDE; HELPERS, the hand-written kernels by name; DEPENDS, the helpers that each helper
    uses (copied before it)."""
    helpers = text.helpers(text.read("cpu_kernels"), text.imports(IMPORTS))
    prelude = text.prelude(IMPORTS, "host", "cpu_host")
    return {"PRELUDE": prelude, "HELPERS": helpers, "DEPENDS": text.depends(helpers)}


__getattr__ = text.lazily(texts)
"""PRELUDE, HELPERS and DEPENDS, made on first use."""


SOURCES = ("runtime.text", "runtime.host", "runtime.cpu_host", "runtime.cpu_kernels")
"""The modules of `irnet.lowering`, besides this one, whose text makes PRELUDE and HELPERS."""
