"""ONNX export: a model's inference function as an ONNX graph, for other runtimes.

    proto = export_onnx(model, "mnist.onnx")           # opset 17; 18 to 21 also accepted

The exported graph is the model function (`@mnist_mlp`) after the target-independent passes,
in inference mode, with exactly the semantics of the reference interpreter
(`irnet/reference.py`):

- `nn.training` is false. A `nn.select` whose condition is the training flag (through
  broadcasts, reshapes and casts) becomes its false operand, and what only the true branch
  used (dropout's `nn.random_uniform`) is dead: only the ops live from the `func.return`
  operands are exported. A live `nn.random_uniform` is refused, at its source line.
- Inputs keep the names of the `.irn` signature; parameters and state tensors (batch norm's
  running statistics) are initializers named by their irnet names (`dense_0.w`) holding the
  model's current values; results are `output` (or `output_0`, `output_1`, ...); the next
  values of the state, which only training keeps, are not exported.
- A `?` dimension stays dynamic: an input's first one is `N` (the batch), others are named
  after their input (`x_dim2`); a result's dynamic dimensions take the names ONNX's shape
  inference finds for them (`N` when the batch flows through), else their own.

Each `nn` op is turned into ONNX nodes by an emitter in `EMITTERS`, a table from op class to
a small function; an op without one (a gradient op, which appears only in gradients) is
refused naming it and its source location. A loop (`nn.scan`) is a `Scan` node whose body
subgraph holds its step, built by the same emitters (`Graph.nested`, `emit_block`). The file
is written only once the model is built and `onnx.checker` (full check, with shape inference)
accepts it, through a temp file renamed into place (`checkpoint.write_file`): a failed export
leaves an existing file as it was.

onnx is an optional extra, imported when an export starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, Operation, SSAValue

from irnet.dialects import dtypes, nn
from irnet.dialects.shapes import DYN, is_bool, static_product

from .checkpoint import write_file
from .diagnostics import IrnError, error_at
from .params import INITIALISED, arguments, caller_results, find_function
from .version import __version__

if TYPE_CHECKING:
    import onnx

OPSETS = range(17, 22)
"""The ONNX opsets the exporter writes: 17 (the default, widely supported) to 21."""

Scaling = dict[str, tuple[np.ndarray, np.ndarray]]
"""Inputs normalised before the model sees them: name -> (mean, std)."""

BATCH = "N"
"""The dim_param of an input's first dynamic dimension."""


class Parameters(Protocol):
    def numpy(self) -> dict[str, np.ndarray]: ...


class Model(Protocol):
    """What the export reads of an `irnet.Model` (`irnet.model` imports this module, so it
    names the model through a Protocol rather than an import)."""

    name: str
    _module: ModuleOp
    """The program after the target-independent passes."""

    @property
    def params(self) -> Parameters: ...

    @property
    def state(self) -> Parameters: ...


def export_onnx(
    model: Model, path: str | Path, *, opset: int = 17, scaling: Scaling | None = None
) -> onnx.ModelProto:
    """Write `model`'s function (`model.name`) in inference mode to the ONNX file `path`, with
    the model's current parameters as initializers; return the checked `ModelProto`.
    `scaling` maps an input to the `(mean, std)` its values are normalised with first, as
    `irnet predict` does for a train block's `csv(..., normalize=true)` data.

    Raises `IrnError` for an opset outside 17..21, an op that cannot be exported (named, at
    its source line), a missing onnx extra, or a file that cannot be written."""
    onnx = import_onnx()
    if opset not in OPSETS:
        raise IrnError(f"ONNX export writes opsets {OPSETS[0]} to {OPSETS[-1]}, not {opset}")
    function = find_function(model._module, model.name)
    weights = {**model.params.numpy(), **model.state.numpy()}
    proto = build_model(function, weights, opset, scaling or {})
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    write_file(Path(path), lambda f: f.write(data), "ONNX model")
    return proto


def import_onnx() -> Any:
    """The onnx package, or an `IrnError` saying how to install it (it is an optional extra)."""
    try:
        import onnx
    except ImportError:
        raise IrnError("ONNX export needs the onnx extra: pip install 'irnet[onnx]'") from None
    return onnx


