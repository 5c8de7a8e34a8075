"""Emission for the `cpu` target: a Python module of Numba `@njit` kernels and one plain-Python
entry point per public function, which needs only NumPy and Numba to import and run.

Each top-level op of a function becomes one *site*: a call of one kernel.

- `kernel.fused` ops (`fuse-elementwise`) and lone elementwise ops and reductions become one
  loop nest each; one whose operands all have its shape (or are scalars) runs over the flattened
  arrays, so that one kernel serves every rank;
- `nn.matmul` calls BLAS (`np.dot`, transposed operands as flags) and runs its fused epilogue
  over the product;
- convolutions go through im2col and BLAS, pooling and their gradients are hand-written loops
  (`cpu_runtime.HELPERS`); layout ops (transpose, slice, concat, gather, ...) are generated loops;
- `nn.reshape` is a NumPy view, `nn.random_uniform` is drawn on the host from the reference's
  stream, `nn.constant` (when not a literal in a kernel) is a module-level array.

Identical kernels are written once. Kernels take their shapes from their arguments, so `?`
dimensions are run-time sizes; the entry points check the sizes that the IR types assume equal
before calling a kernel, since kernels do not check bounds. Each site's output buffers follow
the `memplan.buffers` attribute of `plan-memory` when present (a workspace slot reused across
calls, in place of an operand, or fresh), and are fresh arrays otherwise.

The `emit-cpu` pass runs the emitter and records on every top-level op the kernel it became
(`cpu.kernel`); `emit_module` returns the source, the sites (to map a kernel back to its ops and
their source locations) and the entry points.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    Float32Type,
    Float64Type,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass

from irnet.diagnostics import IrnError, error_at, source_loc
from irnet.dialects import nn
from irnet.dialects.kernel import FusedOp, YieldOp
from irnet.dialects.shapes import DYN, format_type
from irnet.dialects.traits import Elementwise, Reduction

from . import cpu_runtime
from .fusion import is_inlined_constant

EMITTER_VERSION = "3"
"""Part of the compile cache key: bump when the emitted code changes for the same IR."""

PARALLEL_VOLUME = 1 << 17
"""Iterations (with `?` taken as 64) from which a loop nest runs its outer loop in parallel,
when parallel loops are enabled at all."""


@dataclass(frozen=True)
class CpuOptions:
    float_dtype: str | None = None
    """"float64" computes every float tensor in float64 (as `Reference(float_dtype=...)`)."""
    parallel: bool = False
    """`prange` outer loops (and `parallel=True`) in kernels of at least PARALLEL_VOLUME
    iterations; it pays only with several cores."""

    def key(self) -> str:
        return f"float_dtype={self.float_dtype},parallel={self.parallel}"


@dataclass
class Site:
    index: int
    kernel: str
    op: Operation
    """The top-level op: a `kernel.fused` or a single `nn` op."""
    ops: list[Operation]
    """The `nn` ops the kernel runs, in order (a fused region's ops)."""
    inputs: list[SSAValue]
    """The values that `ops` read from outside, in the kernel's order (fused: block args)."""
    outputs: list[SSAValue]
    """The values of `ops` the kernel writes, in the kernel's order (fused: yielded values)."""


@dataclass
class Entry:
    symbol: str
    python_name: str
    arg_names: list[str]
    error: IrnError | None = None


@dataclass
class EmittedModule:
    source: str
    sites: list[Site]
    entries: dict[str, Entry]


# --- small helpers -----------------------------------------------------------------------------


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


def unsupported(op: Operation) -> IrnError:
    if op.name.startswith("ad."):
        hint = "run the autodiff pass first"
    elif isinstance(op, func.CallOp):
        hint = "inline calls first (inline-functions)"
    else:
        hint = "the cpu target compiles `nn`, `kernel` and `func` ops"
    return error_at(f"{op.name}: the cpu target cannot compile this op ({hint})", op.location)


# --- the module --------------------------------------------------------------------------------


class ModuleEmitter:
    runtime = cpu_runtime
    """The target's fixed parts: PRELUDE, HELPERS and their DEPENDS."""

    def __init__(self, module: ModuleOp, options: CpuOptions, source_name: str = ""):
        self.module = module
        self.options = options
        self.source_name = source_name
        self.kernel_names: dict[str, str] = {}
        """Kernel body (with `{name}`) -> its function name."""
        self.kernel_defs: dict[str, tuple[str, str]] = {}
        """Function name -> (body, ops summary)."""
        self.kernel_sites: dict[str, list[int]] = {}
        self.helpers: list[str] = []
        self.constants: list[str] = []
        self.sites: list[Site] = []
        self.site_rows: list[tuple[str, str, str]] = []
        self.entries: dict[str, Entry] = {}
        self.entry_lines: list[str] = []
        self.taken_names: set[str] = set()

    # dtypes and literals

    def np_type(self, t: Attribute) -> str:
        element = t.element_type if isinstance(t, TensorType) else t
        if isinstance(element, Float32Type | Float64Type):
            if self.options.float_dtype:
                return f"np.{self.options.float_dtype}"
            return "np.float32" if isinstance(element, Float32Type) else "np.float64"
        if isinstance(element, IntegerType):
            width = element.width.data
            if width == 1:
                return "np.bool_"
            if width in (8, 16, 32, 64):
                return f"np.int{width}"
        raise IrnError(f"the cpu target has no dtype for {element}")

    def literal(self, value: float | int | bool, np_type: str) -> str:
        if np_type == "np.bool_":
            return "True" if value else "False"
        if np_type.startswith("np.float"):
            v = float(value)
            text = "np.nan" if math.isnan(v) else ("np.inf" if v > 0 else "-np.inf")
            if math.isfinite(v):
                # float32: the shortest text that rounds to the same float32
                text = str(np.float32(v)) if np_type == "np.float32" else repr(v)
            return f"{np_type}({text})"
        return f"{np_type}({int(value)})"

    # kernels

    def kernel(self, body: str, base: str, ops: Sequence[Operation]) -> str:
        """The name of the kernel with this body (`{name}` in place of its name), added once."""
        if body in self.kernel_names:
            return self.kernel_names[body]
        name = f"k{len(self.kernel_names)}_{base}"
        self.kernel_names[body] = name
        self.kernel_defs[name] = (body, op_summary(ops))
        self.kernel_sites[name] = []
        return name

    def exp(self, np_type: str) -> str:
        """e**x: np.exp, or a vectorising float32 version (libm's is scalar, 8x slower)."""
        return self.helper("_exp32") if np_type == "np.float32" else "np.exp"

    def tanh(self, np_type: str) -> str:
        return self.helper("_tanh32") if np_type == "np.float32" else "np.tanh"

    def math(self, name: str, np_type: str) -> str:
        """The scalar function `name` (exp, log, sqrt, tanh, power) for `np_type`."""
        if name in ("exp", "tanh"):
            return getattr(self, name)(np_type)
        return f"np.{name}"

    def kernel_head(self, params: Sequence[str], parallel: bool = False) -> list[str]:
        """A kernel's decorator and `def` line; `{name}` stands for its name."""
        deco = "@njit(**JIT, parallel=True)" if parallel else "@njit(**JIT)"
        return [deco, f"def {{name}}({', '.join(params)}):"]

    def helper(self, name: str) -> str:
        for dep in self.runtime.DEPENDS.get(name, ()):
            self.helper(dep)
        if name not in self.helpers:
            self.helpers.append(name)
            self.kernel_sites[name] = []
        return name

    def add_site(self, site: Site) -> None:
        self.sites.append(site)
        self.kernel_sites.setdefault(site.kernel, []).append(site.index)
        self.site_rows.append(
            (site.kernel, op_summary(site.ops) or site.op.name, describe_location(site.op.location))
        )

    def constant(self, op: nn.ConstantOp) -> str:
        name = f"_C{len(self.constants)}"
        dtype = self.np_type(op.res.type)
        values = [
            self.literal(v, dtype).removeprefix(f"{dtype}(").removesuffix(")")
            for v in op.value.get_values()
        ]
        if dtype == "np.bool_":
            values = [self.literal(v, dtype) for v in op.value.get_values()]
        shape = tuple_src(shape_of(op.res))
        self.constants.append(
            f"{name} = np.array([{', '.join(values)}], dtype={dtype}).reshape({shape})"
            f"  # {describe_location(op.location)}"
        )
        return name

    # the whole module

    def function_emitter(self, fn: func.FuncOp, pyname: str) -> FunctionEmitter:
        return FunctionEmitter(self, fn, pyname)

    def emit(self) -> EmittedModule:
        functions = [
            op
            for op in self.module.ops
            if isinstance(op, func.FuncOp) and op.sym_visibility is None and op.body.blocks
        ]
        for fn in functions:
            symbol = fn.sym_name.data
            pyname = python_name(symbol, self.taken_names)
            names = [a.name_hint or f"arg{i}" for i, a in enumerate(fn.args)]
            entry = Entry(symbol, pyname, names)
            self.entries[symbol] = entry
            mark = (len(self.sites), len(self.site_rows))
            try:
                lines = self.function_emitter(fn, pyname).emit()
            except IrnError as e:
                del self.sites[mark[0] :]
                del self.site_rows[mark[1] :]
                for calls in self.kernel_sites.values():
                    calls[:] = [i for i in calls if i < mark[0]]
                entry.error = e
                message = str(e).split("\n")[0]
                lines = [
                    f"def {pyname}(*args, **kwargs):",
                    f'    """@{symbol} could not be compiled."""',
                    f"    raise NotImplementedError({message!r})",
                ]
            self.entry_lines += ["", "", *lines]
        return EmittedModule(self.render(), self.sites, self.entries)

    def render(self) -> str:
        out: list[str] = [self.header(), self.runtime.PRELUDE.strip("\n"), ""]
        if self.constants:
            out += ["", "# --- constants " + "-" * 80, *self.constants]
        if self.helpers:
            out += ["", "", "# --- helpers and hand-written kernels " + "-" * 58]
            for name in self.helpers:
                out.append(self.runtime.HELPERS[name].strip("\n"))
                out += ["", ""]
        out += ["", "# --- generated kernels " + "-" * 72]
        for name, (body, summary) in self.kernel_defs.items():
            sites = ", ".join(str(s) for s in self.kernel_sites.get(name, []))
            out += ["", "", f"# {summary}  (sites {sites})"]
            out.append(body.replace("{name}", name).strip("\n"))
        out += ["", "", "# --- entry points " + "-" * 77, *self.entry_lines]
        out += ["", "", *self.tables()]
        return "\n".join(line.rstrip() for line in "\n".join(out).split("\n")).strip() + "\n"

    def header(self) -> str:
        lines = [
            f"# Generated by irnet (emit_cpu {EMITTER_VERSION}) from "
            f"{self.source_name or 'an irnet module'}; do not edit.",
            "# Needs only numpy and numba (scipy for BLAS): `import` this file, or run it.",
            "#",
            "# Entry points: one function per public function of the IR, arguments in IR order",
            "# (positional), returning a tuple of new arrays. Keyword arguments of every entry:",
            "#   training=False     what nn.training returns (dropout on in training)",
            "#   step=0, seed=0     pick the random stream of nn.random_uniform, as the reference",
            "#   check_finite=False raise NonFiniteError at the first kernel making NaN or Inf",
            "# `run(name, args, **kw)` calls an entry by its IR name with a list, or a dict by",
            "# argument name. FUNCTIONS maps IR names to the functions, ARGUMENTS to argument",
            "# names; SITES lists each kernel call (kernel, ops, .irn location) for errors.",
            "# Intermediate buffers are allocated once per shape and reused by later calls, so",
            "# an entry point must not run in two threads at once.",
            "#",
        ]
        first = next(iter(self.entries.values()), None)
        if first is not None:
            args = ", ".join(python_name(n, set()) for n in first.arg_names)
            lines += [
                "# Example, with this file saved as model_cpu.py (import it under one name: the",
                "# cached machine code refers to it):",
                "#   import model_cpu",
                f"#   outputs = model_cpu.{first.python_name}({args})",
                f"#   outputs = model_cpu.run({first.symbol!r}, {{name: array, ...}})",
                "#",
            ]
        for entry in self.entries.values():
            fn = next(
                f
                for f in self.module.ops
                if isinstance(f, func.FuncOp) and f.sym_name.data == entry.symbol
            )
            args = ", ".join(
                f"{python_name(n, set())}: {format_type(a.type)}"
                for n, a in zip(entry.arg_names, fn.args)
            )
            outs = ", ".join(format_type(t) for t in fn.function_type.outputs.data)
            lines.append(f"#   {entry.python_name}({args})")
            lines.append(f"#       -> ({outs})    @{entry.symbol}")
            if entry.symbol.endswith(".step"):
                base = entry.symbol.removesuffix(".step")
                lines.append(
                    f"#       one training step; @{base}.grad then @{base}.update are its two "
                    "halves"
                )
        return "\n".join(lines)

    def tables(self) -> list[str]:
        lines = ["FUNCTIONS = {"]
        lines += [f"    {e.symbol!r}: {e.python_name}," for e in self.entries.values()]
        lines += ["}", "", "ARGUMENTS = {"]
        lines += [f"    {e.symbol!r}: {tuple(e.arg_names)!r}," for e in self.entries.values()]
        lines += ["}", "", "SITES = ("]
        lines += [f"    {row!r},  # {i}" for i, row in enumerate(self.site_rows)]
        lines += [")", ""]
        lines += [
            "",
            "def run(name, args, *, training=False, step=0, seed=0, check_finite=False):",
            '    """Call the entry point of IR function `name` with a list of arguments or a',
            '    dict from argument names to arrays."""',
            "    if isinstance(args, dict):",
            "        args = [args[n] for n in ARGUMENTS[name]]",
            "    return FUNCTIONS[name](",
            "        *args, training=training, step=step, seed=seed, check_finite=check_finite",
            "    )",
            "",
            "",
            'if __name__ == "__main__":',
            "    for _name, _args in ARGUMENTS.items():",
            "        print(f\"{_name}({', '.join(_args)})\")",
        ]
        return lines


# --- one loop nest -----------------------------------------------------------------------------


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
        emitter: ModuleEmitter,
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
        if op.has_trait(Reduction) or (isinstance(op, nn.BroadcastToOp) and index == 1):
            self.bindings += [(value, k, k) for k in range(len(s))]
            return
        offset = self.rank - len(s)
        self.bindings += [(value, k, offset + k) for k in range(len(s)) if s[k] != 1]

    # properties

    @staticmethod
    def shape_only(op: Operation, index: int) -> bool:
        """Whether operand `index` of `op` is used for its shape only."""
        return isinstance(op, nn.AxisSizeOp) or (isinstance(op, nn.BroadcastToOp) and index == 1)

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
        if any(isinstance(op, nn.OneHotOp | nn.AxisSizeOp) for op in self.ops):
            return False
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
            (pre if isinstance(op, nn.AxisSizeOp) else compute).append(line)

        stores = []
        for value, oname in zip(self.outputs, out_names):
            if value is self.reduction_value or value in self.preset:
                continue
            stores.append(f"{oname}{index_src(loop_vars)} = {local[value]}")

        reduction = None
        if self.reduction is not None:
            red = self.reduction
            dtype = self.m.np_type(red.results[0].type)
            reduction = ReductionCode(
                value=read(red, red.operands[0]),
                out=out_of[red.results[0]],
                axes=axes_of(red, rank),
                keep="keepdims" in red.properties,
                dtype=dtype,
                kind="max" if isinstance(red, nn.ReduceMaxOp) else "sum",
                mean=isinstance(red, nn.ReduceMeanOp),
                init=self.m.literal(
                    reduction_identity(isinstance(red, nn.ReduceMaxOp), dtype), dtype
                ),
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
        t = self.m.np_type(op.results[0].type)
        lit = self.m.literal
        a = args[0] if args else ""
        b = args[1] if len(args) > 1 else ""
        match op:
            case nn.NegOp():
                return f"-{a}"
            case nn.AbsOp():
                return f"abs({a})"
            case nn.ExpOp():
                return f"{self.m.math('exp', t)}({a})"
            case nn.LogOp():
                return f"{self.m.math('log', t)}({a})"
            case nn.SqrtOp():
                return f"{self.m.math('sqrt', t)}({a})"
            case nn.TanhOp():
                return f"{self.m.math('tanh', t)}({a})"
            case nn.SigmoidOp():
                one = lit(1, t)
                return f"{one} / ({one} + {self.m.math('exp', t)}(-{a}))"
            case nn.ReluOp():
                zero = lit(0, t)
                return f"({zero} if {a} <= {zero} else {a})"
            case nn.GeluOp():
                c = lit(math.sqrt(2 / math.pi), t)
                return (
                    f"{lit(0.5, t)} * {a} * ({lit(1, t)} + {self.m.math('tanh', t)}({c} * "
                    f"({a} + {lit(0.044715, t)} * {a} * {a} * {a})))"
                )
            case nn.AddOp():
                return f"{a} + {b}"
            case nn.SubOp():
                return f"{a} - {b}"
            case nn.MulOp():
                return f"{a} * {b}"
            case nn.DivOp():
                return f"{a} / {b}"
            case nn.PowOp():
                return f"{self.m.math('power', t)}({a}, {b})"
            case nn.MaximumOp():
                return f"({a} if ({a} >= {b}) | ({a} != {a}) else {b})"
            case nn.MinimumOp():
                return f"({a} if ({a} <= {b}) | ({a} != {a}) else {b})"
            case nn.CmpOp():
                symbol = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
                return f"({a} {symbol[op.predicate.data]} {b})"
            case nn.SelectOp():
                return f"({args[1]} if {a} else {args[2]})"
            case nn.CastOp():
                if t == "np.bool_":
                    return f"({a} != 0)"
                return f"{t}({a})"
            case nn.BroadcastToOp():
                return a
            case nn.OneHotOp():
                return f"{t}({a} == {ivar(self.rank - 1)})"
            case nn.AxisSizeOp():
                (value,) = op.operands
                rank = len(shape_of(value))
                axes = axes_of(op, rank)
                if value in names:
                    dims = [f"{names[value]}.shape[{k}]" for k in axes]
                else:
                    dims = [size_names[k] for k in axes]
                return f"{t}({' * '.join(dims) or '1'})"
        raise unsupported(op)


# --- one function ------------------------------------------------------------------------------


class FunctionEmitter:
    FAST_PATH = True
    """Emit each entry point's compiled fast path too (`with_fast_path`)."""
    EMPTY = "np.empty"
    """How the entry points allocate a fresh array."""
    TRAINING = "np.array(bool(training))"
    """The array that `nn.training` reads."""
    nest_class = LoopNest

    def __init__(self, module: ModuleEmitter, fn: func.FuncOp, pyname: str):
        self.m = module
        self.fn = fn
        self.pyname = pyname
        self.names: dict[SSAValue, str] = {}
        self.taken: set[str] = {
            "ws",
            "training",
            "step",
            "seed",
            "check_finite",
            "np",
            "njit",
            "prange",
        }
        self.lines: list[str] = []
        self.uses_ws = False
        self.uses_training = False
        self.const_roots: set[SSAValue] = set()

    # naming

    def name(self, value: SSAValue) -> str:
        return self.names[value]

    def new_name(self, value: SSAValue) -> str:
        hint = value.name_hint
        name = python_name(f"v_{hint}" if hint else f"v{len(self.names)}", self.taken)
        self.names[value] = name
        return name

    def dim(self, value: SSAValue, axis: int) -> str:
        size = shape_of(value)[axis]
        return str(size) if size != DYN else f"{self.name(value)}.shape[{axis}]"

    def dims(self, value: SSAValue) -> list[str]:
        return [self.dim(value, k) for k in range(len(shape_of(value)))]

    def line(self, text: str) -> None:
        self.lines.append("    " + text)

    # buffers

    def decision(self, op: Operation, index: int) -> str | None:
        attr = op.attributes.get("memplan.buffers")
        if isinstance(attr, ArrayAttr) and index < len(attr.data):
            item = attr.data[index]
            if isinstance(item, StringAttr):
                return item.data
        return None

    def alloc(self, op: Operation, index: int, value: SSAValue, shape: Sequence[str]) -> str:
        """A buffer for result `index` of top-level `op`, as its plan says."""
        name = self.new_name(value)
        dtype = self.m.np_type(value.type)
        plan = self.decision(op, index) or "fresh"
        if plan.startswith("ws"):
            self.uses_ws = True
            self.line(f"{name} = _ws(ws, {int(plan[2:])}, {tuple_src(shape)}, {dtype})")
        elif plan.startswith("in"):
            self.line(f"{name} = {self.name(op.operands[int(plan[2:])])}")
        else:
            self.line(f"{name} = {self.EMPTY}({tuple_src(shape)}, {dtype})")
        return name

    def scratch(self, site: int, k: int, shape: Sequence[str], dtype: str) -> str:
        self.uses_ws = True
        name = python_name(f"s{site}_{k}", self.taken)
        self.line(f"{name} = _ws(ws, {('s', site, k)!r}, {tuple_src(shape)}, {dtype})")
        return name

    # sites

    def new_site(
        self,
        kernel: str,
        op: Operation,
        ops: Sequence[Operation],
        inputs: Sequence[SSAValue],
        outputs: Sequence[SSAValue],
    ) -> int:
        index = len(self.m.sites)
        self.m.add_site(Site(index, kernel, op, list(ops), list(inputs), list(outputs)))
        return index

    def comment(self, op: Operation, ops: Sequence[Operation]) -> None:
        named = all(r.name_hint for r in op.results) and op.results
        results = ", ".join(f"%{r.name_hint}" for r in op.results)
        head = f"{results} = {op.name}" if named else op.name
        if isinstance(op, FusedOp):
            head += f' "{op.kind.data}"'
        self.line(f"# {head}")
        groups: list[tuple[str, list[str]]] = []
        for inner in ops:
            if isinstance(inner, nn.ConstantOp | YieldOp):
                continue
            where = describe_location(inner.location)
            if groups and groups[-1][0] == where:
                groups[-1][1].append(inner.name)
            else:
                groups.append((where, [inner.name]))
        for where, names in groups:
            self.line(f"#   {', '.join(names)}  at {where}")

    def copy_of(self, name: str) -> str:
        return f"{name}.copy()"

    def call(
        self,
        site: int,
        kernel: str,
        args: Sequence[str],
        outs: Sequence[str],
        ins: Sequence[str],
        launch: str = "",
    ) -> None:
        """Call `kernel`; `launch` is what the target puts between its name and arguments."""
        launch = self.launch(kernel, args, outs, launch)
        self.line(f"{kernel}{launch}({', '.join(args)})")
        self.line(f"if check_finite: _finite({site}, {tuple_src(outs)}, {tuple_src(ins)})")

    def launch(self, kernel: str, args: Sequence[str], outs: Sequence[str], given: str) -> str:
        """What goes between a kernel's name and its arguments (nothing: a Python call)."""
        return given

    def check_same(self, site: int, exprs: Sequence[str], what: str) -> None:
        distinct = list(dict.fromkeys(exprs))
        static = {e for e in distinct if e.isdigit()}
        if len(distinct) < 2 or (len(static) == len(distinct)):
            return
        self.line(f"_same({site}, {tuple_src(distinct)}, {what!r})")

    # the function

    def emit(self) -> list[str]:
        fn = self.fn
        symbol = fn.sym_name.data
        args = fn.args
        arg_names = []
        for i, arg in enumerate(args):
            name = python_name(arg.name_hint or f"arg{i}", self.taken)
            self.names[arg] = name
            arg_names.append(name)
        body: list[str] = []
        for i, arg in enumerate(args):
            if not isinstance(arg.type, TensorType):
                raise IrnError(f"@{symbol}: argument {i} has type {arg.type}, not a tensor")
            dtype = self.m.np_type(arg.type)
            shape = tuple_src([-1 if d == DYN else d for d in arg.type.get_shape()])
            what = f"argument {i} `{arg.name_hint or i}` of @{symbol}"
            body.append(
                f"    {self.names[arg]} = _arg({self.names[arg]}, {dtype}, {shape}, {what!r})"
            )
        for op in fn.body.block.ops:
            self.emit_op(op)
        head = [
            f"def {self.pyname}({', '.join(arg_names)}, *, training=False, step=0, seed=0, "
            "check_finite=False):"
            if arg_names
            else f"def {self.pyname}(*, training=False, step=0, seed=0, check_finite=False):",
            f'    """@{symbol}: {", ".join(format_type(a.type) for a in args)} -> '
            f'{", ".join(format_type(t) for t in fn.function_type.outputs.data)}"""',
        ]
        if self.uses_ws:
            body.append(f"    ws = _WORKSPACES.setdefault({symbol!r}, {{}})")
        if self.uses_training:
            body.append(f"    v_training = {self.TRAINING}")
        fast = self.fast_lines() if self.FAST_PATH else None
        if fast is None:
            return [*head, *body, *self.lines]
        return self.with_fast_path(head, body, fast, arg_names)

    # the fast path: every kernel in one @njit function

    def fast_lines(self) -> list[str] | None:
        """The function's lines for a compiled fast path, or None when it has a host step no
        compiled code can take (random draws, index checks). What it leaves out are the size
        checks (the arguments' shapes are known to fit) and the workspace (it allocates)."""
        fast = []
        for line in self.lines:
            text = line.strip()
            if any(h in text for h in ("_uniform(", "_indices(", "_window_size(")):
                return None
            if text.startswith(("#", "if check_finite:", "_same(", "_check(")):
                continue
            workspace = re.fullmatch(
                r"(\w+) = _ws\(ws, (?:\d+|\('s', \d+, \d+\)), (.*), (np\.\w+)\)", text
            )
            reshape = re.fullmatch(r"(\w+) = _reshape\(\d+, (\w+), (.*)\)", text)
            if workspace:
                text = "{} = np.empty({}, {})".format(*workspace.groups())
            elif reshape:
                text = "{} = {}.reshape({})".format(*reshape.groups())
            fast.append("    " + text)
        return fast

    def with_fast_path(
        self, head: list[str], body: list[str], fast: list[str], arg_names: list[str]
    ) -> list[str]:
        """The entry point: the fast path for argument shapes that a checked call has seen fit
        (the kernels in one compiled call, no Python between them; Numba's dispatch checks
        the dtypes and layouts, as the fast path compiles for one signature only), else the
        checked path."""
        symbol = self.fn.sym_name.data
        consts = sorted(set(re.findall(r"\b_C\d+\b", "\n".join(fast))), key=lambda c: int(c[2:]))
        params = ", ".join([*arg_names, *consts, "training"])
        checked, compiled = f"_checked_{self.pyname}", f"_fast_{self.pyname}"
        kw = "training=training, step=step, seed=seed, check_finite=check_finite"
        key = tuple_src([f"{n}.shape" for n in arg_names])
        args = ", ".join(arg_names)
        fast_body = (["    v_training = np.array(training)"] if self.uses_training else []) + fast
        return [
            *head,
            "    try:",
            f"        key = {key}",
            "    except AttributeError:  # not arrays: the checks below convert them",
            "        key = None",
            f"    if not check_finite and key in _FAST.get({symbol!r}, ()):",
            "        try:",
            f"            return {compiled}({params})",
            "        except TypeError:  # not the dtypes and layouts it was compiled for",
            "            pass",
            f"    given = {tuple_src(arg_names)}",
            *[line for line in body if "_arg(" in line],
            f"    out = {checked}({args}{', ' if args else ''}{kw})",
            f"    if key is not None and _same_objects({tuple_src(arg_names)}, given):",
            f"        _remember({symbol!r}, key, {compiled}, ({params},))",
            "    return out",
            "",
            "",
            f"def {checked}({args}{', ' if args else ''}*, training, step, seed, check_finite):",
            f'    """@{symbol}, each kernel called from Python, with every check."""',
            *[line for line in body if "_arg(" not in line],
            *self.lines,
            "",
            "",
            "@njit(**JIT)",
            f"def {compiled}({params}):",
            f'    """@{symbol}, every kernel in one compiled call: for shapes known to fit."""',
            *fast_body,
        ]

    def emit_op(self, op: Operation) -> None:
        if isinstance(op, func.ReturnOp):
            values = []
            for v in op.arguments:
                name = self.name(v)
                values.append(self.copy_of(name) if v in self.const_roots else name)
            self.line(f"return {tuple_src(values)}")
            return
        if isinstance(op, FusedOp):
            ops = [o for o in op.body.block.ops if not isinstance(o, YieldOp)]
            outer = dict(zip(op.body.block.args, op.inputs))
            inner_outputs = list(op.yielded.values)
            self.comment(op, ops)
            if op.kind.data == "matmul":
                self.matmul_site(op, ops, outer, inner_outputs)
            else:
                self.loop_site(op, ops, outer, inner_outputs)
            return
        if isinstance(op, nn.ConstantOp):
            self.names[op.res] = self.m.constant(op)
            self.const_roots.add(op.res)
            return
        if isinstance(op, nn.TrainingOp):
            self.uses_training = True
            self.names[op.res] = "v_training"
            return
        self.comment(op, [op])
        if op.has_trait(Elementwise) or op.has_trait(Reduction):
            outer = {v: v for v in op.operands}
            self.loop_site(op, [op], outer, list(op.results))
            return
        if isinstance(op, nn.MatmulOp):
            self.matmul_site(op, [op], {v: v for v in op.operands}, list(op.results))
            return
        method = getattr(self, "op_" + op.name.removeprefix("nn."), None)
        if method is None or not op.name.startswith("nn."):
            raise unsupported(op)
        method(op)

    # --- loop nests ---

    def domain_sizes(
        self,
        site: int,
        domain: tuple[int, ...],
        bindings: Sequence[tuple[SSAValue, int, int]],
        outer: dict[SSAValue, SSAValue],
        first: dict[int, str] | None = None,
    ) -> list[str]:
        """The run-time size of each domain axis (in the entry point), after checking that the
        arrays mapped onto it agree."""
        sizes = []
        for d, size in enumerate(domain):
            exprs = list((first or {}).get(d, []))
            for value, k, axis in bindings:
                if axis == d:
                    exprs.append(self.dim(outer[value], k))
            if size != DYN:
                exprs = [str(size), *exprs]
            if not exprs:
                raise IrnError(f"internal: no run-time size for dimension {d}")
            self.check_same(site, exprs, f"dimension {d}")
            sizes.append(exprs[0])
        return sizes

    def output_shape(self, nest: LoopNest, value: SSAValue, sizes: list[str]) -> list[str]:
        if value is nest.reduction_value:
            red = nest.reduction
            axes = axes_of(red, nest.rank)
            keep = "keepdims" in red.properties
            return [("1" if keep else None) if d in axes else s for d, s in enumerate(sizes)]
        return sizes

    def loop_site(
        self,
        op: Operation,
        ops: Sequence[Operation],
        outer: dict[SSAValue, SSAValue],
        inner_outputs: list[SSAValue],
    ) -> None:
        real = [o for o in ops if not is_inlined_constant(o)]
        last = real[-1]
        domain = (
            shape_of(last.operands[0])
            if last.has_trait(Reduction)
            else shape_of(last.results[0])
        )
        nest = self.nest_class(self.m, domain, ops, inner_outputs)
        inputs = nest.inputs
        site = len(self.m.sites)
        sizes = self.domain_sizes(site, domain, nest.bindings, outer)
        out_names = []
        for k, (inner, result) in enumerate(zip(inner_outputs, op.results)):
            shape = [s for s in self.output_shape(nest, inner, sizes) if s is not None]
            out_names.append(self.alloc(op, k, result, shape))
        in_names = [self.name(outer[v]) for v in inputs]
        flat = nest.flat()
        kin = {v: f"a{i}" for i, v in enumerate(inputs)}
        kout = [f"o{i}" for i in range(len(inner_outputs))]
        body, par = nest.lines(kin, kout, self.m.options.parallel)
        base = "_".join(dict.fromkeys(o.name.removeprefix("nn.") for o in real))[:40]
        text = "\n".join([*self.m.kernel_head([*kin.values(), *kout], par), *body])
        kernel = self.m.kernel(text, base, ops)
        index = self.new_site(kernel, op, ops, inputs, inner_outputs)
        assert index == site

        def flat_arg(name: str, value: SSAValue) -> str:
            if flat and nest.rank > 1 and shape_of(value) == domain:
                return f"{name}.reshape(-1)"
            return name

        args = [flat_arg(n, v) for n, v in zip(in_names, inputs)]
        args += [flat_arg(n, v) for n, v in zip(out_names, inner_outputs)]
        launch = self.nest_launch(nest, sizes, out_names)
        self.call(site, kernel, args, out_names, in_names, launch)

    def nest_launch(self, nest: LoopNest, sizes: Sequence[str], outs: Sequence[str]) -> str:
        """The launch of a loop nest's kernel over the domain of run-time `sizes`, writing
        arrays `outs`."""
        return ""

    # --- matmul with epilogue ---

    def matmul_site(
        self,
        op: Operation,
        ops: Sequence[Operation],
        outer: dict[SSAValue, SSAValue],
        inner_outputs: list[SSAValue],
    ) -> None:
        mm = next(o for o in ops if isinstance(o, nn.MatmulOp))
        transposes = {o.results[0]: o for o in ops if isinstance(o, nn.TransposeOp)}
        product = mm.results[0]
        domain = shape_of(product)
        epilogue = [o for o in ops if o is not mm and o not in transposes.values()]
        # operands: (value read, transposed)
        operands = []
        for value in (mm.lhs, mm.rhs):
            t = transposes.get(value)
            operands.append((t.operands[0], True) if t is not None else (value, False))
        # the product's buffer: its own output, else a domain-shaped output of its dtype
        nest = self.nest_class(
            self.m, domain, epilogue, inner_outputs, preset={product: "P"}, allow_flat=False
        )
        buffer_output = None
        if product in inner_outputs:
            buffer_output = inner_outputs.index(product)
        else:
            for k, v in enumerate(inner_outputs):
                if nest.is_domain_shaped(v) and v.type == product.type:
                    buffer_output = k
                    break
        inputs: list[SSAValue] = []
        for value, _ in operands:
            if value not in inputs:
                inputs.append(value)
        for value in nest.inputs:
            if value not in inputs:
                inputs.append(value)
        site = len(self.m.sites)
        # sizes: batch from both operands, M from lhs, N from rhs
        rank = len(domain)
        first: dict[int, list[str]] = {}
        (lv, lt), (rv, rt) = operands
        ls, rs = shape_of(lv), shape_of(rv)
        lo = outer[lv]
        ro = outer[rv]
        m_axis = len(ls) - (1 if lt else 2)
        k_lhs = len(ls) - (2 if lt else 1)
        n_axis = len(rs) - (2 if rt else 1)
        k_rhs = len(rs) - (1 if rt else 2)
        first[rank - 2] = [self.dim(lo, m_axis)]
        first[rank - 1] = [self.dim(ro, n_axis)]
        for value, s in ((lo, ls), (ro, rs)):
            offset = (rank - 2) - (len(s) - 2)
            for k in range(len(s) - 2):
                if s[k] != 1:
                    first.setdefault(offset + k, []).append(self.dim(value, k))
        self.check_same(site, [self.dim(lo, k_lhs), self.dim(ro, k_rhs)], "inner dimension")
        sizes = self.domain_sizes(site, domain, nest.bindings, outer, first)
        out_names = []
        for k, (inner, result) in enumerate(zip(inner_outputs, op.results)):
            shape = [s for s in self.output_shape(nest, inner, sizes) if s is not None]
            out_names.append(self.alloc(op, k, result, shape))
        in_names = [self.name(outer[v]) for v in inputs]
        kin = {v: f"a{i}" for i, v in enumerate(inputs)}
        kout = [f"o{i}" for i in range(len(inner_outputs))]
        scratch_names: list[str] = []
        if buffer_output is None:
            dtype = self.m.np_type(product.type)
            scratch_names.append(self.scratch(site, 0, sizes, dtype))
            pname = "p0"
        else:
            pname = kout[buffer_output]
        nest.preset = {product: pname}
        params = [*kin.values(), *kout, *(["p0"] if scratch_names else [])]
        lhs, rhs = (kin[lv], lt, ls), (kin[rv], rt, rs)
        text = self.matmul_text(params, lhs, rhs, pname, product, nest, kin, kout)
        real = [o for o in ops if not is_inlined_constant(o) and o not in transposes.values()]
        base = "_".join(dict.fromkeys(o.name.removeprefix("nn.") for o in real))[:40]
        kernel = self.m.kernel(text, base, ops)
        index = self.new_site(kernel, op, ops, inputs, inner_outputs)
        assert index == site
        self.call(site, kernel, [*in_names, *out_names, *scratch_names], out_names, in_names)

    def matmul_text(self, params, lhs, rhs, p, product, nest, kin, kout) -> str:
        """The kernel of a matmul site: the product of `lhs` and `rhs` ((param, transposed,
        shape) each) into array `p`, then the epilogue `nest` over it."""
        body = self.dot_lines(*lhs, *rhs, p, shape_of(product), product)
        loop, par = nest.lines(kin, kout, self.m.options.parallel) if nest.ops else ([], False)
        return "\n".join([*self.m.kernel_head(params, par), *body, *loop])

    def dot_lines(self, a, at, ashape, b, bt, bshape, p, domain, product) -> list[str]:
        rank = len(domain)
        batch = rank - 2
        lines: list[str] = []
        depth = 1
        bvars = [f"b{k}" for k in range(batch)]
        for k in range(batch):
            lines.append("    " * depth + f"for b{k} in range({p}.shape[{k}]):")
            depth += 1

        def sliced(name: str, s: tuple[int, ...]) -> str:
            nb = len(s) - 2
            offset = batch - nb
            idx = ["0" if s[k] == 1 else bvars[offset + k] for k in range(nb)]
            return f"{name}[{', '.join(idx)}]" if idx else name

        A, B, P = sliced(a, ashape), sliced(b, bshape), (f"{p}[{', '.join(bvars)}]" if batch else p)
        dtype = self.m.np_type(product.type)
        pad = "    " * depth
        if "float" in dtype:
            lines.append(pad + f"np.dot({A}{'.T' if at else ''}, {B}{'.T' if bt else ''}, {P})")
            return lines
        aref = (lambda i, k: f"{A}[{k}, {i}]") if at else (lambda i, k: f"{A}[{i}, {k}]")
        bref = (lambda k, j: f"{B}[{j}, {k}]") if bt else (lambda k, j: f"{B}[{k}, {j}]")
        ksize = f"{A}.shape[0]" if at else f"{A}.shape[1]"
        lines += [
            pad + f"pm = {P}",
            pad + "for i in range(pm.shape[0]):",
            pad + "    for j in range(pm.shape[1]):",
            pad + f"        acc = {dtype}(0)",
            pad + f"        for k in range({ksize}):",
            pad + f"            acc += {aref('i', 'k')} * {bref('k', 'j')}",
            pad + "        pm[i, j] = acc",
        ]
        return lines

    # --- single ops ---

    def simple_site(
        self,
        op: Operation,
        kernel: str,
        args: Sequence[str],
        outs: Sequence[str],
        ins: Sequence[SSAValue],
    ) -> None:
        site = len(self.m.sites)
        index = self.new_site(kernel, op, [op], list(ins), list(op.results))
        assert index == site
        self.call(site, kernel, args, outs, [self.name(v) for v in ins])

    def generated(self, op: Operation, base: str, params: Sequence[str], body: list[str]) -> str:
        text = "\n".join([*self.m.kernel_head(params), *body])
        return self.m.kernel(text, base, [op])

    def op_reshape(self, op: nn.ReshapeOp) -> None:
        site = self.new_site("reshape", op, [op], [op.input], [op.res])
        shape = tuple_src([-1 if d == DYN else d for d in shape_of(op.res)])
        name = self.new_name(op.res)
        self.line(f"{name} = _reshape({site}, {self.name(op.input)}, {shape})")

    def op_random_uniform(self, op: nn.RandomUniformOp) -> None:
        self.new_site("_uniform", op, [op], [op.input], [op.res])
        name = self.new_name(op.res)
        seed = nn.get_int(op.properties, "seed")
        dtype = self.m.np_type(op.res.type)
        self.line(f"{name} = _uniform(seed, {seed}, step, {self.name(op.input)}.shape, {dtype})")

    def op_transpose(self, op: nn.TransposeOp) -> None:
        perm = nn.get_ints(op.properties, "perm")
        rank = len(perm)
        out = self.alloc(op, 0, op.res, [self.dim(op.input, p) for p in perm])
        idx = [f"i{perm.index(k)}" for k in range(rank)]
        body = self.loops(
            "o", rank, [f"o{index_src([f'i{d}' for d in range(rank)])} = a{index_src(idx)}"]
        )
        kernel = self.generated(op, "transpose", ["a", "o"], body)
        self.simple_site(op, kernel, [self.name(op.input), out], [out], [op.input])

    def loops(self, sized: str, rank: int, inner: list[str]) -> list[str]:
        """Kernel lines running `inner` at every index (i0, i1, ...) of array `sized`."""
        return self.loops_over([f"{sized}.shape[{d}]" for d in range(rank)], inner)

    def loops_over(self, sizes: Sequence[str], inner: list[str]) -> list[str]:
        """Kernel lines running `inner` at every (i0, i1, ...) below `sizes`."""
        lines = []
        for d, size in enumerate(sizes):
            lines.append("    " * (d + 1) + f"for i{d} in range({size}):")
        lines += ["    " * (len(sizes) + 1) + s for s in inner]
        return lines

    def zero_first(self, out: str, param: str) -> list[str]:
        """Kernel lines that zero output `param` (the entry's `out`) before the kernel adds
        into it."""
        return [f"    {param}[...] = 0"]

    def accumulate(self, target: str, value: str) -> str:
        """A kernel line adding `value` to element `target`, which other iterations may add
        to as well."""
        return f"{target} += {value}"

    def op_concat(self, op: nn.ConcatOp) -> None:
        inputs = list(op.inputs)
        rank = len(shape_of(op.res))
        axis = nn.get_int(op.properties, "axis") % rank
        site = len(self.m.sites)
        shape = []
        for d in range(rank):
            if d == axis:
                sizes = [self.dim(v, d) for v in inputs]
                static = shape_of(op.res)[d]
                shape.append(str(static) if static != DYN else " + ".join(sizes))
            else:
                exprs = [self.dim(v, d) for v in inputs]
                if shape_of(op.res)[d] != DYN:
                    exprs = [str(shape_of(op.res)[d]), *exprs]
                self.check_same(site, exprs, f"dimension {d}")
                shape.append(exprs[0])
        out = self.alloc(op, 0, op.res, shape)
        body = ["    off = 0"]
        params = []
        for k in range(len(inputs)):
            params.append(f"a{k}")
            idx_in = [f"i{d}" for d in range(rank)]
            idx_out = [f"off + i{d}" if d == axis else f"i{d}" for d in range(rank)]
            body += self.loops(f"a{k}", rank, [f"o{index_src(idx_out)} = a{k}{index_src(idx_in)}"])
            body.append(f"    off += a{k}.shape[{axis}]")
        kernel = self.generated(op, "concat", [*params, "o"], body)
        self.simple_site(op, kernel, [*(self.name(v) for v in inputs), out], [out], inputs)

    def slice_bounds(self, op: Operation) -> list[tuple[int, int, int]]:
        starts, stops, steps = (nn.get_ints(op.properties, k) for k in ("starts", "stops", "steps"))
        return list(zip(starts, stops, steps))

    def op_slice(self, op: nn.SliceOp) -> None:
        site = len(self.m.sites)
        x = op.input
        shape = []
        for d, (start, stop, step) in enumerate(self.slice_bounds(op)):
            size = self.dim(x, d)
            stop_src = size if stop == nn.SLICE_END else f"min({stop}, {size})"
            length = f"max(0, ({stop_src} - {start} + {step - 1}) // {step})"
            static = shape_of(op.res)[d]
            if static == DYN:
                shape.append(length)
            else:
                if shape_of(x)[d] == DYN:
                    self.line(
                        f"_check({site}, {length} == {static}, "
                        f"'dimension {d} of the input is too small for the slice')"
                    )
                shape.append(str(static))
        out = self.alloc(op, 0, op.res, shape)
        rank = len(shape)
        bounds = self.slice_bounds(op)
        params = ["a", "o", *(f"s{d}" for d in range(rank)), *(f"t{d}" for d in range(rank))]
        idx = [f"s{d} + i{d} * t{d}" for d in range(rank)]
        body = self.loops(
            "o", rank, [f"o{index_src([f'i{d}' for d in range(rank)])} = a{index_src(idx)}"]
        )
        kernel = self.generated(op, "slice", params, body)
        args = [self.name(x), out, *(str(b[0]) for b in bounds), *(str(b[2]) for b in bounds)]
        self.simple_site(op, kernel, args, [out], [x])

    def op_slice_grad(self, op: nn.SliceGradOp) -> None:
        site = len(self.m.sites)
        g = op.input
        shape = []
        bounds = self.slice_bounds(op)
        for d, (start, stop, step) in enumerate(bounds):
            static = shape_of(op.res)[d]
            if static != DYN:
                shape.append(str(static))
            elif stop == nn.SLICE_END and step == 1:
                shape.append(f"{start} + {self.dim(g, d)}")
            else:
                raise error_at(
                    f"{op.name}: dimension {d} of the result type {format_type(op.res.type)} "
                    "is `?`, and the operands do not determine its size; the result type "
                    "must give it",
                    op.location,
                )
        for d, (start, stop, step) in enumerate(bounds):
            if shape_of(g)[d] == DYN:
                stop_src = shape[d] if stop == nn.SLICE_END else f"min({stop}, {shape[d]})"
                length = f"max(0, ({stop_src} - {start} + {step - 1}) // {step})"
                self.line(
                    f"_check({site}, {self.dim(g, d)} == {length}, "
                    f"'dimension {d} of the gradient does not fit the slice')"
                )
        out = self.alloc(op, 0, op.res, shape)
        rank = len(shape)
        params = ["g", "o", *(f"s{d}" for d in range(rank)), *(f"t{d}" for d in range(rank))]
        idx = [f"s{d} + i{d} * t{d}" for d in range(rank)]
        body = self.zero_first(out, "o")
        body += self.loops(
            "g", rank, [f"o{index_src(idx)} = g{index_src([f'i{d}' for d in range(rank)])}"]
        )
        kernel = self.generated(op, "slice_grad", params, body)
        args = [self.name(g), out, *(str(b[0]) for b in bounds), *(str(b[2]) for b in bounds)]
        self.simple_site(op, kernel, args, [out], [g])

    def op_gather(self, op: nn.GatherOp) -> None:
        x, idx = op.input, op.indices
        xs, qs = shape_of(x), shape_of(idx)
        axis = nn.get_int(op.properties, "axis") % len(xs)
        site = len(self.m.sites)
        self.line(f"_indices({site}, {self.name(idx)}, {self.dim(x, axis)}, {axis})")
        shape = [
            *(self.dim(x, k) for k in range(axis)),
            *(self.dim(idx, k) for k in range(len(qs))),
            *(self.dim(x, k) for k in range(axis + 1, len(xs))),
        ]
        out = self.alloc(op, 0, op.res, shape)
        rank = len(shape)
        ov = [f"i{d}" for d in range(rank)]
        iv = ov[axis : axis + len(qs)]
        xi = [*ov[:axis], f"q{index_src(iv)}", *ov[axis + len(qs) :]]
        body = self.loops("o", rank, [f"o{index_src(ov)} = x{index_src(xi)}"])
        kernel = self.generated(op, "gather", ["x", "q", "o"], body)
        self.simple_site(op, kernel, [self.name(x), self.name(idx), out], [out], [x, idx])

    def op_scatter_add(self, op: nn.ScatterAddOp) -> None:
        g, idx = op.grad, op.indices
        gs, qs = shape_of(g), shape_of(idx)
        rs = shape_of(op.res)
        rank = len(rs)
        axis = nn.get_int(op.properties, "axis") % rank
        site = len(self.m.sites)
        shape = []
        for d, size in enumerate(rs):
            if size != DYN:
                shape.append(str(size))
            elif d < axis:
                shape.append(self.dim(g, d))
            elif d > axis:
                shape.append(self.dim(g, d - 1 + len(qs)))
            else:
                raise error_at(
                    f"{op.name}: dimension {d} of the result type {format_type(op.res.type)} "
                    "is `?`, and the operands do not determine its size; the result type "
                    "must give it",
                    op.location,
                )
        self.line(f"_indices({site}, {self.name(idx)}, {shape[axis]}, {axis})")
        out = self.alloc(op, 0, op.res, shape)
        grank = len(gs)
        gv = [f"i{d}" for d in range(grank)]
        iv = gv[axis : axis + len(qs)]
        oi = [*gv[:axis], f"q{index_src(iv)}", *gv[axis + len(qs) :]]
        body = self.zero_first(out, "o")
        body += self.loops("g", grank, [self.accumulate(f"o{index_src(oi)}", f"g{index_src(gv)}")])
        kernel = self.generated(op, "scatter_add", ["g", "q", "o"], body)
        self.simple_site(op, kernel, [self.name(g), self.name(idx), out], [out], [g, idx])

    def op_argmax(self, op: nn.ArgmaxOp) -> None:
        x = op.input
        xs = shape_of(x)
        rank = len(xs)
        if rank == 0:
            out = self.alloc(op, 0, op.res, [])
            body = ["    o[()] = 0"]
            kernel = self.generated(op, "argmax", ["x", "o"], body)
            self.simple_site(op, kernel, [self.name(x), out], [out], [x])
            return
        axis = nn.get_int(op.properties, "axis") % rank
        out = self.alloc(op, 0, op.res, [self.dim(x, k) for k in range(rank) if k != axis])
        ov = [f"i{d}" for d in range(rank - 1)]
        at = lambda t: index_src([*ov[:axis], t, *ov[axis:]])  # noqa: E731
        inner = [
            f"best = x{at('0')}",
            "bi = 0",
            f"for t in range(1, x.shape[{axis}]):",
            f"    v = x{at('t')}",
            "    take = (v > best) | ((v != v) & (best == best))",
            "    best = v if take else best",
            "    bi = t if take else bi",
            f"o{index_src(ov)} = bi",
        ]
        body = self.loops("o", rank - 1, inner)
        kernel = self.generated(op, "argmax", ["x", "o"], body)
        self.simple_site(op, kernel, [self.name(x), out], [out], [x])

    def softmax(self, op: Operation, log: bool) -> None:
        x = op.operands[0]
        xs = shape_of(x)
        rank = len(xs)
        out = self.alloc(op, 0, op.results[0], self.dims(x))
        dtype = self.m.np_type(x.type)
        lit = self.m.literal
        exp, ln = self.m.math("exp", dtype), self.m.math("log", dtype)
        if rank == 0:  # 1 (0 for log) where x is finite
            e = f"{exp}(x[()] - x[()])"
            expr = f"(x[()] - x[()]) - {ln}({e})" if log else f"{e} / {e}"
            body = self.loops_over([], [f"o[()] = {expr}"])
        else:
            axis = nn.get_int(op.properties, "axis") % rank
            ov = [f"i{d}" for d in range(rank - 1)]
            at = lambda t: index_src([*ov[:axis], t, *ov[axis:]])  # noqa: E731
            inner = [
                f"m = x{at('0')}",
                f"for t in range(1, x.shape[{axis}]):",
                f"    v = x{at('t')}",
                "    m = v if (v > m) | (v != v) else m",
                f"s = {lit(0, dtype)}",
                f"for t in range(x.shape[{axis}]):",
                f"    e = {exp}(x{at('t')} - m)",
                "    s += e",
            ]
            if not log:
                inner.append(f"    o{at('t')} = e")
            if log:
                inner += [
                    f"ls = {ln}(s)",
                    f"for t in range(x.shape[{axis}]):",
                    f"    o{at('t')} = (x{at('t')} - m) - ls",
                ]
            else:
                inner += [
                    f"for t in range(x.shape[{axis}]):",
                    f"    o{at('t')} = o{at('t')} / s",
                ]
            rows = [f"x.shape[{d if d < axis else d + 1}]" for d in range(rank - 1)]
            body = self.loops_over(rows, inner)
        kernel = self.generated(op, "log_softmax" if log else "softmax", ["x", "o"], body)
        self.simple_site(op, kernel, [self.name(x), out], [out], [x])

    def op_softmax(self, op: nn.SoftmaxOp) -> None:
        self.softmax(op, log=False)

    def op_log_softmax(self, op: nn.LogSoftmaxOp) -> None:
        self.softmax(op, log=True)

    # convolution and pooling (hand-written kernels)

    def window(self, op: Operation) -> tuple[tuple[int, int], ...]:
        names = (
            ("kernel", "stride", "padding")
            if "kernel" in op.properties
            else (
                "stride",
                "padding",
                "dilation",
            )
        )
        return tuple(tuple(nn.get_ints(op.properties, n)) for n in names)  # type: ignore[misc]

    def out_size(self, value: SSAValue, axis: int, result: SSAValue, k, s, p, d=1) -> str:
        static = shape_of(result)[axis]
        if static != DYN:
            return str(static)
        return f"({self.dim(value, axis)} + {2 * p} - {d * (k - 1)} - 1) // {s} + 1"

    def op_conv2d(self, op: nn.Conv2dOp) -> None:
        x, w = op.input, op.weight
        (sh, sw), (ph, pw), (dh, dw) = self.window(op)
        groups = nn.get_int(op.properties, "groups")
        site = len(self.m.sites)
        ws = shape_of(w)
        kh, kw = ws[2], ws[3]
        self.check_same(site, [self.dim(x, 1), arith(groups, "*", self.dim(w, 1))], "channels")
        oh = self.out_size(x, 2, op.res, kh, sh, ph, dh)
        ow = self.out_size(x, 3, op.res, kw, sw, pw, dw)
        out = self.alloc(op, 0, op.res, [self.dim(x, 0), self.dim(w, 0), oh, ow])
        dtype = self.m.np_type(op.res.type)
        k = arith(self.dim(w, 1), "*", kh * kw)
        npix = f"{out}.shape[0] * {out}.shape[2] * {out}.shape[3]"
        cols = self.scratch(site, 0, [k, npix], dtype)
        res = self.scratch(site, 1, [arith(self.dim(w, 0), "//", groups), npix], dtype)
        self.conv_call(op, "_conv2d", [x, w], out, [cols, res])

    def conv_call(
        self, op: Operation, helper: str, ins: list[SSAValue], out: str, scratch: list[str]
    ) -> None:
        """Call a convolution helper: operands, output, scratch buffers, then the window."""
        (sh, sw), (ph, pw), (dh, dw) = self.window(op)
        window = [sh, sw, ph, pw, dh, dw, nn.get_int(op.properties, "groups")]
        args = [*(self.name(v) for v in ins), out, *scratch, *map(str, window)]
        self.simple_site(op, self.m.helper(helper), args, [out], ins)

    def op_conv2d_grad_input(self, op: nn.Conv2dGradInputOp) -> None:
        g, w = op.grad, op.weight
        (sh, sw), (ph, pw), (dh, dw) = self.window(op)
        groups = nn.get_int(op.properties, "groups")
        site = len(self.m.sites)
        rs, ws = shape_of(op.res), shape_of(w)
        kh, kw = ws[2], ws[3]
        shape = [
            str(rs[0]) if rs[0] != DYN else self.dim(g, 0),
            str(rs[1]) if rs[1] != DYN else arith(groups, "*", self.dim(w, 1)),
        ]
        for axis, (kk, s, p, d) in ((2, (kh, sh, ph, dh)), (3, (kw, sw, pw, dw))):
            if rs[axis] != DYN:
                shape.append(str(rs[axis]))
            else:
                shape.append(f"_window_size({site}, {self.dim(g, axis)}, {kk}, {s}, {p}, {d})")
        self.check_same(site, [self.dim(g, 1), self.dim(w, 0)], "output channels")
        out = self.alloc(op, 0, op.res, shape)
        dtype = self.m.np_type(op.res.type)
        npix = f"{self.name(g)}.shape[0] * {self.name(g)}.shape[2] * {self.name(g)}.shape[3]"
        dcols = self.scratch(site, 0, [arith(self.dim(w, 1), "*", kh * kw), npix], dtype)
        dmat = self.scratch(site, 1, [arith(self.dim(w, 0), "//", groups), npix], dtype)
        self.conv_call(op, "_conv2d_grad_input", [g, w], out, [dcols, dmat])

    def op_conv2d_grad_weight(self, op: nn.Conv2dGradWeightOp) -> None:
        x, g = op.input, op.grad
        groups = nn.get_int(op.properties, "groups")
        site = len(self.m.sites)
        rs = shape_of(op.res)
        if DYN in rs[2:]:
            raise error_at(
                f"{op.name}: the result type {format_type(op.res.type)} must give the kernel size",
                op.location,
            )
        shape = [
            str(rs[0]) if rs[0] != DYN else self.dim(g, 1),
            str(rs[1]) if rs[1] != DYN else arith(self.dim(x, 1), "//", groups),
            str(rs[2]),
            str(rs[3]),
        ]
        self.check_same(site, [self.dim(x, 0), self.dim(g, 0)], "batch")
        out = self.alloc(op, 0, op.res, shape)
        dtype = self.m.np_type(op.res.type)
        kh, kw = rs[2], rs[3]
        k = f"{out}.shape[1] * {kh * kw}"
        npix = f"{self.name(g)}.shape[0] * {self.name(g)}.shape[2] * {self.name(g)}.shape[3]"
        og = f"{out}.shape[0] // {groups}"
        cols = self.scratch(site, 0, [k, npix], dtype)
        dmat = self.scratch(site, 1, [og, npix], dtype)
        res = self.scratch(site, 2, [og, k], dtype)
        self.conv_call(op, "_conv2d_grad_weight", [x, g], out, [cols, dmat, res])

    def pool(self, op: Operation, helper: str) -> None:
        x = op.operands[0]
        (kh, kw), (sh, sw), (ph, pw) = self.window(op)
        oh = self.out_size(x, 2, op.results[0], kh, sh, ph)
        ow = self.out_size(x, 3, op.results[0], kw, sw, pw)
        out = self.alloc(op, 0, op.results[0], [self.dim(x, 0), self.dim(x, 1), oh, ow])
        kernel = self.m.helper(helper)
        args = [self.name(x), out, *map(str, (kh, kw, sh, sw, ph, pw))]
        self.simple_site(op, kernel, args, [out], [x])

    def op_max_pool2d(self, op: nn.MaxPool2dOp) -> None:
        self.pool(op, "_max_pool2d")

    def op_avg_pool2d(self, op: nn.AvgPool2dOp) -> None:
        self.pool(op, "_avg_pool2d")

    def op_max_pool2d_grad(self, op: nn.MaxPool2dGradOp) -> None:
        x, g = op.input, op.grad
        (kh, kw), (sh, sw), (ph, pw) = self.window(op)
        site = len(self.m.sites)
        for axis, (k, s, p) in ((2, (kh, sh, ph)), (3, (kw, sw, pw))):
            expected = self.out_size(x, axis, g, k, s, p)
            self.check_same(site, [self.dim(g, axis), expected], f"dimension {axis}")
        self.check_same(site, [self.dim(x, 0), self.dim(g, 0)], "batch")
        out = self.alloc(op, 0, op.res, self.dims(x))
        kernel = self.m.helper("_max_pool2d_grad")
        args = [self.name(x), self.name(g), out, *map(str, (kh, kw, sh, sw, ph, pw))]
        self.simple_site(op, kernel, args, [out], [x, g])

    def op_avg_pool2d_grad(self, op: nn.AvgPool2dGradOp) -> None:
        g = op.input
        (kh, kw), (sh, sw), (ph, pw) = self.window(op)
        site = len(self.m.sites)
        rs = shape_of(op.res)
        shape = [str(rs[k]) if rs[k] != DYN else self.dim(g, k) for k in range(2)]
        for axis, (k, s, p) in ((2, (kh, sh, ph)), (3, (kw, sw, pw))):
            if rs[axis] != DYN:
                shape.append(str(rs[axis]))
            else:
                shape.append(f"_window_size({site}, {self.dim(g, axis)}, {k}, {s}, {p})")
        out = self.alloc(op, 0, op.res, shape)
        kernel = self.m.helper("_avg_pool2d_grad")
        args = [self.name(g), out, *map(str, (kh, kw, sh, sw, ph, pw))]
        self.simple_site(op, kernel, args, [out], [g])


# --- entry points ------------------------------------------------------------------------------


def emit_module(
    module: ModuleOp, options: CpuOptions | None = None, source_name: str = ""
) -> EmittedModule:
    """The Python source of `module`'s public functions for Numba on the CPU."""
    return ModuleEmitter(module, options or CpuOptions(), source_name).emit()


@dataclass(frozen=True)
class EmitCpuPass(ModulePass):
    """Emit the cpu module (discarded; `irnet compile` writes it) and mark every top-level op
    with the kernel it became: `cpu.kernel = "k3_matmul_add_relu"`, `cpu.site = 7`."""

    name = "emit-cpu"
    target = "cpu"

    @staticmethod
    def emit(module: ModuleOp) -> EmittedModule:
        return emit_module(module)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from xdsl.dialects.builtin import IntegerAttr, i64

        emitted = self.emit(op)
        for entry in emitted.entries.values():
            if entry.error is not None:
                raise entry.error
        for site in emitted.sites:
            site.op.attributes[f"{self.target}.kernel"] = StringAttr(site.kernel)
            site.op.attributes[f"{self.target}.site"] = IntegerAttr(site.index, i64)
