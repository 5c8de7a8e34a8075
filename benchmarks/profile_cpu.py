"""Where a compiled training step spends its time: each kernel's share of `@<model>.step`.

    .venv/bin/python benchmarks/profile_cpu.py lenet --repeat 50

Every `@njit` function of the emitted module is wrapped in a timer (the entry point looks its
kernels up as module globals), the step runs `--repeat` times after warm-up, and the kernels
are listed by total time; what is left of the step's time is the entry point's own Python
(argument checks, workspace lookups, calls). The timers add about a microsecond per call.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from bench_cpu import MODELS, load, step_arguments
from numba.core.dispatcher import Dispatcher

from irnet.cpu import CpuRunner


def instrument(module, totals: dict[str, list[float]]) -> None:
    """Replace each kernel global of `module` that the entry points call by a wrapper adding
    its run time to `totals` (not those that kernels call: Numba must still type them)."""
    kernels = {n: v for n, v in vars(module).items() if isinstance(v, Dispatcher)}
    called = {n for v in kernels.values() for n in v.py_func.__code__.co_names}
    for name, value in kernels.items():
        if name in called:
            continue

        def timed(*args, _kernel=value, _name=name):
            start = time.perf_counter()
            out = _kernel(*args)
            entry = totals[_name]
            entry[0] += time.perf_counter() - start
            entry[1] += 1
            return out

        setattr(module, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    compiled = load(args.model)
    values = step_arguments(compiled, args.model)
    runner = CpuRunner(compiled.module, source_name=MODELS[args.model][0])
    name = f"{MODELS[args.model][1]}.step"
    for _ in range(3):
        runner.run(name, values, training=True)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    instrument(runner.compiled.module, totals)
    start = time.perf_counter()
    for _ in range(args.repeat):
        runner.run(name, values, training=True)
    step = (time.perf_counter() - start) / args.repeat
    kernels = sum(t for t, _ in totals.values()) / args.repeat
    print(f"{name}: {step * 1e3:.3f} ms per step, kernels {kernels * 1e3:.3f} ms")
    for kernel, (total, calls) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        per_step = total / args.repeat
        share = f"{per_step / step:6.1%}"
        print(f"  {per_step * 1e3:8.3f} ms {share}  {calls // args.repeat:3d}x  {kernel}")
    print(f"  {(step - kernels) * 1e3:8.3f} ms {(step - kernels) / step:6.1%}       entry point")


if __name__ == "__main__":
    main()
