"""How many threads irnet computes with: `--threads N`, `IRNET_THREADS`, or a measured choice.

Three thread pools can compute in one irnet process: NumPy's OpenBLAS (the reference target's
matmuls), SciPy's own copy of OpenBLAS (what `np.dot` calls inside the cpu target's `@njit`
code) and Numba's pool (the cpu target's parallel loops, with four cores or more). Left alone,
each starts one thread per core.

Why that is slow on a busy machine: an OpenBLAS call splits its work between its threads and
the calling thread then spins until every part is done, and idle pool threads spin for a while
before they sleep. When something else holds one of the cores, one part of each call waits for
a time slice. Measured on a 2-core machine shared with other jobs (load average 3-5): a
128x784x256 SGEMM took 12 ms (median) with two threads instead of 0.25 ms, against 0.48 ms
with one, and an MNIST-MLP epoch on the cpu target 4-37 s with the libraries' pools against
0.6-1.5 s with one thread. With one CPU-bound process beside it on an otherwise idle machine,
the epoch took 1.06 s instead of 0.66 s (`benchmarks/bench_busy.py`). Two pools fight each
other the same way with nothing else running: alternating NumPy and SciPy SGEMMs with two
threads each took 96 ms a pair instead of 0.5 ms, because the pool that just finished still
spins on the core the other one needs. On an idle machine the threads pay: the SGEMM takes
half the time with two, the epoch 0.45 s against 0.56 s with one.

The policy, applied by `size_pools` when a runner is made (`targets.make_runner`):

- `count` threads, where `count` is `--threads N` or `IRNET_THREADS=N` if given, else the
  cores this process may use (its CPU affinity, and a cgroup CPU quota if there is one) less
  those that other processes kept busy while this one started (from `/proc/stat`, between this
  module's import and the first runner: no extra wait), and at most `OPENBLAS_NUM_THREADS` or
  `OMP_NUM_THREADS` when those are set. A core counts as busy when others used more than a
  fifth of it: a wrongly idle guess costs ten times more than a wrongly busy one.
- The BLAS pool that the target computes with gets `count` threads; every other BLAS pool gets
  one, so that it has no threads left to spin. Numba's pool gets `count` (at most the threads
  it started with). A kernel calls BLAS and then runs its loops, never both at once, so at most
  `count` threads compute at a time.
- `--threads off` or `IRNET_THREADS=off` leaves every pool as the libraries started it.

The count is measured as the first runner is made, and again each second while training
(`follow_load`, between steps), so that a job starting or ending beside a training run changes
the pools within a second; a given count (`--threads N`) is kept.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .diagnostics import IrnError

ENV = "IRNET_THREADS"
OFF = "off"
BUSY_SHARE = 0.2
"""How much of a core other processes must use for it to count as busy."""
MIN_WINDOW = 0.1
"""Seconds of `/proc/stat` the busy measurement needs; a shorter start waits for the rest."""
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


# --- what the user asks for --------------------------------------------------------------------

_requested: int | str | None = None


def parse(text: str, where: str) -> int | str:
    """A thread count (`4`) or `off`, as `--threads` or `IRNET_THREADS` (`where`) gave it."""
    word = text.strip().lower()
    if word == OFF:
        return OFF
    if word.isdigit() and int(word) >= 1:
        return int(word)
    given = f"{where}={text}" if where == ENV else f"{where} {text}"
    raise IrnError(f"{given}: expected a number of threads (1 or more) or '{OFF}'")


def configure(threads: str | None) -> None:
    """At a command's start: take `--threads` (`threads`), else `IRNET_THREADS`, checking
    either now so that a mistake stops the command before it does any work."""
    global _requested
    if threads is not None:
        _requested = parse(threads, "--threads")
    elif os.environ.get(ENV):
        _requested = parse(os.environ[ENV], ENV)
    else:
        _requested = None


def requested() -> int | str | None:
    """What `configure` found, or `IRNET_THREADS` when no command configured this process
    (irnet used as a library)."""
    if _requested is None and os.environ.get(ENV):
        return parse(os.environ[ENV], ENV)
    return _requested


# --- the cores there are, and how busy ---------------------------------------------------------


def usable_cpus() -> set[int]:
    """The CPUs this process may run on."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def quota_cores(cpu_max: Path = CPU_MAX) -> int | None:
    """The cores a cgroup v2 CPU quota allows (`cpu.max`, as containers set it), if any."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def usable_cores() -> int:
    """How many cores this process may compute on at once."""
    cores = len(usable_cpus())
    quota = quota_cores()
    return min(cores, quota) if quota else cores


@dataclass(frozen=True)
class Sample:
    """A moment's CPU counters: wall time, this process's CPU time, and the busy time of the
    usable CPUs (None without `/proc/stat`), all in seconds."""

    wall: float
    own: float
    busy: float | None

    @classmethod
    def now(cls) -> Sample:
        return cls(time.monotonic(), time.process_time(), busy_seconds(usable_cpus()))


def busy_seconds(cpus: set[int]) -> float | None:
    """Seconds the CPUs `cpus` spent not idle since boot, stolen time included (the hypervisor
    ran someone else there)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name[:3] == "cpu" and name[3:].isdigit() and int(name[3:]) in cpus:
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            values = [int(v) for v in fields[:8]]
            ticks += sum(values) - values[3] - values[4]
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_elsewhere(start: Sample, end: Sample) -> float:
    """How many cores' worth of the usable CPUs other processes used between two samples."""
    if start.busy is None or end.busy is None or end.wall <= start.wall:
        return 0.0
    others = (end.busy - start.busy) - (end.own - start.own)
    return max(0.0, others / (end.wall - start.wall))