def build_model(
    function: func.FuncOp,
    params: dict[str, np.ndarray],
    opset: int = 17,
    scaling: Scaling | None = None,
) -> onnx.ModelProto:
    """`function` as an ONNX model (not yet checked), `params` giving the values of the
    parameters and state tensors, and `scaling` the normalisation of inputs. The next values
    of the state, which only training keeps, are not outputs."""
    onnx = import_onnx()
    helper = onnx.helper
    graph = Graph(onnx, opset)
    inputs, initializers = bind_arguments(graph, function, params, scaling or {})
    results = inference_results(function)
    outputs = [graph.fresh(name) for name in output_names(len(results))]
    emit_block(graph, function.body.block, results, outputs)
    body = helper.make_graph(
        graph.nodes,
        function.sym_name.data,
        inputs,
        [value_info(onnx, name, v.type, {}) for name, v in zip(outputs, results)],
        [init for name, init in initializers.items() if name in graph.used],
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        body,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="irnet",
        producer_version=__version__,
        doc_string=f"the inference function of irnet model {function.sym_name.data}",
    )
    name_result_dims(onnx, proto, outputs, results)
    return proto


# --- arguments and results ---------------------------------------------------------------------


def bind_arguments(
    graph: Graph, function: func.FuncOp, params: dict[str, np.ndarray], scaling: Scaling
) -> tuple[list, dict[str, Any]]:
    """The graph inputs (every argument that is not a parameter, named as the signature names
    it) and the initializers (each parameter, by its irnet name), binding the block arguments
    to those names, or for a scaled input to `(input - mean) / std`."""
    numpy_helper = graph.onnx.numpy_helper
    inputs, initializers = [], {}
    for arg, value in zip(arguments(function), function.body.block.args):
        graph.bind(value, arg.name)
        if arg.name in scaling:
            mean, std = (graph.constant(v, numpy_dtype(arg.type)) for v in scaling[arg.name])
            graph.bind(value, graph.node("Div", [graph.node("Sub", [arg.name, mean]), std]))
        if arg.kind in INITIALISED:
            array = np.asarray(params[arg.name], dtype=numpy_dtype(arg.type))
            initializers[arg.name] = numpy_helper.from_array(array, arg.name)
        else:
            rank = arg.type.get_num_dims()
            dims = {i: BATCH if i == 0 else f"{arg.name}_dim{i}" for i in range(rank)}
            inputs.append(value_info(graph.onnx, arg.name, arg.type, dims))
    return inputs, initializers


def output_names(count: int) -> list[str]:
    """`output`, or `output_0`, `output_1`, ... for several results. Each is written by an
    `Identity`: ONNX outputs get names of their own even where a result is an input, a
    parameter or another result."""
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def value_info(onnx: Any, name: str, t: TensorType, dims: dict[int, str]) -> Any:
    """A tensor's ONNX type: static sizes as values, `?` as the dim_param `dims` gives it (or
    left unknown)."""
    shape = [dims.get(i) if d == DYN else d for i, d in enumerate(t.get_shape())]
    return onnx.helper.make_tensor_value_info(name, element_type(t), shape)


def name_result_dims(
    onnx: Any, proto: onnx.ModelProto, outputs: Sequence[str], results: Sequence[SSAValue]
) -> None:
    """Name each dynamic dimension of the results: the symbol ONNX's shape inference carries to
    it from the inputs (`N` for a batch that flows through), else `<output>_dim<i>`."""
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    found = {o.name: o.type.tensor_type.shape.dim for o in inferred.graph.output}
    for declared, value in zip(proto.graph.output, results):
        dims = found.get(declared.name, [])
        for i, dim in enumerate(declared.type.tensor_type.shape.dim):
            if value.type.get_shape()[i] != DYN:
                continue
            symbol = dims[i].dim_param if i < len(dims) else ""
            invented = symbol.startswith("unk__")  # inference's name for a size it cannot tell
            dim.dim_param = f"{declared.name}_dim{i}" if invented or not symbol else symbol


def element_type(t: TensorType) -> int:
    """The ONNX element type (`TensorProto.FLOAT`, ...) of an irnet tensor type."""
    import onnx

    return onnx.helper.np_dtype_to_tensor_dtype(numpy_dtype(t))


