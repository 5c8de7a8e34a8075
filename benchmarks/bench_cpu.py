"""Step time of the training examples on the cpu target (Numba), against the reference
interpreter and a hand-written NumPy implementation of the same step, in one process; and the
compile time of each example's step, cold (empty cache) and warm (a second process).

    .venv/bin/python benchmarks/bench_cpu.py                     # every example
    .venv/bin/python benchmarks/bench_cpu.py --models mnist_mlp --repeat 50

Each example runs `@<model>.step` at its train block's batch size on random data: parameters
and model state from their initialisers, optimiser state zero, learning rate from the block.
Times are medians of `--repeat` calls (after 3 warm-up calls), one implementation after the
other: interleaving
them would let one library's BLAS threads, still spinning after a call, slow the next (NumPy and
Numba's `np.dot` use two different OpenBLAS builds). The hand-written
steps are checked against the compiled one before timing (loss and new parameters). PyTorch and
JAX columns appear when they are installed (neither is a dependency); they are not, here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = Path(__file__).resolve().parent.parent
# key -> (file, model name). The four workloads first (the default run), a CNN with batch
# norm, then the examples (`--models mnist_mlp,...`; `linreg_example` is examples/linreg.irn).
MODELS = {
    "mlp_small": ("benchmarks/models/mlp_small.irn", "mlp_small"),
    "mlp_large": ("benchmarks/models/mlp_large.irn", "mlp_large"),
    "lenet": ("benchmarks/models/lenet.irn", "lenet"),
    "linreg": ("benchmarks/models/linreg.irn", "linreg"),
    "cnn_bn": ("benchmarks/models/cnn_bn.irn", "cnn_bn"),
    "mnist_mlp": ("examples/mnist_mlp.irn", "mnist_mlp"),
    "mnist_cnn": ("examples/mnist_cnn.irn", "mnist_cnn"),
    "char_mlp": ("examples/char_mlp.irn", "char_mlp"),
    "char_gru": ("examples/char_gru.irn", "char_gru"),
    "linreg_example": ("examples/linreg.irn", "linreg"),
}
WORKLOADS = ["mlp_small", "mlp_large", "lenet", "linreg"]
# The targets: step time as a fraction of the hand-written NumPy step's.
TARGET_RATIO = {"mlp_small": 0.70, "linreg": 0.50, "lenet": 0.50}
SGEMM_FRACTION = 0.85  # mlp_large: at least this share of the machine's SGEMM rate
COMPILE_TARGETS = {"cold": 3.0, "warm": 0.3}  # mlp_small, seconds
# Fewer timed steps for the big ones (a step of mlp_large is ~60 GFLOP).
REPEAT_CAP = {"mlp_large": 5}
REFERENCE_REPEAT_CAP = {"mlp_large": 2}


# --- hand-written NumPy steps (the same maths as the IR the examples compile to) ---------------


def softmax_cross_entropy(z, y):
    """Mean cross-entropy of logits `z` and labels `y`, and its gradient with respect to `z`."""
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    g = np.exp(logp)
    g[rows, y] -= 1
    g /= len(y)
    return -logp[rows, y].mean(), g


def adam(params, grads, state, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    t1 = t + 1
    new_params, new_state = [], []
    for k, (p, g) in enumerate(zip(params, grads)):
        m = state[2 * k] * b1 + g * (1 - b1)
        v = state[2 * k + 1] * b2 + g * g * (1 - b2)
        step = (m / (1 - b1**t1)) / (np.sqrt(v / (1 - b2**t1)) + eps)
        new_params.append(p - step * lr)
        new_state += [m, v]
    return [*new_params, *new_state, t1]


def momentum(params, grads, state, t, lr, mu=0.9):
    velocity = [v * mu + g for v, g in zip(state, grads)]
    return [*(p - v * lr for p, v in zip(params, velocity)), *velocity, t + 1]


def char_mlp_step(context, nxt, table, w0, b0, w1, b1, *rest):
    *state, t, lr = rest
    n = len(context)
    flat = table[context].reshape(n, -1)
    h = np.tanh(flat @ w0 + b0)
    loss, g = softmax_cross_entropy(h @ w1 + b1, nxt)
    gh = (g @ w1.T) * (1 - h * h)
    gtable = np.zeros_like(table)
    np.add.at(gtable, context, (gh @ w0.T).reshape(n, context.shape[1], -1))
    grads = [gtable, flat.T @ gh, gh.sum(0), h.T @ g, g.sum(0)]
    return [loss, *adam([table, w0, b0, w1, b1], grads, state, t, lr)]


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def char_gru_step(context, nxt, table, wx, bx, wh, bh, wo, bo, *rest):
    """examples/char_gru.irn: embedding, a GRU over the window (PyTorch's gates r, z, n, the
    input's part computed for every position at once), a dense layer at every position and
    the mean cross-entropy of the next characters; backpropagation through time, Adam."""
    *state, t, lr = rest
    n, length = context.shape
    size = wh.shape[0]
    e = table[context]
    gx = e @ wx + bx
    h, saved, hs = np.zeros((n, size), table.dtype), [], []
    for s in range(length):
        gh = h @ wh + bh
        r = sigmoid(gx[:, s, :size] + gh[:, :size])
        z = sigmoid(gx[:, s, size : 2 * size] + gh[:, size : 2 * size])
        c = np.tanh(gx[:, s, 2 * size :] + r * gh[:, 2 * size :])
        saved.append((h, gh, r, z, c))
        h = (1 - z) * c + z * h
        hs.append(h)
    flat = np.stack(hs, 1).reshape(n * length, size)
    targets = np.concatenate([context[:, 1:], nxt[:, None]], axis=1).reshape(-1)
    loss, g = softmax_cross_entropy(flat @ wo + bo, targets)
    dhs = (g @ wo.T).reshape(n, length, size)
    dgx, gwh, gbh = np.empty_like(gx), np.zeros_like(wh), np.zeros_like(bh)
    dh = np.zeros((n, size), table.dtype)
    for s in reversed(range(length)):
        h, gh, r, z, c = saved[s]
        dh = dh + dhs[:, s]
        dc = dh * (1 - z) * (1 - c * c)
        dz = dh * (h - c) * z * (1 - z)
        dr = dc * gh[:, 2 * size :] * r * (1 - r)
        dgh = np.concatenate([dr, dz, dc * r], axis=1)
        dgx[:, s] = np.concatenate([dr, dz, dc], axis=1)
        gwh += h.T @ dgh
        gbh += dgh.sum(0)
        dh = dh * z + dgh @ wh.T
    gtable = np.zeros_like(table)
    np.add.at(gtable, context, dgx @ wx.T)
    flat_gx = dgx.reshape(n * length, 3 * size)
    grads = [gtable, e.reshape(n * length, -1).T @ flat_gx, flat_gx.sum(0), gwh, gbh,
             flat.T @ g, g.sum(0)]  # fmt: skip
    return [loss, *adam([table, wx, bx, wh, bh, wo, bo], grads, state, t, lr)]


def linreg_step(x, y, w, b, t, lr):
    diff = x @ w + b - y
    g = diff * (2 / diff.size)
    return [np.mean(diff * diff), w - (x.T @ g) * lr, b - g.sum(0) * lr, t + 1]


def conv(x, w, pad):
    """Stride-1 convolution (cross-correlation), NCHW / OIHW, as im2col + tensordot."""
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    cols = sliding_window_view(xp, (k, k), axis=(2, 3))
    return np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2), cols


def conv_grads(gy, cols, w, pad):
    k = w.shape[2]
    gw = np.tensordot(gy, cols, axes=([0, 2, 3], [0, 2, 3]))
    gp = np.pad(gy, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    windows = sliding_window_view(gp, (k, k), axis=(2, 3))
    gx = np.tensordot(windows, w[:, :, ::-1, ::-1], axes=([1, 4, 5], [0, 2, 3]))
    gx = gx.transpose(0, 3, 1, 2)
    return (gx[:, :, pad:-pad, pad:-pad] if pad else gx), gw


def pool(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def pool_grad(x, y, gy):
    n, c, h, w = x.shape
    up = np.repeat(np.repeat(y, 2, axis=2), 2, axis=3)
    return (x == up) * np.repeat(np.repeat(gy, 2, axis=2), 2, axis=3)


def mnist_cnn_step(x, y, cw0, cb0, cw1, cb1, w0, b0, w1, b1, w2, b2, *rest):
    *state, t, lr = rest
    c0, cols0 = conv(x, cw0, 2)
    c0 += cb0[:, None, None]
    r0 = np.maximum(c0, 0)
    p0 = pool(r0)
    c1, cols1 = conv(p0, cw1, 0)
    c1 += cb1[:, None, None]
    r1 = np.maximum(c1, 0)
    p1 = pool(r1)
    dense = [w0, b0, w1, b1, w2, b2]
    loss, dense_grads, gf = mlp_grads(p1.reshape(len(x), -1), y, dense, input_grad=True)
    gc1 = pool_grad(r1, p1, gf.reshape(p1.shape)) * (c1 > 0)
    gp0, gcw1 = conv_grads(gc1, cols1, cw1, 0)
    gc0 = pool_grad(r0, p0, gp0) * (c0 > 0)
    _, gcw0 = conv_grads(gc0, cols0, cw0, 2)
    grads = [gcw0, gc0.sum((0, 2, 3)), gcw1, gc1.sum((0, 2, 3)), *dense_grads]
    params = [cw0, cb0, cw1, cb1, w0, b0, w1, b1, w2, b2]
    return [loss, *momentum(params, grads, state, t, lr)]


def batch_norm(x, gamma, beta, running_mean, running_var, eps=1e-5, momentum=0.1):
    """The stdlib's `nn.batch_norm` in training: normalised by the batch's statistics, with the
    running statistics moved towards them; its output, what its gradients need, and the next
    running statistics."""
    mean = x.mean((0, 2, 3))
    centered = x - mean[:, None, None]
    var = (centered * centered).mean((0, 2, 3))
    root = np.sqrt(var + eps)
    normed = centered / root[:, None, None]
    n = x.size // x.shape[1]
    running = [
        (1 - momentum) * running_mean + momentum * mean,
        (1 - momentum) * running_var + momentum * var * (n / (n - 1)),
    ]
    return normed * gamma[:, None, None] + beta[:, None, None], (normed, root), running


def batch_norm_grads(gy, gamma, saved):
    """The gradients of `batch_norm` (in training) with respect to x, gamma and beta."""
    normed, root = saved
    n = gy.size // gy.shape[1]
    gbeta = gy.sum((0, 2, 3))
    ggamma = (gy * normed).sum((0, 2, 3))
    centred_grad = gy - (gbeta[:, None, None] + normed * ggamma[:, None, None]) / n
    return (gamma / root)[:, None, None] * centred_grad, ggamma, gbeta


def cnn_bn_step(x, y, *rest):
    """benchmarks/models/cnn_bn.irn: two blocks of conv 3x3 (padding 1, no bias) -> batch norm
    -> relu -> 2x2 max pool, then a dense layer; Adam. Each block's arguments are its
    convolution's weights, batch norm's gamma and beta, then its running mean and variance."""
    blocks, dense, state, (t, lr) = [rest[0:5], rest[5:10]], rest[10:12], rest[12:-2], rest[-2:]
    h, saved, running = x, [], []
    for cw, gamma, beta, mean, var in blocks:
        c, cols = conv(h, cw, 1)
        z, bn, next_stats = batch_norm(c, gamma, beta, mean, var)
        running += next_stats
        r = np.maximum(z, 0)
        h = pool(r)
        saved.append((cols, bn, z, r, h))
    loss, dense_grads, g = mlp_grads(h.reshape(len(x), -1), y, list(dense), input_grad=True)
    g, grads = g.reshape(h.shape), dense_grads
    for (cw, gamma, *_), (cols, bn, z, r, p) in zip(reversed(blocks), reversed(saved)):
        gc, ggamma, gbeta = batch_norm_grads(pool_grad(r, p, g) * (z > 0), gamma, bn)
        g, gcw = conv_grads(gc, cols, cw, 1)
        grads = [gcw, ggamma, gbeta, *grads]
    params = [*blocks[0][:3], *blocks[1][:3], *dense]
    updated = adam(params, grads, state, t, lr)
    return [loss, *updated[: len(params)], *running, *updated[len(params) :]]


def sgd(params, grads, t, lr):
    return [*(p - g * lr for p, g in zip(params, grads)), t + 1]


def mlp_grads(x, y, params, input_grad=False):
    """`dense -> relu -> ... -> dense` with softmax cross-entropy, for any depth: the loss, the
    parameter gradients and, if asked (a step over a model's input needs none), the gradient
    with respect to `x`."""
    ws, bs = params[0::2], params[1::2]
    inputs, pre = [x], []
    for k, (w, b) in enumerate(zip(ws, bs)):
        z = inputs[-1] @ w + b
        if k == len(ws) - 1:
            break
        pre.append(z)
        inputs.append(np.maximum(z, 0))
    loss, g = softmax_cross_entropy(z, y)
    grads = [None] * len(params)
    for k in reversed(range(len(ws))):
        grads[2 * k], grads[2 * k + 1] = inputs[k].T @ g, g.sum(0)
        if k:
            g = (g @ ws[k].T) * (pre[k - 1] > 0)
    return loss, grads, (g @ ws[0].T if input_grad else None)


def mlp_step(optimizer: str):
    """The step of `dense -> relu -> ... -> dense` with softmax cross-entropy, for any depth."""
    slots = {"sgd": 0, "momentum": 1, "adam": 2}[optimizer]

    def step(x, y, *rest):
        count = (len(rest) - 2) // (1 + slots)
        params, state, (t, lr) = rest[:count], rest[count:-2], rest[-2:]
        loss, grads, _ = mlp_grads(x, y, params)
        if optimizer == "sgd":
            return [loss, *sgd(params, grads, t, lr)]
        update = adam if optimizer == "adam" else momentum
        return [loss, *update(list(params), grads, state, t, lr)]

    return step


HANDWRITTEN = {
    "mlp_small": mlp_step("adam"),
    "mlp_large": mlp_step("sgd"),
    "lenet": mnist_cnn_step,
    "cnn_bn": cnn_bn_step,
    "linreg_example": linreg_step,
    "mnist_mlp": mlp_step("adam"),
    "mnist_cnn": mnist_cnn_step,
    "char_mlp": char_mlp_step,
    "char_gru": char_gru_step,
    "linreg": linreg_step,
}


# --- PyTorch eager steps (autograd + torch.optim, the same maths), when torch is installed ----


def torch_step(key: str, args: list[np.ndarray]):
    """A closure running one PyTorch eager training step on copies of `args`, and its loss."""
    import torch
    import torch.nn.functional as F

    model = MODELS[key][1]
    optimizer = {"mlp_small": "adam", "mlp_large": "sgd", "lenet": "momentum"}.get(key, "sgd")
    optimizer = {"mnist_mlp": "adam", "char_mlp": "adam", "mnist_cnn": "momentum"}.get(
        key, optimizer
    )
    if key in ("char_mlp",):
        return None
    if key == "char_gru":
        return torch_gru_step(args)
    x = torch.from_numpy(args[0])
    y = torch.from_numpy(args[1])
    y = y.long() if y.dtype != torch.float32 else y
    rest = args[2:]
    slots = {"sgd": 0, "momentum": 1, "adam": 2}[optimizer]
    count = (len(rest) - 2) // (1 + slots)
    params = [torch.tensor(p, requires_grad=True) for p in rest[:count]]
    lr = float(rest[-1])
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9 if optimizer == "momentum" else 0)

    def dense_stack(h, ps):
        for k in range(0, len(ps), 2):
            h = h @ ps[k] + ps[k + 1]
            if k + 2 < len(ps):
                h = torch.relu(h)
        return h

    def loss_fn():
        if model in ("lenet", "mnist_cnn"):
            cw0, cb0, cw1, cb1, *ps = params
            h = F.max_pool2d(torch.relu(F.conv2d(x, cw0, cb0, padding=2)), 2)
            h = F.max_pool2d(torch.relu(F.conv2d(h, cw1, cb1)), 2)
            return F.cross_entropy(dense_stack(h.flatten(1), ps), y)
        if model == "linreg":
            return F.mse_loss(x @ params[0] + params[1], y)
        return F.cross_entropy(dense_stack(x, params), y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def torch_gru_step(args: list[np.ndarray]):
    """examples/char_gru.irn in PyTorch: nn.Embedding, nn.GRU(batch_first=True) and nn.Linear
    holding the same weights (PyTorch keeps the transposes), Adam."""
    import torch

    context, nxt, table, wx, bx, wh, bh, wo, bo, *_, lr = (torch.from_numpy(a) for a in args)
    embed = torch.nn.Embedding.from_pretrained(table.clone(), freeze=False)
    gru = torch.nn.GRU(wx.shape[0], wh.shape[0], batch_first=True)
    out = torch.nn.Linear(wo.shape[0], wo.shape[1])
    with torch.no_grad():
        for param, value in [(gru.weight_ih_l0, wx.T), (gru.bias_ih_l0, bx),
                             (gru.weight_hh_l0, wh.T), (gru.bias_hh_l0, bh),
                             (out.weight, wo.T), (out.bias, bo)]:  # fmt: skip
            param.copy_(value)
    params = [*embed.parameters(), *gru.parameters(), *out.parameters()]
    opt = torch.optim.Adam(params, lr=float(lr))
    ids, targets = context.long(), torch.cat([context[:, 1:], nxt[:, None]], 1).long()

    def step():
        opt.zero_grad(set_to_none=True)
        logits = out(gru(embed(ids))[0])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 targets.reshape(-1))  # fmt: skip
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


# --- setup -------------------------------------------------------------------------------------


def load(key: str):
    from irnet import driver

    compiled = driver.load(ROOT / MODELS[key][0])
    driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
    return compiled


def step_arguments(compiled, key: str) -> list[np.ndarray]:
    from irnet import reference
    from irnet.params import arguments, find_function, initial_parameters

    model = MODELS[key][1]
    config = compiled.trains[model]
    fn = find_function(compiled.module, f"{model}.step")
    params = {**initial_parameters(fn, 0), **initial_parameters(fn, 0, "state")}
    rng = np.random.default_rng(0)
    values = []
    for arg in arguments(fn):
        dtype = reference.numpy_dtype(arg.type.element_type)
        shape = arg.concrete_shape(config.batch)
        if arg.kind in ("param", "state"):
            values.append(params[arg.name])
        elif arg.kind == "opt":
            values.append(np.zeros(shape, dtype))
        elif arg.kind == "hyper":
            values.append(np.asarray(config.optimizer.kwargs.get("lr", 0.01), dtype))
        elif dtype.kind == "i":
            values.append(rng.integers(0, 10, shape).astype(dtype))
        else:
            values.append(rng.normal(0, 1, shape).astype(dtype))
    return values


def compile_probe(key: str) -> dict:
    """Run in a subprocess: the time to compile (or load from the cache) and run one step.

    `compile_s` = parse + passes (`load_s`) + lowering/emission/import (`emit_s`) + the first
    step minus a second step's time (Numba compiling, or loading, the kernels it calls).
    Python's own imports (`import_s`) are not counted."""
    start = time.perf_counter()
    from irnet import driver  # noqa: F401
    from irnet.cpu import CpuRunner

    imported = time.perf_counter()
    compiled = load(key)
    loaded = time.perf_counter()
    args = step_arguments(compiled, key)
    before_emit = time.perf_counter()
    runner = CpuRunner(compiled.module, source_name=MODELS[key][0])
    emitted = time.perf_counter()
    name = f"{MODELS[key][1]}.step"
    runner.run(name, args, training=True)
    done = time.perf_counter()
    runner.run(name, args, training=True)
    second = time.perf_counter() - done
    stats = runner.stats()
    first = done - emitted
    return {
        "import_s": imported - start,
        "load_s": loaded - imported,
        "emit_s": emitted - before_emit,
        "first_step_s": first,
        "compile_s": (loaded - imported) + (emitted - before_emit) + first - second,
        "kernels_compiled": stats["compiled"],
        "kernels_loaded": stats["cache_hits"],
    }


def compile_times(key: str) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "IRNET_CACHE_DIR": cache}
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, __file__, "--probe", key],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                check=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs[0], runs[1]


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timing_probe(key: str, impl: str, repeat: int) -> dict:
    """Run in a subprocess, one per implementation (NumPy's OpenBLAS, Numba's BLAS and
    PyTorch's thread pools slow each other down when they share a process): the median step
    time over `repeat` steps after warm-up, and the peak resident memory (VmHWM) before the
    first step (imports, model, data, parameters) and after all of them."""
    compiled = load(key)
    args = step_arguments(compiled, key)
    name = f"{MODELS[key][1]}.step"
    if impl == "cpu":
        from irnet.cpu import CpuRunner

        runner = CpuRunner(compiled.module, source_name=MODELS[key][0])

        def run():
            return runner.run(name, args, training=True)
    elif impl == "reference":
        from irnet import reference

        ref = reference.Reference(compiled.module)

        def run():
            return ref.run(name, args, training=True)
    elif impl == "torch":
        run = torch_step(key, args)
    else:
        handwritten = HANDWRITTEN[key]

        def run():
            return handwritten(*args)

    del compiled
    setup = vm_hwm_mb()
    for _ in range(1 if key in REPEAT_CAP else 3):
        run()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return {"ms": median_ms(samples), "setup_mb": setup, "peak_mb": vm_hwm_mb()}


