"""Tests of the cpu target: the `fuse-elementwise` and `plan-memory` passes, the Numba emitter
(`lowering/emit_cpu.py`) and its runtime (`irnet/cpu.py`).

The reference interpreter is the oracle: every `nn` op (the gradient ops too) on small shapes,
then the forward function, `.eval` and one training step `.step` of every example program, are
run on both targets with the same inputs. float32 results agree to float32 precision, float64 ones
to 1e-10. Then: what the passes write in the IR, the emitted module running without irnet, the
disk cache (a second process compiles nothing), anomaly detection and run-time errors at source
locations, and the cpu runner as a drop-in for the trainer's.

Numba compiles each kernel on first use, which dominates the time of this file: the kernels are
cached in one folder for the whole session, and shapes are tiny.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import sysconfig

import numpy as np
import op_cases
import pytest
from conftest import PROGRAMS, ROOT, console_script, subprocess_env
from op_cases import CASES, CONSTANTS, assert_matches, inputs_for, public_functions
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ModuleOp,
)
from xdsl.printer import Printer

from irnet import driver, reference
from irnet.cpu import CpuRunner, compile_stats, lower
from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.kernel import FusedOp
from irnet.lowering.emit_cpu import CpuOptions, emit_module


@pytest.fixture(scope="module")
def ops_module() -> ModuleOp:
    return op_cases.ops_module()


@pytest.fixture(scope="module")
def ops_runner(ops_module, cache) -> CpuRunner:
    return CpuRunner(ops_module, cache=cache, parallel=False)


def test_every_op_is_compiled():
    """Every op in a case of its own; the loop (`nn.scan`, `nn.yield`) in tests/test_loops.py."""
    covered = {case.op for case in CASES} | {nn.ConstantOp, nn.ScanOp, nn.YieldOp}
    assert covered == set(nn.NN.operations), set(nn.NN.operations) - covered


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_op_matches_the_reference(index, ops_module, ops_runner):
    op_cases.check_case(index, ops_module, ops_runner.run)


@pytest.mark.parametrize("index", range(len(CONSTANTS)))
def test_constants(index, ops_module, ops_runner):
    expected = reference.Reference(ops_module).run(f"constant{index}", [])
    (first,) = ops_runner.run(f"constant{index}", [])
    assert_matches([first], expected, exact=True)
    first[...] = 0  # a result is the caller's: writing it changes no later result
    assert_matches(ops_runner.run(f"constant{index}", []), expected, exact=True)


def test_extreme_values_propagate_as_in_numpy(ops_module, ops_runner):
    """No fast-math `nnan`/`ninf`."""
    op_cases.check_extreme_values(ops_module, ops_runner.run)


def test_float64_mode_computes_in_float64(ops_module, cache):
    runner = CpuRunner(ops_module, cache=cache, float_dtype=np.float64, parallel=False)
    ref = reference.Reference(ops_module, float_dtype=np.float64)
    for index, case in enumerate(CASES):
        if case.id in ("gelu", "sub-column", "conv2d-plain", "random-uniform", "axis-size-0"):
            args = case.values()
            actual = runner.run(f"case{index}", args, seed=1, step=2)
            assert actual[0].dtype == np.float64
            assert_matches(actual, ref.run(f"case{index}", args, seed=1, step=2))


# --- whole programs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def programs(cache) -> dict[str, tuple[ModuleOp, CpuRunner]]:
    loaded = {}
    for path in PROGRAMS:
        module = driver.load(path).module
        driver.run_passes(module, ",".join(driver.PIPELINE))
        loaded[str(path)] = (module, CpuRunner(module, cache=cache, parallel=False))
    return loaded


@pytest.mark.parametrize("program", [str(p) for p in PROGRAMS])
def test_programs_forward_eval_and_step(program, programs):
    module, runner = programs[program]
    ref = reference.Reference(module)
    names = public_functions(module)
    assert any(n.endswith(".step") for n in names)
    for name in names:
        args = inputs_for(ref.function(name))
        kw = {"training": name.endswith(".step"), "step": 4, "seed": 7}
        expected = ref.run(name, args, **kw)
        actual = runner.run(name, args, **kw)
        assert_matches(actual, expected, rtol=1e-4, atol=1e-5)
        again = runner.run(name, args, **kw)  # buffers reused from the first call
        assert_matches(again, actual, exact=True)


def test_shapes_a_checked_call_has_seen_take_the_compiled_fast_path(programs):
    """The first call checks everything and remembers the shapes; the next runs every kernel
    in one compiled call, to the same bits. New shapes and anomaly detection check again."""
    module, runner = programs["examples/linreg.irn"]
    kernels = runner.compiled.module
    args = inputs_for(runner.function("linreg.step"), batch=5)
    first = runner.run("linreg.step", args)
    remembered = {k[0] for k in kernels._FAST["linreg.step"]}
    assert (5, 10) in remembered
    assert_matches(runner.run("linreg.step", args), first, exact=True)
    assert_matches(runner.run("linreg.step", args, check_finite=True), first, exact=True)
    # other dtypes and layouts, for which the fast path is not compiled, are converted
    x = args[0]
    for other in (x.astype(np.float64), np.asfortranarray(x)):
        assert_matches(runner.run("linreg.step", [other, *args[1:]]), first, exact=True)
    wider = inputs_for(runner.function("linreg.step"), batch=6)
    runner.run("linreg.step", wider)
    assert (6, 10) in {k[0] for k in kernels._FAST["linreg.step"]}


def test_the_step_in_two_halves_is_the_step(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    ref = reference.Reference(module)
    step_args = inputs_for(ref.function("mnist_mlp.step"))
    loss, *rest = runner.run("mnist_mlp.step", step_args)
    n_params = 6
    data_and_params, state = step_args[: 2 + n_params], step_args[2 + n_params :]
    grad_loss, *grads = runner.run("mnist_mlp.grad", data_and_params)
    update = runner.run("mnist_mlp.update", [*data_and_params[2:], *grads, *state])
    assert_matches([grad_loss], [loss], rtol=1e-6)
    assert_matches(update, rest, rtol=1e-5, atol=1e-6)


def test_float64_program_matches_to_1e_10(cache):
    module = driver.load("examples/mnist_cnn.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    ref = reference.Reference(module, float_dtype=np.float64)
    runner = CpuRunner(module, cache=cache, float_dtype=np.float64, parallel=False)
    for name in ("mnist_cnn", "mnist_cnn.step"):
        args = inputs_for(ref.function(name), batch=2)
        expected = ref.run(name, args, training=True)
        actual = runner.run(name, args, training=True)
        for a, e in zip(actual, expected):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


def test_results_are_fresh_arrays_and_arguments_are_not_written(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    args = inputs_for(runner.function("mnist_mlp.step"))
    kept = [a.copy() for a in args]
    first = runner.run("mnist_mlp.step", args)
    snapshot = [r.copy() for r in first]
    other = inputs_for(runner.function("mnist_mlp.step"), seed=1)
    second = runner.run("mnist_mlp.step", other)
    for a, k in zip(args, kept):
        np.testing.assert_array_equal(a, k)
    for r, s in zip(first, snapshot):
        np.testing.assert_array_equal(r, s)
    assert not any(np.shares_memory(a, b) for a in first for b in second)


def test_workspace_is_allocated_once_per_shape(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    fn = runner.function("mnist_mlp.step")

    def step(batch: int) -> dict:
        runner.run("mnist_mlp.step", inputs_for(fn, batch))
        ws = runner.compiled.module._WORKSPACES["mnist_mlp.step"]
        return {key: id(buffer) for key, buffer in ws.items()}

    first = step(3)
    assert step(3) == first  # the same buffers, nothing new
    with_five = step(5)
    assert len(with_five) > len(first) and any(5 in shape for _, shape in with_five)
    assert {k: v for k, v in step(3).items() if k in first} == first


def test_cpu_runner_is_a_drop_in_for_the_trainer(cache):
    from irnet.model import open_session

    sessions = [open_session("examples/mnist_mlp.irn") for _ in range(2)]
    cpu = sessions[1]
    cpu.runner = CpuRunner(cpu.runner.module, cache=cache, parallel=False)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.normal(0, 1, (4, 784)).astype(np.float32)
        y = rng.integers(0, 10, 4).astype(np.int32)
        losses = [s.train_step([x], [y], 0.001, detect_anomaly=True) for s in sessions]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name, value in sessions[0].params.items():
        np.testing.assert_allclose(cpu.params[name], value, rtol=1e-4, atol=1e-6)
    for name, value in sessions[0].state.items():
        np.testing.assert_allclose(cpu.state[name], value, rtol=1e-4, atol=1e-7)


def test_parallel_loops_give_the_same_results(cache):
    module = driver.load("examples/mnist_mlp.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    runner = CpuRunner(module, cache=cache, parallel=True)
    assert "prange(" in runner.compiled.emitted.source
    ref = reference.Reference(module)
    args = inputs_for(ref.function("mnist_mlp.step"))
    assert_matches(runner.run("mnist_mlp.step", args), ref.run("mnist_mlp.step", args), rtol=1e-4)


# --- the passes --------------------------------------------------------------------------------


def lowered(path: str, stage: str = "plan-memory") -> ModuleOp:
    module = driver.load(path).module
    passes = list(driver.CPU_PIPELINE)
    driver.run_passes(module, ",".join(passes[: passes.index(stage) + 1]))
    return module


def function(module: ModuleOp, name: str) -> func.FuncOp:
    return next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == name)


def text(module: ModuleOp, locations: bool = True) -> str:
    out = io.StringIO()
    Printer(out, print_debuginfo=locations).print_op(module)
    return out.getvalue()


def test_fusion_groups_chains_and_keeps_every_op_and_location():
    before = driver.load("examples/mnist_mlp.irn").module
    driver.run_passes(before, ",".join(driver.PIPELINE))
    after = lowered("examples/mnist_mlp.irn", "fuse-elementwise")
    step_before = function(before, "mnist_mlp.step")
    step_after = function(after, "mnist_mlp.step")
    top = [op for op in step_after.body.block.ops if not isinstance(op, func.ReturnOp)]
    fused = [op for op in top if isinstance(op, FusedOp)]
    assert fused and len(top) < len(list(step_before.body.block.ops)) / 3
    kinds = {op.kind.data for op in fused}
    assert kinds == {"elementwise", "matmul"}

    def located(fn):  # every nn op (constants aside) with its location
        return sorted(
            (op.name, str(op.location))
            for op in fn.walk()
            if op.name.startswith("nn.") and op.name not in ("nn.constant", "nn.transpose")
        )

    assert located(step_after) == located(step_before)
    # the forward's bias and activation are the epilogue of its matmul
    first = fused[0]
    names = [op.name for op in first.body.block.ops if op.name != "nn.constant"]
    assert names[:3] == ["nn.matmul", "nn.add", "nn.relu"]


def test_fusion_never_puts_an_op_after_its_users_or_before_its_operands():
    for path in PROGRAMS:
        module = lowered(str(path), "fuse-elementwise")
        module.verify()  # SSA dominance: every value is defined before its uses
        for fn in module.ops:
            for op in fn.walk():
                if isinstance(op, FusedOp):
                    real = [o for o in op.body.block.ops if o.name not in ("nn.constant",)]
                    reductions = [o for o in real if o.name.startswith("nn.reduce")]
                    assert len(reductions) <= 1
                    if reductions:
                        assert real[-2] is reductions[0]  # the reduction ends the group


def test_fused_ir_round_trips():
    for stage in ("fuse-elementwise", "plan-memory"):
        module = lowered("examples/mnist_cnn.irn", stage)
        printed = text(module)
        parsed = driver.parse_mlir(printed, "x.mlir")
        assert text(parsed) == printed


def test_memory_plan_reuses_buffers_in_place_and_keeps_results_fresh():
    module = lowered("examples/mnist_mlp.irn")
    step = function(module, "mnist_mlp.step")
    returned = set(step.body.block.last_op.operands)
    plans: list[str] = []
    for op in step.body.block.ops:
        if "memplan.buffers" in op.attributes:
            entries = [a.data for a in op.attributes["memplan.buffers"].data]
            assert len(entries) == len(op.results)
            for result, entry in zip(op.results, entries):
                assert (entry == "fresh") == (result in returned), (op.name, entry)
            plans += entries
    slots = {p for p in plans if p.startswith("ws")}
    planned = [p for p in plans if p.startswith(("ws", "in"))]
    assert len(slots) < len(planned)  # slots are shared between values that do not overlap

    source = """