def numpy_dtype(t: TensorType) -> np.dtype:
    try:
        return dtypes.numpy_dtype(t)
    except dtypes.DTypeError as e:
        raise IrnError(f"ONNX export: {e}") from None


# --- inference mode: folding the training flag, liveness ---------------------------------------

KEEPS_ZERO = (nn.BroadcastToOp, nn.ReshapeOp, nn.CastOp, nn.TransposeOp, nn.SliceOp)
"""Ops whose result is all zeros (false) when their first operand is: a training flag seen
through them is still false."""


def inference_results(function: func.FuncOp) -> list[SSAValue]:
    """The function's results less the next values of its state."""
    returned = function.body.block.last_op.operands
    return [returned[i] for i in caller_results(function)]


def live_ops(
    block: Block, results: Sequence[SSAValue]
) -> tuple[list[Operation], dict[Operation, SSAValue]]:
    """The ops of `block` computing `results` in inference mode, in program order, and the
    selects folded to their false operand. A select on the training flag is folded where its
    false operand makes the result alone: its type is the result's, or the result's shape is
    static (an `Expand` stretches it). Its true branch is then dead, dropout's draw with it."""
    zero: set[SSAValue] = set()
    folded: dict[Operation, SSAValue] = {}
    for op in block.ops:
        if isinstance(op, nn.TrainingOp) or (isinstance(op, KEEPS_ZERO) and op.operands[0] in zero):
            zero.add(op.results[0])
        elif isinstance(op, nn.SelectOp) and op.cond in zero and stands_alone(op):
            folded[op] = op.on_false
    live: set[Operation] = set()
    pending = list(results)
    while pending:
        owner = pending.pop().owner
        if isinstance(owner, Operation) and owner not in live:
            live.add(owner)
            pending.extend([folded[owner]] if owner in folded else owner.operands)
    return [op for op in block.ops if op in live], folded


def stands_alone(select: nn.SelectOp) -> bool:
    result = select.res.type
    return select.on_false.type == result or DYN not in result.get_shape()


# --- the graph being built ---------------------------------------------------------------------


