"""Tests of the `nn` dialect: type inference, shape errors, verification, printing and
parsing, and canonicalisation.

Types are written as in error messages, `f32[?, 784]`, and turned into `TensorType`s by `ty`.
Known bugs are marked `xfail(strict=True)` with a reason starting with "BUG:".
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from ir_helpers import attr, mentions, ty
from op_cases import UNARY, Case, cases
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    Builtin,
    DenseIntOrFPElementsAttr,
    FileLineColLoc,
    IntAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f32,
    i32,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.transforms.canonicalize import CanonicalizePass
from xdsl.utils.exceptions import VerifyException

from irnet import reference
from irnet.dialects import nn, nn_patterns
from irnet.dialects.shapes import ShapeError
from irnet.dialects.traits import Elementwise

END = nn.SLICE_END

# --- helpers -----------------------------------------------------------------------------------


def props_of(**values: object) -> dict[str, Attribute]:
    return {name: attr(v) for name, v in values.items()}


def dense(spec: str, values: Sequence[float]) -> DenseIntOrFPElementsAttr:
    return DenseIntOrFPElementsAttr.from_list(ty(spec), list(values))


def window(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1) -> dict[str, object]:
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def pool(kernel=(2, 2), stride=(2, 2), padding=(0, 0)) -> dict[str, object]:
    return {"kernel": kernel, "stride": stride, "padding": padding}


def group_operands(op: type[nn.NNOp], values: Sequence[SSAValue]) -> list:
    """Operands in the shape IRDL wants: concat's are one variadic group, `like` is optional."""
    if op is nn.ConcatOp:
        return [list(values)]
    if op is nn.BroadcastToOp:
        return [values[0], list(values[1:])]
    return list(values)


def infer(op: type[nn.NNOp], operands: Sequence[str], result: str | None, **props) -> TensorType:
    return op.infer([ty(s) for s in operands], props_of(**props), result and ty(result))


def context() -> Context:
    ctx = Context()
    for dialect in (Builtin, func.Func, nn.NN):
        ctx.load_dialect(dialect)
    return ctx


def function_module(
    arg_types: Sequence[Attribute], body: Callable[[Sequence[SSAValue]], list[Operation]]
) -> ModuleOp:
    """`func.func @f(args) { body; return <last result> }` in a module."""
    block = Block(arg_types=arg_types)
    ops = body(block.args)
    result = ops[-1].results[0] if ops else block.args[0]
    block.add_ops([*ops, func.ReturnOp(result)])
    fn = func.FuncOp("f", (list(arg_types), [result.type]), Region(block))
    return ModuleOp([fn])


def module_with(op: type[nn.NNOp], operands, result_type=None, *, hint=None, **props) -> ModuleOp:
    """A function whose body is one `op`: built with its inferred result type (`hint` is the
    result-type hint of `build_inferred`), or created with `result_type` to tamper with it."""

    def body(args):
        grouped, properties = group_operands(op, args), props_of(**props)
        if result_type is None:
            return [op.build_inferred(grouped, properties, hint)]
        return [op(operands=grouped, properties=properties, result_types=[result_type])]

    return function_module([ty(s) for s in operands], body)


def text_of(op: Operation) -> str:
    stream = io.StringIO()
    Printer(stream=stream).print_op(op)
    return stream.getvalue()


def body_ops(module: ModuleOp) -> list[Operation]:
    (fn,) = module.ops
    assert isinstance(fn, func.FuncOp)
    return list(fn.body.block.ops)


def returned(module: ModuleOp) -> SSAValue:
    return body_ops(module)[-1].operands[0]


def func_arg(module: ModuleOp) -> SSAValue:
    (fn,) = module.ops
    assert isinstance(fn, func.FuncOp)
    return fn.body.block.args[0]


# --- type inference ----------------------------------------------------------------------------


def case(op: type[nn.NNOp], operands: Sequence[str], expected: str, label: str = "", **props):
    """One inference case; `result=` is the result-type hint (cast, reshape, broadcast_to,
    one_hot), the other keywords are properties."""
    result = props.pop("result", None)
    name = op.name.removeprefix("nn.")
    return pytest.param(op, tuple(operands), result, props, expected, id=f"{name}:{label}")


FLOAT_UNARY = tuple(dict.fromkeys(u.op for u in UNARY if u.op.FLOAT_ONLY))

