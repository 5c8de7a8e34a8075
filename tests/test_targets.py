"""The runner interface (`irnet/targets.py`) and the dtype table (`dialects/dtypes.py`): every
target's runner has every member of `Runner` with a compatible signature, `make_runner` gives
each target and refuses the others clearly, `auto` (the commands' default) is cpu where Numba
works and reference otherwise, `IRNET_TARGET` and `--target` choose instead, a data-parallel
step reduces on every runner, and the table maps each dtype's three spellings into each
other."""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, console_script, subprocess_env
from xdsl.dialects.builtin import TensorType, f16

from irnet import cli, driver, targets
from irnet.cpu import CpuRunner
from irnet.diagnostics import IrnError
from irnet.dialects import dtypes, shapes
from irnet.dialects.shapes import DYN
from irnet.distributed import World
from irnet.grammar import lexer
from irnet.model import open_session
from irnet.params import initial_parameters
from irnet.reference import Reference, numpy_dtype
from irnet.targets import RUNNERS, TARGETS, Runner, make_runner

TINY = """
from nn import dense, mse

model tiny(x: f32[N, 3]) -> f32[N, 2] {
    return dense(tanh(dense(x, 4)), 2)
}

train tiny(y: f32[N, 2]) {
    data      = npz("tiny.npz", x="x", y="y")
    loss      = mse(tiny(x), y)
    optimizer = adam(lr=0.05)
    batch     = 4
}
"""


@pytest.fixture
def tiny(tmp_path, cache, monkeypatch) -> str:
    """The path of a small model with a train block, its data, and the session's compile
    cache for the compiled targets."""
    monkeypatch.setenv("IRNET_CACHE_DIR", str(cache))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x=rng.normal(size=(8, 3)), y=rng.normal(size=(8, 2)))
    path = tmp_path / "tiny.irn"
    path.write_text(TINY)
    return str(path)


def compiled(path: str):
    module = driver.load(path).module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    return module


def cuda_runner_class() -> type:
    """`CudaRunner`, or a skip where the cuda target cannot run (importing it imports Numba)."""
    from irnet import cuda

    if cuda.device_problem() is not None:
        pytest.skip(cuda.device_problem())
    return cuda.CudaRunner


RUNNER_CLASSES = {
    "reference": lambda: Reference,
    "cpu": lambda: CpuRunner,
    "cuda": cuda_runner_class,
}


# --- the protocol ------------------------------------------------------------------------------


def protocol_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(Runner).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_the_protocol_is_what_training_and_the_cli_use():
    assert set(protocol_methods()) == {"run", "function", "to_host", "from_host"}
    assert set(Runner.__annotations__) == {"runs_allreduce"}
    assert set(RUNNERS) == set(RUNNER_CLASSES)
    assert TARGETS[0] == "auto" and TARGETS[1:] == tuple(RUNNERS)


@pytest.mark.parametrize("target", RUNNERS)
def test_every_runner_has_every_member_with_a_compatible_signature(target):
    runner_class = RUNNER_CLASSES[target]()
    for name in Runner.__annotations__:
        assert isinstance(getattr(runner_class, name), bool), f"{runner_class.__name__}.{name}"
    for name, wanted in protocol_methods().items():
        found = inspect.signature(getattr(runner_class, name)).parameters
        where = f"{runner_class.__name__}.{name}"
        for param in wanted.parameters.values():
            assert param.name in found, f"{where} has no parameter {param.name}"
            assert found[param.name].kind == param.kind, f"{where}({param.name})"
            assert found[param.name].default == param.default, f"{where}({param.name}=)"
        extra = [p for p in found.values() if p.name not in wanted.parameters]
        assert all(p.default is not p.empty for p in extra), f"{where} needs more arguments"


# --- the resolver ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", RUNNERS)
def test_each_target_runs_through_the_interface(target, tiny):
    runner_class = RUNNER_CLASSES[target]()
    module = compiled(tiny)
    runner = make_runner(module, target, source_name=tiny)
    assert isinstance(runner, Runner) and type(runner) is runner_class
    assert runner.function("@tiny.step").sym_name.data == "tiny.step"
    x = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
    params = initial_parameters(runner.function("tiny"), seed=0)
    args = [runner.from_host(a) for a in (x, *params.values())]
    (out,) = runner.run("tiny", args)
    (expected,) = Reference(module).run("tiny", [x, *params.values()])
    np.testing.assert_allclose(runner.to_host(out), expected, rtol=1e-5, atol=1e-6)
    assert type(runner.to_host(out)) is np.ndarray


