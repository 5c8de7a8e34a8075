"""Emission for the `cuda` target: a Python module of Numba `@cuda.jit` kernels and one host
function per public function, which keeps every array on the device.

It is the cpu emitter (`emit_cpu`) with other loops. The sites, buffers (`plan-memory`'s
workspace slots become device buffers), run-time size checks and the per-point code of fused
loop nests are the same; what differs:

- a loop nest is a grid-stride loop over its flattened domain, whatever its rank; when a
  reduction ends it, each block reduces one output element at a time, its threads combining
  in a shared-memory tree, and long sums split over more blocks that add atomically;
- a matmul site is a tiled shared-memory kernel (transposed operands read in place, batch
  dimensions decoded from the tile index) that runs its elementwise epilogue on each product
  element as it makes it; an epilogue ending in a reduction is a second kernel;
- convolution and pooling call host launchers from `cuda_runtime` (im2col and the tiled
  product, gathered col2im, atomics where windows overlap);
- scatter-add adds atomically; an output that a kernel adds into is zeroed by a fill kernel;
- entry points take NumPy or device arrays and return device arrays (`np.asarray` copies one
  to the host), so parameters and optimiser state stay on the device between steps.

Every kernel's argument types go into the module's SIGNATURES table, so that each can be
compiled ahead of time (`numba.cuda.compile_ptx`) without a GPU.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import SSAValue

from irnet.dialects import nn
from irnet.dialects.registry import Registry
from irnet.dialects.traits import Reduction

from . import cuda_runtime
from .cpu_ops import CPU_LOWERINGS
from .emit_cpu import CpuOptions, EmitCpuPass, EmittedModule, ModuleEmitter
from .emit_function import Body, FunctionEmitter
from .loop_nest import LoopNest, NestCode
from .source import axes_of, index_src, shape_of

EMITTER_VERSION = "3"
"""Part of the compile cache key: bump when the emitted code changes for the same IR."""


def product(sizes: Sequence[str]) -> str:
    """The product of size expressions, as source."""
    return " * ".join(s if s.isidentifier() or s.isdigit() else f"({s})" for s in sizes) or "1"


def decode(flat: str, loop_vars: Sequence[str], sizes: Sequence[str]) -> list[str]:
    """Lines setting `loop_vars` to the row-major multi-index of `flat` in `sizes`."""
    lines = []
    stride = ""
    for d in reversed(range(len(loop_vars))):
        q = f"({flat} // ({stride}))" if stride else flat
        last = d == 0
        lines.append(f"{loop_vars[d]} = {q}" if last else f"{loop_vars[d]} = {q} % {sizes[d]}")
        stride = f"{stride} * {sizes[d]}" if stride else sizes[d]
    return list(reversed(lines))


def split_index(index: str) -> list[str]:
    """`"i0, q[i1, i2], i3"` -> `["i0", "q[i1, i2]", "i3"]`: the top-level items of an index."""
    items, depth, start = [], 0, 0
    for k, ch in enumerate(index):
        depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(index[start:k].strip())
            start = k + 1
    return [*items, index[start:].strip()]


def atomic_add(array: str, index: Sequence[str], value: str) -> str:
    """`array[index] += value` as one atomic operation (a 1-d index is not a tuple: Numba
    lowers a 1-tuple index of a 1-d array to a type error)."""
    where = index[0] if len(index) == 1 else f"({', '.join(index)})"
    return f"cuda.atomic.add({array}, {where}, {value})"


def chunked(kind: str, out_rank: int) -> bool:
    """Whether a long reduction may split over blocks that add atomically: sums into an
    array (Numba has no atomic add on a 0-d array, and an atomic max would lose NaN)."""
    return kind == "sum" and out_rank > 0


def grid_stride(var: str, total: str) -> str:
    return f"for {var} in range(cuda.grid(1), {total}, cuda.gridsize(1)):"


def numba_type(np_type: str, ndim: int | None) -> str:
    """The Numba type of a C-contiguous array (or, `ndim` None, a scalar) of `np_type`."""
    element = {"np.bool_": "boolean"}.get(np_type, np_type.removeprefix("np."))
    if ndim is None:
        return element
    if ndim == 0:
        return f"Array({element}, 0, 'C')"
    return f"{element}[{', '.join([':'] * (ndim - 1) + ['::1'])}]"


# --- loop nests --------------------------------------------------------------------------------


class CudaLoopNest(LoopNest):
    def lines(
        self, names: dict[SSAValue, str], out_names: Sequence[str], parallel: bool
    ) -> tuple[list[str], bool]:
        code = self.code(names, out_names)
        body = self.elementwise(code) if code.reduction is None else self.reduce(code)
        return ["    " + s for s in body], False

    @staticmethod
    def elementwise(code: NestCode) -> list[str]:
        """A grid-stride loop over the flattened domain."""
        total = product(code.sizes) if code.loop_vars else "1"
        if code.loop_vars == ["i"]:  # a flat nest: the flat index is the index
            return [*code.pre, grid_stride("i", total), *("    " + s for s in code.body)]
        inner = [*decode("t", code.loop_vars, code.sizes), *code.body]
        return [*code.pre, grid_stride("t", total), *("    " + s for s in inner)]

    def reduce(self, code: NestCode) -> list[str]:
        """Block x reduces output elements x, x + gridDim.x, ...: its threads stride over the
        reduced elements (with gridDim.y blocks sharing each), then combine in a tree in shared
        memory (blockDim.x is a power of two)."""
        red = code.reduction
        assert red is not None
        kept = [d for d in range(self.rank) if d not in red.axes]
        ksizes = [code.sizes[d] for d in kept]
        rsizes = [code.sizes[d] for d in red.axes]
        index = red.index(code.loop_vars)
        finish = red.finish("sm[0]")
        store = [f"{red.out}{index_src(index)} = {finish}"]
        if chunked(red.kind, len(index)):
            add = atomic_add(red.out, index, finish)
            store = ["if cuda.gridDim.y == 1:", "    " + store[0], "else:", f"    {add}"]
        return [
            *code.pre,
            f"sm = cuda.shared.array(THREADS, {red.dtype})",
            "tid = cuda.threadIdx.x",
            f"for kk in range(cuda.blockIdx.x, {product(ksizes)}, cuda.gridDim.x):",
            *("    " + s for s in decode("kk", [code.loop_vars[d] for d in kept], ksizes)),
            f"    acc = {red.init}",
            "    step = cuda.blockDim.x * cuda.gridDim.y",
            f"    for rr in range(cuda.blockIdx.y * cuda.blockDim.x + tid, {product(rsizes)}, "
            "step):",
            *("        " + s for s in decode("rr", [code.loop_vars[d] for d in red.axes], rsizes)),
            *("        " + s for s in code.body),
            f"        acc = {red.combine('acc', red.value)}",
            "    sm[tid] = acc",
            "    cuda.syncthreads()",
            "    half = cuda.blockDim.x // 2",
            "    while half > 0:",
            "        if tid < half:",
            f"            sm[tid] = {red.combine('sm[tid]', 'sm[tid + half]')}",
            "        cuda.syncthreads()",
            "        half //= 2",
            "    if tid == 0:",
            *("        " + s for s in store),
            "    cuda.syncthreads()",
        ]


# --- one function ------------------------------------------------------------------------------


class CudaFunctionEmitter(FunctionEmitter):
    FAST_PATH = False  # kernel launches are host calls
    EMPTY = "_empty"
    TRAINING = "_training(training)"
    nest_class = CudaLoopNest

    def __init__(self, module: ModuleEmitter, body: func.FuncOp | Body, pyname: str):
        super().__init__(module, body, pyname)
        self.scratch_types: dict[str, tuple[str, int]] = {}

    def copy_of(self, name: str) -> str:
        return f"_copy({name})"

    def scratch(self, site: int, k: int, shape: Sequence[str], dtype: str) -> str:
        name = super().scratch(site, k, shape, dtype)
        self.scratch_types[name] = (dtype, len(shape))
        return name

    def nest_launch(self, nest: LoopNest, sizes: Sequence[str], outs: Sequence[str]) -> str:
        if nest.reduction is None:
            return f"[_grid({product(sizes)})]"
        axes = axes_of(nest.reduction, nest.rank)
        kept = product([s for d, s in enumerate(sizes) if d not in axes])
        reduced = product([sizes[d] for d in axes])
        out = outs[nest.outputs.index(nest.reduction_value)]
        kind = nest.reduction.get_trait(Reduction).kind
        split = chunked(kind, len(shape_of(nest.reduction_value)))
        if split:
            self.m.record_fill(numba_type(self.m.np_type(nest.reduction_value.type), 1))
        return f"[_reduce_launch({out}, {kept}, {reduced}, {split})]"

    def launch(self, kernel: str, args: Sequence[str], outs: Sequence[str], given: str) -> str:
        """The given launch, else a grid over the first output (host launchers have none);
        the argument types are recorded for SIGNATURES."""
        assert isinstance(self.m, CudaModuleEmitter)
        self.m.record(kernel, [self.arg_type(a) for a in args])
        if given or self.m.is_launcher(kernel):
            return given
        return f"[_grid({outs[0]}.size)]"

    def arg_type(self, arg: str) -> str:
        """The Numba type of a kernel argument (an array name, a flattened view, an int)."""
        if re.fullmatch(r"-?\d+", arg):
            return "int64"
        if arg in ("True", "False"):
            return "boolean"
        flat = arg.endswith(".reshape(-1)")
        name = arg.removesuffix(".reshape(-1)")
        if name in self.scratch_types:
            dtype, ndim = self.scratch_types[name]
        else:
            value = next(v for v, n in self.names.items() if n == name)
            assert isinstance(value.type, TensorType)
            dtype, ndim = self.m.np_type(value.type), value.type.get_num_dims()
        return numba_type(dtype, 1 if flat else ndim)

    # kernels that add into their output

    def zero_first(self, out: str, param: str) -> list[str]:
        self.line(f"_fill({out}, 0)")
        self.m.record_fill(self.arg_type(out))
        return []

    def accumulate(self, target: str, value: str) -> str:
        array, index = target.split("[", 1)
        return atomic_add(array, split_index(index[:-1]), value)

    def loops_over(self, sizes: Sequence[str], inner: list[str]) -> list[str]:
        loop_vars = [f"i{d}" for d in range(len(sizes))]
        lines = [grid_stride("t", product(sizes) if sizes else "1")]
        lines += ["    " + s for s in [*decode("t", loop_vars, sizes), *inner]]
        return ["    " + s for s in lines]

    # matmul: a tiled kernel, then the epilogue

    def matmul_text(self, params, lhs, rhs, p, product_value, nest, kin, kout) -> str:
        """A tiled kernel. An elementwise epilogue runs on each element of the product as it
        is made (the product itself is stored only if it is an output); one that ends in a
        reduction is a second kernel over the stored product."""
        domain = shape_of(product_value)
        batch = len(domain) - 2
        dtype = self.m.np_type(product_value.type)
        bvars = [f"b{k}" for k in range(batch)]

        def element(operand: tuple[str, bool, tuple[int, ...]], row: str, col: str) -> str:
            name, transposed, s = operand
            nb = len(s) - 2
            offset = batch - nb
            idx = ["0" if s[k] == 1 else bvars[offset + k] for k in range(nb)]
            idx += [col, row] if transposed else [row, col]
            return f"{name}[{', '.join(idx)}]"

        batch_sizes = [f"{p}.shape[{d}]" for d in range(batch)]
        a_name, at, ashape = lhs
        k_size = f"{a_name}.shape[{len(ashape) - (2 if at else 1)}]"
        zero = self.m.literal(0, dtype)
        fused = bool(nest.ops) and nest.reduction is None
        pre: list[str] = []
        point = [f"{p}[{', '.join([*bvars, 'i', 'j'])}] = acc"]
        mm_params = [lhs[0], rhs[0], p]
        if fused:
            nest.scalars = {product_value: "acc"}
            code = nest.code(kin, kout)
            loop_vars = [f"i{d}" for d in range(len(domain))]
            moved = [f"{v} = {w}" for v, w in zip(loop_vars, [*bvars, "i", "j"])]
            point = [*(point if product_value in nest.outputs else []), *moved, *code.body]
            pre, mm_params = code.pre, list(params)
        mm = [
            "@cuda.jit(**JIT)",
            f"def {{name}}_mm({', '.join(mm_params)}):",
            *("    " + s for s in pre),
            f"    sa = cuda.shared.array((TILE, TILE), {dtype})",
            f"    sb = cuda.shared.array((TILE, TILE), {dtype})",
            "    tx, ty, rows = cuda.threadIdx.x, cuda.threadIdx.y, cuda.blockDim.y",
            f"    m, n, k = {p}.shape[{batch}], {p}.shape[{batch + 1}], {k_size}",
            "    tm, tn = (m + rows - 1) // rows, (n + TILE - 1) // TILE",
            f"    for tile in range(cuda.blockIdx.x, {product([*batch_sizes, 'tm', 'tn'])}, "
            "cuda.gridDim.x):",
            "        i = (tile // tn) % tm * rows + ty",
            "        j = tile % tn * TILE + tx",
            *("        " + s for s in decode("(tile // (tm * tn))", bvars, batch_sizes)),
            f"        acc = {zero}",
            "        for t0 in range(0, k, TILE):",
            "            ka = t0 + tx",
            f"            sa[ty, tx] = {element(lhs, 'i', 'ka')} if i < m and ka < k else {zero}",
            "            for r in range(ty, TILE, rows):",
            "                kb = t0 + r",
            f"                b = {element(rhs, 'kb', 'j')} if j < n and kb < k else {zero}",
            "                sb[r, tx] = b",
            "            cuda.syncthreads()",
            "            for q in range(k - t0 if k - t0 < TILE else TILE):",
            "                acc += sa[ty, q] * sb[q, tx]",
            "            cuda.syncthreads()",
            "        if i < m and j < n:",
            *("            " + s for s in point),
        ]
        batches = product(batch_sizes)
        launcher = [
            f"def {{name}}({', '.join(params)}):",
            f"    {{name}}_mm[_tile_grid({batches}, {p}.shape[{batch}], "
            f"{p}.shape[{batch + 1}])]({', '.join(mm_params)})",
        ]
        kernels = [*mm]
        if nest.ops and not fused:
            body, _ = nest.lines(kin, kout, False)
            kernels += ["", "", "@cuda.jit(**JIT)", f"def {{name}}_ep({', '.join(params)}):"]
            kernels += body
            sizes = [f"{p}.shape[{d}]" for d in range(len(domain))]
            launch = self.nest_launch(nest, sizes, kout)
            launcher.append(f"    {{name}}_ep{launch}({', '.join(params)})")
        return "\n".join([*kernels, "", "", *launcher])


# --- the module --------------------------------------------------------------------------------


CUDA_LOWERINGS = Registry("cuda lowering", parent=CPU_LOWERINGS)
"""The cuda target's own op rules; it has none yet: every op's site is the cpu rule's, run
through this target's hooks (loops, zeroing, atomic accumulation, launchers)."""


