"""`scan`: a loop over a run-time extent, one `nn.scan` op from the frontend to the kernels.

Forward values against a NumPy loop on every target; gradients with respect to the inputs
(the parameters' are checked by gradcheck over stdlib_all's `sequence` model) against
central differences in float64; a gradient of a gradient; the IR's size independent of the
length; the errors a user can make.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp

import irnet
from irnet import driver
from irnet.diagnostics import IrnError
from irnet.dialects import nn

TARGETS = ["reference", "cpu", "cuda"]

RNN = """
def cell(h: F[N, H], x: F[N, I]) -> F[N, H] {
    param w: F[I, H] = normal(std=0.5)
    param u: F[H, H] = normal(std=0.5)
    return tanh(x @ w + h @ u)
}

def mixed(h: F[N, H], x: F[N, I], y: F[N, H]) -> F[N, H] {
    return cell(h, x) * y + h
}

model rnn(xs: f32[N, T, 3], ys: f32[N, T, 4], h0: f32[N, 4]) -> f32[N, T, 4] {
    forward = scan(cell, h0, xs, axis=1)
    backward = scan(mixed, h0, [xs, ys], axis=1, reverse=true)
    return forward + backward
}
"""


def numpy_rnn(xs, ys, h0, w, u, w1, u1):
    def cell(h, x, w, u):
        return np.tanh(x @ w + h @ u)

    forward, backward = [], [None] * xs.shape[1]
    h = h0
    for t in range(xs.shape[1]):
        h = cell(h, xs[:, t], w, u)
        forward.append(h)
    h = h0
    for t in reversed(range(xs.shape[1])):
        h = cell(h, xs[:, t], w1, u1) * ys[:, t] + h
        backward[t] = h
    return np.stack(forward, 1) + np.stack(backward, 1)


def inputs(length: int, batch: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(batch, length, 3)).astype(np.float32),
        rng.normal(size=(batch, length, 4)).astype(np.float32),
        rng.normal(size=(batch, 4)).astype(np.float32),
    ]


@pytest.mark.parametrize("target", TARGETS)
def test_a_loop_forwards_and_backwards_is_a_numpy_loop(target):
    model = irnet.loads(RNN, name="rnn.irn", target=target, seed=3)
    p = model.params.numpy()
    for length in (5, 1):  # one compiled function for every length
        args = inputs(length)
        expected = numpy_rnn(*args, p["cell_0.w"], p["cell_0.u"],
                             p["mixed_0.cell_0.w"], p["mixed_0.cell_0.u"])  # fmt: skip
        np.testing.assert_allclose(model(*args), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", TARGETS)
def test_a_loop_of_no_steps_has_empty_outputs(target):
    model = irnet.loads(RNN, name="rnn.irn", target=target)
    assert model(*inputs(0, batch=3)).shape == (3, 0, 4)


@pytest.mark.parametrize("target", TARGETS)
def test_sequences_of_different_lengths_are_refused_at_run_time(target):
    model = irnet.loads(RNN, name="rnn.irn", target=target)
    xs, ys, h0 = inputs(5)
    with pytest.raises((IrnError, ValueError), match="different lengths"):
        model(xs, ys[:, :3], h0)


LOSS = """
def cell(h: F[N, H], x: F[N, I]) -> F[N, H] {
    param w: F[I, H] = normal(std=0.5)
    param u: F[H, H] = normal(std=0.5)
    return tanh(x @ w + h @ u) * h
}

model loss(xs: f64[N, 4, 3], h0: f64[N, 2]) -> f64 {
    hs = scan(cell, h0, xs, axis=1)
    return sum(hs * hs) + sum(hs[:, 3:] * scan(cell, h0 * 0.5, xs, axis=1, reverse=true))
}

model grads(xs: f64[N, 4, 3], h0: f64[N, 2]) -> f64[N, 4, 3] {
    gx, gh = grad(loss, wrt=[0, 1])(xs, h0)
    return gx + reshape(sum(gh), [1, 1, 1])
}
"""


def central_differences(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        bump = np.zeros_like(x)
        bump[index] = eps
        grad[index] = (f(x + bump) - f(x - bump)) / (2 * eps)
    return grad


@pytest.mark.parametrize("target", TARGETS)
def test_gradients_through_loops_match_finite_differences(target):
    """The backward loop's cotangents of the sequence and of the initial carry."""
    model = irnet.loads(LOSS, name="loss.irn", model="grads", target="reference", seed=1)
    loss = irnet.loads(LOSS, name="loss.irn", model="loss", target="reference")
    loss.params.update({n: model.params[f"loss_0.{n}"] for n in loss.params})
    rng = np.random.default_rng(2)
    xs, h0 = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 2))

    def value(xs_, h0_):
        return float(loss(xs_, h0_))

    expected = central_differences(lambda v: value(v, h0), xs)
    expected += central_differences(lambda v: value(xs, v), h0).sum()
    np.testing.assert_allclose(model.compile("grads", target=target)(xs, h0), expected,
                               rtol=1e-6, atol=1e-8)  # fmt: skip


HESSIAN = """
def cell(h: F[N, H], x: F[N, I]) -> F[N, H] {
    return tanh(x * h + h)
}

def energy(h0: f64[2, 3], xs: f64[4, 2, 3]) -> f64 {
    return sum(scan(cell, h0, xs) ** 2)
}

model slope(h0: f64[2, 3], xs: f64[4, 2, 3]) -> f64 {
    return sum(grad(energy, wrt=0)(h0, xs))
}

model curvature(h0: f64[2, 3], xs: f64[4, 2, 3]) -> f64[2, 3] {
    return grad(slope, wrt=0)(h0, xs)
}
"""