def test_an_unknown_target_names_the_targets(tiny):
    with pytest.raises(
        IrnError, match=r"unknown target 'tpu'; the targets are auto, reference, cpu, cuda"
    ):
        make_runner(compiled(tiny), "tpu")


def test_cuda_without_a_gpu_or_the_simulator_says_what_to_do(tiny, monkeypatch):
    cuda_runner_class()
    import numba
    from numba import cuda

    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", 0)
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    monkeypatch.setattr(cuda, "is_available", lambda: False, raising=False)
    with pytest.raises(IrnError, match="needs an NVIDIA GPU.*NUMBA_ENABLE_CUDASIM=1"):
        make_runner(compiled(tiny), "cuda")


def job(size: int) -> World:
    return World(SimpleNamespace(Get_rank=lambda: 0, Get_size=lambda: size))


def test_cuda_refuses_data_parallel_training(tiny):
    with pytest.raises(IrnError, match="--distributed runs on the reference or cpu target"):
        make_runner(compiled(tiny), "cuda", world=job(2))


def test_the_reference_target_never_imports_numba(tiny):
    script = (
        "import sys\n"
        "from irnet.model import open_session\n"
        f"session = open_session({tiny!r})\n"
        "assert type(session.runner).__name__ == 'Reference'\n"
        "assert 'numba' not in sys.modules, 'numba was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env=subprocess_env())  # fmt: skip
    assert done.returncode == 0, done.stderr


# --- auto and IRNET_TARGET ---------------------------------------------------------------------


@pytest.fixture
def fresh_auto(monkeypatch):
    """`auto` decided anew in this test, and no IRNET_TARGET (the suite sets one)."""
    monkeypatch.delenv("IRNET_TARGET")
    cached = (targets.numba_problem, targets.report_fallback)  # before a test replaces one
    for function in cached:
        function.cache_clear()
    yield
    for function in cached:
        function.cache_clear()


def test_auto_runs_on_cpu_where_numba_works(tiny, fresh_auto, capsys):
    assert targets.numba_problem() is None
    runner = make_runner(compiled(tiny), "auto", source_name=tiny)
    assert type(runner) is CpuRunner
    assert capsys.readouterr().err == ""


def test_auto_falls_back_to_reference_and_says_why_once(tiny, fresh_auto, monkeypatch, capsys):
    monkeypatch.setattr(targets, "numba_problem", lambda: "Numba is simulated away")
    module = compiled(tiny)
    runners = [make_runner(module, "auto") for _ in range(2)]
    assert all(type(r) is Reference for r in runners)
    assert capsys.readouterr().err == (
        "irnet: --target auto runs on the reference target (NumPy): Numba is simulated away\n"
    )


def test_numba_disable_jit_is_a_reason_to_fall_back(fresh_auto, monkeypatch):
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")
    assert targets.numba_problem() == "NUMBA_DISABLE_JIT is set"


def test_the_llvm_probe_compiles_and_runs():
    targets.jit_probe()  # raises where it cannot


def test_a_command_falls_back_where_numba_does_not_import(tiny, tmp_path):
    """A `numba` that fails to import, ahead of the real one: `irnet run` says so and runs on
    the reference target."""
    fake = tmp_path / "fake" / "numba"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('simulated: no numba here')\n")
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    env = {**subprocess_env(), "PYTHONPATH": str(fake.parent)}
    del env["IRNET_TARGET"]
    done = subprocess.run([console_script("irnet"), "run", tiny, "-i", f"x={tmp_path / 'x.npy'}"],
                          capture_output=True, text=True, cwd=ROOT, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "irnet: --target auto runs on the reference target (NumPy): Numba does not import "
        "(ImportError: simulated: no numba here)\n"
    )
    assert done.stdout.startswith("float32[2, 2]")


def chosen(argv: list[str]) -> str:
    """The target the command line `argv` runs on (before `auto` is resolved)."""
    args = cli.build_parser().parse_args(argv)
    cli.start_running(args)
    return args.target


@pytest.mark.parametrize("command", ["train", "eval", "predict", "sample", "run"])
def test_every_command_that_runs_code_defaults_to_auto(command, monkeypatch):
    monkeypatch.delenv("IRNET_TARGET")
    extra = {"eval": ["--checkpoint", "c"], "sample": ["--checkpoint", "c"],
             "predict": ["--checkpoint", "c", "--input", "x.npy"]}.get(command, [])  # fmt: skip
    assert chosen([command, "f.irn", *extra]) == "auto"
    monkeypatch.setenv("IRNET_TARGET", "cpu")
    assert chosen([command, "f.irn", *extra]) == "cpu"
    assert chosen([command, "f.irn", *extra, "--target", "reference"]) == "reference"


def test_irnet_target_leaves_compile_alone(monkeypatch):
    monkeypatch.setenv("IRNET_TARGET", "reference")
    assert chosen(["compile", "f.irn"]) == "cpu"


def test_an_unknown_irnet_target_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("IRNET_TARGET", "tpu")
    assert cli.main(["run", "examples/linreg.irn"]) == 1
    assert capsys.readouterr().err == (
        "error: IRNET_TARGET=tpu: unknown target; the targets are auto, reference, cpu, cuda\n"
    )


def test_the_repl_runs_on_reference_unless_irnet_target_says(monkeypatch):
    from irnet.repl.commands import run_command
    from irnet.repl.evaluation import Evaluator

    monkeypatch.delenv("IRNET_TARGET")
    assert Evaluator().target == "reference"  # every new expression would compile on cpu
    monkeypatch.setenv("IRNET_TARGET", "auto")
    session = Evaluator()
    assert session.target == "auto"
    [shown] = run_command(session, ":target", "<input-1>")
    assert shown.text == f"target: auto ({targets.resolve('auto')})"


class OneProcessJob(World):
    """`mpirun -n 1` without MPI: steps compiled for data-parallel training, one process,
    counting the allreduces."""

    def __init__(self):
        super().__init__(job(1).comm)
        self.allreduces = 0

    def allreduce(self, values, share):
        self.allreduces += 1
        return World().allreduce(values, share)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_a_data_parallel_step_reduces_on_every_runner(target, tiny):
    """The reference runs the step's `dist.allreduce`; a compiled runner leaves it to the
    trainer between `@m.grad` and `@m.update`. Both follow the single-process step."""
    world = OneProcessJob()
    parallel = open_session(tiny, world=world, target=target)
    single = open_session(tiny)
    assert parallel.distributed and not single.distributed
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32)
    losses = [s.train_step([x], [y], lr=0.05, detect_anomaly=False) for s in (parallel, single)]
    assert world.allreduces == 1
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name, expected in single.params.items():
        np.testing.assert_allclose(parallel.params[name], expected, rtol=1e-5, atol=1e-6)