# --- the policy --------------------------------------------------------------------------------

_START = Sample.now()  # this module is imported as a command starts
_measured: int | None = None


def free_cores() -> int:
    """The usable cores that other processes left free while this one started (at least 1),
    measured once per process."""
    global _measured
    if _measured is None:
        waited = time.monotonic() - _START.wall
        if waited < MIN_WINDOW:
            time.sleep(MIN_WINDOW - waited)
        _measured = cores_left(busy_elsewhere(_START, Sample.now()))
    return _measured


def cores_left(others: float) -> int:
    """The usable cores free when other processes use `others` cores' worth (at least 1)."""
    return max(1, usable_cores() - max(0, math.ceil(others - BUSY_SHARE)))


def env_cap() -> int | None:
    """The thread count `OPENBLAS_NUM_THREADS` or `OMP_NUM_THREADS` sets, if either does."""
    counts = [os.environ.get(name, "") for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")]
    numbers = [int(c) for c in counts if c.strip().isdigit() and int(c) >= 1]
    return min(numbers) if numbers else None


def thread_count() -> int | None:
    """The threads to compute with, or None for `off`."""
    wanted = requested()
    if wanted == OFF:
        return None
    if isinstance(wanted, int):
        return wanted
    cap = env_cap()
    return min(free_cores(), cap) if cap else free_cores()


@dataclass(frozen=True)
class Plan:
    """What `size_pools` set: the thread count, and each BLAS library's (by file) threads."""

    count: int | None
    blas: dict[str, int]


# The BLAS that each target's matmuls call, named by the package that ships it.
TARGET_BLAS = {"reference": "numpy", "cpu": "scipy", "cuda": "numpy"}


def size_pools(target: str) -> Plan:
    """Size the thread pools for computing on `target` (`reference`, `cpu` or `cuda`): see the
    module's docstring."""
    global _watch
    count = thread_count()
    if count is None:
        return Plan(None, {})
    _watch = LoadWatch(target, count) if requested() is None else None
    return resize(target, count)


def resize(target: str, count: int) -> Plan:
    """`count` threads for `target`'s BLAS and Numba pools, one for the other BLAS copies."""
    if target == "cpu":
        # Loaded now rather than at the first matmul, so that its pool is sized too; without
        # SciPy the runner says what is missing.
        with contextlib.suppress(ImportError):
            import scipy.linalg.cython_blas  # noqa: F401
    blas = size_blas(count, TARGET_BLAS.get(target, "numpy"))
    if target == "cpu":
        size_numba(count)
    return Plan(count, blas)


def size_blas(count: int, package: str) -> dict[str, int]:
    """`count` threads for the BLAS libraries of `package` and those no package owns (one
    library shared by NumPy and SciPy); one for the other packages' copies."""
    from threadpoolctl import ThreadpoolController

    sized = {}
    for library in ThreadpoolController().select(user_api="blas").lib_controllers:
        owner = shipped_by(library.filepath)
        threads = count if owner in (None, package) else 1
        library.set_num_threads(threads)
        sized[library.filepath] = threads
    return sized


def shipped_by(filepath: str) -> str | None:
    """`numpy` or `scipy` for a library inside that package's wheel (`numpy.libs/`,
    `scipy/...`), else None."""
    parts = Path(filepath).parts
    for package in ("numpy", "scipy"):
        if package in parts or f"{package}.libs" in parts:
            return package
    return None


def size_numba(count: int) -> None:
    """`count` threads for Numba's parallel loops, at most the pool it started with."""
    import numba

    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))


# --- load that changes while a command computes --------------------------------------------


PERIOD = 1.0
"""Seconds between two looks at the load while training (`follow_load`)."""


class LoadWatch:
    """The measured count, measured again over each `PERIOD` while a command computes: a job
    that starts (or ends) beside a training run changes the pools within a second."""

    def __init__(self, target: str, count: int):
        self.target, self.count, self.last = target, count, Sample.now()

    def tick(self) -> None:
        if time.monotonic() - self.last.wall < PERIOD:
            return
        sample = Sample.now()
        count = cores_left(busy_elsewhere(self.last, sample))
        cap = env_cap()
        count = min(count, cap) if cap else count
        self.last = sample
        if count != self.count:
            self.count = count
            resize(self.target, count)


_watch: LoadWatch | None = None


def follow_load() -> None:
    """Resize the pools if other processes' load changed: called between training steps, it
    reads the clock, and `/proc/stat` once a `PERIOD`. Nothing when the count was given."""
    if _watch is not None:
        _watch.tick()
