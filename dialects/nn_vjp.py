"""Derivative rules of the `nn` dialect: one vector-Jacobian product per differentiable op.

`VJP[OpClass](e, op, g, needs)` gets the op's result cotangent `g` (a list with one entry
per result, None where none flows, for an op of several results: `nn.scan`) and returns one
cotangent per operand (None where `needs` says the operand is inactive or where it has no
derivative). The sweeps that run the rules over a function or a loop's step end the file.
The rules write their IR through `nn_builder.Emitter`, which places every op at the forward op's
location.

Ops whose outputs carry no derivative (comparisons, argmax, one_hot) have the
`NotDifferentiable` trait, ops that read only their operands' shapes the `ShapeOnly` trait
(`dialects/traits.py`); integer-valued results never carry one. Every other op of the dialect
has its rule here (`tests/test_registries.py` checks it).

Subgradients: relu'(0) = 0, abs'(0) = 0, maximum/minimum send ties to the left operand,
reduce_max shares ties equally, max_pool2d gives each window's gradient to its first maximum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from . import nn
from .nn_builder import Emitter, NoDerivative
from .registry import Registry
from .shapes import DYN, ShapeError, format_type, is_float, shapes_compatible
from .traits import HostOnly, NotDifferentiable, ShapeOnly, View

Rule = Callable[[Emitter, Operation, SSAValue, Sequence[bool]], Sequence[SSAValue | None]]
VJP: Registry[Rule] = Registry("derivative")
rule = VJP.register


def each(needs: Sequence[bool], *makers: Callable[[], SSAValue]) -> list[SSAValue | None]:
    """Run only the makers whose operand needs a cotangent."""
    return [make() if need else None for need, make in zip(needs, makers)]


# --- elementwise -------------------------------------------------------------------------------


@rule(nn.NegOp)
def _neg(e, op, g, needs):
    return [e.neg(g)]


@rule(nn.AbsOp)
def _abs(e, op, g, needs):
    x = op.input
    return [e.select(e.cmp("gt", x, 0.0), g, e.select(e.cmp("lt", x, 0.0), e.neg(g), 0.0))]


@rule(nn.ExpOp)
def _exp(e, op, g, needs):
    return [e.mul(g, op.res)]


@rule(nn.LogOp)
def _log(e, op, g, needs):
    return [e.div(g, op.input)]


@rule(nn.SqrtOp)
def _sqrt(e, op, g, needs):
    return [e.div(e.mul(g, 0.5), op.res)]


@rule(nn.TanhOp)
def _tanh(e, op, g, needs):
    y = op.res
    return [e.mul(g, e.sub(1.0, e.mul(y, y)))]


@rule(nn.SigmoidOp)
def _sigmoid(e, op, g, needs):
    y = op.res
    return [e.mul(g, e.mul(y, e.sub(1.0, y)))]


@rule(nn.ReluOp)
def _relu(e, op, g, needs):
    return [e.select(e.cmp("gt", op.input, 0.0), g, 0.0)]


GELU_C = math.sqrt(2.0 / math.pi)


@rule(nn.GeluOp)
def _gelu(e, op, g, needs):
    x = op.input
    if nn.GeluOp.approximation(op) == "none":
        # y = x Phi(x), so y' = Phi(x) + x phi(x)
        #   = (1 + erf(x / sqrt 2)) / 2 + x exp(-x^2 / 2) / sqrt(2 pi)
        phi = e.mul(e.op(nn.ExpOp, e.mul(e.mul(x, x), -0.5)), 1 / math.sqrt(2 * math.pi))
        cdf = e.mul(e.add(e.op(nn.ErfOp, e.mul(x, 1 / math.sqrt(2.0))), 1.0), 0.5)
        return [e.mul(g, e.add(cdf, e.mul(x, phi)))]
    # y = x/2 (1 + t) with t = tanh(c (x + 0.044715 x^3)), so
    # y' = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3 * 0.044715 x^2)
    x2 = e.mul(x, x)
    t = e.op(nn.TanhOp, e.mul(e.mul(x, e.add(e.mul(x2, 0.044715), 1.0)), GELU_C))
    inner = e.mul(e.add(e.mul(x2, 3 * 0.044715), 1.0), GELU_C)
    slope = e.add(
        e.mul(e.add(t, 1.0), 0.5), e.mul(e.mul(e.mul(x, 0.5), e.sub(1.0, e.mul(t, t))), inner)
    )
    return [e.mul(g, slope)]


@rule(nn.ErfOp)
def _erf(e, op, g, needs):
    x = op.input
    return [e.mul(g, e.mul(e.op(nn.ExpOp, e.neg(e.mul(x, x))), 2 / math.sqrt(math.pi)))]


@rule(nn.AddOp)
def _add(e, op, g, needs):
    return each(needs, lambda: e.sum_to(g, op.lhs), lambda: e.sum_to(g, op.rhs))


@rule(nn.SubOp)
def _sub(e, op, g, needs):
    return each(needs, lambda: e.sum_to(g, op.lhs), lambda: e.sum_to(e.neg(g), op.rhs))


@rule(nn.MulOp)
def _mul(e, op, g, needs):
    return each(
        needs,
        lambda: e.sum_to(e.mul(g, op.rhs), op.lhs),
        lambda: e.sum_to(e.mul(g, op.lhs), op.rhs),
    )


@rule(nn.DivOp)
def _div(e, op, g, needs):
    return each(
        needs,
        lambda: e.sum_to(e.div(g, op.rhs), op.lhs),
        lambda: e.sum_to(e.neg(e.div(e.mul(g, op.res), op.rhs)), op.rhs),
    )


@rule(nn.PowOp)
def _pow(e, op, g, needs):
    base, exponent = op.lhs, op.rhs
    return each(
        needs,
        lambda: e.sum_to(
            e.mul(g, e.mul(exponent, e.op(nn.PowOp, base, e.sub(exponent, 1.0)))), base
        ),
        lambda: e.sum_to(e.mul(g, e.mul(op.res, e.op(nn.LogOp, base))), exponent),
    )


def _extremum(predicate: str) -> Rule:
    def vjp(e, op, g, needs):
        left_wins = e.cmp(predicate, op.lhs, op.rhs)
        return each(
            needs,
            lambda: e.sum_to(e.select(left_wins, g, 0.0), op.lhs),
            lambda: e.sum_to(e.select(left_wins, 0.0, g), op.rhs),
        )

    return vjp


rule(nn.MaximumOp)(_extremum("ge"))
rule(nn.MinimumOp)(_extremum("le"))


@rule(nn.SelectOp)
def _select(e, op, g, needs):
    return [
        None,
        e.sum_to(e.select(op.cond, g, 0.0), op.on_true) if needs[1] else None,
        e.sum_to(e.select(op.cond, 0.0, g), op.on_false) if needs[2] else None,
    ]


@rule(nn.CastOp)
def _cast(e, op, g, needs):
    if not is_float(op.input.type):
        return [None]
    return [e.op(nn.CastOp, g, result_type=op.input.type)]


# --- linear algebra and layout -----------------------------------------------------------------


@rule(nn.MatmulOp)
def _matmul(e, op, g, needs):
    a, b = op.lhs, op.rhs
    return each(
        needs,
        lambda: e.sum_to(e.op(nn.MatmulOp, g, e.transpose_last(b)), a),
        lambda: e.sum_to(e.op(nn.MatmulOp, e.transpose_last(a), g), b),
    )


@rule(nn.TransposeOp)
def _transpose(e, op, g, needs):
    perm = nn.get_ints(op.properties, "perm")
    inverse = [perm.index(i) for i in range(len(perm))]
    return [e.op(nn.TransposeOp, g, perm=nn.int_array(inverse))]


@rule(nn.ReshapeOp)
def _reshape(e, op, g, needs):
    if op.input.type.get_shape().count(DYN) > 1:
        raise NoDerivative(
            f"cannot reshape the gradient back to {format_type(op.input.type)}: more than one "
            "dimension is known only at run time"
        )
    return [e.op(nn.ReshapeOp, g, result_type=op.input.type)]


@rule(nn.BroadcastToOp)
def _broadcast_to(e, op, g, needs):
    return [e.sum_to(g, op.input), None]


# --- reductions and normalisations -------------------------------------------------------------


def _reduce_args(op) -> tuple[list[int], bool]:
    return list(nn.get_ints(op.properties, "axes")), "keepdims" in op.properties


@rule(nn.ReduceSumOp)
def _reduce_sum(e, op, g, needs):
    axes, keep = _reduce_args(op)
    return [e.restore_axes(g, op.input, axes, keep)]


@rule(nn.ReduceMeanOp)
def _reduce_mean(e, op, g, needs):
    axes, keep = _reduce_args(op)
    count = e.op(nn.AxisSizeOp, op.input, axes=nn.int_array(axes))
    return [e.restore_axes(e.div(g, count), op.input, axes, keep)]


@rule(nn.ReduceMaxOp)
def _reduce_max(e, op, g, needs):
    x = op.input
    axes, keep = _reduce_args(op)
    is_max = e.cmp("eq", x, e.restore_axes(op.res, x, axes, keep))
    ties = e.op(nn.CastOp, is_max, result_type=x.type)
    share = e.div(
        e.restore_axes(g, x, axes, keep),
        e.restore_axes(e.reduce_sum(ties, axes, keepdims=keep), x, axes, keep),
    )
    return [e.select(is_max, share, 0.0)]


@rule(nn.SoftmaxOp)
def _softmax(e, op, g, needs):
    y, axis = op.res, nn.get_int(op.properties, "axis")
    return [e.mul(y, e.sub(g, e.reduce_sum(e.mul(g, y), [axis], keepdims=True)))]


@rule(nn.LogSoftmaxOp)
def _log_softmax(e, op, g, needs):
    y, axis = op.res, nn.get_int(op.properties, "axis")
    softmax = e.op(nn.ExpOp, y)
    return [e.sub(g, e.mul(softmax, e.reduce_sum(g, [axis], keepdims=True)))]


# --- convolution and pooling -------------------------------------------------------------------


def _window(op) -> dict[str, Attribute]:
    return {k: op.properties[k] for k in nn.WINDOW_PROPS}


def _pool_window(op) -> dict[str, Attribute]:
    """The window of a pool and, for an average, whether padding is left out of the divisor:
    an average pool and its gradient are each other's transposes for the same divisors."""
    names = ("kernel", "stride", "padding", "exclude_pad")
    return {k: op.properties[k] for k in names if k in op.properties}


