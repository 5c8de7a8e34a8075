"""The cpu target's host code in every emitted module: kernel options, argument checks, the
fast path, and the checks and random draws that its entry points call.

The emitted module gets this module's code as text, after `host`'s (see `text.body`).
"""

import numpy as np

from .host import _WORKSPACES, KernelError, NonFiniteError, _fits

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
"""LLVM fast-math flags of the kernels: reordering and contraction only. Never `nnan`/`ninf`,
so NaN and Inf propagate as in NumPy and anomaly detection sees them."""

JIT = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}
"""Options of every kernel: compiled code is cached beside this file (`__pycache__`); a float
division by zero gives inf or NaN, as in NumPy, instead of raising."""


def _arg(value, dtype, shape, what):
    """`value` as a C-contiguous, writeable array of `dtype` whose shape fits `shape`
    (-1: any size)."""
    if type(value) is np.ndarray and value.dtype.type is dtype:  # the common case, quickly
        have = value.shape
        fits = have == shape
        if not fits and len(have) == len(shape):
            fits = True
            for s, d in zip(shape, have):
                fits = fits and (s < 0 or s == d)
        flags = value.flags
        if fits and flags.c_contiguous and flags.writeable:
            return value
    a = np.asarray(value)
    _fits(a, dtype, shape, what)
    if a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
        a = np.array(a, dtype=dtype, order="C")
    return a


_empty = np.empty


def _put(destination, value):
    destination[...] = value


def _copy(a):
    return a.copy()


_FAST = {}
"""Per entry point, the argument shapes a checked call has seen fit: calls with those shapes
(and the dtypes and layouts that call compiled the fast path for) take the fast path."""
_FAST_BYTES = 1 << 16
"""The fast path saves about 5 us a call, which counts only where a call takes tens of us: tiny
workloads. It costs a compile (about a second: Numba links every kernel into it) and it
allocates its buffers on each call; an entry point whose workspace is larger than this keeps
the checked path, which reuses its workspace across calls."""


def _same_objects(checked, given):
    """Whether the argument checks passed every argument through unconverted."""
    return all(a is b for a, b in zip(checked, given))


def _remember(name, key, fast, args):
    """After a checked call: take the fast path for these shapes from now on, if the workspace
    is small and the fast path compiles and runs (its results are discarded here)."""
    if sum(a.nbytes for a in _WORKSPACES.get(name, {}).values()) > _FAST_BYTES:
        return
    try:
        fast(*args)
    except Exception:  # noqa: BLE001 - a fast path Numba cannot compile: stay checked
        return
    fast.disable_compile()  # other argument types raise TypeError: the entry checks them
    _FAST.setdefault(name, set()).add(key)


def _reshape(site, a, shape):
    try:
        return a.reshape(shape)
    except ValueError:
        raise KernelError(site, f"cannot reshape {list(a.shape)} into {list(shape)}") from None


def _indices(site, idx, size, axis):
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx[(idx < 0) | (idx >= size)].flat[0]
        raise KernelError(
            site, f"index {bad} is out of range for axis {axis} of size {size} (0 to {size - 1})"
        )


def _uniform(seed, op_seed, step, shape, dtype):
    """As the reference: drawn in float64 from the stream (seed, op seed, step), then cast,
    below 1."""
    entropy = [v % 2**64 for v in (seed, op_seed, step)]
    draw = np.random.default_rng(entropy).random(shape)
    below_one = np.nextafter(dtype(1), dtype(0))
    return np.minimum(draw.astype(dtype), below_one)


def _finite(site, outputs, inputs):
    for k, o in enumerate(outputs):
        if o.dtype.kind == "f" and not np.isfinite(o).all():
            kind = "NaN" if np.isnan(o).any() else "an infinity"
            raise NonFiniteError(site, k, kind, inputs, outputs)
