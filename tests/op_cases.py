"""The `nn` op cases and example inputs that every compiled target is tested with against the
reference interpreter (`test_cpu.py`, `test_cuda.py`), and how results are compared."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ir_helpers import DTYPES, attr, ty
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    ModuleOp,
)
from xdsl.ir import Block, Region

from irnet import reference
from irnet.dialects import nn
from irnet.params import arguments, initial_parameters

END = nn.SLICE_END
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


def nonzero(shape, dtype):
    """Divisors of both signs, never zero (integer division by zero differs between targets)."""
    return lambda rng: rng.choice([-7, -3, -2, -1, 1, 2, 5], shape).astype(dtype)


def ints(shape, high, dtype=np.int32, low=0):
    return lambda rng: rng.integers(low, high, shape).astype(dtype)


def const(value):
    return lambda rng: np.asarray(value)


@dataclass(frozen=True)
class Unary:
    """An elementwise op of one operand, as every suite checks it: its value against `numpy`,
    an independent float64 expression (`test_reference.py`), its gradient against finite
    differences through `irn`, its `.irn` spelling (`test_autodiff.py`), its type rule
    (`test_dialect.py`) and each compiled target against the reference (`cases` below)."""

    id: str
    op: type[nn.NNOp]
    low: float
    high: float
    numpy: Callable[[np.ndarray], np.ndarray]
    irn: str
    props: dict = field(default_factory=dict)


ERF = np.vectorize(math.erf, otypes=[float])
UNARY = [
    Unary("neg", nn.NegOp, -2, 2, lambda x: -x, "-x"),
    Unary("abs", nn.AbsOp, -2, 2, lambda x: np.where(x < 0, -x, x), "abs(x)"),
    Unary("exp", nn.ExpOp, -3, 3, lambda x: math.e**x, "exp(x)"),
    Unary("log", nn.LogOp, 0.1, 5, np.log, "log(x * x + 0.5)"),
    Unary("sqrt", nn.SqrtOp, 0, 5, lambda x: x**0.5, "sqrt(x * x + 0.5)"),
    Unary("tanh", nn.TanhOp, -3, 3, lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1), "tanh(x)"),
    Unary("sigmoid", nn.SigmoidOp, -30, 30, lambda x: 1 / (1 + np.exp(-x)), "sigmoid(x)"),
    Unary("relu", nn.ReluOp, -2, 2, lambda x: np.where(x > 0, x, 0.0), "relu(x)"),
    Unary(
        "gelu",
        nn.GeluOp,
        -4,
        4,
        lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "gelu(x)",
    ),
    Unary(
        "gelu-none",
        nn.GeluOp,
        -4,
        4,
        lambda x: 0.5 * x * (1 + ERF(x / math.sqrt(2))),
        'gelu(x, approximate="none")',
        {"approximate": "none"},
    ),
    Unary("erf", nn.ErfOp, -3, 3, ERF, "erf(x)"),
]
BINARY = [nn.AddOp, nn.SubOp, nn.MulOp, nn.DivOp, nn.PowOp, nn.MaximumOp, nn.MinimumOp]
WINDOW = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}
STRIDED = {"stride": [2, 1], "padding": [1, 1], "dilation": [1, 2], "groups": 2}


def pool(kernel, stride, padding):
    return {"kernel": kernel, "stride": stride, "padding": padding}


def cases() -> list[Case]:
    out: list[Case] = []
    for u in UNARY:
        f32 = [("f32[?, 4]", floats((3, 4), low=u.low, high=u.high))]
        f64 = [("f64[2, ?]", floats((2, 5), "f64", u.low, u.high))]
        out.append(Case(u.id, u.op, f32, u.props))
        out.append(Case(f"{u.id}-f64", u.op, f64, u.props))
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
    for op, dtype, spelled in ((nn.FloorDivOp, np.int32, "i32"), (nn.ModOp, np.int64, "i64")):
        operands = [(f"{spelled}[?, 3]", ints((4, 3), 20, dtype, -20)),
                    (f"{spelled}[3]", nonzero(3, dtype))]  # fmt: skip
        out.append(Case(op.name.removeprefix("nn.") + f"-{spelled}", op, operands, exact=True))
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
        if any(props["padding"]):  # padding left out of the divisor
            excluded = {**props, "exclude_pad": True}
            out.append(Case(f"avg-pool-excl-{label}", nn.AvgPool2dOp, [("f32[?, 3, 7, 6]", x)],
                            excluded))  # fmt: skip
            out.append(Case(f"avg-pool-grad-excl-{label}", nn.AvgPool2dGradOp, operands,
                            excluded, hint="f32[?, 3, 7, 6]"))  # fmt: skip
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
    for label, spec, values, axis in [
        ("last", "f32[?, 3, 4]", floats((5, 3, 4)), -1),
        ("middle", "i32[2, ?, 4]", ints((2, 6, 4), 9), 1),
        ("batch", "f64[?, 3]", floats((4, 3), "f64"), 0),
    ]:
        out.append(Case(f"iota-{label}", nn.IotaOp, [(spec, values)], {"axis": axis}, exact=True))
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


def check_case(index: int, module: ModuleOp, run: Callable) -> None:
    """Case `index` of `module` (`ops_module()`) run by a target's `run` against the
    reference."""
    case = CASES[index]
    args = case.values()
    kw = {"training": True, "step": 3, "seed": 5}
    expected = reference.Reference(module).run(f"case{index}", args, **kw)
    assert_matches(run(f"case{index}", args, **kw), expected, case.exact, rtol=2e-5, atol=2e-6)


def check_extreme_values(module: ModuleOp, run: Callable) -> None:
    """NaN and Inf go through every elementwise op, and NaN through the maximum-like ops, as
    in NumPy."""
    special = np.array([[np.nan, np.inf, -np.inf, 0.0], [-0.0, 1e30, -1e30, 1e-30]], np.float32)
    ref = reference.Reference(module)
    for index, case in enumerate(CASES):
        if case.id in {u.id for u in UNARY}:
            assert_matches(run(f"case{index}", [special]), ref.run(f"case{index}", [special]))
    for index, case in enumerate(CASES):
        if case.id in ("maximum", "minimum", "max-pool-2x2", "reduce-max-all", "softmax-1"):
            args = case.values()
            args[0].flat[::3] = np.nan
            assert_matches(run(f"case{index}", args), ref.run(f"case{index}", args))
