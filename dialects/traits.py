"""What the passes and targets need to know about an op, declared on its class as xDSL traits.

Fusion, memory planning, autodiff, the reference interpreter and the emitters ask an op for
these (`op.get_trait(Elementwise)`, `op.has_trait(HostOnly)`, ...); none keeps its own list of
ops. `dialects/nn.py` attaches them with `traits_def(...)` next to each op's type rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from xdsl.ir import Operation
from xdsl.traits import OpTrait

from .formula import Formula


@dataclass(frozen=True)
class Elementwise(OpTrait):
    """The op computes each element of its result from the elements of its operands at the same
    (broadcast) index, so it can join a fused loop nest.

    `formula` is the scalar computation, written once (`dialects/formula.py`): the reference
    interpreter evaluates it on NumPy arrays, the cpu and cuda emitters render it as Numba
    source. A callable builds it from the op (when properties decide it, as `nn.cmp`'s
    predicate). Without a formula the op is index- or shape-dependent (`nn.one_hot`,
    `nn.axis_size`) and every target gives it a rule of its own.

    `in_place`: the result may overwrite an operand of the same type (it is read at the index
    the result is written). `shape_operands`: operands read for their shape only."""

    formula: Formula | Callable[[Operation], Formula] | None = None
    in_place: bool = True
    shape_operands: tuple[int, ...] = ()

    def formula_of(self, op: Operation) -> Formula | None:
        if self.formula is None or isinstance(self.formula, Formula):
            return self.formula
        return self.formula(op)


@dataclass(frozen=True)
class Reduction(OpTrait):
    """The op folds its operand over the `axes` property (all axes when empty): a sum, a mean
    (the sum divided by the count) or a maximum. It can end a fused loop nest."""

    kind: Literal["sum", "max"]
    mean: bool = False


@dataclass(frozen=True)
class View(OpTrait):
    """The result shares its operand's buffer (a reshape of a contiguous array): memory
    planning gives it no buffer of its own, and the operand lives as long as the view."""


@dataclass(frozen=True)
class HostOnly(OpTrait):
    """The value is made by the host, not by a kernel: a constant, a random draw from the
    reference's stream, the training flag."""


@dataclass(frozen=True)
class NotDifferentiable(OpTrait):
    """The result carries no derivative (comparisons, argmax, one-hot): a gradient that must
    flow through it is an error at the op's source line."""


@dataclass(frozen=True)
class ShapeOnly(OpTrait):
    """The result depends on its operands' shapes, not their values (or on none): no gradient
    flows to the operands, and none is needed."""


def elementwise(*args: str, **options: object) -> Elementwise:
    """`Elementwise` with a formula over operands named `args` (`"x"` alone when none are
    given): `elementwise("exp(x)")`, `elementwise("x + y", "x", "y")`."""
    text, *names = args
    return Elementwise(Formula(text, tuple(names) or ("x",)), **options)  # type: ignore[arg-type]
