"""Tests of the cpu target: the `fuse-elementwise` and `plan-memory` passes, the Numba emitter
(`lowering/emit_cpu.py`) and its runtime (`irnet/cpu.py`).

The reference interpreter is the oracle: every `nn` op (the gradient ops too) on small shapes,
then the forward function, `.eval` and one training step `.step` of every example program, are
run on both targets with the same inputs. float32 results agree to float32 precision, float64 ones
to 1e-10. Then: what the passes write in the IR, the emitted module running without irnet, the
disk cache (a second process compiles nothing), anomaly detection and run-time errors at source
locations, and the cpu runner as a drop-in for the trainer's.

Numba compiles each kernel on first use, which dominates the time of this file: the kernels are
cached in one folder for the whole session, and shapes are tiny.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import PROGRAMS, ROOT, console_script, subprocess_env
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    f64,
    i1,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Region
from xdsl.printer import Printer

from irnet import driver, reference
from irnet.cpu import CpuRunner, compile_stats, lower
from irnet.dialects import nn
from irnet.dialects.kernel import FusedOp
from irnet.dialects.shapes import DYN
from irnet.errors import IrnError
from irnet.lowering.emit_cpu import CpuOptions, emit_module
from irnet.params import arguments, initial_parameters

END = nn.SLICE_END
DTYPES = {"f32": f32, "f64": f64, "i32": i32, "i64": i64, "bool": i1}


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """One compile cache for the whole session: each kernel compiles once."""
    return tmp_path_factory.mktemp("irnet-cache")


def ty(spec: str) -> TensorType:
    """`"f32[?, 10]"` -> `tensor<?x10xf32>`."""
    dtype, _, dims = spec.partition("[")
    shape = [DYN if d.strip() == "?" else int(d) for d in dims.rstrip("]").split(",") if d.strip()]
    return TensorType(DTYPES[dtype], shape)


def attr(value: object) -> Attribute:
    if isinstance(value, Attribute):
        return value
    if value is True:
        return UnitAttr()
    if isinstance(value, int):
        return nn.int_attr(value)
    if isinstance(value, str):
        return StringAttr(value)
    return nn.int_array(value)


# --- every op against the reference ------------------------------------------------------------


@dataclass
class Case:
    """One op on operands `(type spec, value)`; `hint` is the result type's hint."""

    id: str
    op: type[nn.NNOp]
    operands: list[tuple[str, Callable[[np.random.Generator], np.ndarray]]]
    props: dict = field(default_factory=dict)
    hint: str | None = None
    exact: bool = False

    def function(self, name: str) -> func.FuncOp:
        block = Block(arg_types=[ty(s) for s, _ in self.operands])
        args = list(block.args)
        grouped: list = [args] if self.op is nn.ConcatOp else args
        if self.op is nn.BroadcastToOp:
            grouped = [args[0], args[1:]]
        props = {k: attr(v) for k, v in self.props.items() if v is not False}
        op = self.op.build_inferred(grouped, props, self.hint and ty(self.hint))
        block.add_ops([op, func.ReturnOp(op.results[0])])
        types = [a.type for a in args]
        return func.FuncOp(name, (types, [op.results[0].type]), Region(block))

    def values(self) -> list[np.ndarray]:
        rng = np.random.default_rng(abs(hash(self.id)) % 2**32)
        return [make(rng) for _, make in self.operands]


def floats(shape, dt="f32", low=-2.0, high=2.0):
    dtype = np.float32 if dt == "f32" else np.float64
    return lambda rng: rng.uniform(low, high, shape).astype(dtype)


def ints(shape, high, dtype=np.int32, low=0):
    return lambda rng: rng.integers(low, high, shape).astype(dtype)


def const(value):
    return lambda rng: np.asarray(value)


UNARY = {
    nn.NegOp: (-2, 2),
    nn.AbsOp: (-2, 2),
    nn.ExpOp: (-3, 3),
    nn.LogOp: (0.1, 5),
    nn.SqrtOp: (0, 5),
    nn.TanhOp: (-3, 3),
    nn.SigmoidOp: (-30, 30),
    nn.ReluOp: (-2, 2),
    nn.GeluOp: (-4, 4),
}
BINARY = [nn.AddOp, nn.SubOp, nn.MulOp, nn.DivOp, nn.PowOp, nn.MaximumOp, nn.MinimumOp]
WINDOW = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}
STRIDED = {"stride": [2, 1], "padding": [1, 1], "dilation": [1, 2], "groups": 2}


def pool(kernel, stride, padding):
    return {"kernel": kernel, "stride": stride, "padding": padding}


