"""Tests of the NumPy reference interpreter (`irnet/reference.py`), the oracle of the project.

Every op's value is compared with a NumPy computation written out here (never with the
reference's own helpers), in float32 and float64; convolution and pooling with naive loops on
tiny shapes; the gradient ops with central differences in float64 or with their naive
definition. Then: whole programs, float64 mode, the checks of values against the IR, and the
random stream.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from conftest import PROGRAMS
from ir_helpers import DTYPES, attr, mentions, ty
from op_cases import UNARY
from xdsl.dialects import func, test
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    ModuleOp,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from irnet import driver, reference
from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.shapes import DYN
from irnet.initializers import initialize

END = nn.SLICE_END
NP = {"f32": np.float32, "f64": np.float64}
FLOATS = pytest.mark.parametrize("dt", ["f32", "f64"])

# --- building one-op functions (as in test_dialect.py) ------------------------------------------


def function_module(
    arg_types: Sequence[Attribute], body: Callable[[Sequence[SSAValue]], list[Operation]]
) -> ModuleOp:
    """`func.func @f(args) { body; return <last result> }` in a module."""
    block = Block(arg_types=arg_types)
    ops = body(block.args)
    result = ops[-1].results[0]
    block.add_ops([*ops, func.ReturnOp(result)])
    return ModuleOp([func.FuncOp("f", (list(arg_types), [result.type]), Region(block))])


def module_with(op: type[nn.NNOp], specs, *, hint=None, result_type=None, **props) -> ModuleOp:
    """A function of one `op` on arguments typed `specs`, with its inferred result type (`hint`
    is the result-type hint) or with `result_type` as given."""

    def body(args):
        grouped = [list(args)] if op is nn.ConcatOp else list(args)
        if op is nn.BroadcastToOp:
            grouped = [args[0], list(args[1:])]
        properties = {name: attr(v) for name, v in props.items() if v is not False}
        if result_type is not None:
            return [op(operands=grouped, properties=properties, result_types=[ty(result_type)])]
        return [op.build_inferred(grouped, properties, hint and ty(hint))]

    return function_module([ty(s) for s in specs], body)


def run_op(op: type[nn.NNOp], *operands: tuple[str, object], float_dtype=None, **kw) -> np.ndarray:
    """The value of one `op` on `(type spec, value)` operands; `kw` as for `module_with`."""
    module = module_with(op, [spec for spec, _ in operands], **kw)
    (value,) = reference.run(module, "f", [v for _, v in operands], float_dtype=float_dtype)
    return value


def run_error(fn: Callable[[], object]) -> str:
    with pytest.raises(IrnError) as info:
        fn()
    return str(info.value)


# --- data and comparison -----------------------------------------------------------------------


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def data(rng, dt: str, shape: Sequence[int], low=-2.0, high=2.0) -> np.ndarray:
    return rng.uniform(low, high, tuple(shape)).astype(NP[dt])


def wide(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64)


def check(actual: np.ndarray, expected, dt: str, scale: float = 1.0) -> None:
    """`actual` has dtype `dt` and equals `expected` to `dt`'s precision (`scale` for sums)."""
    assert isinstance(actual, np.ndarray) and actual.dtype == NP[dt]
    tol = (2e-6 if dt == "f32" else 1e-13) * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def spec(dt: str, dims: str) -> str:
    return f"{dt}{dims}"


def test_every_op_has_an_implementation():
    ops = set(nn.NN.operations)
    assert ops <= reference.IMPLEMENTED_OPS, ops - reference.IMPLEMENTED_OPS
    assert {op for op in reference.IMPLEMENTED_OPS if op.name.startswith("nn.")} == ops


# --- elementwise -------------------------------------------------------------------------------

SHAPES = [("[]", ()), ("[5]", (5,)), ("[?, 4]", (3, 4)), ("[2, ?, 4]", (2, 3, 4))]


@FLOATS
@pytest.mark.parametrize("unary", UNARY, ids=lambda u: u.id)
def test_unary(unary, dt, rng):
    for dims, shape in SHAPES:
        x = data(rng, dt, shape, unary.low, unary.high)
        out = run_op(unary.op, (spec(dt, dims), x), **unary.props)
        check(out, unary.numpy(wide(x)), dt, scale=4)


@FLOATS
def test_activations_at_extremes(dt):
    x = np.array([-1e4, -800, -100, -30, 0, 30, 100, 800, 1e4], NP[dt])
    s = run_op(nn.SigmoidOp, (f"{dt}[9]", x))
    assert np.all(np.isfinite(s)) and s[4] == 0.5 and s[0] == 0 and s[-1] == 1
    assert np.all(np.diff(s) >= 0)
    g = run_op(nn.GeluOp, (f"{dt}[9]", x))
    np.testing.assert_array_equal(g[4:], x[4:])
    assert np.all(g[:4] == 0)
    r = run_op(nn.ReluOp, (f"{dt}[9]", x))
    assert r[4] == 0 and np.all(r[:4] == 0) and np.all(r[5:] == x[5:])


@pytest.mark.parametrize("dt", ["i32", "i64"])
def test_integer_unary_keeps_the_dtype(dt):
    x = np.array([[-3, 0, 7]], np.dtype(f"int{dt[1:]}"))
    for op, expected in [(nn.NegOp, [[3, 0, -7]]), (nn.AbsOp, [[3, 0, 7]])]:
        out = run_op(op, (f"{dt}[?, 3]", x))
        assert out.dtype == x.dtype
        np.testing.assert_array_equal(out, expected)


BINARY = {
    nn.AddOp: lambda a, b: a + b,
    nn.SubOp: lambda a, b: a - b,
    nn.MulOp: lambda a, b: a * b,
    nn.DivOp: lambda a, b: a / b,
    nn.PowOp: lambda a, b: np.exp(b * np.log(a)),
    nn.MaximumOp: lambda a, b: np.where(a >= b, a, b),
    nn.MinimumOp: lambda a, b: np.where(a <= b, a, b),
}
BROADCASTS = [  # lhs type, rhs type, lhs run-time shape, rhs run-time shape
    pytest.param("[4, 3]", "[4, 3]", (4, 3), (4, 3), id="same"),
    pytest.param("[4, 3]", "[]", (4, 3), (), id="scalar-rhs"),
    pytest.param("[]", "[?, 3]", (), (4, 3), id="scalar-lhs"),
    pytest.param("[?, 3]", "[3]", (5, 3), (3,), id="row"),
    pytest.param("[4, 3]", "[4, 1]", (4, 3), (4, 1), id="column"),
    pytest.param("[4, 1]", "[1, 3]", (4, 1), (1, 3), id="both-sides"),
    pytest.param("[2, 1, 3]", "[4, 1]", (2, 1, 3), (4, 1), id="rank-extension"),
    pytest.param("[?, 1, 3]", "[?, 3]", (2, 1, 3), (4, 3), id="dyn-both-sides"),
    pytest.param("[?, ?]", "[?, 1]", (2, 3), (2, 1), id="dyn-column"),
    pytest.param("[?, 3]", "[1, 3]", (1, 3), (1, 3), id="dyn-that-is-1"),
]


