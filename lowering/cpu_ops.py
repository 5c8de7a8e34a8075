"""The cpu target's lowering of the `nn` ops that are neither a fused loop nest (elementwise
ops and reductions, `loop_nest.py`) nor a matmul: one function per op class, registered in
`CPU_LOWERINGS` next to it. Each writes one site: its output buffers, the run-time checks of
its sizes, and the call of a generated kernel (layout ops, softmax, argmax) or of a hand-written
one from the runtime (convolution, pooling).

The cuda target inherits these rules (`CUDA_LOWERINGS` falls back to this registry) and changes
only the `FunctionEmitter` hooks they call: the loops, zeroing, accumulation and the runtime
whose helpers they name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xdsl.ir import Operation, SSAValue

from irnet.diagnostics import IrnError, error_at
from irnet.dialects import nn
from irnet.dialects.registry import Registry
from irnet.dialects.shapes import DYN, format_type, window_span

from .emit_function import FunctionEmitter
from .source import arith, index_src, shape_of, tuple_src

CPU_LOWERINGS: Registry[Callable[[FunctionEmitter, Operation], None]] = Registry("cpu lowering")


@CPU_LOWERINGS.register(nn.ConstantOp)
def lower_constant(f: FunctionEmitter, op: nn.ConstantOp) -> None:
    f.names[op.res] = f.m.constant(op)
    f.const_roots.add(op.res)


@CPU_LOWERINGS.register(nn.TrainingOp)
def lower_training(f: FunctionEmitter, op: nn.TrainingOp) -> None:
    f.uses_training = True
    f.names[op.res] = "v_training"


CPU_LOWERINGS.register(nn.ScanOp)(FunctionEmitter.scan_site)


@CPU_LOWERINGS.register(nn.MatmulOp)
def lower_matmul(f: FunctionEmitter, op: nn.MatmulOp) -> None:
    """A matmul that fusion left alone: a matmul site without epilogue."""
    f.matmul_site(op, [op], {v: v for v in op.operands}, list(op.results))


def undetermined_size(op: Operation, d: int) -> IrnError:
    return error_at(
        f"{op.name}: dimension {d} of the result type {format_type(op.results[0].type)} is "
        "`?`, and the operands do not determine its size; the result type must give it",
        op.location,
    )


def simple_site(
    f: FunctionEmitter,
    op: Operation,
    kernel: str,
    args: Sequence[str],
    outs: Sequence[str],
    ins: Sequence[SSAValue],
) -> None:
    site = len(f.m.sites)
    index = f.new_site(kernel, op, [op], list(ins), list(op.results))
    assert index == site
    f.call(site, kernel, args, outs, [f.name(v) for v in ins])


def generated(
    f: FunctionEmitter, op: Operation, base: str, params: Sequence[str], body: list[str]
) -> str:
    text = "\n".join([*f.m.kernel_head(params), *body])
    return f.m.kernel(text, base, [op])


@CPU_LOWERINGS.register(nn.ReshapeOp)
def lower_reshape(f: FunctionEmitter, op: nn.ReshapeOp) -> None:
    site = f.new_site("reshape", op, [op], [op.input], [op.res])
    shape = tuple_src([-1 if d == DYN else d for d in shape_of(op.res)])
    name = f.new_name(op.res)
    f.line(f"{name} = _reshape({site}, {f.name(op.input)}, {shape})")


@CPU_LOWERINGS.register(nn.RandomUniformOp)
def lower_random_uniform(f: FunctionEmitter, op: nn.RandomUniformOp) -> None:
    f.new_site("_uniform", op, [op], [op.input], [op.res])
    name = f.new_name(op.res)
    seed = nn.get_int(op.properties, "seed")
    dtype = f.m.np_type(op.res.type)
    f.line(f"{name} = _uniform(seed, {seed}, step, {f.name(op.input)}.shape, {dtype})")


@CPU_LOWERINGS.register(nn.TransposeOp)
def lower_transpose(f: FunctionEmitter, op: nn.TransposeOp) -> None:
    perm = nn.get_ints(op.properties, "perm")
    rank = len(perm)
    out = f.alloc(op, 0, op.res, [f.dim(op.input, p) for p in perm])
    idx = [f"i{perm.index(k)}" for k in range(rank)]
    body = f.loops("o", rank, [f"o{index_src([f'i{d}' for d in range(rank)])} = a{index_src(idx)}"])
    kernel = generated(f, op, "transpose", ["a", "o"], body)
    simple_site(f, op, kernel, [f.name(op.input), out], [out], [op.input])


@CPU_LOWERINGS.register(nn.ConcatOp)
def lower_concat(f: FunctionEmitter, op: nn.ConcatOp) -> None:
    inputs = list(op.inputs)
    rank = len(shape_of(op.res))
    axis = nn.get_int(op.properties, "axis") % rank
    site = len(f.m.sites)
    shape = []
    for d in range(rank):
        if d == axis:
            sizes = [f.dim(v, d) for v in inputs]
            static = shape_of(op.res)[d]
            shape.append(str(static) if static != DYN else " + ".join(sizes))
        else:
            exprs = [f.dim(v, d) for v in inputs]
            if shape_of(op.res)[d] != DYN:
                exprs = [str(shape_of(op.res)[d]), *exprs]
            f.check_same(site, exprs, f"dimension {d}")
            shape.append(exprs[0])
    out = f.alloc(op, 0, op.res, shape)
    body = ["    off = 0"]
    params = []
    for k in range(len(inputs)):
        params.append(f"a{k}")
        idx_in = [f"i{d}" for d in range(rank)]
        idx_out = [f"off + i{d}" if d == axis else f"i{d}" for d in range(rank)]
        body += f.loops(f"a{k}", rank, [f"o{index_src(idx_out)} = a{k}{index_src(idx_in)}"])
        body.append(f"    off += a{k}.shape[{axis}]")
    kernel = generated(f, op, "concat", [*params, "o"], body)
    simple_site(f, op, kernel, [*(f.name(v) for v in inputs), out], [out], inputs)


def slice_bounds(op: Operation) -> list[tuple[int, int, int]]:
    starts, stops, steps = (nn.get_ints(op.properties, k) for k in ("starts", "stops", "steps"))
    return list(zip(starts, stops, steps))


@CPU_LOWERINGS.register(nn.SliceOp)
def lower_slice(f: FunctionEmitter, op: nn.SliceOp) -> None:
    site = len(f.m.sites)
    x = op.input
    shape = []
    for d, (start, stop, step) in enumerate(slice_bounds(op)):
        size = f.dim(x, d)
        stop_src = size if stop == nn.SLICE_END else f"min({stop}, {size})"
        length = f"max(0, ({stop_src} - {start} + {step - 1}) // {step})"
        static = shape_of(op.res)[d]
        if static == DYN:
            shape.append(length)
        else:
            if shape_of(x)[d] == DYN:
                f.line(
                    f"_check({site}, {length} == {static}, "
                    f"'dimension {d} of the input is too small for the slice')"
                )
            shape.append(str(static))
    out = f.alloc(op, 0, op.res, shape)
    rank = len(shape)
    bounds = slice_bounds(op)
    params = ["a", "o", *(f"s{d}" for d in range(rank)), *(f"t{d}" for d in range(rank))]
    idx = [f"s{d} + i{d} * t{d}" for d in range(rank)]
    body = f.loops("o", rank, [f"o{index_src([f'i{d}' for d in range(rank)])} = a{index_src(idx)}"])
    kernel = generated(f, op, "slice", params, body)
    args = [f.name(x), out, *(str(b[0]) for b in bounds), *(str(b[2]) for b in bounds)]
    simple_site(f, op, kernel, args, [out], [x])


@CPU_LOWERINGS.register(nn.SliceGradOp)
def lower_slice_grad(f: FunctionEmitter, op: nn.SliceGradOp) -> None:
    site = len(f.m.sites)
    g = op.input
    shape = []
    bounds = slice_bounds(op)
    for d, (start, stop, step) in enumerate(bounds):
        static = shape_of(op.res)[d]
        if static != DYN:
            shape.append(str(static))
        elif stop == nn.SLICE_END and step == 1:
            shape.append(f"{start} + {f.dim(g, d)}")
        else:
            raise undetermined_size(op, d)
    for d, (start, stop, step) in enumerate(bounds):
        if shape_of(g)[d] == DYN:
            stop_src = shape[d] if stop == nn.SLICE_END else f"min({stop}, {shape[d]})"
            length = f"max(0, ({stop_src} - {start} + {step - 1}) // {step})"
            f.line(
                f"_check({site}, {f.dim(g, d)} == {length}, "
                f"'dimension {d} of the gradient does not fit the slice')"
            )
    out = f.alloc(op, 0, op.res, shape)
    rank = len(shape)
    params = ["g", "o", *(f"s{d}" for d in range(rank)), *(f"t{d}" for d in range(rank))]
    idx = [f"s{d} + i{d} * t{d}" for d in range(rank)]
    body = f.zero_first(out, "o")
    body += f.loops(
        "g", rank, [f"o{index_src(idx)} = g{index_src([f'i{d}' for d in range(rank)])}"]
    )
    kernel = generated(f, op, "slice_grad", params, body)
    args = [f.name(g), out, *(str(b[0]) for b in bounds), *(str(b[2]) for b in bounds)]
    simple_site(f, op, kernel, args, [out], [g])


@CPU_LOWERINGS.register(nn.GatherOp)
def lower_gather(f: FunctionEmitter, op: nn.GatherOp) -> None:
    x, idx = op.input, op.indices
    xs, qs = shape_of(x), shape_of(idx)
    axis = nn.get_int(op.properties, "axis") % len(xs)
    site = len(f.m.sites)
    f.line(f"_indices({site}, {f.name(idx)}, {f.dim(x, axis)}, {axis})")
    shape = [
        *(f.dim(x, k) for k in range(axis)),
        *(f.dim(idx, k) for k in range(len(qs))),
        *(f.dim(x, k) for k in range(axis + 1, len(xs))),
    ]
    out = f.alloc(op, 0, op.res, shape)
    rank = len(shape)
    ov = [f"i{d}" for d in range(rank)]
    iv = ov[axis : axis + len(qs)]
    xi = [*ov[:axis], f"q{index_src(iv)}", *ov[axis + len(qs) :]]
    body = f.loops("o", rank, [f"o{index_src(ov)} = x{index_src(xi)}"])
    kernel = generated(f, op, "gather", ["x", "q", "o"], body)
    simple_site(f, op, kernel, [f.name(x), f.name(idx), out], [out], [x, idx])


@CPU_LOWERINGS.register(nn.ScatterAddOp)
def lower_scatter_add(f: FunctionEmitter, op: nn.ScatterAddOp) -> None:
    g, idx = op.grad, op.indices
    gs, qs = shape_of(g), shape_of(idx)
    rs = shape_of(op.res)
    rank = len(rs)
    axis = nn.get_int(op.properties, "axis") % rank
    site = len(f.m.sites)
    shape = []
    for d, size in enumerate(rs):
        if size != DYN:
            shape.append(str(size))
        elif d < axis:
            shape.append(f.dim(g, d))
        elif d > axis:
            shape.append(f.dim(g, d - 1 + len(qs)))
        else:
            raise undetermined_size(op, d)
    f.line(f"_indices({site}, {f.name(idx)}, {shape[axis]}, {axis})")
    out = f.alloc(op, 0, op.res, shape)
    grank = len(gs)
    gv = [f"i{d}" for d in range(grank)]
    iv = gv[axis : axis + len(qs)]
    oi = [*gv[:axis], f"q{index_src(iv)}", *gv[axis + len(qs) :]]
    body = f.zero_first(out, "o")
    body += f.loops("g", grank, [f.accumulate(f"o{index_src(oi)}", f"g{index_src(gv)}")])
    kernel = generated(f, op, "scatter_add", ["g", "q", "o"], body)
    simple_site(f, op, kernel, [f.name(g), f.name(idx), out], [out], [g, idx])


@CPU_LOWERINGS.register(nn.ArgmaxOp)
def lower_argmax(f: FunctionEmitter, op: nn.ArgmaxOp) -> None:
    x = op.input
    xs = shape_of(x)
    rank = len(xs)
    if rank == 0:
        out = f.alloc(op, 0, op.res, [])
        body = ["    o[()] = 0"]
        kernel = generated(f, op, "argmax", ["x", "o"], body)
        simple_site(f, op, kernel, [f.name(x), out], [out], [x])
        return
    axis = nn.get_int(op.properties, "axis") % rank
    out = f.alloc(op, 0, op.res, [f.dim(x, k) for k in range(rank) if k != axis])
    ov = [f"i{d}" for d in range(rank - 1)]
    at = lambda t: index_src([*ov[:axis], t, *ov[axis:]])  # noqa: E731
    inner = [
        f"best = x{at('0')}",
        "bi = 0",
        f"for t in range(1, x.shape[{axis}]):",
        f"    v = x{at('t')}",
        "    take = (v > best) | ((v != v) & (best == best))",
        "    best = v if take else best",
        "    bi = t if take else bi",
        f"o{index_src(ov)} = bi",
    ]
    body = f.loops("o", rank - 1, inner)
    kernel = generated(f, op, "argmax", ["x", "o"], body)
    simple_site(f, op, kernel, [f.name(x), out], [out], [x])


def softmax(f: FunctionEmitter, op: Operation, log: bool) -> None:
    x = op.operands[0]
    xs = shape_of(x)
    rank = len(xs)
    out = f.alloc(op, 0, op.results[0], f.dims(x))
    dtype = f.m.np_type(x.type)
    lit = f.m.literal
    exp, ln = f.m.math("exp", dtype), f.m.math("log", dtype)
    if rank == 0:  # 1 (0 for log) where x is finite
        e = f"{exp}(x[()] - x[()])"
        expr = f"(x[()] - x[()]) - {ln}({e})" if log else f"{e} / {e}"
        body = f.loops_over([], [f"o[()] = {expr}"])
    else:
        axis = nn.get_int(op.properties, "axis") % rank
        ov = [f"i{d}" for d in range(rank - 1)]
        at = lambda t: index_src([*ov[:axis], t, *ov[axis:]])  # noqa: E731
        inner = [
            f"m = x{at('0')}",
            f"for t in range(1, x.shape[{axis}]):",
            f"    v = x{at('t')}",
            "    m = v if (v > m) | (v != v) else m",
            f"s = {lit(0, dtype)}",
            f"for t in range(x.shape[{axis}]):",
            f"    e = {exp}(x{at('t')} - m)",
            "    s += e",
        ]
        if not log:
            inner.append(f"    o{at('t')} = e")
        if log:
            inner += [
                f"ls = {ln}(s)",
                f"for t in range(x.shape[{axis}]):",
                f"    o{at('t')} = (x{at('t')} - m) - ls",
            ]
        else:
            inner += [
                f"for t in range(x.shape[{axis}]):",
                f"    o{at('t')} = o{at('t')} / s",
            ]
        rows = [f"x.shape[{d if d < axis else d + 1}]" for d in range(rank - 1)]
        body = f.loops_over(rows, inner)
    kernel = generated(f, op, "log_softmax" if log else "softmax", ["x", "o"], body)
    simple_site(f, op, kernel, [f.name(x), out], [out], [x])


@CPU_LOWERINGS.register(nn.SoftmaxOp)
def lower_softmax(f: FunctionEmitter, op: nn.SoftmaxOp) -> None:
    softmax(f, op, log=False)


@CPU_LOWERINGS.register(nn.LogSoftmaxOp)
def lower_log_softmax(f: FunctionEmitter, op: nn.LogSoftmaxOp) -> None:
    softmax(f, op, log=True)


# convolution and pooling (hand-written kernels)


def window(op: Operation) -> tuple[tuple[int, int], ...]:
    names = (
        ("kernel", "stride", "padding")
        if "kernel" in op.properties
        else (
            "stride",
            "padding",
            "dilation",
        )
    )
    return tuple(tuple(nn.get_ints(op.properties, n)) for n in names)  # type: ignore[misc]


def out_size(f: FunctionEmitter, value: SSAValue, axis: int, result: SSAValue, k, s, p, d=1) -> str:
    """`shapes.window_output_size` of `value`'s `axis` as source (its static size if known)."""
    static = shape_of(result)[axis]
    if static != DYN:
        return str(static)
    return f"({f.dim(value, axis)} + {2 * p - window_span(k, d)}) // {s} + 1"