# fmt: off
INFERENCE = [
    # elementwise unary
    *[case(op, ["f32[?, 128]"], "f32[?, 128]", "float") for op in FLOAT_UNARY],
    case(nn.GeluOp, ["f32[?, 128]"], "f32[?, 128]", "exact", approximate="none"),
    case(nn.NegOp, ["i32[?, 10]"], "i32[?, 10]", "int"),
    case(nn.AbsOp, ["f64[4]"], "f64[4]", "f64"),
    case(nn.SoftmaxOp, ["f32[?, 10]"], "f32[?, 10]", "axis", axis=1),
    case(nn.LogSoftmaxOp, ["f32[?, 10]"], "f32[?, 10]", "negative-axis", axis=-1),
    # broadcasting binary ops
    case(nn.AddOp, ["f32[?, 128]", "f32[]"], "f32[?, 128]", "scalar"),
    case(nn.AddOp, ["f32[]", "f32[3]"], "f32[3]", "scalar-lhs"),
    case(nn.AddOp, ["f32[?, 128]", "f32[128]"], "f32[?, 128]", "row"),
    case(nn.SubOp, ["f32[4, 3]", "f32[4, 1]"], "f32[4, 3]", "column"),
    case(nn.MulOp, ["f32[4, 1]", "f32[1, 3]"], "f32[4, 3]", "both-sides"),
    case(nn.MulOp, ["i64[2, 1, 3]", "i64[4, 1]"], "i64[2, 4, 3]", "rank-extension"),
    case(nn.DivOp, ["f32[?, 3]", "f32[5, 3]"], "f32[5, 3]", "dyn-vs-static"),
    case(nn.DivOp, ["f32[5, 3]", "f32[?, 1]"], "f32[5, 3]", "static-vs-dyn"),
    case(nn.PowOp, ["f32[?, 3]", "f32[1, 3]"], "f32[?, 3]", "dyn-vs-1"),
    case(nn.MaximumOp, ["f32[?, ?]", "f32[?, 1]"], "f32[?, ?]", "dyn-vs-dyn"),
    case(nn.MinimumOp, ["i32[?, 10]", "i32[]"], "i32[?, 10]", "int"),
    case(nn.FloorDivOp, ["i32[?, 8]", "i32[]"], "i32[?, 8]", "int"),
    case(nn.ModOp, ["i64[?, 1]", "i64[3]"], "i64[?, 3]", "broadcast"),
    case(nn.CmpOp, ["f32[?, 10]", "f32[]"], "bool[?, 10]", "gt", predicate="gt"),
    case(nn.CmpOp, ["i32[3, 1]", "i32[4]"], "bool[3, 4]", "eq-int", predicate="eq"),
    case(nn.CmpOp, ["bool[3]", "bool[3]"], "bool[3]", "ne-bool", predicate="ne"),
    case(nn.SelectOp, ["bool[?, 10]", "f32[?, 10]", "f32[]"], "f32[?, 10]", "scalar-false"),
    case(nn.SelectOp, ["bool[4, 1]", "i32[3]", "i32[1, 3]"], "i32[4, 3]", "all-broadcast"),
    case(nn.CastOp, ["i64[?]"], "f32[?]", "int-to-float", result="f32[?]"),
    case(nn.CastOp, ["f32[2, 3]"], "bool[2, 3]", "float-to-bool", result="bool[2, 3]"),
    case(nn.ConstantOp, [], "f32[2, 2]", "dense", value=dense("f32[2, 2]", [1.0, 2.0, 3, 4])),
    case(nn.ConstantOp, [], "i32[]", "scalar", value=dense("i32[]", [7])),
    # linear algebra and layout
    case(nn.MatmulOp, ["f32[?, 784]", "f32[784, 128]"], "f32[?, 128]", "2d"),
    case(nn.MatmulOp, ["f32[3, ?]", "f32[5, 4]"], "f32[3, 4]", "dyn-inner"),
    case(nn.MatmulOp, ["f32[8, 3, 4]", "f32[4, 5]"], "f32[8, 3, 5]", "batched-lhs"),
    case(nn.MatmulOp, ["f32[2, 1, 3, 4]", "f32[7, 4, 5]"], "f32[2, 7, 3, 5]", "batch-bcast"),
    case(nn.MatmulOp, ["f32[?, 3, 4]", "f32[6, 4, 5]"], "f32[6, 3, 5]", "dyn-batch"),
    case(nn.TransposeOp, ["f32[?, 10]"], "f32[10, ?]", "2d", perm=[1, 0]),
    case(nn.TransposeOp, ["f32[2, 3, 4]"], "f32[4, 2, 3]", "3d", perm=[2, 0, 1]),
    case(nn.TransposeOp, ["f32[]"], "f32[]", "rank-0", perm=[]),
    case(nn.ReshapeOp, ["f32[?, 1, 28, 28]"], "f32[?, 784]", "dyn", result="f32[?, 784]"),
    case(nn.ReshapeOp, ["f32[2, 3, 4]"], "f32[6, 4]", "static", result="f32[6, 4]"),
    case(nn.ReshapeOp, ["f32[2, 3, 4]"], "f32[?, 12]", "one-dyn", result="f32[?, 12]"),
    case(nn.ReshapeOp, ["f32[1, 1]"], "f32[]", "to-scalar", result="f32[]"),
    case(nn.ReshapeOp, ["f32[?, 4]"], "f32[?, 2, 2]", "dyn-to-dyn", result="f32[?, 2, 2]"),
    case(nn.BroadcastToOp, ["f32[1, 10]"], "f32[4, 10]", "static", result="f32[4, 10]"),
    case(nn.BroadcastToOp, ["f32[]"], "f32[2, 3]", "scalar", result="f32[2, 3]"),
    case(nn.BroadcastToOp, ["f32[10]", "f32[?, 10]"], "f32[?, 10]", "like", result="f32[?, 10]"),
    case(nn.BroadcastToOp, ["i32[?]", "f32[?, 3]"], "i32[?, 3]", "dyn-like", result="i32[?, 3]"),
    # reductions
    case(nn.ReduceSumOp, ["f32[?, 10]"], "f32[?, 1]", "keepdims", axes=[1], keepdims=True),
    case(nn.ReduceSumOp, ["f32[?, 10]"], "f32[?]", "no-keepdims", axes=[1]),
    case(nn.ReduceSumOp, ["i32[2, 3, 4]"], "i32[2, 4]", "negative", axes=[-2]),
    case(nn.ReduceSumOp, ["f32[2, 3, 4]"], "f32[3]", "two-axes", axes=[0, -1]),
    case(nn.ReduceMeanOp, ["f32[?, 10]"], "f32[]", "all", axes=[]),
    case(nn.ReduceMeanOp, ["f32[2, 3]"], "f32[1, 1]", "all-keep", axes=[], keepdims=True),
    case(nn.ReduceMaxOp, ["f32[?, 10]"], "f32[?]", "axis-1", axes=[1]),
    case(nn.ReduceMaxOp, ["f32[?, 10, 3]"], "f32[1, 10, 1]", "keep-2", axes=[0, 2], keepdims=True),
    case(nn.ArgmaxOp, ["f32[?, 10]"], "i64[?]", "axis-1", axis=1),
    case(nn.ArgmaxOp, ["i32[4, ?, 3]"], "i64[4, ?]", "negative", axis=-1),
    # convolution and pooling
    case(nn.Conv2dOp, ["f32[?, 1, 28, 28]", "f32[6, 1, 5, 5]"], "f32[?, 6, 28, 28]", "same",
         **window(padding=(2, 2))),
    case(nn.Conv2dOp, ["f32[8, 6, 14, 14]", "f32[16, 6, 5, 5]"], "f32[8, 16, 10, 10]", "valid",
         **window()),
    case(nn.Conv2dOp, ["f32[1, 6, ?, 9]", "f32[9, 2, 3, 3]"], "f32[1, 9, ?, 4]", "groups-dyn",
         **window(stride=(1, 2), groups=3)),
    case(nn.MaxPool2dOp, ["f32[?, 6, 28, 28]"], "f32[?, 6, 14, 14]", "2x2", **pool()),
    case(nn.AvgPool2dOp, ["f32[1, 3, 7, ?]"], "f32[1, 3, 4, ?]", "pad",
         **pool(kernel=(3, 3), padding=(1, 1))),
    # indexing
    case(nn.GatherOp, ["f32[65, 16]", "i32[?, 8]"], "f32[?, 8, 16]", "rows", axis=0),
    case(nn.GatherOp, ["f32[2, 5, 3]", "i64[4]"], "f32[2, 4, 3]", "middle", axis=1),
    case(nn.GatherOp, ["f32[2, 5]", "i32[]"], "f32[2]", "scalar-index", axis=-1),
    case(nn.OneHotOp, ["i32[?]"], "f32[?, 10]", "f32", num_classes=10, result="f32[?, 10]"),
    case(nn.OneHotOp, ["i64[2, 3]"], "f64[2, 3, 4]", "f64", num_classes=4, result="f64[?, ?, ?]"),
    case(nn.ConcatOp, ["f32[?, 16]", "f32[?, 16]"], "f32[?, 32]", "axis-1", axis=1),
    case(nn.ConcatOp, ["f32[2, 3]", "f32[4, 3]", "f32[1, 3]"], "f32[7, 3]", "three", axis=0),
    case(nn.ConcatOp, ["f32[2, 3]", "f32[?, 3]"], "f32[?, 3]", "dyn", axis=-2),
    case(nn.ConcatOp, ["i32[5]"], "i32[5]", "one", axis=0),
    case(nn.SliceOp, ["f32[?, 10]"], "f32[?, 2]", "to-end-dyn",
         starts=[0, 1], stops=[END, 3], steps=[1, 1]),
    case(nn.SliceOp, ["f32[?]"], "f32[?]", "to-end-dyn-step", starts=[3], stops=[END], steps=[2]),
    case(nn.SliceOp, ["f32[10, 10]"], "f32[3, 5]", "steps",
         starts=[1, 0], stops=[END, 10], steps=[3, 2]),
    case(nn.SliceOp, ["f32[4, ?]"], "f32[0, 2]", "clipped",
         starts=[5, 2], stops=[9, 5], steps=[1, 2]),
    case(nn.SliceOp, ["f32[10]"], "f32[2]", "past-end", starts=[8], stops=[20], steps=[1]),
    # randomness and mode
    case(nn.RandomUniformOp, ["f32[?, 128]"], "f32[?, 128]", "like", seed=7),
    case(nn.TrainingOp, [], "bool[]", "flag"),
    # the transposes that autodiff writes: the result type is given and checked
    case(nn.Conv2dGradInputOp, ["f32[?, 6, 13, 13]", "f32[6, 1, 5, 5]"], "f32[?, 1, 28, 28]",
         "strided", result="f32[?, 1, 28, 28]", **window(stride=(2, 2), padding=(1, 1))),
    case(nn.Conv2dGradWeightOp, ["f32[?, 1, 28, 28]", "f32[?, 6, 24, 24]"], "f32[6, 1, 5, 5]",
         "valid", result="f32[6, 1, 5, 5]", **window()),
    case(nn.MaxPool2dGradOp, ["f32[?, 6, 28, 28]", "f32[?, 6, 14, 14]"], "f32[?, 6, 28, 28]",
         "2x2", **pool()),
    case(nn.AvgPool2dGradOp, ["f32[?, 6, 14, 14]"], "f32[?, 6, 28, 28]", "2x2",
         result="f32[?, 6, 28, 28]", **pool()),
    case(nn.ScatterAddOp, ["f32[?, 8, 16]", "i32[?, 8]"], "f32[65, 16]", "rows",
         result="f32[65, 16]", axis=0),
    case(nn.SliceGradOp, ["f32[?, 2]"], "f32[?, 10]", "to-end-dyn", result="f32[?, 10]",
         starts=[0, 1], stops=[END, 3], steps=[1, 1]),
    case(nn.AxisSizeOp, ["f32[?, 10]"], "f32[]", "batch", axes=[0]),
    case(nn.AxisSizeOp, ["f64[2, 3]"], "f64[]", "all", axes=[]),
    case(nn.IotaOp, ["f32[?, 8, 8]"], "i64[?, 8, 8]", "float", axis=2),
    case(nn.IotaOp, ["bool[3, ?]"], "i64[3, ?]", "bool", axis=-1),
]
# fmt: on


