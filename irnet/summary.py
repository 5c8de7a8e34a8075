"""What a model is, read back from its IR: signature, parameter and state tables (`irnet
check`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, FloatAttr, StringAttr, TensorType

from irnet.dialects.shapes import dtype_name, format_shape, format_type

from .params import caller_results


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


def parameters(function: func.FuncOp, kind: str = "param") -> list[Parameter]:
    """The function's parameter arguments (or, for `kind` "state", its state tensors), in
    order, by their dotted names."""
    role = f"nn.{kind}"
    return [
        Parameter(attrs[role].data, arg.type, init_spelling(attrs))  # type: ignore[arg-type]
        for arg, attrs in zip(function.args, _attrs(function))
        if isinstance(attrs.get(role), StringAttr)
    ]


def signature(function: func.FuncOp) -> str:
    """`name(x: f32[?, 784], y: i32[?]) -> f32[?, 10]`, without the parameters and state."""
    inputs = [
        f"{arg.name_hint or f'arg{i}'}: {format_type(arg.type)}"
        for i, (arg, attrs) in enumerate(zip(function.args, _attrs(function)))
        if "nn.param" not in attrs and "nn.state" not in attrs
    ]
    types = function.function_type.outputs.data
    outputs = ", ".join(format_type(types[i]) for i in caller_results(function))
    return f"{function.sym_name.data}({', '.join(inputs)}) -> {outputs}"


def model_tables(function: func.FuncOp) -> str:
    """The parameter table, then the state table where the model has state."""
    tables = [parameter_table(parameters(function))]
    state = parameters(function, "state")
    if state:
        tables.append(parameter_table(state, "state"))
    return "\n".join(tables)


def parameter_table(params: list[Parameter], kind: str = "parameter") -> str:
    header = (kind, "shape", "dtype", "count", "initialiser")
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
    noun = "parameters" if kind == "parameter" else "values of state"
    lines.append(f"total: {total:,} {noun} in {tensors}")
    return "\n".join(lines)