@CPU_LOWERINGS.register(nn.Conv2dOp)
def lower_conv2d(f: FunctionEmitter, op: nn.Conv2dOp) -> None:
    x, w = op.input, op.weight
    (sh, sw), (ph, pw), (dh, dw) = window(op)
    groups = nn.get_int(op.properties, "groups")
    site = len(f.m.sites)
    ws = shape_of(w)
    kh, kw = ws[2], ws[3]
    f.check_same(site, [f.dim(x, 1), arith(groups, "*", f.dim(w, 1))], "channels")
    oh = out_size(f, x, 2, op.res, kh, sh, ph, dh)
    ow = out_size(f, x, 3, op.res, kw, sw, pw, dw)
    out = f.alloc(op, 0, op.res, [f.dim(x, 0), f.dim(w, 0), oh, ow])
    dtype = f.m.np_type(op.res.type)
    k = arith(f.dim(w, 1), "*", kh * kw)
    npix = f"{out}.shape[0] * {out}.shape[2] * {out}.shape[3]"
    cols = f.scratch(site, 0, [k, npix], dtype)
    res = f.scratch(site, 1, [arith(f.dim(w, 0), "//", groups), npix], dtype)
    conv_call(f, op, "_conv2d", [x, w], out, [cols, res])


def conv_call(
    f: FunctionEmitter,
    op: Operation,
    helper: str,
    ins: list[SSAValue],
    out: str,
    scratch: list[str],
) -> None:
    """Call a convolution helper: operands, output, scratch buffers, then the window."""
    (sh, sw), (ph, pw), (dh, dw) = window(op)
    props = [sh, sw, ph, pw, dh, dw, nn.get_int(op.properties, "groups")]
    args = [*(f.name(v) for v in ins), out, *scratch, *map(str, props)]
    simple_site(f, op, f.m.helper(helper), args, [out], ins)