@rule(nn.Conv2dOp)
def _conv2d(e, op, g, needs):
    x, w = op.input, op.weight
    return each(
        needs,
        lambda: e.op(nn.Conv2dGradInputOp, g, w, result_type=x.type, **_window(op)),
        lambda: e.op(nn.Conv2dGradWeightOp, x, g, result_type=w.type, **_window(op)),
    )


@rule(nn.Conv2dGradInputOp)
def _conv2d_grad_input(e, op, h, needs):
    # <h, conv^T(g, w)> = <conv(h, w), g>
    g, w = op.grad, op.weight
    return each(
        needs,
        lambda: e.op(nn.Conv2dOp, h, w, **_window(op)),
        lambda: e.op(nn.Conv2dGradWeightOp, h, g, result_type=w.type, **_window(op)),
    )


@rule(nn.Conv2dGradWeightOp)
def _conv2d_grad_weight(e, op, h, needs):
    # <h, dW(x, g)> = <conv(x, h), g>
    x, g = op.input, op.grad
    return each(
        needs,
        lambda: e.op(nn.Conv2dGradInputOp, g, h, result_type=x.type, **_window(op)),
        lambda: e.op(nn.Conv2dOp, x, h, **_window(op)),
    )


@rule(nn.MaxPool2dOp)
def _max_pool2d(e, op, g, needs):
    return [e.op(nn.MaxPool2dGradOp, op.input, g, **_pool_window(op))]


