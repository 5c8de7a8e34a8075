"""Data-parallel training over MPI (mpi4py): who am I, slicing global batches, one allreduce
over a flat buffer, broadcasting the training state, and stopping the whole job on failure.

`mpirun -n K irnet train FILE` is detected from the environment Open MPI, MPICH and PMIx set;
`irnet train --distributed` asks for it explicitly (and fails clearly without MPI).

Every collective is started non-blocking and waited for with a deadline
(`IRNET_MPI_TIMEOUT`, 30 s by default): a rank that died or was stopped (SIGSTOP) would
otherwise leave the others waiting forever, spinning at full CPU in MPI's blocking wait. The
wait sleeps between polls, and on the deadline the job is aborted with a message naming the
rank that gave up and the collective it waited in.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .diagnostics import IrnError

RANK_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
TIMEOUT_VARIABLE = "IRNET_MPI_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
"""Seconds a rank waits in one collective for the others before it aborts the job."""


def timeout() -> float:
    raw = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise IrnError(f"{TIMEOUT_VARIABLE} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise IrnError(f"{TIMEOUT_VARIABLE} must be positive, got {raw!r}")
    return value


def under_mpi() -> bool:
    return any(v in os.environ for v in RANK_VARIABLES)


@dataclass
class World:
    """The processes of one training job; a single process when `comm` is None."""

    comm: Any = None

    @property
    def rank(self) -> int:
        return 0 if self.comm is None else self.comm.Get_rank()

    @property
    def size(self) -> int:
        return 1 if self.comm is None else self.comm.Get_size()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def slice(self, rows: int) -> slice:
        """This process's rows of a global batch of `rows` (the first `rows % size` processes
        take one more)."""
        base, extra = divmod(rows, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def allreduce(self, values: Sequence[np.ndarray], share: float) -> list[np.ndarray]:
        """`sum over processes of share * value`, for all values with one collective over a
        single flat buffer."""
        weighted = [np.asarray(v) * np.asarray(share, dtype=np.asarray(v).dtype) for v in values]
        if self.comm is None:
            return weighted
        from mpi4py import MPI

        flat = np.concatenate([w.ravel() for w in weighted])
        self.wait(self.comm.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM), "the gradient allreduce")
        out, offset = [], 0
        for w in weighted:
            out.append(flat[offset : offset + w.size].reshape(w.shape))
            offset += w.size
        return out

    def broadcast(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rank 0's arrays on every rank. Every rank holds arrays of the same names, shapes and
        dtypes (the same model), so the buffers travel as they are, never pickled."""
        if self.comm is None:
            return arrays
        result = {}
        for name in sorted(arrays):
            buffer = np.array(arrays[name], order="C")  # a copy, 0-d arrays included
            self.wait(self.comm.Ibcast(buffer, root=0), f"the broadcast of {name}")
            result[name] = buffer
        return result

    def broadcast_ints(self, *values: int) -> tuple[int, ...]:
        if self.comm is None:
            return values
        buffer = np.asarray(values, dtype=np.int64)
        self.wait(self.comm.Ibcast(buffer, root=0), "a broadcast of the training position")
        return tuple(int(v) for v in buffer)

    def wait(self, request: Any, what: str) -> None:
        """Wait for a non-blocking collective, polling with short sleeps (a fast step barely
        waits; a long wait costs no CPU), and abort the job when the others do not answer."""
        deadline = time.monotonic() + timeout()
        pause = 0.0
        while not request.Test():
            if time.monotonic() > deadline:
                self.abort(
                    f"no answer from the other ranks for {timeout():g} s in {what}: a rank died "
                    f"or was stopped (set {TIMEOUT_VARIABLE} to wait longer)"
                )
            time.sleep(pause)
            pause = min(0.01, pause * 2 or 1e-5)

    def abort(self, message: str) -> None:
        """Stop every process of the job: one rank's failure must not leave the others
        waiting in a collective forever."""
        print(f"rank {self.rank}: {message}", file=sys.stderr, flush=True)
        if self.comm is not None and self.size > 1:
            self.comm.Abort(1)


def world(requested: bool) -> World:
    """The MPI world when running under `mpirun` (or asked for), else a single process."""
    if not (requested or under_mpi()):
        return World()
    try:
        from mpi4py import MPI
    except ImportError:
        raise IrnError(
            "distributed training needs mpi4py and an MPI library: "
            "apt-get install openmpi-bin libopenmpi-dev && pip install 'irnet[mpi]'"
        ) from None
    return World(MPI.COMM_WORLD)