def cases() -> list[Case]:
    out: list[Case] = []
    for op, (low, high) in UNARY.items():
        name = op.name.removeprefix("nn.")
        out.append(Case(name, op, [("f32[?, 4]", floats((3, 4), low=low, high=high))]))
        out.append(Case(f"{name}-f64", op, [("f64[2, ?]", floats((2, 5), "f64", low, high))]))
    out.append(Case("neg-i32", nn.NegOp, [("i32[?, 3]", ints((2, 3), 9, low=-9))], exact=True))
    out.append(Case("abs-i64", nn.AbsOp, [("i64[3]", ints(3, 9, np.int64, -9))], exact=True))
    for op in BINARY:
        name = op.name.removeprefix("nn.")
        row = [("f32[?, 3]", floats((4, 3), low=0.5)), ("f32[3]", floats(3, low=0.5))]
        out.append(Case(name, op, row))
    for label, (lhs, rhs, ls, rs) in {
        "column": ("[4, 3]", "[4, 1]", (4, 3), (4, 1)),
        "both-sides": ("[4, 1]", "[1, 3]", (4, 1), (1, 3)),
        "rank-extension": ("[2, 1, 3]", "[4, 1]", (2, 1, 3), (4, 1)),
        "scalar-lhs": ("[]", "[?, 3]", (), (4, 3)),
        "dyn-both-sides": ("[?, 1, 3]", "[?, 3]", (2, 1, 3), (4, 3)),
    }.items():
        operands = [("f64" + lhs, floats(ls, "f64")), ("f64" + rhs, floats(rs, "f64"))]
        out.append(Case(f"sub-{label}", nn.SubOp, operands))
    out.append(
        Case("pow-f64", nn.PowOp, [("f64[5]", floats(5, "f64", 0.5)), ("f64[]", const(1.7))])
    )
    for op in (nn.AddOp, nn.MulOp, nn.MaximumOp):
        operands = [("i64[?, 3]", ints((2, 3), 9, np.int64, -9)), ("i64[3]", ints(3, 9, np.int64))]
        out.append(Case(op.name.removeprefix("nn.") + "-i64", op, operands, exact=True))
    for predicate in ("eq", "ne", "lt", "le", "gt", "ge"):
        operands = [("f32[?, 1]", ints((4, 1), 3, np.float32)), ("f32[3]", ints(3, 3, np.float32))]
        out.append(
            Case(f"cmp-{predicate}", nn.CmpOp, operands, {"predicate": predicate}, exact=True)
        )
    out.append(
        Case(
            "select",
            nn.SelectOp,
            [
                ("bool[4, 1]", lambda rng: rng.random((4, 1)) > 0.5),
                ("f32[3]", floats(3)),
                ("f32[1, 3]", floats((1, 3))),
            ],
            exact=True,
        )
    )
    for src, dst, values in [
        ("f32", "i32", [-2.7, -0.5, 0.5, 2.7, 3.0]),
        ("f64", "i64", [-1e10 - 0.5, -1.9, 1.9]),
        ("i64", "f32", [-3, 0, 2**20]),
        ("f32", "bool", [0.0, -0.0, 0.1, -2.0]),
        ("bool", "f64", [True, False]),
        ("f64", "f32", [1.5, -2.25]),
        ("i32", "i64", [-7, 7]),
    ]:
        dtype = reference.numpy_dtype(DTYPES[src])
        value = np.array(values, dtype)
        out.append(
            Case(
                f"cast-{src}-{dst}",
                nn.CastOp,
                [(f"{src}[?]", lambda rng, v=value: v)],
                hint=f"{dst}[?]",
                exact=True,
            )
        )
    for label, lhs, rhs, ls, rs in [
        ("2d", "[?, 4]", "[4, 5]", (3, 4), (4, 5)),
        ("batched", "[2, 3, 4]", "[2, 4, 5]", (2, 3, 4), (2, 4, 5)),
        ("broadcast-rhs", "[8, 3, 4]", "[4, 5]", (8, 3, 4), (4, 5)),
        ("broadcast-lhs", "[3, 4]", "[?, 4, 2]", (3, 4), (6, 4, 2)),
        ("broadcast-both", "[2, 1, 3, 4]", "[5, 4, 6]", (2, 1, 3, 4), (5, 4, 6)),
    ]:
        operands = [("f32" + lhs, floats(ls)), ("f32" + rhs, floats(rs))]
        out.append(Case(f"matmul-{label}", nn.MatmulOp, operands))
    out.append(
        Case(
            "matmul-f64",
            nn.MatmulOp,
            [("f64[?, 3]", floats((2, 3), "f64")), ("f64[3, 4]", floats((3, 4), "f64"))],
        )  # fmt: skip
    )
    out.append(
        Case(
            "matmul-i32",
            nn.MatmulOp,
            [("i32[2, 3]", ints((2, 3), 5, low=-5)), ("i32[3, ?]", ints((3, 4), 5, low=-5))],
            exact=True,
        )  # fmt: skip
    )
    out.append(Case("transpose", nn.TransposeOp, [("f32[?, 3, 4]", floats((2, 3, 4)))],
                    {"perm": [2, 0, 1]}, exact=True))  # fmt: skip
    out.append(Case("reshape", nn.ReshapeOp, [("f32[?, 2, 3]", floats((4, 2, 3)))],
                    hint="f32[?, 6]", exact=True))  # fmt: skip
    out.append(
        Case(
            "broadcast-to",
            nn.BroadcastToOp,
            [("f32[1, 3]", floats((1, 3))), ("f32[?, 3]", floats((4, 3)))],
            hint="f32[?, 3]",
            exact=True,
        )
    )
    out.append(Case("broadcast-to-scalar", nn.BroadcastToOp, [("f64[]", floats((), "f64"))],
                    hint="f64[2, 3]", exact=True))  # fmt: skip
    out.append(
        Case(
            "concat",
            nn.ConcatOp,
            [
                ("f32[?, 3]", floats((2, 3))),
                ("f32[4, 3]", floats((4, 3))),
                ("f32[1, 3]", floats((1, 3))),
            ],
            {"axis": 0},
            exact=True,
        )
    )
    out.append(Case("concat-last", nn.ConcatOp, [("f32[3, ?]", floats((3, 2))),
                    ("f32[3, 4]", floats((3, 4)))], {"axis": -1}, exact=True))  # fmt: skip
    for label, dims, shape, starts, stops, steps in [
        ("end", "[?, 10]", (4, 10), [0, 1], [END, 3], [1, 1]),
        ("strided", "[10, 10]", (10, 10), [1, 0], [END, 10], [3, 2]),
        ("dyn-strided", "[2, ?, 6]", (2, 5, 6), [1, 0, 5], [2, END, END], [1, 4, 1]),
    ]:
        props = {"starts": starts, "stops": stops, "steps": steps}
        out.append(Case(f"slice-{label}", nn.SliceOp, [("f32" + dims, floats(shape))], props,
                        exact=True))  # fmt: skip
        if label == "end":
            out.append(
                Case(
                    f"slice-grad-{label}",
                    nn.SliceGradOp,
                    [
                        (
                            "f32" + slice_result(dims, shape, starts, stops, steps),
                            floats(slice_shape(shape, starts, stops, steps)),
                        )
                    ],
                    props,
                    hint="f32" + dims,
                    exact=True,
                )  # fmt: skip
            )
    out.append(
        Case(
            "slice-grad-dyn",
            nn.SliceGradOp,
            [("f32[1, ?, 1]", floats((1, 5, 1)))],
            {"starts": [1, 0, 5], "stops": [2, END, END], "steps": [1, 1, 1]},
            hint="f32[2, ?, 6]",
            exact=True,
        )  # fmt: skip
    )
    out.append(
        Case(
            "slice-grad-strided",
            nn.SliceGradOp,
            [("f32[3, 5]", floats((3, 5)))],
            {"starts": [1, 0], "stops": [END, 10], "steps": [3, 2]},
            hint="f32[10, 10]",
            exact=True,
        )  # fmt: skip
    )
    for op in (nn.ReduceSumOp, nn.ReduceMeanOp, nn.ReduceMaxOp):
        name = op.name.removeprefix("nn.")
        for axes, keep in [([], False), ([1], True), ([0, 2], True), ([-1], False), ([0], False)]:
            label = f"{name}-{'-'.join(map(str, axes)) or 'all'}{'-keep' if keep else ''}"
            out.append(Case(label, op, [("f32[?, 3, 4]", floats((2, 3, 4)))],
                            {"axes": axes, "keepdims": keep}))  # fmt: skip
    out.append(Case("reduce-sum-i32", nn.ReduceSumOp, [("i32[2, 2]", const(np.array(
        [[2**30, 2**30], [1, 2]], np.int32)))], {"axes": [0]}, exact=True))  # fmt: skip
    out.append(Case("reduce-max-f64", nn.ReduceMaxOp, [("f64[?, 5]", floats((3, 5), "f64"))],
                    {"axes": [0]}, exact=True))  # fmt: skip
    for axis in (0, 1):
        out.append(Case(f"argmax-{axis}", nn.ArgmaxOp, [("f32[?, 6]", ints((5, 6), 3, np.float32))],
                        {"axis": axis}, exact=True))  # fmt: skip
        for op in (nn.SoftmaxOp, nn.LogSoftmaxOp):
            label = f"{op.name.removeprefix('nn.')}-{axis}"
            out.append(Case(label, op, [("f32[?, 5]", floats((3, 5), low=-3, high=3))],
                            {"axis": axis}))  # fmt: skip
    out.append(Case("log-softmax-f64-big", nn.LogSoftmaxOp,
                    [("f64[2, ?]", floats((2, 5), "f64", 1e4, 1e4 + 3))], {"axis": 1}))  # fmt: skip
    for label, props, x, w in [
        ("plain", WINDOW, (2, 4, 7, 6), (6, 4, 3, 3)),
        ("strided-grouped", STRIDED, (2, 4, 7, 6), (6, 2, 3, 3)),
    ]:
        operands = [("f32[?, 4, 7, 6]", floats(x)), (f"f32{list(w)}", floats(w))]
        out.append(Case(f"conv2d-{label}", nn.Conv2dOp, operands, props))
    out.append(Case("conv2d-f64", nn.Conv2dOp, [("f64[?, 2, 5, 5]", floats((2, 2, 5, 5), "f64")),
                    ("f64[3, 2, 2, 2]", floats((3, 2, 2, 2), "f64"))], WINDOW))  # fmt: skip
    for label, props, g, w, x in [
        ("plain", WINDOW, (2, 6, 5, 4), (6, 4, 3, 3), "[?, 4, 7, 6]"),
        ("strided-grouped", STRIDED, (2, 6, 4, 4), (6, 2, 3, 3), "[?, 4, 7, 6]"),
    ]:
        operands = [(f"f32[?, 6, {g[2]}, {g[3]}]", floats(g)), (f"f32{list(w)}", floats(w))]
        out.append(Case(f"conv2d-grad-input-{label}", nn.Conv2dGradInputOp, operands, props,
                        hint="f32" + x))  # fmt: skip
        operands = [("f32" + x, floats((2, 4, 7, 6))), (f"f32[?, 6, {g[2]}, {g[3]}]", floats(g))]
        out.append(Case(f"conv2d-grad-weight-{label}", nn.Conv2dGradWeightOp, operands, props,
                        hint=f"f32{list(w)}"))  # fmt: skip
    for label, props in [
        ("2x2", pool([2, 2], [2, 2], [0, 0])),
        ("3x3-pad", pool([3, 3], [2, 2], [1, 1])),
        ("overlap", pool([2, 2], [1, 1], [1, 0])),
    ]:
        x = floats((2, 3, 7, 6), low=-3, high=-1)
        out.append(Case(f"max-pool-{label}", nn.MaxPool2dOp, [("f32[?, 3, 7, 6]", x)], props))
        out.append(Case(f"avg-pool-{label}", nn.AvgPool2dOp, [("f32[?, 3, 7, 6]", x)], props))
        oh, ow = pooled((7, 6), props)
        ties = ints((2, 3, 7, 6), 3, np.float32)  # many ties: the first position wins
        operands = [("f32[?, 3, 7, 6]", ties), (f"f32[?, 3, {oh}, {ow}]", floats((2, 3, oh, ow)))]
        out.append(Case(f"max-pool-grad-{label}", nn.MaxPool2dGradOp, operands, props))
        operands = [(f"f32[?, 3, {oh}, {ow}]", floats((2, 3, oh, ow)))]
        out.append(Case(f"avg-pool-grad-{label}", nn.AvgPool2dGradOp, operands, props,
                        hint="f32[?, 3, 7, 6]"))  # fmt: skip
    out.append(Case("gather", nn.GatherOp, [("f32[6, 3]", floats((6, 3))),
                    ("i32[?, 4]", ints((2, 4), 6))], {"axis": 0}, exact=True))  # fmt: skip
    out.append(Case("gather-axis-1", nn.GatherOp, [("f64[2, 5, 3]", floats((2, 5, 3), "f64")),
                    ("i64[?]", ints(4, 5, np.int64))], {"axis": 1}, exact=True))  # fmt: skip
    out.append(Case("scatter-add", nn.ScatterAddOp, [("f32[?, 5, 3]", floats((2, 5, 3))),
                    ("i64[?, 5]", const(np.array([[5, 5, 0, 1, 5], [2, 3, 4, 5, 0]])))],
                    {"axis": 0}, hint="f32[6, 3]"))  # fmt: skip
    out.append(Case("scatter-add-axis-1", nn.ScatterAddOp, [("f64[?, 3, 2]", floats((4, 3, 2),
                    "f64")), ("i32[?]", const(np.array([1, 1, 5], np.int32)))], {"axis": 1},
                    hint="f64[?, 6, 2]"))  # fmt: skip
    out.append(Case("one-hot", nn.OneHotOp, [("i32[?, 2]", ints((3, 2), 6, low=-1))],
                    {"num_classes": 4}, hint="f32[?, 2, 4]", exact=True))  # fmt: skip
    for axes in ([], [0], [0, 2]):
        label = "-".join(map(str, axes)) or "all"
        out.append(Case(f"axis-size-{label}", nn.AxisSizeOp, [("f32[?, 3, 4]", floats((5, 3, 4)))],
                        {"axes": axes}, exact=True))  # fmt: skip
    out.append(Case("random-uniform", nn.RandomUniformOp, [("f32[?, 5]", floats((4, 5)))],
                    {"seed": 7}, exact=True))  # fmt: skip
    out.append(Case("random-uniform-f64", nn.RandomUniformOp, [("f64[3]", floats(3, "f64"))],
                    {"seed": 2}, exact=True))  # fmt: skip
    out.append(Case("training", nn.TrainingOp, [], exact=True))
    return out