@pytest.mark.parametrize(("op", "operands", "result", "props", "expected"), INFERENCE)
def test_inferred_type(op, operands, result, props, expected):
    assert infer(op, operands, result, **props) == ty(expected)
    built = module_with(op, operands, hint=result and ty(result), **props)
    built.verify()
    assert returned(built).type == ty(expected)


INFERRED = [op for op in nn.NN.operations if issubclass(op, nn.NNOp)]
"""The ops typed by their `infer` rule: all but the loop (`nn.scan` and its `nn.yield`), whose
types come from its region (tests/test_loops.py)."""


def test_every_op_is_documented_and_covered():
    covered = {param.values[0] for param in INFERENCE}
    for op in nn.NN.operations:
        assert "```mlir" in (op.__doc__ or ""), f"{op.name} has no ```mlir example"
    for op in INFERRED:
        assert op in covered, f"{op.name} has no inference test"


@pytest.mark.parametrize("op", INFERRED, ids=lambda op: op.name)
def test_docstring_example_parses_and_verifies(op):
    """The docstring example, with its operands made function arguments, is valid IR."""
    example = op.__doc__.split("```mlir")[1].split("```")[0].strip()
    uses = re.findall(r"%\d+", example.split("=", 1)[1])
    types = re.findall(r"tensor<[^>]*>", example)[: len(uses)]
    args = ", ".join(f"{name}: {t}" for name, t in zip(uses, types, strict=True))
    text = f"func.func @f({args}) {{\n{example}\nfunc.return\n}}"
    Parser(context(), text).parse_module().verify()


def conv_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


@pytest.mark.parametrize(
    ("h", "k", "s", "p", "d"),
    [
        (28, 5, 1, 2, 1),
        (28, 5, 1, 0, 1),
        (32, 3, 2, 1, 1),
        (7, 3, 2, 0, 2),
        (10, 4, 3, 1, 1),
        (9, 3, 1, 0, 4),
        (5, 5, 1, 0, 1),
        (6, 1, 5, 0, 1),
        (1, 3, 1, 1, 1),
    ],
)
def test_conv2d_output_size_formula(h, k, s, p, d):
    # H uses the parameters under test, W a plain 3x3 kernel: the two axes are independent.
    x, w = f"f32[2, 4, {h}, 11]", f"f32[8, 2, {k}, 3]"
    props = window(stride=(s, 1), padding=(p, 0), dilation=(d, 1), groups=2)
    expected = f"f32[2, 8, {conv_size(h, k, s, p, d)}, {conv_size(11, 3, 1, 0, 1)}]"
    assert infer(nn.Conv2dOp, [x, w], None, **props) == ty(expected)


@pytest.mark.parametrize("op", [nn.MaxPool2dOp, nn.AvgPool2dOp])
@pytest.mark.parametrize(
    ("h", "k", "s", "p"), [(28, 2, 2, 0), (7, 3, 2, 1), (5, 3, 1, 1), (9, 4, 3, 2), (3, 3, 3, 0)]
)
def test_pool_output_size_formula(op, h, k, s, p):
    props = pool(kernel=(k, 1), stride=(s, 1), padding=(p, 0))
    expected = f"f32[1, 3, {conv_size(h, k, s, p, 1)}, 6]"
    assert infer(op, [f"f32[1, 3, {h}, 6]"], None, **props) == ty(expected)


def test_constant_scalar_helper():
    const = nn.ConstantOp.scalar(2.5, f32)
    assert const.res.type == ty("f32[]")
    assert const.splat_value() == 2.5
    assert nn.ConstantOp.scalar(3, i32).res.type == ty("i32[]")


def test_broadcast_to_without_like_builds_from_a_single_operand():
    """The frontend calls `build_inferred([x], result_type=...)` for `broadcast_to(x, shape)`."""
    (x,) = Block(arg_types=[ty("f32[1, 10]")]).args
    op = nn.BroadcastToOp.build_inferred([x], result_type=ty("f32[4, 10]"))
    assert op.res.type == ty("f32[4, 10]")
    assert op.like is None


# --- shape errors ------------------------------------------------------------------------------


