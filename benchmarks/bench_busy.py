"""Epoch time on an idle and on a busy machine, with irnet's thread policy and without it.

    .venv/bin/python benchmarks/bench_busy.py                  # mnist_mlp, cpu target, 1 epoch
    .venv/bin/python benchmarks/bench_busy.py --runs 3 --epochs 2 --target reference

Each measurement is one `irnet train FILE --target T --epochs E` process, timed by its own
epoch log (compiling and loading are not in it; the compile cache is warmed first). Loads:

- `idle`: nothing started by this script (other users of the machine still count: the load
  average is printed);
- `busy`: one CPU-bound process (`python -c 'while True: pass'`) started before irnet, as on
  a machine where another job already runs: what the policy measures at start;
- `late`: the same process started once training begins: the policy sees it within a second
  (`threads.follow_load`, measured again between training steps).

Policies: `irnet` (the default: `irnet/threads.py`) and `off` (`IRNET_THREADS=off`: every pool
as NumPy, SciPy and Numba start it, one thread per core). Runs are interleaved, policy by
policy and load by load, so that a change in the machine's other load spreads over all cells;
each cell is the median of `--runs`. The pool sizes each process ended with are shown too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = {"irnet": None, "off": "off"}
LOADS = ("idle", "busy", "late")

# Runs the CLI, then reports the BLAS pools it left, as `package:threads` words on stderr.
TRAIN = """
import sys
from threadpoolctl import threadpool_info
from irnet import cli, threads
status = cli.main(sys.argv[1:])
pools = sorted(f"{threads.shipped_by(i['filepath']) or 'blas'}:{i['num_threads']}"
               for i in threadpool_info() if i['user_api'] == 'blas')
print('POOLS', ' '.join(pools), file=sys.stderr)
sys.exit(status)
"""


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """One CPU-bound process for as long as the block runs."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def train(args: argparse.Namespace, policy: str | None, load: str) -> tuple[float, str]:
    """The mean epoch time (seconds) of one `irnet train`, and the BLAS pools it ended with."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        command = [
            sys.executable, "-c", TRAIN, "train", str(args.file), "--target", args.target,
            "--epochs", str(args.epochs), "--checkpoint-dir", "", "--log", str(log),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "IRNET_THREADS"}
        if policy is not None:
            env["IRNET_THREADS"] = policy
        with contextlib.ExitStack() as stack:
            if load == "busy":
                stack.enter_context(cpu_hog())
                time.sleep(0.5)  # running before irnet starts, as on a busy machine
            errors = stack.enter_context((Path(tmp) / "stderr").open("w+"))
            process = subprocess.Popen(command, cwd=ROOT, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=errors)  # fmt: skip
            assert process.stdout is not None
            for line in process.stdout:  # "training ..." comes once the pools are sized
                if load == "late" and line.startswith("training"):
                    stack.enter_context(cpu_hog())
                    break
            process.communicate()
            errors.seek(0)
            err = errors.read()
        if process.returncode != 0:
            sys.exit(f"irnet train failed ({process.returncode}):\n{err}")
        epochs = [json.loads(line)["seconds"] for line in log.read_text().splitlines()]
        pools = next((ln[6:] for ln in err.splitlines() if ln.startswith("POOLS ")), "?")
        return statistics.mean(epochs), pools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", default="examples/mnist_mlp.irn")
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2, help="measurements per cell (median)")
    args = parser.parse_args()

    print(f"{args.file}, --target {args.target}, {args.epochs} epoch(s), {args.runs} run(s) "
          f"per cell; {len(os.sched_getaffinity(0))} CPUs; "
          f"load average {os.getloadavg()[0]:.2f} at start")  # fmt: skip
    train(args, None, "idle")  # warms the compile cache
    times: dict[tuple[str, str], list[float]] = {}
    pools: dict[tuple[str, str], str] = {}
    for _ in range(args.runs):
        for name, policy in POLICIES.items():
            for load in LOADS:
                seconds, pools[name, load] = train(args, policy, load)
                times.setdefault((name, load), []).append(seconds)

    print(f"\n{'policy':8}{'load':6}{'epoch s (median)':>18}{'runs':>24}  BLAS pools")
    for name in POLICIES:
        for load in LOADS:
            runs = times[name, load]
            listed = " ".join(f"{t:.2f}" for t in runs)
            print(f"{name:8}{load:6}{statistics.median(runs):>18.2f}{listed:>24}  "
                  f"{pools[name, load]}")  # fmt: skip
    print()
    for name in POLICIES:
        idle = statistics.median(times[name, "idle"])
        ratios = [f"{load}/idle {statistics.median(times[name, load]) / idle:.1f}x"
                  for load in LOADS[1:]]  # fmt: skip
        print(f"{name:8}" + ", ".join(ratios))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