def slice_shape(shape, starts, stops, steps) -> tuple[int, ...]:
    return tuple(len(range(a, min(b, n), s)) for n, a, b, s in zip(shape, starts, stops, steps))


def slice_result(dims, shape, starts, stops, steps) -> str:
    sizes = slice_shape(shape, starts, stops, steps)
    dyn = [d.strip() == "?" for d in dims.strip("[]").split(",")]
    return "[" + ", ".join("?" if q else str(n) for q, n in zip(dyn, sizes)) + "]"


def pooled(size, props) -> tuple[int, int]:
    k, s, p = props["kernel"], props["stride"], props["padding"]
    return tuple((n + 2 * p[i] - k[i]) // s[i] + 1 for i, n in enumerate(size))  # type: ignore[return-value]


CASES = cases()
CONSTANTS = [
    ("f32[2, 2]", [1.0, 2.5, -3.0, 4.0]),
    ("f64[2, 3]", [0.5]),
    ("i32[]", [7]),
    ("bool[2]", [1, 0]),
]


@pytest.fixture(scope="module")
def ops_module() -> ModuleOp:
    """One function per case (`case<i>`), and per constant (`constant<i>`)."""
    functions = [case.function(f"case{i}") for i, case in enumerate(CASES)]
    for i, (spec, values) in enumerate(CONSTANTS):
        value = DenseIntOrFPElementsAttr.from_list(ty(spec), values)
        op = nn.ConstantOp.build_inferred([], {"value": value})
        block = Block()
        block.add_ops([op, func.ReturnOp(op.res)])
        functions.append(func.FuncOp(f"constant{i}", ([], [op.res.type]), Region(block)))
    module = ModuleOp(functions)
    module.verify()
    return module


@pytest.fixture(scope="module")
def ops_runner(ops_module, cache) -> CpuRunner:
    return CpuRunner(ops_module, cache=cache, parallel=False)


def test_every_op_is_compiled():
    covered = {case.op for case in CASES} | {nn.ConstantOp}
    assert covered == set(nn.NN.operations), set(nn.NN.operations) - covered


EPS32 = float(np.finfo(np.float32).eps)


def assert_matches(actual, expected, exact=False, rtol=1e-5, atol=1e-6) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert isinstance(a, np.ndarray) and a.dtype == e.dtype and a.shape == e.shape, (a, e)
        if exact or a.dtype.kind != "f":
            np.testing.assert_array_equal(a, e)
        elif a.dtype == np.float64:
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)
        else:
            # float32 sums in another order (BLAS, loops) differ by a few ulps of the largest
            # partial sum, not of the result: near-cancelling sums need an absolute tolerance
            # scaled by the values' magnitude.
            scale = float(np.abs(e).max(initial=0.0))
            np.testing.assert_allclose(a, e, rtol=rtol, atol=max(atol, 8 * EPS32 * scale))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_op_matches_the_reference(index, ops_module, ops_runner):
    case = CASES[index]
    args = case.values()
    kw = {"training": True, "step": 3, "seed": 5}
    expected = reference.Reference(ops_module).run(f"case{index}", args, **kw)
    actual = ops_runner.run(f"case{index}", args, **kw)
    assert_matches(actual, expected, case.exact, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("index", range(len(CONSTANTS)))
def test_constants(index, ops_module, ops_runner):
    expected = reference.Reference(ops_module).run(f"constant{index}", [])
    (first,) = ops_runner.run(f"constant{index}", [])
    assert_matches([first], expected, exact=True)
    first[...] = 0  # a result is the caller's: writing it changes no later result
    assert_matches(ops_runner.run(f"constant{index}", []), expected, exact=True)


def test_extreme_values_propagate_as_in_numpy(ops_module, ops_runner):
    """NaN and Inf go through every elementwise op as in NumPy (no fast-math `nnan`/`ninf`)."""
    special = np.array([[np.nan, np.inf, -np.inf, 0.0], [-0.0, 1e30, -1e30, 1e-30]], np.float32)
    ref = reference.Reference(ops_module)
    for index, case in enumerate(CASES):
        if case.op in UNARY and case.operands[0][0] == "f32[?, 4]":
            expected = ref.run(f"case{index}", [special])
            assert_matches(ops_runner.run(f"case{index}", [special]), expected)
    for index, case in enumerate(CASES):
        if case.id in ("maximum", "minimum", "max-pool-2x2", "reduce-max-all", "softmax-1"):
            args = case.values()
            args[0].flat[::3] = np.nan
            assert_matches(ops_runner.run(f"case{index}", args), ref.run(f"case{index}", args))


def test_float64_mode_computes_in_float64(ops_module, cache):
    runner = CpuRunner(ops_module, cache=cache, float_dtype=np.float64, parallel=False)
    ref = reference.Reference(ops_module, float_dtype=np.float64)
    for index, case in enumerate(CASES):
        if case.id in ("gelu", "sub-column", "conv2d-plain", "random-uniform", "axis-size-0"):
            args = case.values()
            actual = runner.run(f"case{index}", args, seed=1, step=2)
            assert actual[0].dtype == np.float64
            assert_matches(actual, ref.run(f"case{index}", args, seed=1, step=2))


# --- whole programs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def programs(cache) -> dict[str, tuple[ModuleOp, CpuRunner]]:
    loaded = {}
    for path in PROGRAMS:
        module = driver.load(path).module
        driver.run_passes(module, ",".join(driver.PIPELINE))
        loaded[str(path)] = (module, CpuRunner(module, cache=cache, parallel=False))
    return loaded


def inputs_for(fn: func.FuncOp, batch: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Arguments of `fn`: parameters from their initialisers, random data, optimiser state."""
    rng = np.random.default_rng(seed)
    params = initial_parameters(fn, seed)
    values = []
    for arg in arguments(fn):
        dtype = reference.numpy_dtype(arg.type.element_type)
        shape = arg.concrete_shape(batch)
        if arg.kind == "param":
            values.append(params[arg.name])
        elif arg.kind == "hyper":
            values.append(np.asarray(0.01, dtype))
        elif arg.name == "t":
            values.append(np.asarray(3, dtype))
        elif dtype.kind == "i":
            values.append(rng.integers(0, 5, shape).astype(dtype))
        elif arg.kind == "state":
            values.append(np.abs(rng.normal(0, 0.01, shape)).astype(dtype))
        else:
            values.append(rng.normal(0, 1, shape).astype(dtype))
    return values


def public_functions(module: ModuleOp, suffixes=("", ".eval", ".step")) -> list[str]:
    names = [
        f.sym_name.data
        for f in module.ops
        if isinstance(f, func.FuncOp) and f.sym_visibility is None
    ]
    models = [n for n in names if "." not in n]
    return [m + s for m in models for s in suffixes if m + s in names]


@pytest.mark.parametrize("program", [str(p) for p in PROGRAMS])
def test_programs_forward_eval_and_step(program, programs):
    module, runner = programs[program]
    ref = reference.Reference(module)
    names = public_functions(module)
    assert any(n.endswith(".step") for n in names)
    for name in names:
        args = inputs_for(ref.function(name))
        kw = {"training": name.endswith(".step"), "step": 4, "seed": 7}
        expected = ref.run(name, args, **kw)
        actual = runner.run(name, args, **kw)
        assert_matches(actual, expected, rtol=1e-4, atol=1e-5)
        again = runner.run(name, args, **kw)  # buffers reused from the first call
        assert_matches(again, actual, exact=True)


def test_the_step_in_two_halves_is_the_step(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    ref = reference.Reference(module)
    step_args = inputs_for(ref.function("mnist_mlp.step"))
    loss, *rest = runner.run("mnist_mlp.step", step_args)
    n_params = 6
    data_and_params, state = step_args[: 2 + n_params], step_args[2 + n_params :]
    grad_loss, *grads = runner.run("mnist_mlp.grad", data_and_params)
    update = runner.run("mnist_mlp.update", [*data_and_params[2:], *grads, *state])
    assert_matches([grad_loss], [loss], rtol=1e-6)
    assert_matches(update, rest, rtol=1e-5, atol=1e-6)


def test_float64_program_matches_to_1e_10(cache):
    module = driver.load("examples/mnist_cnn.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    ref = reference.Reference(module, float_dtype=np.float64)
    runner = CpuRunner(module, cache=cache, float_dtype=np.float64, parallel=False)
    for name in ("mnist_cnn", "mnist_cnn.step"):
        args = inputs_for(ref.function(name), batch=2)
        expected = ref.run(name, args, training=True)
        actual = runner.run(name, args, training=True)
        for a, e in zip(actual, expected):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


def test_results_are_fresh_arrays_and_arguments_are_not_written(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    args = inputs_for(runner.function("mnist_mlp.step"))
    kept = [a.copy() for a in args]
    first = runner.run("mnist_mlp.step", args)
    snapshot = [r.copy() for r in first]
    other = inputs_for(runner.function("mnist_mlp.step"), seed=1)
    second = runner.run("mnist_mlp.step", other)
    for a, k in zip(args, kept):
        np.testing.assert_array_equal(a, k)
    for r, s in zip(first, snapshot):
        np.testing.assert_array_equal(r, s)
    assert not any(np.shares_memory(a, b) for a in first for b in second)


def test_workspace_is_allocated_once_per_shape(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    fn = runner.function("mnist_mlp.step")

    def step(batch: int) -> dict:
        runner.run("mnist_mlp.step", inputs_for(fn, batch))
        ws = runner.compiled.module._WORKSPACES["mnist_mlp.step"]
        return {key: id(buffer) for key, buffer in ws.items()}

    first = step(3)
    assert step(3) == first  # the same buffers, nothing new
    with_five = step(5)
    assert len(with_five) > len(first) and any(5 in shape for _, shape in with_five)
    assert {k: v for k, v in step(3).items() if k in first} == first


def test_cpu_runner_is_a_drop_in_for_the_trainer(cache):
    from irnet.train import open_session

    sessions = [open_session("examples/mnist_mlp.irn") for _ in range(2)]
    cpu = sessions[1]
    cpu.runner = CpuRunner(cpu.runner.module, cache=cache, parallel=False)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.normal(0, 1, (4, 784)).astype(np.float32)
        y = rng.integers(0, 10, 4).astype(np.int32)
        losses = [s.train_step([x], [y], 0.001, detect_anomaly=True) for s in sessions]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name, value in sessions[0].params.items():
        np.testing.assert_allclose(cpu.params[name], value, rtol=1e-4, atol=1e-6)
    for name, value in sessions[0].state.items():
        np.testing.assert_allclose(cpu.state[name], value, rtol=1e-4, atol=1e-7)


def test_parallel_loops_give_the_same_results(cache):
    module = driver.load("examples/mnist_mlp.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    runner = CpuRunner(module, cache=cache, parallel=True)
    assert "prange(" in runner.compiled.emitted.source
    ref = reference.Reference(module)
    args = inputs_for(ref.function("mnist_mlp.step"))
    assert_matches(runner.run("mnist_mlp.step", args), ref.run("mnist_mlp.step", args), rtol=1e-4)


# --- the passes --------------------------------------------------------------------------------


def lowered(path: str, stage: str = "plan-memory") -> ModuleOp:
    module = driver.load(path).module
    passes = list(driver.CPU_PIPELINE)
    driver.run_passes(module, ",".join(passes[: passes.index(stage) + 1]))
    return module


def function(module: ModuleOp, name: str) -> func.FuncOp:
    return next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == name)


def text(module: ModuleOp, locations: bool = True) -> str:
    out = io.StringIO()
    Printer(out, print_debuginfo=locations).print_op(module)
    return out.getvalue()


def test_fusion_groups_chains_and_keeps_every_op_and_location():
    before = driver.load("examples/mnist_mlp.irn").module
    driver.run_passes(before, ",".join(driver.PIPELINE))
    after = lowered("examples/mnist_mlp.irn", "fuse-elementwise")
    step_before = function(before, "mnist_mlp.step")
    step_after = function(after, "mnist_mlp.step")
    top = [op for op in step_after.body.block.ops if not isinstance(op, func.ReturnOp)]
    fused = [op for op in top if isinstance(op, FusedOp)]
    assert fused and len(top) < len(list(step_before.body.block.ops)) / 3
    kinds = {op.kind.data for op in fused}
    assert kinds == {"elementwise", "matmul"}

    def located(fn):  # every nn op (constants aside) with its location
        return sorted(
            (op.name, str(op.location))
            for op in fn.walk()
            if op.name.startswith("nn.") and op.name not in ("nn.constant", "nn.transpose")
        )

    assert located(step_after) == located(step_before)
    # the forward's bias and activation are the epilogue of its matmul
    first = fused[0]
    names = [op.name for op in first.body.block.ops if op.name != "nn.constant"]
    assert names[:3] == ["nn.matmul", "nn.add", "nn.relu"]


def test_fusion_never_puts_an_op_after_its_users_or_before_its_operands():
    for path in PROGRAMS:
        module = lowered(str(path), "fuse-elementwise")
        module.verify()  # SSA dominance: every value is defined before its uses
        for fn in module.ops:
            for op in fn.walk():
                if isinstance(op, FusedOp):
                    real = [o for o in op.body.block.ops if o.name not in ("nn.constant",)]
                    reductions = [o for o in real if o.name.startswith("nn.reduce")]
                    assert len(reductions) <= 1
                    if reductions:
                        assert real[-2] is reductions[0]  # the reduction ends the group


def test_fused_ir_round_trips():
    for stage in ("fuse-elementwise", "plan-memory"):
        module = lowered("examples/mnist_cnn.irn", stage)
        printed = text(module)
        parsed = driver.parse_mlir(printed, "x.mlir")
        assert text(parsed) == printed


def test_memory_plan_reuses_buffers_in_place_and_keeps_results_fresh():
    module = lowered("examples/mnist_mlp.irn")
    step = function(module, "mnist_mlp.step")
    returned = set(step.body.block.last_op.operands)
    plans: list[str] = []
    for op in step.body.block.ops:
        if "memplan.buffers" in op.attributes:
            entries = [a.data for a in op.attributes["memplan.buffers"].data]
            assert len(entries) == len(op.results)
            for result, entry in zip(op.results, entries):
                assert (entry == "fresh") == (result in returned), (op.name, entry)
            plans += entries
    slots = {p for p in plans if p.startswith("ws")}
    planned = [p for p in plans if p.startswith(("ws", "in"))]
    assert len(slots) < len(planned)  # slots are shared between values that do not overlap

    source = """
model m(x: f32[N, 4]) -> f32[N, 4] {
    return softmax(exp(softmax(x, axis=1)), axis=1)
}
"""
    module = driver.compile_source(source, "t.irn").module
    driver.run_passes(module, ",".join(driver.CPU_PIPELINE[:-1]))
    ops = list(function(module, "m").body.block.ops)
    exp = next(op for op in ops if op.name == "nn.exp")
    assert [a.data for a in exp.attributes["memplan.buffers"].data] == ["in0"]


def test_emit_pass_names_each_ops_kernel():
    module = lowered("examples/linreg.irn", "emit-cpu")
    marked = [
        op for op in function(module, "linreg.step").body.block.ops if "cpu.kernel" in op.attributes
    ]
    assert marked and all(op.attributes["cpu.kernel"].data for op in marked)


def test_dump_prints_every_lowering_stage():
    pipeline = ",".join(driver.CPU_PIPELINE)
    for stage in ("fuse-elementwise", "plan-memory", "emit-cpu"):
        result = subprocess.run(
            [
                console_script("irnet"),
                "dump",
                "examples/linreg.irn",
                "-p",
                pipeline,
                "--after",
                stage,
            ],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert "kernel.fused" in result.stdout
        assert ("memplan.buffers" in result.stdout) == (stage != "fuse-elementwise")


# --- the emitted module ------------------------------------------------------------------------


def test_emitted_module_is_readable_and_imports_no_irnet():
    module = driver.load("examples/mnist_cnn.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    emitted = emit_module(lower(module), CpuOptions(), "examples/mnist_cnn.irn")
    source = emitted.source
    assert "import irnet" not in source and "from irnet" not in source
    header = source.split("\nimport numpy")[0]
    assert "mnist_cnn_step(" in header and "check_finite" in header
    lines = source.splitlines()
    kernels = [i for i, line in enumerate(lines) if line.startswith("def k")]
    assert kernels
    for i in kernels:  # each generated kernel names its ops in a comment above it
        assert lines[i - 2].startswith("# nn.") and "(sites" in lines[i - 2]
    assert "examples/mnist_cnn.irn:" in source  # call sites name their .irn lines
    assert "np.dot(" in source and "def _conv2d(" in source and "def _max_pool2d(" in source
    compile(source, "model_cpu.py", "exec")


def test_compiled_module_runs_without_irnet(tmp_path):
    """`irnet compile` writes a module that a Python without irnet on its path runs."""
    out = tmp_path / "model_cpu.py"
    result = subprocess.run(
        [console_script("irnet"), "compile", "examples/mnist_mlp.irn", "--target", "cpu",
         "-o", str(out), "--no-parallel"],
        capture_output=True, text=True, env=subprocess_env(), cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    module = driver.load("examples/mnist_mlp.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    ref = reference.Reference(module)
    args = inputs_for(ref.function("mnist_mlp.step"))
    np.savez(tmp_path / "args.npz", *args)
    script = f"""
import sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})
import importlib.util, numpy as np
assert importlib.util.find_spec("irnet") is None, "irnet is importable"
import model_cpu
with np.load("args.npz") as f:
    args = [f[f"arr_{{i}}"] for i in range(len(f.files))]
