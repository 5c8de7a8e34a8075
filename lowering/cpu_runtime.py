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
    if a.dtype.kind not in _KINDS[np.dtype(dtype).kind]:
        raise ArgumentError(f"{what} is {a.dtype}{list(a.shape)}, not {np.dtype(dtype)}")
    if a.ndim != len(shape) or any(s >= 0 and s != d for s, d in zip(shape, a.shape)):
        want = "[" + ", ".join("?" if s < 0 else str(s) for s in shape) + "]"
        raise ArgumentError(f"{what} has shape {list(a.shape)}, which does not fit {want}")
    if a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
        a = np.array(a, dtype=dtype, order="C")
    return a


_empty = np.empty

_WORKSPACES = {}
"""Buffers of each entry point, by (slot, shape): allocated once per shape, reused by every
call. The entry points are therefore not reentrant (one call at a time per process)."""


def _ws(ws, slot, shape, dtype):
    key = (slot, shape)
    a = ws.get(key)
    if a is None:
        a = ws[key] = _empty(shape, dtype)
    return a


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

# Convolution: per image, im2col from a zero-padded copy of the image (branch-free loops over
# a block that stays in cache) and one BLAS product straight into the output's NCHW rows.
# The `cols` scratch that the emitter sizes for the whole batch holds one image's columns.

HELPERS["_image_columns"] = '''
@njit(**JIT)
def _image_columns(x, n, c0, ph, pw, xp, KH, KW, sh, sw, dh, dw, OH, OW, cols):
    """cols[(c*KH + i)*KW + j, y*OW + z] = x[n, c0 + c, y*sh - ph + i*dh, z*sw - pw + j*dw],
    0 in the padding, for the xp.shape[0] channels from c0, through xp: those channels padded
    (a contiguous copy even without padding, so that the loops below know their strides).
    Only xp's interior is written: its border must be zeros already."""
    I = xp.shape[0]
    H, W = x.shape[2], x.shape[3]
    for c in range(I):
        for h in range(H):
            for w in range(W):
                xp[c, ph + h, pw + w] = x[n, c0 + c, h, w]
    if sw == 1 and dw == 1:  # unit strides as literals: the inner loop is a vector copy
        _im2col(xp, KH, KW, sh, 1, dh, 1, OH, OW, cols)
    else:
        _im2col(xp, KH, KW, sh, sw, dh, dw, OH, OW, cols)
'''

HELPERS["_im2col"] = '''
@njit(**JIT, inline="always")
def _im2col(xp, KH, KW, sh, sw, dh, dw, OH, OW, cols):
    """cols[(c*KH + i)*KW + j, y*OW + z] = xp[c, y*sh + i*dh, z*sw + j*dw]."""
    for c in range(xp.shape[0]):
        for i in range(KH):
            for j in range(KW):
                row = (c * KH + i) * KW + j
                for y in range(OH):
                    h = y * sh + i * dh
                    for z in range(OW):
                        cols[row, y * OW + z] = xp[c, h, z * sw + j * dw]
'''

HELPERS["_image_block"] = '''
@njit(**JIT)
def _image_block(cols, rows, P):
    """The first rows*P entries of the scratch `cols`, as a contiguous [rows, P] matrix."""
    return cols.reshape(-1)[: rows * P].reshape(rows, P)
'''

HELPERS["_conv2d"] = '''
@njit(**JIT)
def _conv2d(x, w, out, cols, res, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d per image and group: out[n, g] = w_g[og, I*KH*KW] @ columns[I*KH*KW, OH*OW]
    (`res` is unused here: the product lands in the output)."""
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    O, I, KH, KW = w.shape
    OH, OW = out.shape[2], out.shape[3]
    og, P, K = O // groups, OH * OW, I * KH * KW
    wm = w.reshape(O, K)
    cn = _image_block(cols, K, P)
    xp = np.zeros((I, H + 2 * ph, W + 2 * pw), x.dtype)
    for n in range(N):
        on = out[n].reshape(O, P)
        for g in range(groups):
            _image_columns(x, n, g * I, ph, pw, xp, KH, KW, sh, sw, dh, dw, OH, OW, cn)
            np.dot(wm[g * og : (g + 1) * og], cn, on[g * og : (g + 1) * og])
'''

