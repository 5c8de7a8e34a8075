"""Building one function's body: `FunctionBuilder`, and the compile-time values a body computes
with besides tensors (dtypes, run-time dims, gradient functions).

The builtins and subscripts build ops through a `FunctionBuilder`, and `irgen` drives them all
from the AST. This module sits below the three, so that each imports it and it imports none of
them: the builder reaches the module generator only through the `ModuleGenerator` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from xdsl.dialects.builtin import (
    DictionaryAttr,
    FileLineColLoc,
    FloatAttr,
    IntAttr,
    StringAttr,
    TensorType,
    f32,
    f64,
    i1,
    i32,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue

from irnet.dialects import dtypes, nn
from irnet.dialects.shapes import DYN, ShapeError, dtype_name, format_type

from . import ast
from .diagnostics import IrnError
from .imports import FunctionRef, LoadedModule

DTYPES: dict[str, Attribute] = {d.name: d.element_type for d in dtypes.DTYPES}
"""The element type of each dtype name a type or a `dtype=` argument may spell."""


def _largest(dtype: np.dtype) -> float | int:
    return float(np.finfo(dtype).max) if dtype.kind == "f" else int(np.iinfo(dtype).max)


CONSTANT_LIMITS = {d.name: _largest(d.numpy) for d in dtypes.DTYPES if d.numpy.kind in "fi"}
"""The largest magnitude a literal may have in each numeric dtype."""

AUTO_SEEDS = 1_000_000
"""Seeds irnet picks for `random_uniform` start here, away from the small ones people choose."""


def location(loc: ast.Loc) -> FileLineColLoc:
    return FileLineColLoc(StringAttr(loc.file), IntAttr(loc.line), IntAttr(loc.column))


@dataclass(frozen=True)
class DTypeValue:
    name: str


@dataclass(frozen=True)
class RuntimeDim:
    """A dimension known only at run time (a symbolic dim bound to `?`), or arithmetic on one.
    It may size a reshape but has no compile-time value."""

    spelling: str


@dataclass
class ParamInfo:
    """A trainable parameter (or, with `kind` "state", a model state tensor) as a function
    sees it: its path relative to that function."""

    name: str
    type: TensorType
    init: str
    init_args: dict[str, float]
    loc: ast.Loc
    kind: str = "param"


@dataclass(frozen=True)
class GradFn:
    """`grad(f, wrt=...)`: a function whose call requests f's gradients (an `ad` op)."""

    function: FunctionRef
    wrt: Any
    with_value: bool


class ModuleGenerator(Protocol):
    """What a function body asks of the generator of the whole module (`irgen.IRGen`): seeds
    unique in the module, and the functions its calls reach. A protocol, because the generator
    imports the builtins, which import this module."""

    seed_counter: int
    float64: bool
    """Build every `f32` of the program as `f64` (`--f64`)."""

    def call(
        self, fb: FunctionBuilder, ref: FunctionRef, node: ast.Call, args: list, keywords: list
    ) -> SSAValue: ...

    def derivative(
        self, fb: FunctionBuilder, grad: GradFn, node: ast.Call, args: list, keywords: list
    ) -> Any: ...

    def instantiate(
        self, fb: FunctionBuilder, ref: FunctionRef, loc: ast.Loc, args: list, keywords: list
    ) -> tuple[Any, list[SSAValue], list[str]]:
        """The function a call of `ref` specialises to (its symbol, result type and state),
        the call's operands, and the names of the state it updates."""
        ...