def timed(key: str, impl: str, repeat: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--time", f"{key}:{impl}:{repeat}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3


def check_probe(key: str, with_torch: bool) -> dict:
    """Run in a subprocess (so that no BLAS or OpenMP threads linger in the parent while the
    timing children run): compile, and compare the hand-written and PyTorch steps with it."""
    from irnet.cpu import CpuRunner

    compiled = load(key)
    args = step_arguments(compiled, key)
    name = f"{MODELS[key][1]}.step"
    cpu = CpuRunner(compiled.module, source_name=MODELS[key][0])  # also warms the cache
    compiled_out = cpu.run(name, args, training=True)
    numpy_out = HANDWRITTEN[key](*args)
    agreement = max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b) / (np.abs(b) + 1e-3)))
        for a, b in zip(numpy_out, compiled_out)
    )
    torch_loss_diff = None
    if with_torch and torch_step(key, args) is not None:
        first_loss = torch_step(key, args)()  # the same first step: compare the loss
        torch_loss_diff = abs(first_loss - float(numpy_out[0])) / (abs(first_loss) + 1e-3)
    return {
        "agreement": agreement,
        "torch_loss_diff": torch_loss_diff,
        "batch": compiled.trains[MODELS[key][1]].batch,
        "flops": step_matmul_flops(args, key) if key == "mlp_large" else None,
    }


