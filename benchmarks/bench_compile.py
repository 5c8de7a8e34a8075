"""Compile benchmark: the time to a model's first training step with irnet's cpu target, with an
empty compile cache (cold) and again on the same cache (warm), each in a fresh process, beside
JAX's first step (jax.jit of the same step) when an interpreter with JAX is given.

    .venv/bin/python benchmarks/bench_compile.py          # every model; JAX if importable
    .venv/bin/python benchmarks/bench_compile.py --jax-python /tmp/jaxenv/bin/python --runs 3 \\
        --json compile.json
    .venv/bin/python benchmarks/bench_compile.py --models mlp_small,lenet --prepare 'irnet warmup'

JAX is not a dependency of irnet; a throwaway environment is enough:
`python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax jaxlib numpy`.

Models: bench_cpu.MODELS, the issue's workloads (benchmarks/models: its four and a CNN with
batch norm) and the examples (`linreg_example` is examples/linreg.irn). Columns, each sample
a fresh process:

- import: Python's imports (NumPy, irnet's driver and cpu runner), not counted in a first step.
- cold: `IRNET_CACHE_DIR` a new empty folder. First step = parse + passes, emission and import
  of the generated module, then the first `step` call (Numba compiling its kernels, or loading
  them from the cache, and running it); the random data and initial parameters are made
  between, untimed (bench_cpu.compile_probe). The split and the number of kernels that Numba
  compiled / loaded from the cache are shown beside it.
- warm: a second process on the cold run's cache folder.
- after warmup (only with `--prepare CMD`): a copy of a folder that `CMD` filled once (run by
  the shell, with `IRNET_CACHE_DIR` set to it and .venv/bin first on PATH), then the model
  cold: with `irnet warmup`, the model's own entry is new but kernels it shares with the
  warm-up programs are in the kernel cache.
  More columns: add a case to `irnet_samples`.
- JAX: `import jax` timed apart; first step = start of JAX's CPU backend, the arguments put on
  it, `jax.jit(step)`, one call (tracing, XLA compilation, the run) to `block_until_ready`.
  The step (benchmarks/jax_steps.py) has irnet's shapes, batch, loss and optimiser; its
  shapes are checked against irnet's, its outputs against bench_cpu's NumPy step.

Each number is the median of `--runs` samples (each a fresh process; min-max beside it when
there are several); the split's medians are taken one by one, so they need not add up. These
machines are shared and noisy: the load average is printed, and a few runs are worth taking.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench_cpu.MODELS's keys (the parent imports neither it nor NumPy: children do the work).
WORKLOADS = ["mlp_small", "mlp_large", "lenet", "linreg", "cnn_bn"]
EXAMPLES = ["mnist_mlp", "mnist_cnn", "linreg_example", "char_mlp"]
SPLIT = ("load_s", "emit_s", "first_step_s")  # parse+passes, emit/import, first step call


# --- children ----------------------------------------------------------------------------------


def irnet_probe(key: str) -> dict:
    """In a fresh process: bench_cpu.compile_probe, with NumPy's import counted in `import_s`
    and the first step's total, `total_s`."""
    start = time.perf_counter()
    import bench_cpu  # NumPy

    numpy_s = time.perf_counter() - start
    result = bench_cpu.compile_probe(key)
    result["import_s"] += numpy_s
    result["total_s"] = sum(result[k] for k in SPLIT)
    return result


def shapes_probe(keys: list[str]) -> dict:
    """The batch and the step's argument shapes of each model, as irnet builds them."""
    import bench_cpu

    result = {}
    for key in keys:
        compiled = bench_cpu.load(key)
        args = bench_cpu.step_arguments(compiled, key)
        batch = compiled.trains[bench_cpu.MODELS[key][1]].batch
        result[key] = {"batch": batch, "shapes": [[a.shape, str(a.dtype)] for a in args]}
    return result


def jax_probe(key: str) -> dict:
    """Under the JAX interpreter, in a fresh process: `import jax`, then the first step."""
    start = time.perf_counter()
    import jax_steps  # NumPy and JAX

    import_s = time.perf_counter() - start
    result = jax_steps.first_step(key)
    args, outputs = result.pop("args"), result.pop("outputs")
    result["import_s"] = import_s
    result["shapes"] = [[a.shape, str(a.dtype)] for a in args]
    result["agreement"] = agreement(outputs, key, args)
    result["versions"] = {m: version(m) for m in ("jax", "jaxlib", "numpy")}
    return result


def agreement(outputs, key: str, args) -> float:
    """The largest relative difference between JAX's outputs and bench_cpu's NumPy step's."""
    import bench_cpu
    import numpy as np

    expected = bench_cpu.HANDWRITTEN[key](*args)
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b) / (np.abs(b) + 1e-3)))
        for a, b in zip(outputs, expected)
    )


