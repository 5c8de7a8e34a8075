"""Subscripts: `x[1:3, ::2]` and `x[..., 0]` become `nn.slice` (plus `nn.reshape` to drop
integer-indexed dims); `table[ids]` with an integer tensor becomes `nn.gather`; a compile-time
list is indexed in Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from irnet.dialects import nn
from irnet.dialects.shapes import DYN, format_type

from . import ast
from .diagnostics import IrnError
from .function_builder import FunctionBuilder


@dataclass(frozen=True)
class Bounds:
    """An evaluated `start:stop:step`; None where omitted."""

    start: int | None = None
    stop: int | None = None
    step: int | None = None


ELLIPSIS = "..."
"""An evaluated `...` subscript."""


def index(fb: FunctionBuilder, value: Any, subscripts: list, loc: ast.Loc) -> Any:
    """`value[subscripts]`, each subscript a `Bounds`, `ELLIPSIS` or an evaluated value."""
    if isinstance(value, list):
        return index_list(value, subscripts, loc)
    x = fb.tensor(value, loc)
    resolved = subscripts
    if any(isinstance(s, SSAValue) for s in resolved):
        if len(resolved) != 1:
            raise IrnError("a tensor index must be the only subscript, as in `table[ids]`", loc)
        return fb.op(nn.GatherOp, [x, resolved[0]], loc, axis=nn.int_attr(0))
    return basic_slice(fb, x, resolved, loc)


def index_list(items: list, subscripts: list, loc: ast.Loc) -> Any:
    if len(subscripts) != 1 or subscripts[0] is ELLIPSIS:
        raise IrnError("a list takes one subscript", loc)
    sub = subscripts[0]
    if isinstance(sub, Bounds):
        if sub.step is not None and sub.step < 1:
            raise IrnError("slice steps must be positive", loc)
        return items[sub.start : sub.stop : sub.step]
    if isinstance(sub, bool) or not isinstance(sub, int):
        raise IrnError("a list index must be an integer", loc)
    if not -len(items) <= sub < len(items):
        raise IrnError(f"index {sub} is out of range for a list of {len(items)}", loc)
    return items[sub]


def basic_slice(fb: FunctionBuilder, x: SSAValue, subs: list, loc: ast.Loc) -> SSAValue:
    shape = x.type.get_shape()
    ellipses = [i for i, s in enumerate(subs) if s is ELLIPSIS]
    if len(ellipses) > 1:
        raise IrnError("only one `...` is allowed in a subscript", loc)
    explicit = len(subs) - len(ellipses)
    if explicit > len(shape):
        raise IrnError(f"too many subscripts ({explicit}) for {format_type(x.type)}", loc)
    if ellipses:
        i = ellipses[0]
        subs = [*subs[:i], *[Bounds()] * (len(shape) - explicit), *subs[i + 1 :]]
    subs = subs + [Bounds()] * (len(shape) - len(subs))
    starts, stops, steps, keep = [], [], [], []
    for axis, (sub, size) in enumerate(zip(subs, shape)):
        if isinstance(sub, Bounds):
            step = 1 if sub.step is None else sub.step
            if step < 1:
                raise IrnError("slice steps must be positive", loc)
            start = normalise(sub.start, size, 0, axis, loc)
            stop = normalise(sub.stop, size, nn.SLICE_END if size == DYN else size, axis, loc)
            keep.append(True)
        else:
            i = fb.int(sub, "an index", loc)
            if size != DYN and not -size <= i < size:
                raise IrnError(
                    f"index {i} is out of range for dimension {axis} of size {size}", loc
                )
            start = normalise(i, size, 0, axis, loc)
            stop, step = start + 1, 1
            keep.append(False)
        starts.append(start)
        stops.append(max(stop, start))
        steps.append(step)
    sliced = fb.op(
        nn.SliceOp,
        [x],
        loc,
        starts=nn.int_array(starts),
        stops=nn.int_array(stops),
        steps=nn.int_array(steps),
    )
    if all(keep):
        return sliced
    kept_shape = [d for d, k in zip(sliced.type.get_shape(), keep) if k]
    return fb.op(
        nn.ReshapeOp, [sliced], loc, result_type=TensorType(x.type.element_type, kept_shape)
    )


def normalise(bound: int | None, size: int, default: int, axis: int, loc: ast.Loc) -> int:
    if bound is None:
        return default
    if bound < 0:
        if size == DYN:
            raise IrnError(
                f"negative index {bound} on dimension {axis}, whose size is known only at run time",
                loc,
            )
        bound += size
    return max(0, min(bound, size)) if size != DYN else bound
