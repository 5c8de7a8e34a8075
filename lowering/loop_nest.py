"""One loop nest: the elementwise ops of a kernel over one iteration domain, ended by at most one
reduction, as Numba source. Each op's value at a point is its scalar formula (the `Elementwise`
trait) in the target's spelling, or its point rule (`POINT_RULES`) when it reads the loop
index or shapes. `LoopNest.code` gives the nest without its loops; `lines` wraps it in the cpu
target's loops, and the cuda target's `CudaLoopNest` in its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from xdsl.ir import Attribute, Operation, SSAValue

from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.registry import Registry
from irnet.dialects.shapes import DYN
from irnet.dialects.traits import Elementwise, Reduction

from .fusion import is_inlined_constant
from .source import axes_of, index_src, shape_of, unsupported


class Spelling(Protocol):
    """How a target spells scalars (the module emitter of the cpu or cuda target)."""

    target: str

    def np_type(self, t: Attribute) -> str: ...

    def literal(self, value: float | int | bool, np_type: str) -> str: ...

    def call(self, name: str, args: list[str], np_type: str) -> str:
        """A formula's call `name(args)` (`where`, `cast`, `exp`, ...) with a result of
        `np_type`."""
        ...


PARALLEL_VOLUME = 1 << 17
"""Iterations (with `?` taken as 64) from which a loop nest runs its outer loop in parallel,
when parallel loops are enabled at all."""


def reduction_identity(is_max: bool, np_type: str) -> float | int:
    if not is_max:
        return 0
    return -math.inf if "float" in np_type else int(np.iinfo(np_type.removeprefix("np.")).min)


@dataclass
class ReductionCode:
    """The reduction that ends a loop nest, as source pieces."""

    value: str
    """The reduced operand at the current point."""
    out: str
    """The output array."""
    axes: list[int]
    keep: bool
    dtype: str
    kind: str
    """"sum" or "max"."""
    mean: bool
    """Divide the sum by `cnt` (set in the nest's `pre`)."""
    init: str

    def combine(self, acc: str, value: str) -> str:
        if self.kind == "max":  # NaN wins, as in NumPy
            return f"{value} if ({value} > {acc}) | ({value} != {value}) else {acc}"
        return f"{acc} + {value}"

    def finish(self, acc: str) -> str:
        return f"{acc} / cnt" if self.mean else acc

    def index(self, loop_vars: Sequence[str]) -> list[str]:
        """The output's index at a point of the nest."""
        idx = [("0" if self.keep else "") if d in self.axes else v for d, v in enumerate(loop_vars)]
        return [i for i in idx if i]


@dataclass
class NestCode:
    """A loop nest's code without its loops (`LoopNest.code`)."""

    pre: list[str]
    """Before the loops: sizes, invariant loads, axis sizes."""
    sizes: list[str]
    """The length of each loop (names that `pre` sets)."""
    loop_vars: list[str]
    body: list[str]
    """At each point: loads, computations, stores (not the reduction's update)."""
    reduction: ReductionCode | None


class LoopNest:
    """The elementwise ops of a kernel over one iteration domain, ended by at most one
    reduction. Values read from arrays are loaded first in the loop body, results stored last,
    so an output may share its buffer with an operand read at the same index."""

    def __init__(
        self,
        emitter: Spelling,
        domain: tuple[int, ...],
        ops: Sequence[Operation],
        outputs: Sequence[SSAValue],
        preset: dict[SSAValue, str] | None = None,
        allow_flat: bool = True,
    ):
        self.m = emitter
        self.allow_flat = allow_flat
        self.domain = domain
        self.rank = len(domain)
        self.ops = [op for op in ops if not is_inlined_constant(op)]
        self.outputs = list(outputs)
        self.preset = dict(preset or {})
        """Values read at the domain index from a named array (a matmul's product)."""
        self.scalars: dict[SSAValue, str] = {}
        """Preset values that are a local variable at each point instead (a matmul kernel's
        accumulator, for an epilogue run as each product element is made)."""
        self.defined = {r for op in self.ops for r in op.results}
        self.reduction = self.ops[-1] if self.ops and self.ops[-1].has_trait(Reduction) else None
        self.inputs: list[SSAValue] = []
        self.bindings: list[tuple[SSAValue, int, int]] = []
        """(input, input axis, domain axis) for every read that maps an input axis onto the
        domain: the run-time sizes that must agree."""
        for op in self.ops:
            for i, value in enumerate(op.operands):
                if (
                    value in self.defined
                    or value in self.preset
                    or is_inlined_constant(value.owner)
                ):
                    continue
                if value not in self.inputs:
                    self.inputs.append(value)
                self.bind(op, i, value)

    def bind(self, op: Operation, index: int, value: SSAValue) -> None:
        s = shape_of(value)
        if isinstance(op, nn.AxisSizeOp):
            return
        if isinstance(op, nn.OneHotOp):
            self.bindings += [(value, k, k) for k in range(len(s))]
            return
        if isinstance(op, nn.BroadcastToOp) and index == 1:
            # `like` sizes the result axes its like_axes name (all of them, without)
            self.bindings += [(value, k, d) for d, k in enumerate(op.like_axis_map()) if k >= 0]
            return
        if op.has_trait(Reduction):
            self.bindings += [(value, k, k) for k in range(len(s))]
            return
        offset = self.rank - len(s)
        self.bindings += [(value, k, offset + k) for k in range(len(s)) if s[k] != 1]

    # properties

    @staticmethod
    def shape_only(op: Operation, index: int) -> bool:
        """Whether operand `index` of `op` is used for its shape only."""
        trait = op.get_trait(Elementwise)
        return trait is not None and index in trait.shape_operands

    def is_domain_shaped(self, value: SSAValue) -> bool:
        return value is not None and value in self.defined and value is not self.reduction_value

    @property
    def reduction_value(self) -> SSAValue | None:
        return self.reduction.results[0] if self.reduction else None

    def flat(self) -> bool:
        """One loop over the flattened arrays: no reduction, no index-dependent op, and every
        input of the domain's shape or invariant."""
        if not self.allow_flat or self.rank < 1 or self.reduction is not None:
            return False
        if any(op.get_trait(Elementwise).formula is None for op in self.ops):
            return False  # an op reads the loop index or a shape
        for value in [*self.inputs, *self.preset]:
            s = shape_of(value)
            if s != self.domain and any(d != 1 for d in s):
                return False
        return True

    def is_invariant(self, value: SSAValue) -> bool:
        return all(d == 1 for d in shape_of(value))

    def volume(self) -> int:
        return math.prod(64 if d == DYN else d for d in self.domain)

    # source

    def code(self, names: dict[SSAValue, str], out_names: Sequence[str]) -> NestCode:
        """The nest's code without its loops: what each target wraps in its own loops."""
        flat = self.flat()
        rank = self.rank
        pre: list[str] = []
        out_of = dict(zip(self.outputs, out_names))

        def ivar(d: int) -> str:
            return "i" if flat else f"i{d}"

        # sizes
        if flat:
            source = next(
                (n for v, n in zip(self.outputs, out_names) if self.is_domain_shaped(v)), None
            ) or next(names[v] for v in self.inputs if shape_of(v) == self.domain)
            pre.append(f"n = {source}.shape[0]")
            sizes = ["n"]
            loop_vars = ["i"]
        else:
            sizes = []
            for d, size in enumerate(self.domain):
                sizes.append(f"n{d}")
                value = "1" if size == 1 else self.size_source(d, names, out_of, size)
                pre.append(f"n{d} = {value}")
            loop_vars = [ivar(d) for d in range(rank)]

        # loads (invariant ones before the loops), computations, stores
        local: dict[SSAValue, str] = {}
        loads: dict[str, str] = {}
        load_lines: list[str] = []
        counter = [0]

        def fresh(prefix: str) -> str:
            counter[0] += 1
            return f"{prefix}{counter[0]}"

        def load(array: str, index: list[str]) -> str:
            src = f"{array}{index_src(index)}"
            if src not in loads:
                loads[src] = fresh("x")
                invariant = all(i == "0" for i in index)
                (pre if invariant else load_lines).append(f"{loads[src]} = {src}")
            return loads[src]

        def read(op: Operation, value: SSAValue) -> str:
            if value in local:
                return local[value]
            if is_inlined_constant(value.owner):
                const = value.owner
                assert isinstance(const, nn.ConstantOp)
                return self.m.literal(const.splat_value(), self.m.np_type(value.type))
            s = shape_of(value)
            if value in self.scalars:
                return self.scalars[value]
            if value in self.preset:
                return load(
                    self.preset[value], loop_vars if flat else [ivar(d) for d in range(rank)]
                )
            array = names[value]
            if flat:
                idx = ["i"] if s == self.domain else ["0"] * len(s)
            elif isinstance(op, nn.OneHotOp) or op.has_trait(Reduction):
                idx = ["0" if s[k] == 1 else ivar(k) for k in range(len(s))]
            else:
                offset = rank - len(s)
                idx = ["0" if s[k] == 1 else ivar(offset + k) for k in range(len(s))]
            return load(array, idx)

        compute: list[str] = []
        for op in self.ops:
            if op is self.reduction:
                break
            args = [
                "" if self.shape_only(op, i) else read(op, v) for i, v in enumerate(op.operands)
            ]
            name = fresh("v")
            local[op.results[0]] = name
            line = f"{name} = {self.expr(op, args, ivar, names, sizes)}"
            invariant = all(self.shape_only(op, i) for i in range(len(op.operands)))
            (pre if invariant and op.operands else compute).append(line)

        stores = []
        for value, oname in zip(self.outputs, out_names):
            if value is self.reduction_value or value in self.preset:
                continue
            stores.append(f"{oname}{index_src(loop_vars)} = {local[value]}")

        reduction = None
        if self.reduction is not None:
            red = self.reduction
            trait = red.get_trait(Reduction)
            dtype = self.m.np_type(red.results[0].type)
            reduction = ReductionCode(
                value=read(red, red.operands[0]),
                out=out_of[red.results[0]],
                axes=axes_of(red, rank),
                keep="keepdims" in red.properties,
                dtype=dtype,
                kind=trait.kind,
                mean=trait.mean,
                init=self.m.literal(reduction_identity(trait.kind == "max", dtype), dtype),
            )
            if reduction.mean:
                count = " * ".join(sizes[d] for d in reduction.axes) or "1"
                pre.append(f"cnt = {dtype}({count})")
        return NestCode(pre, sizes, loop_vars, [*load_lines, *compute, *stores], reduction)

    def lines(
        self, names: dict[SSAValue, str], out_names: Sequence[str], parallel: bool
    ) -> tuple[list[str], bool]:
        """The kernel body lines (indented once) and whether the outer loop is a prange."""
        code = self.code(names, out_names)
        rank = self.rank
        pre, sizes, loop_vars = list(code.pre), code.sizes, code.loop_vars
        # the reduction: a scalar accumulator when it reduces the innermost axes, else an
        # update of the output at each point
        red_pre: list[str] = []
        red_update: list[str] = []
        red_post: list[str] = []
        post: list[str] = []
        suffix, kept = True, rank
        red = code.reduction
        if red is not None:
            ridx = red.index(loop_vars)
            suffix = red.axes == list(range(rank - len(red.axes), rank))
            if suffix:
                kept = rank - len(red.axes)
                red_pre.append(f"acc = {red.init}")
                red_update.append(f"acc = {red.combine('acc', red.value)}")
                red_post.append(f"{red.out}{index_src(ridx)} = {red.finish('acc')}")
            else:
                pre.append(f"{red.out}[...] = {red.init}")
                target = f"{red.out}{index_src(ridx)}"
                red_update.append(f"{target} = {red.combine(target, red.value)}")
                if red.mean:
                    post += [
                        f"{red.out}f = {red.out}.reshape(-1)",
                        f"for j in range({red.out}f.shape[0]):",
                        f"    {red.out}f[j] = {red.out}f[j] / cnt",
                    ]

        # parallel outer loop: only where iterations write disjoint elements
        use_prange = parallel and rank > 0 and self.volume() >= PARALLEL_VOLUME
        if red is not None:
            use_prange = use_prange and (kept > 0 if suffix else 0 not in red.axes)

        lines = pre
        inner = [*code.body, *red_update]
        depth = 0
        for d, var in enumerate(loop_vars):
            if d == kept:
                lines += ["    " * depth + s for s in red_pre]
            rng = "prange" if use_prange and d == 0 else "range"
            lines.append("    " * depth + f"for {var} in {rng}({sizes[d]}):")
            depth += 1
        if kept == len(loop_vars):
            lines += ["    " * depth + s for s in red_pre]
        lines += ["    " * depth + s for s in inner]
        lines += ["    " * kept + s for s in red_post]
        lines += post
        return ["    " + s for s in lines], use_prange

    def size_source(self, d: int, names: dict[SSAValue, str], out_of: dict, size: int) -> str:
        """Dimension `d` of the domain read from an argument's shape (so that one kernel
        serves every size), else the static size."""
        for value, oname in out_of.items():
            if self.is_domain_shaped(value):
                return f"{oname}.shape[{d}]"
        for name in self.preset.values():
            return f"{name}.shape[{d}]"
        for value, k, axis in self.bindings:
            if axis == d and shape_of(value)[k] != 1:
                return f"{names[value]}.shape[{k}]"
        if self.reduction is not None:
            red = self.reduction
            r_out = out_of.get(red.results[0])
            axes = axes_of(red, self.rank)
            keep = "keepdims" in red.properties
            if d not in axes:
                k = d if keep else d - sum(1 for a in axes if a < d)
                return f"{r_out}.shape[{k}]"
        if size != DYN:
            return str(size)
        raise IrnError(f"internal: no source for dimension {d} of a loop nest")

    def expr(self, op, args, ivar, names, size_names) -> str:
        """The value of `op` at the current point, from its operands' values `args`: its
        scalar formula in this target's spelling, else its point rule."""
        np_type = self.m.np_type(op.results[0].type)
        trait = op.get_trait(Elementwise)
        formula = trait.formula_of(op) if trait is not None else None
        if formula is not None:
            return formula.render(
                args,
                lambda value: self.m.literal(value, np_type),
                lambda name, call_args: self.m.call(name, call_args, np_type),
            )
        rule = POINT_RULES.get(type(op))
        if rule is None:
            raise unsupported(op, self.m.target)
        return rule(self, op, args, ivar, names, size_names)


PointRule = Callable[..., str]
POINT_RULES: Registry[PointRule] = Registry("point rule")
"""Elementwise ops without a formula (they read the loop index or operand shapes): their value
at a point of a loop nest, for every target."""


@POINT_RULES.register(nn.OneHotOp)
def one_hot_at(nest: LoopNest, op, args, ivar, names, size_names) -> str:
    np_type = nest.m.np_type(op.results[0].type)
    return f"{np_type}({args[0]} == {ivar(nest.rank - 1)})"


@POINT_RULES.register(nn.IotaOp)
def iota_at(nest: LoopNest, op, args, ivar, names, size_names) -> str:
    """The loop index of the axis: the op's result has the nest's shape (fusion groups ops by
    their result's shape)."""
    rank = len(shape_of(op.results[0]))
    index = ivar(nest.rank - rank + nn.get_int(op.properties, "axis") % rank) if rank else "0"
    return f"{nest.m.np_type(op.results[0].type)}({index})"


@POINT_RULES.register(nn.AxisSizeOp)
def axis_size_at(nest: LoopNest, op, args, ivar, names, size_names) -> str:
    (value,) = op.operands
    axes = axes_of(op, len(shape_of(value)))
    if value in names:
        dims = [f"{names[value]}.shape[{k}]" for k in axes]
    else:
        dims = [size_names[k] for k in axes]
    return f"{nest.m.np_type(op.results[0].type)}({' * '.join(dims) or '1'})"