def test_a_gradient_of_a_gradient_differentiates_the_backward_loop():
    model = irnet.loads(HESSIAN, name="hessian.irn", model="curvature", target="reference")
    slope = irnet.loads(HESSIAN, name="hessian.irn", model="slope", target="reference")
    rng = np.random.default_rng(4)
    h0, xs = rng.normal(size=(2, 3)), rng.normal(size=(4, 2, 3))
    expected = central_differences(lambda v: float(slope(v, xs)), h0)
    np.testing.assert_allclose(model(h0, xs), expected, rtol=1e-6, atol=1e-8)


GRU = """
from nn import gru, dense

model m(context: f32[N, LENGTH, 8]) -> f32[N, 8] {
    hs = gru(context, 16)
    return dense(hs[:, LENGTH - 1], 8)
}
"""


def scans(program: str, stage: str) -> tuple[int, int]:
    """(number of `nn.scan` ops, number of ops) of `program`'s IR after `stage`."""
    module = driver.compile_source(program, "m.irn").module
    driver.run_passes(module, ",".join(driver.TARGET_PIPELINES["cpu"][: stage_index(stage)]))
    ops = list(module.walk())
    return sum(isinstance(op, nn.ScanOp) for op in ops), len(ops)


def stage_index(stage: str) -> int:
    return driver.TARGET_PIPELINES["cpu"].index(stage) + 1


@pytest.mark.parametrize("stage", ["autodiff", "plan-memory"])
def test_the_ir_is_one_loop_whatever_the_length(stage):
    short = scans(GRU.replace("LENGTH", "32"), stage)
    long = scans(GRU.replace("LENGTH", "256"), stage)
    assert short == long
    assert short[0] == 1


def test_the_training_step_has_a_forward_and_a_backward_loop():
    program = GRU.replace("LENGTH", "32").replace("import gru, dense", "import gru, dense, mse")
    program += "\ntrain m(y: f32[N, 8]) {\n    loss = mse(m(context), y)\n}\n"
    module = driver.compile_source(program, "m.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    loops = [op for op in module.walk() if isinstance(op, nn.ScanOp)]
    step = [op for op in loops if op.parent_op().sym_name.data == "m.step"]
    assert [op.is_reverse for op in step] == [False, True]
    assert step[0].saved_count > 0


def test_printed_loops_parse_back():
    module = driver.compile_source(GRU.replace("LENGTH", "6"), "m.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    text = str(module)
    assert "nn.scan" in text
    parsed = driver.parse_mlir(text, "m.mlir")
    assert isinstance(parsed, ModuleOp)
    assert str(parsed) == text


def test_the_ops_documented_example_is_valid_ir():
    example = nn.ScanOp.__doc__.split("```mlir")[1].split("```")[0].replace("...", "")
    text = (
        "func.func @f(%h0: tensor<?x8xf32>, %xs: tensor<16x?x4xf32>, %w: tensor<12x8xf32>) {\n"
        + example.replace("nn.yield %next, %next", "nn.yield %c, %c")
        + "\nfunc.return\n}"
    )
    driver.parse_mlir(text, "example.mlir")


ERRORS = [
    (
        "def cell(h: F[N, H], x: F[N, I]) -> F[N, I] { return x }\n"
        "model m(x: f32[N, 5, 3], h: f32[N, 4]) -> f32[N, 5, 3] {\n"
        "    return scan(cell, h, x, axis=1)\n}",
        "'cell' returns f32[?, 3], but its carry is f32[?, 4]",
    ),
    (
        "def cell(h: F[N, H], x: F[N, H]) -> F[N, H] {\n"
        "    state steps: f32[1] = zeros\n    steps = steps + 1.0\n    return h + x\n}\n"
        "model m(x: f32[N, 5, 4], h: f32[N, 4]) -> f32[N, 5, 4] {\n"
        "    return scan(cell, h, x, axis=1)\n}",
        "holds state",
    ),
    (
        "model m(x: f32[N, 5, 3], h: f32[N, 4]) -> f32[N, 5, 4] { return scan(relu, h, x) }",
        "scan() runs a def function as its step",
    ),
    (
        "def cell(h: F[N, H], x: F[N, I], y: F[N, I]) -> F[N, H] { return h }\n"
        "model m(x: f32[5, N, 3], y: f32[4, N, 3], h: f32[N, 4]) -> f32[5, N, 4] {\n"
        "    return scan(cell, h, [x, y])\n}",
        "different lengths (5 and 4)",
    ),
    (
        "def cell(h: F[N, H], x: F[N, I]) -> F[N, H] { return h }\n"
        "model m(x: f32[N, 5, 3], h: f32[N, 4]) -> f32[N, 5, 4] {\n"
        "    return scan(cell, h, x, axis=3)\n}",
        "axis 3 is out of range",
    ),
]


@pytest.mark.parametrize(("program", "message"), ERRORS, ids=range(len(ERRORS)))
def test_mistakes_are_located_errors(program, message):
    with pytest.raises(IrnError, match=re.escape(message)) as caught:
        irnet.loads(program, name="bad.irn", target="reference")
    assert "bad.irn:" in str(caught.value)
