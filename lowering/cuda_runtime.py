"""The fixed parts of a module emitted by `emit_cuda`: host helpers (device arrays, launch
configurations, argument checks, random draws, errors) and the hand-written `@cuda.jit` kernels
for matrix products inside convolutions, im2col, pooling and fills.

Everything here is source text copied into the emitted module, which imports only NumPy and
Numba. A helper whose name ends in `_k` is a kernel; the others run on the host and launch
kernels. Every kernel strides over its work with the whole grid, so the launch configuration
changes its speed, never its result. The kernels call no device functions and no integer
max/min: Numba compiles those for the current GPU, which ahead-of-time PTX has not got.
"""

from __future__ import annotations

from .cpu_runtime import PRELUDE as CPU_PRELUDE

ERRORS = CPU_PRELUDE[CPU_PRELUDE.index("class KernelError") : CPU_PRELUDE.index("_KINDS = ")].strip(
    "\n"
)
"""The error classes, as in the cpu module."""

WORKSPACES = CPU_PRELUDE[
    CPU_PRELUDE.index("_WORKSPACES = {}") : CPU_PRELUDE.index("_FAST = {}")
].strip("\n")
"""The workspace buffers, as in the cpu module (`_empty` allocates them on the device)."""

CHECKS = "\n\n\n".join(
    CPU_PRELUDE[CPU_PRELUDE.index(f"def {name}(") :].split("\n\n\n")[0].strip("\n")
    for name in ("_check", "_same", "_window_size")
)
"""Host checks of run-time sizes, as in the cpu module."""

PRELUDE = (
    '''
import math

import numpy as np
from numba import config as _numba_config
from numba import cuda

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
JIT = {"cache": True}
"""Options of every kernel: compiled code is cached beside this file (`__pycache__`)."""
NO_DEVICE = (
    "the cuda target needs an NVIDIA GPU with a working driver, or Numba's CUDA simulator "
    "(set NUMBA_ENABLE_CUDASIM=1 to run the kernels, slowly, on the CPU)"
)


class NoDeviceError(RuntimeError):
    """There is neither a usable GPU nor the simulator."""


'''
    + ERRORS
    + '''


_KINDS = {"f": "f", "i": "iu", "b": "b"}


_READY = []


def _require_device():
    """Checked once, at the first argument an entry point takes."""
    if not _READY:
        if not SIMULATOR and not cuda.is_available():
            raise NoDeviceError(NO_DEVICE)
        _READY.append(True)


def _on_device(a):
    return hasattr(a, "copy_to_host")


def _fits(a, dtype, shape, what):
    if a.dtype.kind not in _KINDS[np.dtype(dtype).kind]:
        raise ArgumentError(f"{what} is {a.dtype}{list(a.shape)}, not {np.dtype(dtype)}")
    if a.ndim != len(shape) or any(s >= 0 and s != d for s, d in zip(shape, a.shape)):
        want = "[" + ", ".join("?" if s < 0 else str(s) for s in shape) + "]"
        raise ArgumentError(f"{what} has shape {list(a.shape)}, which does not fit {want}")


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


'''
    + WORKSPACES
    + '''


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


'''
    + CHECKS
    + "\n"
)

HELPERS: dict[str, str] = {}
"""Hand-written kernels and their host launchers by name; `DEPENDS` says which others each one
uses, `SIGNATURES` the argument types of each kernel (`{f}`: the float type)."""

HELPERS["_matmul_k"] = '''
@cuda.jit(**JIT)
def _matmul_k(a, b, c, ta, tb):
    """c = op(a) @ op(b) for 2-d arrays, op transposing where `ta`/`tb`: each block computes
    `rows` x TILE tiles of c (striding over them; rows = blockDim.y <= TILE), through tiles of
    a and b in shared memory."""
    sa = cuda.shared.array((TILE, TILE), c.dtype)
    sb = cuda.shared.array((TILE, TILE), c.dtype)
    tx, ty, rows = cuda.threadIdx.x, cuda.threadIdx.y, cuda.blockDim.y
    m, n = c.shape
    k = a.shape[0] if ta else a.shape[1]
    tm, tn = (m + rows - 1) // rows, (n + TILE - 1) // TILE
    for tile in range(cuda.blockIdx.x, tm * tn, cuda.gridDim.x):
        i = tile // tn * rows + ty
        j = tile % tn * TILE + tx
        acc = c.dtype.type(0)
        for t0 in range(0, k, TILE):
            ka = t0 + tx
            if i < m and ka < k:
                sa[ty, tx] = a[ka, i] if ta else a[i, ka]
            else:
                sa[ty, tx] = 0
            for r in range(ty, TILE, rows):
                kb = t0 + r
                if j < n and kb < k:
                    sb[r, tx] = b[j, kb] if tb else b[kb, j]
                else:
                    sb[r, tx] = 0
            cuda.syncthreads()
            for q in range(k - t0 if k - t0 < TILE else TILE):
                acc += sa[ty, q] * sb[q, tx]
            cuda.syncthreads()
        if i < m and j < n:
            c[i, j] = acc
'''

