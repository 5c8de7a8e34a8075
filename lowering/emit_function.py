"""Emission of one function: its entry point, which checks the arguments, allocates or reuses the
buffers `plan-memory` chose, and calls one kernel per top-level op (a *site*).

`FunctionEmitter` writes the sites that every target shares: fused loop nests (`loop_site`) and
matmuls with their epilogue (`matmul_site`); every other op's site comes from the module's
lowering registry (`cpu_ops.CPU_LOWERINGS`, or the cuda target's, which inherits it). The
methods at the end are the hooks a target overrides (loops, zeroing, accumulation, launches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, StringAttr, TensorType
from xdsl.ir import Attribute, Block, Operation, SSAValue

from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.kernel import FusedOp, YieldOp
from irnet.dialects.registry import Registry
from irnet.dialects.shapes import DYN, format_type
from irnet.dialects.traits import Elementwise, Reduction

from .fast_path import fast_lines, with_fast_path
from .fusion import is_inlined_constant
from .loop_nest import LoopNest, Spelling
from .source import (
    axes_of,
    describe_location,
    python_name,
    shape_of,
    tuple_src,
    unsupported,
)


@dataclass(frozen=True)
class CpuOptions:
    float_dtype: str | None = None
    """"float64" computes every float tensor in float64 (as `Reference(float_dtype=...)`)."""
    parallel: bool = False
    """`prange` outer loops (and `parallel=True`) in kernels of at least PARALLEL_VOLUME
    iterations; it pays only with several cores."""

    def key(self) -> str:
        return f"float_dtype={self.float_dtype},parallel={self.parallel}"


@dataclass(frozen=True)
class Body:
    """What an entry point runs: a function's body, or the step of a loop (`nn.scan`), which
    the emitted code calls as a function of its own."""

    symbol: str
    block: Block
    result_types: Sequence[Attribute]

    @classmethod
    def of(cls, fn: func.FuncOp) -> Body:
        return cls(fn.sym_name.data, fn.body.block, fn.function_type.outputs.data)


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


def lowering_of(
    op_class: type[Operation], lowerings: Registry[Callable[[FunctionEmitter, Operation], None]]
) -> Callable[[FunctionEmitter, Operation], None] | None:
    """How a target with `lowerings` writes the site of a top-level op of `op_class`: its
    registered rule, else (an elementwise op or a reduction) a loop nest of its own."""
    rule = lowerings.get(op_class)
    if rule is None and (op_class.has_trait(Elementwise) or op_class.has_trait(Reduction)):
        return FunctionEmitter.lone_loop_site
    return rule


class ModuleContext(Spelling, Protocol):
    """What a function's emission needs from its module (`emit_cpu.ModuleEmitter`)."""

    options: CpuOptions
    sites: list[Site]
    lowerings: Registry[Callable[[FunctionEmitter, Operation], None]]

    def kernel(self, body: str, base: str, ops: Sequence[Operation]) -> str: ...

    def kernel_head(self, params: Sequence[str], parallel: bool = False) -> list[str]: ...

    def helper(self, name: str) -> str: ...

    def pooling(self, name: str, window: tuple[int, ...]) -> tuple[str, list[str]]: ...

    def math(self, name: str, np_type: str) -> str: ...

    def add_site(self, site: Site) -> None: ...

    def add_lines(self, lines: list[str]) -> None: ...

    def function_emitter(self, body: func.FuncOp | Body, pyname: str) -> FunctionEmitter: ...

    taken_names: set[str]

    def constant(self, op: nn.ConstantOp) -> str: ...