def error(op: type[nn.NNOp], operands: Sequence[str], *fragments: str, label="", marks=(), **kw):
    """One error case: inference must raise a ShapeError whose message has every fragment."""
    result = kw.pop("result", None)
    name = op.name.removeprefix("nn.")
    return pytest.param(
        op, tuple(operands), result, kw, fragments, id=f"{name}:{label}", marks=marks
    )


# fmt: off
ERRORS = [
    # dtypes
    error(nn.AddOp, ["f32[3]", "i32[3]"], "dtype clash in nn.add", "f32[3]", "i32[3]",
          label="dtype"),
    error(nn.AddOp, ["bool[3]", "bool[3]"], "nn.add", "bool", label="bool"),
    error(nn.MaximumOp, ["bool[3]", "bool[]"], "nn.maximum", "bool", label="bool"),
    error(nn.FloorDivOp, ["f32[3]", "f32[]"], "nn.floor_div", "integer", "f32[3]", label="float"),
    error(nn.ModOp, ["i32[3]", "i64[3]"], "nn.mod", label="mixed"),
    error(nn.NegOp, ["bool[2]"], "nn.neg", "bool", label="bool"),
    error(nn.GeluOp, ["f32[2]"], "nn.gelu", "approximate", "erf", approximate="erf",
          label="mode"),
    error(nn.MatmulOp, ["bool[2, 2]", "bool[2, 2]"], "nn.matmul", "bool", label="bool"),
    error(nn.MatmulOp, ["f32[2, 2]", "f64[2, 2]"], "nn.matmul", "f32[2, 2]", "f64[2, 2]",
          label="dtype"),
    error(nn.ReduceSumOp, ["bool[4]"], "nn.reduce_sum", "bool", axes=[], label="bool"),
    *[error(op, ["i32[4]"], op.name, "floating-point", "i32[4]", label="int")
      for op in FLOAT_UNARY],
    error(nn.DivOp, ["i32[4]", "i32[4]"], "nn.div", "floating-point", "i32[4]", label="int"),
    error(nn.PowOp, ["i64[]", "i64[]"], "nn.pow", "floating-point", "i64[]", label="int"),
    error(nn.SoftmaxOp, ["i32[2, 3]"], "nn.softmax", "i32[2, 3]", axis=1, label="int"),
    error(nn.ReduceMeanOp, ["i32[2, 3]"], "nn.reduce_mean", "i32[2, 3]", axes=[0], label="int"),
    error(nn.RandomUniformOp, ["i32[3]"], "nn.random_uniform", "i32[3]", seed=1, label="int"),
    error(nn.Conv2dOp, ["i32[1, 1, 4, 4]", "i32[1, 1, 3, 3]"], "nn.conv2d", "i32[1, 1, 4, 4]",
          label="int", **window()),
    error(nn.Conv2dOp, ["f32[1, 1, 4, 4]", "f64[1, 1, 3, 3]"], "dtype clash in nn.conv2d",
          "f32[1, 1, 4, 4]", "f64[1, 1, 3, 3]", label="dtype", **window()),
    error(nn.MaxPool2dOp, ["i32[1, 1, 4, 4]"], "nn.max_pool2d", "i32[1, 1, 4, 4]", label="int",
          **pool()),
    # broadcasting
    error(nn.AddOp, ["f32[3]", "f32[4]"], "nn.add", "cannot broadcast", "f32[3]", "f32[4]",
          label="mismatch"),
    error(nn.SubOp, ["f32[?, 3]", "f32[2, 4]"], "nn.sub", "f32[?, 3]", "f32[2, 4]",
          label="mismatch-dyn"),
    error(nn.CmpOp, ["f32[2, 3]", "f32[3, 2]"], "nn.cmp", "f32[2, 3]", "f32[3, 2]",
          predicate="lt", label="mismatch"),
    error(nn.CmpOp, ["f32[2]", "i32[2]"], "dtype clash in nn.cmp", "f32[2]", "i32[2]",
          predicate="lt", label="dtype"),
    error(nn.CmpOp, ["f32[2]", "f32[2]"], "nn.cmp", "'gte'", predicate="gte", label="predicate"),
    error(nn.SelectOp, ["f32[2]", "f32[2]", "f32[2]"], "nn.select", "bool condition", "f32[2]",
          label="cond"),
    error(nn.SelectOp, ["bool[2]", "f32[2]", "i32[2]"], "dtype clash in nn.select", "f32[2]",
          "i32[2]", label="dtype"),
    error(nn.SelectOp, ["bool[3]", "f32[2]", "f32[2]"], "nn.select", "bool[3]", "f32[2]",
          label="mismatch"),
    # cast
    error(nn.CastOp, ["f32[3]"], "nn.cast", "result type", label="no-result"),
    error(nn.CastOp, ["f32[3]"], "nn.cast", "f32[3]", "i32[4]", result="i32[4]", label="shape"),
    # matmul
    error(nn.MatmulOp, ["f32[3, 4]", "f32[5, 6]"], "nn.matmul", "inner", "f32[3, 4]", "f32[5, 6]",
          label="inner"),
    error(nn.MatmulOp, ["f32[4]", "f32[4, 2]"], "nn.matmul", "rank 2", "f32[4]", "f32[4, 2]",
          label="rank"),
    error(nn.MatmulOp, ["f32[2, 3, 4]", "f32[5, 4, 6]"], "nn.matmul", "batch", "f32[2, 3, 4]",
          "f32[5, 4, 6]", label="batch"),
    # layout
    error(nn.TransposeOp, ["f32[3, 4]"], "nn.transpose", "[0, 0]", "f32[3, 4]", perm=[0, 0],
          label="repeat"),
    error(nn.TransposeOp, ["f32[3, 4]"], "nn.transpose", "[1, 0, 2]", "f32[3, 4]", perm=[1, 0, 2],
          label="rank"),
    error(nn.ReshapeOp, ["f32[2, 3]"], "nn.reshape", "f32[2, 3]", "[4, 2]", result="f32[4, 2]",
          label="count"),
    error(nn.ReshapeOp, ["f32[2, 3]"], "nn.reshape", "f32[2, 3]", "[?, 4]", result="f32[?, 4]",
          label="count-dyn"),
    error(nn.ReshapeOp, ["f32[?, 3]"], "nn.reshape", "f32[?, 3]", "[3, 3]", result="f32[3, 3]",
          label="dyn-to-static"),
    error(nn.ReshapeOp, ["f32[12]"], "nn.reshape", "[?, ?]", "more than one `?`",
          result="f32[?, ?]", label="two-dyn"),
    error(nn.ReshapeOp, ["f32[12]"], "nn.reshape", "target shape", label="no-result"),
    error(nn.BroadcastToOp, ["f32[3]"], "nn.broadcast_to", "f32[3]", "[4]", result="f32[4]",
          label="mismatch"),
    error(nn.BroadcastToOp, ["f32[2, 3]"], "nn.broadcast_to", "f32[2, 3]", "[3]", result="f32[3]",
          label="rank"),
    error(nn.BroadcastToOp, ["f32[3]"], "nn.broadcast_to", "like", result="f32[?, 3]",
          label="dyn-no-like"),
    error(nn.BroadcastToOp, ["f32[3]", "f32[5, 3]"], "nn.broadcast_to", "f32[5, 3]", "[4, 3]",
          result="f32[4, 3]", label="bad-like"),
    error(nn.BroadcastToOp, ["f32[3]"], "nn.broadcast_to", "target shape", label="no-result"),
    # axes
    error(nn.ReduceSumOp, ["f32[2, 3]"], "nn.reduce_sum", "f32[2, 3]", "axis 2", axes=[2],
          label="axis"),
    error(nn.ReduceMaxOp, ["f32[2, 3]"], "nn.reduce_max", "f32[2, 3]", "axis -3", axes=[-3],
          label="negative-axis"),
    error(nn.ArgmaxOp, ["f32[2, 3]"], "nn.argmax", "f32[2, 3]", "axis 2", axis=2,
          label="axis"),
    error(nn.LogSoftmaxOp, ["f32[2, 3]"], "nn.log_softmax", "f32[2, 3]", "axis 5", axis=5,
          label="axis"),
    error(nn.GatherOp, ["f32[5, 4]", "i32[3]"], "nn.gather", "f32[5, 4]", "axis 2", axis=2,
          label="axis"),
    error(nn.ConcatOp, ["f32[2, 3]", "f32[2, 3]"], "nn.concat", "f32[2, 3]", "axis 2", axis=2,
          label="axis"),
    # convolution and pooling
    error(nn.Conv2dOp, ["f32[1, 3, 8, 8]", "f32[4, 2, 3, 3]"], "nn.conv2d", "f32[1, 3, 8, 8]",
          "f32[4, 2, 3, 3]", "3 channels", label="channels", **window()),
    error(nn.Conv2dOp, ["f32[1, 6, 8, 8]", "f32[4, 2, 3, 3]"], "nn.conv2d", "groups=4",
          label="groups-divide", **window(groups=4)),
    error(nn.Conv2dOp, ["f32[1, 6, 8, 8]", "f32[4, 6, 3, 3]"], "nn.conv2d", "groups=0",
          label="groups-zero", **window(groups=0)),
    error(nn.Conv2dOp, ["f32[1, ?, 8, 8]", "f32[4, 2, 3, 3]"], "nn.conv2d", "groups=0", "? input",
          label="groups-dyn", **window(groups=0)),
    error(nn.Conv2dOp, ["f32[1, 1, 4, 4]", "f32[1, 1, 5, 5]"], "nn.conv2d", "f32[1, 1, 4, 4]",
          "f32[1, 1, 5, 5]", "window", label="too-big", **window()),
    error(nn.Conv2dOp, ["f32[1, 1, 8, 8]", "f32[1, 1, 3, 3]"], "nn.conv2d", "f32[1, 1, 8, 8]",
          "size 9", "dilation 4", label="dilated-too-big", **window(dilation=(4, 1))),
    error(nn.Conv2dOp, ["f32[1, 8, 8]", "f32[1, 1, 3, 3]"], "nn.conv2d", "rank-4", "f32[1, 8, 8]",
          label="rank", **window()),
    error(nn.Conv2dOp, ["f32[1, 1, 8, 8]", "f32[1, 3, 3]"], "nn.conv2d", "rank-4", "f32[1, 3, 3]",
          label="weight-rank", **window()),
    error(nn.Conv2dOp, ["f32[1, 1, 8, 8]", "f32[1, 1, 3, 3]"], "nn.conv2d", "stride", "[0, 1]",
          label="stride", **window(stride=(0, 1))),
    error(nn.Conv2dOp, ["f32[1, 1, 8, 8]", "f32[1, 1, 3, 3]"], "nn.conv2d", "padding", "[-1, 0]",
          label="padding", **window(padding=(-1, 0))),
    error(nn.Conv2dOp, ["f32[1, 1, 8, 8]", "f32[1, 1, 3, 3]"], "nn.conv2d", "dilation", "[1]",
          label="dilation-length", **window(dilation=(1,))),
    error(nn.MaxPool2dOp, ["f32[1, 1, 4, 4]"], "nn.max_pool2d", "padding [2, 0]", "kernel [3, 3]",
          label="pad-half", **pool(kernel=(3, 3), padding=(2, 0))),
    error(nn.AvgPool2dOp, ["f32[1, 1, 4, 4]"], "nn.avg_pool2d", "padding", "[0, -1]",
          label="pad-negative", **pool(padding=(0, -1))),
    error(nn.AvgPool2dOp, ["f32[1, 1, 4, 4]"], "nn.avg_pool2d", "kernel", "[0, 2]",
          label="kernel", **pool(kernel=(0, 2))),
    error(nn.MaxPool2dOp, ["f32[1, 1, 2, 8]"], "nn.max_pool2d", "f32[1, 1, 2, 8]", "window",
          label="too-big", **pool(kernel=(3, 3), stride=(1, 1))),
    error(nn.MaxPool2dOp, ["f32[1, 8, 8]"], "nn.max_pool2d", "rank-4", "f32[1, 8, 8]",
          label="rank", **pool()),
    # indexing
    error(nn.GatherOp, ["f32[5, 4]", "f32[3]"], "nn.gather", "integer indices", "f32[3]", axis=0,
          label="float-indices"),
    error(nn.GatherOp, ["f32[5, 4]", "bool[3]"], "nn.gather", "integer indices", "bool[3]",
          axis=0, label="bool-indices"),
    error(nn.OneHotOp, ["f32[3]"], "nn.one_hot", "integer indices", "f32[3]", num_classes=4,
          result="f32[3, 4]", label="float-indices"),
    error(nn.OneHotOp, ["i32[3]"], "nn.one_hot", "float", num_classes=4, result="i32[3, 4]",
          label="int-result"),
    error(nn.OneHotOp, ["i32[3]"], "nn.one_hot", "float", num_classes=4, label="no-result"),
    error(nn.OneHotOp, ["i32[3]"], "nn.one_hot", "num_classes", "0", num_classes=0,
          result="f32[3, 0]", label="classes"),
    error(nn.ConcatOp, [], "nn.concat", "at least one", axis=0, label="empty"),
    error(nn.ConcatOp, ["f32[2, 3]", "f32[2, 4]"], "nn.concat", "f32[2, 3]", "f32[2, 4]", axis=0,
          label="mismatch"),
    error(nn.ConcatOp, ["f32[2, 3]", "f32[2]"], "nn.concat", "f32[2, 3]", "f32[2]", axis=0,
          label="rank"),
    error(nn.ConcatOp, ["f32[2]", "i32[2]"], "dtype clash in nn.concat", "f32[2]", "i32[2]",
          axis=0, label="dtype"),
    error(nn.ConcatOp, ["f32[]", "f32[]"], "nn.concat", "f32[]", axis=0, label="scalars"),
    error(nn.SliceOp, ["f32[4, 4]"], "nn.slice", "f32[4, 4]", starts=[0], stops=[1], steps=[1],
          label="count"),
    error(nn.SliceOp, ["f32[4]"], "nn.slice", "bad bounds", "0:2:0", starts=[0], stops=[2],
          steps=[0], label="step"),
    error(nn.SliceOp, ["f32[4]"], "nn.slice", "bad bounds", "3:1:1", starts=[3], stops=[1],
          steps=[1], label="reversed"),
    error(nn.SliceOp, ["f32[4]"], "nn.slice", "bad bounds", "-1:2:1", starts=[-1], stops=[2],
          steps=[1], label="negative"),
    error(nn.Conv2dGradInputOp, ["f32[?, 6, 24, 24]", "f32[6, 1, 5, 5]"], "nn.conv2d_grad_input",
          "f32[?, 6, 23, 23]", "f32[?, 6, 24, 24]", result="f32[?, 1, 27, 27]", **window(),
          label="mismatch"),
    error(nn.Conv2dGradInputOp, ["f32[?, 6, 24, 24]", "f32[6, 1, 5, 5]"], "nn.conv2d_grad_input",
          "result type", **window(), label="no-result"),
    error(nn.Conv2dGradWeightOp, ["f32[?, 1, 28, 28]", "f32[?, 6, 24, 24]"],
          "nn.conv2d_grad_weight", "f32[?, 6, 26, 26]", result="f32[6, 1, 3, 3]", **window(),
          label="mismatch"),
    error(nn.MaxPool2dGradOp, ["f32[?, 6, 28, 28]", "f32[?, 6, 28, 28]"], "nn.max_pool2d_grad",
          "f32[?, 6, 14, 14]", "f32[?, 6, 28, 28]", **pool(), label="mismatch"),
    error(nn.AvgPool2dGradOp, ["f32[?, 6, 14, 14]"], "nn.avg_pool2d_grad", "f32[?, 6, 15, 15]",
          result="f32[?, 6, 30, 30]", **pool(), label="mismatch"),
    error(nn.ScatterAddOp, ["f32[?, 8, 16]", "i32[?, 8]"], "nn.scatter_add", "f32[?, 8, 15]",
          result="f32[65, 15]", axis=0, label="mismatch"),
    error(nn.SliceGradOp, ["f32[3]"], "nn.slice_grad", "f32[2]", "f32[3]", result="f32[10]",
          starts=[1], stops=[3], steps=[1], label="mismatch"),
    error(nn.AxisSizeOp, ["i32[4]"], "nn.axis_size", "floating-point", axes=[0], label="int"),
    error(nn.AxisSizeOp, ["f32[4]"], "nn.axis_size", "f32[4]", axes=[1], label="axis"),
    error(nn.IotaOp, ["f32[4, 2]"], "nn.iota", "f32[4, 2]", axis=2, label="axis"),
]
# fmt: on


