"""The fixed parts of a module emitted by `emit_cpu`: host helpers (argument checks, buffers,
random draws, errors) and the hand-written `@njit` kernels for convolution and pooling.

Everything here is source text copied into the emitted module, which imports only NumPy and
Numba. Helpers are copied only when a kernel uses them.
"""

from __future__ import annotations

PRELUDE = '''
import numpy as np
from numba import njit, prange

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
"""LLVM fast-math flags of the kernels: reordering and contraction only. Never `nnan`/`ninf`,
so NaN and Inf propagate as in NumPy and anomaly detection sees them."""

JIT = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}
"""Options of every kernel: compiled code is cached beside this file (`__pycache__`); a float
division by zero gives inf or NaN, as in NumPy, instead of raising."""


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


def _arg(value, dtype, shape, what):
    """`value` as a C-contiguous, writeable array of `dtype` whose shape fits `shape`
    (-1: any size)."""
    a = np.asarray(value)
    if a.dtype.kind not in _KINDS[np.dtype(dtype).kind]:
        raise ArgumentError(f"{what} is {a.dtype}{list(a.shape)}, not {np.dtype(dtype)}")
    if a.ndim != len(shape) or any(s >= 0 and s != d for s, d in zip(shape, a.shape)):
        want = "[" + ", ".join("?" if s < 0 else str(s) for s in shape) + "]"
        raise ArgumentError(f"{what} has shape {list(a.shape)}, which does not fit {want}")
    if a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
        a = np.array(a, dtype=dtype, order="C")
    return a


_WORKSPACES = {}
"""Buffers of each entry point, by (slot, shape): allocated once per shape, reused by every
call. The entry points are therefore not reentrant (one call at a time per process)."""


def _ws(ws, slot, shape, dtype):
    key = (slot, shape)
    a = ws.get(key)
    if a is None:
        a = ws[key] = np.empty(shape, dtype)
    return a


def _check(site, ok, message):
    if not ok:
        raise KernelError(site, message)


def _same(site, sizes, what):
    """Run-time sizes that the IR types assume equal (`?` dimensions)."""
    first = sizes[0]
    for s in sizes[1:]:
        if s != first:
            raise KernelError(site, f"{what}: run-time sizes {list(sizes)} differ")


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


def _window_size(site, out, kernel, stride, pad, dilation=1):
    """The input length a window op maps to `out` (stride 1 only, as the reference)."""
    if stride != 1:
        raise KernelError(site, "the result type must give the size of a `?` dimension")
    return out - 1 + dilation * (kernel - 1) + 1 - 2 * pad
'''

HELPERS: dict[str, str] = {}
"""Hand-written kernels by name; `DEPENDS` says which others each one calls."""

HELPERS["_f32_from_bits"] = '''
from llvmlite import ir as _ir
from numba import types as _types
from numba.extending import intrinsic


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 `bits` (an LLVM bitcast)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _ir.FloatType())

    return _types.float32(_types.int32), codegen
'''

HELPERS["_exp32"] = '''
@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _exp32(x):
    """float32 e**x that vectorises (Cephes expf: e**x = 2**n * e**r, |r| <= ln2/2, with a
    degree-5 polynomial); within 1 ulp of np.exp, the same inf, 0 and NaN. No reassociation:
    2**n is applied in two halves so that neither overflows."""
    c = np.float32(88.72283935546875) if x > np.float32(88.72283935546875) else x
    c = np.float32(-104.0) if c < np.float32(-104.0) else c
    n = np.floor(c * np.float32(1.44269504088896341) + np.float32(0.5))
    r = c - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    y = p * (r * r) + r + np.float32(1.0)
    k = np.int32(n)
    h = k >> np.int32(1)
    y = y * _f32_from_bits((h + np.int32(127)) << np.int32(23))
    y = y * _f32_from_bits((k - h + np.int32(127)) << np.int32(23))
    y = np.float32(np.inf) if x > np.float32(88.72283935546875) else y
    return x if x != x else y
'''

HELPERS["_tanh32"] = '''
@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _tanh32(x):
    """float32 tanh that vectorises (Eigen's rational approximation on [-7.9, 7.9]); within
    3 ulp of np.tanh, exactly +-1 beyond +-9, NaN for NaN."""
    c = np.float32(7.90531110763549805) if x > np.float32(7.90531110763549805) else x
    c = np.float32(-7.90531110763549805) if c < np.float32(-7.90531110763549805) else c
    x2 = c * c
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    y = (p * c) / q
    y = c if abs(c) < np.float32(0.0004) else y
    y = np.float32(1.0) if x > np.float32(9.0) else y
    return np.float32(-1.0) if x < np.float32(-9.0) else y
'''

