"""The NumPy reference interpreter of the `nn` dialect: the oracle that gradients and the compiled
targets are tested against.

`run(module, "mnist_mlp", args)` evaluates one `func.func` op by op on xDSL's `Interpreter`
framework; every value is a NumPy array (0-d for scalars). Each op's semantics is its docstring in
`dialects/nn.py`, spelt here in NumPy: one `@impl` per op; an elementwise op's is its scalar
formula (the `Elementwise` trait) evaluated on arrays. Convolution and pooling work on windows
(`windows`, im2col as a strided view) and their gradients add windows back (`add_windows`,
col2im).

Values are checked against the IR as they flow, because autodiff and the backends rely on the
types:

- each argument's shape and dtype kind must fit its type (`?` fits any size);
- broadcasting is static: a dimension stretches only where the operand's *type* has size 1, so a
  `?` dimension that is 1 at run time never broadcasts silently;
- each result must fit its op's result type.

A mismatch raises `IrnError`, at the op's source location when an op is to blame.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ModuleOp,
    TensorType,
)
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    PythonValues,
    ReturnedValues,
    impl,
    impl_terminator,
    register_impls,
)
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Attribute, Operation, SSAValue

from irnet.dialects import dist, dtypes, nn
from irnet.dialects.formula import numpy_function
from irnet.dialects.shapes import DYN, format_shape, format_type, window_input_size, window_span
from irnet.dialects.traits import Elementwise

from .diagnostics import IrnError, error_at, in_order
from .distributed import World

Shape = tuple[int, ...]
ArrayLike = Any

# --- errors at an op ---------------------------------------------------------------------------


def op_error(op: Operation, message: str) -> IrnError:
    """`IrnError` naming `op`, at `op.location` (the call sites it was inlined through as notes)."""
    return error_at(f"{op.name}: {message}", op.location)


def unsupported(op: Operation) -> IrnError:
    if op.name.startswith("ad."):
        hint = "run the autodiff pass first; it expands `ad` ops into `nn` ops"
    else:
        hint = "the reference interpreter runs only `nn` and `func` ops; lower it to them first"
    return op_error(op, f"has no reference implementation: {hint}")


# --- dtypes and shapes -------------------------------------------------------------------------


def numpy_dtype(element_type: Attribute, float_dtype: np.dtype | None = None) -> np.dtype:
    """The NumPy dtype of an element type (`irnet.dialects.dtypes`); floats become
    `float_dtype` when it is given."""
    try:
        return dtypes.numpy_dtype(element_type, float_dtype)
    except dtypes.DTypeError as e:
        raise IrnError(str(e)) from None


KINDS = {"f": "f", "i": "iu", "b": "b"}
"""For each dtype kind of an IR type, the kinds of NumPy arrays accepted as its values."""


def fits(type_shape: Sequence[int], shape: Sequence[int]) -> bool:
    return len(type_shape) == len(shape) and all(t in (DYN, s) for t, s in zip(type_shape, shape))


def describe(value: np.ndarray) -> str:
    return f"{value.dtype}{format_shape(value.shape)}"


def check_static_broadcast(
    op: Operation, operands: Sequence[tuple[Shape, Shape]], target: Shape | None = None
) -> None:
    """Broadcast `(type shape, run-time shape)` operands, aligned at the right, to `target` (by
    default the shape they broadcast to): a dimension may stretch only where its type has size 1.
    A `?` dimension must therefore have the target's size; autodiff relies on it."""
    if target is None:
        sizes = [1] * max(len(shape) for _, shape in operands)
        for type_shape, shape in operands:
            for k in range(1, len(shape) + 1):
                if type_shape[-k] != 1:
                    sizes[-k] = shape[-k]
        target = tuple(sizes)
    for i, (type_shape, shape) in enumerate(operands):
        for k in range(1, len(shape) + 1):
            if type_shape[-k] != 1 and shape[-k] != target[-k]:
                shapes = " and ".join(format_shape(s) for _, s in operands)
                types = " and ".join(format_shape(t) for t, _ in operands)
                raise op_error(
                    op,
                    f"cannot broadcast the run-time shapes {shapes} (types {types}) to "
                    f"{format_shape(target)}: dimension {len(shape) - k} of operand {i} is "
                    f"{shape[-k]}, and only a dimension of static size 1 stretches, never a `?`",
                )