def child(python: str, flag: str, value: str, cache: str | None = None) -> dict:
    """Run this file's `flag value` under `python`: its last line of JSON, or the error."""
    env = {**os.environ, "IRNET_CACHE_DIR": cache} if cache else None
    proc = subprocess.run(
        [python, __file__, flag, value], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if proc.returncode:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        return {"error": f"exit {proc.returncode}: {lines[-1]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- one sample of every column ----------------------------------------------------------------


def prepare(cache_dir: Path, command: str) -> float:
    """Fill the fresh `cache_dir` before the "after warmup" column measures a model cold: runs
    `command` (e.g. `irnet warmup`) with `IRNET_CACHE_DIR=cache_dir`; returns its seconds."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "IRNET_CACHE_DIR": str(cache_dir), "PATH": path}
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, env=env, cwd=ROOT, stdout=sys.stderr)
    return time.perf_counter() - start


def irnet_samples(key: str, prepared: Path | None) -> dict[str, dict]:
    """One sample of each irnet column for `key`, each from a fresh process; "after warmup"
    on a copy of the `prepared` cache folder."""
    samples = {}
    with tempfile.TemporaryDirectory(prefix="irnet-bench-") as cache:
        samples["cold"] = child(sys.executable, "--probe", key, cache)
        samples["warm"] = child(sys.executable, "--probe", key, cache)
    if prepared is not None:
        with tempfile.TemporaryDirectory(prefix="irnet-bench-") as folder:
            cache = Path(folder) / "cache"
            shutil.copytree(prepared, cache)  # copy2 keeps the mtimes Numba's index checks
            samples["after warmup"] = child(sys.executable, "--probe", key, str(cache))
    return samples


def measure(keys: list[str], runs: int, prepare_command: str | None, jax_python: str | None):
    """{key: {column: [sample per run]}}; the runs are the outer loop, so that a slow spell of
    the machine spreads over the models instead of hitting one. `prepare_command` fills one
    cache folder, once, that each "after warmup" sample starts from a copy of."""
    with tempfile.TemporaryDirectory(prefix="irnet-prepared-") as prepared:
        if prepare_command:
            took = prepare(Path(prepared), prepare_command)
            print(f"prepared by {prepare_command!r} in {took:.1f} s (untimed)", file=sys.stderr)
        return measure_runs(keys, runs, Path(prepared) if prepare_command else None, jax_python)


def measure_runs(keys: list[str], runs: int, prepared: Path | None, jax_python: str | None):
    results = {key: {} for key in keys}
    for run in range(runs):
        for key in keys:
            print(f"run {run + 1}/{runs}: {key}", file=sys.stderr, flush=True)
            samples = irnet_samples(key, prepared)
            if jax_python:
                samples["jax"] = child(jax_python, "--jax-probe", key)
            for column, sample in samples.items():
                results[key].setdefault(column, []).append(sample)
    return results


# --- report ------------------------------------------------------------------------------------


def values(samples: list[dict], field: str) -> list[float]:
    return [s[field] for s in samples if field in s]


def median(samples: list[dict], field: str) -> float | None:
    found = values(samples, field)
    return statistics.median(found) if found else None


def seconds(samples: list[dict], field: str) -> str:
    """The median, and the min-max of several samples."""
    found = values(samples, field)
    if not found:
        return "error" if samples else "-"
    text = f"{statistics.median(found):.2f}"
    return text + (f" ({min(found):.2f}-{max(found):.2f})" if len(found) > 1 else "")


def split(samples: list[dict]) -> str:
    parts = [median(samples, field) for field in SPLIT]
    return " / ".join("-" if p is None else f"{p:.2f}" for p in parts)


def kernels(samples: list[dict]) -> str:
    compiled, loaded = median(samples, "kernels_compiled"), median(samples, "kernels_loaded")
    return "-" if compiled is None else f"{compiled:g} / {loaded:g}"


def table(results: dict, shapes: dict, columns: list[str], with_jax: bool) -> list[str]:
    head = ["model", "batch", "import s"]
    for column in columns:
        head += [f"{column} s", f"{column} split", f"{column} kernels"]
    if with_jax:
        head += ["JAX import s", "JAX first step s", "cold / JAX"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, result in results.items():
        irnet = [s for c in columns for s in result[c]]
        row = [key, str(shapes.get(key, {}).get("batch", "?")), seconds(irnet, "import_s")]
        for column in columns:
            row += [seconds(result[column], "total_s"), split(result[column])]
            row.append(kernels(result[column]))
        if with_jax:
            jax = result["jax"]
            cold, first = median(result["cold"], "total_s"), median(jax, "first_step_s")
            ratio = f"{cold / first:.1f}x" if cold and first else "-"
            row += [seconds(jax, "import_s"), seconds(jax, "first_step_s"), ratio]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine(jax_versions: dict | None, load_before: tuple) -> dict:
    return {
        "cpu": cpu_model(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numba": package("numba"),
        "llvmlite": package("llvmlite"),
        "numpy": package("numpy"),
        "jax": jax_versions,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def report(results: dict, shapes: dict, columns: list[str], info: dict, args) -> None:
    jax = info["jax"]
    jax_text = (
        f"jax {jax['jax']}, jaxlib {jax['jaxlib']} (numpy {jax['numpy']}) under {args.jax_python}"
        if jax
        else f"JAX skipped: {args.jax_note}"
    )
    print(
        f"{info['cpu']}, {info['cores_usable']} usable cores (os.sched_getaffinity; "
        f"os.cpu_count {info['cpu_count']}); Python {info['python']}, numba {info['numba']}, "
        f"llvmlite {info['llvmlite']}, numpy {info['numpy']}; {jax_text}.\n"
        f"Load average (1, 5, 15 min) before {fmt_load(info['loadavg_before'])}, after "
        f"{fmt_load(info['loadavg_after'])}: a shared machine, the numbers are noisy.\n"
        f"Seconds, median of {args.runs} fresh process(es) per cell (min-max where several; "
        "import s pools every irnet process of the row). `s` = first step = parse + passes, "
        "emit + import of the generated module, the first step call (Numba compiling or "
        "loading the kernels, and the run); `split` = those three; `kernels` = compiled / "
        "loaded from the cache by Numba. Python imports apart.\n"
    )
    print("\n".join(table(results, shapes, columns, jax is not None)))
    notes = problems(results, shapes)
    if notes:
        print("\n" + "\n".join(notes))


def fmt_load(load: tuple) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


def problems(results: dict, shapes: dict) -> list[str]:
    """Failed samples, JAX steps whose shapes differ from irnet's, and their agreement."""
    notes, agreements = [], []
    for key, result in results.items():
        for column, samples in result.items():
            notes += [f"{key} {column}: {s['error']}" for s in samples if "error" in s]
        for sample in result.get("jax", []):
            if "shapes" in sample and key in shapes:
                if sample["shapes"] != shapes[key]["shapes"]:
                    notes.append(f"{key}: the JAX step's argument shapes differ from irnet's")
                agreements.append(sample["agreement"])
    backend = [
        s["backend_s"] for r in results.values() for s in r.get("jax", []) if "backend_s" in s
    ]
    if backend:
        notes.append(
            "JAX's first step includes starting its CPU backend: median "
            f"{statistics.median(backend):.2f} s."
        )
    if agreements:
        notes.append(
            f"JAX steps agree with bench_cpu's NumPy steps (loss, new parameters and state) to "
            f"{max(agreements):.1e} (largest relative difference)."
        )
    return notes


def jax_usable(python: str) -> str | None:
    """None if `python` imports jax, else why not."""
    try:
        proc = subprocess.run([python, "-c", "import jax"], capture_output=True, text=True)
    except OSError as e:
        return f"{python}: {e.strerror}"
    if proc.returncode:
        return f"{python} cannot import jax (give --jax-python)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(WORKLOADS + EXAMPLES))
    parser.add_argument("--runs", type=int, default=1, help="fresh-process samples per cell")
    parser.add_argument("--jax-python", default=sys.executable, help="an interpreter with jax")
    parser.add_argument("--prepare", metavar="CMD", help='fills the "after warmup" cache')
    parser.add_argument("--json", metavar="OUT", help="also write every sample here")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--jax-probe", help=argparse.SUPPRESS)
    parser.add_argument("--shapes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for flag, probe in (("probe", irnet_probe), ("jax_probe", jax_probe)):
        if getattr(args, flag):
            print(json.dumps(probe(getattr(args, flag)), default=list))
            return
    if args.shapes:
        print(json.dumps(shapes_probe(args.shapes.split(",")), default=list))
        return

    keys = [k for k in args.models.split(",") if k]
    args.jax_note = jax_usable(args.jax_python)
    jax_python = None if args.jax_note else args.jax_python
    load_before = os.getloadavg()
    shapes = child(sys.executable, "--shapes", ",".join(keys))
    shapes = {} if "error" in shapes else shapes
    results = measure(keys, args.runs, args.prepare, jax_python)
    columns = ["cold", "warm"] + (["after warmup"] if args.prepare else [])
    jax_samples = [s for r in results.values() for s in r.get("jax", []) if "versions" in s]
    info = machine(jax_samples[0]["versions"] if jax_samples else None, load_before)
    report(results, shapes, columns, info, args)
    if args.json:
        out = {"command": shlex.join(sys.argv), "machine": info, "results": results,
               "irnet_shapes": shapes}  # fmt: skip
        Path(args.json).write_text(json.dumps(out, indent=1, default=list) + "\n")


if __name__ == "__main__":
    main()