@rule(nn.MaxPool2dGradOp)
def _max_pool2d_grad(e, op, h, needs):
    raise NoDerivative("the second derivative of max_pool2d is not implemented")


@rule(nn.AvgPool2dOp)
def _avg_pool2d(e, op, g, needs):
    return [e.op(nn.AvgPool2dGradOp, g, result_type=op.input.type, **_pool_window(op))]


@rule(nn.AvgPool2dGradOp)
def _avg_pool2d_grad(e, op, h, needs):
    return [e.op(nn.AvgPool2dOp, h, **_pool_window(op))]


# --- indexing ----------------------------------------------------------------------------------


@rule(nn.GatherOp)
def _gather(e, op, g, needs):
    x = op.input
    axis = nn.axis_of(op.name, x.type, nn.get_int(op.properties, "axis"))
    if x.type.get_shape()[axis] == DYN:
        raise NoDerivative(f"gather's table {format_type(x.type)} needs a static gathered axis")
    return [e.op(nn.ScatterAddOp, g, op.indices, result_type=x.type, axis=op.axis), None]


@rule(nn.ScatterAddOp)
def _scatter_add(e, op, h, needs):
    return [e.op(nn.GatherOp, h, op.indices, axis=op.axis), None]


@rule(nn.ConcatOp)
def _concat(e, op, g, needs):
    axis = nn.axis_of(op.name, op.res.type, nn.get_int(op.properties, "axis"))
    shape = g.type.get_shape()
    sizes = [t.type.get_shape()[axis] for t in op.inputs]
    if DYN in sizes[:-1]:
        raise NoDerivative("concat's gradient needs static sizes along the joined axis")
    pieces, start = [], 0
    for need, size in zip(needs, sizes):
        if need:
            stop = nn.SLICE_END if size == DYN else start + size
            starts = [start if i == axis else 0 for i in range(len(shape))]
            stops = [
                stop if i == axis else (nn.SLICE_END if d == DYN else d)
                for i, d in enumerate(shape)
            ]
            piece = e.op(
                nn.SliceOp,
                g,
                starts=nn.int_array(starts),
                stops=nn.int_array(stops),
                steps=nn.int_array([1] * len(shape)),
            )
            pieces.append(piece)
        else:
            pieces.append(None)
        start += 0 if size == DYN else size
    return pieces


