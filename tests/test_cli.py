"""The installed console scripts, run as a user runs them: `irnet check/dump/opt` and stock
`xdsl-opt` with irnet's plug-in."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import PROGRAMS, console_script, subprocess_env

from irnet import driver


def run(*args: str, script: str = "irnet") -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )


def test_version_and_help():
    assert run("--version").stdout.startswith("irnet ")
    out = run("--help").stdout
    for command in ("check", "dump", "opt"):
        assert command in out


def test_check_prints_signature_and_parameter_table():
    result = run("check", "examples/mnist_mlp.irn")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "model mnist_mlp(x: f32[?, 784]) -> f32[?, 10]" in out
    assert "dense_0.w  [784, 256]  f32    200,704  glorot_uniform" in out
    assert "total: 235,146 parameters in 6 tensors" in out
    assert "loss mnist_mlp.loss(x: f32[?, 784], y: i32[?]) -> f32[]" in out


def test_check_lists_the_state_apart_from_the_parameters():
    result = run("check", "examples/mnist_resnet.irn")
    assert result.returncode == 0, result.stderr
    params, state = result.stdout.split("total: 43,866 parameters in 24 tensors\n")
    assert "running" not in params
    assert state.lstrip().startswith("state ")
    assert re.search(r"\n  conv_bn_0\.batch_norm_0\.running_var +\[16\] +f32 +16  ones\n", state)
    assert "total: 288 values of state in 12 tensors" in state
    assert "model mnist_resnet(x: f32[?, 1, 28, 28]) -> f32[?, 10]" in result.stdout


@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_every_program_checks_and_dumps_all_stages(program):
    assert run("check", str(program)).returncode == 0
    result = run("dump", str(program), "--print-ir-after-all")
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("// -----// ")]
    stages = ["frontend", *driver.CPU_PIPELINE]
    assert headers == [
        *(f"// -----// IR after {s} //----- //" for s in stages),
        "// -----// kernels: the Numba module `irnet compile` writes //----- //",
    ]
    assert f'loc("{program}":' in result.stdout


def test_dump_after_and_before_a_pass():
    after_inline = run("dump", "examples/linreg.irn", "--after", "inline-functions").stdout
    before_canon = run("dump", "examples/linreg.irn", "--before", "canonicalize").stdout
    frontend = run("dump", "examples/linreg.irn", "--after", "frontend").stdout
    assert after_inline == before_canon
    assert "func.call" in frontend and "func.call" not in after_inline
    assert 'loc(callsite("stdlib/nn.irn"' in after_inline


def test_dump_after_a_lowering_pass_needs_no_pipeline():
    fused = run("dump", "examples/linreg.irn", "--after", "fuse-elementwise").stdout
    planned = run("dump", "examples/linreg.irn", "--after", "plan-memory").stdout
    emitted = run("dump", "examples/linreg.irn", "--before", "kernels").stdout
    assert "kernel.fused" in fused and "memplan.buffers" not in fused
    assert "memplan.buffers" in planned and "cpu.kernel" not in planned
    assert 'cpu.kernel = "k0_matmul_add"' in emitted
    reference = run("dump", "examples/linreg.irn", "--target", "reference")
    assert reference.stdout == run("dump", "examples/linreg.irn").stdout  # after autodiff


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_dump_kernels_is_what_compile_writes(target):
    kernels = run("dump", "examples/linreg.irn", "--target", target, "--after", "kernels")
    compiled = run("compile", "examples/linreg.irn", "--target", target)
    assert kernels.returncode == compiled.returncode == 0, kernels.stderr + compiled.stderr
    assert kernels.stdout == compiled.stdout
    assert "@njit" in kernels.stdout if target == "cpu" else "@cuda.jit" in kernels.stdout


def test_dump_print_flags():
    bare = run("dump", "examples/linreg.irn", "--no-locations").stdout
    generic = run("dump", "examples/linreg.irn", "--generic").stdout
    assert "loc(" not in bare and "nn.matmul %" in bare
    assert '"nn.matmul"(' in generic and "loc(" in generic


def test_dump_rejects_unknown_stage():
    result = run("dump", "examples/linreg.irn", "--after", "autodif")
    assert result.returncode == 1
    assert "no such stage" in result.stderr and "Traceback" not in result.stderr
    assert "dce, autodiff, fuse-elementwise, plan-memory, emit-cpu, kernels" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "reference", "--after", "plan-memory"], "stages of --target reference are"),
        (["-p", "cse,dce", "--after", "kernels"], "stages of -p 'cse,dce' are frontend, cse, dce"),
        (["--before", "frontend"], "no stage comes before frontend"),
        (["-p", "cse, dce"], "bad pass pipeline 'cse, dce'"),
    ],
)
def test_dump_stage_errors_name_the_stages_there_are(args, message):
    result = run("dump", "examples/linreg.irn", *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr


def test_opt_runs_a_pipeline_on_irn_and_on_mlir(tmp_path):
    mlir = tmp_path / "linreg.mlir"
    frontend = run("opt", "examples/linreg.irn", "-o", str(mlir))
    assert frontend.returncode == 0 and "func.call" in mlir.read_text()
    from_irn = run("opt", "examples/linreg.irn", "-p", "inline-functions,canonicalize,cse")
    from_mlir = run("opt", str(mlir), "-p", "inline-functions,canonicalize,cse")
    assert from_irn.returncode == from_mlir.returncode == 0
    assert from_irn.stdout == from_mlir.stdout
    assert "func.call" not in from_mlir.stdout


def test_opt_reports_unknown_pass():
    result = run("opt", "examples/linreg.irn", "-p", "inline-functions,frobnicate")
    assert result.returncode == 1
    assert "frobnicate" in result.stderr and "known passes" in result.stderr


def test_invalid_mlir_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.mlir"
    bad.write_text('"builtin.module"() ({\n  %0 = "nn.exp"() : () -> tensor<f32>\n}) : () -> ()\n')
    result = run("opt", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "bad.mlir" in result.stderr


def test_missing_file_is_a_clean_error():
    result = run("check", "no/such/model.irn")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot read no/such/model.irn")


@pytest.mark.parametrize("program", PROGRAMS, ids=str)
def test_stock_xdsl_opt_reads_irn_through_the_plugin(program):
    result = run(str(program), "-p", ",".join(driver.PIPELINE), script="xdsl-opt")
    assert result.returncode == 0, result.stderr
    assert "func.call" not in result.stdout and "ad.value_and_grad" not in result.stdout
    ours = run("dump", str(program), "--no-locations").stdout
    assert result.stdout.strip() == ours.strip()
