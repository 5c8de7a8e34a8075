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

The module is assembled here (`ModuleEmitter`: prelude, helpers, kernels written once, entry
points, tables); each function's entry point comes from `emit_function.py`, each loop nest from
`loop_nest.py`, each other op's site from its rule in `cpu_ops.py`, the fast path from
`fast_path.py`.

The `emit-cpu` pass runs the emitter and records on every top-level op the kernel it became
(`cpu.kernel`); `emit_module` returns the source, the sites (to map a kernel back to its ops and
their source locations) and the entry points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    Float32Type,
    Float64Type,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Operation
from xdsl.passes import ModulePass

from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.shapes import format_type

from . import cpu_runtime
from .cpu_ops import CPU_LOWERINGS
from .emit_function import Body, CpuOptions, FunctionEmitter, Site
from .runtime import text
from .source import describe_location, op_summary, python_name, shape_of, tuple_src

__all__ = ["CpuOptions", "EmitCpuPass", "EmittedModule", "ModuleEmitter", "emit_module"]

EMITTER_VERSION = "4"
"""Part of the compile cache key: bump when the emitted code changes for the same IR."""


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


class ModuleEmitter:
    target = "cpu"
    runtime = cpu_runtime
    """The target's fixed parts: PRELUDE, HELPERS and their DEPENDS."""
    lowerings = CPU_LOWERINGS
    """The site of each op that is neither a fused loop nest nor a matmul."""

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
        self.specialised: dict[str, str] = {}
        """Helpers made for this module (`pooling`), by name."""
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
        """The scalar function `name` of a formula (`formula.FUNCTIONS`) for `np_type`."""
        if name in ("exp", "tanh"):
            return getattr(self, name)(np_type)
        if name == "erf":  # NumPy has none; Numba compiles the standard library's
            return "math.erf"
        return f"np.{name}"

    def call(self, name: str, args: list[str], np_type: str) -> str:
        """A scalar formula's call, with a result of `np_type`."""
        if name == "where":
            cond, when_true, when_false = args
            return f"({when_true} if {cond} else {when_false})"
        if name == "cast":
            return f"({args[0]} != 0)" if np_type == "np.bool_" else f"{np_type}({args[0]})"
        if name == "abs":
            return f"abs({args[0]})"
        if name in ("maximum", "minimum"):  # NaN wins, as in NumPy
            a, b = args
            keep = ">=" if name == "maximum" else "<="
            return f"({a} if ({a} {keep} {b}) | ({a} != {a}) else {b})"
        return f"{self.math(name, np_type)}({', '.join(args)})"

    def kernel_head(self, params: Sequence[str], parallel: bool = False) -> list[str]:
        """A kernel's decorator and `def` line; `{name}` stands for its name."""
        deco = "@njit(**JIT, parallel=True)" if parallel else "@njit(**JIT)"
        return [deco, f"def {{name}}({', '.join(params)}):"]

    def helper(self, name: str) -> str:
        """Add runtime helper `name`, or one made by `pooling`, after those it uses."""
        for dep in self.runtime.DEPENDS.get(name, ()):
            self.helper(dep)
        if name not in self.helpers:
            self.helpers.append(name)
            self.kernel_sites[name] = []
        return name

    def pooling(self, name: str, window: tuple[int, ...]) -> tuple[str, list[str]]:
        """The kernel to call for pooling helper `name` on `window` (`cpu_runtime.WINDOW`),
        and the arguments that give it the window: none, as the kernel is specialised for it."""
        special = "_".join([name, *map(str, window)])
        if special not in self.specialised:
            code = cpu_runtime.specialised(self.runtime.HELPERS[name], special, window)
            for used in text.reads(code):
                if used in self.runtime.HELPERS:
                    self.helper(used)
            self.specialised[special] = code
        return self.helper(special), []

    def add_lines(self, lines: list[str]) -> None:
        """Add a function to the entry points' part of the module (a loop's step)."""
        self.entry_lines += lines

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

    def function_emitter(self, body: func.FuncOp | Body, pyname: str) -> FunctionEmitter:
        return FunctionEmitter(self, body, pyname)

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
                code = self.specialised.get(name) or self.runtime.HELPERS[name]
                out.append(code.strip("\n"))
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
