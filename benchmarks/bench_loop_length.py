"""Compile time against sequence length: examples/char_gru.irn with its context set to each
length, compiled cold for the cpu target, each in a fresh process with an empty compile cache.

    .venv/bin/python benchmarks/bench_loop_length.py                  # lengths 32 and 256
    .venv/bin/python benchmarks/bench_loop_length.py --lengths 16,64,512 --runs 3

A loop is one `nn.scan` op whatever its length, so the IR, the kernels and their compile time
should not grow with it; an unrolled loop would grow linearly. Columns (seconds, medians of
`--runs` fresh processes):

- ops: the number of ops in the training step's IR after `plan-memory` (the loop's step
  counted once);
- compile: the first training step minus the second, that is the parse, the passes, the
  emission and Numba's compilation, without the first step's own run time;
- step: the second training step (a batch of 8 windows), which does grow with the length.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "char_gru.irn"
BATCH = 8


def probe(path: str) -> dict:
    """In a fresh process: the ops of the step's IR, and the first two training steps."""
    import numpy as np

    import irnet
    from irnet import driver

    start = time.perf_counter()
    model = irnet.load(path, target="cpu")
    length = int(Path(path).stem.rsplit("_", 1)[1])  # variant()'s name
    rng = np.random.default_rng(0)
    context = rng.integers(0, 65, size=(BATCH, length)).astype(np.int32)
    following = rng.integers(0, 65, size=(BATCH,)).astype(np.int32)
    model.train_step(context, following)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.train_step(context, following)
    second = time.perf_counter() - start
    module = driver.load(path).module
    driver.run_passes(module, ",".join(driver.CPU_PIPELINE[:-1]))
    ops = sum(1 for _ in module.walk())
    return {"ops": ops, "compile": first - second, "step": second}


def variant(folder: Path, length: int) -> Path:
    """char_gru with a context of `length` characters, beside a link to the data."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in [
        ("i32[N, 64]", f"i32[N, {length}]"),
        ("f32[N, 64, 65]", f"f32[N, {length}, 65]"),
        ("context=64, stride=64", f"context={length}, stride={length}"),
    ]:
        assert old in text, f"{EXAMPLE} no longer has {old!r}"
        text = text.replace(old, new)
    path = folder / f"char_gru_{length}.irn"
    path.write_text(text)
    return path


def sample(path: Path) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "IRNET_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, __file__, "--probe", str(path)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="32,256")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe)))
        return
    lengths = [int(n) for n in args.lengths.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        paths = {n: variant(Path(folder), n) for n in lengths}
        samples = {n: [] for n in lengths}
        for _ in range(args.runs):
            for n in lengths:
                samples[n].append(sample(paths[n]))
    base = statistics.median(s["compile"] for s in samples[lengths[0]])
    print(f"{'length':>6}  {'ops':>5}  {'compile s':>9}  {'vs first':>8}  {'step s':>7}")
    for n in lengths:
        compile_s = statistics.median(s["compile"] for s in samples[n])
        step = statistics.median(s["step"] for s in samples[n])
        ops = samples[n][0]["ops"]
        print(f"{n:>6}  {ops:>5}  {compile_s:>9.2f}  {compile_s / base:>7.2f}x  {step:>7.3f}")


if __name__ == "__main__":
    main()
