"""Host code that both targets' emitted modules share: errors, argument kinds, workspaces and
checks of run-time sizes.

The emitted module gets this module's code as text, after its own imports (see `text.body`);
the names imported here from `emitted` are the module's own there.
"""

import numpy as np

from .emitted import SITES, _copy, _empty, _put


class KernelError(ValueError):
    """A run-time error at one kernel call; `site` indexes SITES (kernel, ops, location)."""

    def __init__(self, site, message, inputs=(), outputs=()):
        kernel, ops, where = SITES[site]
        super().__init__(f"{where}: {ops}: {message}")
        self.site, self.message, self.inputs, self.outputs = site, message, inputs, outputs


class NonFiniteError(KernelError):
    """`check_finite=True` found a NaN or an infinity in output `output` of a kernel."""

    def __init__(self, site, output, kind, inputs, outputs):
        super().__init__(site, f"produced {kind}", inputs, outputs)
        self.output, self.kind = output, kind


class ArgumentError(ValueError):
    """An entry point was called with an argument that does not fit its type."""


_KINDS = {"f": "f", "i": "iu", "b": "b"}


def _fits(a, dtype, shape, what):
    """Raise ArgumentError unless array `a` has `dtype`'s kind and a shape that fits `shape`
    (-1: any size)."""
    if a.dtype.kind not in _KINDS[np.dtype(dtype).kind]:
        raise ArgumentError(f"{what} is {a.dtype}{list(a.shape)}, not {np.dtype(dtype)}")
    if a.ndim != len(shape) or any(s >= 0 and s != d for s, d in zip(shape, a.shape)):
        want = "[" + ", ".join("?" if s < 0 else str(s) for s in shape) + "]"
        raise ArgumentError(f"{what} has shape {list(a.shape)}, which does not fit {want}")


_WORKSPACES = {}
"""Buffers of each entry point, by (slot, shape): allocated once per shape, reused by every
call. The entry points are therefore not reentrant (one call at a time per process)."""


def _ws(ws, slot, shape, dtype):
    key = (slot, shape)
    a = ws.get(key)
    if a is None:
        a = ws[key] = _empty(shape, dtype)
    return a


def _scan(site, step, carries, xs, consts, ws, outs, reverse, options):
    """Run a loop: `step` (the emitted function of its step) once per index `t` of the
    sequences' leading axis, on the carries, each sequence's `[t]` and `consts`. It returns
    the next carries, then outputs that go to `[t]` of each stacked output. `outs` has, per
    output, its workspace slot in `ws` (None: a fresh array), its dtype and the shape of a
    step's part of it, for a loop of no steps. Returns the final carries, then the stacked
    outputs."""
    extent = xs[0].shape[0]
    if any(x.shape[0] != extent for x in xs):
        lengths = ", ".join(str(x.shape[0]) for x in xs)
        raise KernelError(site, f"the sequences have different lengths ({lengths})")
    if extent == 0:  # the initial carries, as copies the caller may keep
        empty = [_empty((0, *shape), dtype) for _, dtype, shape in outs]
        return (*(_copy(c) for c in carries), *empty)
    k = len(carries)
    stacked = None
    for t in range(extent - 1, -1, -1) if reverse else range(extent):
        values = step(*carries, *(x[t] for x in xs), *consts, **options)
        carries = values[:k]
        if stacked is None:  # the outputs' `?` sizes are known from the first step
            stacked = [_stack(ws, out, extent, v) for out, v in zip(outs, values[k:])]
        for out, value in zip(stacked, values[k:]):
            _put(out[t], value)
    return (*carries, *stacked)


def _stack(ws, out, extent, value):
    """The buffer of an output stacked over `extent` steps, of which `value` is one."""
    slot, dtype, _ = out
    shape = (extent, *value.shape)
    return _empty(shape, dtype) if slot is None else _ws(ws, slot, shape, dtype)


def _check(site, ok, message):
    if not ok:
        raise KernelError(site, message)


def _same(site, sizes, what):
    """Run-time sizes that the IR types assume equal (`?` dimensions)."""
    first = sizes[0]
    for s in sizes[1:]:
        if s != first:
            raise KernelError(site, f"{what}: run-time sizes {list(sizes)} differ")


def _window_size(site, out, kernel, stride, pad, dilation=1):
    """The input length a window op maps to `out` (stride 1 only, as the reference)."""
    if stride != 1:
        raise KernelError(site, "the result type must give the size of a `?` dimension")
    return out - 1 + dilation * (kernel - 1) + 1 - 2 * pad
