"""The fixed parts of a module emitted by `emit_cpu`, as text: PRELUDE (host code: argument
checks, buffers, random draws, errors) and HELPERS, the hand-written `@njit` kernels for
convolution and pooling, which a module gets only when one of its kernels uses them.

The code is ordinary Python in `runtime/`: `host` (shared with the cuda target), `cpu_host`
and `cpu_kernels`. The emitted module imports only NumPy and Numba.
"""

from __future__ import annotations

import ast

from .runtime import text

IMPORTS = """
import math

import numpy as np
from numba import njit, prange
"""
"""The emitted module's imports: the prelude's and the generated kernels'."""


# Pooling: each kernel calls its body, inlined (Numba IR). An emitted module gets it specialised
# for each window it uses: the window as constants, so that LLVM unrolls the window loops (3-6x
# faster on 2x2), and only the branch that window takes, so that Numba compiles one body.

POOLING = ("_max_pool2d", "_max_pool2d_grad", "_avg_pool2d", "_avg_pool2d_grad")
"""The kernels whose last parameters are the window (`WINDOW`)."""
WINDOW = ("KH", "KW", "sh", "sw", "ph", "pw", "incl")
"""The window's parameters; `incl`, of the average pools only, says whether padded zeros count
in the divisor."""


def specialised(kernel: str, name: str, window: tuple[int, ...]) -> str:
    """The source of pooling `kernel` as kernel `name` for one window (values of `WINDOW`):
    without the window's parameters, which become literals, and with each top-level `if` on
    them replaced by the branch it takes."""
    fn = next(n for n in ast.parse(kernel).body if isinstance(n, ast.FunctionDef))
    values = dict(zip(WINDOW, window))
    fn.name = name
    fn.args.args = [a for a in fn.args.args if a.arg not in values]
    fn.body = taken(_Literals(values).visit(fn).body)
    return ast.unparse(fn)


class _Literals(ast.NodeTransformer):
    def __init__(self, values: dict[str, int]):
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and node.id in self.values:
            return ast.copy_location(ast.Constant(self.values[node.id]), node)
        return node


def taken(body: list[ast.stmt]) -> list[ast.stmt]:
    """`body` with each `if` whose test is made of literals replaced by the branch it takes."""
    out: list[ast.stmt] = []
    for statement in body:
        if isinstance(statement, ast.If) and not any(
            isinstance(n, ast.Name) for n in ast.walk(statement.test)
        ):
            test = eval(compile(ast.Expression(statement.test), "<window>", "eval"), {})
            out += taken(statement.body if test else statement.orelse)
        else:
            out.append(statement)
    return out


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
