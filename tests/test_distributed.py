"""Data-parallel training under `mpirun -n 2`: the same parameters as one process with the same
global batch (float32 summation-order tolerance), bit-identical with one MPI process, rank-0-only
output, resume, and a failing rank ending the whole job. Skipped, saying why, where MPI or
mpi4py is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, console_script, subprocess_env

MPIRUN = shutil.which("mpirun")
try:
    import mpi4py  # noqa: F401

    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False

pytestmark = pytest.mark.skipif(
    MPIRUN is None or not HAVE_MPI4PY,
    reason="needs Open MPI (apt-get install openmpi-bin libopenmpi-dev) and mpi4py (irnet[mpi])",
)


def train(cwd, *args: str, processes: int | None = None) -> subprocess.CompletedProcess:
    command = [console_script("irnet"), "train", *args]
    if processes is not None:
        mpi = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-x", "OPENBLAS_NUM_THREADS"]
        command = [*mpi, "-n", str(processes), *command]
    # mpirun binds each rank to one core; OpenBLAS would then sum matrix products in another
    # order than a two-thread run. One BLAS thread everywhere makes the comparison exact.
    env = {**subprocess_env(), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def params(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k.startswith(("param/", "state/"))}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """MNIST-shaped data, small: 80 images and labels."""
    folder = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(0)
    x = rng.random((80, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 80).astype(np.int32)
    np.savez(folder / "digits.npz", x=x, y=y)
    return folder


def run_both(folder, example: str, *flags: str):
    source = str(ROOT / "examples" / f"{example}.irn")
    data = f'npz("{folder / "digits.npz"}", x="x", y="y")'
    common = [source, "--data", data, "--epochs", "1", "--batch", "20", "--val-split", "0", *flags]
    one = train(folder, *common, "--checkpoint-dir", "one")
    two = train(folder, *common, "--checkpoint-dir", "two", processes=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    return (
        one,
        two,
        params(folder / "one" / f"{example}-last.npz"),
        params(folder / "two" / f"{example}-last.npz"),
    )


@pytest.mark.parametrize("example", ["mnist_mlp", "mnist_cnn"])
def test_two_processes_match_one(digits, example):
    one, two, single, double = run_both(digits, example)
    for name in single:
        np.testing.assert_allclose(double[name], single[name], rtol=1e-4, atol=1e-6)
    assert "on 2 processes" in two.stdout
    assert two.stdout.count("epoch 1/1 ") == 1  # rank 0 alone prints


def test_one_mpi_process_is_bit_identical(digits):
    source = str(ROOT / "examples" / "mnist_mlp.irn")
    data = f'npz("{digits / "digits.npz"}", x="x", y="y")'
    common = [source, "--data", data, "--epochs", "1", "--batch", "20", "--val-split", "0"]
    assert train(digits, *common, "--checkpoint-dir", "plain").returncode == 0
    assert train(digits, *common, "--checkpoint-dir", "mpi1", processes=1).returncode == 0
    plain = params(digits / "plain" / "mnist_mlp-last.npz")
    mpi1 = params(digits / "mpi1" / "mnist_mlp-last.npz")
    for name in plain:
        np.testing.assert_array_equal(mpi1[name], plain[name])


def test_resume_under_mpi(digits):
    source = str(ROOT / "examples" / "mnist_mlp.irn")
    data = f'npz("{digits / "digits.npz"}", x="x", y="y")'
    common = [source, "--data", data, "--batch", "20", "--val-split", "0"]
    straight = train(digits, *common, "--epochs", "2", "--checkpoint-dir", "s", processes=2)
    first = train(digits, *common, "--epochs", "2", "--stop-after", "1", "--checkpoint-dir", "r",
                  processes=2)  # fmt: skip
    resumed = train(digits, *common, "--epochs", "2", "--checkpoint-dir", "r", "--resume",
                    processes=2)  # fmt: skip
    for result in (straight, first, resumed):
        assert result.returncode == 0, result.stderr
    assert "resumed from" in resumed.stdout
    a, b = params(digits / "s" / "mnist_mlp-last.npz"), params(digits / "r" / "mnist_mlp-last.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_a_failing_rank_ends_the_job(tmp_path):
    (tmp_path / "bad.irn").write_text(
        "from nn import dense, mse\n"
        "model bad(x: f32[N, 2]) -> f32[N, 1] {\n"
        "    return dense(log(x), 1)\n"
        "}\n"
        "train bad(y: f32[N, 1]) {\n"
        '    data = npz("d.npz", x="x", y="y")\n'
        "    loss = mse(bad(x), y)\n"
        "    batch = 2\n"
        "}\n"
    )
    x = np.array([[1.0, 2.0], [-1.0, 3.0]], np.float32)  # one row per rank; one makes a NaN
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros((2, 1), np.float32))
    start = time.monotonic()
    result = train(tmp_path, "bad.irn", "--detect-anomaly", processes=2)
    assert result.returncode != 0
    assert time.monotonic() - start < 120
    assert "nn.log: produced NaN" in result.stderr
    assert not (tmp_path / "checkpoints" / "bad-last.npz").exists()


def test_two_processes_on_the_cpu_target(digits):
    """Compiled, the step runs split at its allreduce: @m.grad, the reduction, @m.update."""
    _, two, single, double = run_both(digits, "mnist_mlp", "--target", "cpu")
    for name in single:
        np.testing.assert_allclose(double[name], single[name], rtol=1e-4, atol=1e-6)
    assert "on 2 processes" in two.stdout


STOPPED_RANK = """
import os, signal, time
import numpy as np
from irnet.distributed import world

w = world(True)
w.allreduce([np.ones(3, np.float32)], 1.0)  # both ranks answer once
if w.rank == 1:
    os.kill(os.getpid(), signal.SIGSTOP)  # frozen, as by a debugger or a stuck node
w.allreduce([np.ones(3, np.float32)], 1.0)
print("the allreduce returned without rank 1")
"""


def test_a_stopped_rank_ends_the_job_within_the_timeout(tmp_path):
    """The defect: a rank frozen with SIGSTOP hung the job forever, the other spinning."""
    script = tmp_path / "stopped.py"
    script.write_text(STOPPED_RANK)
    command = [
        MPIRUN,
        "--allow-run-as-root",
        "--oversubscribe",
        "-n",
        "2",
        "-x",
        "IRNET_MPI_TIMEOUT",
    ]
    env = {**subprocess_env(), "IRNET_MPI_TIMEOUT": "3"}
    start = time.monotonic()
    done = subprocess.run(
        [*command, sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    elapsed = time.monotonic() - start
    assert done.returncode != 0 and "returned" not in done.stdout
    assert "rank 0: no answer from the other ranks for 3 s in the gradient allreduce" in done.stderr
    assert elapsed < 60, elapsed