def broadcast_args(op: Operation, args: PythonValues) -> PythonValues:
    """`args` of an elementwise op, after `check_static_broadcast`."""
    check_static_broadcast(op, [(o.type.get_shape(), a.shape) for o, a in zip(op.operands, args)])
    return args


def result_shape(op: Operation, known: Sequence[int | None]) -> Shape:
    """The result type's shape, each `?` replaced by its run-time size from `known` (None where
    the operands do not determine it: an error)."""
    result_type = op.results[0].type
    assert isinstance(result_type, TensorType)
    shape = []
    for axis, (dim, size) in enumerate(zip(result_type.get_shape(), known)):
        if dim == DYN and size is None:
            raise op_error(
                op,
                f"dimension {axis} of the result type {format_type(result_type)} is `?`, and "
                "the operands do not determine its size; the result type must give it",
            )
        shape.append(size if dim == DYN else dim)
    return tuple(shape)


def axes_of(op: Operation, x: np.ndarray) -> tuple[int, ...] | None:
    """An op's `axes` made non-negative; None for all of them (none listed, or rank 0)."""
    axes = {a % x.ndim for a in nn.get_ints(op.properties, "axes")} if x.ndim else set()
    return tuple(sorted(axes)) or None


def axis_of(op: Operation, x: np.ndarray) -> int | None:
    """An op's `axis`; None on a rank-0 tensor (where the dialect accepts axis 0)."""
    return nn.get_int(op.properties, "axis") if x.ndim else None


def check_indices(op: Operation, indices: np.ndarray, size: int, axis: int) -> None:
    bad = indices[(indices < 0) | (indices >= size)]
    if bad.size:
        raise op_error(
            op,
            f"index {bad.flat[0]} is out of range for axis {axis} of size {size} (0 to {size - 1})",
        )


# --- elementwise -------------------------------------------------------------------------------


def run_formula(self: NNFunctions, interpreter: Interpreter, op: Operation, args: PythonValues):
    """An `Elementwise` op: its scalar formula evaluated on the (checked) broadcast operands."""
    compute = self.formulas.get(op)
    if compute is None:  # once per op: a training step runs the same ops every time
        formula = op.get_trait(Elementwise).formula_of(op)
        dtype = self.dtype(op.results[0].type)
        compute = self.formulas[op] = functools.partial(numpy_function(formula), dtype=dtype)
    return self.result(op, compute(*broadcast_args(op, args)))


class ElementwiseFunctions(InterpreterFunctions):
    """One `@impl` per op with an `Elementwise` formula over its values (set below, from the
    dialect; `NNFunctions` inherits them)."""


for _op in nn.NN.operations:
    _trait = _op.get_trait(Elementwise)
    if _trait is not None and _trait.formula is not None and not _trait.shape_operands:
        setattr(ElementwiseFunctions, f"run_{_op.name.removeprefix('nn.')}", impl(_op)(run_formula))


# --- windows: convolution and pooling ----------------------------------------------------------

Pair = tuple[int, int]


def windows(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1), fill=0.0
) -> np.ndarray:
    """Every window of NCHW `x` as `[N, C, OH, OW, kh, kw]` (im2col as a strided view), after
    padding each spatial side with `fill`."""
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    span = [window_span(k, d) for k, d in zip(kernel, dilation)]
    return sliding_window_view(x, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]