@CPU_LOWERINGS.register(nn.Conv2dGradInputOp)
def lower_conv2d_grad_input(f: FunctionEmitter, op: nn.Conv2dGradInputOp) -> None:
    g, w = op.grad, op.weight
    (sh, sw), (ph, pw), (dh, dw) = window(op)
    groups = nn.get_int(op.properties, "groups")
    site = len(f.m.sites)
    rs, ws = shape_of(op.res), shape_of(w)
    kh, kw = ws[2], ws[3]
    shape = [
        str(rs[0]) if rs[0] != DYN else f.dim(g, 0),
        str(rs[1]) if rs[1] != DYN else arith(groups, "*", f.dim(w, 1)),
    ]
    for axis, (kk, s, p, d) in ((2, (kh, sh, ph, dh)), (3, (kw, sw, pw, dw))):
        if rs[axis] != DYN:
            shape.append(str(rs[axis]))
        else:
            shape.append(f"_window_size({site}, {f.dim(g, axis)}, {kk}, {s}, {p}, {d})")
    f.check_same(site, [f.dim(g, 1), f.dim(w, 0)], "output channels")
    out = f.alloc(op, 0, op.res, shape)
    dtype = f.m.np_type(op.res.type)
    npix = f"{f.name(g)}.shape[0] * {f.name(g)}.shape[2] * {f.name(g)}.shape[3]"
    dcols = f.scratch(site, 0, [arith(f.dim(w, 1), "*", kh * kw), npix], dtype)
    dmat = f.scratch(site, 1, [arith(f.dim(w, 0), "//", groups), npix], dtype)
    conv_call(f, op, "_conv2d_grad_input", [g, w], out, [dcols, dmat])


