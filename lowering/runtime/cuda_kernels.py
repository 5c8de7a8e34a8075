"""The cuda target's hand-written kernels (`_k`) and the host functions that launch them: a
tiled matrix product, convolution through im2col, and pooling. An emitted module gets the
source of each function that it uses, and of the functions that one calls (see
`text.helpers`).

Every kernel strides over its work with the whole grid, so the launch configuration changes its
speed, never its result. The kernels call no device functions and no integer max/min: Numba
compiles those for the current GPU, which ahead-of-time PTX has not got.
"""

# O and I are a convolution's output and input channels, as are N, C, H, W in its docstrings.
# ruff: noqa: E741

import math

from numba import cuda

from .cuda_host import JIT, TILE, _fill, _grid, _tile_grid


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


def _matmul(a, b, c, ta=False, tb=False):
    _matmul_k[_tile_grid(1, c.shape[0], c.shape[1])](a, b, c, ta, tb)


# Convolution: im2col over the whole batch, one tiled product per group, and the products'
# columns into NCHW order (the gradients: the same steps transposed).


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


@cuda.jit(**JIT)
def _gather_grad_k(dy, g0, dmat):
    """dmat[o, n*P + p] = dy[n, g0 + o, p] for dy as [N, O, P]: the transpose of _nchw_k."""
    og, P = dmat.shape[0], dy.shape[2]
    for t in range(cuda.grid(1), dy.shape[0] * og * P, cuda.gridsize(1)):
        p = t % P
        o = (t // P) % og
        n = t // (P * og)
        dmat[o, n * P + p] = dy[n, g0 + o, p]


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


# Pooling: one thread a window, striding over them. Each kernel spells out the window's
# bounds (no device function, no integer max/min: see the module's docstring).


@cuda.jit(**JIT)
def _max_pool2d_k(x, out, KH, KW, sh, sw, ph, pw):
    """Maximum over each window; the padding never wins; NaN propagates."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    for t in range(cuda.grid(1), out.shape[0] * C * OH * OW, cuda.gridsize(1)):
        z = t % OW
        y = (t // OW) % OH
        c = (t // (OW * OH)) % C
        n = t // (OW * OH * C)
        h0, w0 = y * sh - ph, z * sw - pw
        ilo = -h0 if h0 < 0 else 0
        ihi = H - h0 if H - h0 < KH else KH
        jlo = -w0 if w0 < 0 else 0
        jhi = W - w0 if W - w0 < KW else KW
        m = x[n, c, h0 + ilo, w0 + jlo]
        for i in range(ilo, ihi):
            for j in range(jlo, jhi):
                v = x[n, c, h0 + i, w0 + j]
                m = v if (v > m) | (v != v) else m
        out[n, c, y, z] = m


def _max_pool2d(x, out, KH, KW, sh, sw, ph, pw):
    _max_pool2d_k[_grid(out.size)](x, out, KH, KW, sh, sw, ph, pw)


@cuda.jit(**JIT)
def _max_pool2d_grad_k(x, dy, dx, KH, KW, sh, sw, ph, pw):
    """Each window's gradient goes to the first (row-major) position of its maximum, added
    atomically (windows may overlap); a window whose maximum is padding adds nothing."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = dy.shape[2], dy.shape[3]
    for t in range(cuda.grid(1), dy.shape[0] * C * OH * OW, cuda.gridsize(1)):
        z = t % OW
        y = (t // OW) % OH
        c = (t // (OW * OH)) % C
        n = t // (OW * OH * C)
        h0, w0 = y * sh - ph, z * sw - pw
        best = -math.inf  # over the whole window: padding positions compete, as -inf
        bh, bw = -1, -1
        for i in range(KH):
            for j in range(KW):
                h, w = h0 + i, w0 + j
                v = x[n, c, h, w] if 0 <= h < H and 0 <= w < W else -math.inf
                if bh < 0 or v > best or (v != v and best == best):
                    best, bh, bw = v, h, w
        if 0 <= bh < H and 0 <= bw < W:
            cuda.atomic.add(dx, (n, c, bh, bw), dy[n, c, y, z])


def _max_pool2d_grad(x, dy, dx, KH, KW, sh, sw, ph, pw):
    _fill(dx, 0)
    _max_pool2d_grad_k[_grid(dy.size)](x, dy, dx, KH, KW, sh, sw, ph, pw)


@cuda.jit(**JIT)
def _avg_pool2d_k(x, out, KH, KW, sh, sw, ph, pw, incl):
    """Mean over each window; padded zeros count in the divisor if `incl`."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    for t in range(cuda.grid(1), out.shape[0] * C * OH * OW, cuda.gridsize(1)):
        z = t % OW
        y = (t // OW) % OH
        c = (t // (OW * OH)) % C
        n = t // (OW * OH * C)
        h0, w0 = y * sh - ph, z * sw - pw
        ilo = -h0 if h0 < 0 else 0
        ihi = H - h0 if H - h0 < KH else KH
        jlo = -w0 if w0 < 0 else 0
        jhi = W - w0 if W - w0 < KW else KW
        s = out.dtype.type(0)
        for i in range(ilo, ihi):
            for j in range(jlo, jhi):
                s += x[n, c, h0 + i, w0 + j]
        out[n, c, y, z] = s / (KH * KW if incl else (ihi - ilo) * (jhi - jlo))


def _avg_pool2d(x, out, KH, KW, sh, sw, ph, pw, incl):
    _avg_pool2d_k[_grid(out.size)](x, out, KH, KW, sh, sw, ph, pw, incl)


@cuda.jit(**JIT)
def _avg_pool2d_grad_k(dy, dx, KH, KW, sh, sw, ph, pw, incl):
    """Each window's gradient, divided by its divisor (the pool's), added over the window."""
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    OH, OW = dy.shape[2], dy.shape[3]
    for t in range(cuda.grid(1), dy.shape[0] * C * OH * OW, cuda.gridsize(1)):
        z = t % OW
        y = (t // OW) % OH
        c = (t // (OW * OH)) % C
        n = t // (OW * OH * C)
        h0, w0 = y * sh - ph, z * sw - pw
        ilo = -h0 if h0 < 0 else 0
        ihi = H - h0 if H - h0 < KH else KH
        jlo = -w0 if w0 < 0 else 0
        jhi = W - w0 if W - w0 < KW else KW
        share = dy[n, c, y, z] / (KH * KW if incl else (ihi - ilo) * (jhi - jlo))
        for i in range(ilo, ihi):
            for j in range(jlo, jhi):
                cuda.atomic.add(dx, (n, c, h0 + i, w0 + j), share)


def _avg_pool2d_grad(dy, dx, KH, KW, sh, sw, ph, pw, incl):
    _fill(dx, 0)
    _avg_pool2d_grad_k[_grid(dy.size)](dy, dx, KH, KW, sh, sw, ph, pw, incl)
