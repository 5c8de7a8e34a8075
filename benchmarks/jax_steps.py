"""JAX versions of the training steps that benchmarks/bench_compile.py compiles with irnet: the
same layers, loss, optimiser, batch and argument order as `@<model>.step` (see
`bench_cpu.step_arguments`), written with `jax.value_and_grad`. Needs only NumPy and JAX:

    /tmp/jaxenv/bin/python benchmarks/jax_steps.py mlp_small lenet   # first-step time of each

A step takes `(input, target, *params, *state, t, lr)` as irnet's does (Adam's state is
`m, v` per parameter, momentum's a velocity per parameter, SGD's none; `t` is a float32
scalar) and returns `[loss, *new_params, *new_state, t + 1]`, as bench_cpu's NumPy steps do.
cnn_bn's arguments also hold batch norm's running statistics after each block's gamma and
beta (model state, not trained), whose next values come after the new parameters.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# key -> (architecture, batch, sizes, optimiser, learning rate). `sizes`: the dense layers'
# widths for an MLP or a linear regression (input first); unused for the fixed LeNet and
# char_mlp. The keys are bench_cpu.MODELS's.
SPECS = {
    "mlp_small": ("mlp", 128, [784, 128, 10], "adam", 0.001),
    "mlp_large": ("mlp", 512, [1024, 4096, 4096, 10], "sgd", 0.01),
    "lenet": ("lenet", 64, None, "momentum", 0.05),
    "linreg": ("linreg", 256, [13, 1], "sgd", 0.05),
    "cnn_bn": ("cnn_bn", 64, None, "adam", 0.001),
    "mnist_mlp": ("mlp", 128, [784, 256, 128, 10], "adam", 0.001),
    "mnist_cnn": ("lenet", 64, None, "momentum", 0.05),
    "char_mlp": ("char_mlp", 256, None, "adam", 0.003),
    "linreg_example": ("linreg", 32, [10, 1], "sgd", 0.05),
}
STATE_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}
LENET_CONVS = [(6, 1, 5), (16, 6, 5)]  # (out channels, in channels, kernel size)
LENET_DENSE = [400, 120, 84, 10]
CNN_BN_CHANNELS = [(16, 1), (32, 16)]  # (out, in) of each 3x3 conv -> batch norm block
CNN_BN_DENSE = [32 * 7 * 7, 10]
CHAR = {"vocab": 65, "context": 8, "embed": 24, "hidden": 256}


# --- shapes and random arguments ---------------------------------------------------------------


def dense_shapes(sizes: list[int]) -> list[tuple[int, ...]]:
    return [shape for i, o in zip(sizes, sizes[1:]) for shape in ((i, o), (o,))]


def param_shapes(key: str) -> list[tuple[int, ...]]:
    arch, _, sizes, _, _ = SPECS[key]
    if arch == "lenet":
        convs = [shape for o, i, k in LENET_CONVS for shape in ((o, i, k, k), (o,))]
        return convs + dense_shapes(LENET_DENSE)
    if arch == "cnn_bn":
        # conv weight (no bias), batch norm's gamma and beta, then its running mean and var
        blocks = [shape for o, i in CNN_BN_CHANNELS for shape in [(o, i, 3, 3)] + [(o,)] * 4]
        return blocks + dense_shapes(CNN_BN_DENSE)
    if arch == "char_mlp":
        c = CHAR
        table = (c["vocab"], c["embed"])
        return [table, *dense_shapes([c["context"] * c["embed"], c["hidden"], c["vocab"]])]
    return dense_shapes(sizes)


def data_shapes(key: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shapes of the input and the target."""
    arch, n, sizes, _, _ = SPECS[key]
    if arch in ("lenet", "cnn_bn"):
        return (n, 1, 28, 28), (n,)
    if arch == "char_mlp":
        return (n, CHAR["context"]), (n,)
    if arch == "linreg":
        return (n, sizes[0]), (n, 1)
    return (n, sizes[0]), (n,)


def arguments(key: str, seed: int = 0) -> list[np.ndarray]:
    """Random float32 inputs and parameters, int32 labels in [0, 10), zero optimiser state."""
    arch, _, _, optimizer, lr = SPECS[key]
    rng = np.random.default_rng(seed)
    x_shape, y_shape = data_shapes(key)
    if arch == "char_mlp":
        x = rng.integers(0, 10, x_shape).astype(np.int32)
    else:
        x = rng.normal(0, 1, x_shape).astype(np.float32)
    if arch == "linreg":
        y = rng.normal(0, 1, y_shape).astype(np.float32)
    else:
        y = rng.integers(0, 10, y_shape).astype(np.int32)
    params = [initial(shape, rng) for shape in param_shapes(key)]
    if arch == "cnn_bn":  # gamma and the running variance start at one, as in irnet
        for block in (0, 5):
            params[block + 1][:] = params[block + 4][:] = 1
    trained = [params[i] for i in trainable(key)]
    state = [np.zeros_like(p) for p in trained for _ in range(STATE_SLOTS[optimizer])]
    return [x, y, *params, *state, np.float32(0), np.float32(lr)]


def trainable(key: str) -> list[int]:
    """The positions of the trained parameters among the arguments after the data: all but
    cnn_bn's running statistics."""
    count = len(param_shapes(key))
    if SPECS[key][0] != "cnn_bn":
        return list(range(count))
    return [i for i in range(count) if i >= 10 or i % 5 < 3]