HELPERS["_conv2d_grad_weight"] = '''
@njit(**JIT)
def _conv2d_grad_weight(x, dy, dwt, cols, dmat, res, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d_grad_weight: dw_g = sum over images of dy[n, g] @ columns^T (`dmat` is unused
    here: dy's rows are already in place)."""
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    O, I, KH, KW = dwt.shape
    OH, OW = dy.shape[2], dy.shape[3]
    og, P, K = O // groups, OH * OW, I * KH * KW
    d2 = dwt.reshape(O, K)
    d2[:] = 0
    cn = _image_block(cols, K, P)
    xp = np.zeros((I, H + 2 * ph, W + 2 * pw), x.dtype)
    for n in range(N):
        dn = dy[n].reshape(O, P)
        for g in range(groups):
            _image_columns(x, n, g * I, ph, pw, xp, KH, KW, sh, sw, dh, dw, OH, OW, cn)
            np.dot(dn[g * og : (g + 1) * og], cn.T, res)
            for o in range(og):
                for k in range(K):
                    d2[g * og + o, k] += res[o, k]
'''

HELPERS["_col2im"] = '''
@njit(**JIT, inline="always")
def _col2im(cols, KH, KW, sh, sw, dh, dw, OH, OW, dxp):
    """The transpose of _im2col: adds each column entry back to the dxp entry it came from."""
    for c in range(dxp.shape[0]):
        for i in range(KH):
            for j in range(KW):
                row = (c * KH + i) * KW + j
                for y in range(OH):
                    h = y * sh + i * dh
                    for z in range(OW):
                        dxp[c, h, z * sw + j * dw] += cols[row, y * OW + z]
'''

HELPERS["_conv2d_grad_input"] = '''
@njit(**JIT)
def _conv2d_grad_input(dy, w, dx, dcols, dmat, sh, sw, ph, pw, dh, dw, groups):
    """nn.conv2d_grad_input per image and group: columns = w_g^T @ dy[n, g], each added back
    to the (padded) input position it was read from (`dmat` is unused here)."""
    N, H, W = dx.shape[0], dx.shape[2], dx.shape[3]
    O, I, KH, KW = w.shape
    OH, OW = dy.shape[2], dy.shape[3]
    og, P, K = O // groups, OH * OW, I * KH * KW
    wm = w.reshape(O, K)
    cn = _image_block(dcols, K, P)
    dxp = np.empty((I, H + 2 * ph, W + 2 * pw), dx.dtype)
    for n in range(N):
        dn = dy[n].reshape(O, P)
        for g in range(groups):
            np.dot(wm[g * og : (g + 1) * og].T, dn[g * og : (g + 1) * og], cn)
            dxp[:] = 0
            if sw == 1 and dw == 1:  # as in _image_columns
                _col2im(cn, KH, KW, sh, 1, dh, 1, OH, OW, dxp)
            else:
                _col2im(cn, KH, KW, sh, sw, dh, dw, OH, OW, dxp)
            for c in range(I):
                for h in range(H):
                    for w in range(W):
                        dx[n, g * I + c, h, w] = dxp[c, ph + h, pw + w]
'''

# Pooling: each kernel calls its body, inlined (Numba IR), with the window as constants when it
# is one of COMMON_WINDOWS, so that LLVM unrolls the window loops (3-6x faster on 2x2).

COMMON_WINDOWS = ((2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 3, 2, 2, 0, 0), (3, 3, 1, 1, 1, 1))
"""(KH, KW, sh, sw, ph, pw) of the pooling windows with specialised code."""


def specialising(name: str, params: str, body: str, doc: str) -> str:
    """The source of kernel `name(params..., KH, KW, sh, sw, ph, pw)` calling `body` with the
    window as literals when it is a common one, else with the run-time values."""
    window = "KH, KW, sh, sw, ph, pw"
    lines = ["@njit(**JIT)", f"def {name}({params}, {window}):", f'    """{doc}"""']
    for k, common in enumerate(COMMON_WINDOWS):
        test = " and ".join(f"{v} == {c}" for v, c in zip(window.split(", "), common))
        lines += [f"    {'if' if k == 0 else 'elif'} {test}:"]
        lines += [f"        {body}({params}, {', '.join(map(str, common))})"]
    lines += ["    else:", f"        {body}({params}, {window})"]
    return "\n" + "\n".join(lines) + "\n"


HELPERS["_max_pool2d_body"] = '''
@njit(**JIT, inline="always")
def _max_pool2d_body(x, out, KH, KW, sh, sw, ph, pw):
    """Maximum over each window; the padding never wins; NaN propagates."""
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for y in range(OH):
                h0 = y * sh - ph
                inside = h0 >= 0 and h0 + KH <= H
                ilo, ihi = max(0, -h0), min(KH, H - h0)
                for z in range(OW):
                    w0 = z * sw - pw
                    if inside and w0 >= 0 and w0 + KW <= W:  # fixed loop bounds: unrolled
                        m = x[n, c, h0, w0]
                        for i in range(KH):
                            for j in range(KW):
                                v = x[n, c, h0 + i, w0 + j]
                                m = v if (v > m) | (v != v) else m
                        out[n, c, y, z] = m
                        continue
                    jlo, jhi = max(0, -w0), min(KW, W - w0)
                    m = x[n, c, h0 + ilo, w0 + jlo]
                    for i in range(ilo, ihi):
                        for j in range(jlo, jhi):
                            v = x[n, c, h0 + i, w0 + j]
                            m = v if (v > m) | (v != v) else m
                    out[n, c, y, z] = m
'''