class FunctionEmitter:
    FAST_PATH = True
    """Emit each entry point's compiled fast path too (`with_fast_path`)."""
    EMPTY = "np.empty"
    """How the entry points allocate a fresh array."""
    TRAINING = "np.array(bool(training))"
    """The array that `nn.training` reads."""
    nest_class = LoopNest

    def __init__(self, module: ModuleContext, body: func.FuncOp | Body, pyname: str):
        self.m = module
        self.body = body if isinstance(body, Body) else Body.of(body)
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
        symbol = self.body.symbol
        args = self.body.block.args
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
        for op in self.body.block.ops:
            self.emit_op(op)
        head = [
            f"def {self.pyname}({', '.join(arg_names)}, *, training=False, step=0, seed=0, "
            "check_finite=False):"
            if arg_names
            else f"def {self.pyname}(*, training=False, step=0, seed=0, check_finite=False):",
            f'    """@{symbol}: {", ".join(format_type(a.type) for a in args)} -> '
            f'{", ".join(format_type(t) for t in self.body.result_types)}"""',
        ]
        if self.uses_ws:
            body.append(f"    ws = _WORKSPACES.setdefault({symbol!r}, {{}})")
        if self.uses_training:
            body.append(f"    v_training = {self.TRAINING}")
        fast = fast_lines(self.lines) if self.FAST_PATH else None
        if fast is None:
            return [*head, *body, *self.lines]
        return with_fast_path(
            symbol, self.pyname, head, body, self.lines, fast, arg_names, self.uses_training
        )

    def emit_op(self, op: Operation) -> None:
        if isinstance(op, func.ReturnOp | nn.YieldOp):
            values = []
            for v in op.operands:
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
        lower = lowering_of(type(op), self.m.lowerings)
        if lower is None:
            raise unsupported(op, self.m.target)
        if op.operands:  # an op without operands names a value (a constant), calls nothing
            self.comment(op, [op])
        lower(self, op)

    def scan_site(self, op: nn.ScanOp) -> None:
        """A loop: its step becomes a function of its own (an entry point with its own
        workspace), which the runtime's `_scan` calls once per step."""
        k = len(op.inits)
        step = python_name(f"{self.pyname}_step", self.m.taken_names)
        body = Body(f"{self.body.symbol}.{step}", op.step, [v.type for v in op.yielded.values])
        self.m.add_lines(["", "", *self.m.function_emitter(body, step).emit()])
        site = self.new_site("_scan", op, [op], list(op.operands), list(op.results))
        plans = [self.decision(op, k + j) or "fresh" for j in range(len(op.ys))]
        self.uses_ws = self.uses_ws or any(p.startswith("ws") for p in plans)
        slots = [p[2:] if p.startswith("ws") else "None" for p in plans]
        outs = [
            (slot, self.m.np_type(y.type), self.step_shape(op, y)) for slot, y in zip(slots, op.ys)
        ]
        finals = [self.new_name(v) for v in op.finals]
        outputs = [self.new_name(v) for v in op.ys]
        names = [tuple_src([self.name(v) for v in group]) for group in (op.inits, op.xs, op.consts)]
        self.line(
            f"{tuple_src([*finals, *outputs])} = _scan({site}, {step}, {', '.join(names)}, "
            f"{'ws' if self.uses_ws else 'None'}, {tuple_src([tuple_src(o) for o in outs])}, "
            f"{op.is_reverse}, "
            "dict(training=training, step=step, seed=seed, check_finite=check_finite))"
        )

    def step_shape(self, op: nn.ScanOp, output: SSAValue) -> str:
        """The shape of one step of a loop's `output`, for a loop of no steps: as
        `shape_giver` says, else its type's (`?` sizes 0)."""
        giver = op.shape_giver(output)
        if giver is None:
            return tuple_src([0 if d == DYN else d for d in shape_of(output)[1:]])
        value, sequence = giver
        return f"{self.name(value)}.shape{'[1:]' if sequence else ''}"

    def lone_loop_site(self, op: Operation) -> None:
        """An elementwise op or a reduction that fusion left alone: a loop nest of one op."""
        self.loop_site(op, [op], {v: v for v in op.operands}, list(op.results))

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
            shape_of(last.operands[0]) if last.has_trait(Reduction) else shape_of(last.results[0])
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

    # --- hooks that targets override ---

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