def expand(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both operands repeated out to their common shape, by hand."""
    rank = max(a.ndim, b.ndim)
    a, b = a.reshape((1,) * (rank - a.ndim) + a.shape), b.reshape((1,) * (rank - b.ndim) + b.shape)
    shape = tuple(max(m, n) for m, n in zip(a.shape, b.shape))
    for axis, size in enumerate(shape):
        a = a.repeat(size // a.shape[axis], axis) if a.shape[axis] == 1 else a
        b = b.repeat(size // b.shape[axis], axis) if b.shape[axis] == 1 else b
    return a, b


@FLOATS
@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
@pytest.mark.parametrize(("lhs", "rhs", "lshape", "rshape"), BROADCASTS)
def test_binary_broadcasts(op, dt, lhs, rhs, lshape, rshape, rng):
    a, b = data(rng, dt, lshape, 0.5, 2), data(rng, dt, rshape, 0.5, 2)
    out = run_op(op, (spec(dt, lhs), a), (spec(dt, rhs), b))
    check(out, BINARY[op](*expand(wide(a), wide(b))), dt, scale=4)


@pytest.mark.parametrize("dt", ["i32", "i64"])
@pytest.mark.parametrize("op", [nn.AddOp, nn.SubOp, nn.MulOp, nn.MaximumOp, nn.MinimumOp])
def test_integer_binary_keeps_the_dtype(op, dt, rng):
    dtype = np.dtype(f"int{dt[1:]}")
    a, b = rng.integers(-9, 9, (4, 3)).astype(dtype), rng.integers(-9, 9, (3,)).astype(dtype)
    out = run_op(op, (f"{dt}[?, 3]", a), (f"{dt}[3]", b))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, BINARY[op](*expand(a, b)))


PREDICATES = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


@pytest.mark.parametrize("dt", ["f32", "f64", "i32"])
@pytest.mark.parametrize("predicate", PREDICATES)
def test_cmp(predicate, dt, rng):
    a = rng.integers(-2, 3, (4, 1)).astype(NP.get(dt, np.int32))  # small integers: many ties
    b = rng.integers(-2, 3, (3,)).astype(a.dtype)
    out = run_op(nn.CmpOp, (f"{dt}[?, 1]", a), (f"{dt}[3]", b), predicate=predicate)
    assert out.dtype == np.bool_ and out.shape == (4, 3)
    np.testing.assert_array_equal(out, PREDICATES[predicate](*expand(a, b)))


@FLOATS
def test_select_broadcasts_all_three(dt, rng):
    cond = rng.random((4, 1)) > 0.5
    a, b = data(rng, dt, (3,)), data(rng, dt, (1, 3))
    out = run_op(nn.SelectOp, ("bool[4, 1]", cond), (f"{dt}[3]", a), (f"{dt}[1, 3]", b))
    c, x = expand(cond, a)
    _, y = expand(cond, b)
    check(out, [[x[i, j] if c[i, j] else y[i, j] for j in range(3)] for i in range(4)], dt)
    scalar = run_op(
        nn.SelectOp, ("bool[?]", cond[:, 0]), (f"{dt}[?]", a[:1].repeat(4)), (f"{dt}[]", b[0, 0])
    )
    check(scalar, np.where(cond[:, 0], a[0], b[0, 0]), dt)


CASTS = [
    ("f32", "i32", [-2.7, -0.5, 0.5, 2.7, 3.0], [-2, 0, 0, 2, 3]),
    ("f64", "i64", [-1e10 - 0.5, -1.9, 1.9], [-10_000_000_000, -1, 1]),
    ("i64", "f32", [-3, 0, 2**20], [-3.0, 0.0, 2.0**20]),
    ("f32", "bool", [0.0, -0.0, 0.1, -2.0], [False, False, True, True]),
    ("bool", "f64", [True, False], [1.0, 0.0]),
    ("f64", "f32", [1.5, -2.25], [1.5, -2.25]),
    ("i32", "i64", [-7, 7], [-7, 7]),
]


@pytest.mark.parametrize(("src", "dst", "values", "expected"), CASTS)
def test_cast(src, dst, values, expected):
    x = np.array(values, reference.numpy_dtype(DTYPES[src]))
    out = run_op(nn.CastOp, (f"{src}[?]", x), hint=f"{dst}[?]")
    assert out.dtype == reference.numpy_dtype(DTYPES[dst])
    np.testing.assert_array_equal(out, expected)


def dense(spec_: str, values) -> DenseIntOrFPElementsAttr:
    return DenseIntOrFPElementsAttr.from_list(ty(spec_), list(values))


@pytest.mark.parametrize(
    ("spec_", "values", "expected"),
    [
        ("f32[2, 2]", [1.0, 2.5, -3.0, 4.0], [[1.0, 2.5], [-3.0, 4.0]]),
        ("f64[2, 3]", [0.5], np.full((2, 3), 0.5)),
        ("i32[]", [7], 7),
        ("i64[3]", [1, -2, 3], [1, -2, 3]),
        ("bool[2]", [1, 0], [True, False]),
    ],
)
def test_constant(spec_, values, expected):
    const = dense(spec_, values)
    module = function_module([], lambda args: [nn.ConstantOp.build_inferred([], {"value": const})])
    (out,) = reference.run(module, "f", [])
    assert out.dtype == reference.numpy_dtype(ty(spec_).element_type)
    assert out.shape == tuple(ty(spec_).get_shape())
    np.testing.assert_array_equal(out, expected)


# --- linear algebra and layout -----------------------------------------------------------------


@FLOATS
@pytest.mark.parametrize(
    ("lhs", "rhs", "lshape", "rshape"),
    [
        ("[?, 4]", "[4, 5]", (3, 4), (4, 5)),
        ("[2, 3, 4]", "[2, 4, 5]", (2, 3, 4), (2, 4, 5)),
        ("[8, 3, 4]", "[4, 5]", (8, 3, 4), (4, 5)),
        ("[3, 4]", "[?, 4, 2]", (3, 4), (6, 4, 2)),
        ("[2, 1, 3, 4]", "[5, 4, 6]", (2, 1, 3, 4), (5, 4, 6)),
    ],
)
def test_matmul(dt, lhs, rhs, lshape, rshape, rng):
    a, b = data(rng, dt, lshape), data(rng, dt, rshape)
    out = run_op(nn.MatmulOp, (spec(dt, lhs), a), (spec(dt, rhs), b))
    batch = np.broadcast_shapes(lshape[:-2], rshape[:-2])
    a64 = np.broadcast_to(wide(a), (*batch, *lshape[-2:]))
    b64 = np.broadcast_to(wide(b), (*batch, *rshape[-2:]))
    expected = (a64[..., :, :, None] * b64[..., None, :, :]).sum(axis=-2)
    check(out, expected, dt, scale=8)


@FLOATS
def test_transpose(dt, rng):
    x = data(rng, dt, (2, 3, 4))
    out = run_op(nn.TransposeOp, (f"{dt}[?, 3, 4]", x), perm=[2, 0, 1])
    check(out, [[[x[i, j, k] for j in range(3)] for i in range(2)] for k in range(4)], dt)
    check(run_op(nn.TransposeOp, (f"{dt}[2, ?]", x[:, :, 0]), perm=[1, 0]), x[:, :, 0].T, dt)


@FLOATS
@pytest.mark.parametrize(
    ("src", "dst", "shape", "expected_shape"),
    [
        ("[?, 2, 3]", "[?, 6]", (4, 2, 3), (4, 6)),
        ("[6]", "[2, 3]", (6,), (2, 3)),
        ("[2, 3, 4]", "[?, 12]", (2, 3, 4), (2, 12)),
        ("[1, 1]", "[]", (1, 1), ()),
        ("[?, 4]", "[?, 2, 2]", (3, 4), (3, 2, 2)),
    ],
)
def test_reshape_is_row_major(dt, src, dst, shape, expected_shape):
    x = np.arange(math.prod(shape), dtype=NP[dt]).reshape(shape)
    out = run_op(nn.ReshapeOp, (spec(dt, src), x), hint=spec(dt, dst))
    assert out.shape == expected_shape
    check(out.ravel(), list(range(x.size)), dt)


@FLOATS
def test_broadcast_to(dt, rng):
    row = data(rng, dt, (1, 3))
    out = run_op(
        nn.BroadcastToOp,
        (f"{dt}[1, 3]", row),
        (f"{dt}[?, 3]", np.zeros((4, 3))),
        hint=f"{dt}[?, 3]",
    )
    check(out, np.concatenate([row] * 4), dt)
    scalar = run_op(nn.BroadcastToOp, (f"{dt}[]", row[0, 0]), hint=f"{dt}[2, 3]")
    check(scalar, np.full((2, 3), row[0, 0]), dt)
    dyn = run_op(
        nn.BroadcastToOp,
        (f"{dt}[?]", row[0]),
        (f"{dt}[?, ?]", np.zeros((2, 3))),
        hint=f"{dt}[?, ?]",
    )
    check(dyn, np.concatenate([row] * 2), dt)
    assert out.flags.writeable  # results handed back can be written to


@FLOATS
def test_concat(dt, rng):
    a, b, c = data(rng, dt, (2, 3)), data(rng, dt, (4, 3)), data(rng, dt, (1, 3))
    out = run_op(nn.ConcatOp, (f"{dt}[?, 3]", a), (f"{dt}[4, 3]", b), (f"{dt}[1, 3]", c), axis=0)
    check(out, [*a.tolist(), *b.tolist(), *c.tolist()], dt)
    out = run_op(nn.ConcatOp, (f"{dt}[3, ?]", a.T), (f"{dt}[3, 4]", b.T), axis=-1)
    check(out, [list(r) + list(s) for r, s in zip(a.T, b.T)], dt)


@FLOATS
@pytest.mark.parametrize(
    ("dims", "shape", "starts", "stops", "steps"),
    [
        ("[?, 10]", (4, 10), [0, 1], [END, 3], [1, 1]),
        ("[?]", (9,), [3], [END], [2]),
        ("[10, 10]", (10, 10), [1, 0], [END, 10], [3, 2]),
        ("[4, ?]", (4, 7), [5, 2], [9, 5], [1, 2]),
        ("[10]", (10,), [8], [20], [1]),
        ("[2, ?, 6]", (2, 5, 6), [1, 0, 5], [2, END, END], [1, 4, 1]),
    ],
)
def test_slice(dt, dims, shape, starts, stops, steps, rng):
    x = data(rng, dt, shape)
    out = run_op(nn.SliceOp, (spec(dt, dims), x), starts=starts, stops=stops, steps=steps)
    ranges = [range(a, min(b, n), s) for a, b, s, n in zip(starts, stops, steps, shape)]
    picked = np.zeros([len(r) for r in ranges])
    for pos in np.ndindex(picked.shape):
        picked[pos] = x[tuple(r[p] for r, p in zip(ranges, pos))]
    check(out, picked, dt)


# --- reductions and normalisations -------------------------------------------------------------


REDUCTIONS = {
    nn.ReduceSumOp: lambda x, axes: np.add.reduce(x, axes),
    nn.ReduceMeanOp: lambda x, axes: np.add.reduce(x, axes) / math.prod(x.shape[a] for a in axes),
    nn.ReduceMaxOp: lambda x, axes: np.maximum.reduce(x, axes),
}


@FLOATS
@pytest.mark.parametrize("op", REDUCTIONS, ids=lambda op: op.name)
@pytest.mark.parametrize(
    ("axes", "keepdims"),
    [
        ([], False),
        ([], True),
        ([1], False),
        ([1], True),
        ([-1], False),
        ([0, 2], True),
        ([-3, -2], False),
    ],
)
def test_reductions(op, dt, axes, keepdims, rng):
    x = data(rng, dt, (2, 3, 4))
    out = run_op(op, (f"{dt}[?, 3, 4]", x), axes=axes, keepdims=keepdims)
    normal = tuple(sorted(a % 3 for a in axes)) or (0, 1, 2)
    expected = REDUCTIONS[op](wide(x), normal)
    if keepdims:
        expected = expected.reshape([1 if a in normal else n for a, n in enumerate(x.shape)])
    assert out.shape == np.shape(expected)
    check(out, expected, dt, scale=4)


def test_integer_sum_keeps_the_dtype():
    x = np.array([[2**30, 2**30], [1, 2]], np.int32)
    out = run_op(nn.ReduceSumOp, ("i32[2, 2]", x), axes=[0])
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [2**30 + 1, 2**30 + 2])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_argmax_takes_the_first_of_ties(axis, rng):
    x = rng.integers(0, 3, (5, 6)).astype(np.float32)
    out = run_op(nn.ArgmaxOp, ("f32[?, 6]", x), axis=axis)
    assert out.dtype == np.int64
    rows = np.moveaxis(x, axis, -1)
    np.testing.assert_array_equal(out, [list(row).index(max(row)) for row in rows])


@FLOATS
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(dt, axis, rng):
    x = data(rng, dt, (3, 5), -3, 3)
    e = np.exp(wide(x))
    soft = e / e.sum(axis=axis, keepdims=True)
    check(run_op(nn.SoftmaxOp, (f"{dt}[?, 5]", x), axis=axis), soft, dt, scale=4)
    check(run_op(nn.LogSoftmaxOp, (f"{dt}[?, 5]", x), axis=axis), np.log(soft), dt, scale=4)
    # stable: inputs far beyond exp's range give the values of the inputs shifted back
    big = x + NP[dt](1e4)
    e = np.exp(wide(big) - 1e4)
    soft = e / e.sum(axis=axis, keepdims=True)
    check(run_op(nn.SoftmaxOp, (f"{dt}[?, 5]", big), axis=axis), soft, dt, scale=4)
    check(run_op(nn.LogSoftmaxOp, (f"{dt}[?, 5]", big), axis=axis), np.log(soft), dt, scale=4)


@pytest.mark.parametrize(("axes", "expected"), [([], 60), ([0], 5), ([0, 2], 20), ([-1, -2], 12)])
@pytest.mark.parametrize(("dt", "float_dtype"), [("f32", None), ("f64", None), ("f32", np.float64)])
def test_axis_size(axes, expected, dt, float_dtype):
    out = run_op(
        nn.AxisSizeOp, (f"{dt}[?, 3, 4]", np.zeros((5, 3, 4))), axes=axes, float_dtype=float_dtype
    )
    assert out.shape == () and out == expected
    assert out.dtype == (float_dtype or NP[dt])


# --- convolution and pooling -------------------------------------------------------------------


def dims_of(shape: Sequence[int], dynamic: Sequence[int] = ()) -> str:
    """`[?, 4, 5]`: `shape` spelt as a type, `?` at the axes `dynamic`."""
    return "[" + ", ".join("?" if a in dynamic else str(n) for a, n in enumerate(shape)) + "]"


def out_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def naive_conv2d(x, w, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    o, i, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out = np.zeros((n, o, out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)))
    for b, oc, y, z in np.ndindex(out.shape):
        group = oc // (o // groups)
        for ic, ky, kx in np.ndindex(i, kh, kw):
            row, col = y * sh + ky * dh - ph, z * sw + kx * dw - pw
            if 0 <= row < h and 0 <= col < wd:
                out[b, oc, y, z] += x[b, group * i + ic, row, col] * w[oc, ic, ky, kx]
    return out


CONVS = [  # stride, padding, dilation, groups
    pytest.param((1, 1), (0, 0), (1, 1), 1, id="plain"),
    pytest.param((2, 2), (0, 0), (1, 1), 1, id="stride"),
    pytest.param((1, 1), (1, 2), (1, 1), 1, id="padding"),
    pytest.param((1, 1), (0, 0), (2, 1), 1, id="dilation"),
    pytest.param((1, 1), (1, 1), (1, 1), 2, id="groups"),
    pytest.param((1, 1), (1, 1), (1, 1), 4, id="depthwise"),
    pytest.param((2, 1), (1, 1), (1, 2), 2, id="all"),
]


def conv_props(stride, padding, dilation, groups):
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def conv_module(dt: str, x_shape, w_shape, props) -> ModuleOp:
    return module_with(nn.Conv2dOp, [dt + dims_of(x_shape, [0]), dt + dims_of(w_shape)], **props)


@FLOATS
@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), CONVS)
def test_conv2d_against_loops(dt, stride, padding, dilation, groups, rng):
    props = conv_props(stride, padding, dilation, groups)
    x, w = data(rng, dt, (2, 4, 7, 6)), data(rng, dt, (6 if groups < 4 else 4, 4 // groups, 3, 3))
    (out,) = reference.run(conv_module(dt, x.shape, w.shape, props), "f", [x, w])
    check(out, naive_conv2d(wide(x), wide(w), stride, padding, dilation, groups), dt, scale=20)


def naive_pool(x, kernel, stride, padding, kind):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    out = np.zeros((n, c, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)))
    for b, ch, y, z in np.ndindex(out.shape):
        window = [
            x[b, ch, r, s] if 0 <= r < h and 0 <= s < w else None
            for r in range(y * sh - ph, y * sh - ph + kh)
            for s in range(z * sw - pw, z * sw - pw + kw)
        ]
        inside = [v for v in window if v is not None]
        divisor = kh * kw if kind == "avg" else len(inside)  # "avg-excl": pixels inside only
        out[b, ch, y, z] = max(inside) if kind == "max" else sum(inside) / divisor
    return out


POOLS = [  # kernel, stride, padding
    pytest.param((2, 2), (2, 2), (0, 0), id="2x2"),
    pytest.param((3, 3), (2, 2), (1, 1), id="3x3-pad"),
    pytest.param((3, 2), (1, 2), (1, 1), id="uneven"),
    pytest.param((2, 2), (1, 1), (1, 0), id="overlap"),
]


def pool_props(kernel, stride, padding):
    return {"kernel": kernel, "stride": stride, "padding": padding}


@FLOATS
@pytest.mark.parametrize(
    ("op", "kind"), [(nn.MaxPool2dOp, "max"), (nn.AvgPool2dOp, "avg"), (nn.AvgPool2dOp, "avg-excl")]
)
@pytest.mark.parametrize(("kernel", "stride", "padding"), POOLS)
def test_pool_against_loops(dt, op, kind, kernel, stride, padding, rng):
    x = data(rng, dt, (2, 3, 7, 6), -3, -1)  # all negative: a zero from the padding must not win
    props = {**pool_props(kernel, stride, padding), "exclude_pad": kind == "avg-excl"}
    out = run_op(op, (f"{dt}[?, 3, 7, 6]", x), **props)
    check(out, naive_pool(wide(x), kernel, stride, padding, kind), dt, scale=4)


# --- indexing ----------------------------------------------------------------------------------


@FLOATS
@pytest.mark.parametrize(
    ("axis", "index_shape"), [(0, (4,)), (0, (2, 3)), (1, (5,)), (-1, (2, 2)), (2, ())]
)
def test_gather(dt, axis, index_shape, rng):
    x = data(rng, dt, (3, 4, 5))
    size = x.shape[axis]
    indices = rng.integers(0, size, index_shape).astype(np.int32)
    indices.flat[0] = size - 1
    out = run_op(
        nn.GatherOp, (f"{dt}[?, 4, 5]", x), (f"i32{list(index_shape)}", indices), axis=axis
    )
    a, k = axis % 3, len(index_shape)
    expected = np.zeros((*x.shape[:a], *index_shape, *x.shape[a + 1 :]))
    for pos in np.ndindex(expected.shape):
        expected[pos] = x[(*pos[:a], indices[pos[a : a + k]], *pos[a + k :])]
    check(out, expected, dt)


@pytest.mark.parametrize("bad", [4, -1, 100])
def test_gather_out_of_range_is_an_error(bad):
    module = module_with(nn.GatherOp, ["f32[4, 2]", "i64[?]"], axis=0)
    message = run_error(lambda: reference.run(module, "f", [np.zeros((4, 2)), [0, bad, 1]]))
    assert re.search(mentions("nn.gather", f"index {bad}", "out of range", "size 4"), message)


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_one_hot(dt):
    indices = np.array([[0, 3], [2, 7]], np.int32)  # 7 is out of range: an all-zero row
    out = run_op(nn.OneHotOp, ("i32[?, 2]", indices), hint=f"{dt}[?, 2, 4]", num_classes=4)
    expected = np.zeros((2, 2, 4))
    for pos in np.ndindex(indices.shape):
        if indices[pos] < 4:
            expected[(*pos, indices[pos])] = 1
    check(out, expected, dt)


# --- the gradient ops --------------------------------------------------------------------------


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, eps=1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for pos in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[pos] += eps
        down[pos] -= eps
        grad[pos] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), CONVS)
def test_conv2d_grads_are_the_vjps(stride, padding, dilation, groups, rng):
    props = conv_props(stride, padding, dilation, groups)
    x, w = rng.normal(size=(2, 4, 6, 5)), rng.normal(size=(4, 4 // groups, 3, 2))
    forward = reference.Reference(conv_module("f64", x.shape, w.shape, props))
    (y,) = forward.run("f", [x, w])
    g = rng.normal(size=y.shape)
    x_spec, w_spec = "f64" + dims_of(x.shape, [0]), "f64" + dims_of(w.shape)
    g_spec = "f64" + dims_of(y.shape, [0])

    dx = run_op(nn.Conv2dGradInputOp, (g_spec, g), (w_spec, w), hint=x_spec, **props)
    expected_dx = central_difference(lambda v: np.sum(forward.run("f", [v, w])[0] * g), x)
    np.testing.assert_allclose(dx, expected_dx, atol=1e-7)

    dw = run_op(nn.Conv2dGradWeightOp, (x_spec, x), (g_spec, g), hint=w_spec, **props)
    expected_dw = central_difference(lambda v: np.sum(forward.run("f", [x, v])[0] * g), w)
    np.testing.assert_allclose(dw, expected_dw, atol=1e-7)


def test_conv2d_grad_input_with_dynamic_spatial_dims(rng):
    """Stride 1 determines a `?` height and width from the gradient; stride 2 cannot."""
    g, w = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(3, 2, 3, 3))
    props = conv_props((1, 1), (1, 0), (1, 1), 1)
    dx = run_op(
        nn.Conv2dGradInputOp,
        ("f64[?, 3, ?, ?]", g),
        ("f64[3, 2, 3, 3]", w),
        hint="f64[?, 2, ?, ?]",
        **props,
    )
    assert dx.shape == (2, 2, 4, 7)
    module = module_with(
        nn.Conv2dGradInputOp,
        ["f64[?, 3, ?, ?]", "f64[3, 2, 3, 3]"],
        hint="f64[?, 2, ?, ?]",
        **conv_props((2, 2), (0, 0), (1, 1), 1),
    )
    message = run_error(lambda: reference.run(module, "f", [g, w]))
    assert re.search(
        mentions("nn.conv2d_grad_input", "dimension 2 of the result type f64[?, 2, ?, ?]"), message
    )


def naive_max_pool_grad(x, g, kernel, stride, padding):
    """Each window's gradient to the first (row-major) position of its maximum."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    out = np.zeros(x.shape)
    for b, c, y, z in np.ndindex(g.shape):
        best = None
        for r, s in np.ndindex(kh, kw):
            row, col = y * sh - ph + r, z * sw - pw + s
            inside = 0 <= row < x.shape[2] and 0 <= col < x.shape[3]
            if inside and (best is None or x[b, c, row, col] > x[b, c, best[0], best[1]]):
                best = (row, col)
        out[b, c, best[0], best[1]] += g[b, c, y, z]
    return out


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOLS)
def test_pool_grads_are_the_vjps(kernel, stride, padding, rng):
    props = pool_props(kernel, stride, padding)
    x = rng.normal(size=(2, 2, 5, 6))
    pooled = reference.Reference(module_with(nn.MaxPool2dOp, ["f64[?, 2, 5, 6]"], **props))
    averaged = reference.Reference(module_with(nn.AvgPool2dOp, ["f64[?, 2, 5, 6]"], **props))
    (y,) = pooled.run("f", [x])
    g = rng.normal(size=y.shape)
    g_spec = "f64" + dims_of(y.shape, [0])

    dmax = run_op(nn.MaxPool2dGradOp, ("f64[?, 2, 5, 6]", x), (g_spec, g), **props)
    np.testing.assert_allclose(
        dmax, central_difference(lambda v: np.sum(pooled.run("f", [v])[0] * g), x), atol=1e-7
    )

    davg = run_op(nn.AvgPool2dGradOp, (g_spec, g), hint="f64[?, 2, 5, 6]", **props)
    np.testing.assert_allclose(
        davg, central_difference(lambda v: np.sum(averaged.run("f", [v])[0] * g), x), atol=1e-7
    )
    excluded = {**props, "exclude_pad": True}
    averaged = reference.Reference(module_with(nn.AvgPool2dOp, ["f64[?, 2, 5, 6]"], **excluded))
    davg = run_op(nn.AvgPool2dGradOp, (g_spec, g), hint="f64[?, 2, 5, 6]", **excluded)
    np.testing.assert_allclose(
        davg, central_difference(lambda v: np.sum(averaged.run("f", [v])[0] * g), x), atol=1e-7
    )


