"""Canonicalisation patterns of the `nn` dialect, run by xDSL's `canonicalize` pass.

Each pattern registers itself for the ops it rewrites (`@nn.canonicalizes`), which
`NNOp.get_canonicalization_patterns` reads back; they also tidy the IR that the
autodiff pass writes (adjoints seeded with ones, transposes of transposes).
"""

from __future__ import annotations

import math

from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from . import nn
from .shapes import DYN, ShapeError


def splat_of(value: SSAValue) -> float | int | None:
    owner = value.owner
    return owner.splat_value() if isinstance(owner, nn.ConstantOp) else None


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
    """`-(-x)` -> `x`; `-c` -> the negated constant when `c` is a scalar constant."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.NegOp, rewriter: PatternRewriter) -> None:
        inner = op.input.owner
        if isinstance(inner, nn.NegOp):
            rewriter.replace(op, [], [inner.input])
        elif isinstance(inner, nn.ConstantOp) and op.input.type.get_num_dims() == 0:
            folded = nn.ConstantOp.scalar(-inner.value.get_values()[0], op.input.type.element_type)
            folded.location = op.location
            rewriter.replace(op, folded)


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