@dataclass
class FunctionBuilder:
    """Builds one function body: its block, its names, its dims and its parameters."""

    gen: ModuleGenerator
    module: LoadedModule
    block: Block = field(default_factory=Block)
    env: dict[str, Any] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    dim_sources: dict[str, tuple[int, int]] = field(default_factory=dict)
    """For each dim bound to a run-time size (`?`), the index of the argument whose type bound
    it and the axis: what sizes a tensor built to a shape that names the dim (`zeros([N, 4])`)."""
    params: list[ParamInfo] = field(default_factory=list)
    param_args: dict[str, SSAValue] = field(default_factory=dict)
    arg_attrs: list[dict[str, Attribute]] = field(default_factory=list)
    instance_counts: dict[str, int] = field(default_factory=dict)
    shares_params_of: str | None = None
    """In a train block's loss, the model whose parameters are this function's own."""
    instance_prefix: str = ""
    """Prefix of the parameters of the layers this function calls (`loss.` in a loss)."""
    model_outputs: list[SSAValue] = field(default_factory=list)
    """In a loss, the results of its calls of the model it trains."""
    state_values: dict[str, SSAValue] = field(default_factory=dict)
    """Each state tensor's value so far: its argument, until an assignment to it (or a call
    that updates it) gives the next one. The last is the function's result for it."""
    own_states: set[str] = field(default_factory=set)
    """The names of the states this function declares itself (`state NAME: ...`)."""

    # --- arguments and parameters ---

    def add_argument(
        self, name: str, type_: TensorType, loc: ast.Loc, attrs: dict[str, Attribute]
    ) -> SSAValue:
        arg = self.block.insert_arg(type_, len(self.block.args), location(loc))
        arg.name_hint = name
        self.arg_attrs.append(attrs)
        return arg

    def bind_runtime_dim(self, name: str, axis: int) -> None:
        """Dim `name` is the run-time size of `axis` of the next argument: the one whose
        declared type is being read (its argument is added right after)."""
        self.dims[name] = DYN
        self.dim_sources[name] = (len(self.block.args), axis)

    def dim_source(self, name: str) -> tuple[SSAValue, int] | None:
        """The argument and axis whose run-time size dim `name` is; None for any other name."""
        if name not in self.dim_sources:
            return None
        index, axis = self.dim_sources[name]
        arg = self.block.args[index]
        assert isinstance(arg.type, TensorType) and arg.type.get_shape()[axis] == DYN, name
        return arg, axis

    def parameter(self, info: ParamInfo) -> SSAValue:
        """The argument of a parameter, or the current value of a state tensor; added as an
        argument the first time it is named."""
        if info.name in self.state_values:
            return self.state_values[info.name]
        existing = self.param_args.get(info.name)
        if existing is not None:
            return existing
        attrs: dict[str, Attribute] = {
            f"nn.{info.kind}": StringAttr(info.name),
            "nn.init": StringAttr(info.init),
        }
        if info.init_args:
            attrs["nn.init_args"] = DictionaryAttr(
                {k: FloatAttr(float(v), f64) for k, v in info.init_args.items()}
            )
        self.params.append(info)
        arg = self.add_argument(info.name, info.type, info.loc, attrs)
        self.param_args[info.name] = arg
        if info.kind == "state":
            self.state_values[info.name] = arg
        return arg

    def update_state(self, name: str, value: SSAValue) -> None:
        """`value` is state `name`'s value from here on."""
        self.state_values[name] = value

    @property
    def states(self) -> list[ParamInfo]:
        return [p for p in self.params if p.kind == "state"]

    def next_instance(self, base: str) -> str:
        index = self.instance_counts.get(base, 0)
        self.instance_counts[base] = index + 1
        return f"{base}_{index}"

    def next_seed(self) -> int:
        self.gen.seed_counter += 1
        return AUTO_SEEDS + self.gen.seed_counter

    # --- emitting ops ---

    def emit(self, op: Operation, loc: ast.Loc) -> SSAValue:
        op.location = location(loc)
        self.block.add_op(op)
        return op.results[0]

    def op(
        self,
        op_class: type[nn.NNOp],
        operands: Sequence[SSAValue | Sequence[SSAValue]],
        loc: ast.Loc,
        result_type: TensorType | None = None,
        **props: Attribute,
    ) -> SSAValue:
        try:
            built = op_class.build_inferred(operands, props, result_type)
        except ShapeError as e:
            raise IrnError(str(e), loc) from None
        return self.emit(built, loc)

    # --- compile-time values and conversions ---

    def constant(self, value: int | float | bool, element: Attribute, loc: ast.Loc) -> SSAValue:
        limit = CONSTANT_LIMITS.get(dtype_name(element))
        if limit is not None and not -limit <= value <= limit:
            raise IrnError(f"the constant {value} does not fit in {dtype_name(element)}", loc)
        return self.emit(nn.ConstantOp.scalar(value, element), loc)

    def tensor(self, value: Any, loc: ast.Loc, like: TensorType | None = None) -> SSAValue:
        """A tensor operand; a number becomes a scalar constant of `like`'s dtype (or the
        default f32 / i32)."""
        if isinstance(value, SSAValue):
            return value
        if isinstance(value, bool):
            return self.constant(int(value), i1, loc)
        if isinstance(value, int | float):
            element = (
                like.element_type
                if like is not None
                else (self.named_dtype("f32") if isinstance(value, float) else i32)
            )
            if isinstance(value, float) and not value.is_integer() and element not in (f32, f64):
                raise IrnError(
                    f"dtype clash: the float {value} cannot become an {format_type(like)} value",
                    loc,
                )
            if element not in (f32, f64):
                value = int(value)
            return self.constant(value, element, loc)
        raise IrnError(f"expected a tensor, got {describe(value)}", loc)

    def promote_pair(self, a: Any, b: Any, loc: ast.Loc) -> tuple[SSAValue, SSAValue]:
        like_a = a.type if isinstance(a, SSAValue) else None
        like_b = b.type if isinstance(b, SSAValue) else None
        return self.tensor(a, loc, like_b), self.tensor(b, loc, like_a)

    def binary(self, op_class: type[nn.NNOp], a: Any, b: Any, loc: ast.Loc) -> SSAValue:
        return self.op(op_class, list(self.promote_pair(a, b, loc)), loc)

    def int(self, value: Any, what: str, loc: ast.Loc) -> int:
        if isinstance(value, RuntimeDim):
            raise IrnError(
                f"{what} must be known at compile time, but {value.spelling} is a dimension "
                "known only at run time",
                loc,
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise IrnError(f"{what} must be an integer, got {describe(value)}", loc)
        if not -(2**62) < value < 2**62:
            raise IrnError(f"{what} is out of range: {value}", loc)
        return value

    def int_list(
        self, value: Any, what: str, loc: ast.Loc, scalar_ok: bool = False, dims: bool = False
    ) -> list[int]:
        if scalar_ok and isinstance(value, int) and not isinstance(value, bool):
            return [self.int(value, what, loc)]
        if not isinstance(value, list):
            raise IrnError(f"{what} must be a list of integers, got {describe(value)}", loc)
        return [
            DYN
            if dims and isinstance(v, RuntimeDim)
            else self.int(v, f"every entry of {what}", loc)
            for v in value
        ]

    def flag(self, value: Any, what: str, loc: ast.Loc) -> bool:
        if not isinstance(value, bool):
            raise IrnError(f"{what} must be true or false, got {describe(value)}", loc)
        return value

    def element_type(self, type_expr: ast.TensorTypeExpr) -> Attribute:
        """The dtype a type names: a dtype, or a dtype variable bound by an argument."""
        name = type_expr.dtype
        if name in DTYPES:
            return self.named_dtype(name)
        bound = self.env.get(name)
        if isinstance(bound, DTypeValue):
            return self.named_dtype(bound.name)
        raise IrnError(
            f"unknown dtype '{name}': the dtypes are f32, f64, i32, i64 and bool, and a dtype "
            "variable (such as F) must first appear in an argument's type",
            type_expr.loc,
        )

    def dtype(self, value: Any, loc: ast.Loc) -> Attribute:
        name = value.name if isinstance(value, DTypeValue) else value
        if not isinstance(name, str) or name not in DTYPES:
            raise IrnError(
                f"expected a dtype ({', '.join(dtypes.NAMES)}), got {describe(value)}", loc
            )
        return self.named_dtype(name)

    def named_dtype(self, name: str) -> Attribute:
        """The element type of dtype `name`: under `--f64` an `f32` is built as `f64`, so that
        literals keep their decimal value and every constant is made in float64."""
        element = DTYPES[name]
        return f64 if element == f32 and self.gen.float64 else element


def describe(value: Any) -> str:
    if isinstance(value, SSAValue):
        return f"a tensor {format_type(value.type)}"
    if isinstance(value, FunctionRef):
        return f"the function '{value.fn.name}'"
    if isinstance(value, LoadedModule):
        return f"the module {value.display}"
    if isinstance(value, DTypeValue):
        return f"the dtype {value.name}"
    if isinstance(value, RuntimeDim):
        return f"{value.spelling}, a dimension known only at run time"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"the list {value}"
    if isinstance(value, tuple):
        return f"{len(value)} values (unpack them: a, b = ...)"
    if isinstance(value, GradFn):
        return f"the gradient of '{value.function.fn.name}'"
    if callable(value):
        return f"the builtin '{getattr(value, 'name', value)}'"
    return repr(value)