def add_windows(
    cols: np.ndarray, size: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1)
) -> np.ndarray:
    """The transpose of `windows` (col2im): a zero `[N, C, H, W]` tensor with every window of
    `cols` `[N, C, OH, OW, kh, kw]` added back where it came from; the padding is dropped."""
    n, c, oh, ow, kh, kw = cols.shape
    (h, w), (sh, sw), (ph, pw), (dh, dw) = size, stride, padding, dilation
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), cols.dtype)
    for i, j in np.ndindex(kh, kw):  # a loop over kernel offsets, not pixels
        rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
        columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
        out[:, :, rows, columns] += cols[..., i, j]
    return out[:, :, ph : ph + h, pw : pw + w]


def grouped(a: np.ndarray, groups: int, axis: int) -> np.ndarray:
    """Split dimension `axis` of `a` into `(groups, size // groups)`."""
    return a.reshape(*a.shape[:axis], groups, -1, *a.shape[axis + 1 :])


def pool_divisors(
    op: nn.AvgPool2dOp | nn.AvgPool2dGradOp, size: Sequence[int], dtype: np.dtype
) -> np.ndarray:
    """Each window's divisor in `dtype`, `[OH, OW]`: the window's size, or without padding
    counted, the number of its pixels inside an input of spatial `size`."""
    kernel, stride, padding = window_props(op)
    if nn.counts_padding(op):
        return np.asarray(kernel[0] * kernel[1], dtype)
    inside = windows(np.ones((1, 1, *size), dtype), kernel, stride, padding)
    return inside.sum(axis=(-2, -1))[0, 0]


def window_props(op: Operation) -> tuple[Pair, ...]:
    """`stride, padding, dilation` of a convolution, or `kernel, stride, padding` of a pool."""
    names = ("kernel", "stride", "padding") if "kernel" in op.properties else nn.WINDOW_PROPS[:3]
    return tuple(nn.get_ints(op.properties, name) for name in names)  # type: ignore[return-value]


# --- the interpreter functions -----------------------------------------------------------------