HELPERS["_matmul"] = """
def _matmul(a, b, c, ta=False, tb=False):
    _matmul_k[_tile_grid(1, c.shape[0], c.shape[1])](a, b, c, ta, tb)
"""

HELPERS["_im2col_k"] = '''
@cuda.jit(**JIT)
def _im2col_k(x, c0, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols):
    """cols[(c*KH + i)*KW + j, (n*OH + y)*OW + z] = x[n, c0 + c, y*sh - ph + i*dh,
    z*sw - pw + j*dw], 0 in the padding."""
    H, W = x.shape[2], x.shape[3]
    P = OH * OW
    ncols = cols.shape[1]
    for t in range(cuda.grid(1), cols.shape[0] * ncols, cuda.gridsize(1)):
        row, col = t // ncols, t % ncols
        c, r = row // (KH * KW), row % (KH * KW)
        i, j = r // KW, r % KW
        n, p = col // P, col % P
        h = (p // OW) * sh - ph + i * dh
        w = (p % OW) * sw - pw + j * dw
        inside = 0 <= h < H and 0 <= w < W
        cols[row, col] = x[n, c0 + c, h, w] if inside else 0
'''

HELPERS["_col2im_k"] = '''
@cuda.jit(**JIT)
def _col2im_k(cols, c0, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, dx):
    """The transpose of _im2col_k, gathered: each element of channels c0 .. c0+I-1 of dx sums
    the column entries that read it (no atomics)."""
    N, H, W = dx.shape[0], dx.shape[2], dx.shape[3]
    P = OH * OW
    for t in range(cuda.grid(1), N * I * H * W, cuda.gridsize(1)):
        w = t % W
        h = (t // W) % H
        c = (t // (W * H)) % I
        n = t // (W * H * I)
        acc = dx.dtype.type(0)
        for i in range(KH):
            yy = h + ph - i * dh
            if yy < 0 or yy % sh != 0 or yy // sh >= OH:
                continue
            for j in range(KW):
                zz = w + pw - j * dw
                if zz < 0 or zz % sw != 0 or zz // sw >= OW:
                    continue
                acc += cols[(c * KH + i) * KW + j, n * P + (yy // sh) * OW + zz // sw]
        dx[n, c0 + c, h, w] = acc
'''

HELPERS["_nchw_k"] = '''
@cuda.jit(**JIT)
def _nchw_k(res, o0, out):
    """out[n, o0 + o, p] = res[o, n*P + p]: a group's product into NCHW order (out as
    [N, O, P])."""
    og, P = res.shape[0], out.shape[2]
    for t in range(cuda.grid(1), out.shape[0] * og * P, cuda.gridsize(1)):
        p = t % P
        o = (t // P) % og
        n = t // (P * og)
        out[n, o0 + o, p] = res[o, n * P + p]
'''

HELPERS["_gather_grad_k"] = '''
@cuda.jit(**JIT)
def _gather_grad_k(dy, g0, dmat):
    """dmat[o, n*P + p] = dy[n, g0 + o, p] for dy as [N, O, P]: the transpose of _nchw_k."""
    og, P = dmat.shape[0], dy.shape[2]
    for t in range(cuda.grid(1), dy.shape[0] * og * P, cuda.gridsize(1)):
        p = t % P
        o = (t // P) % og
        n = t // (P * og)
        dmat[o, n * P + p] = dy[n, g0 + o, p]
'''

