"""The standard library's 1-D layers, pooling, batch norm, residual block, attention,
transformer block, logsumexp and triangles against NumPy, in float64. Their gradients are
checked by `irnet gradcheck` over tests/programs/stdlib_all.irn (tests/test_autodiff.py), and
every target runs them against the reference (PROGRAMS)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import irnet

IMPORTS = (
    "from nn import conv1d, max_pool1d, avg_pool1d, global_avg_pool, residual_block, logsumexp,"
    " tril, triu, batch_norm, self_attention, transformer_block, gru_cell, gru, lstm\n"
)


def run(body: str, *arrays: np.ndarray, signature: str, result: str) -> tuple[np.ndarray, dict]:
    """A one-line model over `arrays` in float64 on the reference target; its output and its
    parameters and state, with running statistics away from their initial values."""
    model = irnet.loads(IMPORTS + f"model m({signature}) -> {result} {{ {body} }}",
                        target="reference", float64=True)  # fmt: skip
    rng = np.random.default_rng(9)
    for name, value in model.state.items():
        model.state[name] = value + rng.uniform(0.1, 0.5, value.shape)
    return model(*arrays), {**model.params.numpy(), **model.state.numpy()}


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
             for n in ("gamma", "beta", "running_mean", "running_var")}  # fmt: skip
        root = np.sqrt(q["running_var"] + 1e-5)
        return (h - q["running_mean"]) / root * q["gamma"] + q["beta"]

    relu = lambda h: np.maximum(h, 0)  # noqa: E731
    expected = relu(batch_norm(conv(relu(batch_norm(conv(x, 0), 0)), 1), 1) + x)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


BATCH_NORM = """
model m(x: f64[N, 3, 4, 5]) -> f64[N, 3, 4, 5] { return batch_norm(x, momentum=0.25) }
train m(y: f64[N, 3, 4, 5]) { loss = mean((m(x) - y) ** 2); optimizer = sgd(lr=0.5) }
"""


def test_batch_norm_is_pytorchs_in_training_and_in_inference():
    """PyTorch's BatchNorm2d: the batch's biased variance normalises in training; the running
    variance moves towards the unbiased one; inference uses the running statistics."""
    rng = np.random.default_rng(6)
    batches = [rng.normal(2.0, 3.0, size=(4, 3, 4, 5)) for _ in range(3)]
    model = irnet.loads(IMPORTS + BATCH_NORM, target="reference")
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
    model.params.update({"batch_norm_0.gamma": gamma, "batch_norm_0.beta": beta})
    mean, var = np.zeros(3), np.ones(3)
    for x in batches:
        model.train_step(x, np.zeros_like(x), lr=0.0)
        mean = 0.75 * mean + 0.25 * x.mean(axis=(0, 2, 3))
        var = 0.75 * var + 0.25 * x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(model.state["batch_norm_0.running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(model.state["batch_norm_0.running_var"], var, rtol=1e-12)

    def normalised(x, mu, sigma2):
        scale = gamma / np.sqrt(sigma2 + 1e-5)
        return (x - mu[:, None, None]) * scale[:, None, None] + beta[:, None, None]

    x = batches[0]
    np.testing.assert_allclose(model(x), normalised(x, mean, var), rtol=1e-10)
    training = model.compile(training=True)(x)
    batch = normalised(x, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)))
    np.testing.assert_allclose(training, batch, rtol=1e-10, atol=1e-12)


def test_batch_norm_state_is_not_optimised():
    """The optimiser moves gamma and beta; the running statistics follow the batches alone."""
    model = irnet.loads(IMPORTS + BATCH_NORM, target="reference")
    x = np.random.default_rng(7).normal(size=(4, 3, 4, 5))
    model.train_step(x, np.ones_like(x))
    assert not np.allclose(model.params["batch_norm_0.beta"], 0.0)
    np.testing.assert_allclose(model.state["batch_norm_0.running_mean"],
                               0.25 * x.mean(axis=(0, 2, 3)), rtol=1e-12)  # fmt: skip
    assert list(model.optimizer_state) == ["t"]  # sgd: no moments, and none for the state
    assert list(model.params) == ["batch_norm_0.gamma", "batch_norm_0.beta"]


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


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(x: np.ndarray, p: dict, prefix: str, heads: int, causal: bool) -> np.ndarray:
    """Vaswani et al.'s multi-head self-attention with the dense layers' weights `p`."""
    n, t, d = x.shape

    def dense(h, k):
        return h @ p[f"{prefix}dense_{k}.w"] + p[f"{prefix}dense_{k}.b"]

    def split(h):
        return h.reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)

    q, k, v = split(dense(x, 0)), split(dense(x, 1)), split(dense(x, 2))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads)
    if causal:
        scores = np.where(np.triu(np.ones((t, t)), 1) > 0, -np.inf, scores)
    joined = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return dense(joined, 3)


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_is_multi_head_scaled_dot_product_attention(causal):
    x = np.random.default_rng(8).normal(size=(3, 5, 8))
    flag = "true" if causal else "false"
    out, p = run(f"return self_attention(x, 2, causal={flag})", x,
                 signature="x: f32[N, 5, 8]", result="f32[N, 5, 8]")  # fmt: skip
    expected = attention(x, p, "self_attention_0.", 2, causal)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_a_causal_position_ignores_the_positions_after_it():
    x = np.random.default_rng(9).normal(size=(2, 6, 8))
    changed = x.copy()
    changed[:, 4:] += 1.0
    model = irnet.loads(IMPORTS + "model m(x: f32[N, 6, 8]) -> f32[N, 6, 8] "
                        "{ return self_attention(x, 4, causal=true) }", target="reference",
                        float64=True)  # fmt: skip
    before, after = model(x), model(changed)
    np.testing.assert_array_equal(before[:, :4], after[:, :4])
    assert not np.allclose(before[:, 4:], after[:, 4:])


def test_transformer_block_is_pre_layer_norm():
    x = np.random.default_rng(10).normal(size=(2, 4, 8))
    out, p = run("return transformer_block(x, 2, 16, causal=true)", x,
                 signature="x: f32[N, 4, 8]", result="f32[N, 4, 8]")  # fmt: skip
    block = "transformer_block_0."

    def layer_norm(h, k):
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        scale = p[f"{block}layer_norm_{k}.gamma"]
        return (h - mu) / np.sqrt(var + 1e-5) * scale + p[f"{block}layer_norm_{k}.beta"]

    def gelu(h):  # the tanh approximation, GPT-2's
        return 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))

    h = x + attention(layer_norm(x, 0), p, f"{block}self_attention_0.", 2, causal=True)
    hidden = gelu(layer_norm(h, 1) @ p[f"{block}dense_0.w"] + p[f"{block}dense_0.b"])
    expected = h + hidden @ p[f"{block}dense_1.w"] + p[f"{block}dense_1.b"]
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-11)


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def gru_step(h, gx, gh):
    """PyTorch's GRU update from the input's and the hidden state's gate pre-activations."""
    size = h.shape[1]
    r = sigmoid(gx[:, :size] + gh[:, :size])
    z = sigmoid(gx[:, size : 2 * size] + gh[:, size : 2 * size])
    n = np.tanh(gx[:, 2 * size :] + r * gh[:, 2 * size :])
    return (1 - z) * n + z * h