@FLOATS
@pytest.mark.parametrize(("kernel", "stride", "padding"), POOLS)
def test_max_pool_grad_sends_ties_to_the_first_position(dt, kernel, stride, padding, rng):
    x = rng.integers(-1, 2, (2, 2, 5, 6)).astype(NP[dt])  # many ties, overlapping windows
    props = pool_props(kernel, stride, padding)
    (y,) = reference.run(module_with(nn.MaxPool2dOp, [f"{dt}[?, 2, 5, 6]"], **props), "f", [x])
    g = data(rng, dt, y.shape)
    g_spec = dt + dims_of(y.shape, [0])
    out = run_op(nn.MaxPool2dGradOp, (f"{dt}[?, 2, 5, 6]", x), (g_spec, g), **props)
    check(out, naive_max_pool_grad(wide(x), wide(g), kernel, stride, padding), dt, scale=4)


@FLOATS
@pytest.mark.parametrize(
    ("table", "index_shape", "axis", "grad"),
    [
        ("[6, 3]", (4,), 0, "[?, 3]"),
        ("[6, 3]", (2, 5), 0, "[?, 5, 3]"),
        ("[?, 6, 2]", (3,), 1, "[?, 3, 2]"),
        ("[2, 3, 6]", (2, 2), -1, "[2, 3, 2, 2]"),
    ],
)
def test_scatter_add_accumulates_repeated_indices(dt, table, index_shape, axis, grad, rng):
    table_shape = [4 if d == "?" else int(d) for d in table.strip("[]").split(", ")]  # ? = 4
    a = axis % len(table_shape)
    indices = rng.integers(0, 6, index_shape).astype(np.int64)
    indices.flat[:2] = 5  # a repeated index
    g_shape = (*table_shape[:a], *index_shape, *table_shape[a + 1 :])
    g = data(rng, dt, g_shape)
    out = run_op(
        nn.ScatterAddOp,
        (spec(dt, grad), g),
        (f"i64{list(index_shape)}", indices),
        hint=spec(dt, table),
        axis=axis,
    )
    expected = np.zeros(table_shape)
    for pos in np.ndindex(g_shape):
        k = len(index_shape)
        expected[(*pos[:a], indices[pos[a : a + k]], *pos[a + k :])] += g[pos]
    check(out, expected, dt, scale=4)


