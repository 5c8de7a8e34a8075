"""Small pieces of emitted source shared by the emitters: names, indices, shapes, locations."""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute, Operation, SSAValue

from irnet.diagnostics import IrnError, error_at, source_loc
from irnet.dialects import nn
from irnet.dialects.kernel import YieldOp


def shape_of(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


def tuple_src(items: Sequence[str | int]) -> str:
    items = [str(i) for i in items]
    if len(items) == 1:
        return f"({items[0]},)"
    return "(" + ", ".join(items) + ")"


def index_src(items: Sequence[str]) -> str:
    return "[()]" if not items else "[" + ", ".join(items) + "]"


def arith(a: str | int, op: str, b: str | int) -> str:
    """`a op b` as source, computed now when both are static."""
    if str(a).isdigit() and str(b).isdigit():
        return str(int(a) * int(b) if op == "*" else int(a) // int(b))
    return f"{a} {op} {b}"


def describe_location(location: Attribute) -> str:
    loc, notes = source_loc(location)
    if loc is None:
        return "unknown location"
    chain = [n.removeprefix("called from ") for n in notes]
    return str(loc) + "".join(f" <- {c}" for c in chain)


def op_summary(ops: Sequence[Operation]) -> str:
    names = [op.name for op in ops if not isinstance(op, nn.ConstantOp | YieldOp)]
    return ", ".join(names)


RESERVED = {
    "np", "njit", "prange", "intrinsic", "run", "FUNCTIONS", "ARGUMENTS", "SITES", "FASTMATH",
    "JIT", "KernelError", "NonFiniteError", "ArgumentError",
}  # fmt: skip
"""Module-level names of the emitted module that an entry point or argument must not shadow."""


def python_name(name: str, taken: set[str]) -> str:
    """`name` as a fresh identifier that shadows nothing of the module (its helpers start with
    `_`, its kernels with `k<digits>_`)."""
    base = re.sub(r"\W", "_", name) or "arg"
    if (
        base[0].isdigit()
        or keyword.iskeyword(base)
        or base.startswith("_")
        or base in RESERVED
        or re.match(r"k\d+_", base)
    ):
        base = "a_" + base.lstrip("_")
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


def axes_of(op: Operation, rank: int) -> list[int]:
    """A reduction's or axis_size's axes, normalised; all of them when none are listed."""
    axes = sorted({a % rank for a in nn.get_ints(op.properties, "axes")}) if rank else []
    return axes or list(range(rank))


def unsupported(op: Operation, target: str) -> IrnError:
    """The error for an op that `target` has no rule for, at the op's source line."""
    if op.name.startswith("ad."):
        hint = "run the autodiff pass first"
    elif isinstance(op, func.CallOp):
        hint = "inline calls first (inline-functions)"
    elif op.name.startswith("nn."):
        hint = f"no {target} lowering is registered for it"
    else:
        hint = f"the {target} target compiles `nn`, `kernel` and `func` ops"
    return error_at(f"{op.name}: the {target} target cannot compile this op ({hint})", op.location)
