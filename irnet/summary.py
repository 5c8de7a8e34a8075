"""What a model is, read back from its IR: signature and parameter table (`irnet check`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, FloatAttr, StringAttr, TensorType

from irnet.dialects.shapes import dtype_name, format_shape, format_type


@dataclass(frozen=True)
class Parameter:
    name: str
    type: TensorType
    init: str

    @property
    def count(self) -> int:
        return math.prod(self.type.get_shape())


def _attrs(function: func.FuncOp) -> list[dict]:
    if function.arg_attrs is None:
        return [{} for _ in function.args]
    return [dict(a.data) for a in function.arg_attrs.data]


def init_spelling(attrs: dict) -> str:
    name = attrs["nn.init"].data
    args = attrs.get("nn.init_args")
    if not isinstance(args, DictionaryAttr) or not args.data:
        return name
    values = ", ".join(
        f"{k}={v.value.data:g}" for k, v in args.data.items() if isinstance(v, FloatAttr)
    )
    return f"{name}({values})"


def parameters(function: func.FuncOp) -> list[Parameter]:
    """The function's parameter arguments, in order, by their dotted names."""
    return [
        Parameter(attrs["nn.param"].data, arg.type, init_spelling(attrs))  # type: ignore[arg-type]
        for arg, attrs in zip(function.args, _attrs(function))
        if isinstance(attrs.get("nn.param"), StringAttr)
    ]


def signature(function: func.FuncOp) -> str:
    """`name(x: f32[?, 784], y: i32[?]) -> f32[?, 10]`, without the parameters."""
    inputs = [
        f"{arg.name_hint or f'arg{i}'}: {format_type(arg.type)}"
        for i, (arg, attrs) in enumerate(zip(function.args, _attrs(function)))
        if "nn.param" not in attrs
    ]
    outputs = ", ".join(format_type(t) for t in function.function_type.outputs.data)
    return f"{function.sym_name.data}({', '.join(inputs)}) -> {outputs}"


def parameter_table(params: list[Parameter]) -> str:
    header = ("parameter", "shape", "dtype", "count", "initialiser")
    rows = [
        (
            p.name,
            format_shape(p.type.get_shape()),
            dtype_name(p.type.element_type),
            f"{p.count:,}",
            p.init,
        )
        for p in params
    ]
    total = sum(p.count for p in params)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {3}

    def line(cells) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    lines = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    tensors = f"{len(params)} tensor{'s' * (len(params) != 1)}"
    lines.append(f"total: {total:,} parameters in {tensors}")
    return "\n".join(lines)