def test_scatter_add_cannot_size_a_dynamic_axis():
    module = module_with(nn.ScatterAddOp, ["f32[?, 3]", "i32[?]"], hint="f32[?, 3]", axis=0)
    message = run_error(lambda: reference.run(module, "f", [np.ones((2, 3)), [0, 1]]))
    assert re.search(
        mentions("nn.scatter_add", "dimension 0 of the result type f32[?, 3]"), message
    )


@FLOATS
@pytest.mark.parametrize(
    ("dims", "shape", "starts", "stops", "steps"),
    [
        ("[?, 10]", (4, 10), [0, 1], [END, 3], [1, 1]),
        ("[?]", (9,), [3], [END], [1]),
        ("[10, 7]", (10, 7), [1, 0], [END, 7], [3, 2]),
        ("[2, ?, 6]", (2, 5, 6), [1, 0, 5], [2, END, END], [1, 1, 1]),
    ],
)
def test_slice_grad_is_the_transpose_of_slice(dt, dims, shape, starts, stops, steps, rng):
    props = {"starts": starts, "stops": stops, "steps": steps}
    x = data(rng, dt, shape)
    y = run_op(nn.SliceOp, (spec(dt, dims), x), **props)
    g = data(rng, dt, y.shape)
    dynamic = [a for a, d in enumerate(dims.strip("[]").split(", ")) if d == "?"]
    g_spec = dt + dims_of(y.shape, dynamic)
    out = run_op(nn.SliceGradOp, (g_spec, g), hint=spec(dt, dims), **props)
    expected = np.zeros(shape)
    ranges = [range(a, min(b, n), s) for a, b, s, n in zip(starts, stops, steps, shape)]
    for pos in np.ndindex(g.shape):
        expected[tuple(r[p] for r, p in zip(ranges, pos))] = g[pos]
    check(out, expected, dt)
    np.testing.assert_allclose(np.sum(wide(y) * g), np.sum(wide(x) * out), rtol=1e-5)


