"""The fixed parts of a module emitted by `emit_cuda`, as text: PRELUDE (host code: device
arrays, launch configurations, argument checks, random draws, errors) and HELPERS, the
hand-written `@cuda.jit` kernels for matrix products inside convolutions, im2col, pooling and
fills, with the host functions that launch them, which a module gets only when it uses them.

The code is ordinary Python in `runtime/`: `host` (shared with the cpu target), `cuda_host` and
`cuda_kernels`. The emitted module imports only NumPy and Numba. A helper whose name ends in
`_k` is a kernel; the others run on the host and launch kernels.
"""

from __future__ import annotations

from .runtime import text

IMPORTS = """
import math

import numpy as np
from numba import config as _numba_config
from numba import cuda
"""
"""The emitted module's imports: the prelude's and the generated kernels'."""


def texts() -> dict[str, object]:
    """PRELUDE; HELPERS, the hand-written kernels and their host launchers by name; DEPENDS, the
    helpers that each helper uses (copied before it). `SIGNATURES` gives the argument types of
    each kernel (`{f}`: the float type)."""
    helpers = text.helpers(text.read("cuda_kernels"), text.imports(IMPORTS))
    prelude = text.prelude(IMPORTS, "host", "cuda_host")
    return {"PRELUDE": prelude, "HELPERS": helpers, "DEPENDS": text.depends(helpers)}


__getattr__ = text.lazily(texts)
"""PRELUDE, HELPERS and DEPENDS, made on first use."""


SOURCES = ("runtime.text", "runtime.host", "runtime.cuda_host", "runtime.cuda_kernels")
"""The modules of `irnet.lowering`, besides this one, whose text makes PRELUDE and HELPERS."""

_WINDOW = ("int64",) * 6
SIGNATURES: dict[str, tuple[str, ...]] = {
    "_matmul_k": ("{f}[:, ::1]", "{f}[:, ::1]", "{f}[:, ::1]", "boolean", "boolean"),
    "_im2col_k": ("{f}[:, :, :, ::1]", *("int64",) * 12, "{f}[:, ::1]"),
    "_col2im_k": ("{f}[:, ::1]", *("int64",) * 12, "{f}[:, :, :, ::1]"),
    "_nchw_k": ("{f}[:, ::1]", "int64", "{f}[:, :, ::1]"),
    "_gather_grad_k": ("{f}[:, :, ::1]", "int64", "{f}[:, ::1]"),
    "_max_pool2d_k": ("{f}[:, :, :, ::1]", "{f}[:, :, :, ::1]", *_WINDOW),
    "_max_pool2d_grad_k": ("{f}[:, :, :, ::1]",) * 3 + _WINDOW,
    "_avg_pool2d_k": ("{f}[:, :, :, ::1]", "{f}[:, :, :, ::1]", *_WINDOW, "int64"),
    "_avg_pool2d_grad_k": ("{f}[:, :, :, ::1]", "{f}[:, :, :, ::1]", *_WINDOW, "int64"),
    "_fill_k": ("{f}[::1]", "int64"),
}
"""The argument types of the hand-written kernels (and of the prelude's `_fill_k`, which a
helper calling `_fill` launches), for compiling them ahead of time (PTX)."""
