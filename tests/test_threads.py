"""Thread pool sizing (`irnet/threads.py`): `--threads N` and `IRNET_THREADS` set the BLAS and
Numba pools, the target's BLAS gets the count and the other BLAS copy one thread, `off` leaves
the pools alone, the automatic count follows the CPU affinity, a cgroup quota, the cores other
processes keep busy and `OPENBLAS_NUM_THREADS`, and bad counts are one-line errors. No timings:
`benchmarks/bench_busy.py` measures what the policy buys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, subprocess_env
from threadpoolctl import threadpool_info, threadpool_limits

from irnet import cli, threads
from irnet.diagnostics import IrnError
from irnet.threads import Sample


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No thread settings from the environment or earlier tests; both BLAS copies loaded, each
    pool (and Numba's) given back its size afterwards."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401

    for name in (threads.ENV, "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(threads, "_measured", None)
    numba_threads = numba.get_num_threads()
    with threadpool_limits(limits=None):  # restores every pool on leaving
        yield
    numba.set_num_threads(numba_threads)


def blas_threads() -> dict[str | None, int]:
    """Each BLAS library's thread count, by the package that ships it."""
    return {
        threads.shipped_by(lib["filepath"]): lib["num_threads"]
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    }


def two_blas_copies() -> None:
    if set(blas_threads()) != {"numpy", "scipy"}:
        pytest.skip(f"NumPy and SciPy do not each ship their BLAS here: {blas_threads()}")


# --- what is asked for -------------------------------------------------------------------------


def test_threads_1_leaves_every_blas_pool_one_thread(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 10), np.float32))
    with threadpool_limits(2, user_api="blas"):
        assert cli.main(["run", "examples/linreg.irn", "-i", f"x={tmp_path / 'x.npy'}",
                         "--threads", "1"]) == 0  # fmt: skip
        assert set(blas_threads().values()) == {1}


def test_the_targets_blas_gets_the_count_and_the_other_copy_one():
    two_blas_copies()
    threads.configure("2")
    threads.size_pools("cpu")  # compiled code calls SciPy's BLAS
    assert blas_threads() == {"scipy": 2, "numpy": 1}
    threads.size_pools("reference")  # the interpreter calls NumPy's
    assert blas_threads() == {"numpy": 2, "scipy": 1}


def test_the_cpu_target_sizes_numbas_pool():
    import numba

    threads.configure("1")
    threads.size_pools("cpu")
    assert numba.get_num_threads() == 1


def test_off_leaves_the_pools_as_they_are():
    with threadpool_limits(2, user_api="blas"):
        threads.configure("off")
        assert threads.size_pools("cpu").count is None
        assert set(blas_threads().values()) == {2}


def test_the_flag_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(threads.ENV, "3")
    threads.configure(None)
    assert threads.thread_count() == 3
    threads.configure("2")
    assert threads.thread_count() == 2


def test_the_environment_counts_for_irnet_used_as_a_library(monkeypatch):
    monkeypatch.setenv(threads.ENV, "1")  # no command called configure
    assert threads.thread_count() == 1


@pytest.mark.parametrize("text", ["0", "-1", "abc", "2.5", ""])
def test_a_bad_count_is_refused(text):
    with pytest.raises(IrnError, match=r"expected a number of threads \(1 or more\) or 'off'"):
        threads.parse(text, "--threads")


@pytest.mark.parametrize("command", [["run", "examples/linreg.irn"], ["repl"],
                                     ["train", "examples/linreg.irn"]])  # fmt: skip
def test_bad_counts_are_one_line_errors(command, monkeypatch, capsys):
    assert cli.main([*command, "--threads", "0"]) == 1
    assert capsys.readouterr().err == (
        "error: --threads 0: expected a number of threads (1 or more) or 'off'\n"
    )
    monkeypatch.setenv(threads.ENV, "many")
    assert cli.main(command) == 1
    assert capsys.readouterr().err == (
        "error: IRNET_THREADS=many: expected a number of threads (1 or more) or 'off'\n"
    )


# --- the automatic count -----------------------------------------------------------------------


def measured_with(monkeypatch, cpus: set[int], others: float) -> int:
    """The automatic count on `cpus`, when other processes used `others` cores' worth of them
    during a one-second start."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus)
    monkeypatch.setattr(threads, "quota_cores", lambda: None)
    monkeypatch.setattr(threads, "_START", Sample(wall=0.0, own=0.0, busy=0.0))
    # one second, half of it this process's own computing
    end = Sample(wall=1.0, own=0.5, busy=0.5 + others)
    monkeypatch.setattr(Sample, "now", classmethod(lambda cls: end))
    return threads.thread_count()


@pytest.mark.parametrize(
    ("cpus", "others", "count"),
    [
        ({0, 1}, 0.0, 2),  # idle: every core
        ({0, 1}, 0.1, 2),  # a little noise is not a busy core
        ({0, 1}, 0.5, 1),  # a busy core when in doubt: waiting on it costs far more
        ({0, 1}, 1.0, 1),  # one CPU-bound process beside this one
        ({0, 1}, 3.0, 1),  # never fewer than one
        ({0}, 0.0, 1),  # the affinity mask (taskset -c 0)
        (set(range(16)), 1.0, 15),
    ],
)
def test_the_automatic_count(monkeypatch, cpus, others, count):
    assert measured_with(monkeypatch, cpus, others) == count


def test_openblas_num_threads_caps_the_automatic_count(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert measured_with(monkeypatch, {0, 1, 2, 3}, 0.0) == 1
    threads.configure("4")  # but not a count given to irnet
    assert threads.thread_count() == 4


def test_busy_elsewhere_is_the_cpus_busy_time_less_this_processs():
    start = Sample(wall=10.0, own=1.0, busy=100.0)
    assert threads.busy_elsewhere(start, Sample(12.0, 2.0, 103.0)) == pytest.approx(1.0)
    assert threads.busy_elsewhere(start, Sample(12.0, 2.0, 100.5)) == 0.0  # jiffy rounding
    assert threads.busy_elsewhere(start, Sample(12.0, 2.0, None)) == 0.0  # no /proc/stat


def test_the_busy_time_of_this_machines_cpus_is_read():
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat")
    assert threads.busy_seconds(threads.usable_cpus()) > 0


@pytest.mark.parametrize(
    ("text", "cores"), [("max 100000", None), ("150000 100000", 2), ("50000 100000", 1)]
)
def test_a_cgroup_quota_limits_the_cores(tmp_path, text, cores):
    (tmp_path / "cpu.max").write_text(text + "\n")
    assert threads.quota_cores(tmp_path / "cpu.max") == cores
    assert threads.quota_cores(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("/v/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so", "numpy"),
        ("/v/site-packages/scipy.libs/libscipy_openblas-6cdc3b4a.so", "scipy"),
        ("/v/site-packages/scipy/linalg/libopenblas.so", "scipy"),
        ("/usr/lib/x86_64-linux-gnu/libopenblas.so.0", None),
    ],
)
def test_which_package_ships_a_blas(path, owner):
    assert threads.shipped_by(path) == owner


def test_a_process_pinned_to_one_cpu_computes_with_one_thread():
    """Pinned after NumPy started its pool (on every CPU), as `taskset -p` would."""
    script = (
        "import os, numpy\n"
        "from threadpoolctl import threadpool_info, threadpool_limits\n"
        "from irnet import threads\n"
        "threadpool_limits(2, user_api='blas')\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "threads.size_pools('reference')\n"
        "print(sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env=subprocess_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[1]\n"