def initial(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Zero for a bias, else normal with variance 1/fan-in (the values do not affect timing)."""
    if len(shape) == 1:
        return np.zeros(shape, np.float32)
    fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
    return (rng.normal(0, 1, shape) / np.sqrt(fan_in)).astype(np.float32)


# --- models ------------------------------------------------------------------------------------


def mlp(params, h):
    """`dense -> relu -> ... -> dense`; `params` alternate weight and bias."""
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k + 2 < len(params):
            h = jax.nn.relu(h)
    return h


def conv(x, w, pad: int):
    return lax.conv_general_dilated(
        x, w, (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW")
    )


def max_pool(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def lenet(params, x):
    cw0, cb0, cw1, cb1, *dense = params
    h = max_pool(jax.nn.relu(conv(x, cw0, 2) + cb0[:, None, None]))
    h = max_pool(jax.nn.relu(conv(h, cw1, 0) + cb1[:, None, None]))
    return mlp(dense, h.reshape(len(x), -1))


def batch_norm(x, gamma, beta, running_mean, running_var, eps=1e-5, momentum=0.1):
    """irnet's stdlib nn.batch_norm in training: normalised by the batch's statistics; and the
    next running statistics."""
    mean = x.mean((0, 2, 3))
    var = ((x - mean[:, None, None]) ** 2).mean((0, 2, 3))
    scale = gamma / jnp.sqrt(var + eps)
    n = x.size // x.shape[1]
    running = [
        (1 - momentum) * running_mean + momentum * lax.stop_gradient(mean),
        (1 - momentum) * running_var + momentum * lax.stop_gradient(var) * (n / (n - 1)),
    ]
    out = (x - mean[:, None, None]) * scale[:, None, None] + beta[:, None, None]
    return out, running


def cnn_bn(params, x):
    """The logits, and the running statistics' next values (JAX's `has_aux`)."""
    h, running = x, []
    for k in (0, 5):
        cw, gamma, beta, mean, var = params[k : k + 5]
        z, stats = batch_norm(conv(h, cw, 1), gamma, beta, mean, var)
        h, running = max_pool(jax.nn.relu(z)), running + stats
    return mlp(params[10:], h.reshape(len(x), -1)), running


def char_mlp(params, context):
    table, w0, b0, w1, b1 = params
    flat = table[context].reshape(len(context), -1)
    return jnp.tanh(flat @ w0 + b0) @ w1 + b1


FORWARD = {"mlp": mlp, "linreg": mlp, "lenet": lenet, "cnn_bn": cnn_bn, "char_mlp": char_mlp}


def cross_entropy(z, y):
    logp = jax.nn.log_softmax(z, axis=1)
    return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()


def mse(z, y):
    return jnp.mean((z - y) ** 2)


# --- optimisers (bench_cpu's NumPy ones, in JAX) -----------------------------------------------


def sgd(params, grads, state, t, lr):
    return [p - g * lr for p, g in zip(params, grads)], []


def momentum(params, grads, state, t, lr, mu=0.9):
    velocity = [v * mu + g for v, g in zip(state, grads)]
    return [p - v * lr for p, v in zip(params, velocity)], velocity


def adam(params, grads, state, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    t1 = t + 1
    new_params, new_state = [], []
    for k, (p, g) in enumerate(zip(params, grads)):
        m = state[2 * k] * b1 + g * (1 - b1)
        v = state[2 * k + 1] * b2 + g * g * (1 - b2)
        step = (m / (1 - b1**t1)) / (jnp.sqrt(v / (1 - b2**t1)) + eps)
        new_params.append(p - step * lr)
        new_state += [m, v]
    return new_params, new_state


OPTIMIZERS = {"sgd": sgd, "momentum": momentum, "adam": adam}


def make_step(key: str):
    """The (not yet jitted) training step of `key`."""
    arch, _, _, optimizer, _ = SPECS[key]
    forward, update = FORWARD[arch], OPTIMIZERS[optimizer]
    loss_of = mse if arch == "linreg" else cross_entropy
    count = len(param_shapes(key))

    trained = trainable(key)

    def loss_fn(params, everything, x, y):
        everything = list(everything)  # the trained ones traced, the running statistics not
        for i, p in zip(trained, params):
            everything[i] = p
        output = forward(everything, x)
        logits, running = output if arch == "cnn_bn" else (output, [])
        return loss_of(logits, y), running

    def step(x, y, *rest):
        everything, state, (t, lr) = list(rest[:count]), list(rest[count:-2]), rest[-2:]
        params = [everything[i] for i in trained]
        (loss, running), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, everything, x, y)
        new_params, new_state = update(params, grads, state, t, lr)
        return [loss, *new_params, *running, *new_state, t + 1]

    return step


def first_step(key: str) -> dict:
    """Seconds to put the arguments on the device (starting JAX's backend), jit the step and
    run it once (tracing, XLA compilation, the run), then a second call's time."""
    args = arguments(key)
    start = time.perf_counter()
    jax.devices()
    backend = time.perf_counter()
    device_args = [jnp.asarray(a) for a in args]
    jitted = jax.jit(make_step(key))
    out = jax.block_until_ready(jitted(*device_args))
    done = time.perf_counter()
    jax.block_until_ready(jitted(*device_args))
    return {
        "first_step_s": done - start,
        "backend_s": backend - start,
        "second_step_s": time.perf_counter() - done,
        "loss": float(out[0]),
        "outputs": out,
        "args": args,
    }


if __name__ == "__main__":
    for name in sys.argv[1:] or list(SPECS):
        r = first_step(name)
        print(f"{name}: first step {r['first_step_s']:.3f} s, then {r['second_step_s']:.4f} s")