@register_impls
@dataclass
class NNFunctions(ElementwiseFunctions):
    """NumPy implementations of the `nn` ops. `float_dtype` overrides every float dtype of the
    IR; `training`, `seed` and `step` are the run's mode and random stream."""

    float_dtype: np.dtype | None = None
    training: bool = False
    seed: int = 0
    step: int = 0
    formulas: dict[Operation, Callable[..., np.ndarray]] = field(default_factory=dict)
    """Each elementwise op's formula as a NumPy function of its operands."""

    def dtype(self, t: Attribute) -> np.dtype:
        assert isinstance(t, TensorType)
        return numpy_dtype(t.element_type, self.float_dtype)

    def result(self, op: Operation, value: ArrayLike) -> PythonValues:
        """`(value,)` as an array, checked against the op's result type."""
        value = np.asarray(value)
        result_type = op.results[0].type
        assert isinstance(result_type, TensorType)
        if value.dtype != self.dtype(result_type) or not fits(result_type.get_shape(), value.shape):
            raise op_error(
                op,
                f"produced {describe(value)}, which does not fit its type "
                f"{format_type(result_type)}",
            )
        return (value,)

    # constants, mode and randomness

    @impl(nn.ConstantOp)
    def run_constant(self, interpreter, op: nn.ConstantOp, args):
        values = np.array(op.value.get_values(), self.dtype(op.res.type))
        return self.result(op, values.reshape(op.res.type.get_shape()))

    @impl(nn.ScanOp)
    def run_scan(self, interpreter, op: nn.ScanOp, args):
        k, m = len(op.inits), len(op.xs)
        carries, xs, consts = list(args[:k]), args[k : k + m], args[k + m :]
        extent = xs[0].shape[0]
        if any(x.shape[0] != extent for x in xs):
            lengths = ", ".join(str(x.shape[0]) for x in xs)
            raise op_error(op, f"the sequences have different lengths ({lengths})")
        outputs: list[PythonValues] = [()] * extent
        for t in reversed(range(extent)) if op.is_reverse else range(extent):
            step = (*carries, *(x[t] for x in xs), *consts)
            values = interpreter.run_ssacfg_region(op.body, step, "nn.scan")
            carries, outputs[t] = list(values[:k]), values[k:]
        stacked = [
            np.stack([out[j] for out in outputs]) if extent else self.no_steps(op, y, args)
            for j, y in enumerate(op.ys)
        ]
        return (*carries, *stacked)

    def no_steps(self, op: nn.ScanOp, output: SSAValue, args: PythonValues) -> np.ndarray:
        """A loop's `output` when it has no step: empty, a step shaped as `shape_giver` says
        (else as its type, `?` sizes 0)."""
        giver = op.shape_giver(output)
        if giver is None:
            shape = [0 if d == DYN else d for d in nn.step_of(output.type).get_shape()]
        else:
            value, sequence = giver
            shape = args[list(op.operands).index(value)].shape[1 if sequence else 0 :]
        return np.zeros((0, *shape), self.dtype(output.type))

    @impl_terminator(nn.YieldOp)
    def run_yield(self, interpreter, op: nn.YieldOp, args):
        return ReturnedValues(args), ()

    @impl(nn.TrainingOp)
    def run_training(self, interpreter, op: nn.TrainingOp, args):
        return self.result(op, np.array(self.training))

    @impl(nn.RandomUniformOp)
    def run_random_uniform(self, interpreter, op: nn.RandomUniformOp, args):
        """Drawn in float64 whatever the dtype, so a float64 run replays a float32 one."""
        entropy = [v % 2**64 for v in (self.seed, nn.get_int(op.properties, "seed"), self.step)]
        draw = np.random.default_rng(entropy).random(args[0].shape)
        dtype = self.dtype(op.res.type)
        below_one = np.nextafter(dtype.type(1), dtype.type(0))
        return self.result(op, np.minimum(draw.astype(dtype), below_one))

    # linear algebra and layout

    @impl(nn.MatmulOp)
    def run_matmul(self, interpreter, op: nn.MatmulOp, args):
        batches = [(o.type.get_shape()[:-2], a.shape[:-2]) for o, a in zip(op.operands, args)]
        check_static_broadcast(op, batches)
        return self.result(op, np.matmul(*args))

    @impl(nn.TransposeOp)
    def run_transpose(self, interpreter, op: nn.TransposeOp, args):
        return self.result(op, np.transpose(args[0], nn.get_ints(op.properties, "perm")))

    @impl(nn.ReshapeOp)
    def run_reshape(self, interpreter, op: nn.ReshapeOp, args):
        shape = [-1 if d == DYN else d for d in op.res.type.get_shape()]
        return self.result(op, args[0].reshape(shape))

    @impl(nn.BroadcastToOp)
    def run_broadcast_to(self, interpreter, op: nn.BroadcastToOp, args):
        x, *like = args
        target_type = op.res.type.get_shape()
        offset = len(target_type) - x.ndim
        # A `?` is sized by the axis of `like` its like_axes entry names, else by the input.
        target = tuple(
            d if d != DYN else like[0].shape[a] if a >= 0 else x.shape[i - offset]
            for i, (d, a) in enumerate(zip(target_type, op.like_axis_map()))
        )
        check_static_broadcast(op, [(op.input.type.get_shape(), x.shape)], target)
        return self.result(op, np.broadcast_to(x, target))

    @impl(nn.ConcatOp)
    def run_concat(self, interpreter, op: nn.ConcatOp, args):
        return self.result(op, np.concatenate(args, axis=nn.get_int(op.properties, "axis")))

    @impl(nn.SliceOp)
    def run_slice(self, interpreter, op: nn.SliceOp, args):
        return self.result(op, args[0][slices(op)])

    # reductions and normalisations

    def reduce(self, op: Operation, x: np.ndarray, fn: Callable[..., np.ndarray], **kw):
        keepdims = "keepdims" in op.properties
        return self.result(op, fn(x, axis=axes_of(op, x), keepdims=keepdims, **kw))

    @impl(nn.ReduceSumOp)
    def run_reduce_sum(self, interpreter, op: nn.ReduceSumOp, args):
        return self.reduce(op, args[0], np.sum, dtype=args[0].dtype)

    @impl(nn.ReduceMeanOp)
    def run_reduce_mean(self, interpreter, op: nn.ReduceMeanOp, args):
        return self.reduce(op, args[0], np.mean)

    @impl(nn.ReduceMaxOp)
    def run_reduce_max(self, interpreter, op: nn.ReduceMaxOp, args):
        return self.reduce(op, args[0], np.max)

    @impl(nn.ArgmaxOp)
    def run_argmax(self, interpreter, op: nn.ArgmaxOp, args):
        return self.result(op, np.argmax(args[0], axis=axis_of(op, args[0])).astype(np.int64))

    @impl(nn.AxisSizeOp)
    def run_axis_size(self, interpreter, op: nn.AxisSizeOp, args):
        shape = args[0].shape
        axes = axes_of(op, args[0]) or range(len(shape))
        return self.result(op, np.array(math.prod(shape[a] for a in axes), self.dtype(op.res.type)))

    @impl(nn.IotaOp)
    def run_iota(self, interpreter, op: nn.IotaOp, args):
        shape = args[0].shape
        if not shape:  # a scalar's only element is at index 0
            return self.result(op, np.zeros((), np.int64))
        axis = nn.get_int(op.properties, "axis") % len(shape)
        index = np.arange(shape[axis], dtype=np.int64)
        along = [-1 if k == axis else 1 for k in range(len(shape))]
        return self.result(op, np.broadcast_to(index.reshape(along), shape).copy())

    @impl(nn.SoftmaxOp)
    def run_softmax(self, interpreter, op: nn.SoftmaxOp, args):
        axis = axis_of(op, args[0])
        e = np.exp(args[0] - np.max(args[0], axis=axis, keepdims=True))
        return self.result(op, e / np.sum(e, axis=axis, keepdims=True))

    @impl(nn.LogSoftmaxOp)
    def run_log_softmax(self, interpreter, op: nn.LogSoftmaxOp, args):
        axis = axis_of(op, args[0])
        shifted = args[0] - np.max(args[0], axis=axis, keepdims=True)
        return self.result(op, shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)))

    # convolution and pooling

    @impl(nn.Conv2dOp)
    def run_conv2d(self, interpreter, op: nn.Conv2dOp, args):
        x, w = args
        groups = nn.get_int(op.properties, "groups")
        cols = grouped(windows(x, w.shape[2:], *window_props(op)), groups, 1)
        out = np.einsum("ngihwkl,goikl->ngohw", cols, grouped(w, groups, 0), optimize=True)
        return self.result(op, out.reshape(out.shape[0], -1, *out.shape[3:]))

    @impl(nn.MaxPool2dOp)
    def run_max_pool2d(self, interpreter, op: nn.MaxPool2dOp, args):
        cols = windows(args[0], *window_props(op), fill=-np.inf)
        return self.result(op, cols.max(axis=(-2, -1)))

    @impl(nn.AvgPool2dOp)
    def run_avg_pool2d(self, interpreter, op: nn.AvgPool2dOp, args):
        (x,) = args
        sums = windows(x, *window_props(op)).sum(axis=(-2, -1))
        return self.result(op, sums / pool_divisors(op, x.shape[2:], x.dtype))

    # indexing

    @impl(nn.GatherOp)
    def run_gather(self, interpreter, op: nn.GatherOp, args):
        x, indices = args
        axis = nn.get_int(op.properties, "axis") % x.ndim
        check_indices(op, indices, x.shape[axis], axis)
        return self.result(op, np.take(x, indices, axis=axis))

    @impl(nn.OneHotOp)
    def run_one_hot(self, interpreter, op: nn.OneHotOp, args):
        classes = np.arange(nn.get_int(op.properties, "num_classes"))
        return self.result(op, (args[0][..., None] == classes).astype(self.dtype(op.res.type)))

    # gradients (the transposes autodiff writes)

    @impl(nn.Conv2dGradInputOp)
    def run_conv2d_grad_input(self, interpreter, op: nn.Conv2dGradInputOp, args):
        grad, w = args
        stride, padding, dilation = window_props(op)
        groups = nn.get_int(op.properties, "groups")
        n, _, oh, ow = grad.shape
        _, i, kh, kw = w.shape
        sizes = [window_input_size(*a) for a in zip((oh, ow), (kh, kw), stride, padding, dilation)]
        _, _, h, wd = result_shape(op, (n, groups * i, *sizes))
        cols = np.einsum("ngohw,goikl->ngihwkl", grouped(grad, groups, 1), grouped(w, groups, 0))
        cols = cols.reshape(n, groups * i, oh, ow, kh, kw)
        return self.result(op, add_windows(cols, (h, wd), stride, padding, dilation))

    @impl(nn.Conv2dGradWeightOp)
    def run_conv2d_grad_weight(self, interpreter, op: nn.Conv2dGradWeightOp, args):
        x, grad = args
        groups = nn.get_int(op.properties, "groups")
        o, i, kh, kw = result_shape(op, (grad.shape[1], x.shape[1] // groups, None, None))
        cols = grouped(windows(x, (kh, kw), *window_props(op)), groups, 1)
        dw = np.einsum("ngohw,ngihwkl->goikl", grouped(grad, groups, 1), cols, optimize=True)
        return self.result(op, dw.reshape(o, i, kh, kw))

    @impl(nn.MaxPool2dGradOp)
    def run_max_pool2d_grad(self, interpreter, op: nn.MaxPool2dGradOp, args):
        """Each window's gradient goes to the first (row-major) position of its maximum."""
        x, grad = args
        kernel, stride, padding = window_props(op)
        cols = windows(x, kernel, stride, padding, fill=-np.inf)
        first = cols.reshape(*cols.shape[:4], -1).argmax(axis=-1)
        winner = (np.arange(kernel[0] * kernel[1]) == first[..., None]).reshape(cols.shape)
        spread = np.where(winner, grad[..., None, None], grad.dtype.type(0))
        return self.result(op, add_windows(spread, x.shape[2:], stride, padding))

    @impl(nn.AvgPool2dGradOp)
    def run_avg_pool2d_grad(self, interpreter, op: nn.AvgPool2dGradOp, args):
        (grad,) = args
        kernel, stride, padding = window_props(op)
        n, c, oh, ow = grad.shape
        sizes = [window_input_size(*a) for a in zip((oh, ow), kernel, stride, padding)]
        _, _, h, w = result_shape(op, (n, c, *sizes))
        share = grad / pool_divisors(op, (h, w), grad.dtype)
        cols = np.broadcast_to(share[..., None, None], (*grad.shape, *kernel))
        return self.result(op, add_windows(cols, (h, w), stride, padding))

    @impl(nn.ScatterAddOp)
    def run_scatter_add(self, interpreter, op: nn.ScatterAddOp, args):
        grad, indices = args
        rank = op.res.type.get_num_dims()
        axis = nn.get_int(op.properties, "axis") % rank
        after = grad.shape[axis + indices.ndim :]
        shape = result_shape(op, (*grad.shape[:axis], None, *after))
        check_indices(op, indices, shape[axis], axis)
        out = np.zeros(shape, grad.dtype)
        np.add.at(out, (slice(None),) * axis + (indices,), grad)
        return self.result(op, out)

    @impl(nn.SliceGradOp)
    def run_slice_grad(self, interpreter, op: nn.SliceGradOp, args):
        (grad,) = args
        where = slices(op)
        known = [
            s.start + g if s.stop is None and s.step == 1 else None
            for s, g in zip(where, grad.shape)
        ]
        out = np.zeros(result_shape(op, known), grad.dtype)
        out[where] = grad
        return self.result(op, out)


def slices(op: Operation) -> tuple[slice, ...]:
    """The `starts`, `stops`, `steps` of a slice op as Python slices (`SLICE_END`: None)."""
    starts, stops, steps = (nn.get_ints(op.properties, k) for k in ("starts", "stops", "steps"))
    return tuple(
        slice(start, None if stop == nn.SLICE_END else stop, step)
        for start, stop, step in zip(starts, stops, steps)
    )


@register_impls
@dataclass
class DistFunctions(InterpreterFunctions):
    """The `dist` collectives, over the processes of `world` (one process by default)."""

    world: World = field(default_factory=World)

    @impl(dist.AllReduceOp)
    def run_allreduce(self, interpreter: Interpreter, op: dist.AllReduceOp, args: PythonValues):
        *values, share = args
        return tuple(self.world.allreduce(values, float(share)))


IMPLEMENTED_OPS: frozenset[type[Operation]] = frozenset(
    op for functions in (NNFunctions, FuncFunctions, DistFunctions) for op, _ in functions._impls()
)
"""The ops the reference interpreter runs (read back from the registered `@impl`s)."""


# --- running a function ------------------------------------------------------------------------


class CurrentOp(Interpreter.Listener):
    """Remembers the op being interpreted, to blame it for an error NumPy raises."""

    op: Operation | None = None
    args: PythonValues = ()

    def will_interpret_op(self, op: Operation, args: PythonValues) -> None:
        self.op, self.args = op, args


class AnomalyCheck(Interpreter.Listener):
    """Stops at the first op whose result holds a NaN or an infinity (`--detect-anomaly`)."""

    def did_interpret_op(self, op: Operation, results: PythonValues) -> None:
        for result in results:
            floats = isinstance(result, np.ndarray) and result.dtype.kind == "f"
            if floats and not np.all(np.isfinite(result)):
                kind = "NaN" if np.isnan(result).any() else "an infinity"
                raise op_error(op, f"produced {kind} (stopped by --detect-anomaly)")


class Reference:
    """The reference interpreter over one module, a `targets.Runner`; `run` a function of it
    as often as needed.

    `float_dtype=np.float64` runs every float computation in float64: float arguments and
    constants are cast, and the ops that make floats from a type (one_hot, random_uniform,
    axis_size, cast) make float64. By default each value has its IR dtype (f32 -> float32,
    f64 -> float64, i32, i64, i1 -> bool).
    """

    runs_allreduce = True
    """`dist.allreduce` runs as an op, between the processes of `world`."""

    def __init__(
        self, module: ModuleOp, *, float_dtype: ArrayLike = None, world: World | None = None
    ):
        if float_dtype is not None and np.dtype(float_dtype).kind != "f":
            raise IrnError(f"float_dtype must be a floating-point dtype, got {float_dtype}")
        self.module = module
        self.float_dtype = None if float_dtype is None else np.dtype(float_dtype)
        self.world = world or World()
        self.formulas: dict[Operation, Callable[..., np.ndarray]] = {}
        """The elementwise ops' NumPy functions, kept from call to call."""

    def run(
        self,
        function_name: str,
        args: Sequence[ArrayLike] | Mapping[str, ArrayLike],
        *,
        training: bool = False,
        step: int = 0,
        seed: int = 0,
        check_finite: bool = False,
    ) -> tuple[np.ndarray, ...]:
        """The results of `@function_name` on `args`: positional, or a mapping from each
        argument's name (`x`, `dense_0.w`) to its value. `training` is what `nn.training`
        returns; `seed` and `step` pick the stream of `nn.random_uniform`; `check_finite`
        stops at the first op that makes a NaN or an infinity, naming its source line."""
        fn = self.function(function_name)
        self.check_supported(fn)
        values = self.arguments(fn, args)
        functions = NNFunctions(
            self.float_dtype, bool(training), int(seed), int(step), self.formulas
        )
        current = CurrentOp()
        listeners = (current, AnomalyCheck()) if check_finite else (current,)
        interpreter = Interpreter(self.module, listeners=listeners)
        interpreter.register_implementations(FuncFunctions())
        interpreter.register_implementations(functions)
        interpreter.register_implementations(DistFunctions(self.world))
        try:
            with np.errstate(all="ignore"):
                results = interpreter.call_op(fn, values)
        except IrnError as e:
            e.__notes__ = []  # xDSL notes the whole module in generic form; the message says it
            raise
        except ValueError as e:  # NumPy's shape errors: `?` sizes that do not agree at run time
            if current.op is None:
                raise
            shapes = ", ".join(describe(a) for a in current.args)
            raise op_error(current.op, f"cannot run on operands {shapes}: {e}") from None
        return tuple(r if r.flags.writeable else r.copy() for r in results)

    def function(self, name: str) -> func.FuncOp:
        name = name.removeprefix("@")
        functions = [op for op in self.module.ops if isinstance(op, func.FuncOp)]
        for fn in functions:
            if fn.sym_name.data == name:
                return fn
        known = ", ".join(f"@{fn.sym_name.data}" for fn in functions) or "none"
        raise IrnError(f"no function @{name} in the module (functions: {known})")

    def to_host(self, value: ArrayLike) -> np.ndarray:
        return np.asarray(value)

    def from_host(self, array: np.ndarray) -> np.ndarray:
        return array

    def check_supported(self, fn: func.FuncOp, seen: set[str] | None = None) -> None:
        """Every op `fn` runs, through calls too, must have an implementation."""
        seen = set() if seen is None else seen
        seen.add(fn.sym_name.data)
        for op in fn.body.walk():
            if isinstance(op, func.CallOp):
                if op.callee.string_value() not in seen:
                    self.check_supported(self.function(op.callee.string_value()), seen)
            elif type(op) not in IMPLEMENTED_OPS:
                raise unsupported(op)

    def arguments(
        self, fn: func.FuncOp, args: Sequence[ArrayLike] | Mapping[str, ArrayLike]
    ) -> tuple[np.ndarray, ...]:
        """`args` as arrays of the argument types' dtypes, checked against those types."""
        params = fn.body.block.args
        names = [p.name_hint or f"#{i}" for i, p in enumerate(params)]
        where = f"@{fn.sym_name.data}"
        if isinstance(args, Mapping):
            args = in_order(args, names, f"{where} takes the arguments")
        if len(args) != len(params):
            raise IrnError(
                f"{where} takes {len(params)} arguments ({', '.join(names)}), got {len(args)}"
            )
        return tuple(
            self.argument(f"argument {i} `{name}` of {where}", p.type, a)
            for i, (name, p, a) in enumerate(zip(names, params, args))
        )

    def argument(self, what: str, arg_type: Attribute, value: ArrayLike) -> np.ndarray:
        if not isinstance(arg_type, TensorType):
            raise IrnError(f"{what} has type {arg_type}, which the reference cannot pass")
        array = np.asarray(value)
        dtype = numpy_dtype(arg_type.element_type, self.float_dtype)
        if array.dtype.kind not in KINDS[dtype.kind]:
            raise IrnError(
                f"{what} is {describe(array)}, which does not fit its type {format_type(arg_type)}"
            )
        if not fits(arg_type.get_shape(), array.shape):
            raise IrnError(
                f"{what} has shape {format_shape(array.shape)}, which does not fit its type "
                f"{format_type(arg_type)}"
            )
        return array.astype(dtype, copy=False)


def run(
    module: ModuleOp,
    function_name: str,
    args: Sequence[ArrayLike] | Mapping[str, ArrayLike],
    *,
    training: bool = False,
    step: int = 0,
    seed: int = 0,
    float_dtype: ArrayLike = None,
) -> tuple[np.ndarray, ...]:
    """`Reference(module, float_dtype=...).run(function_name, args, ...)`."""
    reference = Reference(module, float_dtype=float_dtype)
    return reference.run(function_name, args, training=training, step=step, seed=seed)