outs = model_cpu.run("mnist_mlp.step", args, training=True, step=2, seed=3)
np.savez("outs.npz", *outs)
print(sorted(m for m in sys.modules if m.startswith("irnet")))
"""
    env = {k: v for k, v in subprocess_env().items() if k not in ("PYTHONPATH", "IRNET_CACHE_DIR")}
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    expected = ref.run("mnist_mlp.step", args, training=True, step=2, seed=3)
    with np.load(tmp_path / "outs.npz") as f:
        actual = [f[f"arr_{i}"] for i in range(len(f.files))]
    assert_matches(actual, expected, rtol=1e-4, atol=1e-5)


COLD_WARM = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from irnet import driver
from irnet.cpu import CpuRunner
from irnet.params import initial_parameters
module = driver.load("examples/linreg.irn").module
driver.run_passes(module, ",".join(driver.PIPELINE))
runner = CpuRunner(module, parallel=False)
fn = runner.function("linreg.step")
p = initial_parameters(fn, 0)
x, y = np.ones((4, 10), np.float32), np.ones((4, 1), np.float32)
runner.run("linreg.step", [x, y, p["dense_0.w"], p["dense_0.b"], np.float32(0), np.float32(0.1)])
stats = runner.stats()
stats["created"] = runner.compiled.created
stats["seconds"] = time.perf_counter() - t0
print(json.dumps(stats))
"""


