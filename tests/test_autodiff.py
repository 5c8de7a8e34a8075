"""Reverse-mode autodiff: every differentiable op's gradient against central finite differences
in float64 (through `irnet.gradcheck`, which adds a derivative request to the IR and expands it
with the `autodiff` pass), the examples' losses, second order, and the error cases."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PROGRAMS
from op_cases import UNARY

from irnet import driver, gradcheck, reference
from irnet.diagnostics import IrnError


def check(source: str, function: str = "f", batch: int = 3, samples: int = 40):
    module = driver.compile_source(source, "t.irn").module
    driver.run_passes(module, "inline-functions")
    target = module_function(module, function)
    rows = gradcheck.check_function(module, target, seed=1, batch=batch, samples=samples)
    failed = [r for r in rows if not r.passed]
    assert rows and not failed, gradcheck.format_rows(rows)
    return rows


def module_function(module, name):
    from irnet.params import find_function

    return find_function(module, name)


def model(signature: str, body: str) -> str:
    """A model `f` returning `sum(<body> * w)`, so every output element gets its own
    cotangent; `w` has the body's shape, declared in `signature`."""
    return f"model f({signature}) -> f64 {{\n    return sum(({body}) * w)\n}}\n"


# (id, signature, expression): each expression's gradient w.r.t. every float input
CASES = [
    *[(u.id, "x: f64[3, 4], w: f64[3, 4]", u.irn) for u in UNARY],
    ("add-same", "a: f64[3, 4], b: f64[3, 4], w: f64[3, 4]", "a + b"),
    ("add-scalar", "a: f64[3, 4], b: f64, w: f64[3, 4]", "a + b"),
    ("add-row", "a: f64[N, 4], b: f64[4], w: f64[N, 4]", "a + b"),
    ("sub-column", "a: f64[3, 4], b: f64[3, 1], w: f64[3, 4]", "a - b"),
    ("mul-both-sides", "a: f64[3, 1], b: f64[1, 4], w: f64[3, 4]", "a * b"),
    ("mul-rank", "a: f64[2, 3, 4], b: f64[3, 1], w: f64[2, 3, 4]", "b * a"),
    ("div", "a: f64[3, 4], b: f64[4], w: f64[3, 4]", "a / (b * b + 1.0)"),
    ("pow", "a: f64[3, 4], b: f64[3, 1], w: f64[3, 4]", "(a * a + 0.5) ** b"),
    ("pow-const", "a: f64[3, 4], w: f64[3, 4]", "a ** 3"),
    ("maximum", "a: f64[3, 4], b: f64[4], w: f64[3, 4]", "maximum(a, b)"),
    ("minimum", "a: f64[3, 4], b: f64, w: f64[3, 4]", "minimum(a, b)"),
    ("where", "a: f64[3, 4], b: f64[3, 4], w: f64[3, 4]", "where(a > b, a * b, b)"),
    ("cast", "a: f64[3, 4], w: f64[3, 4]", "cast(a, f64) * 2.0"),
    ("matmul", "a: f64[3, 4], b: f64[4, 5], w: f64[3, 5]", "a @ b"),
    ("matmul-batched", "a: f64[2, 3, 4], b: f64[2, 4, 5], w: f64[2, 3, 5]", "a @ b"),
    ("matmul-broadcast", "a: f64[2, 3, 4], b: f64[4, 5], w: f64[2, 3, 5]", "a @ b"),
    ("transpose", "a: f64[2, 3, 4], w: f64[4, 2, 3]", "transpose(a, perm=[2, 0, 1])"),
    ("reshape", "a: f64[N, 2, 3], w: f64[N, 6]", "reshape(a, [-1, 6])"),
    ("broadcast_to", "a: f64[3, 1], w: f64[2, 3, 4]", "broadcast_to(a, shape=[2, 3, 4])"),
    ("sum-all", "a: f64[3, 4], w: f64", "sum(a)"),
    ("sum-axis", "a: f64[N, 4], w: f64[N]", "sum(a, axis=1)"),
    ("sum-keepdims", "a: f64[3, 4, 2], w: f64[3, 1, 2]", "sum(a, axis=1, keepdims=true)"),
    ("sum-middle", "a: f64[3, 4, 2], w: f64[3, 2]", "sum(a, axis=-2)"),
    ("mean-axes", "a: f64[N, 4, 2], w: f64[4]", "mean(a, axis=[0, 2])"),
    ("mean-keepdims", "a: f64[N, 4], w: f64[N, 1]", "mean(a, axis=-1, keepdims=true)"),
    ("max-axis", "a: f64[3, 4], w: f64[3]", "max(a, axis=1)"),
    ("max-keepdims", "a: f64[3, 4], w: f64[1, 4]", "max(a, axis=0, keepdims=true)"),
    ("softmax", "a: f64[3, 4], w: f64[3, 4]", "softmax(a, axis=1)"),
    ("softmax-axis0", "a: f64[3, 4], w: f64[3, 4]", "softmax(a, axis=0)"),
    ("log_softmax", "a: f64[N, 4], w: f64[N, 4]", "log_softmax(a)"),
    ("conv2d", "x: f64[2, 2, 6, 6], k: f64[3, 2, 3, 3], w: f64[2, 3, 4, 4]", "conv2d(x, k)"),
    (
        "conv2d-stride-pad",
        "x: f64[2, 2, 7, 7], k: f64[3, 2, 3, 3], w: f64[2, 3, 4, 4]",
        "conv2d(x, k, stride=2, padding=1)",
    ),
    (
        "conv2d-dilation-groups",
        "x: f64[1, 4, 7, 7], k: f64[2, 2, 2, 2], w: f64[1, 2, 5, 5]",
        "conv2d(x, k, dilation=2, groups=2)",
    ),
    ("max_pool2d", "x: f64[2, 2, 4, 4], w: f64[2, 2, 2, 2]", "max_pool2d(x, 2)"),
    (
        "max_pool2d-overlap",
        "x: f64[1, 2, 5, 5], w: f64[1, 2, 3, 3]",
        "max_pool2d(x, 3, stride=2, padding=1)",
    ),
    ("avg_pool2d", "x: f64[2, 2, 4, 4], w: f64[2, 2, 2, 2]", "avg_pool2d(x, 2)"),
    (
        "avg_pool2d-pad",
        "x: f64[1, 2, 5, 5], w: f64[1, 2, 3, 3]",
        "avg_pool2d(x, 3, stride=2, padding=1)",
    ),
    ("gather", "t: f64[5, 3], i: i32[N, 2], w: f64[N, 2, 3]", "gather(t, i)"),
    ("gather-axis1", "t: f64[2, 5], i: i32[4], w: f64[2, 4]", "gather(t, i, axis=1)"),
    ("index-tensor", "t: f64[5, 3], i: i32[N], w: f64[N, 3]", "t[i]"),
    ("concat", "a: f64[N, 2], b: f64[N, 3], w: f64[N, 5]", "concat([a, b], axis=1)"),
    ("concat-axis0", "a: f64[2, 3], b: f64[4, 3], w: f64[6, 3]", "concat([a, b], axis=0)"),
    ("slice", "a: f64[N, 6], w: f64[N, 2]", "a[:, 1:5:2]"),
    ("index", "a: f64[4, 3], w: f64[3]", "a[2]"),
    ("index-ellipsis", "a: f64[2, 3, 4], w: f64[2, 3]", "a[..., -1]"),
    ("fan-out", "x: f64[3, 4], w: f64[3, 4]", "x * x + exp(x) * x"),
]


