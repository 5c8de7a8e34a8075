"""The builtins `zeros`, `ones` and `full`: tensors of one value, whose shape may name dims known
only at run time (the `N` of `x: f32[N, 8]`). Such a size reaches the IR as the argument whose
type bound the dim: an `nn.broadcast_to` of the scalar `like` that argument, its `like_axes`
naming the axis. Each program runs on the reference interpreter, the cpu target and the cuda
target (in Numba's simulator) against NumPy; then the op's type rule, the ONNX export of a
fill, and the located errors."""

from __future__ import annotations

from collections.abc import Callable
from textwrap import dedent

import numpy as np
import pytest
from ir_helpers import attr, mentions, ty
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Builtin
from xdsl.parser import Parser

import irnet
from irnet import cuda, driver, reference
from irnet.cpu import CpuRunner
from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.shapes import ShapeError

NO_CUDA = cuda.device_problem()
TARGETS = [
    "reference",
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(NO_CUDA is not None, reason=str(NO_CUDA))),
]


def compiled(source: str):
    """The module of `source` after the pipeline every target runs."""
    module = driver.compile_source(dedent(source), "fill.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    return module


def run(target: str, source: str, args: list[np.ndarray], cache) -> np.ndarray:
    """Model `m` of `source` on `target`, its result on the host."""
    module = compiled(source)
    if target == "reference":
        (out,) = reference.Reference(module).run("m", args)
    elif target == "cpu":
        (out,) = CpuRunner(module, cache=cache, parallel=False).run("m", args)
    else:
        (out,) = cuda.CudaRunner(module, cache=cache).run("m", args)
    return np.asarray(out)


def floats(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)


# --- values on every target --------------------------------------------------------------------

Program = tuple[str, list[np.ndarray], Callable[..., np.ndarray]]

PROGRAMS: dict[str, Program] = {
    "model-input-batch": (
        """
        model m(x: f32[N, 8]) -> f32[N, 16] {
            h = zeros([N, 16])
            return h + sum(x, axis=1, keepdims=true)
        }
        """,
        [floats(3, 8)],
        lambda x: np.zeros((3, 16), np.float32) + x.sum(axis=1, keepdims=True),
    ),
    "def-argument-dtype-variable": (
        """
        def f(x: F[N, T, I]) -> F[N, 32] {
            h = zeros([N, 32], dtype=F)
            return h + sum(sum(x, axis=2), axis=1, keepdims=true)
        }
        model m(x: f32[N, 5, 3]) -> f32[N, 32] { return f(x) }
        """,
        [floats(2, 5, 3)],
        lambda x: np.zeros((2, 32), np.float32) + x.sum(axis=(1, 2))[:, None],
    ),
    "static-shapes": (
        """
        model m(x: f32[2, 3]) -> f32[2, 3] {
            return x + ones([2, 3]) + full([3], 0.5) + full([], 2)
        }
        """,
        [floats(2, 3)],
        lambda x: x + np.float32(3.5),
    ),
    "two-arguments-size-it": (
        """
        model m(x: f32[N, 2], y: f32[M, 3]) -> f32[M, 4, N] {
            return full([M, 4, N], -1.5) + reshape(sum(y, axis=1), [M, 1, 1])
        }
        """,
        [floats(3, 2), floats(2, 3)],
        lambda x, y: np.full((2, 4, 3), -1.5, np.float32) + y.sum(axis=1)[:, None, None],
    ),
    "a-dim-twice-not-leading": (
        """
        model m(x: f32[4, T]) -> f32[T, 2, T] { return ones([T, 2, T]) * 3.0 }
        """,
        [floats(4, 3)],
        lambda x: np.full((3, 2, 3), 3, np.float32),
    ),
    "ints-and-bools": (
        """
        model m(x: f32[N, 3]) -> i32[N, 3] {
            big = where(x > 0.0, full([N, 3], 7, dtype=i32), zeros([N, 3], dtype=i32))
            return where(full([N, 1], false, dtype=bool), ones([N, 3], dtype=i32), big)
        }
        """,
        [floats(4, 3)],
        lambda x: np.where(x > 0, 7, 0).astype(np.int32),
    ),
    "a-scalar-tensor-value": (
        """
        model m(x: f32[N, 3]) -> f32[N, 2] { return full([N, 2], mean(x)) }
        """,
        [floats(2, 3)],
        lambda x: np.full((2, 2), x.mean(), np.float32),
    ),
    "input-values-never-read": (
        """
        model m(x: f32[N, 4]) -> f32[N, 4] { return ones([N, 4]) }
        """,
        [np.array([[np.nan, np.inf, -np.inf, 1e38]] * 3, np.float32)],
        lambda x: np.ones((3, 4), np.float32),
    ),
    "a-gradient-through-a-fill": (
        """
        def f(x: f32[N, 3]) -> f32 { return sum((x + full([N, 3], 2.0)) ** 2.0) }
        model m(x: f32[N, 3]) -> f32[N, 3] { return grad(f)(x) }
        """,
        [floats(2, 3)],
        lambda x: 2 * (x + 2),
    ),
    "an-empty-batch": (
        """
        model m(x: f32[N, 8]) -> f32[N, 16] { return full([N, 16], 2.0) + x[:, 0:1] }
        """,
        [np.zeros((0, 8), np.float32)],
        lambda x: np.zeros((0, 16), np.float32),
    ),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_fills_agree_with_numpy(name, target, cache):
    source, args, expected = PROGRAMS[name]
    want = expected(*args)
    got = run(target, source, args, cache)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_the_size_comes_from_the_argument_not_from_arithmetic_on_it():
    """One broadcast of the scalar, `like` the input whose type bound N: nothing computes on
    the input's values (no `x * 0`, which NaN would poison)."""
    source = "model m(x: f32[N, 8]) -> f32[N, 16] { return zeros([N, 16]) }"
    module = driver.compile_source(source, "fill.irn").module
    ops = list(module.walk())
    (fill,) = [op for op in ops if isinstance(op, nn.BroadcastToOp)]
    assert fill.like is next(op for op in ops if isinstance(op, func.FuncOp)).args[0]
    assert fill.like_axis_map() == (0, -1)
    assert isinstance(fill.input.owner, nn.ConstantOp) and fill.input.owner.splat_value() == 0
    assert not any(isinstance(op, nn.MulOp | nn.AddOp) for op in ops)


def test_float64_builds_an_f32_fill_as_f64():
    model = irnet.loads(
        "model m(x: f32[N, 2]) -> f32[N, 3] { return ones([N, 3]) }",
        target="reference",
        float64=True,
    )
    out = model(np.zeros((2, 2)))
    assert out.dtype == np.float64 and out.tolist() == [[1.0] * 3] * 2


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_a_train_blocks_loss_sizes_a_fill_by_the_model_input_and_target(target):
    source = """
        from nn import dense, mse
        model m(x: f32[N, 3]) -> f32[N, 1] { return dense(x, 1) + zeros([N, 1]) }
        train m(y: f32[B, 1]) {
            loss = mse(m(x) + zeros([N, 1]), y + full([B, 1], 0.5))
        }
    """
    model = irnet.loads(dedent(source), target=target)
    x, y = floats(4, 3), floats(4, 1)
    (loss,) = np.atleast_1d(model.compile("loss")(x, y))
    np.testing.assert_allclose(loss, np.mean((model(x) - y - 0.5) ** 2), rtol=1e-5)
    assert model.train_step(x, y) == pytest.approx(float(loss), rel=1e-5)  # through autodiff


# --- the op: nn.broadcast_to with like_axes ----------------------------------------------------


def broadcast(operands: list[str], result: str, like_axes: list[int] | None):
    props = {} if like_axes is None else {"like_axes": attr(like_axes)}
    return nn.BroadcastToOp.infer([ty(t) for t in operands], props, ty(result))


def test_like_axes_size_the_axes_they_name():
    assert broadcast(["f32[]", "f32[?, 8]"], "f32[?, 16]", [0, -1]) == ty("f32[?, 16]")
    assert broadcast(["f32[]", "f32[4, ?, 3]"], "f32[?, 2, ?]", [1, -1, 1]) == ty("f32[?, 2, ?]")
    # a `?` whose entry is -1 keeps the input's run-time size
    assert broadcast(["i32[?, 1]", "f32[?]"], "i32[?, ?]", [-1, 0]) == ty("i32[?, ?]")


@pytest.mark.parametrize(
    ("operands", "result", "like_axes", "fragments"),
    [
        (["f32[]", "f32[?, 8]"], "f32[?, 16]", [0], ["like_axes [0]", "2 result axes"]),
        (["f32[]", "f32[?, 8]"], "f32[?, 16]", [2, -1], ["like_axes [2, -1]", "f32[?, 8]"]),
        (["f32[]", "f32[5, 8]"], "f32[4, 16]", [0, -1], ["axis 0", "f32[5, 8]", "[4, 16]"]),
        (["f32[]", "f32[?, 8]"], "f32[?, 16]", [-1, -1], ["nothing sizes axis 0", "[?, 16]"]),
        (["f32[3]", "f32[?, 8]"], "f32[?, 4]", [0, -1], ["cannot broadcast f32[3]", "[?, 4]"]),
        (["f32[]"], "f32[2]", [-1], ["`like_axes` needs a `like` operand"]),
    ],
    ids=["length", "axis-range", "static-mismatch", "unsized", "input", "no-like"],
)
def test_like_axes_errors(operands, result, like_axes, fragments):
    with pytest.raises(ShapeError, match=mentions("nn.broadcast_to", *fragments)):
        broadcast(operands, result, like_axes)


def test_like_axes_parse_print_and_verify():
    text = (
        "func.func @f(%0: tensor<f32>, %1: tensor<?x8xf32>) {\n"
        "  %2 = nn.broadcast_to %0 like %1 {like_axes = array<i64: 0, -1>} "
        ": (tensor<f32>, tensor<?x8xf32>) -> tensor<?x16xf32>\n"
        "  func.return\n}"
    )
    ctx = Context()
    for dialect in (Builtin, func.Func, nn.NN):
        ctx.load_dialect(dialect)
    module = Parser(ctx, text).parse_module()
    module.verify()
    assert "{like_axes = array<i64: 0, -1>}" in str(module)


def test_the_reference_sizes_from_like_axes():
    """Directly, without the frontend: a `?` from `like`, another from the input."""
    text = """
        model m(x: f32[N, 1], y: f32[2, M]) -> f32[N, 3, M] {
            return reshape(x, [N, 1, 1]) + zeros([N, 3, M])
        }
    """
    x, y = floats(4, 1), floats(2, 5)
    (out,) = reference.Reference(compiled(text)).run("m", [x, y])
    np.testing.assert_array_equal(out, np.broadcast_to(x[:, :, None], (4, 3, 5)))


# --- ONNX export -------------------------------------------------------------------------------


def test_a_fill_exports_to_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from irnet.onnx_export import export_onnx

    source = """
        model m(x: f32[N, 2], y: f32[M, 3]) -> f32[M, 4, N] {
            return full([M, 4, N], -1.5) + reshape(sum(y, axis=1), [M, 1, 1])
        }
    """
    model = irnet.loads(dedent(source), target="reference")
    path = tmp_path / "fill.onnx"
    export_onnx(model, path)
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, m in [(3, 2), (1, 5)]:
        x, y = floats(n, 2), floats(m, 3)
        (got,) = session.run(None, {"x": x, "y": y})
        np.testing.assert_allclose(got, model(x, y), rtol=1e-6)


# --- errors ------------------------------------------------------------------------------------


def error_of(body: str) -> IrnError:
    """The error of `body` as the one line of a model of `x: f32[N, 3]`."""
    source = f"model m(x: f32[N, 3]) -> f32 {{\n    return {body}\n}}\n"
    with pytest.raises(IrnError) as info:
        driver.compile_source(source, "fill.irn")
    return info.value


@pytest.mark.parametrize(
    ("body", "column", "fragments"),
    [
        ("sum(zeros([N, -2]))", 16, ["zeros(): sizes cannot be negative, got -2"]),
        ("sum(ones([N, 2.5]))", 16, ["ones(): every size must be an integer, got 2.5"]),
        ("sum(zeros([M, 3]))", 23, ["unknown name 'M'"]),
        ("sum(zeros([N * 2, 3]))", 16, ["zeros(): the size N * 2", "dimension of an argument"]),
        ("sum(zeros(x))", 16, ["zeros(): the shape must be a list of sizes", "f32[?, 3]"]),
        ("sum(zeros([N], dtype=3))", 16, ["expected a dtype", "3"]),
        ("sum(zeros())", 16, ["zeros() is missing the argument 'shape'"]),
        ("sum(full([N], 2, dtype=bool))", 16, ["a bool tensor holds true or false, got 2"]),
        ('sum(full([N], "a"))', 16, ["full(): the value must be a number", "a"]),
        ("sum(full([N], 0.5, dtype=i32))", 16, ["dtype clash", "0.5", "i32"]),
        ("sum(full([N], x))", 16, ["scalar f32 tensor", "f32[?, 3]"]),
        ("sum(full([N], 1e39))", 16, ["does not fit in f32"]),
    ],
    ids=[
        "negative", "not-an-integer", "unknown-dim", "run-time-arithmetic", "not-a-list",
        "bad-dtype", "no-shape", "bool-value", "string-value", "float-to-int", "tensor-value",
        "too-large",
    ],
)  # fmt: skip
def test_errors_are_located(body, column, fragments):
    err = error_of(body)
    assert (err.loc.line, err.loc.column) == (2, column)
    assert all(f in err.message for f in fragments), err.message
