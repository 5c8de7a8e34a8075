"""A function's arguments as the runtime sees them: inputs, targets and parameters (read from
the `nn.input` / `nn.target` / `nn.param` argument attributes), and parameter initialisation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, FloatAttr, StringAttr, TensorType

from irnet.dialects.dtypes import numpy_dtype
from irnet.dialects.shapes import DYN

from .diagnostics import IrnError
from .initializers import initialize

ROLES = ("param", "grad", "state", "opt", "hyper", "target", "input")
"""The `nn.<role>` argument attributes, in the order they are looked for."""
INITIALISED = ("param", "state")
"""The roles whose arguments carry an initialiser (`nn.init`): the model's own tensors."""


@dataclass(frozen=True)
class Argument:
    name: str
    kind: str
    """One of ROLES."""
    type: TensorType
    init: str | None = None
    init_args: dict[str, float] | None = None

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == DYN else d for d in self.type.get_shape())


def arguments(function: func.FuncOp) -> list[Argument]:
    attrs = [dict(a.data) for a in function.arg_attrs.data] if function.arg_attrs else []
    attrs += [{}] * (len(function.args) - len(attrs))
    result = []
    for i, (arg, a) in enumerate(zip(function.args, attrs)):
        kind = next((r for r in ROLES if f"nn.{r}" in a), "input")
        label = a.get(f"nn.{kind}")
        name = label.data if isinstance(label, StringAttr) else arg.name_hint or f"arg{i}"
        if kind in INITIALISED:
            init_args = a.get("nn.init_args")
            kwargs = (
                {k: v.value.data for k, v in init_args.data.items() if isinstance(v, FloatAttr)}
                if isinstance(init_args, DictionaryAttr)
                else {}
            )
            result.append(Argument(name, kind, arg.type, a["nn.init"].data, kwargs))
        else:
            result.append(Argument(name, kind, arg.type))
    return result


def initial_parameters(
    function: func.FuncOp, seed: int, kind: str = "param"
) -> dict[str, np.ndarray]:
    """Every parameter (or, for `kind` "state", state tensor) drawn from its initialiser. Each
    has its own random stream, seeded by `seed` and its name, so adding a layer leaves the
    others' values unchanged."""
    values = {}
    for arg in arguments(function):
        if arg.kind != kind:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(arg.name.encode())])
        shape = tuple(arg.type.get_shape())
        values[arg.name] = initialize(arg.init, shape, numpy_dtype(arg.type), rng, arg.init_args)
    return values


def result_roles(function: func.FuncOp) -> list[tuple[str, str] | None]:
    """Each result's role and name, from its `nn.<role>` result attribute (a state tensor's
    next value, a parameter's update, a gradient), or None for a plain result."""
    attrs = [dict(a.data) for a in function.res_attrs.data] if function.res_attrs else []
    attrs += [{}] * (len(function.function_type.outputs.data) - len(attrs))
    roles: list[tuple[str, str] | None] = []
    for a in attrs:
        kind = next((r for r in ROLES if f"nn.{r}" in a), None)
        label = a.get(f"nn.{kind}")
        roles.append((kind, label.data) if kind and isinstance(label, StringAttr) else None)
    return roles


def caller_results(function: func.FuncOp) -> list[int]:
    """The positions of the results a caller gets: all but the state's next values, which only
    training keeps."""
    roles = result_roles(function)
    return [i for i, role in enumerate(roles) if role is None or role[0] != "state"]


def find_function(module, name: str) -> func.FuncOp:
    functions = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
    if name not in functions:
        public = [n for n, f in functions.items() if f.sym_visibility is None]
        raise IrnError(f"no function '{name}'; this file defines {', '.join(public) or 'none'}")
    return functions[name]