def test_slice_grad_cannot_size_a_strided_dynamic_dim():
    module = module_with(
        nn.SliceGradOp, ["f32[?]"], hint="f32[?]", starts=[0], stops=[END], steps=[2]
    )
    message = run_error(lambda: reference.run(module, "f", [np.ones(3)]))
    assert re.search(mentions("nn.slice_grad", "dimension 0"), message)


# --- randomness and mode -----------------------------------------------------------------------


def compile_irn(text: str, passes: str = "inline-functions") -> ModuleOp:
    return driver.run_passes(driver.compile_source(text, "t.irn").module, passes)


TWO_DRAWS = """
model m(x: f32[N, 4]) -> f32[N, 8] {
    return concat([random_uniform(x), random_uniform(x)], axis=1)
}
"""


def test_random_uniform_replays_by_seed_and_step():
    module = compile_irn(TWO_DRAWS)
    x = np.zeros((3, 4), np.float32)
    draw = lambda **kw: reference.run(module, "m", [x], **kw)[0]  # noqa: E731
    first = draw(seed=1, step=0)
    assert first.dtype == np.float32 and first.shape == (3, 8)
    assert np.all((first >= 0) & (first < 1))
    np.testing.assert_array_equal(first, draw(seed=1, step=0))
    assert not np.array_equal(first[:, :4], first[:, 4:])  # two ops, two seeds
    for other in (draw(seed=1, step=1), draw(seed=2, step=0)):
        assert not np.any(first == other)