def _slice_props(op) -> dict[str, Attribute]:
    return {k: op.properties[k] for k in ("starts", "stops", "steps")}


@rule(nn.SliceOp)
def _slice(e, op, g, needs):
    return [e.op(nn.SliceGradOp, g, result_type=op.input.type, **_slice_props(op))]


@rule(nn.SliceGradOp)
def _slice_grad(e, op, h, needs):
    return [e.op(nn.SliceOp, h, **_slice_props(op))]


# --- loops -------------------------------------------------------------------------------------


@rule(nn.ScanOp)
def _scan(e, op: nn.ScanOp, gs, needs):
    """The backward loop: steps in the opposite order, carrying the carries' cotangents and the
    sums of the `with` values' cotangents, and outputting the sequences' cotangents. Each step
    runs the reverse sweep over the forward step, reading the values the forward loop saved
    (`with_saved_values`) and recomputing the others."""
    saved = op.stacked_values()
    carries_in = [saved.get(arg) for arg in op.step.args[: len(op.inits)]]
    if None in carries_in:
        raise NoDerivative("nn.scan: the forward sweep did not save the loop's carries")
    if not all(is_float(v.type) for v in [*op.inits, *op.ys]):
        raise NoDerivative("nn.scan: a loop with integer carries or outputs has no derivative")
    k, m = len(op.inits), len(op.xs)
    gs = list(gs) if isinstance(gs, Sequence) else [gs]
    # Saved outputs are outputs too: a derivative of this derivative gives them cotangents.
    with_g = [j for j, g in enumerate(gs[k:]) if g is not None]
    want_x = [i for i in range(m) if needs[k + i]]
    want_c = [j for j, c in enumerate(op.consts) if needs[k + m + j] and is_float(c.type)]
    step = backward_step(e, op, want_c, with_g)
    g_carry, sums = step.args[:k], step.args[k : k + len(want_c)]
    g_out = step.args[k + len(want_c) : k + len(want_c) + len(with_g)]
    forward_args = step.args[k + len(want_c) + len(with_g) :]
    cotangents, kept = sweep_step(
        op, step, forward_args, g_carry, dict(zip(with_g, g_out)), want_x, want_c
    )
    d_carry, d_x = cotangents[:k], cotangents[k : k + len(want_x)]
    inner = Emitter(InsertPoint.at_end(step), op.location)
    sums = [inner.add(s, d) for s, d in zip(sums, cotangents[k + len(want_x) :])]
    end = nn.YieldOp([*d_carry, *sums, *d_x])
    end.location = e.location
    step.add_op(end)
    back = nn.ScanOp(
        [*(g if g is not None else e.zeros_like(f) for g, f in zip(gs[:k], op.finals)),
         *(e.zeros_like(op.consts[j]) for j in want_c)],
        [*(gs[k + j] for j in with_g), *(op.ys[j] for j in carries_in), *op.xs,
         *(op.ys[j] for j in kept)],
        list(op.consts),
        Region(step),
        reverse=not op.is_reverse,
    )  # fmt: skip
    back.location = e.location
    Rewriter.insert_op(back, e.insertion)
    d_inits, d_consts = list(back.finals[:k]), dict(zip(want_c, back.finals[k:]))
    d_xs = dict(zip(want_x, back.ys))
    return [
        *(d if need else None for d, need in zip(d_inits, needs)),
        *(d_xs.get(i) for i in range(m)),
        *(d_consts.get(j) for j in range(len(op.consts))),
    ]