@pytest.mark.parametrize(("signature", "body"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(signature, body):
    check(model(signature, body))


def test_dropout_gradient_is_exact_for_a_fixed_mask():
    check(
        "import nn\nmodel f(x: f64[4, 5], w: f64[4, 5]) -> f64 {\n"
        "    return sum(nn.dropout(x, 0.5) * w)\n}\n"
    )


@pytest.mark.parametrize("program", [p for p in PROGRAMS if "examples" in str(p)], ids=str)
def test_example_losses(program):
    rows = gradcheck.gradcheck(str(program), batch=2, samples=12)
    assert rows and all(r.passed for r in rows), gradcheck.format_rows(rows)


SMOOTH = """
from nn import dense, mse

model smooth(x: f32[N, 6]) -> f32[N, 1] {
    h = gelu(dense(x, 8), approximate="none")
    h = erf(dense(h, 8)) + gelu(h)
    return dense(h, 1)
}

train smooth(y: f32[N, 1]) {
    data      = npz("smooth.npz", x="x", y="y")
    loss      = mse(smooth(x), y)
    optimizer = sgd(lr=0.1)
}
"""


def test_a_model_with_erf_and_exact_gelu(tmp_path):
    path = tmp_path / "smooth.irn"
    path.write_text(SMOOTH)
    rows = gradcheck.gradcheck(str(path), batch=3, samples=12)
    assert len(rows) == 6 and all(r.passed for r in rows), gradcheck.format_rows(rows)


def test_stdlib_losses():
    rows = gradcheck.gradcheck("tests/programs/stdlib_all.irn", batch=2, samples=8)
    assert all(r.passed for r in rows), gradcheck.format_rows(rows)


HVP = """
from nn import mse

def loss(x: f64[4, 3], w1: f64[3, 5], w2: f64[5, 1], y: f64[4, 1]) -> f64 {
    return mse(tanh(x @ w1) @ w2, y)
}

def directional(x: f64[4, 3], w1: f64[3, 5], w2: f64[5, 1], y: f64[4, 1], v: f64[3, 5]) -> f64 {
    g = grad(loss, wrt="w1")(x, w1, w2, y)
    return sum(g * v)
}

model gradient(x: f64[4, 3], w1: f64[3, 5], w2: f64[5, 1], y: f64[4, 1]) -> f64[3, 5] {
    return grad(loss, wrt="w1")(x, w1, w2, y)
}

model hvp(x: f64[4, 3], w1: f64[3, 5], w2: f64[5, 1], y: f64[4, 1], v: f64[3, 5]) -> f64[3, 5] {
    return grad(directional, wrt="w1")(x, w1, w2, y, v)
}
"""


def test_hessian_vector_product_of_an_mlp_loss():
    module = driver.compile_source(HVP, "hvp.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    rng = np.random.default_rng(0)
    x, w1, w2, y, v = (rng.normal(size=s) for s in [(4, 3), (3, 5), (5, 1), (4, 1), (3, 5)])
    (hv,) = reference.run(module, "hvp", [x, w1, w2, y, v])
    eps = 1e-5
    (up,) = reference.run(module, "gradient", [x, w1 + eps * v, w2, y])
    (down,) = reference.run(module, "gradient", [x, w1 - eps * v, w2, y])
    np.testing.assert_allclose(hv, (up - down) / (2 * eps), rtol=1e-6, atol=1e-9)


def test_second_derivative_through_every_mlp_op():
    """The gradient IR is differentiated again: d/dw1 of sum(grad(loss) * v) is checked by
    finite differences of that scalar."""
    check(HVP, function="directional", samples=15)


# --- errors ------------------------------------------------------------------------------------


def frontend_error(source: str) -> IrnError:
    with pytest.raises(IrnError) as info:
        module = driver.compile_source(source, "bad.irn").module
        driver.run_passes(module, ",".join(driver.PIPELINE))
    return info.value


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        (
            "def f(x: f64[3, 4]) -> f64 { return sum(cast(argmax(x, axis=1), f64)) }\n"
            "model g(x: f64[3, 4]) -> f64[3, 4] { return grad(f)(x) }\n",
            "reaches the result only through nn.argmax, which has no derivative",
            1,
        ),
        (
            "def f(x: f64[3]) -> f64 { return sum(cast(x > 0.0, f64)) }\n"
            "model g(x: f64[3]) -> f64[3] { return grad(f)(x) }\n",
            "only through nn.cmp",
            1,
        ),
        (
            "def f(x: f64[3]) -> f64[3] { return x * x }\n"
            "model g(x: f64[3]) -> f64[3] { return grad(f)(x) }\n",
            "needs a function returning a float scalar",
            2,
        ),
        (
            "def f(x: f64[3], i: i32[3]) -> f64 { return sum(x) }\n"
            'model g(x: f64[3], i: i32[3]) -> f64[3] { return grad(f, wrt="i")(x, i) }\n',
            "cannot differentiate with respect to 'i'",
            2,
        ),
        (
            "def f(x: f64[3]) -> f64 { return sum(x) }\n"
            'model g(x: f64[3]) -> f64[3] { return grad(f, wrt="y")(x) }\n',
            "wrt='y' names no tensor argument",
            2,
        ),
        (
            "def f(x: f64[1, 1, 4, 4]) -> f64 { return sum(max_pool2d(x, 2)) }\n"
            "def d(x: f64[1, 1, 4, 4]) -> f64 { return sum(grad(f)(x)) }\n"
            "model g(x: f64[1, 1, 4, 4]) -> f64[1, 1, 4, 4] { return grad(d)(x) }\n",
            "second derivative of max_pool2d is not implemented",
            1,
        ),
    ],
    ids=["argmax", "comparison", "non-scalar", "int-wrt", "unknown-wrt", "maxpool-2nd-order"],
)
def test_derivative_errors(source, message, line):
    error = frontend_error(source)
    assert message in error.message
    assert error.loc is not None and error.loc.line == line


def test_input_that_does_not_reach_the_output_gets_zero_gradient():
    source = (
        "def f(x: f64[3], unused: f64[2]) -> f64 { return sum(x) }\n"
        'model g(x: f64[3], u: f64[2]) -> f64[2] { return grad(f, wrt="unused")(x, u) }\n'
    )
    module = driver.compile_source(source, "t.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    (g,) = reference.run(module, "g", [np.ones(3), np.ones(2)])
    np.testing.assert_array_equal(g, np.zeros(2))


BAD_REQUESTS = {
    "missing-symbol": ("@nope(%x) wrt [0] : (tensor<3xf64>) -> tensor<3xf64>", "no function @nope"),
    "wrt-range": ("@f(%x) wrt [1] : (tensor<3xf64>) -> tensor<3xf64>", "out of range"),
    "arity": ("@f(%x, %x) wrt [0] : (tensor<3xf64>, tensor<3xf64>) -> tensor<3xf64>", "takes 1"),
}


@pytest.mark.parametrize("request_text", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_do_not_verify(request_text, tmp_path):
    text, message = request_text
    path = tmp_path / "bad.mlir"
    path.write_text(
        "func.func @f(%x: tensor<3xf64>) -> tensor<f64> {\n"
        "  %0 = nn.reduce_sum %x {axes = array<i64>} : tensor<3xf64> -> tensor<f64>\n"
        "  func.return %0 : tensor<f64>\n}\n"
        "func.func @g(%x: tensor<3xf64>) -> tensor<3xf64> {\n"
        f"  %0 = ad.grad {text}\n"
        "  func.return %0 : tensor<3xf64>\n}\n"
    )
    with pytest.raises(IrnError, match=message):
        driver.load(path)
