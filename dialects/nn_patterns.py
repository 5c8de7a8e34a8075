"""Canonicalisation patterns of the `nn` dialect, run by xDSL's `canonicalize` pass.

Each pattern registers itself for the ops it rewrites (`@nn.canonicalizes`), which
`NNOp.get_canonicalization_patterns` reads back; they also tidy the IR that the
autodiff pass writes (adjoints seeded with ones, transposes of transposes).
"""

from __future__ import annotations

import math

import numpy as np
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern
from xdsl.traits import Pure

from . import nn
from .dtypes import DTypeError, numpy_dtype
from .formula import numpy_function
from .shapes import DYN, ShapeError
from .traits import Elementwise


def splat_of(value: SSAValue) -> float | int | None:
    owner = value.owner
    return owner.splat_value() if isinstance(owner, nn.ConstantOp) else None


FOLD_LIMIT = 64
"""The most elements `FoldConstants` makes a constant of: scalars and small vectors fold, while
a broadcast of two constants into a large one stays two small constants and an op."""


def folds(op_class: type[Operation]) -> bool:
    """Whether `FoldConstants` applies to `op_class`: a pure op with a scalar formula over the
    values of its operands (`nn.broadcast_to` reads one for its shape; folding it would only
    turn a scalar, which fusion copies into each kernel, into a bigger constant)."""
    trait = op_class.get_trait(Elementwise)
    return (
        trait is not None
        and trait.formula is not None
        and not trait.shape_operands
        and op_class.has_trait(Pure)
    )


def constant_array(value: SSAValue) -> np.ndarray | None:
    """The value of an `nn.constant` as the reference interpreter makes it; None for any other
    value."""
    owner = value.owner
    if not isinstance(owner, nn.ConstantOp):
        return None
    dtype = numpy_dtype(owner.res.type)
    return np.array(owner.value.get_values(), dtype).reshape(owner.res.type.get_shape())


def finite(array: np.ndarray) -> bool:
    return array.dtype.kind != "f" or bool(np.isfinite(array).all())


def folded_value(op: Operation) -> np.ndarray | None:
    """What `op` computes from its constant operands, exactly as the reference interpreter
    computes it (the op's formula on NumPy arrays, in the result's dtype); None when an
    operand is not a constant or the result would be too big, not finite, or of a type
    NumPy does not have."""
    result_type = op.results[0].type
    if not isinstance(result_type, TensorType) or not result_type.has_static_shape():
        return None
    if math.prod(result_type.get_shape()) > FOLD_LIMIT:
        return None
    if not all(isinstance(o.owner, nn.ConstantOp) for o in op.operands):
        return None
    try:
        dtype = numpy_dtype(result_type)
        operands = [constant_array(o) for o in op.operands]
    except DTypeError:
        return None
    formula = op.get_trait(Elementwise).formula_of(op)
    with np.errstate(all="ignore"):  # an overflow or log(0) is refused below, not reported
        value = np.asarray(numpy_function(formula)(*operands, dtype=dtype))
    # a non-finite value stays an op, so that --detect-anomaly still names its line
    if not (finite(value) and all(finite(a) for a in operands)):
        return None
    if value.dtype != dtype or value.shape != tuple(result_type.get_shape()):
        return None
    return value


@nn.canonicalizes(*filter(folds, nn.NN.operations))
class FoldConstants(RewritePattern):
    """`f(c, ...)` of constants -> one `nn.constant` (at most `FOLD_LIMIT` = 64 elements,
    all finite), computed with the op's own scalar formula in its result dtype exactly as the
    reference interpreter computes it, so folding never changes a result.

    Any op with an `Elementwise` formula over its operands' values folds, a new one too."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        value = folded_value(op)
        if value is None:
            return
        attr = DenseIntOrFPElementsAttr.from_list(op.results[0].type, value.ravel().tolist())
        folded = nn.ConstantOp.build_inferred([], {"value": attr})
        folded.location = op.location
        rewriter.replace(op, folded)


@nn.canonicalizes(nn.AddOp, nn.SubOp, nn.MulOp, nn.DivOp)
class DropIdentityOperand(RewritePattern):
    """`x + 0`, `0 + x`, `x - 0`, `x * 1`, `1 * x`, `x / 1` -> `x`, when the constant does not
    broadcast `x` to a bigger shape."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        identity = {nn.AddOp: 0, nn.SubOp: 0, nn.MulOp: 1, nn.DivOp: 1}.get(type(op))
        if identity is None:
            return
        lhs, rhs = op.operands
        commutative = isinstance(op, nn.AddOp | nn.MulOp)
        candidates = [(lhs, rhs)] + ([(rhs, lhs)] if commutative else [])
        for kept, dropped in candidates:
            if splat_of(dropped) == identity and kept.type == op.results[0].type:
                rewriter.replace(op, [], [kept])
                return


@nn.canonicalizes(nn.NegOp)
class FoldDoubleNegation(RewritePattern):
    """`-(-x)` -> `x` (`-c` of a constant `c` is `FoldConstants`' work)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.NegOp, rewriter: PatternRewriter) -> None:
        inner = op.input.owner
        if isinstance(inner, nn.NegOp):
            rewriter.replace(op, [], [inner.input])


@nn.canonicalizes(nn.SelectOp)
class FoldConstantCondition(RewritePattern):
    """`where(true, a, b)` -> `a`, `where(false, a, b)` -> `b`, when the chosen operand has the
    result's type: a compile-time flag (`causal=true`) leaves one branch."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.SelectOp, rewriter: PatternRewriter) -> None:
        source = scalar_source(op.cond)
        condition = splat_of(op.cond) if source is None else source.splat_value()
        if condition is None:
            return
        chosen = op.on_true if condition else op.on_false
        if chosen.type == op.res.type:
            rewriter.replace(op, [], [chosen])