def backward_step(e: Emitter, op: nn.ScanOp, want_c: Sequence[int], with_g: Sequence[int]):
    """The block of the backward loop's step, its arguments named: the carries' cotangents,
    the sums of the `with` values' cotangents `want_c`, the cotangents of the outputs `with_g`,
    the carries the forward step started from, then the forward step's own slices and `with`
    values (`sweep_step` inserts the saved values it reads before these)."""
    k, m = len(op.inits), len(op.xs)
    forward = op.step.args
    named = [
        *((a.type, f"d_{a.name_hint or 'carry'}") for a in forward[:k]),
        *((forward[k + m + j].type, f"d_{forward[k + m + j].name_hint or 'with'}") for j in want_c),
        *((nn.step_of(op.ys[j].type), f"d_out{j}") for j in with_g),
        *((a.type, a.name_hint) for a in forward[:k]),
        *((a.type, a.name_hint) for a in forward[k:]),
    ]
    step = Block(arg_types=[t for t, _ in named])
    for arg, (_, hint) in zip(step.args, named):
        arg.location, arg.name_hint = e.location, hint
    return step


def sweep_step(
    op: nn.ScanOp,
    step: Block,
    forward_args: Sequence[SSAValue],
    g_carry: Sequence[SSAValue],
    g_out: dict[int, SSAValue],
    want_x: Sequence[int],
    want_c: Sequence[int],
) -> tuple[list[SSAValue], list[int]]:
    """In the backward loop's `step`: the forward step placed from `forward_args` (carries,
    slices, `with` values), then its reverse sweep from the cotangents of its next carries and
    outputs. Returns the cotangents of its carries, of the slices `want_x` and of the `with`
    values `want_c`, each of its value's exact type (zero where none flows), and the outputs
    of `op` that it reads saved (`read_saved`)."""
    k, m = len(op.inits), len(op.xs)
    at = InsertPoint.at_end(step)
    placed = dict(zip(op.step.args, forward_args))
    pairs = place_forward([o for o in op.step.ops if o is not op.yielded], placed, at)
    yielded = [placed.get(v, v) for v in op.yielded.values]
    here = Emitter(at, op.location)
    seeds: dict[SSAValue, SSAValue] = {}
    for value, g in [*zip(yielded, g_carry), *((yielded[k + j], g) for j, g in g_out.items())]:
        seeds[value] = here.add(seeds[value], g) if value in seeds else g
    carries, slices, consts = forward_args[:k], forward_args[k : k + m], forward_args[k + m :]
    wanted = [*carries, *(slices[i] for i in want_x), *(consts[j] for j in want_c)]
    cotangents = backpropagate([(p, p) for _, p in pairs], seeds, wanted, at)
    cotangents = [
        exactly(here, c, w.type) if c is not None else here.zeros_like(w)
        for c, w in zip(cotangents, wanted)
    ]
    return cotangents, read_saved(op, step, pairs)


