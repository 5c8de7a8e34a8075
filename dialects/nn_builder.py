"""`Emitter`: builds `nn` ops at an insertion point, with types inferred and one location for
all of them. The derivative rules and the optimisers write their IR through it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import StringAttr, TensorType, UnitAttr
from xdsl.ir import Attribute, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from . import nn
from .shapes import DYN, format_type


class NoDerivative(Exception):
    """A derivative cannot be written for this use of an op; the message is user-facing, and
    `location` the op's, once the reverse sweep knows which op it was."""

    location: Attribute | None = None


@dataclass
class Emitter:
    """Builds `nn` ops at an insertion point, all located at `location`."""

    insertion: InsertPoint
    location: Attribute

    def op(
        self,
        op_class: type[nn.NNOp],
        *operands: SSAValue | Sequence[SSAValue],
        result_type: TensorType | None = None,
        **props: Attribute,
    ) -> SSAValue:
        built = op_class.build_inferred(list(operands), props, result_type)
        built.location = self.location
        Rewriter.insert_op(built, self.insertion)
        return built.results[0]

    def const(self, value: float, like: SSAValue) -> SSAValue:
        built = nn.ConstantOp.scalar(value, like.type.element_type)
        built.location = self.location
        Rewriter.insert_op(built, self.insertion)
        return built.results[0]

    # arithmetic, with numbers turned into scalar constants of the other operand's dtype
    def _pair(self, a, b) -> tuple[SSAValue, SSAValue]:
        like = a if isinstance(a, SSAValue) else b
        wrap = lambda v: v if isinstance(v, SSAValue) else self.const(v, like)  # noqa: E731
        return wrap(a), wrap(b)

    def add(self, a, b) -> SSAValue:
        return self.op(nn.AddOp, *self._pair(a, b))

    def sub(self, a, b) -> SSAValue:
        return self.op(nn.SubOp, *self._pair(a, b))

    def mul(self, a, b) -> SSAValue:
        return self.op(nn.MulOp, *self._pair(a, b))

    def div(self, a, b) -> SSAValue:
        return self.op(nn.DivOp, *self._pair(a, b))

    def neg(self, a: SSAValue) -> SSAValue:
        return self.op(nn.NegOp, a)

    def cmp(self, predicate: str, a, b) -> SSAValue:
        return self.op(nn.CmpOp, *self._pair(a, b), predicate=StringAttr(predicate))

    def select(self, cond: SSAValue, a, b) -> SSAValue:
        a, b = self._pair(a, b)
        return self.op(nn.SelectOp, cond, a, b)

    def reduce_sum(self, x: SSAValue, axes: Sequence[int], keepdims: bool) -> SSAValue:
        props = {"axes": nn.int_array(axes)}
        if keepdims:
            props["keepdims"] = UnitAttr()
        return self.op(nn.ReduceSumOp, x, **props)

    def transpose_last(self, x: SSAValue) -> SSAValue:
        rank = x.type.get_num_dims()
        perm = [*range(rank - 2), rank - 1, rank - 2]
        return self.op(nn.TransposeOp, x, perm=nn.int_array(perm))

    def sum_to(self, g: SSAValue, target: SSAValue) -> SSAValue:
        """Undo broadcasting: sum `g` over the axes along which `target` was broadcast."""
        g_shape, t_shape = g.type.get_shape(), target.type.get_shape()
        lead = len(g_shape) - len(t_shape)
        stretched = [
            lead + i for i, (t, r) in enumerate(zip(t_shape, g_shape[lead:])) if t == 1 and r != 1
        ]
        if stretched:
            g = self.reduce_sum(g, stretched, keepdims=True)
        if lead:
            g = self.reduce_sum(g, list(range(lead)), keepdims=False)
        return g

    def zeros_like(self, x: SSAValue) -> SSAValue:
        return self.broadcast_like(self.const(0.0, x), x)

    def broadcast_like(self, g: SSAValue, x: SSAValue) -> SSAValue:
        """Broadcast `g` (x's shape with some dims 1 or missing at the front) to x's shape."""
        if g.type == x.type:
            return g
        has_dyn = DYN in x.type.get_shape()
        operands = (g, x) if has_dyn else (g,)
        return self.op(nn.BroadcastToOp, *operands, result_type=x.type)

    def restore_axes(self, g: SSAValue, x: SSAValue, axes: Sequence[int], keepdims: bool):
        """The cotangent of a reduction over `axes` of `x`, broadcast back to x's shape."""
        rank = x.type.get_num_dims()
        axes = sorted({a % rank for a in axes} or range(rank))
        leading = axes == list(range(len(axes)))  # broadcasting restores leading axes itself
        if not keepdims and not leading:
            shape = [1 if i in axes else d for i, d in enumerate(x.type.get_shape())]
            if shape.count(DYN) > 1:
                raise NoDerivative(
                    f"cannot restore the reduced axes of {format_type(x.type)}: more than one "
                    "dimension is known only at run time (reduce with keepdims=true instead)"
                )
            g = self.op(nn.ReshapeOp, g, result_type=TensorType(g.type.element_type, shape))
        return self.broadcast_like(g, x)
