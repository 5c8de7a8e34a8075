"""`@__repl__`, one input compiled into a function: the builder whose arguments are the session
values and REPL-builtin tensors the input uses, and what compiling an input hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, SymbolRefAttr, TensorType
from xdsl.ir import SSAValue

from irnet import ast
from irnet.dialects.ad import GradRequestOp
from irnet.dialects.dtypes import BY_NUMPY
from irnet.function_builder import FunctionBuilder
from irnet.irgen import IRGen

REPL_SYMBOL = "__repl__"


def tensor_type(array: np.ndarray) -> TensorType:
    """The IR type of an array: its dtype and its exact shape."""
    return TensorType(BY_NUMPY[array.dtype].element_type, array.shape)


@dataclass
class PromptBuilder(FunctionBuilder):
    """The body of `func.func @__repl__`: one input being compiled. Session variables and the
    tensors REPL builtins make become its arguments, with their values beside them."""

    rng: np.random.Generator | None = None
    values: dict[SSAValue, np.ndarray] = field(default_factory=dict)

    def input(self, name: str, array: np.ndarray, loc: ast.Loc) -> SSAValue:
        """A new argument of `@__repl__` holding `array`."""
        arg = self.add_argument(name, tensor_type(array), loc, {"nn.input": StringAttr(name)})
        self.values[arg] = array
        return arg

    def lift(self, name: str, value: Any, loc: ast.Loc) -> Any:
        """A session value as compiled code sees it: each array becomes an argument."""
        if isinstance(value, np.ndarray):
            return self.input(name, value, loc)
        if isinstance(value, tuple | list):
            return type(value)(self.lift(f"{name}_{i}", v, loc) for i, v in enumerate(value))
        return value


@dataclass
class Compiled:
    """An input compiled into a module, before any pass: `@__repl__` and what it calls, and
    the values of `@__repl__`'s arguments."""

    module: ModuleOp
    function: func.FuncOp
    args: list[np.ndarray]


def tensors_in(value: Any) -> list[SSAValue]:
    """The tensors of a compiled value, in order (a tuple or list may hold several)."""
    if isinstance(value, SSAValue):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in tensors_in(v)]
    return []


def substitute(value: Any, arrays: dict[SSAValue, np.ndarray]) -> Any:
    """`value` with each tensor replaced by its computed array."""
    if isinstance(value, SSAValue):
        return arrays[value]
    if isinstance(value, tuple | list):
        return type(value)(substitute(v, arrays) for v in value)
    return value


def model_parameters(gen: IRGen, function: func.FuncOp) -> dict[SSAValue, tuple[str, str]]:
    """The arguments of `function` that are parameters of a model it calls (or asks the
    gradient of), each as (model symbol, the parameter's name in that model)."""
    specs = {spec.symbol: spec for spec in gen.models.values()}
    owned = {}
    for op in function.body.walk():
        callee = getattr(op, "callee", None)
        spec = specs.get(callee.string_value()) if isinstance(callee, SymbolRefAttr) else None
        if spec is None:
            continue
        operands = op.args if isinstance(op, GradRequestOp) else op.operands
        inputs = len(gen.functions[spec.symbol].args) - len(spec.params)
        for value, param in zip(operands[inputs:], spec.params):
            owned[value] = (spec.symbol, param.name)
    return owned