def bench(key: str, repeat: int, reference_repeat: int, with_torch: bool) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--check", f"{key}:{int(with_torch)}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    check = json.loads(out.strip().splitlines()[-1])
    impls = ["cpu", "numpy", "reference"]
    if check["torch_loss_diff"] is not None:
        impls.append("torch")
    result = {}
    for impl in impls:
        probe = timed(key, impl, reference_repeat if impl == "reference" else repeat)
        result[impl] = probe["ms"]
        result[f"{impl}_mem"] = probe
    return {**result, **check}


# --- mlp_large: GFLOP/s against the machine's SGEMM rate --------------------------------------


def mlp_layers(args: list[np.ndarray]) -> tuple[int, list[tuple[int, int]]]:
    """The batch and the (in, out) of each dense layer, from an MLP step's arguments."""
    n = args[0].shape[0]
    return n, [a.shape for a in args[2:] if a.ndim == 2][:3]


def step_matmul_flops(args: list[np.ndarray], key: str) -> float:
    """2*N*in*out for each of a layer's three matmuls (forward, input gradient, weight
    gradient), less the first layer's input gradient, which no step needs."""
    n, layers = mlp_layers(args)
    total = sum(3 * 2 * n * i * o for i, o in layers)
    return float(total - 2 * n * layers[0][0] * layers[0][1])