@pytest.mark.parametrize(("op", "operands", "result", "props", "fragments"), ERRORS)
def test_shape_error(op, operands, result, props, fragments):
    with pytest.raises(ShapeError, match=mentions(*fragments)):
        infer(op, operands, result, **props)


# --- verification ------------------------------------------------------------------------------


TAMPERED = [
    # (op, operands, props, tampered result, inferred result)
    (nn.AddOp, ["f32[?, 3]", "f32[3]"], {}, "f32[?, 4]", "f32[?, 3]"),
    (nn.MulOp, ["f32[3]", "f32[3]"], {}, "f64[3]", "f32[3]"),
    (nn.CmpOp, ["f32[3]", "f32[]"], {"predicate": "lt"}, "f32[3]", "bool[3]"),
    (nn.MatmulOp, ["f32[2, 3]", "f32[3, 4]"], {}, "f32[2, 3]", "f32[2, 4]"),
    (nn.TransposeOp, ["f32[2, 3]"], {"perm": [1, 0]}, "f32[2, 3]", "f32[3, 2]"),
    (nn.ReduceSumOp, ["f32[2, 3]"], {"axes": [1], "keepdims": True}, "f32[2]", "f32[2, 1]"),
    (nn.ArgmaxOp, ["f32[2, 3]"], {"axis": 1}, "f32[2]", "i64[2]"),
    (
        nn.Conv2dOp,
        ["f32[1, 1, 8, 8]", "f32[2, 1, 3, 3]"],
        window(),
        "f32[1, 2, 8, 8]",
        "f32[1, 2, 6, 6]",
    ),
    (nn.MaxPool2dOp, ["f32[1, 1, 8, 8]"], pool(), "f32[1, 1, 8, 8]", "f32[1, 1, 4, 4]"),
    (nn.GatherOp, ["f32[5, 4]", "i32[3]"], {"axis": 0}, "f32[5, 4]", "f32[3, 4]"),
    (nn.ConcatOp, ["f32[2]", "f32[3]"], {"axis": 0}, "f32[6]", "f32[5]"),
    (nn.SliceOp, ["f32[10]"], {"starts": [0], "stops": [END], "steps": [2]}, "f32[4]", "f32[5]"),
    (nn.TrainingOp, [], {}, "f32[]", "bool[]"),
]