def test_random_uniform_stream_is_documented():
    """`default_rng([seed, op seed, step]).random(shape)`, in float64 whatever the dtype."""
    module = module_with(nn.RandomUniformOp, ["f32[?, 5]"], seed=7)
    expected = np.random.default_rng([3, 7, 11]).random((4, 5))
    (f32_run,) = reference.run(module, "f", [np.zeros((4, 5))], seed=3, step=11)
    (f64_run,) = reference.run(
        module, "f", [np.zeros((4, 5))], seed=3, step=11, float_dtype=np.float64
    )
    np.testing.assert_array_equal(f64_run, expected)
    np.testing.assert_array_equal(f32_run, expected.astype(np.float32))


def test_training_flag():
    module = function_module([], lambda args: [nn.TrainingOp.build_inferred([])])
    for flag in (False, True):
        (out,) = reference.run(module, "f", [], training=flag)
        assert out.dtype == np.bool_ and out.shape == () and bool(out) is flag
    assert not reference.run(module, "f", [])[0]


def test_dropout_only_in_training():
    module = compile_irn(
        "import nn\nmodel m(x: f32[N, 400]) -> f32[N, 400] { return nn.dropout(x, 0.25) }"
    )
    x = np.ones((5, 400), np.float32)
    np.testing.assert_array_equal(reference.run(module, "m", [x])[0], x)
    (dropped,) = reference.run(module, "m", [x], training=True, step=3)
    assert set(np.unique(dropped)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.2 < np.mean(dropped == 0) < 0.3
    np.testing.assert_array_equal(
        dropped, reference.run(module, "m", [x], training=True, step=3)[0]
    )


# --- whole programs ----------------------------------------------------------------------------


def random_arguments(fn: func.FuncOp, rng, batch: int = 3) -> list[np.ndarray]:
    """Inputs for each argument of `fn`: parameters from their initialiser plus noise, integer
    inputs (labels, token ids) small enough for every class count, float targets in [0, 1)."""
    values = []
    for arg, attrs in zip(fn.body.block.args, fn.arg_attrs.data):
        shape = tuple(batch if d == DYN else d for d in arg.type.get_shape())
        dtype = reference.numpy_dtype(arg.type.element_type)
        if "nn.init" in attrs.data:
            init = initialize(attrs.data["nn.init"].data, shape, np.dtype(np.float64), rng)
            values.append((init + 0.1 * rng.normal(size=shape)).astype(dtype))
        elif dtype.kind == "i":
            values.append(rng.integers(0, 5, shape).astype(dtype))
        else:
            values.append(rng.uniform(0, 1, shape).astype(dtype))
    return values


def functions(module: ModuleOp) -> list[func.FuncOp]:
    return [op for op in module.ops if isinstance(op, func.FuncOp)]


def check_results(fn: func.FuncOp, results: Sequence[np.ndarray]) -> None:
    outputs = fn.function_type.outputs.data
    assert len(results) == len(outputs)
    for value, t in zip(results, outputs):
        assert reference.fits(t.get_shape(), value.shape), (fn.sym_name.data, value.shape, t)
        assert value.dtype == reference.numpy_dtype(t.element_type)
        assert np.all(np.isfinite(value)), fn.sym_name.data


@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_programs_run_forward_and_loss(program, rng):
    module = driver.run_passes(driver.load(program).module, "inline-functions,canonicalize,cse,dce")
    ran = 0
    for fn in functions(module):
        if fn.sym_name.data.endswith((".grad", ".step")):
            continue  # needs the autodiff pass; see below
        check_results(fn, reference.run(module, fn.sym_name.data, random_arguments(fn, rng)))
        ran += 1
    assert ran >= 2


@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_gradient_requests_need_the_autodiff_pass(program, rng):
    module = driver.run_passes(driver.load(program).module, "inline-functions")
    grads = [fn for fn in functions(module) if fn.sym_name.data.endswith(".grad")]
    if not grads:
        pytest.skip("no train block")
    args = random_arguments(grads[0], rng)
    message = run_error(lambda: reference.run(module, grads[0].sym_name.data, args))
    assert re.search(mentions("ad.", "no reference implementation", "autodiff"), message)
    if "autodiff" in driver.PASSES:
        expanded = driver.run_passes(module, "autodiff")
        check_results(grads[0], reference.run(expanded, grads[0].sym_name.data, args))


def test_float64_mode(rng):
    module = driver.run_passes(driver.load("examples/mnist_cnn.irn").module, "inline-functions")
    loss = next(fn for fn in functions(module) if fn.sym_name.data == "mnist_cnn.loss")
    args = random_arguments(loss, rng)
    (single,) = reference.run(module, "mnist_cnn.loss", args)
    (double,) = reference.run(module, "mnist_cnn.loss", args, float_dtype=np.float64)
    assert single.dtype == np.float32 and double.dtype == np.float64
    np.testing.assert_allclose(double, single, rtol=1e-5)
    # the ops that make floats from a type follow float_dtype too
    one_hot = run_op(
        nn.OneHotOp, ("i32[?]", [1, 0]), hint="f32[?, 3]", num_classes=3, float_dtype=np.float64
    )
    assert one_hot.dtype == np.float64
    const = function_module(
        [], lambda args: [nn.ConstantOp.build_inferred([], {"value": dense("f32[]", [0.1])})]
    )
    (c,) = reference.run(const, "f", [], float_dtype=np.float64)
    assert c.dtype == np.float64 and c == np.float64(np.float32(0.1))
    cast = run_op(nn.CastOp, ("i32[2]", [1, 2]), hint="f32[2]", float_dtype=np.float64)
    assert cast.dtype == np.float64


def test_reference_object_runs_by_name_many_times(rng):
    module = driver.run_passes(driver.load("examples/linreg.irn").module, "inline-functions")
    ref = reference.Reference(module)
    fn = next(fn for fn in functions(module) if fn.sym_name.data == "linreg")
    x, w, b = random_arguments(fn, rng)
    (by_position,) = ref.run("@linreg", [x, w, b])
    (by_name,) = ref.run("linreg", {"x": x, "dense_0.w": w, "dense_0.b": b})
    np.testing.assert_array_equal(by_position, by_name)
    np.testing.assert_allclose(by_position, wide(x) @ wide(w) + wide(b), rtol=1e-5)


# --- checks against the IR ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp() -> ModuleOp:
    return driver.run_passes(driver.load("examples/mnist_mlp.irn").module, "inline-functions")


def mlp_args(mlp, **replace):
    fn = next(fn for fn in functions(mlp) if fn.sym_name.data == "mnist_mlp.loss")
    names = [a.name_hint for a in fn.body.block.args]
    args = dict(zip(names, random_arguments(fn, np.random.default_rng(0))))
    return {**args, **replace}


@pytest.mark.parametrize(
    ("replace", "fragments"),
    [
        (
            {"x": np.zeros((3, 785))},
            ["argument 0 `x` of @mnist_mlp.loss", "[3, 785]", "f32[?, 784]"],
        ),
        ({"x": np.zeros(784)}, ["`x`", "[784]", "f32[?, 784]"]),
        ({"dense_0.w": np.zeros((784, 255))}, ["`dense_0.w`", "[784, 255]", "f32[784, 256]"]),
        ({"x": np.zeros((3, 784), np.int64)}, ["`x`", "int64[3, 784]", "f32[?, 784]"]),
        ({"y": np.zeros(3)}, ["`y`", "float64[3]", "i32[?]"]),
        ({"y": np.zeros(3, bool)}, ["`y`", "bool[3]", "i32[?]"]),
    ],
)
def test_arguments_must_fit_their_types(mlp, replace, fragments):
    message = run_error(lambda: reference.run(mlp, "mnist_mlp.loss", mlp_args(mlp, **replace)))
    assert re.search(mentions(*fragments), message)


def test_argument_count_names_and_function_are_checked(mlp):
    args = mlp_args(mlp)
    message = run_error(lambda: reference.run(mlp, "mnist_mlp.loss", list(args.values())[:-1]))
    assert re.search(
        mentions("@mnist_mlp.loss takes 8 arguments", "x, y, dense_0.w", "got 7"), message
    )
    del args["y"]
    message = run_error(lambda: reference.run(mlp, "mnist_mlp.loss", {**args, "z": 1}))
    assert re.search(mentions("missing y", "unknown z"), message)
    message = run_error(lambda: reference.run(mlp, "nope", []))
    assert re.search(mentions("no function @nope", "@mnist_mlp.loss"), message)


def test_a_dynamic_dim_never_broadcasts_at_run_time():
    module = compile_irn(
        "model m(x: f32[N, 3], y: f32[M, 3]) -> f32[?, 3] {\n    return x + y\n}\n"
    )
    ok = reference.run(module, "m", [np.ones((5, 3)), np.ones((5, 3))])[0]
    np.testing.assert_array_equal(ok, np.full((5, 3), 2.0))
    message = run_error(lambda: reference.run(module, "m", [np.ones((1, 3)), np.ones((5, 3))]))
    assert re.search(
        mentions("t.irn:2:", "nn.add", "[1, 3] and [5, 3]", "[?, 3] and [?, 3]", "static size 1"),
        message,
    )


@pytest.mark.parametrize(
    ("op", "specs", "values", "hint"),
    [
        (nn.AddOp, ["f32[?, 3]", "f32[5, 3]"], [np.ones((1, 3)), np.ones((5, 3))], None),
        (
            nn.MatmulOp,
            ["f32[?, 2, 2]", "f32[3, 2, 2]"],
            [np.ones((1, 2, 2)), np.ones((3, 2, 2))],
            None,
        ),
        (nn.BroadcastToOp, ["f32[?]", "f32[?, 4]"], [np.ones(1), np.ones((2, 4))], "f32[?, 4]"),
        (
            nn.SelectOp,
            ["bool[?]", "f32[4]", "f32[4]"],
            [np.ones(1, bool), np.ones(4), np.ones(4)],
            None,
        ),
    ],
)
def test_static_broadcast_is_enforced_for_every_broadcasting_op(op, specs, values, hint):
    module = module_with(op, specs, hint=hint)
    message = run_error(lambda: reference.run(module, "f", values))
    assert re.search(mentions(op.name, "cannot broadcast", "static size 1"), message)


def test_run_time_shape_clashes_are_located_errors():
    module = module_with(nn.ReshapeOp, ["f32[?, 5]"], hint="f32[?, 3]")
    message = run_error(lambda: reference.run(module, "f", [np.ones((2, 5))]))
    assert re.search(mentions("nn.reshape", "float32[2, 5]"), message)
    module = module_with(nn.AddOp, ["f32[?, 3]", "f32[?, 3]"], result_type="f32[5, 3]")
    message = run_error(lambda: reference.run(module, "f", [np.ones((4, 3)), np.ones((4, 3))]))
    assert re.search(mentions("nn.add", "produced float32[4, 3]", "f32[5, 3]"), message)


def test_unknown_ops_are_refused_before_running():
    module = function_module(
        [ty("f32[2]")], lambda args: [test.TestOp(operands=[args[0]], result_types=[ty("f32[2]")])]
    )
    message = run_error(lambda: reference.run(module, "f", [np.ones(2)]))
    assert re.search(
        mentions("test.op", "no reference implementation", "only `nn` and `func`"), message
    )


@pytest.mark.parametrize(
    ("op", "props", "expected"),
    [
        (nn.ReduceSumOp, {"axes": [0], "keepdims": True}, 2.5),
        (nn.ReduceMaxOp, {"axes": [0]}, 2.5),
        (nn.AxisSizeOp, {"axes": [0]}, 1.0),
        (nn.SoftmaxOp, {"axis": 0}, 1.0),
        (nn.LogSoftmaxOp, {"axis": 0}, 0.0),
        (nn.ArgmaxOp, {"axis": 0}, 0),
    ],
)
def test_axis_0_of_a_scalar(op, props, expected):
    """The dialect accepts axis 0 of a rank-0 tensor: it means the only element."""
    out = run_op(op, ("f32[]", np.float32(2.5)), **props)
    assert out.shape == () and out == expected


@pytest.mark.parametrize("dt", [np.int32, np.int64])
def test_floor_div_and_mod_round_towards_minus_infinity_as_numpy(dt):
    """`//` and `%` of the language on integer tensors, at run time and at compile time."""
    import irnet

    spelled = np.dtype(dt).name.replace("int", "i")
    model = irnet.loads(
        f"model m(a: {spelled}[N, 4], b: {spelled}[4]) -> {spelled}[N, 4] "
        "{ return (a // b) * 100 + a % b + (-7 // 2) * (-7 % 2) }",
        target="reference",
    )
    a = np.array([[-7, 7, -8, 9], [0, -1, 13, -13]], dt)
    b = np.array([2, -2, 3, -5], dt)
    expected = np.floor_divide(a, b) * 100 + np.mod(a, b) + (-4) * 1
    result = model(a, b)
    assert result.dtype == dt
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal((a // b) * b + a % b, a)  # the identity NumPy keeps too


@pytest.mark.parametrize(("shape", "axis"), [((2, 3, 4), 1), ((2, 3, 4), -1), ((5,), 0), ((), 0)])
def test_iota_is_arange_along_the_axis(shape, axis):
    x = np.zeros(shape, np.float32)
    out = run_op(nn.IotaOp, (f"f32{list(shape)}", x), axis=axis)
    expected = np.indices(shape)[axis] if shape else np.zeros((), np.int64)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)
