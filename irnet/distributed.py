"""Data-parallel training over MPI (mpi4py): who am I, slicing global batches, one allreduce
over a flat buffer, broadcasting the training state, and stopping the whole job on failure.

`mpirun -n K irnet train FILE` is detected from the environment Open MPI, MPICH and PMIx set;
`irnet train --distributed` asks for it explicitly (and fails clearly without MPI).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .diagnostics import IrnError

RANK_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


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
        self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
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
            self.comm.Bcast(buffer, root=0)
            result[name] = buffer
        return result

    def broadcast_ints(self, *values: int) -> tuple[int, ...]:
        if self.comm is None:
            return values
        buffer = np.asarray(values, dtype=np.int64)
        self.comm.Bcast(buffer, root=0)
        return tuple(int(v) for v in buffer)

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
