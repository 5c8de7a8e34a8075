"""Tests of the cuda target (`lowering/emit_cuda.py`, `lowering/cuda_runtime.py`,
`irnet/cuda.py`), proven without a GPU in two ways:

- its kernels run in Numba's CUDA simulator (`conftest.py` sets NUMBA_ENABLE_CUDASIM=1 unless a
  GPU run sets it to 0) and must match the reference interpreter: every `nn` op, every program's
  forward function and training step, and training steps through the trainer, whose parameters
  stay on the device;
- every kernel of every program compiles to PTX for sm_90 (H100/H200) with
  `numba.cuda.compile_ptx`, in a process without the simulator, when the CUDA toolkit is there.

The simulator runs each GPU thread as Python, so batches are tiny (2). Tolerances are those of
the cpu target's tests (`op_cases.assert_matches`): float32 sums in another order.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import op_cases
import pytest
from conftest import PROGRAMS, ROOT, SIMULATED, console_script, subprocess_env
from op_cases import CASES, CONSTANTS, assert_matches, inputs_for, public_functions

from irnet import cuda, driver, reference
from irnet.diagnostics import IrnError
from irnet.model import open_session

pytestmark = pytest.mark.skipif(
    cuda.device_problem() is not None, reason=str(cuda.device_problem())
)


def host(values) -> list[np.ndarray]:
    """Results as host arrays (each a device array the cuda target returned)."""
    assert all(hasattr(v, "copy_to_host") for v in values), "results stay on the device"
    return [np.asarray(v) for v in values]


@pytest.fixture(scope="module")
def ops_module():
    return op_cases.ops_module()


@pytest.fixture(scope="module")
def ops_runner(ops_module, cache):
    return cuda.CudaRunner(ops_module, cache=cache)


# --- every op against the reference ------------------------------------------------------------


def on_host(runner):
    """`runner.run`, its results copied to the host."""
    return lambda *args, **kw: host(runner.run(*args, **kw))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_op_matches_the_reference(index, ops_module, ops_runner):
    op_cases.check_case(index, ops_module, on_host(ops_runner))


@pytest.mark.parametrize("index", range(len(CONSTANTS)))
def test_constants_are_fresh_device_arrays(index, ops_module, ops_runner):
    expected = reference.Reference(ops_module).run(f"constant{index}", [])
    (first,) = ops_runner.run(f"constant{index}", [])
    (second,) = ops_runner.run(f"constant{index}", [])
    assert first is not second
    assert_matches(host([first]), expected, exact=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy, in the simulator
def test_extreme_values_propagate_as_in_numpy(ops_module, ops_runner):
    op_cases.check_extreme_values(ops_module, on_host(ops_runner))


def test_float64_mode_computes_in_float64(ops_module, cache):
    runner = cuda.CudaRunner(ops_module, cache=cache, float_dtype=np.float64)
    ref = reference.Reference(ops_module, float_dtype=np.float64)
    for index, case in enumerate(CASES):
        if case.id in ("gelu", "sub-column", "matmul-batched", "conv2d-plain", "reduce-sum-0"):
            args = case.values()
            actual = host(runner.run(f"case{index}", args, seed=1, step=2))
            assert actual[0].dtype == np.float64
            assert_matches(actual, ref.run(f"case{index}", args, seed=1, step=2))


def test_a_long_sum_splits_over_blocks_and_adds_atomically(cache):
    """Rows long enough that `_reduce_launch` splits each over several blocks."""
    module = driver.compile_source(
        "model m(x: f32[N, 20000]) -> f32[N] { return sum(x * x, axis=1) }", "long.irn"
    ).module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    x = np.random.default_rng(0).normal(size=(2, 20000)).astype(np.float32)
    runner = cuda.CudaRunner(module, cache=cache)
    kernels = runner.compiled.module
    assert kernels._reduce_launch(kernels._empty((2,), np.float32), 2, 20000, True)[0][1] > 1
    (actual,) = host(runner.run("m", [x]))
    np.testing.assert_allclose(actual, (x.astype(np.float64) ** 2).sum(axis=1), rtol=1e-5)


# --- whole programs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def programs(cache) -> dict:
    loaded = {}
    for path in SIMULATED:
        module = driver.load(path).module
        driver.run_passes(module, ",".join(driver.PIPELINE))
        loaded[str(path)] = (module, cuda.CudaRunner(module, cache=cache))
    return loaded


@pytest.mark.parametrize("program", [str(p) for p in SIMULATED])
def test_programs_forward_and_step(program, programs):
    """The forward functions; the steps of programs without data (the examples' steps run
    through the trainer below: each costs a minute in the simulator)."""
    module, runner = programs[program]
    ref = reference.Reference(module)
    example = Path(program).parts[0] == "examples"
    names = public_functions(module, suffixes=("",) if example else ("", ".step"))
    assert example or any(n.endswith(".step") for n in names)
    for name in names:
        args = inputs_for(ref.function(name), batch=2)
        kw = {"training": name.endswith(".step"), "step": 4, "seed": 7}
        expected = ref.run(name, args, **kw)
        assert_matches(host(runner.run(name, args, **kw)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("program", [str(p) for p in SIMULATED if p.parts[0] == "examples"])
def test_examples_train_on_the_device_as_on_the_reference(program, cache, monkeypatch):
    """A step through the trainer on a real batch of 2: the same loss and new parameters as
    the reference trainer's, and the parameters stay on the device."""
    from irnet.train import load_data

    monkeypatch.setattr(cuda, "CudaRunner", _cached(cuda.CudaRunner, cache))
    sessions = [open_session(program, {"batch": 2}, target=t) for t in ("reference", "cuda")]
    data = load_data(sessions[0])
    inputs, targets = next(data.batches(2, np.random.default_rng(0)))
    losses = []
    for s in sessions:
        fitted = s.fit(inputs, "input", data.source), s.fit(targets, "target", data.source)
        losses.append(s.train_step(*fitted, lr=0.01, detect_anomaly=False))
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    on_device = sessions[1].params
    assert all(hasattr(v, "copy_to_host") for v in on_device.values())
    for name, expected in sessions[0].params.items():
        assert_matches([np.asarray(on_device[name])], [expected], rtol=1e-4, atol=1e-5)