@dataclass
class Graph:
    """The ONNX nodes built so far, the name of each SSA value, and the constants (one node
    per distinct value)."""

    onnx: Any
    opset: int
    nodes: list = field(default_factory=list)
    names: dict[SSAValue, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)
    """Names some node reads: the initializers worth keeping."""
    constants: dict[tuple, str] = field(default_factory=dict)

    def __getitem__(self, value: SSAValue) -> str:
        return self.names[value]

    def bind(self, value: SSAValue, name: str) -> None:
        self.names[value] = name
        self.taken.add(name)

    def fresh(self, hint: str) -> str:
        """A name no value has yet: `hint`, else `hint_1`, `hint_2`, ..."""
        name, k = hint, 0
        while name in self.taken:
            k += 1
            name = f"{hint}_{k}"
        self.taken.add(name)
        return name

    def node(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs) -> str:
        """Append one node with one output (`out`, or a fresh name); its output's name."""
        out = out or self.fresh(op_type.lower())
        self.node_of_outputs(op_type, inputs, [out], **attrs)
        return out

    def node_of_outputs(
        self, op_type: str, inputs: Sequence[str], outs: Sequence[str], **attrs
    ) -> None:
        """Append one node writing `outs` (a `Scan` has several), named after the first."""
        self.used.update(inputs)
        node = self.onnx.helper.make_node(op_type, list(inputs), list(outs), outs[0], **attrs)
        self.nodes.append(node)

    def nested(self) -> Graph:
        """An empty graph for a loop's step (an ONNX subgraph). It shares the names taken, as
        a value's name must be unique through the model's subgraphs, and the names used, so
        an initializer only a step reads is kept; it builds its own constants, which the
        outer graph cannot see."""
        return Graph(self.onnx, self.opset, taken=self.taken, used=self.used)

    def constant(self, value: Any, dtype: Any) -> str:
        """A `Constant` node holding `value` as an array of `dtype`, shared by equal values."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self.constants:
            tensor = self.onnx.numpy_helper.from_array(array)
            self.constants[key] = self.node("Constant", [], self.fresh("const"), value=tensor)
        return self.constants[key]

    def ints(self, values: Sequence[int]) -> str:
        """A 1-D int64 constant: the shapes, axes and bounds ONNX takes as inputs."""
        return self.constant(list(values), np.int64)

    def like(self, value: float, t: TensorType) -> str:
        """A scalar constant of `t`'s dtype: a formula's literal, as NumPy's weak scalars are."""
        return self.constant(value, numpy_dtype(t))

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keep: bool, out: str) -> str:
        """`ReduceSum`/`ReduceMean`/... over `axes`: an input from opset 18 (ReduceSum: 13),
        an attribute before."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.node(op_type, [x, self.ints(axes)], out, keepdims=int(keep))
        return self.node(op_type, [x], out, axes=list(axes), keepdims=int(keep))


# --- emitters ----------------------------------------------------------------------------------

Emitter = Callable[[Graph, Any, str], str | list[str]]
"""Builds the nodes of one op, writing its result to the given name (or returning another
name that holds it); the name of the result, or of each result of an op that has several
(`nn.scan`, whose first result is written to the given name)."""


def emit_block(
    graph: Graph, block: Block, results: Sequence[SSAValue], outputs: Sequence[str]
) -> None:
    """The nodes of the ops of `block` that compute `results` in inference mode, then an
    `Identity` writing each result to its name in `outputs`: a graph's outputs get names of
    their own even where a value is an input or is returned twice."""
    ops, folded = live_ops(block, results)
    for op in ops:
        emit(graph, op, folded)
    for name, value in zip(outputs, results, strict=True):
        graph.node("Identity", [graph[value]], name)


def emit(graph: Graph, op: Operation, folded: dict[Operation, SSAValue]) -> None:
    """Bind `op`'s results to the ONNX values holding them, after its nodes; refuse an op that
    has no emitter, at its source line."""
    emitter = EMITTERS.get(type(op))
    if emitter is None:
        why = REFUSED.get(type(op), "the exporter has no mapping for it")
        raise error_at(f"cannot export {op.name} to ONNX: {why}", op.location)
    out = graph.fresh(op.results[0].name_hint or op.name.removeprefix("nn."))
    if op in folded:
        names = emit_folded_select(graph, op, folded[op], out)
    else:
        names = emitter(graph, op, out)
    for result, name in zip(op.results, [names] if isinstance(names, str) else names, strict=True):
        graph.names[result] = name


REFUSED: dict[type[Operation], str] = {
    nn.RandomUniformOp: "its random stream has no ONNX equivalent; an exported function may "
    "draw only where the draw is unused in inference, as in where(training(), ...)",
    **{
        grad: "it is a gradient op (from a grad() or value_and_grad() in the model), and the "
        "exporter maps forward ops only"
        for grad in (
            nn.Conv2dGradInputOp,
            nn.Conv2dGradWeightOp,
            nn.MaxPool2dGradOp,
            nn.AvgPool2dGradOp,
            nn.ScatterAddOp,
            nn.SliceGradOp,
        )
    },
}
"""Why the ops with no emitter have none."""


def emit_folded_select(graph: Graph, op: nn.SelectOp, on_false: SSAValue, out: str) -> str:
    """A select on the (false) training flag: its false operand, stretched to the result's
    static shape where it is smaller (`live_ops` folds only these)."""
    if on_false.type == op.res.type:
        return graph[on_false]
    return graph.node("Expand", [graph[on_false], graph.ints(op.res.type.get_shape())], out)


def same_op(op_type: str) -> Emitter:
    """An op that is one ONNX node of the same operands: `nn.add` is `Add`."""

    def emitter(graph: Graph, op: Operation, out: str) -> str:
        return graph.node(op_type, [graph[v] for v in op.operands], out)

    return emitter


ONE_NODE = {
    nn.NegOp: "Neg",
    nn.AbsOp: "Abs",
    nn.ExpOp: "Exp",
    nn.LogOp: "Log",
    nn.SqrtOp: "Sqrt",
    nn.TanhOp: "Tanh",
    nn.SigmoidOp: "Sigmoid",
    nn.ReluOp: "Relu",
    nn.ErfOp: "Erf",
    nn.AddOp: "Add",
    nn.SubOp: "Sub",
    nn.MulOp: "Mul",
    nn.DivOp: "Div",
    nn.PowOp: "Pow",
    nn.MaximumOp: "Max",
    nn.MinimumOp: "Min",
    nn.SelectOp: "Where",
    nn.MatmulOp: "MatMul",
}
"""ONNX broadcasts as NumPy does, and irnet's broadcasting is NumPy's made static, so these
map one to one."""


def emit_gelu(graph: Graph, op: nn.GeluOp, out: str) -> str:
    """`Gelu` from opset 20; before it, irnet's formula (`nn.GELU`) spelt out in the same order
    of operations: `0.5 * x * (1 + erf(x * 0.7071...))`, or the tanh approximation."""
    mode = nn.GeluOp.approximation(op)
    x, t = graph[op.input], op.input.type
    if graph.opset >= 20:
        return graph.node("Gelu", [x], out, approximate=mode)
    if mode == "none":
        inner = graph.node("Erf", [graph.node("Mul", [x, graph.like(0.7071067811865476, t)])])
    else:
        cube = graph.node("Mul", [graph.like(0.044715, t), x])
        cube = graph.node("Mul", [graph.node("Mul", [cube, x]), x])
        scaled = graph.node(
            "Mul", [graph.like(0.7978845608028654, t), graph.node("Add", [x, cube])]
        )
        inner = graph.node("Tanh", [scaled])
    half = graph.node("Mul", [graph.like(0.5, t), x])
    return graph.node("Mul", [half, graph.node("Add", [graph.like(1, t), inner])], out)


COMPARISONS = {
    "eq": "Equal",
    "ne": "Equal",
    "lt": "Less",
    "le": "LessOrEqual",
    "gt": "Greater",
    "ge": "GreaterOrEqual",
}


def emit_cmp(graph: Graph, op: nn.CmpOp, out: str) -> str:
    """`ne` is `Not(Equal)` (true for NaN, as NumPy's `!=`). ONNX orders numbers only, so bools
    are compared as int32 (False < True, as in NumPy)."""
    predicate = op.predicate.data
    op_type = COMPARISONS[predicate]
    operands = [graph[op.lhs], graph[op.rhs]]
    if is_bool(op.lhs.type) and op_type != "Equal":
        int32 = graph.onnx.TensorProto.INT32
        operands = [graph.node("Cast", [v], to=int32) for v in operands]
    if predicate == "ne":
        return graph.node("Not", [graph.node("Equal", operands)], out)
    return graph.node(op_type, operands, out)


def emit_mod(graph: Graph, op: nn.ModOp, out: str) -> str:
    """`Mod` with `fmod=0`: the sign of the divisor, as Python's and NumPy's `%`."""
    return graph.node("Mod", [graph[op.lhs], graph[op.rhs]], out, fmod=0)


def emit_floor_div(graph: Graph, op: nn.FloorDivOp, out: str) -> str:
    """`(a - a % b) / b`: ONNX's integer `Div` truncates towards zero, and `a - a % b` is a
    multiple of `b`, so it divides exactly to the floor."""
    a, b = graph[op.lhs], graph[op.rhs]
    remainder = graph.node("Mod", [a, b], fmod=0)
    return graph.node("Div", [graph.node("Sub", [a, remainder]), b], out)


def emit_cast(graph: Graph, op: nn.CastOp, out: str) -> str:
    """`Cast` truncates float to int toward zero and maps nonzero to true, as NumPy's astype."""
    if op.input.type.element_type == op.res.type.element_type:
        return graph.node("Identity", [graph[op.input]], out)
    return graph.node("Cast", [graph[op.input]], out, to=element_type(op.res.type))


def emit_constant(graph: Graph, op: nn.ConstantOp, out: str) -> str:
    t = op.res.type
    values = np.array(op.value.get_values(), numpy_dtype(t)).reshape(t.get_shape())
    return graph.constant(values, values.dtype)


def emit_training(graph: Graph, op: nn.TrainingOp, out: str) -> str:
    """The export is the inference function: the flag is false wherever it is still used."""
    return graph.constant(False, np.bool_)


def emit_transpose(graph: Graph, op: nn.TransposeOp, out: str) -> str:
    return graph.node(
        "Transpose", [graph[op.input]], out, perm=list(nn.get_ints(op.properties, "perm"))
    )


def emit_reshape(graph: Graph, op: nn.ReshapeOp, out: str) -> str:
    """The result type's shape with its one `?` as -1, or as 0 ("the input's size") where it
    is the input's one `?` in the same place: ONNX's shape inference then carries the batch's
    name through a flatten. A static 0 means 0 (`allowzero`), not "the input's size"."""
    source, target = op.input.type.get_shape(), op.res.type.get_shape()
    keeps = keeps_dynamic_dim(source, target)
    shape = [(0 if keeps else -1) if d == DYN else d for d in target]
    zero = {"allowzero": 1} if 0 in target else {}
    return graph.node("Reshape", [graph[op.input], graph.ints(shape)], out, **zero)


def keeps_dynamic_dim(source: Sequence[int], target: Sequence[int]) -> bool:
    """Whether a reshape keeps its input's one `?` dimension as it is: the same place, and the
    same nonzero count of elements in the static dimensions, so the same size."""
    dynamic = [i for i, d in enumerate(source) if d == DYN]
    if len(dynamic) != 1 or dynamic != [i for i, d in enumerate(target) if d == DYN]:
        return False
    product = static_product(source)
    return product != 0 and product == static_product(target)


def emit_broadcast_to(graph: Graph, op: nn.BroadcastToOp, out: str) -> str:
    """`Expand` to the result shape: a constant when static, else `like`'s run-time shape,
    which is the target's (its static sizes agree with the result type's); with `like_axes`,
    the sizes it names gathered from `like`'s shape after the others (1 for a `?` the input
    sizes: `Expand` keeps the input's size there)."""
    target = op.res.type.get_shape()
    if DYN not in target:
        shape = graph.ints(target)
    elif op.like_axes is None:
        shape = graph.node("Shape", [graph[op.like]])
    else:
        rank = op.like.type.get_num_dims()
        own = graph.ints([1 if d == DYN else d for d in target])
        sizes = graph.node("Concat", [graph.node("Shape", [graph[op.like]]), own], axis=0)
        axes = zip(target, op.like_axis_map())
        picks = [a if d == DYN and a >= 0 else rank + i for i, (d, a) in enumerate(axes)]
        shape = graph.node("Gather", [sizes, graph.ints(picks)])
    return graph.node("Expand", [graph[op.input], shape], out)


def reduction(op_type: str) -> Emitter:
    """`axes` made non-negative (none: all of them); a rank-0 tensor is its own reduction."""

    def emitter(graph: Graph, op: nn.ReduceOp, out: str) -> str:
        rank = op.input.type.get_num_dims()
        if rank == 0:
            return graph.node("Identity", [graph[op.input]], out)
        axes = sorted({a % rank for a in nn.get_ints(op.properties, "axes")}) or range(rank)
        return graph.reduce(op_type, graph[op.input], list(axes), "keepdims" in op.properties, out)

    return emitter


def axis(op: Operation, t: TensorType) -> int:
    """The op's `axis`, non-negative."""
    return nn.get_int(op.properties, "axis") % max(t.get_num_dims(), 1)


def emit_argmax(graph: Graph, op: nn.ArgmaxOp, out: str) -> str:
    """`ArgMax` (the first maximum, as NumPy) without the reduced axis; int64 as irnet's."""
    if op.input.type.get_num_dims() == 0:
        return graph.constant(0, np.int64)
    return graph.node("ArgMax", [graph[op.input]], out, axis=axis(op, op.input.type), keepdims=0)


def softmax(op_type: str) -> Emitter:
    """`Softmax`/`LogSoftmax` along the op's axis (opset 13's per-axis meaning); a scalar goes
    through as a one-element vector."""

    def emitter(graph: Graph, op: nn.SoftmaxLikeOp, out: str) -> str:
        x, t = graph[op.input], op.input.type
        if t.get_num_dims() == 0:
            flat = graph.node(op_type, [graph.node("Reshape", [x, graph.ints([1])])], axis=0)
            return graph.node("Reshape", [flat, graph.ints([])], out)
        return graph.node(op_type, [x], out, axis=axis(op, t))

    return emitter


def emit_conv2d(graph: Graph, op: nn.Conv2dOp, out: str) -> str:
    """`Conv`: irnet's symmetric `padding` is ONNX's `pads` [top, left, bottom, right]."""
    props = op.properties
    attrs = dict(
        strides=list(nn.get_ints(props, "stride")),
        pads=list(nn.get_ints(props, "padding")) * 2,
        dilations=list(nn.get_ints(props, "dilation")),
        group=nn.get_int(props, "groups"),
    )
    kernel = op.weight.type.get_shape()[2:]
    if DYN not in kernel:
        attrs["kernel_shape"] = list(kernel)
    return graph.node("Conv", [graph[op.input], graph[op.weight]], out, **attrs)


def pool(op_type: str) -> Emitter:
    """`MaxPool` (padding never wins) / `AveragePool` (`count_include_pad=1` where padded zeros
    count in the divisor, irnet's default), floor-sized as irnet's windows."""

    def emitter(graph: Graph, op: nn.PoolOp, out: str) -> str:
        props = op.properties
        extra = {}
        if isinstance(op, nn.AvgPool2dOp):
            extra["count_include_pad"] = int(nn.counts_padding(op))
        return graph.node(
            op_type,
            [graph[op.input]],
            out,
            kernel_shape=list(nn.get_ints(props, "kernel")),
            strides=list(nn.get_ints(props, "stride")),
            pads=list(nn.get_ints(props, "padding")) * 2,
            **extra,
        )

    return emitter


def emit_gather(graph: Graph, op: nn.GatherOp, out: str) -> str:
    return graph.node(
        "Gather", [graph[op.input], graph[op.indices]], out, axis=axis(op, op.input.type)
    )


def emit_concat(graph: Graph, op: nn.ConcatOp, out: str) -> str:
    inputs = [graph[v] for v in op.inputs]
    return graph.node("Concat", inputs, out, axis=axis(op, op.inputs[0].type))


def emit_one_hot(graph: Graph, op: nn.OneHotOp, out: str) -> str:
    """`indices[..., None] == arange(C)` as irnet defines it, not ONNX's `OneHot`, which counts
    negative indices from the end where irnet gives a row of zeros."""
    classes = nn.get_int(op.properties, "num_classes")
    indices = graph.node("Unsqueeze", [graph[op.input], graph.ints([-1])])
    arange = graph.constant(np.arange(classes), numpy_dtype(op.input.type))
    hot = graph.node("Equal", [indices, arange])
    return graph.node("Cast", [hot], out, to=element_type(op.res.type))


def emit_slice(graph: Graph, op: nn.SliceOp, out: str) -> str:
    """`Slice` on the axes that are cut (an axis taken whole is left out, so its size, the
    batch's name too, stays as it is); the open stop 2**62 is clamped, as ONNX clamps."""
    shape = op.input.type.get_shape()
    bounds = zip(*(nn.get_ints(op.properties, k) for k in ("starts", "stops", "steps")))
    cuts = [(axis, *b) for axis, b in enumerate(bounds) if not whole(b, shape[axis])]
    if not cuts:
        return graph.node("Identity", [graph[op.input]], out)
    axes, starts, stops, steps = zip(*cuts)
    inputs = [graph.ints(v) for v in (starts, stops, axes, steps)]
    return graph.node("Slice", [graph[op.input], *inputs], out)


def whole(bounds: tuple[int, int, int], size: int) -> bool:
    start, stop, step = bounds
    return start == 0 and step == 1 and (stop == nn.SLICE_END or (size != DYN and stop >= size))


def emit_axis_size(graph: Graph, op: nn.AxisSizeOp, out: str) -> str:
    """The element count over `axes` in the input's dtype: a constant when those sizes are
    static, else the product of the run-time sizes (`Shape`, `Gather`, `ReduceProd`)."""
    shape = op.input.type.get_shape()
    rank = len(shape)
    axes = sorted({a % rank for a in nn.get_ints(op.properties, "axes")}) if rank else []
    axes = axes or list(range(rank))
    if all(shape[a] != DYN for a in axes):
        return graph.constant(math.prod(shape[a] for a in axes), numpy_dtype(op.res.type))
    sizes = graph.node("Gather", [graph.node("Shape", [graph[op.input]]), graph.ints(axes)])
    count = graph.node("ReduceProd", [sizes], keepdims=0)
    return graph.node("Cast", [count], out, to=element_type(op.res.type))


def emit_iota(graph: Graph, op: nn.IotaOp, out: str) -> str:
    """`Range(0, n)` along the axis, reshaped to it and expanded to the input's shape."""
    rank = op.input.type.get_num_dims()
    if rank == 0:
        return graph.constant(0, np.int64)
    axis = nn.get_int(op.properties, "axis") % rank
    shape = graph.node("Shape", [graph[op.input]])
    size = graph.node("Squeeze", [graph.node("Gather", [shape, graph.ints([axis])]),
                                  graph.ints([0])])  # fmt: skip
    index = graph.node("Range", [graph.constant(0, np.int64), size, graph.constant(1, np.int64)])
    along = graph.ints([-1 if k == axis else 1 for k in range(rank)])
    return graph.node("Expand", [graph.node("Reshape", [index, along]), shape], out)


def emit_scan(graph: Graph, op: nn.ScanOp, out: str) -> list[str]:
    """ONNX `Scan` over the leading axis of the sequences, its body the step (`step_graph`).
    With `reverse` it reads the sequences from the last index and prepends each step's
    outputs, so that they stay indexed by `t`, as irnet's are."""
    results = [out, *(graph.fresh(r.name_hint or out) for r in op.results[1:])]
    directions = {}
    if op.is_reverse:
        directions = {
            "scan_input_directions": [1] * len(op.xs),
            "scan_output_directions": [1] * len(op.ys),
        }
    graph.node_of_outputs(
        "Scan",
        [graph[v] for v in [*op.inits, *op.xs]],
        results,
        body=step_graph(graph, op, out),
        num_scan_inputs=len(op.xs),
        **directions,
    )
    return results


def step_graph(graph: Graph, op: nn.ScanOp, name: str) -> onnx.GraphProto:
    """The step of `op` as a subgraph of `graph`, its ops exported by the same emitters: the
    carries and one slice of each sequence are its inputs, the yielded values its outputs.
    The `with` values are read by their names in `graph` (a subgraph sees its outer scope),
    neither copied nor carried as state."""
    step, body = op.body.block, graph.nested()
    carried = len(op.inits) + len(op.xs)
    for arg in step.args[:carried]:
        body.bind(arg, body.fresh(arg.name_hint or "step"))
    for arg, value in zip(step.args[carried:], op.consts, strict=True):
        body.bind(arg, graph[value])
    yielded = step.last_op.operands
    outputs = [body.fresh(f"{name}_next") for _ in yielded]
    emit_block(body, step, yielded, outputs)
    return graph.onnx.helper.make_graph(
        body.nodes,
        f"{name}_step",
        [value_info(graph.onnx, body[v], v.type, {}) for v in step.args[:carried]],
        [value_info(graph.onnx, n, v.type, {}) for n, v in zip(outputs, yielded)],
    )


EMITTERS: dict[type[Operation], Emitter] = {
    **{cls: same_op(op_type) for cls, op_type in ONE_NODE.items()},
    nn.GeluOp: emit_gelu,
    nn.CmpOp: emit_cmp,
    nn.FloorDivOp: emit_floor_div,
    nn.ModOp: emit_mod,
    nn.CastOp: emit_cast,
    nn.ConstantOp: emit_constant,
    nn.TrainingOp: emit_training,
    nn.TransposeOp: emit_transpose,
    nn.ReshapeOp: emit_reshape,
    nn.BroadcastToOp: emit_broadcast_to,
    nn.ReduceSumOp: reduction("ReduceSum"),
    nn.ReduceMeanOp: reduction("ReduceMean"),
    nn.ReduceMaxOp: reduction("ReduceMax"),
    nn.ArgmaxOp: emit_argmax,
    nn.SoftmaxOp: softmax("Softmax"),
    nn.LogSoftmaxOp: softmax("LogSoftmax"),
    nn.Conv2dOp: emit_conv2d,
    nn.MaxPool2dOp: pool("MaxPool"),
    nn.AvgPool2dOp: pool("AveragePool"),
    nn.GatherOp: emit_gather,
    nn.ConcatOp: emit_concat,
    nn.OneHotOp: emit_one_hot,
    nn.SliceOp: emit_slice,
    nn.AxisSizeOp: emit_axis_size,
    nn.IotaOp: emit_iota,
    nn.ScanOp: emit_scan,
}
"""Each exportable `nn` op and the function that builds its ONNX nodes."""