HELPERS["_im2col"] = '''
@njit(**JIT)
def _im2col(x, c0, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols):
    """cols[(c*KH + i)*KW + j, (n*OH + y)*OW + z] = x[n, c0 + c, y*sh - ph + i*dh,
    z*sw - pw + j*dw], 0 in the padding."""
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    P = OH * OW
    for c in range(I):
        for i in range(KH):
            for j in range(KW):
                row = (c * KH + i) * KW + j
                # the output columns z whose input column lies inside [0, W)
                a = pw - j * dw
                zlo = min(OW, (a + sw - 1) // sw) if a > 0 else 0
                zhi = max(zlo, min(OW, (W - 1 + a) // sw + 1))
                for n in range(N):
                    for y in range(OH):
                        h = y * sh - ph + i * dh
                        base = n * P + y * OW
                        if h < 0 or h >= H:
                            for z in range(OW):
                                cols[row, base + z] = 0
                        else:
                            for z in range(zlo):
                                cols[row, base + z] = 0
                            for z in range(zlo, zhi):
                                cols[row, base + z] = x[n, c0 + c, h, z * sw - a]
                            for z in range(zhi, OW):
                                cols[row, base + z] = 0
'''

HELPERS["_col2im"] = '''
@njit(**JIT)
def _col2im(cols, c0, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, dx):
    """The transpose of _im2col: adds every column entry back to dx[n, c0 + c, h, w]."""
    N, H, W = dx.shape[0], dx.shape[2], dx.shape[3]
    P = OH * OW
    for n in range(N):
        for c in range(I):
            for i in range(KH):
                for j in range(KW):
                    row = (c * KH + i) * KW + j
                    a = pw - j * dw
                    zlo = min(OW, (a + sw - 1) // sw) if a > 0 else 0
                    zhi = max(zlo, min(OW, (W - 1 + a) // sw + 1))
                    for y in range(OH):
                        h = y * sh - ph + i * dh
                        if 0 <= h < H:
                            base = n * P + y * OW
                            for z in range(zlo, zhi):
                                dx[n, c0 + c, h, z * sw - a] += cols[row, base + z]
'''

HELPERS["_conv2d"] = '''
@njit(**JIT)
def _conv2d(x, w, out, cols, res, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d through im2col and one BLAS product per group:
    res[og, N*P] = w_g[og, I*KH*KW] @ cols[I*KH*KW, N*P]."""
    N = x.shape[0]
    O, I, KH, KW = w.shape
    OH, OW = out.shape[2], out.shape[3]
    og, P = O // groups, OH * OW
    wm = w.reshape(O, I * KH * KW)
    o3 = out.reshape(N, O, P)
    for g in range(groups):
        _im2col(x, g * I, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols)
        np.dot(wm[g * og : (g + 1) * og], cols, res)
        for n in range(N):
            for o in range(og):
                for p in range(P):
                    o3[n, g * og + o, p] = res[o, n * P + p]
'''

HELPERS["_gather_grad"] = '''
@njit(**JIT)
def _gather_grad(dy, g0, og, dmat):
    """dmat[o, n*P + p] = dy[n, g0 + o, p] for dy viewed as [N, O, P]."""
    N, P = dy.shape[0], dy.shape[2] * dy.shape[3]
    d3 = dy.reshape(N, dy.shape[1], P)
    for o in range(og):
        for n in range(N):
            for p in range(P):
                dmat[o, n * P + p] = d3[n, g0 + o, p]
'''

HELPERS["_conv2d_grad_input"] = '''
@njit(**JIT)
def _conv2d_grad_input(dy, w, dx, dcols, dmat, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d_grad_input: dcols = w_g^T @ dy_g per group, then col2im into dx."""
    O, I, KH, KW = w.shape
    OH, OW = dy.shape[2], dy.shape[3]
    og = O // groups
    wm = w.reshape(O, I * KH * KW)
    dx[:] = 0
    for g in range(groups):
        _gather_grad(dy, g * og, og, dmat)
        np.dot(wm[g * og : (g + 1) * og].T, dmat, dcols)
        _col2im(dcols, g * I, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, dx)
'''

HELPERS["_conv2d_grad_weight"] = '''
@njit(**JIT)
def _conv2d_grad_weight(x, dy, dwt, cols, dmat, res, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d_grad_weight: dw_g = dy_g @ cols^T per group (summed over the batch)."""
    O, I, KH, KW = dwt.shape
    OH, OW = dy.shape[2], dy.shape[3]
    og, K = O // groups, I * KH * KW
    d2 = dwt.reshape(O, K)
    for g in range(groups):
        _im2col(x, g * I, I, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols)
        _gather_grad(dy, g * og, og, dmat)
        np.dot(dmat, cols.T, res)
        for o in range(og):
            for k in range(K):
                d2[g * og + o, k] = res[o, k]
'''

