"""The built-in functions of `.irn`: each maps a call such as `sum(x, axis=1)` onto one `nn` op
(or, for `range`, `len` and `size`, onto a compile-time value).

A builtin is declared with its parameter names and defaults; `bind_arguments` matches a call
against them (the same binder checks calls of `def` functions).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import StringAttr, TensorType, UnitAttr, i1
from xdsl.ir import Attribute, SSAValue

from irnet.dialects import nn
from irnet.dialects.shapes import DYN, dtype_name
from irnet.dialects.traits import Elementwise

from . import loops
from .ast import Loc
from .diagnostics import IrnError
from .function_builder import FunctionBuilder, GradFn, RuntimeDim, describe
from .imports import FunctionRef

UNROLL_LIMIT = 10_000
"""The most iterations a compile-time `for` (and `range`) may unroll."""


def suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def bind_arguments(
    fname: str,
    params: Sequence[str],
    has_default: set[str],
    args: Sequence[Any],
    keywords: Sequence[tuple[str, Any, Loc]],
    loc: Loc,
) -> dict[str, Any]:
    """Match positional and keyword arguments to parameter names, Python style."""
    if len(args) > len(params):
        raise IrnError(
            f"{fname}() takes {len(params)} argument{'s' * (len(params) != 1)} "
            f"but {len(args)} were given",
            loc,
        )
    bound = dict(zip(params, args))
    for name, value, kw_loc in keywords:
        if name not in params:
            raise IrnError(f"{fname}() has no parameter '{name}'{suggest(name, params)}", kw_loc)
        if name in bound:
            raise IrnError(f"{fname}() got two values for '{name}'", kw_loc)
        bound[name] = value
    missing = [p for p in params if p not in bound and p not in has_default]
    if missing:
        raise IrnError(f"{fname}() is missing the argument '{missing[0]}'", loc)
    return bound


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[str, ...]
    defaults: dict[str, Any]
    build: Callable[..., Any]

    def __call__(self, fb: FunctionBuilder, loc: Loc, args, keywords) -> Any:
        bound = bind_arguments(self.name, self.params, set(self.defaults), args, keywords, loc)
        values = {**self.defaults, **bound}
        return self.build(fb, loc, *(values[p] for p in self.params))


BUILTINS: dict[str, Builtin] = {}


def builtin(name: str, *params: str, **defaults: Any):
    """Register `build(fb, loc, *params)` as the builtin `name(params...)`."""

    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        BUILTINS[name] = Builtin(name, (*params, *defaults), defaults, build)
        return build

    return register


# --- elementwise -------------------------------------------------------------------------------

SPELT_OTHERWISE = {nn.NegOp, nn.GeluOp}
"""Elementwise ops of one operand that the language spells otherwise: `-x`, and `gelu` with its
`approximate` argument."""

UNARY = {
    op.name.removeprefix("nn."): op
    for op in nn.NN.operations
    if issubclass(op, nn.UnaryOp) and op.has_trait(Elementwise) and op not in SPELT_OTHERWISE
}
"""`relu(x)`, `exp(x)`, `erf(x)`, ...: every elementwise op of one operand, by its op name."""

for _name, _op in UNARY.items():
    builtin(_name, "x")(lambda fb, loc, x, _op=_op: fb.op(_op, [fb.tensor(x, loc)], loc))


@builtin("gelu", "x", approximate="tanh")
def _gelu(fb: FunctionBuilder, loc: Loc, x, approximate) -> SSAValue:
    if approximate not in nn.GELU:
        raise IrnError(f'gelu(): approximate must be "tanh" or "none", got {approximate!r}', loc)
    # The tanh form is the op without the property, as it was before exact gelu existed.
    props = {"approximate": StringAttr(approximate)} if approximate != "tanh" else {}
    return fb.op(nn.GeluOp, [fb.tensor(x, loc)], loc, **props)


builtin("maximum", "a", "b")(lambda fb, loc, a, b: fb.binary(nn.MaximumOp, a, b, loc))
builtin("minimum", "a", "b")(lambda fb, loc, a, b: fb.binary(nn.MinimumOp, a, b, loc))


@builtin("where", "cond", "a", "b")
def _where(fb: FunctionBuilder, loc: Loc, cond, a, b) -> SSAValue:
    a, b = fb.promote_pair(a, b, loc)
    return fb.op(nn.SelectOp, [fb.tensor(cond, loc), a, b], loc)


@builtin("cast", "x", "dtype")
def _cast(fb: FunctionBuilder, loc: Loc, x, dtype) -> SSAValue:
    x = fb.tensor(x, loc)
    element = fb.dtype(dtype, loc)
    return fb.op(nn.CastOp, [x], loc, result_type=TensorType(element, x.type.get_shape()))


# --- linear algebra and layout -----------------------------------------------------------------


@builtin("matmul", "a", "b")
def _matmul(fb: FunctionBuilder, loc: Loc, a, b) -> SSAValue:
    return fb.op(nn.MatmulOp, [fb.tensor(a, loc), fb.tensor(b, loc)], loc)


@builtin("transpose", "x", perm=None)
def _transpose(fb: FunctionBuilder, loc: Loc, x, perm) -> SSAValue:
    x = fb.tensor(x, loc)
    rank = x.type.get_num_dims()
    perm = list(range(rank))[::-1] if perm is None else fb.int_list(perm, "perm", loc)
    return fb.op(nn.TransposeOp, [x], loc, perm=nn.int_array(perm))


@builtin("reshape", "x", "shape")
def _reshape(fb: FunctionBuilder, loc: Loc, x, shape) -> SSAValue:
    x = fb.tensor(x, loc)
    dims = [DYN if d in (-1, DYN) else d for d in fb.int_list(shape, "shape", loc, dims=True)]
    target = TensorType(x.type.element_type, dims)
    return fb.op(nn.ReshapeOp, [x], loc, result_type=target)


@builtin("broadcast_to", "x", shape=None, like=None)
def _broadcast_to(fb: FunctionBuilder, loc: Loc, x, shape, like) -> SSAValue:
    x = fb.tensor(x, loc)
    if like is not None:
        like = fb.tensor(like, loc)
        target = like.type.get_shape() if shape is None else fb.int_list(shape, "shape", loc)
        return fb.op(
            nn.BroadcastToOp, [x, like], loc, result_type=TensorType(x.type.element_type, target)
        )
    if shape is None:
        raise IrnError("broadcast_to() needs a shape or a `like` tensor", loc)
    sizes = fb.int_list(shape, "shape", loc)
    if any(s < 0 for s in sizes):
        raise IrnError(f"broadcast_to(): sizes cannot be negative, got {sizes}", loc)
    target = TensorType(x.type.element_type, sizes)
    return fb.op(nn.BroadcastToOp, [x], loc, result_type=target)


# --- filled tensors ----------------------------------------------------------------------------


@builtin("zeros", "shape", dtype="f32")
def _zeros(fb: FunctionBuilder, loc: Loc, shape, dtype) -> SSAValue:
    return fill(fb, loc, "zeros", shape, 0, dtype)


@builtin("ones", "shape", dtype="f32")
def _ones(fb: FunctionBuilder, loc: Loc, shape, dtype) -> SSAValue:
    return fill(fb, loc, "ones", shape, 1, dtype)


@builtin("full", "shape", "value", dtype="f32")
def _full(fb: FunctionBuilder, loc: Loc, shape, value, dtype) -> SSAValue:
    return fill(fb, loc, "full", shape, value, dtype)


def fill(fb: FunctionBuilder, loc: Loc, name: str, shape: Any, value: Any, dtype: Any) -> SSAValue:
    """A tensor of `shape` holding `value` everywhere: the scalar broadcast to it. A size known
    only at run time comes from the argument whose type bound that dim, as a `like` operand
    that sizes just those axes (`like_axes`); one broadcast per such argument."""
    element = fb.dtype(dtype, loc)
    filled = fill_value(fb, loc, name, value, element)
    sizes, sources = fill_shape(fb, loc, name, shape)
    if not sources:
        target = TensorType(element, sizes)
        return filled if not sizes else fb.op(nn.BroadcastToOp, [filled], loc, result_type=target)
    by_argument: dict[SSAValue, dict[int, int]] = {}
    for axis, (argument, arg_axis) in sources.items():
        by_argument.setdefault(argument, {})[axis] = arg_axis
    sized: set[int] = set()
    for argument, axes in by_argument.items():
        # The `?` axes an earlier broadcast sized stay `?` (the input sizes them); those of
        # later arguments stay 1 until their turn.
        sized |= axes.keys()
        step = [1 if i in sources and i not in sized else s for i, s in enumerate(sizes)]
        like_axes = nn.int_array([axes.get(i, -1) for i in range(len(sizes))])
        target = TensorType(element, step)
        filled = fb.op(
            nn.BroadcastToOp, [filled, argument], loc, result_type=target, like_axes=like_axes
        )
    return filled


def fill_value(fb: FunctionBuilder, loc: Loc, name: str, value: Any, element) -> SSAValue:
    """The value of a fill as a scalar of its dtype: a number (true or false for bool), or a
    scalar tensor of that dtype."""
    if isinstance(value, SSAValue):
        t = value.type
        if not isinstance(t, TensorType) or t.get_num_dims() != 0 or t.element_type != element:
            raise IrnError(
                f"{name}(): the value must be a number or a scalar {dtype_name(element)} "
                f"tensor, got {describe(value)}",
                loc,
            )
        return value
    if element == i1:
        if not isinstance(value, int) or value not in (0, 1):  # true and false are ints
            message = f"{name}(): a bool tensor holds true or false, got {describe(value)}"
            raise IrnError(message, loc)
        return fb.constant(int(value), i1, loc)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IrnError(f"{name}(): the value must be a number, got {describe(value)}", loc)
    return fb.tensor(value, loc, TensorType(element, []))


def fill_shape(
    fb: FunctionBuilder, loc: Loc, name: str, shape: Any
) -> tuple[list[int], dict[int, tuple[SSAValue, int]]]:
    """The sizes of a fill's shape (`zeros(3)` is `zeros([3])`), `?` for a dim known only at
    run time, and for each of those axes the argument and axis whose run-time size it is."""
    if isinstance(shape, int | RuntimeDim) and not isinstance(shape, bool):
        shape = [shape]
    if not isinstance(shape, list):
        raise IrnError(f"{name}(): the shape must be a list of sizes, got {describe(shape)}", loc)
    sizes: list[int] = []
    sources: dict[int, tuple[SSAValue, int]] = {}
    for entry in shape:
        if isinstance(entry, RuntimeDim):
            source = fb.dim_source(entry.spelling)
            if source is None:
                raise IrnError(
                    f"{name}(): the size {entry.spelling} is computed from dimensions known "
                    "only at run time; a run-time size must be a dimension of an argument, "
                    "such as N",
                    loc,
                )
            sources[len(sizes)] = source
            sizes.append(DYN)
            continue
        size = fb.int(entry, f"{name}(): every size", loc)
        if size < 0:
            raise IrnError(f"{name}(): sizes cannot be negative, got {size}", loc)
        sizes.append(size)
    return sizes, sources


# --- reductions --------------------------------------------------------------------------------


def _reduction(op: type[nn.ReduceOp]):
    def build(fb: FunctionBuilder, loc: Loc, x, axis, keepdims) -> SSAValue:
        axes = [] if axis is None else fb.int_list(axis, "axis", loc, scalar_ok=True)
        props = {"axes": nn.int_array(axes)}
        if fb.flag(keepdims, "keepdims", loc):
            props["keepdims"] = UnitAttr()
        return fb.op(op, [fb.tensor(x, loc)], loc, **props)

    return build


builtin("sum", "x", axis=None, keepdims=False)(_reduction(nn.ReduceSumOp))
builtin("mean", "x", axis=None, keepdims=False)(_reduction(nn.ReduceMeanOp))
builtin("max", "x", axis=None, keepdims=False)(_reduction(nn.ReduceMaxOp))


def _along_axis(op: type[nn.NNOp]):
    def build(fb: FunctionBuilder, loc: Loc, x, axis) -> SSAValue:
        return fb.op(op, [fb.tensor(x, loc)], loc, axis=nn.int_attr(fb.int(axis, "axis", loc)))

    return build


builtin("argmax", "x", axis=-1)(_along_axis(nn.ArgmaxOp))
builtin("softmax", "x", axis=-1)(_along_axis(nn.SoftmaxOp))
builtin("log_softmax", "x", axis=-1)(_along_axis(nn.LogSoftmaxOp))


# --- convolution and pooling -------------------------------------------------------------------


def _pair(fb: FunctionBuilder, value, what: str, loc: Loc):
    values = fb.int_list(value, what, loc, scalar_ok=True)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise IrnError(f"{what} must be an integer or a pair [h, w], got {values}", loc)
    return nn.int_array(values)


@builtin("conv2d", "x", "w", stride=1, padding=0, dilation=1, groups=1)
def _conv2d(fb: FunctionBuilder, loc: Loc, x, w, stride, padding, dilation, groups) -> SSAValue:
    return fb.op(
        nn.Conv2dOp,
        [fb.tensor(x, loc), fb.tensor(w, loc)],
        loc,
        stride=_pair(fb, stride, "stride", loc),
        padding=_pair(fb, padding, "padding", loc),
        dilation=_pair(fb, dilation, "dilation", loc),
        groups=nn.int_attr(fb.int(groups, "groups", loc)),
    )


def _window(fb: FunctionBuilder, loc: Loc, kernel, stride, padding) -> dict[str, Attribute]:
    kernel = _pair(fb, kernel, "kernel", loc)
    stride = kernel if stride is None else _pair(fb, stride, "stride", loc)
    return {"kernel": kernel, "stride": stride, "padding": _pair(fb, padding, "padding", loc)}


@builtin("max_pool2d", "x", "kernel", stride=None, padding=0)
def _max_pool2d(fb: FunctionBuilder, loc: Loc, x, kernel, stride, padding) -> SSAValue:
    window = _window(fb, loc, kernel, stride, padding)
    return fb.op(nn.MaxPool2dOp, [fb.tensor(x, loc)], loc, **window)


@builtin("avg_pool2d", "x", "kernel", stride=None, padding=0, count_include_pad=True)
def _avg_pool2d(fb: FunctionBuilder, loc: Loc, x, kernel, stride, padding, count_include_pad):
    props = _window(fb, loc, kernel, stride, padding)
    if not fb.flag(count_include_pad, "count_include_pad", loc):
        props["exclude_pad"] = UnitAttr()
    return fb.op(nn.AvgPool2dOp, [fb.tensor(x, loc)], loc, **props)


# --- indexing ----------------------------------------------------------------------------------


@builtin("gather", "x", "indices", axis=0)
def _gather(fb: FunctionBuilder, loc: Loc, x, indices, axis) -> SSAValue:
    operands = [fb.tensor(x, loc), fb.tensor(indices, loc)]
    return fb.op(nn.GatherOp, operands, loc, axis=nn.int_attr(fb.int(axis, "axis", loc)))


@builtin("iota", "x", axis=-1)
def _iota(fb: FunctionBuilder, loc: Loc, x, axis) -> SSAValue:
    props = {"axis": nn.int_attr(fb.int(axis, "axis", loc))}
    return fb.op(nn.IotaOp, [fb.tensor(x, loc)], loc, **props)


@builtin("one_hot", "indices", "num_classes", dtype="f32")
def _one_hot(fb: FunctionBuilder, loc: Loc, indices, num_classes, dtype) -> SSAValue:
    indices = fb.tensor(indices, loc)
    classes = fb.int(num_classes, "num_classes", loc)
    result = TensorType(fb.dtype(dtype, loc), [*indices.type.get_shape(), classes])
    return fb.op(nn.OneHotOp, [indices], loc, result_type=result, num_classes=nn.int_attr(classes))


@builtin("concat", "tensors", axis=0)
def _concat(fb: FunctionBuilder, loc: Loc, tensors, axis) -> SSAValue:
    if not isinstance(tensors, list) or not tensors:
        raise IrnError(
            "concat() takes a non-empty list of tensors, e.g. concat([a, b], axis=1)", loc
        )
    values = [fb.tensor(t, loc) for t in tensors]
    return fb.op(nn.ConcatOp, [values], loc, axis=nn.int_attr(fb.int(axis, "axis", loc)))


# --- randomness, mode and compile-time helpers -------------------------------------------------


@builtin("random_uniform", "like", seed=None)
def _random_uniform(fb: FunctionBuilder, loc: Loc, like, seed) -> SSAValue:
    seed = fb.next_seed() if seed is None else fb.int(seed, "seed", loc)
    return fb.op(nn.RandomUniformOp, [fb.tensor(like, loc)], loc, seed=nn.int_attr(seed))


@builtin("training")
def _training(fb: FunctionBuilder, loc: Loc) -> SSAValue:
    return fb.op(nn.TrainingOp, [], loc)


@builtin("range", "n")
def _range(fb: FunctionBuilder, loc: Loc, n) -> list[int]:
    count = fb.int(n, "n", loc)
    if count > UNROLL_LIMIT:
        raise IrnError(f"range({count:,}) is longer than the {UNROLL_LIMIT:,} a loop unrolls", loc)
    return list(range(count))


@builtin("len", "items")
def _len(fb: FunctionBuilder, loc: Loc, items) -> int:
    if not isinstance(items, list):
        raise IrnError("len() takes a list", loc)
    return len(items)


@builtin("size", "x", "axis")
def _size(fb: FunctionBuilder, loc: Loc, x, axis) -> int:
    shape = fb.tensor(x, loc).type.get_shape()
    axis = fb.int(axis, "axis", loc)
    if not -len(shape) <= axis < len(shape):
        raise IrnError(f"size(): axis {axis} is out of range for rank {len(shape)}", loc)
    if shape[axis] == DYN:
        raise IrnError(f"size(): dimension {axis} is only known at run time", loc)
    return shape[axis]


@builtin("numel", "x", axis=None)
def _numel(fb: FunctionBuilder, loc: Loc, x, axis) -> SSAValue:
    """The number of elements of float tensor `x` along `axis` (all by default), as a scalar of
    its dtype; known at run time where the dimensions are (batch norm's n / (n - 1))."""
    x = fb.tensor(x, loc)
    rank = x.type.get_num_dims()
    axes = list(range(rank)) if axis is None else fb.int_list(axis, "axis", loc, scalar_ok=True)
    for a in axes:
        if not -rank <= a < rank:
            raise IrnError(f"numel(): axis {a} is out of range for rank {rank}", loc)
    return fb.op(nn.AxisSizeOp, [x], loc, axes=nn.int_array(sorted({a % rank for a in axes})))


# --- loops -------------------------------------------------------------------------------------

builtin("scan", "cell", "init", "xs", axis=0, reverse=False)(loops.scan)


# --- derivatives -------------------------------------------------------------------------------


def _derivative(with_value: bool):
    def build(fb: FunctionBuilder, loc: Loc, f, wrt) -> GradFn:
        if not isinstance(f, FunctionRef):
            raise IrnError("grad() differentiates a def or model function, given by its name", loc)
        return GradFn(f, wrt, with_value)

    return build


builtin("grad", "f", wrt=0)(_derivative(with_value=False))
builtin("value_and_grad", "f", wrt=0)(_derivative(with_value=True))


COMPARISON_PREDICATES = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def comparison_props(op: str) -> dict[str, StringAttr]:
    return {"predicate": StringAttr(COMPARISON_PREDICATES[op])}
