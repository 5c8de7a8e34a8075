"""How the REPL shows things: the `Output`s an answer is made of, and values, types and
signatures in `.irn` spelling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.ir import SSAValue

from irnet import ast
from irnet.dialects.dtypes import BY_NUMPY
from irnet.dialects.shapes import format_shape
from irnet.dialects.shapes import format_type as ir_type
from irnet.function_builder import DTypeValue, describe
from irnet.imports import FunctionRef
from irnet.irgen import type_spelling


@dataclass(frozen=True)
class Output:
    """One piece of an answer. `kind` tells the terminal how to show it: `text`, `value`,
    `error`, `ir` (xDSL IR) or `python` (emitted source)."""

    text: str
    kind: str = "text"


def type_name(array: np.ndarray) -> str:
    """`f32[2, 3]`."""
    return BY_NUMPY[array.dtype].name + format_shape(array.shape)


def format_value(value: Any) -> str:
    """A value as the REPL prints it: tensors as `f32[2, 3]` and NumPy's printout (with four
    digits, as PyTorch prints), compile-time values in `.irn` spelling."""
    if isinstance(value, np.ndarray):
        body = np.array2string(
            value, precision=4, suppress_small=True, threshold=200, edgeitems=3, max_line_width=96
        )
        return f"{type_name(value)} {body}" if value.ndim == 0 else f"{type_name(value)}\n{body}"
    if isinstance(value, tuple) or (
        isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value)
    ):
        return "\n".join(f"[{i}] {format_value(v)}" for i, v in enumerate(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, DTypeValue):
        return value.name
    if isinstance(value, FunctionRef):
        return header(value.fn)
    return describe(value)


def static_type(value: Any) -> str:
    """What `:type` says of a compiled value: `f32[3, 4]` for a tensor, a tuple of those, or
    the compile-time value itself."""
    if isinstance(value, SSAValue):
        return ir_type(value.type)
    if isinstance(value, tuple | list) and any(isinstance(v, SSAValue) for v in value):
        inner = ", ".join(static_type(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{type(value).__name__} {value!r}"
    return format_value(value)


def header(fn: ast.Function) -> str:
    """`def dense(x: F[..., I], units: int) -> F[..., units]`, spelt from the source."""

    def spell(t: ast.ArgType) -> str:
        if isinstance(t, ast.TensorTypeExpr):
            return type_spelling(t) if t.dims else t.dtype  # `-> f32`, as written
        return f"[{t.kind}]" if isinstance(t, ast.ListTypeExpr) else t.kind

    args = ", ".join(f"{a.name}: {spell(a.type)}" for a in fn.args)
    result = f" -> {spell(fn.result)}" if fn.result is not None else ""
    return f"{fn.kind} {fn.name}({args}){result}"


def what(value: Any) -> str:
    """A value in words, for messages: `a tensor f32[3]`, `the function 'f'`."""
    return f"a tensor {type_name(value)}" if isinstance(value, np.ndarray) else describe(value)
