"""The standard library's 1-D layers, pooling, residual block, logsumexp and triangles against
NumPy, in float64. Their gradients are checked by `irnet gradcheck` over
tests/programs/stdlib_all.irn (tests/test_autodiff.py), and every target runs them against the
reference (PROGRAMS)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import irnet

IMPORTS = (
    "from nn import conv1d, max_pool1d, avg_pool1d, global_avg_pool, residual_block, logsumexp,"
    " tril, triu\n"
)


def run(body: str, *arrays: np.ndarray, signature: str, result: str) -> tuple[np.ndarray, dict]:
    """A one-line model over `arrays` in float64 on the reference target; its output and its
    parameters."""
    model = irnet.loads(IMPORTS + f"model m({signature}) -> {result} {{ {body} }}",
                        target="reference", float64=True)  # fmt: skip
    return model(*arrays), model.params.numpy()


def conv1d(x, w, b, stride=1, padding=0, dilation=1):
    x = np.pad(x, [(0, 0), (0, 0), (padding, padding)])
    span = dilation * (w.shape[2] - 1) + 1
    windows = sliding_window_view(x, span, axis=2)[:, :, ::stride, ::dilation]  # N C L' K
    return np.einsum("nclk,fck->nfl", windows, w) + b[None, :, None]


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 0, 1), (2, 2, 1), (1, 3, 2)])
def test_conv1d_is_pytorchs_conv1d(stride, padding, dilation):
    x = np.random.default_rng(0).normal(size=(2, 3, 11))
    out, p = run(f"return conv1d(x, 4, 3, stride={stride}, padding={padding}, "
                 f"dilation={dilation})", x, signature="x: f32[N, 3, 11]",
                 result="f32[N, 4, ?]")  # fmt: skip
    expected = conv1d(x, p["conv1d_0.w"], p["conv1d_0.b"], stride, padding, dilation)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("pool", "reduce"), [("max_pool1d", np.max), ("avg_pool1d", np.mean)])
def test_1d_pools_reduce_windows_along_the_last_axis(pool, reduce):
    x = np.random.default_rng(1).normal(size=(2, 3, 9))
    out, _ = run(f"return {pool}(x, 3, stride=2, padding=1)", x,
                 signature="x: f32[N, 3, 9]", result="f32[N, 3, ?]")  # fmt: skip
    fill = -np.inf if pool == "max_pool1d" else 0.0  # the mean counts padded zeros
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1)], constant_values=fill)
    expected = reduce(sliding_window_view(padded, 3, axis=2)[:, :, ::2], axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_global_avg_pool_is_the_mean_of_each_channel():
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 5))
    out, _ = run("return global_avg_pool(x)", x, signature="x: f32[N, 3, 4, 5]",
                 result="f32[N, 3]")  # fmt: skip
    np.testing.assert_allclose(out, x.mean(axis=(2, 3)), rtol=1e-12)


def test_residual_block_adds_its_input_to_two_convolutions():
    x = np.random.default_rng(3).normal(size=(2, 3, 5, 5))
    out, p = run("return residual_block(x)", x, signature="x: f32[N, 3, 5, 5]",
                 result="f32[N, 3, 5, 5]")  # fmt: skip

    def conv(h, k):
        w, b = p[f"residual_block_0.conv_{k}.w"], p[f"residual_block_0.conv_{k}.b"]
        windows = sliding_window_view(np.pad(h, [(0, 0), (0, 0), (1, 1), (1, 1)]), (3, 3),
                                      axis=(2, 3))  # fmt: skip
        return np.einsum("nchwij,fcij->nfhw", windows, w) + b[None, :, None, None]

    def batch_norm(h, k):
        q = {n: p[f"residual_block_0.batch_norm_{k}.{n}"][None, :, None, None]
             for n in ("gamma", "beta", "mean", "var")}  # fmt: skip
        return (h - q["mean"]) / np.sqrt(q["var"] + 1e-5) * q["gamma"] + q["beta"]

    relu = lambda h: np.maximum(h, 0)  # noqa: E731
    expected = relu(batch_norm(conv(relu(batch_norm(conv(x, 0), 0)), 1), 1) + x)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_logsumexp_does_not_overflow(axis):
    x = np.random.default_rng(4).normal(size=(3, 4)) * 300  # exp(300) overflows float32
    out, _ = run(f"return logsumexp(x, axis={axis})", x, signature="x: f32[3, 4]",
                 result="f32[...]")  # fmt: skip
    m = x.max(axis=axis, keepdims=True)
    expected = np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis=axis))
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("k", [0, 1, -2])
def test_tril_and_triu_are_numpys(k):
    x = np.random.default_rng(5).normal(size=(2, 4, 5))
    for name, expected in (("tril", np.tril(x, k)), ("triu", np.triu(x, k))):
        out, _ = run(f"return {name}(x, k={k})", x, signature="x: f32[N, 4, 5]",
                     result="f32[N, 4, 5]")  # fmt: skip
        np.testing.assert_array_equal(out, expected)