def read_saved(op: nn.ScanOp, step: Block, pairs: Sequence[tuple[Operation, Operation]]):
    """Make the backward `step` read the values the forward loop saved instead of computing
    them again: each placed value that is saved and still read becomes a slice of its saved
    output (a block argument before the `with` values), and the placed ops left unread go.
    Returns the indices in `op.ys` of the saved outputs read, in the arguments' order."""
    saved = op.stacked_values()
    position = len(step.args) - len(op.consts)
    kept: list[int] = []
    for original, copy in reversed(pairs):  # users first: a value read only by them goes too
        for value, placed in zip(original.results, copy.results):
            if value in saved and placed.uses:
                arg = step.insert_arg(placed.type, position)
                arg.name_hint, arg.location = placed.name_hint, copy.location
                placed.replace_all_uses_with(arg)
                kept.insert(0, saved[value])
        if not any(r.uses for r in copy.results):
            Rewriter.erase_op(copy)
    return kept


def exactly(e: Emitter, value: SSAValue, t: Attribute) -> SSAValue:
    """`value` with type `t` (a `?` made static or back), as a loop's carry must keep it."""
    if value.type == t:
        return value
    return e.op(nn.CastOp, value, result_type=t)


def vjp(e: Emitter, op: Operation, g: SSAValue, needs: Sequence[bool]) -> list[SSAValue | None]:
    """The cotangents of `op`'s operands; raises NoDerivative with a user-facing reason."""
    rule_fn = VJP.get(type(op))
    if rule_fn is None:
        raise NoDerivative(f"{op.name} has no derivative rule")
    try:
        return list(rule_fn(e, op, g, needs))
    except ShapeError as err:
        raise NoDerivative(f"{op.name}: {err}") from None


# --- the sweeps --------------------------------------------------------------------------------
#
# Reverse mode over straight-line IR: `autodiff` runs these over a function's inlined body, and
# the rule of `nn.scan` over one step of the loop, inside the backward loop's region. The
# forward sweep copies the ops to differentiate and makes each loop among them keep what a step
# computes from its carry and its slices (`with_saved_values`), as PyTorch's and JAX's loops
# do: the backward loop reads those values instead of doing each step's work a second time,
# at the price of memory growing with the length. Canonicalization drops the saved values that
# no derivative reads.


def differentiable_edge(op: Operation) -> bool:
    """Whether a cotangent can flow from `op`'s result to its operands."""
    if op.has_trait(NotDifferentiable) or op.has_trait(ShapeOnly):
        return False
    return all(is_float(r.type) for r in op.results)


@dataclass
class Activity:
    """Which values of straight-line `ops` carry derivatives between values and `outputs`."""

    ops: Sequence[Operation]
    outputs: Sequence[SSAValue]

    def forward(self, sources: set[SSAValue], through_all: bool) -> set[SSAValue]:
        reached = set(sources)
        for op in self.ops:
            if any(o in reached for o in op.operands) and (through_all or differentiable_edge(op)):
                reached.update(op.results)
        return reached

    def backward(self, through_all: bool) -> set[SSAValue]:
        reached = set(self.outputs)
        for op in reversed(self.ops):
            if any(r in reached for r in op.results) and (through_all or differentiable_edge(op)):
                reached.update(op.operands)
        return reached


