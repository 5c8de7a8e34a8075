"""Stand-ins for the names that `host` finds in an emitted module at run time: there the
emitter writes SITES, and the target's host module defines `_empty`. They make `host` an
ordinary module, importable and testable. Never copied into an emitted module."""

import numpy as np

SITES: tuple[tuple[str, str, str], ...] = ()
"""Per call site of a kernel: (kernel, ops, location), which `KernelError` reports."""

_empty = np.empty
"""The allocator of workspaces: NumPy's on the cpu target, a device array's on the cuda one."""


def _put(destination, value):
    """Copy `value` into `destination` (a slice of a stacked loop output), on the target."""
    destination[...] = value


def _copy(a):
    """A copy of array `a`, on the target."""
    return a.copy()