HELPERS["_conv2d"] = '''
def _conv2d(x, w, out, cols, res, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d through im2col and one tiled product per group:
    res[og, N*P] = w_g[og, I*KH*KW] @ cols[I*KH*KW, N*P], then into NCHW order."""
    N = x.shape[0]
    O, I, KH, KW = w.shape
    OH, OW = out.shape[2], out.shape[3]
    og = O // groups
    wm = w.reshape(O, I * KH * KW)
    o3 = out.reshape(N, O, OH * OW)
    for g in range(groups):
        _im2col_k[_grid(cols.size)](x, g * I, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols)
        _matmul(wm[g * og : (g + 1) * og], cols, res)
        _nchw_k[_grid(N * og * OH * OW)](res, g * og, o3)
'''

HELPERS["_conv2d_grad_input"] = '''
def _conv2d_grad_input(dy, w, dx, dcols, dmat, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d_grad_input: dcols = w_g^T @ dy_g per group, then col2im into dx."""
    O, I, KH, KW = w.shape
    N, OH, OW = dy.shape[0], dy.shape[2], dy.shape[3]
    og = O // groups
    wm = w.reshape(O, I * KH * KW)
    d3 = dy.reshape(N, O, OH * OW)
    for g in range(groups):
        _gather_grad_k[_grid(dmat.size)](d3, g * og, dmat)
        _matmul(wm[g * og : (g + 1) * og], dmat, dcols, ta=True)
        _col2im_k[_grid(N * I * dx.shape[2] * dx.shape[3])](
            dcols, g * I, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, dx
        )
'''

HELPERS["_conv2d_grad_weight"] = '''
def _conv2d_grad_weight(x, dy, dwt, cols, dmat, res, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d_grad_weight: dw_g = dy_g @ cols^T per group (summed over the batch), written
    straight into dw's rows (`res` is unused here: the product needs no copy)."""
    O, I, KH, KW = dwt.shape
    N, OH, OW = dy.shape[0], dy.shape[2], dy.shape[3]
    og = O // groups
    d2 = dwt.reshape(O, I * KH * KW)
    d3 = dy.reshape(N, O, OH * OW)
    for g in range(groups):
        _im2col_k[_grid(cols.size)](x, g * I, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols)
        _gather_grad_k[_grid(dmat.size)](d3, g * og, dmat)
        _matmul(dmat, cols, d2[g * og : (g + 1) * og], tb=True)
'''


def _windows(image: str, pooled: str) -> str:
    """Kernel lines: a grid-stride loop over the pooling windows, one a position (n, c, y, z)
    of `pooled`, over `image`: h0, w0 its corner, [ilo, ihi) x [jlo, jhi) its rows and
    columns inside the image (no integer max/min, see the module's docstring)."""
    return f"""
    C, H, W = {image}.shape[1], {image}.shape[2], {image}.shape[3]
    OH, OW = {pooled}.shape[2], {pooled}.shape[3]
    for t in range(cuda.grid(1), {pooled}.shape[0] * C * OH * OW, cuda.gridsize(1)):
        z = t % OW
        y = (t // OW) % OH
        c = (t // (OW * OH)) % C
        n = t // (OW * OH * C)
        h0, w0 = y * sh - ph, z * sw - pw
        ilo = -h0 if h0 < 0 else 0
        ihi = H - h0 if H - h0 < KH else KH
        jlo = -w0 if w0 < 0 else 0
        jhi = W - w0 if W - w0 < KW else KW""".strip("\n")


HELPERS["_max_pool2d_k"] = f'''
@cuda.jit(**JIT)
def _max_pool2d_k(x, out, KH, KW, sh, sw, ph, pw):
    """Maximum over each window; the padding never wins; NaN propagates."""
{_windows("x", "out")}
        m = x[n, c, h0 + ilo, w0 + jlo]
        for i in range(ilo, ihi):
            for j in range(jlo, jhi):
                v = x[n, c, h0 + i, w0 + j]
                m = v if (v > m) | (v != v) else m
        out[n, c, y, z] = m
'''

HELPERS["_max_pool2d"] = """
def _max_pool2d(x, out, KH, KW, sh, sw, ph, pw):
    _max_pool2d_k[_grid(out.size)](x, out, KH, KW, sh, sw, ph, pw)
"""

HELPERS["_max_pool2d_grad_k"] = f'''
@cuda.jit(**JIT)
def _max_pool2d_grad_k(x, dy, dx, KH, KW, sh, sw, ph, pw):
    """Each window's gradient goes to the first (row-major) position of its maximum, added
    atomically (windows may overlap); a window whose maximum is padding adds nothing."""
{_windows("x", "dy")}
        best = -math.inf
        bh, bw = -1, -1
        for i in range(KH):
            for j in range(KW):
                h, w = h0 + i, w0 + j
                v = x[n, c, h, w] if 0 <= h < H and 0 <= w < W else -math.inf
                if bh < 0 or v > best or (v != v and best == best):
                    best, bh, bw = v, h, w
        if 0 <= bh < H and 0 <= bw < W:
            cuda.atomic.add(dx, (n, c, bh, bw), dy[n, c, y, z])
'''