def sgemm_rate(repeat: int = 5) -> tuple[float, float]:
    """GFLOP/s of NumPy's float32 `np.dot` on mlp_large's matmuls (the same shapes and flop
    count as one step: forward, input and weight gradients), best and median of `repeat`."""
    compiled = load("mlp_large")
    args = step_arguments(compiled, "mlp_large")
    n, layers = mlp_layers(args)
    rng = np.random.default_rng(1)
    products = []
    for k, (i, o) in enumerate(layers):
        a = rng.standard_normal((n, i), np.float32)
        w = rng.standard_normal((i, o), np.float32)
        g = rng.standard_normal((n, o), np.float32)
        products += [(a, w), (a.T, g)] + ([(g, w.T)] if k else [])
    flops = step_matmul_flops(args, "mlp_large")

    def once():
        for a, b in products:
            np.dot(a, b)

    once()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        once()
        samples.append(time.perf_counter() - start)
    return flops / min(samples) / 1e9, flops / float(np.median(samples)) / 1e9


# --- report ------------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(WORKLOADS), help=", ".join(MODELS))
    parser.add_argument("--repeat", type=int, default=20, help="timed steps per implementation")
    parser.add_argument("--reference-repeat", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the cold/warm timing")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--time", help=argparse.SUPPRESS)
    parser.add_argument("--check", help=argparse.SUPPRESS)
    parser.add_argument("--sgemm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(compile_probe(args.probe)))
        return
    if args.sgemm:
        print(json.dumps(sgemm_rate()))
        return
    if args.check:
        key, with_torch = args.check.split(":")
        print(json.dumps(check_probe(key, with_torch == "1")))
        return
    if args.time:
        key, impl, steps = args.time.split(":")
        print(json.dumps(timing_probe(key, impl, int(steps))))
        return

    from importlib.metadata import version  # the parent imports neither Numba nor torch:

    models = [m for m in args.models.split(",") if m]  # their idle threads would slow the
    with_torch = _installed("torch") and not args.no_torch
    torch_note = "PyTorch not installed"
    if with_torch:
        torch_note = f"torch {version('torch')} eager"
    print(
        f"irnet cpu target: numba {version('numba')}, numpy {np.__version__}, "
        f"{len(os.sched_getaffinity(0))} cores; {torch_note}"
    )

    results = {}
    for key in models:
        results[key] = bench(
            key,
            min(args.repeat, REPEAT_CAP.get(key, args.repeat)),
            min(args.reference_repeat, REFERENCE_REPEAT_CAP.get(key, args.reference_repeat)),
            with_torch,
        )
    memory = {k: {i: r[f"{i}_mem"] for i in ("cpu", "numpy")} for k, r in results.items()}
    sgemm = None
    if "mlp_large" in models:  # in a child, like the steps
        out = subprocess.run(
            [sys.executable, __file__, "--sgemm"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout
        sgemm = json.loads(out.strip().splitlines()[-1])
    compile_runs = None
    if not args.no_compile and "mlp_small" in models:
        compile_runs = compile_times("mlp_small")

    print()
    torch_head = f"{'torch':>9}" if with_torch else ""
    header = (
        f"{'workload':<15}{'batch':>6}{'cpu':>9}{'numpy':>9}{torch_head}{'reference':>11}"
        f"{'cpu/numpy':>11}{'target':>16}{'':>9}{'RSS cpu':>9}{'RSS numpy':>10}{'agree':>9}"
    )
    print(header)
    print(f"{'':<15}{'':>6}{'(median ms per step)':>{18 + len(torch_head) + 11}}"
          f"{'':>36}{'(peak MB)':>19}")  # fmt: skip
    gflops = None
    for key in models:
        r = results[key]
        ratio = r["cpu"] / r["numpy"]
        if key in TARGET_RATIO:
            target, ok = f"<= {TARGET_RATIO[key]:.2f}x numpy", ratio <= TARGET_RATIO[key]
        elif key == "mlp_large" and sgemm:
            gflops = r["flops"] / (r["cpu"] / 1e3) / 1e9
            target, ok = f">= {SGEMM_FRACTION:.0%} SGEMM", gflops >= SGEMM_FRACTION * sgemm[0]
        else:
            target, ok = "", None
        torch_col = ""
        if with_torch:
            torch_col = f"{r['torch']:>9.2f}" if "torch" in r else f"{'-':>9}"
        mem = memory.get(key)
        mem_cols = (
            f"{mem['cpu']['peak_mb']:>9.0f}{mem['numpy']['peak_mb']:>10.0f}"
            if mem
            else f"{'-':>9}{'-':>10}"
        )
        print(
            f"{key:<15}{r['batch']:>6}{r['cpu']:>9.2f}{r['numpy']:>9.2f}{torch_col}"
            f"{r['reference']:>11.2f}{ratio:>10.2f}x{target:>16}{verdict(ok):>9}{mem_cols}"
            f"{r['agreement']:>9.1e}"
        )
    if sgemm and gflops is not None:
        r = results["mlp_large"]
        print(
            f"\nmlp_large: {r['flops'] / 1e9:.1f} GFLOP of matmul per step (forward, input and "
            f"weight gradients, no input gradient for layer 0): cpu {gflops:.1f} GFLOP/s = "
            f"{gflops / sgemm[0]:.0%} of SGEMM; numpy step "
            f"{r['flops'] / (r['numpy'] / 1e3) / 1e9:.1f} GFLOP/s"
            + (
                f"; torch {r['flops'] / (r['torch'] / 1e3) / 1e9:.1f} GFLOP/s"
                if "torch" in r
                else ""
            )
            + f".\n  SGEMM rate (np.dot, float32, the step's shapes): best {sgemm[0]:.1f}, "
            f"median {sgemm[1]:.1f} GFLOP/s; target >= {SGEMM_FRACTION:.0%} = "
            f"{SGEMM_FRACTION * sgemm[0]:.1f} GFLOP/s."
        )
    if compile_runs:
        cold, warm = compile_runs
        print("\nmlp_small compile (parse + passes + emission + Numba, excluding Python imports):")
        for label, run in (("cold", cold), ("warm", warm)):
            limit = COMPILE_TARGETS[label]
            print(
                f"  {label}: {run['compile_s']:.2f} s (target <= {limit} s: "
                f"{verdict(run['compile_s'] <= limit)}; parse+passes {run['load_s']:.2f} s, "
                f"emit {run['emit_s']:.2f} s, first step {run['first_step_s']:.2f} s, kernels "
                f"compiled {run['kernels_compiled']}, loaded {run['kernels_loaded']}; "
                f"imports {run['import_s']:.2f} s not counted)"
            )
    if memory:
        print(
            "\nEach implementation is timed in its own child process (median of --repeat steps,"
            " --reference-repeat for the reference; mlp_large capped at 5 and 2).\nRSS: VmHWM "
            "of that child (it loads the model, builds the arguments, then runs the steps); the "
            "cpu child also holds Numba/LLVM and its kernels (loaded from the cache here)."
        )
        print(
            "  before the first step (cpu / numpy, MB): "
            + ", ".join(
                f"{k} {m['cpu']['setup_mb']:.0f} / {m['numpy']['setup_mb']:.0f}"
                for k, m in memory.items()
            )
        )
    if with_torch:
        diffs = [r["torch_loss_diff"] for r in results.values() if r["torch_loss_diff"] is not None]
        if diffs:
            print(f"\ntorch: first-step loss agrees with numpy to {max(diffs):.1e} (relative).")


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