class CudaModuleEmitter(ModuleEmitter):
    target = "cuda"
    runtime = cuda_runtime
    lowerings = CUDA_LOWERINGS

    def __init__(self, module: ModuleOp, options: CpuOptions, source_name: str = ""):
        super().__init__(module, options, source_name)
        self.signatures: dict[str, list[tuple[str, ...]]] = {}

    def math(self, name: str, np_type: str) -> str:
        return {"power": "_pow"}.get(name, f"_{name}")

    def kernel_head(self, params: Sequence[str], parallel: bool = False) -> list[str]:
        return ["@cuda.jit(**JIT)", f"def {{name}}({', '.join(params)}):"]

    def function_emitter(self, body: func.FuncOp | Body, pyname: str) -> FunctionEmitter:
        return CudaFunctionEmitter(self, body, pyname)

    def constant(self, op: nn.ConstantOp) -> str:
        return f"_dev({super().constant(op)})"

    def is_launcher(self, kernel: str) -> bool:
        """Whether `kernel` is a host function that launches kernels itself."""
        if kernel in self.runtime.HELPERS:
            return not kernel.endswith("_k")
        return "@cuda.jit(**JIT)\ndef {name}(" not in self.kernel_defs[kernel][0]

    def signature(self, kernel: str, types: Sequence[str]) -> None:
        known = self.signatures.setdefault(kernel, [])
        if tuple(types) not in known:
            known.append(tuple(types))

    def record(self, kernel: str, types: list[str]) -> None:
        """The argument types of the kernels a call of `kernel` launches."""
        if kernel in self.runtime.HELPERS:
            f = next(t.split("[")[0] for t in types if "[" in t)
            for name in self.helper_kernels(kernel):
                self.signature(name, [t.replace("{f}", f) for t in self.runtime.SIGNATURES[name]])
            return
        text = self.kernel_defs[kernel][0]
        heads = re.findall(r"@cuda\.jit\(\*\*JIT\)\ndef (\{name\}\w*)\(([^)]*)\)", text)
        own = re.search(r"def \{name\}\(([^)]*)\)", text)
        names = [p.strip() for p in own.group(1).split(",")] if own else []
        by_param = dict(zip(names, types))
        for head, inner in heads:
            params = [p.strip() for p in inner.split(",") if p.strip()]
            self.signature(head.replace("{name}", kernel), [by_param[p] for p in params])

    def record_fill(self, array_type: str) -> None:
        """`_fill(a, 0)` runs `_fill_k` on `a` flattened."""
        self.signature("_fill_k", [array_type.split("[")[0] + "[::1]", "int64"])

    def pooling(self, name: str, window: tuple[int, ...]) -> tuple[str, list[str]]:
        """The host launcher of pooling `name`, given the window as arguments: the cuda
        kernels take it at run time."""
        return self.helper(name), [str(v) for v in window]

    def helper_kernels(self, name: str) -> list[str]:
        found = [name] if name.endswith("_k") else []
        if "_fill(" in self.runtime.HELPERS[name]:
            found.append("_fill_k")
        for dep in self.runtime.DEPENDS.get(name, ()):
            found += self.helper_kernels(dep)
        return found

    def header(self) -> str:
        lines = [
            f"# Generated by irnet (emit_cuda {EMITTER_VERSION}) from "
            f"{self.source_name or 'an irnet module'}; do not edit.",
            "# Needs only numpy and numba, and an NVIDIA GPU (or NUMBA_ENABLE_CUDASIM=1, Numba's",
            "# CUDA simulator). Entry points take NumPy or numba device arrays and return device",
            "# arrays: feed them back in to keep parameters on the GPU, `np.asarray(a)` or",
            "# `a.copy_to_host()` copies one to the host.",
            "#",
            "# Keyword arguments of every entry: training=False (what nn.training returns),",
            "# step=0, seed=0 (the random stream of nn.random_uniform, drawn on the host as the",
            "# reference does), check_finite=False (NonFiniteError at the first kernel that makes",
            "# NaN or Inf). `run(name, args, **kw)` calls an entry by its IR name. SIGNATURES",
            "# gives each kernel's argument types, for `numba.cuda.compile_ptx`.",
            "#",
        ]
        for entry in self.entries.values():
            lines.append(
                f"#   {entry.python_name}({', '.join(entry.arg_names)})    @{entry.symbol}"
            )
        return "\n".join(lines)

    def tables(self) -> list[str]:
        rows = [f"    {name!r}: {sig!r}," for name, sig in self.signatures.items()]
        return [*super().tables(), "", "", "SIGNATURES = {", *rows, "}"]


def emit_module(
    module: ModuleOp, options: CpuOptions | None = None, source_name: str = ""
) -> EmittedModule:
    """The Python source of `module`'s public functions for Numba's CUDA target."""
    return CudaModuleEmitter(module, options or CpuOptions(), source_name).emit()


@dataclass(frozen=True)
class EmitCudaPass(EmitCpuPass):
    """Emit the cuda module (discarded; `irnet compile --target cuda` writes it) and mark
    every top-level op with the kernel it became: `cuda.kernel`, `cuda.site`."""

    name = "emit-cuda"
    target = "cuda"

    @staticmethod
    def emit(module: ModuleOp) -> EmittedModule:
        return emit_module(module)