HELPERS["_max_pool2d"] = '''
@njit(**JIT)
def _max_pool2d(x, out, KH, KW, sh, sw, ph, pw):
    """Maximum over each window; the padding never wins; NaN propagates."""
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for y in range(OH):
                h0 = y * sh - ph
                ilo, ihi = max(0, -h0), min(KH, H - h0)
                for z in range(OW):
                    w0 = z * sw - pw
                    jlo, jhi = max(0, -w0), min(KW, W - w0)
                    m = x[n, c, h0 + ilo, w0 + jlo]
                    for i in range(ilo, ihi):
                        for j in range(jlo, jhi):
                            v = x[n, c, h0 + i, w0 + j]
                            m = v if (v > m) | (v != v) else m
                    out[n, c, y, z] = m
'''

HELPERS["_max_pool2d_grad"] = '''
@njit(**JIT)
def _max_pool2d_grad(x, dy, dx, KH, KW, sh, sw, ph, pw):
    """Each window's gradient goes to the first (row-major) position of its maximum,
    padding positions (-inf) included; overlapping windows add up."""
    N, C, H, W = x.shape
    OH, OW = dy.shape[2], dy.shape[3]
    dx[:] = 0
    for n in range(N):
        for c in range(C):
            for y in range(OH):
                h0 = y * sh - ph
                for z in range(OW):
                    w0 = z * sw - pw
                    if h0 >= 0 and w0 >= 0 and h0 + KH <= H and w0 + KW <= W:
                        # inside the input: the first maximum (a NaN wins and stays),
                        # without branches
                        top = x[n, c, h0, w0]
                        k = 0
                        for i in range(KH):
                            for j in range(KW):
                                v = x[n, c, h0 + i, w0 + j]
                                take = (v > top) | ((v != v) & (top == top))
                                top = v if take else top
                                k = i * KW + j if take else k
                        dx[n, c, h0 + k // KW, w0 + k % KW] += dy[n, c, y, z]
                        continue
                    best = -np.inf
                    bh, bw = -1, -1
                    first = True
                    for i in range(KH):
                        h = h0 + i
                        for j in range(KW):
                            w = w0 + j
                            v = -np.inf
                            if 0 <= h < H and 0 <= w < W:
                                v = x[n, c, h, w]
                            if first or v > best or (v != v and best == best):
                                best, bh, bw, first = v, h, w, False
                    if 0 <= bh < H and 0 <= bw < W:
                        dx[n, c, bh, bw] += dy[n, c, y, z]
'''

HELPERS["_avg_pool2d"] = '''
@njit(**JIT)
def _avg_pool2d(x, out, KH, KW, sh, sw, ph, pw):
    """Mean over each window; padded zeros count in the divisor."""
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for y in range(OH):
                h0 = y * sh - ph
                ilo, ihi = max(0, -h0), min(KH, H - h0)
                for z in range(OW):
                    w0 = z * sw - pw
                    jlo, jhi = max(0, -w0), min(KW, W - w0)
                    s = 0.0
                    for i in range(ilo, ihi):
                        for j in range(jlo, jhi):
                            s += x[n, c, h0 + i, w0 + j]
                    out[n, c, y, z] = s / (KH * KW)
'''

HELPERS["_avg_pool2d_grad"] = '''
@njit(**JIT)
def _avg_pool2d_grad(dy, dx, KH, KW, sh, sw, ph, pw):
    """Each window's gradient, divided by the window size, spread over the window."""
    N, C, H, W = dx.shape
    OH, OW = dy.shape[2], dy.shape[3]
    dx[:] = 0
    for n in range(N):
        for c in range(C):
            for y in range(OH):
                h0 = y * sh - ph
                ilo, ihi = max(0, -h0), min(KH, H - h0)
                for z in range(OW):
                    w0 = z * sw - pw
                    jlo, jhi = max(0, -w0), min(KW, W - w0)
                    share = dy[n, c, y, z] / (KH * KW)
                    for i in range(ilo, ihi):
                        for j in range(jlo, jhi):
                            dx[n, c, h0 + i, w0 + j] += share
'''

DEPENDS = {
    "_exp32": ("_f32_from_bits",),
    "_conv2d": ("_im2col",),
    "_conv2d_grad_input": ("_gather_grad", "_col2im"),
    "_conv2d_grad_weight": ("_im2col", "_gather_grad"),
}