model m(x: f32[N, 4]) -> f32[N, 4] {
    return softmax(exp(softmax(x, axis=1)), axis=1)
}
"""
    module = driver.compile_source(source, "t.irn").module
    driver.run_passes(module, ",".join(driver.CPU_PIPELINE[:-1]))
    ops = list(function(module, "m").body.block.ops)
    exp = next(op for op in ops if op.name == "nn.exp")
    assert [a.data for a in exp.attributes["memplan.buffers"].data] == ["in0"]


def test_emit_pass_names_each_ops_kernel():
    module = lowered("examples/linreg.irn", "emit-cpu")
    marked = [
        op for op in function(module, "linreg.step").body.block.ops if "cpu.kernel" in op.attributes
    ]
    assert marked and all(op.attributes["cpu.kernel"].data for op in marked)


def test_dump_prints_every_lowering_stage():
    pipeline = ",".join(driver.CPU_PIPELINE)
    for stage in ("fuse-elementwise", "plan-memory", "emit-cpu"):
        result = subprocess.run(
            [
                console_script("irnet"),
                "dump",
                "examples/linreg.irn",
                "-p",
                pipeline,
                "--after",
                stage,
            ],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert "kernel.fused" in result.stdout
        assert ("memplan.buffers" in result.stdout) == (stage != "fuse-elementwise")


# --- the emitted module ------------------------------------------------------------------------


def test_emitted_module_is_readable_and_imports_no_irnet():
    module = driver.load("examples/mnist_cnn.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    emitted = emit_module(lower(module), CpuOptions(), "examples/mnist_cnn.irn")
    source = emitted.source
    assert "import irnet" not in source and "from irnet" not in source
    header = source.split("\nimport numpy")[0]
    assert "mnist_cnn_step(" in header and "check_finite" in header
    lines = source.splitlines()
    kernels = [i for i, line in enumerate(lines) if line.startswith("def k")]
    assert kernels
    for i in kernels:  # each generated kernel names its ops in a comment above it
        assert lines[i - 2].startswith("# nn.") and "(sites" in lines[i - 2]
    assert "examples/mnist_cnn.irn:" in source  # call sites name their .irn lines
    assert (
        "np.dot(" in source
        and "def _conv2d(" in source
        and "def _max_pool2d_2_2_2_2_0_0(" in source
    )
    compile(source, "model_cpu.py", "exec")


def test_compiled_module_runs_without_irnet(tmp_path):
    """`irnet compile` writes a module that a Python without irnet on its path runs."""
    out = tmp_path / "model_cpu.py"
    result = subprocess.run(
        [console_script("irnet"), "compile", "examples/mnist_mlp.irn", "--target", "cpu",
         "-o", str(out), "--no-parallel"],
        capture_output=True, text=True, env=subprocess_env(), cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    module = driver.load("examples/mnist_mlp.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    ref = reference.Reference(module)
    args = inputs_for(ref.function("mnist_mlp.step"))
    np.savez(tmp_path / "args.npz", *args)
    script = f"""
import sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})
import importlib.util, numpy as np
assert importlib.util.find_spec("irnet") is None, "irnet is importable"
import model_cpu
with np.load("args.npz") as f:
    args = [f[f"arr_{{i}}"] for i in range(len(f.files))]
outs = model_cpu.run("mnist_mlp.step", args, training=True, step=2, seed=3)
np.savez("outs.npz", *outs)
print(sorted(m for m in sys.modules if m.startswith("irnet")))
"""
    env = {k: v for k, v in subprocess_env().items() if k not in ("PYTHONPATH", "IRNET_CACHE_DIR")}
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    expected = ref.run("mnist_mlp.step", args, training=True, step=2, seed=3)
    with np.load(tmp_path / "outs.npz") as f:
        actual = [f[f"arr_{i}"] for i in range(len(f.files))]
    assert_matches(actual, expected, rtol=1e-4, atol=1e-5)


COLD_WARM = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from irnet import driver
from irnet.cpu import CpuRunner
from irnet.params import initial_parameters
module = driver.load("examples/linreg.irn").module
driver.run_passes(module, ",".join(driver.PIPELINE))
runner = CpuRunner(module, parallel=False)
fn = runner.function("linreg.step")
p = initial_parameters(fn, 0)
x, y = np.ones((4, 10), np.float32), np.ones((4, 1), np.float32)
runner.run("linreg.step", [x, y, p["dense_0.w"], p["dense_0.b"], np.float32(0), np.float32(0.1)])
stats = runner.stats()
stats["created"] = runner.compiled.created
stats["seconds"] = time.perf_counter() - t0
print(json.dumps(stats))
"""