@CPU_LOWERINGS.register(nn.Conv2dGradWeightOp)
def lower_conv2d_grad_weight(f: FunctionEmitter, op: nn.Conv2dGradWeightOp) -> None:
    x, g = op.input, op.grad
    groups = nn.get_int(op.properties, "groups")
    site = len(f.m.sites)
    rs = shape_of(op.res)
    if DYN in rs[2:]:
        raise error_at(
            f"{op.name}: the result type {format_type(op.res.type)} must give the kernel size",
            op.location,
        )
    shape = [
        str(rs[0]) if rs[0] != DYN else f.dim(g, 1),
        str(rs[1]) if rs[1] != DYN else arith(f.dim(x, 1), "//", groups),
        str(rs[2]),
        str(rs[3]),
    ]
    f.check_same(site, [f.dim(x, 0), f.dim(g, 0)], "batch")
    out = f.alloc(op, 0, op.res, shape)
    dtype = f.m.np_type(op.res.type)
    kh, kw = rs[2], rs[3]
    k = f"{out}.shape[1] * {kh * kw}"
    npix = f"{f.name(g)}.shape[0] * {f.name(g)}.shape[2] * {f.name(g)}.shape[3]"
    og = f"{out}.shape[0] // {groups}"
    cols = f.scratch(site, 0, [k, npix], dtype)
    dmat = f.scratch(site, 1, [og, npix], dtype)
    res = f.scratch(site, 2, [og, k], dtype)
    conv_call(f, op, "_conv2d_grad_weight", [x, g], out, [cols, dmat, res])


