"""`scan(cell, init, xs)`: a loop over a run-time extent, built as one `nn.scan` op.

The cell is a `def` called once per step with the carry and one slice of each sequence; it
returns the next carry, and the loop returns every step's carry stacked along `axis`
(PyTorch's `nn.GRU` output, JAX's `lax.scan` with the carry as output). The cell's body is
traced once, into the op's region: its parameters are declared once and shared by every step,
and the IR's size does not depend on the number of steps, which may be known only at run time.
"""

from __future__ import annotations

from typing import Any

from xdsl.dialects import func
from xdsl.ir import Block, Operation, Region, SSAValue

from irnet.dialects import nn
from irnet.dialects.shapes import ShapeError, format_type

from . import ast
from .diagnostics import IrnError
from .function_builder import FunctionBuilder, describe, location
from .imports import FunctionRef


def scan(
    fb: FunctionBuilder,
    loc: ast.Loc,
    cell: Any,
    init: Any,
    xs: Any,
    axis: Any,
    reverse: Any,
) -> SSAValue:
    """Run `cell(carry, x1[t], x2[t], ...)` for each `t` along `axis` of the sequences `xs` (a
    tensor or a list), starting from carry `init`; the carries after each step, stacked."""
    if not isinstance(cell, FunctionRef) or cell.fn.kind != "def":
        raise IrnError(f"scan() runs a def function as its step, got {describe(cell)}", loc)
    carry = fb.tensor(init, loc)
    sequences = [fb.tensor(x, loc) for x in (xs if isinstance(xs, list) else [xs])]
    axis = fb.int(axis, "axis", loc)
    leading = [to_front(fb, x, axis, loc) for x in sequences]
    axis %= sequences[0].type.get_num_dims()
    step = Block(arg_types=[carry.type, *(nn.step_of(x.type) for x in leading)])
    for arg, declared in zip(step.args, cell.fn.args):
        arg.name_hint = declared.name
    spec, operands, states = fb.gen.instantiate(fb, cell, loc, list(step.args), [])
    if states:
        raise IrnError(
            f"scan(): '{cell.fn.name}' holds state ({', '.join(states)}); a step of a loop "
            "cannot update model state",
            loc,
        )
    if spec.result_type != carry.type:
        raise IrnError(
            f"scan(): '{cell.fn.name}' returns {format_type(spec.result_type)}, but its carry "
            f"is {format_type(carry.type)}; a step must return the next carry, of the same type",
            loc,
        )
    call = func.CallOp(spec.symbol, operands, [spec.result_type])
    call.location = location(loc)
    step.add_op(call)
    end = nn.YieldOp([call.res[0], call.res[0]])
    end.location = call.location
    step.add_op(end)
    consts = capture(step)
    for arg in step.args:
        arg.location = location(loc)
    try:
        op = nn.ScanOp([carry], leading, consts, Region(step), fb.flag(reverse, "reverse", loc))
    except ShapeError as e:
        raise IrnError(f"scan(): {e}", loc) from None
    fb.emit(op, loc)
    return from_front(fb, op.ys[0], axis, loc)


def capture(step: Block) -> list[SSAValue]:
    """Make the step isolated from above: each value it reads from outside (the cell's
    parameters) becomes a block argument, and is returned to be passed in."""
    outside: list[SSAValue] = []
    for op in step.walk():
        outside += [v for v in op.operands if not inside(v.owner, step) and v not in outside]
    for value in outside:
        arg = step.insert_arg(value.type, len(step.args))
        arg.name_hint = value.name_hint
        value.replace_uses_with_if(arg, lambda use: inside(use.operation, step))
    return outside


def inside(owner: Operation | Block, block: Block) -> bool:
    """Whether `owner` (an op, or the block of an argument) is `block` or nested in it."""
    current: Operation | Block | None = owner
    while current is not None:
        if current is block:
            return True
        current = current.parent_op() if isinstance(current, Block) else current.parent_block()
    return False


def to_front(fb: FunctionBuilder, x: SSAValue, axis: int, loc: ast.Loc) -> SSAValue:
    """`x` with `axis` moved to the front, the axis a scan runs over."""
    rank = x.type.get_num_dims()
    if rank == 0:
        raise IrnError(f"scan() runs over an axis of each sequence, got {describe(x)}", loc)
    if not -rank <= axis < rank:
        raise IrnError(f"scan(): axis {axis} is out of range for {format_type(x.type)}", loc)
    axis %= rank
    if axis == 0:
        return x
    perm = [axis, *(d for d in range(rank) if d != axis)]
    return fb.op(nn.TransposeOp, [x], loc, perm=nn.int_array(perm))


def from_front(fb: FunctionBuilder, ys: SSAValue, axis: int, loc: ast.Loc) -> SSAValue:
    """The stacked outputs `ys` ([T, ...]) with T moved to `axis`."""
    rank = ys.type.get_num_dims()
    if axis >= rank:
        raise IrnError(
            f"scan(): the outputs {format_type(ys.type)} have no axis {axis} to stack along", loc
        )
    if axis == 0:
        return ys
    perm = [*range(1, axis + 1), 0, *range(axis + 1, rank)]
    return fb.op(nn.TransposeOp, [ys], loc, perm=nn.int_array(perm))