@pytest.mark.parametrize(
    ("op", "operands", "props", "wrong", "inferred"), TAMPERED, ids=[t[0].name for t in TAMPERED]
)
def test_verify_rejects_tampered_result_type(op, operands, props, wrong, inferred):
    module = module_with(op, operands, ty(wrong), **props)
    message = f"{op.name}: result type {wrong} does not match the inferred type {inferred}"
    with pytest.raises(VerifyException, match=re.escape(message)):
        module.verify()


@pytest.mark.parametrize(
    ("op", "operands", "props", "wrong"),
    [
        (nn.NegOp, ["f32[3]"], {}, "f32[4]"),
        (nn.SoftmaxOp, ["f32[2, 3]"], {"axis": 1}, "f64[2, 3]"),
        (nn.ConstantOp, [], {"value": dense("f32[]", [1.0])}, "f32[2]"),
    ],
    ids=lambda v: v.name if isinstance(v, type) else None,
)
def test_verify_rejects_result_type_differing_from_operand_type(op, operands, props, wrong):
    """Ops whose result type is their operand's (or value's) fail IRDL's type constraint."""
    with pytest.raises(VerifyException, match=re.escape(str(ty(wrong)))):
        module_with(op, operands, ty(wrong), **props).verify()


@pytest.mark.parametrize(
    ("op", "operands", "props", "result", "fragments"),
    [
        (nn.MatmulOp, ["f32[2, 3]", "f32[4, 5]"], {}, "f32[2, 5]", ("inner", "f32[2, 3]")),
        (nn.AddOp, ["f32[2]", "i32[2]"], {}, "f32[2]", ("dtype clash", "i32[2]")),
        (nn.ReduceSumOp, ["f32[2, 3]"], {"axes": [3]}, "f32[2]", ("axis 3",)),
        (nn.ReshapeOp, ["f32[2, 3]"], {}, "f32[5]", ("f32[2, 3]", "[5]")),
        (nn.CastOp, ["f32[2, 3]"], {}, "i32[3, 2]", ("f32[2, 3]", "i32[3, 2]")),
    ],
    ids=lambda v: v.name if isinstance(v, type) else None,
)
def test_verify_rejects_invalid_operands(op, operands, props, result, fragments):
    module = module_with(op, operands, ty(result), **props)
    with pytest.raises(VerifyException, match=mentions(op.name, *fragments)):
        module.verify()