HELPERS["_max_pool2d_grad"] = """
def _max_pool2d_grad(x, dy, dx, KH, KW, sh, sw, ph, pw):
    _fill(dx, 0)
    _max_pool2d_grad_k[_grid(dy.size)](x, dy, dx, KH, KW, sh, sw, ph, pw)
"""

HELPERS["_avg_pool2d_k"] = f'''
@cuda.jit(**JIT)
def _avg_pool2d_k(x, out, KH, KW, sh, sw, ph, pw):
    """Mean over each window; padded zeros count in the divisor."""
{_windows("x", "out")}
        s = out.dtype.type(0)
        for i in range(ilo, ihi):
            for j in range(jlo, jhi):
                s += x[n, c, h0 + i, w0 + j]
        out[n, c, y, z] = s / (KH * KW)
'''

HELPERS["_avg_pool2d"] = """
def _avg_pool2d(x, out, KH, KW, sh, sw, ph, pw):
    _avg_pool2d_k[_grid(out.size)](x, out, KH, KW, sh, sw, ph, pw)
"""

HELPERS["_avg_pool2d_grad_k"] = f'''
@cuda.jit(**JIT)
def _avg_pool2d_grad_k(dy, dx, KH, KW, sh, sw, ph, pw):
    """Each window's gradient, divided by the window size, added over the window."""
{_windows("dx", "dy")}
        share = dy[n, c, y, z] / (KH * KW)
        for i in range(ilo, ihi):
            for j in range(jlo, jhi):
                cuda.atomic.add(dx, (n, c, h0 + i, w0 + j), share)
'''

HELPERS["_avg_pool2d_grad"] = """
def _avg_pool2d_grad(dy, dx, KH, KW, sh, sw, ph, pw):
    _fill(dx, 0)
    _avg_pool2d_grad_k[_grid(dy.size)](dy, dx, KH, KW, sh, sw, ph, pw)
"""

DEPENDS = {
    "_matmul": ("_matmul_k",),
    "_conv2d": ("_im2col_k", "_matmul", "_nchw_k"),
    "_conv2d_grad_input": ("_gather_grad_k", "_matmul", "_col2im_k"),
    "_conv2d_grad_weight": ("_im2col_k", "_gather_grad_k", "_matmul"),
    "_max_pool2d": ("_max_pool2d_k",),
    "_max_pool2d_grad": ("_max_pool2d_grad_k",),
    "_avg_pool2d": ("_avg_pool2d_k",),
    "_avg_pool2d_grad": ("_avg_pool2d_grad_k",),
}

_WINDOW = ("int64",) * 6
SIGNATURES: dict[str, tuple[str, ...]] = {
    "_matmul_k": ("{f}[:, ::1]", "{f}[:, ::1]", "{f}[:, ::1]", "boolean", "boolean"),
    "_im2col_k": ("{f}[:, :, :, ::1]", *("int64",) * 12, "{f}[:, ::1]"),
    "_col2im_k": ("{f}[:, ::1]", *("int64",) * 12, "{f}[:, :, :, ::1]"),
    "_nchw_k": ("{f}[:, ::1]", "int64", "{f}[:, :, ::1]"),
    "_gather_grad_k": ("{f}[:, :, ::1]", "int64", "{f}[:, ::1]"),
    "_max_pool2d_k": ("{f}[:, :, :, ::1]", "{f}[:, :, :, ::1]", *_WINDOW),
    "_max_pool2d_grad_k": ("{f}[:, :, :, ::1]",) * 3 + _WINDOW,
    "_avg_pool2d_k": ("{f}[:, :, :, ::1]", "{f}[:, :, :, ::1]", *_WINDOW),
    "_avg_pool2d_grad_k": ("{f}[:, :, :, ::1]", "{f}[:, :, :, ::1]", *_WINDOW),
    "_fill_k": ("{f}[::1]", "int64"),
}
"""The argument types of the hand-written kernels (and of the prelude's `_fill_k`, which a
helper calling `_fill` launches), for compiling them ahead of time (PTX)."""