def test_a_second_run_loads_compiled_kernels_from_the_cache(tmp_path):
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(tmp_path)}
    runs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", COLD_WARM], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["created"] and cold["compiled"] > 0 and cold["cache_hits"] == 0
    assert not warm["created"] and warm["compiled"] == 0 and warm["cache_hits"] > 0
    assert list(tmp_path.glob("cpu/*/model_cpu.py"))
    assert list(tmp_path.glob("kernels/__pycache__/k_*.nbi"))


def test_cache_key_changes_with_the_ir(cache):
    sources = [
        "model m(x: f32[N, 3]) -> f32[N, 3] { return exp(x) }",
        "model m(x: f32[N, 3]) -> f32[N, 3] { return tanh(x) }",
    ]
    keys = []
    for source in sources:
        module = driver.compile_source(source, "t.irn").module
        driver.run_passes(module, ",".join(driver.PIPELINE))
        keys.append(CpuRunner(module, cache=cache).compiled.key)
    assert keys[0] != keys[1]
    module = driver.compile_source(sources[0], "t.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    again = CpuRunner(module, cache=cache)
    assert again.compiled.key == keys[0]
    x = np.zeros((2, 3), np.float32)
    again.run("m", [x])
    before = compile_stats(again.compiled.module)["compiled"]
    CpuRunner(module, cache=cache).run("m", [x])  # the same kernels, already compiled
    assert compile_stats(again.compiled.module)["compiled"] == before


# --- errors ------------------------------------------------------------------------------------


ANOMALY = """
model m(x: f32[N, 3]) -> f32[N, 3] {
    h = exp(x) * 2.0
    return log(h - 3.0) + 1.0
}
"""


def test_anomaly_detection_names_the_op_that_made_the_nan(cache):
    module = driver.compile_source(ANOMALY, "t.irn").module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    runner = CpuRunner(module, cache=cache)
    x = np.zeros((2, 3), np.float32)
    (quiet,) = runner.run("m", [x])
    assert np.isnan(quiet).all()
    with pytest.raises(IrnError) as cpu_error:
        runner.run("m", [x], check_finite=True)
    with pytest.raises(IrnError) as ref_error:
        reference.Reference(module).run("m", [x], check_finite=True)
    assert str(cpu_error.value) == str(ref_error.value)
    assert "t.irn:4:12: error: nn.log: produced NaN" in str(cpu_error.value)


def test_run_time_shape_clashes_and_bad_indices_are_located_errors(programs):
    module, runner = programs["examples/mnist_mlp.irn"]
    args = inputs_for(runner.function("mnist_mlp.eval"))
    args[1] = np.zeros(5, np.int32)  # labels for 5 rows, images for 3
    with pytest.raises(IrnError) as info:
        runner.run("mnist_mlp.eval", args)
    assert "examples/mnist_mlp.irn:" in str(info.value) and "error:" in str(info.value)

    module, runner = programs["examples/char_mlp.irn"]
    args = inputs_for(runner.function("char_mlp"))
    args[0][0, 0] = 70
    with pytest.raises(IrnError) as info:
        runner.run("char_mlp", args)
    assert "nn.gather: index 70 is out of range for axis 0 of size 65" in str(info.value)


def test_arguments_are_checked_as_by_the_reference(programs):
    module, runner = programs["examples/linreg.irn"]
    good = inputs_for(runner.function("linreg"))
    for bad in ([good[0][:, :4], *good[1:]], good[:2], [good[0].astype(np.int32), *good[1:]]):
        with pytest.raises(IrnError) as cpu_error:
            runner.run("linreg", bad)
        with pytest.raises(IrnError) as ref_error:
            reference.Reference(module).run("linreg", bad)
        assert str(cpu_error.value) == str(ref_error.value)


def test_ops_the_target_cannot_compile_are_located_errors(cache):
    module = driver.compile_source(
        "from nn import dense, mse\n"
        "model m(x: f32[N, 3]) -> f32[N, 1] { return dense(x, 1) }\n"
        "train m(y: f32[N, 1]) { loss = mse(m(x), y) }",
        "t.irn",
    ).module
    driver.run_passes(module, "inline-functions")  # the gradient request is left unexpanded
    runner = CpuRunner(module, cache=cache)
    args = inputs_for(runner.function("m.grad"))
    with pytest.raises(IrnError, match="ad.value_and_grad: the cpu target cannot compile"):
        runner.run("m.grad", args)
    args = inputs_for(runner.function("m"))
    assert_matches(runner.run("m", args), reference.Reference(module).run("m", args))


# --- the command line --------------------------------------------------------------------------


def test_irnet_run_on_the_cpu_target_prints_what_the_reference_prints(tmp_path, cache):
    x = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {**subprocess_env(), "IRNET_CACHE_DIR": str(cache)}
    outputs = []
    for target in ("reference", "cpu"):
        out = tmp_path / f"{target}.npy"
        result = subprocess.run(
            [console_script("irnet"), "run", "examples/linreg.irn", "--target", target,
             "-i", f"x={tmp_path / 'x.npy'}", "-o", str(out)],
            capture_output=True, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append(np.load(out))
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
