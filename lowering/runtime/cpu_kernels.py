"""The cpu target's hand-written kernels: fast float32 exp and tanh, convolution (im2col and
BLAS) and pooling. An emitted module gets the source of each function that it uses, with the
imports that its own lack (see `text.helpers`), and of the functions that one calls.
"""

# O and I are a convolution's output and input channels, as are N, C, H, W in its docstrings.
# ruff: noqa: E741

import numpy as np
from llvmlite import ir as _ir
from numba import njit
from numba import types as _types
from numba.extending import intrinsic

from .cpu_host import JIT


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 `bits` (an LLVM bitcast)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _ir.FloatType())

    return _types.float32(_types.int32), codegen


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _exp32(x):
    """float32 e**x that vectorises (Cephes expf: e**x = 2**n * e**r, |r| <= ln2/2, with a
    degree-5 polynomial); within 1 ulp of e**x, with np.exp's inf, 0 and NaN. No
    reassociation: 2**n is applied in two halves so that neither overflows."""
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


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _tanh32(x):
    """float32 tanh that vectorises (Eigen's rational approximation on [-7.9, 7.9]); within
    5 ulp of tanh, exactly +-1 beyond +-9, NaN for NaN."""
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


# Convolution: per image, im2col from a zero-padded copy of the image (branch-free loops over
# a block that stays in cache) and one BLAS product straight into the output's NCHW rows.
# The `cols` scratch that the emitter sizes for the whole batch holds one image's columns.


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


@njit(**JIT)
def _image_block(cols, rows, P):
    """The first rows*P entries of the scratch `cols`, as a contiguous [rows, P] matrix."""
    return cols.reshape(-1)[: rows * P].reshape(rows, P)


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


# Pooling: each kernel calls its body, inlined (Numba IR). An emitted module gets the kernel
# specialised for each window it uses (`cpu_runtime.specialised`): the window as constants, so
# that LLVM unrolls the window loops (3-6x faster on 2x2), and only the branch it takes.


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


@njit(**JIT)
def _max_pool2d(x, out, KH, KW, sh, sw, ph, pw):
    """nn.max_pool2d (see _max_pool2d_body)."""
    _max_pool2d_body(x, out, KH, KW, sh, sw, ph, pw)


@njit(**JIT, inline="always")
def _max_pool2d_grad_body(x, dy, dx, KH, KW, sh, sw, ph, pw):
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


@njit(**JIT)
def _max_pool2d_grad(x, dy, dx, KH, KW, sh, sw, ph, pw):
    """nn.max_pool2d_grad (see _max_pool2d_grad_body), tiled where the windows tile."""
    if sh == KH and sw == KW and ph == 0 and pw == 0:
        _max_pool2d_grad_tiled(x, dy, dx, KH, KW)
    else:
        _max_pool2d_grad_body(x, dy, dx, KH, KW, sh, sw, ph, pw)


@njit(**JIT, inline="always")
def _avg_pool2d_body(x, out, KH, KW, sh, sw, ph, pw, incl):
    """Mean over each window; padded zeros count in the divisor if `incl`."""
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
                    out[n, c, y, z] = s / (KH * KW if incl else (ihi - ilo) * (jhi - jlo))


@njit(**JIT)
def _avg_pool2d(x, out, KH, KW, sh, sw, ph, pw, incl):
    """nn.avg_pool2d (see _avg_pool2d_body)."""
    _avg_pool2d_body(x, out, KH, KW, sh, sw, ph, pw, incl)


@njit(**JIT, inline="always")
def _avg_pool2d_grad_body(dy, dx, KH, KW, sh, sw, ph, pw, incl):
    """Each window's gradient, divided by its divisor (the pool's), spread over the window."""
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
                    share = dy[n, c, y, z] / (KH * KW if incl else (ihi - ilo) * (jhi - jlo))
                    for i in range(ilo, ihi):
                        for j in range(jlo, jhi):
                            dx[n, c, h0 + i, w0 + j] += share


@njit(**JIT)
def _avg_pool2d_grad(dy, dx, KH, KW, sh, sw, ph, pw, incl):
    """nn.avg_pool2d_grad (see _avg_pool2d_grad_body)."""
    _avg_pool2d_grad_body(dy, dx, KH, KW, sh, sw, ph, pw, incl)
