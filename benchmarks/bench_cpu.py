"""Step time of the training examples on the cpu target (Numba), against the reference
interpreter and a hand-written NumPy implementation of the same step, in one process; and the
compile time of each example's step, cold (empty cache) and warm (a second process).

    .venv/bin/python benchmarks/bench_cpu.py                     # every example
    .venv/bin/python benchmarks/bench_cpu.py --models mnist_mlp --repeat 50

Each example runs `@<model>.step` at its train block's batch size on random data: parameters
from their initialisers, optimiser state zero, learning rate from the block. Times are medians
of `--repeat` calls (after 3 warm-up calls), one implementation after the other: interleaving
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
MODELS = {
    "mnist_mlp": "examples/mnist_mlp.irn",
    "mnist_cnn": "examples/mnist_cnn.irn",
    "char_mlp": "examples/char_mlp.irn",
    "linreg": "examples/linreg.irn",
}


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


def mnist_mlp_step(x, y, w0, b0, w1, b1, w2, b2, *rest):
    *state, t, lr = rest
    h0 = x @ w0 + b0
    a0 = np.maximum(h0, 0)
    h1 = a0 @ w1 + b1
    a1 = np.maximum(h1, 0)
    loss, g = softmax_cross_entropy(a1 @ w2 + b2, y)
    ga1 = (g @ w2.T) * (h1 > 0)
    ga0 = (ga1 @ w1.T) * (h0 > 0)
    grads = [x.T @ ga0, ga0.sum(0), a0.T @ ga1, ga1.sum(0), a1.T @ g, g.sum(0)]
    return [loss, *adam([w0, b0, w1, b1, w2, b2], grads, state, t, lr)]


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
    f = p1.reshape(len(x), -1)
    h0 = f @ w0 + b0
    a0 = np.maximum(h0, 0)
    h1 = a0 @ w1 + b1
    a1 = np.maximum(h1, 0)
    loss, g = softmax_cross_entropy(a1 @ w2 + b2, y)
    ga1 = (g @ w2.T) * (h1 > 0)
    ga0 = (ga1 @ w1.T) * (h0 > 0)
    gf = (ga0 @ w0.T).reshape(p1.shape)
    gc1 = pool_grad(r1, p1, gf) * (c1 > 0)
    gp0, gcw1 = conv_grads(gc1, cols1, cw1, 0)
    gc0 = pool_grad(r0, p0, gp0) * (c0 > 0)
    _, gcw0 = conv_grads(gc0, cols0, cw0, 2)
    grads = [
        gcw0, gc0.sum((0, 2, 3)), gcw1, gc1.sum((0, 2, 3)),
        f.T @ ga0, ga0.sum(0), a0.T @ ga1, ga1.sum(0), a1.T @ g, g.sum(0),
    ]  # fmt: skip
    params = [cw0, cb0, cw1, cb1, w0, b0, w1, b1, w2, b2]
    return [loss, *momentum(params, grads, state, t, lr)]


HANDWRITTEN = {
    "mnist_mlp": mnist_mlp_step,
    "mnist_cnn": mnist_cnn_step,
    "char_mlp": char_mlp_step,
    "linreg": linreg_step,
}


# --- setup -------------------------------------------------------------------------------------


def load(model: str):
    from irnet import driver

    compiled = driver.load(ROOT / MODELS[model])
    driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
    return compiled


def step_arguments(compiled, model: str) -> list[np.ndarray]:
    from irnet import reference
    from irnet.params import arguments, find_function, initial_parameters

    config = compiled.trains[model]
    fn = find_function(compiled.module, f"{model}.step")
    params = initial_parameters(fn, 0)
    rng = np.random.default_rng(0)
    values = []
    for arg in arguments(fn):
        dtype = reference.numpy_dtype(arg.type.element_type)
        shape = arg.concrete_shape(config.batch)
        if arg.kind == "param":
            values.append(params[arg.name])
        elif arg.kind == "state":
            values.append(np.zeros(shape, dtype))
        elif arg.kind == "hyper":
            values.append(np.asarray(config.optimizer.kwargs.get("lr", 0.01), dtype))
        elif dtype.kind == "i":
            values.append(rng.integers(0, 10, shape).astype(dtype))
        else:
            values.append(rng.normal(0, 1, shape).astype(dtype))
    return values


def compile_probe(model: str) -> dict:
    """Run in a subprocess: the time to compile (or load) and run one step."""
    start = time.perf_counter()
    from irnet.cpu import CpuRunner

    compiled = load(model)
    args = step_arguments(compiled, model)
    imported = time.perf_counter()
    runner = CpuRunner(compiled.module, source_name=MODELS[model])
    emitted = time.perf_counter()
    runner.run(f"{model}.step", args, training=True)
    done = time.perf_counter()
    stats = runner.stats()
    return {
        "load_s": imported - start,
        "emit_s": emitted - imported,
        "first_step_s": done - emitted,
        "kernels_compiled": stats["compiled"],
        "kernels_loaded": stats["cache_hits"],
    }


def compile_times(model: str) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "IRNET_CACHE_DIR": cache}
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, __file__, "--probe", model],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                check=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs[0], runs[1]


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3


def bench(model: str, repeat: int, reference_repeat: int) -> dict:
    from irnet import reference
    from irnet.cpu import CpuRunner

    compiled = load(model)
    args = step_arguments(compiled, model)
    name = f"{model}.step"
    cpu = CpuRunner(compiled.module, source_name=MODELS[model])
    ref = reference.Reference(compiled.module)
    handwritten = HANDWRITTEN[model]

    compiled_out = cpu.run(name, args, training=True)
    numpy_out = handwritten(*args)
    agreement = max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b) / (np.abs(b) + 1e-3)))
        for a, b in zip(numpy_out, compiled_out)
    )
    runs = {
        "reference": lambda: ref.run(name, args, training=True),
        "numpy": lambda: handwritten(*args),
        "cpu": lambda: cpu.run(name, args, training=True),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for key, run in runs.items():  # in blocks: BLAS thread pools that spin after a call
        count = reference_repeat if key == "reference" else repeat  # slow down the next one
        for _ in range(3):
            run()
        for _ in range(count):
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    result = {k: median_ms(v) for k, v in times.items()}
    result["batch"] = compiled.trains[model].batch
    result["agreement"] = agreement
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=30, help="timed steps per implementation")
    parser.add_argument("--reference-repeat", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="skip the cold/warm timing")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(compile_probe(args.probe)))
        return

    import numba

    from irnet.cpu import default_parallel

    models = [m for m in args.models.split(",") if m]
    others = [m for m in ("torch", "jax") if _installed(m)]
    print(
        f"irnet cpu target: numba {numba.__version__}, numpy {np.__version__}, "
        f"{len(os.sched_getaffinity(0))} cores, parallel loops "
        f"{'on' if default_parallel() else 'off'}; "
        + (
            f"{', '.join(others)} installed but not benchmarked"
            if others
            else "PyTorch and JAX not installed"
        )
    )
    print()
    header = (
        f"{'@model.step':<16}{'batch':>6}{'reference':>11}{'numpy':>9}{'cpu':>9}"
        f"{'ref/cpu':>9}{'numpy/cpu':>11}{'agree':>10}"
    )
    print(header + "   (median ms per step)")
    for model in models:
        r = bench(model, args.repeat, args.reference_repeat)
        print(
            f"{model:<16}{r['batch']:>6}{r['reference']:>11.2f}{r['numpy']:>9.2f}{r['cpu']:>9.2f}"
            f"{r['reference'] / r['cpu']:>8.1f}x{r['numpy'] / r['cpu']:>10.1f}x"
            f"{r['agreement']:>10.1e}"
        )
    if args.no_compile:
        return
    print()
    print(f"{'compile':<16}{'cold: emit':>12}{'first step':>12}{'kernels':>9}"
          f"{'warm: emit':>12}{'first step':>12}{'loaded':>8}")  # fmt: skip
    for model in models:
        cold, warm = compile_times(model)
        print(
            f"{model:<16}{cold['emit_s']:>11.2f}s{cold['first_step_s']:>11.2f}s"
            f"{cold['kernels_compiled']:>9}{warm['emit_s']:>11.2f}s{warm['first_step_s']:>11.2f}s"
            f"{warm['kernels_loaded']:>8}"
        )
    print(
        "\ncold: empty cache, a new process (emit = lowering + emission + import; first step "
        "= Numba compiling the kernels it calls, then running);\nwarm: the same, in a second "
        "process, the kernels loaded from the cache (`kernels_compiled` 0)."
    )


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