@pytest.mark.parametrize(
    ("operands", "result"),
    [(["f32[?, 3]", "f32[3]"], "f32[4, 3]"), (["f32[4, 3]", "f32[3]"], "f32[?, 3]")],
    ids=["refined", "relaxed"],
)
def test_verify_accepts_result_differing_only_in_dynamic_dims(operands, result):
    module_with(nn.AddOp, operands, ty(result)).verify()


# --- printing and parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(("op", "operands", "result", "props", "expected"), INFERENCE)
def test_print_parse_round_trip(op, operands, result, props, expected):
    module = module_with(op, operands, hint=result and ty(result), **props)
    text = text_of(module)
    assert op.name in text
    reparsed = Parser(context(), text).parse_module()
    reparsed.verify()
    assert text_of(reparsed) == text


# --- canonicalisation --------------------------------------------------------------------------


def canonicalize(module: ModuleOp) -> ModuleOp:
    module.verify()
    CanonicalizePass().apply(context(), module)
    module.verify()
    return module


def op_names(module: ModuleOp) -> list[str]:
    return [op.name for op in body_ops(module)][:-1]  # without func.return


def binary_with_constant(op, x: str, const: DenseIntOrFPElementsAttr, const_first: bool):
    def body(args):
        c = nn.ConstantOp.build_inferred([], {"value": const})
        operands = [c.res, args[0]] if const_first else [args[0], c.res]
        return [c, op.build_inferred(operands)]

    return function_module([ty(x)], body)


@pytest.mark.parametrize(
    ("op", "x", "const", "const_first", "folds"),
    [
        (nn.AddOp, "f32[?, 4]", dense("f32[]", [0.0]), False, True),
        (nn.AddOp, "f32[?, 4]", dense("f32[]", [0.0]), True, True),
        (nn.AddOp, "i32[3]", dense("i32[3]", [0]), True, True),
        (nn.SubOp, "f32[2, 3]", dense("f32[3]", [0.0]), False, True),
        (nn.MulOp, "f32[2, 3]", dense("f32[1, 3]", [1.0]), False, True),
        (nn.MulOp, "f32[2, 3]", dense("f32[]", [1.0]), True, True),
        (nn.DivOp, "f32[?]", dense("f32[]", [1.0]), False, True),
        # not an identity
        (nn.AddOp, "f32[3]", dense("f32[]", [1.0]), False, False),
        (nn.MulOp, "f32[3]", dense("f32[3]", [1.0, 1.0, 2.0]), False, False),
        (nn.SubOp, "f32[3]", dense("f32[]", [0.0]), True, False),  # 0 - x
        (nn.DivOp, "f32[3]", dense("f32[]", [1.0]), True, False),  # 1 / x
        # the constant broadcasts x to a bigger shape
        (nn.AddOp, "f32[4]", dense("f32[3, 4]", [0.0] * 12), False, False),
        (nn.MulOp, "f32[]", dense("f32[4]", [1.0] * 4), True, False),
        (nn.SubOp, "f32[?, 1]", dense("f32[1, 5]", [0.0] * 5), False, False),
        (nn.DivOp, "f32[3]", dense("f32[2, 1]", [1.0, 1.0]), False, False),
    ],
    ids=lambda v: v.name if isinstance(v, type) else None,
)
def test_identity_operand_folds_only_when_type_is_unchanged(op, x, const, const_first, folds):
    module = canonicalize(binary_with_constant(op, x, const, const_first))
    assert (returned(module) is func_arg(module)) == folds
    assert op_names(module) == ([] if folds else ["nn.constant", op.name])


def transposes(shape: str, *perms: Sequence[int]) -> ModuleOp:
    def body(args):
        ops: list[Operation] = []
        for perm in perms:
            source = ops[-1].results[0] if ops else args[0]
            ops.append(nn.TransposeOp.build_inferred([source], props_of(perm=perm)))
        return ops

    return function_module([ty(shape)], body)


@pytest.mark.parametrize(
    ("shape", "perms"),
    [
        ("f32[3, 4]", [(1, 0), (1, 0)]),
        ("f32[2, 3, 4]", [(1, 2, 0), (1, 2, 0)]),
        ("f32[2, 3, 4]", [(1, 2, 0), (2, 0, 1)]),
        ("f32[2, ?, 4, 5]", [(3, 1, 0, 2), (2, 0, 3, 1)]),
        ("f32[2, 3, 4]", [(0, 2, 1), (1, 0, 2), (2, 1, 0)]),
        ("f32[2, 3]", [(0, 1)]),
    ],
)
def test_transpose_of_transpose_composes(shape, perms):
    dims = range(2, len(perms[0]) + 2)
    data = np.arange(np.prod(dims)).reshape(dims)
    expected = data
    for perm in perms:
        expected = np.transpose(expected, perm)
    module = transposes(shape, *perms)
    result_type = returned(module).type
    canonicalize(module)
    assert returned(module).type == result_type
    ops = body_ops(module)[:-1]
    if np.array_equal(expected, data):
        assert ops == [], "an identity permutation must vanish"
        return
    (single,) = ops
    assert isinstance(single, nn.TransposeOp)
    assert single.input is func_arg(module)
    assert np.array_equal(np.transpose(data, nn.get_ints(single.properties, "perm")), expected)


def reshapes(shape: str, *targets: str) -> ModuleOp:
    def body(args):
        ops: list[Operation] = []
        for target in targets:
            source = ops[-1].results[0] if ops else args[0]
            ops.append(nn.ReshapeOp.build_inferred([source], result_type=ty(target)))
        return ops

    return function_module([ty(shape)], body)


@pytest.mark.parametrize(
    ("shape", "targets", "expected_ops"),
    [
        ("f32[2, 3, 4]", ["f32[6, 4]", "f32[24]"], ["nn.reshape"]),
        ("f32[2, 3, 4]", ["f32[6, 4]", "f32[4, 6]", "f32[?, 2]"], ["nn.reshape"]),
        ("f32[?, 784]", ["f32[?, 28, 28]", "f32[?, 1, 28, 28]"], ["nn.reshape"]),
        ("f32[2, 3, 4]", ["f32[6, 4]", "f32[2, 3, 4]"], []),
        ("f32[?, 4]", ["f32[?, 4]"], []),
        ("f32[2, 3]", ["f32[3, 2]"], ["nn.reshape"]),
    ],
)
def test_reshape_of_reshape_folds(shape, targets, expected_ops):
    module = reshapes(shape, *targets)
    canonicalize(module)
    assert op_names(module) == expected_ops
    assert returned(module).type == ty(targets[-1])
    if expected_ops:
        assert body_ops(module)[0].operands[0] is func_arg(module)
    else:
        assert returned(module) is func_arg(module)


