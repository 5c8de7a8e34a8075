"""Step time of the training workloads on the GPU (the cuda target) against the cpu target,
in one process, on a machine with an NVIDIA GPU (`benchmarks/gpu_check.sh` runs it).

    NUMBA_ENABLE_CUDASIM=0 .venv/bin/python benchmarks/bench_cuda.py [--repeat 20]

Each workload runs `@<model>.step` at its train block's batch size on random data, as
`bench_cpu.py` does. On the GPU the step's new parameters and optimiser state are fed back as
device arrays, as the trainer does, so only the batch goes to the device and the loss comes
back; each timed step ends when the loss is on the host. Times are medians after 3 warm-up
steps (which also compile the kernels). For mlp_large, the GPU's rate on the step's matmuls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu import MODELS, load, step_arguments, step_matmul_flops  # noqa: E402

WORKLOADS = ["mlp_small", "mlp_large", "lenet"]
REPEAT_CAP = {"mlp_large": 10}


def median_ms(step, args: list, repeat: int) -> float:
    for _ in range(3):
        step(args)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        step(args)
        samples.append(time.perf_counter() - start)
    return 1e3 * float(np.median(samples))


def stepper(runner, name: str, n_data: int):
    """A step that feeds its new parameters and state back, as the trainer does, and copies
    the loss to the host."""

    def step(args: list) -> float:
        loss, *rest = runner.run(name, args)
        args[n_data : n_data + len(rest)] = rest
        return float(np.asarray(loss))

    return step


def bench(key: str, repeat: int) -> dict:
    from irnet.cpu import CpuRunner
    from irnet.cuda import CudaRunner
    from irnet.params import arguments, find_function

    compiled = load(key)
    model = MODELS[key][1]
    name = f"{model}.step"
    args = step_arguments(compiled, key)
    roles = [a.kind for a in arguments(find_function(compiled.module, name))]
    n_data = sum(1 for r in roles if r not in ("param", "state", "opt", "hyper"))
    repeat = min(repeat, REPEAT_CAP.get(key, repeat))
    cpu = CpuRunner(compiled.module, source_name=key)
    gpu = CudaRunner(compiled.module, source_name=key)
    cpu_ms = median_ms(stepper(cpu, name, n_data), list(args), repeat)
    gpu_ms = median_ms(stepper(gpu, name, n_data), list(args), repeat)
    row = {"key": key, "cpu_ms": cpu_ms, "cuda_ms": gpu_ms}
    if key == "mlp_large":
        row["gflops"] = step_matmul_flops(args, key) / (gpu_ms * 1e-3) / 1e9
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--models", default=",".join(WORKLOADS))
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="in Numba's simulator (NUMBA_ENABLE_CUDASIM=1): checks the script; the times mean "
        "nothing",
    )
    args = parser.parse_args()
    from numba import config, cuda

    from irnet.cuda import device_problem

    if config.ENABLE_CUDASIM and not args.dry_run:
        sys.exit("bench_cuda: the simulator is on; set NUMBA_ENABLE_CUDASIM=0")
    if device_problem():
        sys.exit(f"bench_cuda: {device_problem()}")
    if config.ENABLE_CUDASIM:
        print("GPU: none, Numba's simulator (a dry run)")
    else:
        print(f"GPU: {cuda.get_current_device().name.decode(errors='replace')}")
    print(f"{'workload':<12} {'cpu ms':>10} {'cuda ms':>10} {'speed-up':>9}")
    for key in args.models.split(","):
        row = bench(key, args.repeat)
        extra = f"   matmuls {row['gflops']:.0f} GFLOP/s" if "gflops" in row else ""
        speedup = row["cpu_ms"] / row["cuda_ms"]
        print(f"{key:<12} {row['cpu_ms']:>10.2f} {row['cuda_ms']:>10.2f} {speedup:>8.1f}x{extra}")


if __name__ == "__main__":
    main()