@nn.canonicalizes(nn.ScanOp)
class DropUnusedSavedValues(RewritePattern):
    """A loop's saved outputs (`saving n`, kept by autodiff's forward sweep) that no derivative
    reads: the same loop without them."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ScanOp, rewriter: PatternRewriter) -> None:
        first = len(op.ys) - op.saved_count
        unused = {j for j in range(first, len(op.ys)) if not op.ys[j].uses}
        if not unused:
            return
        k = len(op.inits)
        end = op.yielded
        values = [v for j, v in enumerate(end.values) if j - k not in unused]
        rewriter.replace(end, nn.YieldOp(values))
        body = op.detach_region(op.body)
        saved = op.saved_count - len(unused)
        kept = nn.ScanOp(list(op.inits), list(op.xs), list(op.consts), body, op.is_reverse, saved)
        kept.location = op.location
        outputs = iter(kept.ys)
        ys = [None if j in unused else next(outputs) for j in range(len(op.ys))]
        rewriter.replace(op, kept, [*kept.finals, *ys])


@nn.canonicalizes(nn.TransposeOp)
class FoldTransposes(RewritePattern):
    """`transpose(transpose(x, p), q)` -> `transpose(x, p∘q)`; an identity permutation -> `x`."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.TransposeOp, rewriter: PatternRewriter) -> None:
        perm = nn.get_ints(op.properties, "perm")
        source = op.input
        inner = source.owner
        if isinstance(inner, nn.TransposeOp):
            inner_perm = nn.get_ints(inner.properties, "perm")
            perm = tuple(inner_perm[p] for p in perm)
            source = inner.input
        if perm == tuple(range(len(perm))):
            rewriter.replace(op, [], [source])
        elif source is not op.input:
            folded = nn.TransposeOp.build_inferred([source], {"perm": nn.int_array(perm)})
            folded.location = op.location
            rewriter.replace(op, folded)


@nn.canonicalizes(nn.ReshapeOp)
class FoldReshapes(RewritePattern):
    """`reshape(reshape(x))` -> `reshape(x)`; a reshape to the input's own type -> `x`."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ReshapeOp, rewriter: PatternRewriter) -> None:
        result_type = op.res.type
        if op.input.type == result_type:
            rewriter.replace(op, [], [op.input])
            return
        inner = op.input.owner
        if isinstance(inner, nn.ReshapeOp):
            if inner.input.type == result_type:
                rewriter.replace(op, [], [inner.input])
                return
            try:
                folded = nn.ReshapeOp.build_inferred([inner.input], result_type=result_type)
            except ShapeError:  # valid only for some run-time sizes: keep both steps
                return
            folded.location = op.location
            rewriter.replace(op, folded)


@nn.canonicalizes(nn.LogOp)
class LogOfSoftmax(RewritePattern):
    """`log(softmax(x))` -> `log_softmax(x)`: same value, no underflow to `log(0)`."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.LogOp, rewriter: PatternRewriter) -> None:
        inner = op.input.owner
        if isinstance(inner, nn.SoftmaxOp):
            fused = nn.LogSoftmaxOp.build_inferred([inner.input], {"axis": inner.axis})
            fused.location = op.location
            rewriter.replace(op, fused)


@nn.canonicalizes(nn.AxisSizeOp)
class FoldStaticAxisSize(RewritePattern):
    """`axis_size(x)` over static dimensions -> a constant."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.AxisSizeOp, rewriter: PatternRewriter) -> None:
        shape = op.input.type.get_shape()
        axes = nn.get_ints(op.properties, "axes") or tuple(range(len(shape)))
        sizes = [shape[a] for a in axes]
        if DYN in sizes:
            return
        folded = nn.ConstantOp.scalar(float(math.prod(sizes)), op.res.type.element_type)
        folded.location = op.location
        rewriter.replace(op, folded)


def scalar_source(value: SSAValue) -> nn.ConstantOp | None:
    """The scalar constant that `value` merely reshapes or broadcasts, if any."""
    owner = value.owner
    while isinstance(owner, nn.ReshapeOp | nn.BroadcastToOp):
        owner = owner.input.owner
    if isinstance(owner, nn.ConstantOp) and owner.res.type.get_num_dims() == 0:
        return owner
    return None


@nn.canonicalizes(nn.AddOp, nn.SubOp, nn.MulOp, nn.DivOp)
class UseScalarConstant(RewritePattern):
    """`x * broadcast_to(reshape(c))` -> `x * c` when the result type stays the same, so that
    the identity patterns and fusion see the scalar (the autodiff pass seeds with ones)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, nn.BinaryOp):
            return
        for i, operand in enumerate(op.operands):
            source = scalar_source(operand)
            if source is None or source.res is operand:
                continue
            operands = list(op.operands)
            operands[i] = source.res
            try:
                simpler = type(op).build_inferred(operands)
            except ShapeError:
                continue
            if simpler.res.type == op.res.type:
                simpler.location = op.location
                rewriter.replace(op, simpler)
                return