def pool(f: FunctionEmitter, op: Operation, helper: str, extra: tuple[int, ...] = ()) -> None:
    """A pooling kernel on `op`'s window, and `extra` parameters after it."""
    x = op.operands[0]
    (kh, kw), (sh, sw), (ph, pw) = window(op)
    oh = out_size(f, x, 2, op.results[0], kh, sh, ph)
    ow = out_size(f, x, 3, op.results[0], kw, sw, pw)
    out = f.alloc(op, 0, op.results[0], [f.dim(x, 0), f.dim(x, 1), oh, ow])
    kernel, window_args = f.m.pooling(helper, (kh, kw, sh, sw, ph, pw, *extra))
    simple_site(f, op, kernel, [f.name(x), out, *window_args], [out], [x])


@CPU_LOWERINGS.register(nn.MaxPool2dOp)
def lower_max_pool2d(f: FunctionEmitter, op: nn.MaxPool2dOp) -> None:
    pool(f, op, "_max_pool2d")


@CPU_LOWERINGS.register(nn.AvgPool2dOp)
def lower_avg_pool2d(f: FunctionEmitter, op: nn.AvgPool2dOp) -> None:
    pool(f, op, "_avg_pool2d", (int(nn.counts_padding(op)),))


@CPU_LOWERINGS.register(nn.MaxPool2dGradOp)
def lower_max_pool2d_grad(f: FunctionEmitter, op: nn.MaxPool2dGradOp) -> None:
    x, g = op.input, op.grad
    (kh, kw), (sh, sw), (ph, pw) = window(op)
    site = len(f.m.sites)
    for axis, (k, s, p) in ((2, (kh, sh, ph)), (3, (kw, sw, pw))):
        expected = out_size(f, x, axis, g, k, s, p)
        f.check_same(site, [f.dim(g, axis), expected], f"dimension {axis}")
    f.check_same(site, [f.dim(x, 0), f.dim(g, 0)], "batch")
    out = f.alloc(op, 0, op.res, f.dims(x))
    kernel, window_args = f.m.pooling("_max_pool2d_grad", (kh, kw, sh, sw, ph, pw))
    simple_site(f, op, kernel, [f.name(x), f.name(g), out, *window_args], [out], [x, g])


@CPU_LOWERINGS.register(nn.AvgPool2dGradOp)
def lower_avg_pool2d_grad(f: FunctionEmitter, op: nn.AvgPool2dGradOp) -> None:
    g = op.input
    (kh, kw), (sh, sw), (ph, pw) = window(op)
    site = len(f.m.sites)
    rs = shape_of(op.res)
    shape = [str(rs[k]) if rs[k] != DYN else f.dim(g, k) for k in range(2)]
    for axis, (k, s, p) in ((2, (kh, sh, ph)), (3, (kw, sw, pw))):
        if rs[axis] != DYN:
            shape.append(str(rs[axis]))
        else:
            shape.append(f"_window_size({site}, {f.dim(g, axis)}, {k}, {s}, {p})")
    out = f.alloc(op, 0, op.res, shape)
    incl = int(nn.counts_padding(op))
    kernel, window_args = f.m.pooling("_avg_pool2d_grad", (kh, kw, sh, sw, ph, pw, incl))
    simple_site(f, op, kernel, [f.name(g), out, *window_args], [out], [g])