def place_forward(
    ops: Sequence[Operation], placed: dict[SSAValue, SSAValue], at: InsertPoint
) -> list[tuple[Operation, Operation]]:
    """Copy `ops` at `at`, their operands mapped through `placed` (which learns the copies'
    results); each loop saves what its derivative reads. Returns (original, copy) pairs."""
    pairs = []
    for op in ops:
        copy = op.clone(value_mapper=placed)
        Rewriter.insert_op(copy, at)
        if isinstance(copy, nn.ScanOp):
            copy = with_saved_values(copy)
            placed.update(zip(op.results, copy.results))
        pairs.append((op, copy))
    return pairs


def with_saved_values(scan: nn.ScanOp) -> nn.ScanOp:
    """Replace `scan` by the same loop that also outputs, after its own outputs, the values its
    backward loop may read (`[T, ...]` each): the carries each step starts from, and each value
    a step computes from them and from its slices. Values that do not change from step to
    step (of the `with` values alone), views, and shape-only or host ops are recomputed."""
    step, k, m = scan.step, len(scan.inits), len(scan.xs)
    ops = [op for op in step.ops if op is not scan.yielded]
    varying = Activity(ops, []).forward(set(step.args[: k + m]), through_all=True)
    computed = [r for op in ops if not recomputed(op) for r in op.results if r in varying]
    have = scan.stacked_values()
    extra = [v for v in dict.fromkeys([*step.args[:k], *computed]) if v not in have]
    if not extra:
        return scan
    old_yield = scan.yielded
    new_yield = nn.YieldOp([*old_yield.values, *extra])
    new_yield.location = old_yield.location
    Rewriter.replace_op(old_yield, new_yield)
    body = scan.detach_region(scan.body)
    saving = nn.ScanOp(
        list(scan.inits), list(scan.xs), list(scan.consts), body, scan.is_reverse,
        scan.saved_count + len(extra),
    )  # fmt: skip
    saving.location = scan.location
    Rewriter.replace_op(scan, saving, saving.results[: len(scan.results)])
    return saving


def recomputed(op: Operation) -> bool:
    """Whether a backward loop computes `op` again rather than reading it saved: a view or an
    op of shapes alone costs nothing, and a host op (a random draw) replays its stream."""
    return op.has_trait(View) or op.has_trait(ShapeOnly) or op.has_trait(HostOnly)


def backpropagate(
    pairs: Sequence[tuple[Operation, Operation]],
    seeds: Mapping[SSAValue, SSAValue],
    wanted: Sequence[SSAValue],
    at: InsertPoint,
) -> list[SSAValue | None]:
    """The reverse sweep: the cotangents of `wanted` (None where none flows), given the
    cotangents `seeds` of some values. Values are keyed by the first op of each pair, and each
    op's rule runs on the second (the forward sweep's copy); every adjoint op is inserted at
    `at` and located at the op it differentiates."""
    keys = [op for op, _ in pairs]
    activity = Activity(keys, list(seeds))
    needed = activity.forward(set(wanted), through_all=False) & activity.backward(False)
    adjoint: dict[SSAValue, SSAValue] = dict(seeds)
    for op, copy in reversed(pairs):
        gs = [adjoint.get(r) for r in op.results]
        needs = [o in needed for o in op.operands]
        if all(g is None for g in gs) or not any(needs):
            continue
        e = Emitter(at, copy.location)
        try:
            cotangents = vjp(e, copy, gs[0] if len(gs) == 1 else gs, needs)
        except NoDerivative as err:
            err.location = err.location or copy.location
            raise
        for operand, need, c in zip(op.operands, needs, cotangents):
            if not need or c is None:
                continue
            check_cotangent(copy, operand, c)
            adjoint[operand] = e.add(adjoint[operand], c) if operand in adjoint else c
    return [adjoint.get(w) for w in wanted]


def check_cotangent(op: Operation, operand: SSAValue, cotangent: SSAValue) -> None:
    t, c = operand.type, cotangent.type
    if t.element_type != c.element_type or not shapes_compatible(t.get_shape(), c.get_shape()):
        raise AssertionError(
            f"derivative rule of {op.name} produced {format_type(c)} for {format_type(t)}"
        )