HELPERS["_max_pool2d"] = specialising(
    "_max_pool2d", "x, out", "_max_pool2d_body", "nn.max_pool2d (see _max_pool2d_body)."
)

HELPERS["_max_pool2d_grad_body"] = '''
@njit(**JIT, inline="always")
def _max_pool2d_grad_body(x, dy, dx, KH, KW, sh, sw, ph, pw):
    """Each window's gradient goes to the first (row-major) position of its maximum,
    padding positions (-inf) included; overlapping windows add up."""
    N, C, H, W = x.shape
    OH, OW = dy.shape[2], dy.shape[3]
    if sh == KH and sw == KW and ph == 0 and pw == 0:
        _max_pool2d_grad_tiled(x, dy, dx, KH, KW)
        return
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

HELPERS["_max_pool2d_grad_tiled"] = '''
@njit(**JIT, inline="always")
def _max_pool2d_grad_tiled(x, dy, dx, KH, KW):
    """_max_pool2d_grad_body for windows that tile the input (stride = kernel, no padding):
    per row of windows, the winners first, then every dx entry of the band written once
    (contiguous stores instead of a zeroing pass and scattered adds)."""
    N, C, H, W = x.shape
    OH, OW = dy.shape[2], dy.shape[3]
    zero = dx.dtype.type(0)
    win = np.empty(OW, np.int64)
    for n in range(N):
        for c in range(C):
            for y in range(OH):
                h0 = y * KH
                for z in range(OW):
                    w0 = z * KW
                    top = x[n, c, h0, w0]
                    k = 0
                    for i in range(KH):
                        for j in range(KW):
                            v = x[n, c, h0 + i, w0 + j]
                            take = (v > top) | ((v != v) & (top == top))
                            top = v if take else top
                            k = i * KW + j if take else k
                    win[z] = k
                for i in range(KH):
                    for w in range(OW * KW):
                        q = w // KW
                        g = dy[n, c, y, q]  # loaded unconditionally: the loop vectorises
                        dx[n, c, h0 + i, w] = g if win[q] == i * KW + w - q * KW else zero
                    for w in range(OW * KW, W):
                        dx[n, c, h0 + i, w] = zero
            for h in range(OH * KH, H):
                for w in range(W):
                    dx[n, c, h, w] = zero
'''

HELPERS["_max_pool2d_grad"] = specialising(
    "_max_pool2d_grad",
    "x, dy, dx",
    "_max_pool2d_grad_body",
    "nn.max_pool2d_grad (see _max_pool2d_grad_body).",
)

HELPERS["_avg_pool2d_body"] = '''
@njit(**JIT, inline="always")
def _avg_pool2d_body(x, out, KH, KW, sh, sw, ph, pw):
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

HELPERS["_avg_pool2d"] = specialising(
    "_avg_pool2d", "x, out", "_avg_pool2d_body", "nn.avg_pool2d (see _avg_pool2d_body)."
)

HELPERS["_avg_pool2d_grad_body"] = '''
@njit(**JIT, inline="always")
def _avg_pool2d_grad_body(dy, dx, KH, KW, sh, sw, ph, pw):
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

HELPERS["_avg_pool2d_grad"] = specialising(
    "_avg_pool2d_grad",
    "dy, dx",
    "_avg_pool2d_grad_body",
    "nn.avg_pool2d_grad (see _avg_pool2d_grad_body).",
)

DEPENDS = {
    "_exp32": ("_f32_from_bits",),
    "_image_columns": ("_im2col",),
    "_conv2d": ("_image_columns", "_image_block"),
    "_conv2d_grad_input": ("_col2im", "_image_block"),
    "_conv2d_grad_weight": ("_image_columns", "_image_block"),
    "_max_pool2d": ("_max_pool2d_body",),
    "_max_pool2d_grad": ("_max_pool2d_grad_tiled", "_max_pool2d_grad_body"),
    "_avg_pool2d": ("_avg_pool2d_body",),
    "_avg_pool2d_grad": ("_avg_pool2d_grad_body",),
}