def test_gru_cell_is_pytorchs():
    """PyTorch's GRUCell with weight_ih = dense_0.w^T, weight_hh = gru_update_0.dense_0.w^T,
    gates r, z, n."""
    rng = np.random.default_rng(11)
    h, x = rng.normal(size=(3, 4)), rng.normal(size=(3, 5))
    out, p = run("return gru_cell(h, x)", h, x, signature="h: f32[N, 4], x: f32[N, 5]",
                 result="f32[N, 4]")  # fmt: skip
    gx = x @ p["gru_cell_0.dense_0.w"] + p["gru_cell_0.dense_0.b"]
    gh = h @ p["gru_cell_0.gru_update_0.dense_0.w"] + p["gru_cell_0.gru_update_0.dense_0.b"]
    np.testing.assert_allclose(out, gru_step(h, gx, gh), rtol=1e-12, atol=1e-14)


def test_gru_is_pytorchs_gru_over_the_sequence():
    """nn.GRU(batch_first=True), one layer, from a zero state: every step's hidden state."""
    x = np.random.default_rng(12).normal(size=(3, 7, 5))
    out, p = run("return gru(x, 4)", x, signature="x: f32[N, 7, 5]", result="f32[N, 7, 4]")
    h, expected = np.zeros((3, 4)), []
    for t in range(7):
        gx = x[:, t] @ p["gru_0.dense_0.w"] + p["gru_0.dense_0.b"]
        gh = h @ p["gru_0.gru_update_0.dense_0.w"] + p["gru_0.gru_update_0.dense_0.b"]
        h = gru_step(h, gx, gh)
        expected.append(h)
    np.testing.assert_allclose(out, np.stack(expected, axis=1), rtol=1e-12, atol=1e-14)


def test_lstm_is_pytorchs_lstm_over_the_sequence():
    """nn.LSTM(batch_first=True), one layer, from zero h and c; gates i, f, g, o."""
    x = np.random.default_rng(13).normal(size=(2, 6, 3))
    out, p = run("return lstm(x, 4)", x, signature="x: f32[N, 6, 3]", result="f32[N, 6, 4]")
    h, c, expected = np.zeros((2, 4)), np.zeros((2, 4)), []
    for t in range(6):
        gates = x[:, t] @ p["lstm_0.dense_0.w"] + p["lstm_0.dense_0.b"]
        gates += h @ p["lstm_0.lstm_update_0.dense_0.w"] + p["lstm_0.lstm_update_0.dense_0.b"]
        i, f, g, o = np.split(gates, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        expected.append(h)
    np.testing.assert_allclose(out, np.stack(expected, axis=1), rtol=1e-12, atol=1e-14)


def test_a_gradient_request_carries_the_state_on():
    """`grad(f)` of a function with state returns its gradient and, as a call would, gives the
    state its next value: a training-mode call keeps it."""
    program = IMPORTS + (
        "def energy(x: F[N, C, H, W]) -> F { return sum(batch_norm(x) ** 3) }\n"
        "model m(x: f64[N, 2, 2, 2]) -> f64[N, 2, 2, 2] { return grad(energy)(x) }\n"
    )
    model = irnet.loads(program, target="reference")
    x = np.random.default_rng(12).normal(1.0, 1.0, (3, 2, 2, 2))
    model.compile(training=True)(x)
    np.testing.assert_allclose(model.state["energy_0.batch_norm_0.running_mean"],
                               0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)  # fmt: skip