# --- the dtype table ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", dtypes.DTYPES, ids=dtypes.NAMES)
def test_the_dtype_table_round_trips(dtype):
    assert dtypes.BY_NAME[dtype.name] is dtype
    assert dtypes.BY_ELEMENT_TYPE[dtype.element_type] is dtype
    assert dtypes.BY_NUMPY[dtype.numpy] is dtype
    assert dtypes.dtype_of(TensorType(dtype.element_type, [DYN, 2])) is dtype
    assert dtypes.dtype_name(dtype.element_type) == dtype.name
    assert dtypes.numpy_dtype(dtype.element_type) == dtype.numpy
    assert numpy_dtype(dtype.element_type) == dtype.numpy  # the reference's name for it
    wide = dtypes.numpy_dtype(dtype.element_type, np.float64)
    assert wide == (np.float64 if dtype.numpy.kind == "f" else dtype.numpy)


def test_the_table_agrees_with_the_grammar_and_the_type_printer():
    assert dtypes.NAMES == lexer.DTYPES
    for dtype in dtypes.DTYPES:
        assert shapes.dtype_name(dtype.element_type) == dtype.name


def test_a_type_outside_the_table_is_named():
    with pytest.raises(dtypes.DTypeError, match=r"f16 is not an irnet dtype \(f32, f64"):
        dtypes.numpy_dtype(f16)
    with pytest.raises(IrnError, match="f16 is not an irnet dtype"):
        numpy_dtype(f16)
    assert dtypes.dtype_name(f16) == "f16"
