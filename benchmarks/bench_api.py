"""What a compiled callable of the Python API (`Model.compile`) adds over the Numba entry
point it wraps, for small inputs, where that cost shows: the same call, timed both ways in one
process, alternating, the fastest of many repetitions (the least disturbed by other work on
the machine; a busy machine adds noise of tens of microseconds to single samples).

    .venv/bin/python benchmarks/bench_api.py [--repeat 2000]

The direct call is the generated module's entry point (`FUNCTIONS[name]`), given every
argument, parameters included, in order: what a program that imports the file `irnet compile`
writes would call. The target is at most 20 us of overhead per call (issue 15).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import irnet

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = {
    "mlp 4-16-3, batch 1": (
        """
from nn import dense
model small(x: f32[N, 4]) -> f32[N, 3] { return dense(relu(dense(x, 16)), 3) }
""",
        (1, 4),
    ),
    "mnist_mlp, batch 8": ((ROOT / "examples" / "mnist_mlp.irn").read_text(), (8, 784)),
}


def per_call(call, repeat: int, inner: int = 20) -> list[float]:
    """Seconds per call, `repeat` samples of `inner` calls each."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            call()
        samples.append((time.perf_counter() - start) / inner)
    return samples


def measure(text: str, shape: tuple[int, ...], repeat: int) -> tuple[float, float]:
    model = irnet.loads(text, name="bench.irn", target="cpu")
    function = model.compile()
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    runner = model.runner("cpu")
    entry = runner.compiled.module.FUNCTIONS[function.name]
    # writable copies, as the model holds them (`model.params[name]` is a read-only view,
    # a different array type to Numba, whose entry points copy it)
    params = [model.params.numpy()[name] for name in function.signature.params]
    function(x), entry(x, *params, training=False, step=0, seed=0, check_finite=False)  # compile
    np.testing.assert_array_equal(
        function(x), entry(x, *params, training=False, step=0, seed=0, check_finite=False)[0]
    )
    api, direct = [], []
    for _ in range(5):  # alternate, so that drift in the machine's speed hits both
        api += per_call(lambda: function(x), repeat // 5)
        direct += per_call(
            lambda: entry(x, *params, training=False, step=0, seed=0, check_finite=False),
            repeat // 5,
        )
    return min(api), min(direct)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'program':<22} {'API call':>10} {'direct':>10} {'overhead':>10}")
    for label, (text, shape) in PROGRAMS.items():
        api, direct = measure(text, shape, args.repeat)
        print(f"{label:<22} {api * 1e6:>8.1f}us {direct * 1e6:>8.1f}us "
              f"{(api - direct) * 1e6:>8.1f}us")  # fmt: skip


if __name__ == "__main__":
    main()