def test_reshape_fold_keeps_verified_ir_valid():
    module = reshapes("f32[?, 6]", "f32[?, 2]", "f32[?, 4]")  # valid for an even batch size
    canonicalize(module)
    assert op_names(module) in (["nn.reshape"], ["nn.reshape", "nn.reshape"])
    assert returned(module).type == ty("f32[?, 4]")


def test_log_of_softmax_becomes_log_softmax():
    def body(args):
        softmax = nn.SoftmaxOp.build_inferred(args, props_of(axis=-1))
        return [softmax, nn.LogOp.build_inferred([softmax.res])]

    module = canonicalize(function_module([ty("f32[?, 10]")], body))
    (fused,) = body_ops(module)[:-1]
    assert isinstance(fused, nn.LogSoftmaxOp)
    assert fused.input is func_arg(module)
    assert nn.get_int(fused.properties, "axis") == -1
    assert fused.res.type == ty("f32[?, 10]")


@pytest.mark.parametrize(("negations", "remaining"), [(1, 1), (2, 0), (3, 1), (4, 0)])
def test_double_negation_vanishes(negations, remaining):
    def body(args):
        ops: list[Operation] = []
        for _ in range(negations):
            ops.append(nn.NegOp.build_inferred([ops[-1].results[0] if ops else args[0]]))
        return ops

    module = canonicalize(function_module([ty("i32[?, 3]")], body))
    assert op_names(module) == ["nn.neg"] * remaining


def test_canonicalize_keeps_unrelated_ops():
    def body(args):
        exp = nn.ExpOp.build_inferred(args)
        return [exp, nn.LogOp.build_inferred([exp.res])]

    module = canonicalize(function_module([ty("f32[3]")], body))
    assert op_names(module) == ["nn.exp", "nn.log"]


# --- constant folding --------------------------------------------------------------------------


FOLD_LOC = FileLineColLoc(StringAttr("fold.irn"), IntAttr(3), IntAttr(7))


def constant(value: np.ndarray, spec: str) -> nn.ConstantOp:
    """An `nn.constant` of `value`, typed as `spec`'s dtype with `value`'s (static) shape."""
    t = TensorType(ty(spec).element_type, value.shape)
    attr = DenseIntOrFPElementsAttr.from_list(t, value.ravel().tolist())
    return nn.ConstantOp.build_inferred([], {"value": attr})


def on_constants(op: type[nn.NNOp], values: Sequence[tuple[str, np.ndarray]], hint=None, **props):
    """`func.func @f() { return op(constants...) }`, the op located at `FOLD_LOC`; `hint` is
    the result's dtype spec (its shape is the operands')."""

    def body(args):
        consts = [constant(v, spec) for spec, v in values]
        result_type = hint and TensorType(ty(hint).element_type, values[0][1].shape)
        folded = op.build_inferred([c.res for c in consts], props_of(**props), result_type)
        folded.location = FOLD_LOC
        return [*consts, folded]

    return function_module([], body)


FOLDING = [c for c in cases() if nn_patterns.folds(c.op)]


@pytest.mark.parametrize("case", FOLDING, ids=lambda c: c.id)
def test_elementwise_op_of_constants_folds_to_the_reference_value_bit_for_bit(case: Case):
    values = list(zip((spec for spec, _ in case.operands), case.values()))
    module = on_constants(case.op, values, case.hint, **case.props)
    (unfolded,) = reference.run(module, "f", [])
    canonicalize(module)
    (folded,) = reference.run(module, "f", [])
    assert folded.dtype == unfolded.dtype and folded.tobytes() == unfolded.tobytes()
    (const,) = body_ops(module)[:-1]
    assert isinstance(const, nn.ConstantOp) and const.location == FOLD_LOC
    assert returned(module).type == TensorType(returned(module).type.element_type, folded.shape)


def test_every_elementwise_op_with_a_formula_folds():
    folding = {c.op for c in FOLDING}
    for op in nn.NN.operations:
        trait = op.get_trait(Elementwise)
        if trait is not None and trait.formula is not None and not trait.shape_operands:
            assert op in folding, f"no op case folds {op.name}"


def test_folding_computes_in_the_result_dtype():
    # float32 exp(x) is not float64 exp(x) rounded to float32 for every x: take one where not
    xs = np.linspace(0.1, 3, 2000, dtype=np.float32)
    x = next(x for x in xs if np.exp(x) != np.float32(np.exp(np.float64(x))))
    module = canonicalize(on_constants(nn.ExpOp, [("f32", np.array(x))]))
    (const,) = body_ops(module)[:-1]
    assert const.res.type == ty("f32[]")
    assert const.value.get_values()[0] == np.exp(x)


@pytest.mark.parametrize(
    ("op", "values", "why"),
    [
        (nn.LogOp, [("f32", np.float32(0))], "-inf"),
        (nn.SqrtOp, [("f32", np.float32([4, -1]))], "nan"),
        (nn.ExpOp, [("f32", np.float32(100))], "overflow to inf"),
        (nn.NegOp, [("f32", np.float32(np.inf))], "an infinite operand"),
        (
            nn.AddOp,
            [("f32", np.ones((8, 1), np.float32)), ("f32", np.ones(9, np.float32))],
            "72 elements",
        ),
    ],
)
def test_folding_leaves_non_finite_and_large_results_to_run_time(op, values, why):
    module = canonicalize(on_constants(op, [(spec, np.asarray(v)) for spec, v in values]))
    assert op.name in op_names(module), why


def test_folding_stops_at_fold_limit():
    n = nn_patterns.FOLD_LIMIT
    row = [("f32", np.float32(1)), ("f32", np.ones(n, np.float32))]
    assert op_names(canonicalize(on_constants(nn.AddOp, row))) == ["nn.constant"]
    row[1] = ("f32", np.ones(n + 1, np.float32))
    assert "nn.add" in op_names(canonicalize(on_constants(nn.AddOp, row)))


def test_folding_keeps_a_broadcast_constant_a_scalar():
    # fusion copies scalar constants into each kernel; a folded broadcast would be a tensor
    def body(args):
        c = constant(np.array(2.0, np.float32), "f32")
        return [c, nn.BroadcastToOp.build_inferred([c.res, []], result_type=ty("f32[3]"))]

    assert op_names(canonicalize(function_module([], body))) == ["nn.constant", "nn.broadcast_to"]


def test_folding_chains_and_wraps_integers_as_the_reference_does():
    def body(args):
        big = constant(np.array(2**31 - 1, np.int32), "i32")
        one = constant(np.array(1, np.int32), "i32")
        total = nn.AddOp.build_inferred([big.res, one.res])
        negated = nn.NegOp.build_inferred([total.res])
        return [big, one, total, negated]

    module = function_module([], body)
    (unfolded,) = reference.run(module, "f", [])
    canonicalize(module)
    (const,) = body_ops(module)[:-1]
    assert isinstance(const, nn.ConstantOp)
    assert reference.run(module, "f", [])[0].tobytes() == unfolded.tobytes()