def test_irnet_train_on_the_cuda_target(tmp_path, cache):
    """The CLI end to end: an epoch of steps on the device, and the same loss and checkpointed
    parameters as on the reference target."""
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(cache)}
    losses = []
    for target in ("reference", "cuda"):
        log = tmp_path / f"{target}.jsonl"
        done = cli("train", "examples/linreg.irn", "--target", target, "--epochs", "1",
                   "--checkpoint-dir", str(tmp_path / target), "--log", str(log),
                   env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        (record,) = [json.loads(line) for line in log.read_text().splitlines()]
        losses.append(record["train_loss"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    saved = [np.load(tmp_path / t / "linreg-last.npz") for t in ("reference", "cuda")]
    for name in (n for n in saved[0].files if n.startswith("param")):
        np.testing.assert_allclose(saved[1][name], saved[0][name], rtol=1e-4, atol=1e-6)


def _cached(runner_class, cache: Path):
    """The runner class with the test session's compile cache."""

    def make(module, **kw):
        return runner_class(module, cache=cache, **kw)

    return make


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy, in the simulator
def test_anomaly_detection_names_the_op_that_made_the_nan(ops_module, ops_runner):
    index = next(i for i, c in enumerate(CASES) if c.id == "log")
    bad = -np.ones((2, 4), np.float32)
    with pytest.raises(IrnError, match=r"nn\.log: produced NaN"):
        ops_runner.run(f"case{index}", [bad], check_finite=True)


def test_bad_indices_are_located_errors(ops_module, ops_runner):
    index = next(i for i, c in enumerate(CASES) if c.op.name == "nn.gather")
    args = CASES[index].values()
    args[1] = np.full_like(args[1], 99)
    with pytest.raises(IrnError, match="index 99 is out of range"):
        ops_runner.run(f"case{index}", args)


# --- the compiled module and the CLI -----------------------------------------------------------


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script("irnet"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or subprocess_env(),
        timeout=600,
    )


def without_simulator() -> dict[str, str]:
    return {**subprocess_env(), "NUMBA_ENABLE_CUDASIM": "0"}


def toolkit_problem() -> str | None:
    """Why PTX cannot be compiled here (no NVVM), or None."""
    probe = subprocess.run(
        [sys.executable, "-c", "from numba.cuda.cudadrv import nvvm; nvvm.NVVM()"],
        capture_output=True,
        text=True,
        env=without_simulator(),
    )
    if probe.returncode == 0:
        return None
    return "the CUDA toolkit's NVVM is not installed: " + probe.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("program", [str(p) for p in PROGRAMS])
def test_every_kernel_compiles_to_ptx_for_sm_90(program, tmp_path):
    problem = toolkit_problem()
    if problem:
        pytest.skip(problem)
    module_path, ptx = tmp_path / "model_cuda.py", tmp_path / "ptx"
    done = cli("compile", program, "--target", "cuda", "-o", str(module_path), "--ptx", str(ptx),
               env=without_simulator())  # fmt: skip
    assert done.returncode == 0, done.stderr
    source = module_path.read_text()
    kernels = set(re.findall(r"@cuda\.jit\(\*\*JIT\)\ndef (\w+)\(", source))
    compiled = {p.stem.split(".")[0] for p in ptx.glob("*.ptx")}
    assert kernels == compiled, kernels ^ compiled
    for path in ptx.glob("*.ptx"):
        assert ".target sm_90" in path.read_text()


def test_without_a_gpu_or_the_simulator_the_target_says_so():
    probe = subprocess.run(
        [sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"],
        capture_output=True,
        text=True,
        env=without_simulator(),
    )
    if probe.stdout.strip() == "True":
        pytest.skip("this machine has a GPU")
    done = cli("train", "examples/linreg.irn", "--target", "cuda", env=without_simulator())
    assert done.returncode == 1
    assert "needs an NVIDIA GPU" in done.stderr and "NUMBA_ENABLE_CUDASIM=1" in done.stderr
    assert "Traceback" not in done.stderr


STANDALONE = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("model_cuda", sys.argv[1])
model = importlib.util.module_from_spec(spec)
sys.modules["model_cuda"] = model
spec.loader.exec_module(model)
args = dict(np.load(sys.argv[2]))
(out,) = model.run("linreg", args)
np.save(sys.argv[3], out.copy_to_host())
"""


def test_compiled_module_runs_without_irnet(tmp_path, cache):
    """`irnet compile --target cuda` writes a module that imports and runs (in the simulator
    here) with numpy and numba only, like the reference."""
    module_path = tmp_path / "model_cuda.py"
    assert (
        cli("compile", "examples/linreg.irn", "--target", "cuda", "-o", str(module_path)).returncode
        == 0
    )
    assert "irnet" not in "\n".join(
        line for line in module_path.read_text().splitlines() if line.startswith(("import", "from"))
    )
    module = driver.load("examples/linreg.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    ref = reference.Reference(module)
    fn = ref.function("linreg")
    args = inputs_for(fn, batch=3)
    names = [a.name_hint for a in fn.args]
    np.savez(tmp_path / "args.npz", **dict(zip(names, args)))
    site = Path(np.__file__).parents[1]
    env = {**subprocess_env(), "PYTHONPATH": str(site), "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", STANDALONE, str(module_path), str(tmp_path / "args.npz"),
         str(tmp_path / "out.npy")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_matches([np.load(tmp_path / "out.npy")], ref.run("linreg", args))


def test_emit_pass_names_each_ops_kernel():
    module = driver.load("examples/mnist_mlp.irn").module
    driver.run_passes(module, ",".join([*driver.PIPELINE, "fuse-elementwise", "plan-memory"]))
    driver.run_passes(module, "emit-cuda")
    marked = [op for op in module.walk() if "cuda.kernel" in op.attributes]
    assert marked and all("cuda.site" in op.attributes for op in marked)


def test_gpu_check_script_is_ready(cache):
    """The GPU check's shell script parses, and its benchmark runs end to end (a dry run in
    the simulator, on the smallest workload)."""
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_cuda.py", "--models", "linreg", "--repeat", "1",
         "--dry-run"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"^linreg\s+[\d.]+\s+[\d.]+\s+[\d.]+x$", done.stdout, re.M), done.stdout