def test_a_second_run_loads_compiled_kernels_from_the_cache(tmp_path):
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(tmp_path)}
    runs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", COLD_WARM], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["created"] and cold["compiled"] > 0 and cold["cache_hits"] == 0
    assert not warm["created"] and warm["compiled"] == 0 and warm["cache_hits"] > 0
    assert list(tmp_path.glob("cpu/*/model_cpu.py"))
    assert list(tmp_path.glob("cpu/*/__pycache__/*.nbi"))


def test_cache_key_changes_with_the_ir(cache):
    sources = [
        "model m(x: f32[N, 3]) -> f32[N, 3] { return exp(x) }",
        "model m(x: f32[N, 3]) -> f32[N, 3] { return tanh(x) }",
    ]
    keys = []
    for source in sources:
        module = driver.compile_source(source, "t.irn").module
        driver.run_passes(module, ",".join(driver.PIPELINE))
        keys.append(CpuRunner(module, cache=cache).compiled.key)
    assert keys[0] != keys[1]
    module = driver.compile_source(sources[0], "t.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    assert CpuRunner(module, cache=cache).compiled.key == keys[0]
    assert compile_stats(CpuRunner(module, cache=cache).compiled.module)["compiled"] == 0


# --- errors ------------------------------------------------------------------------------------


ANOMALY = """
model m(x: f32[N, 3]) -> f32[N, 3] {
    h = exp(x) * 2.0
    return log(h - 3.0) + 1.0
}
"""


def test_anomaly_detection_names_the_op_that_made_the_nan(cache):
    module = driver.compile_source(ANOMALY, "t.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    runner = CpuRunner(module, cache=cache)
    x = np.zeros((2, 3), np.float32)
    (quiet,) = runner.run("m", [x])
    assert np.isnan(quiet).all()
    with pytest.raises(IrnError) as cpu_error:
        runner.run("m", [x], check_finite=True)
    with pytest.raises(IrnError) as ref_error:
        reference.Reference(module).run("m", [x], check_finite=True)
    assert str(cpu_error.value) == str(ref_error.value)
    assert "t.irn:4:12: error: nn.log: produced NaN" in str(cpu_error.value)


def test_run_time_shape_clashes_and_bad_indices_are_located_errors(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    args = inputs_for(runner.function("mnist_mlp.eval"))
    args[1] = np.zeros(5, np.int32)  # labels for 5 rows, images for 3
    with pytest.raises(IrnError) as info:
        runner.run("mnist_mlp.eval", args)
    assert "examples/mnist_mlp.irn:" in str(info.value) and "error:" in str(info.value)

    module, runner = programs["examples/char_mlp.irn"]
    args = inputs_for(runner.function("char_mlp"))
    args[0][0, 0] = 70
    with pytest.raises(IrnError) as info:
        runner.run("char_mlp", args)
    assert "nn.gather: index 70 is out of range for axis 0 of size 65" in str(info.value)


def test_arguments_are_checked_as_by_the_reference(programs):
    module, runner = programs["examples/linreg.irn"]
    good = inputs_for(runner.function("linreg"))
    for bad in ([good[0][:, :4], *good[1:]], good[:2], [good[0].astype(np.int32), *good[1:]]):
        with pytest.raises(IrnError) as cpu_error:
            runner.run("linreg", bad)
        with pytest.raises(IrnError) as ref_error:
            reference.Reference(module).run("linreg", bad)
        assert str(cpu_error.value) == str(ref_error.value)


def test_ops_the_target_cannot_compile_are_located_errors(cache):
    module = driver.compile_source(
        "from nn import dense, mse\n"
        "model m(x: f32[N, 3]) -> f32[N, 1] { return dense(x, 1) }\n"
        "train m(y: f32[N, 1]) { loss = mse(m(x), y) }",
        "t.irn",
    ).module
    driver.run_passes(module, "inline-functions")  # the gradient request is left unexpanded
    runner = CpuRunner(module, cache=cache)
    args = inputs_for(runner.function("m.grad"))
    with pytest.raises(IrnError, match="ad.value_and_grad: the cpu target cannot compile"):
        runner.run("m.grad", args)
    args = inputs_for(runner.function("m"))
    assert_matches(runner.run("m", args), reference.Reference(module).run("m", args))


# --- the command line --------------------------------------------------------------------------


def test_irnet_run_on_the_cpu_target_prints_what_the_reference_prints(tmp_path, cache):
    x = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(cache)}
    outputs = []
    for target in ("reference", "cpu"):
        out = tmp_path / f"{target}.npy"
        result = subprocess.run(
            [console_script("irnet"), "run", "examples/linreg.irn", "--target", target,
             "-i", f"x={tmp_path / 'x.npy'}", "-o", str(out)],
            capture_output=True, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append(np.load(out))
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
