"""Shared fixtures: the repository root as working directory, and the programs every
whole-pipeline test runs over (the examples and a program using all of the standard library)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The cuda target's tests run its kernels in Numba's CUDA simulator, unless a run on a GPU asks
# for the device (NUMBA_ENABLE_CUDASIM=0, as benchmarks/gpu_check.sh does). Numba reads this
# once, when it is imported, so it is set before anything imports it.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# Its PTX tests need the CUDA toolkit's NVVM, which Numba finds through CUDA_HOME.
if "CUDA_HOME" not in os.environ and Path("/usr/local/cuda/nvvm").is_dir():
    os.environ["CUDA_HOME"] = "/usr/local/cuda"
# Commands (in this process and in subprocesses) run on the reference target unless a test
# names one: `auto`, their default, would compile every model a CLI test runs with Numba. The
# tests of `auto` itself unset this.
os.environ["IRNET_TARGET"] = "reference"
os.environ["IRNET_VERIFY_EACH"] = "1"  # errors name the pass that broke the IR

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted(
    [p.relative_to(ROOT) for p in (ROOT / "examples").glob("*.irn")]
    + [Path("tests/programs/stdlib_all.irn")]
)
SLOW_TO_SIMULATE = ("mnist_resnet.irn", "char_transformer.irn", "char_gru.irn")
SIMULATED = [p for p in PROGRAMS if p.name not in SLOW_TO_SIMULATE]
"""The programs run in the CUDA simulator. mnist_resnet's 28x28 convolutions with 16 and 32
channels, char_transformer's 64x64 attention and char_gru's 64 steps of a 256-unit GRU take
minutes there (every GPU thread is a Python thread); their kernels are the ones stdlib_all's
residual, transformer and sequence models run at a small size, and they compile to PTX with
the rest."""
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """One compile cache for the whole session: each kernel compiles once."""
    return tmp_path_factory.mktemp("irnet-cache")


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    """Locations in IR name files relative to where irnet runs; tests run from the root."""
    monkeypatch.chdir(ROOT)


def console_script(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    return str(path)


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
