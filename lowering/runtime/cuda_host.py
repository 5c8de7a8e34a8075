"""The cuda target's host code in every emitted module: launch settings, the simulator's
fixes, device arrays, argument checks, launch configurations, and the checks and random draws
that its entry points call.

The emitted module gets this module's code as text, after `host`'s (see `text.body`).
"""

import math

import numpy as np
from numba import config as _numba_config
from numba import cuda

from .host import KernelError, NonFiniteError, _fits

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)
"""Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) runs each thread as Python; small blocks
and grids keep it quick. The kernels are the same."""
THREADS = 32 if SIMULATOR else 256
"""Threads per block of the one-dimensional kernels; a power of two (the reduction trees)."""
MAX_BLOCKS = 4 if SIMULATOR else 8192
"""Blocks of a grid-stride kernel at most; the loops cover the rest."""
TILE = 8 if SIMULATOR else 16
"""Side of the square tiles of the matmul kernels (TILE x TILE threads a block)."""


def _lock_simulated_shared_arrays():
    """Numba's simulator finds a block's shared array by the source line that declares it,
    creating it at the first lookup without a lock: two threads can both create one, and each
    then reduces into its own copy (a reduction loses partial sums, now and then, under load).
    This makes the lookup atomic; on a GPU it is not called."""
    import sys
    import threading

    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    shared = kernelapi.FakeCUDAShared
    if getattr(shared, "_irnet_locked", False):
        return
    lock, dynamic = threading.Lock(), shared.array

    def array(self, shape, dtype):
        if shape == 0:
            return dynamic(self, shape, dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                if not isinstance(dtype, np.dtype | type):
                    dtype = numpy_support.as_dtype(dtype)
                found = self._allocations[key] = np.empty(shape, dtype)
        return found

    shared.array, shared._irnet_locked = array, True


if SIMULATOR:
    _lock_simulated_shared_arrays()

if SIMULATOR:  # Python's math functions raise where the GPU's give inf or NaN; NumPy's do not
    _exp, _log, _sqrt, _tanh, _pow = np.exp, np.log, np.sqrt, np.tanh, np.power
else:
    _exp, _log, _sqrt, _tanh, _pow = math.exp, math.log, math.sqrt, math.tanh, math.pow
_erf = math.erf  # finite for every input: it raises nowhere, on the GPU or in the simulator

JIT = {"cache": True}
"""Options of every kernel: compiled code is cached beside this file (`__pycache__`)."""
NO_DEVICE = (
    "the cuda target needs an NVIDIA GPU with a working driver, or Numba's CUDA simulator "
    "(set NUMBA_ENABLE_CUDASIM=1 to run the kernels, slowly, on the CPU)"
)


class NoDeviceError(RuntimeError):
    """There is neither a usable GPU nor the simulator."""


_READY = []


def _require_device():
    """Checked once, at the first argument an entry point takes."""
    if not _READY:
        if not SIMULATOR and not cuda.is_available():
            raise NoDeviceError(NO_DEVICE)
        _READY.append(True)


def _on_device(a):
    return hasattr(a, "copy_to_host")


def _arg(value, dtype, shape, what):
    """`value` as a C-contiguous device array of `dtype` whose shape fits `shape` (-1: any
    size). Device arrays of the right dtype stay where they are; host arrays are copied."""
    _require_device()
    if _on_device(value):
        _fits(value, dtype, shape, what)
        if value.dtype == dtype and value.is_c_contiguous():
            return value
        value = value.copy_to_host()
    a = np.asarray(value)
    _fits(a, dtype, shape, what)
    return cuda.to_device(np.asarray(a, dtype=dtype, order="C"))  # keeps 0-d arrays 0-d


def _host(a):
    """A device array's values as a NumPy array (a copy)."""
    return a.copy_to_host() if _on_device(a) else np.asarray(a)


_empty = cuda.device_array


_UPLOADED = {}


def _dev(constant):
    """A module constant's device copy, made once."""
    d = _UPLOADED.get(id(constant))
    if d is None:
        d = _UPLOADED[id(constant)] = cuda.to_device(constant)
    return d


def _training(flag):
    """The 0-d device array that nn.training reads."""
    return _dev(_TRUE if flag else _FALSE)


_TRUE, _FALSE = np.array(True), np.array(False)


def _copy(a):
    out = cuda.device_array(a.shape, a.dtype)
    out.copy_to_device(a)
    return out


def _put(destination, value):
    destination.copy_to_device(value)


def _grid(n):
    """(blocks, threads) for a grid-stride kernel over `n` items."""
    return min(MAX_BLOCKS, max(1, -(-n // THREADS))), THREADS


def _reduce_launch(out, kept, reduced, chunks_allowed):
    """(blocks, threads) for a reduction kernel: block x reduces output element x (striding
    over them), its threads stride over the `reduced` items and combine in a shared-memory
    tree. Long reductions split over blocks in y, which add their partial results atomically
    into `out`, zeroed here first."""
    threads = 1
    while threads < min(reduced, THREADS):
        threads *= 2
    chunks = 1
    if chunks_allowed:
        chunks = max(1, min(MAX_BLOCKS, reduced // (threads * 64)))
        if chunks > 1:
            _fill(out, 0)
    return (max(1, min(kept, MAX_BLOCKS)), chunks), threads


def _tile_grid(batch, m, n):
    """(blocks, threads) of a matmul kernel: a block of TILE x rows threads per output tile of
    rows x TILE (rows = TILE, or m if fewer: no idle rows for a small batch), as many blocks as
    MAX_BLOCKS at most (each strides over the tiles)."""
    rows = max(1, min(m, TILE))
    tiles = max(1, batch) * -(-m // rows) * -(-n // TILE)
    return min(MAX_BLOCKS, max(1, tiles)), (TILE, rows)


@cuda.jit(**JIT)
def _fill_k(a, value):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] = value


def _fill(a, value):
    if a.size:
        _fill_k[_grid(a.size)](a.reshape(a.size), value)


def _reshape(site, a, shape):
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        shape = tuple(a.size // known if s == -1 and known else s for s in shape)
    if int(np.prod(shape)) != a.size:
        raise KernelError(site, f"cannot reshape {list(a.shape)} into {list(shape)}")
    return a.reshape(shape)


def _indices(site, idx, size, axis):
    """Index arrays are checked on the host (a copy of the indices: labels, tokens)."""
    idx = _host(idx)
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx[(idx < 0) | (idx >= size)].flat[0]
        raise KernelError(
            site, f"index {bad} is out of range for axis {axis} of size {size} (0 to {size - 1})"
        )


def _uniform(seed, op_seed, step, shape, dtype):
    """As the reference: drawn on the host in float64 from the stream (seed, op seed, step),
    then cast, below 1, and copied to the device."""
    entropy = [v % 2**64 for v in (seed, op_seed, step)]
    draw = np.random.default_rng(entropy).random(shape)
    below_one = np.nextafter(dtype(1), dtype(0))
    return cuda.to_device(np.minimum(draw.astype(dtype), below_one))


def _finite(site, outputs, inputs):
    for k, o in enumerate(outputs):
        o = _host(o)
        if o.dtype.kind == "f" and not np.isfinite(o).all():
            kind = "NaN" if np.isnan(o).any() else "an infinity"
            raise NonFiniteError(
                site, k, kind, [_host(i) for i in inputs], [_host(x) for x in outputs]
            )
