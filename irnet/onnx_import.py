"""ONNX import: an ONNX model as a readable `.irn` program plus its weights.

    imported = import_onnx("mnist.onnx")         # Imported(name, text, weights)
    model = irnet.loads(imported.text, target="reference")
    model.params.update(imported.weights)

The program is one `model` whose arguments are the graph's inputs and which returns the graph's
output, written one statement per ONNX node (`h1 = relu(h0)`), with names taken from the ONNX
tensor names. Where a pattern of nodes is a standard-library layer, the layer is called, so the
program reads like hand-written `.irn` and its parameters get the layers' names (`dense_0.w`):

- `Gemm` (alpha 1, beta 1, no transA, constant B and C) and `MatMul` by a constant followed by
  an `Add` of a constant are `dense`;
- `Conv` (2-D, square kernel, equal strides and pads, no dilation, one group) with a constant
  bias, or followed by an `Add` of one, is `conv`; a 1-D `Conv` with a constant bias and one
  group is `conv1d`; 2-D pools without padding are `max_pool` and
  `avg_pool`; `Flatten` of a 4-D tensor at axis 1 is `flatten`;
- `BatchNormalization` of a 4-D tensor is `batch_norm`, `LayerNormalization` over the last axis
  is `layer_norm`, `Gather` from a constant table along axis 0 is `embedding`;
- a constant counting 0, 1, ... along one axis (a `Range` reshaped) `Expand`ed to the shape of a
  tensor is `iota`, as irnet exports it (a causal mask: `where(iota(s, axis=3) > ...)`).

Other constants that are weights become `param` declarations of the model (named after their
ONNX names); scalars become literals, and integer shape and axes tensors are read at import.
Nodes whose inputs are all constant are computed here (`fold_constants`), as exporters leave
such chains (a bias reshaped by a `Reshape` node), and so are shape computations that only carry
the batch size to a `Reshape` (`x.view(x.size(0), -1)`). Sizes come from ONNX shape inference
and the converters' own rules, with the first dimension of each input as the batch `N` when it
is not static; other dimensions must be static. Nodes the output does not depend on are
skipped.

Everything the importer cannot express exactly in irnet is refused with an `IrnError` naming
the node, never approximated. The generated text is compiled before it is returned, and its
parameters must be exactly the weights (`verify`): a difference is a bug of this module.

onnx is an optional extra, imported when an import starts.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from irnet.builtins import BUILTINS
from irnet.grammar.lexer import RESERVED

from . import checkpoint
from .diagnostics import IrnError

if TYPE_CHECKING:
    import onnx

    from .model import Model

Dim = int | str | None
"""A size: static (`int`), the batch (`BATCH`), or known only at run time (None)."""
Shape = tuple[Dim, ...]

BATCH = "N"
"""The name of the batch dimension in the program, and the symbol shape inference carries."""

DTYPES = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.bool_): "bool",
}
"""The dtypes irnet has, by NumPy dtype; ONNX's others (float16, uint8, ...) are refused."""

OPEN_END = 2**62
"""Slice ends at least this large mean "to the end" (exporters write INT64_MAX or 2**62)."""


# --- the result --------------------------------------------------------------------------------


@dataclass
class Imported:
    """An imported model: its name in the program, the `.irn` program, its weights by irnet
    parameter name (exactly the parameters the program declares) and its state tensors
    (batch norm's running statistics) by name."""

    name: str
    text: str
    weights: dict[str, np.ndarray]
    state: dict[str, np.ndarray] = field(default_factory=dict)


def import_onnx(path: str | Path, name: str | None = None) -> Imported:
    """The ONNX model at `path` as an `.irn` program named `name` (default: the file's stem)
    and its weights. Raises `IrnError` for a file that is not a readable ONNX model, external
    data outside the model's folder, or a node or attribute irnet cannot express."""
    return compiled_import(Path(path), name, "reference")[0]


def load_onnx(path: str | Path, *, name: str | None = None, target: str | None = None) -> Model:
    """The ONNX model at `path` as an `irnet.Model` with its weights: what `irnet import`
    writes, loaded. `name` names the model (default: the file's stem)."""
    imported, model = compiled_import(Path(path), name, target)
    model.params.update(imported.weights)
    model.state.update(imported.state)
    return model


def compiled_import(path: Path, name: str | None, target: str | None) -> tuple[Imported, Model]:
    """The import of `path` and its program compiled for `target`, checked (`verify`)."""
    proto = read_model(path)
    model_name = checked_name(name) if name is not None else default_name(path)
    imported = Importer(proto, path, model_name).run()
    return imported, verify(imported, path, target)


def write_imported(source: Path, output: Path, name: str | None = None) -> tuple[Path, Path]:
    """`irnet import`: the program of `source` written to `output`, its weights beside it as
    `.safetensors`; the two paths. The model is named `name`, by default `output`'s stem."""
    imported = import_onnx(source, name if name is not None else default_name(output))
    weights = output.with_suffix(checkpoint.SAFETENSORS)
    checkpoint.write_file(output, lambda f: f.write(imported.text.encode()), "program")
    checkpoint.save_weights(weights, imported.weights, imported.name, imported.state)
    return output, weights


# --- reading the file --------------------------------------------------------------------------


def import_onnx_package() -> Any:
    try:
        import onnx
    except ImportError:
        raise IrnError("ONNX import needs the onnx extra: pip install 'irnet[onnx]'") from None
    return onnx


def read_model(path: Path) -> onnx.ModelProto:
    """The model in `path` with its external data loaded. `onnx.checker` is not run: it
    refuses models that runtimes accept (an output without a shape); strict shape inference
    (`inferred_model`) and the converters check what the import relies on."""
    onnx = import_onnx_package()
    if not path.is_file():
        reason = "it is a folder" if path.is_dir() else "No such file or directory"
        raise IrnError(f"cannot read {path}: {reason}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and whatever a damaged file provokes
        raise IrnError(f"cannot read {path}: not an ONNX model, or a truncated one ({e})") from None
    if not model.HasField("graph") or model.ir_version == 0 or not model.graph.output:
        raise IrnError(f"cannot read {path}: not an ONNX model, or a truncated one (it has no "
                       "graph, outputs or IR version)")  # fmt: skip
    load_external_data(onnx, model, path)
    return model


def all_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """The initializers and the tensors of node attributes (`Constant`'s value), subgraphs
    included: every tensor whose data may live in an external file."""
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            tensors.extend([attr.t] if attr.HasField("t") else [])
            tensors.extend(attr.tensors)
            for sub in [attr.g] if attr.HasField("g") else []:
                tensors.extend(all_tensors(sub))
            for sub in attr.graphs:
                tensors.extend(all_tensors(sub))
    return tensors


def load_external_data(onnx: Any, model: onnx.ModelProto, path: Path) -> None:
    """Read each external tensor's data, from files inside the model's folder only: a location
    that is absolute or leads outside it (`..`, a symbolic link) is refused before any file is
    opened, since a model file must not make the importer read the rest of the disk."""
    folder = path.parent.resolve()
    for tensor in all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise IrnError(
                f"{path}: tensor '{tensor.name}' keeps its data in '{location}', outside the "
                f"model's folder {folder}; the importer reads external data only from there"
            )
        if not target.is_file():
            raise IrnError(f"{path}: the external data '{location}' of '{tensor.name}' is missing")
        try:
            onnx.external_data_helper.load_external_data_for_tensor(tensor, str(folder))
        except Exception as e:
            raise IrnError(f"{path}: cannot read the data of '{tensor.name}': {e}") from None
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def inferred_model(onnx: Any, model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """A copy of `model` through ONNX shape inference, after naming each input's dynamic first
    dimension `N` (so that the batch can be followed through the graph) and forgetting the
    sizes the file states for intermediate values and outputs (inference recomputes them)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.value_info[:]
    for output in copy.graph.output:
        if output.type.tensor_type.HasField("shape"):
            output.type.tensor_type.ClearField("shape")
    weights = {t.name for t in copy.graph.initializer}
    for value in copy.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value") and value.name not in weights:
            dims[0].dim_param = BATCH
    try:
        return onnx.shape_inference.infer_shapes(copy, strict_mode=True)
    except Exception as e:
        raise IrnError(f"{path}: ONNX shape inference fails: {str(e).strip()}") from None


# --- names -------------------------------------------------------------------------------------


def stdlib_functions() -> frozenset[str]:
    text = (Path(__file__).parent / "stdlib" / "nn.irn").read_text()
    return frozenset(re.findall(r"^def (\w+)", text, flags=re.MULTILINE))


TAKEN = frozenset({*RESERVED, *BUILTINS, *stdlib_functions(), BATCH, "nn"})
"""Names a program's own names must not take: reserved words, builtins (a local name would hide
one), the standard library's functions (which the program imports) and the batch dimension."""


def identifier(text: str) -> str:
    """`text` (an ONNX name such as `/fc1/Gemm_output_0` or `onnx::Add_7`) as a name:
    other characters become `_`, PyTorch's `_output_0` suffix goes, a digit gets a prefix."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    name = re.sub(r"_+", "_", re.sub(r"_output_0(?=_|$)", "", name))
    if not name:
        return "t"
    return f"t{name}" if name[0].isdigit() else name


def default_name(path: Path) -> str:
    name = identifier(path.stem)
    return f"{name}_model" if name in TAKEN else name


def checked_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in TAKEN:
        raise IrnError(f"'{name}' cannot name a model: it must be a name that is not a reserved "
                       "word, a builtin or a standard-library function")  # fmt: skip
    return name


@dataclass
class Names:
    """Unique names for the program: each hint as a name, `_1`, `_2`, ... when it is taken."""

    taken: set[str] = field(default_factory=lambda: set(TAKEN))

    def fresh(self, hint: str) -> str:
        """`hint` as a name; one that a builtin or a reserved word has is suffixed `_`
        (`reshape_`), as Python code does, and a repeat gets `_1`, `_2`, ..."""
        base = identifier(hint)
        base = f"{base}_" if base in TAKEN else base
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


# --- text of sizes, types and literals ----------------------------------------------------------


def type_text(dtype: np.dtype, shape: Shape) -> str:
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    return f"{DTYPES[dtype]}[{dims}]"


def shape_list(shape: Shape) -> str:
    """A reshape target: the batch as `N`, another run-time size as -1."""
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


def ints_text(values: Sequence[int]) -> str:
    """An integer, or a list of them where they differ (`stride=2`, `stride=[1, 2]`)."""
    values = [int(v) for v in values]
    return str(values[0]) if len(set(values)) == 1 else str(values)


def literal(value: Any, dtype: np.dtype) -> str | None:
    """A scalar as a literal of `dtype`'s kind (a float always with `.` or an exponent), in
    parentheses when negative; None for infinities and NaN, which the language cannot write.
    A float is written in the fewest digits that give back the same `dtype` value."""
    if dtype.kind == "b":
        return "true" if bool(value) else "false"
    if dtype.kind in "iu":
        text = str(int(value))
    else:
        exact = dtype.type(value)
        if not np.isfinite(exact):
            return None
        text = str(exact)
        if dtype.type(float(text)) != exact:
            text = repr(float(exact))
        if not re.search(r"[.e]", text):
            text += ".0"
    return f"({text})" if text.startswith("-") else text


def broadcast(shapes: Sequence[Shape | None]) -> Shape | None:
    """The shape NumPy broadcasting gives (None if a shape is unknown): at each position a
    static size other than 1 wins, then the batch, then an unknown size."""
    if any(s is None for s in shapes):
        return None
    rank = max(len(s) for s in shapes)
    aligned = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    result: list[Dim] = []
    for dims in zip(*aligned):
        sized = [d for d in dims if isinstance(d, int) and d != 1]
        result.append(
            sized[0] if sized else BATCH if BATCH in dims else None if None in dims else 1
        )
    return tuple(result)


def merged(dims: Sequence[Dim]) -> Dim:
    """Sizes that must agree (a concat's other axes): the one that says most."""
    return next((d for d in dims if isinstance(d, int)), BATCH if BATCH in dims else None)


def product(dims: Sequence[Dim]) -> Dim:
    """The size of dims merged into one: static, the batch (the batch times ones), or None."""
    unknown = [d for d in dims if not isinstance(d, int)]
    known = math.prod(d for d in dims if isinstance(d, int))
    if not unknown:
        return known
    return BATCH if unknown == [BATCH] and known == 1 else None


# --- the graph as the converters see it --------------------------------------------------------


@dataclass
class Value:
    """A tensor of the program: its expression (a name), shape and dtype."""

    expr: str
    shape: Shape | None
    dtype: np.dtype


@dataclass
class Node:
    """An ONNX node with its attributes decoded, and where it is for error messages."""

    proto: Any
    index: int

    @property
    def op(self) -> str:
        return self.proto.op_type

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)

    def input(self, i: int) -> str:
        """The `i`-th input's name, "" when it is absent (an omitted optional input)."""
        return self.proto.input[i] if i < len(self.proto.input) else ""

    def attr(self, key: str, default: Any = None) -> Any:
        import onnx

        for a in self.proto.attribute:
            if a.name == key:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def __str__(self) -> str:
        label = f"'{self.proto.name}'" if self.proto.name else f"#{self.index}"
        return f"node {label} ({self.op})"


class Importer:
    """Walks the graph once, in node order, asking each node's converter for its statements."""

    def __init__(self, model: onnx.ModelProto, path: Path, name: str):
        onnx = import_onnx_package()
        self.onnx, self.path, self.name = onnx, path, name
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.model = model
        self.outputs = [o.name for o in model.graph.output]
        if len(self.outputs) != 1:
            raise IrnError(
                f"{path}: the graph has {len(self.outputs)} outputs "
                f"({', '.join(self.outputs)}); an irnet model returns one tensor"
            )
        live = live_nodes(model.graph, self.outputs)
        for node in live:
            self.check_supported(node)
        graph = inferred_model(onnx, model, path).graph
        self.graph = graph
        self.nodes = [Node(n, i) for i, n in enumerate(graph.node)]
        self.types = {v.name: v.type for v in [*graph.input, *graph.value_info, *graph.output]}
        self.consts: dict[str, np.ndarray] = {
            t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer
        }
        self.values: dict[str, Value] = {}
        self.symbolic: dict[str, np.ndarray] = {}
        """Shape vectors holding the batch (object arrays with `BATCH`), from folding `Shape`."""
        self.shape_of: dict[str, str] = {}
        """Each folded `Shape` of a whole tensor, by its output: the tensor measured, which
        `Expand` to that shape names as `like` (a shape with the batch is no literal)."""
        self.names = Names()
        self.names.taken.add(name)
        self.params: dict[str, str] = {}  # irnet name -> declaration
        self.weights: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.param_of: dict[str, str] = {}  # ONNX constant name -> its param
        self.lines: list[str] = []
        self.imports: list[str] = []
        self.instances: Counter[str] = Counter()
        self.done = {n.index for n in self.nodes} - {n.index for n in live}
        """Nodes not to convert: dead ones, and those fused into an earlier node's statement."""
        self.consumers: dict[str, list[Node]] = {}
        for node in live:
            for i in node.inputs:
                self.consumers.setdefault(i, []).append(self.nodes[node.index])

    # --- the walk

    def run(self) -> Imported:
        signature = self.bind_inputs()
        fold_constants(self)
        for node in self.nodes:
            if node.index not in self.done and not fold_node(self, node):
                self.convert(node)
        result = self.operand(self.outputs[0])
        out = self.values.get(self.outputs[0])
        if self.outputs[0] in self.consts:
            array = self.consts[self.outputs[0]]
            out = Value(result, array.shape, array.dtype)
        typed = out is not None and out.shape is not None and out.dtype in DTYPES
        returns = f" -> {type_text(out.dtype, out.shape)}" if typed else ""
        text = self.text(signature, returns, result)
        return Imported(self.name, text, self.weights, self.state)

    def bind_inputs(self) -> str:
        """The model's arguments: the graph inputs that are not initializers."""
        arguments = []
        for value in self.graph.input:
            if value.name in self.consts:
                continue
            shape, dtype = self.input_type(value)
            name = self.names.fresh(value.name)
            self.values[value.name] = Value(name, shape, dtype)
            arguments.append(f"{name}: {type_text(dtype, shape)}")
        return ", ".join(arguments)

    def input_type(self, value: Any) -> tuple[Shape, np.dtype]:
        tensor_type = value.type.tensor_type
        dtype = self.numpy_dtype(tensor_type.elem_type, f"input '{value.name}'")
        if not tensor_type.HasField("shape"):
            raise IrnError(f"{self.path}: input '{value.name}' has no shape; irnet needs its rank")
        shape = self.dims(tensor_type.shape)
        if any(d is None for d in shape) or BATCH in shape[1:]:
            raise IrnError(
                f"{self.path}: input '{value.name}' has a dynamic size beyond its first "
                f"dimension ({type_text(dtype, shape)}); irnet needs them static"
            )
        return shape, dtype

    def check_supported(self, node: Node) -> None:
        """Refuse an op without a converter, before shape inference (which may not know it)."""
        domain = node.proto.domain
        if domain not in ("", "ai.onnx") or node.op not in CONVERTERS:
            of = f" of domain '{domain}'" if domain not in ("", "ai.onnx") else ""
            raise IrnError(
                f"{self.path}: {node} has the op type {node.op}{of}, which the importer does not "
                f"support; it supports {', '.join(sorted(CONVERTERS))}"
            )

    def convert(self, node: Node) -> None:
        CONVERTERS[node.op](self, node)

    def refuse(self, node: Node, message: str) -> IrnError:
        return IrnError(f"{self.path}: {node}: {message}")

    def text(self, signature: str, returns: str, result: str) -> str:
        producer = " ".join(p for p in (self.model.producer_name, self.model.producer_version) if p)
        header = [
            f"# Imported from {self.path.name} (ONNX opset {self.opset}"
            + (f", produced by {producer})" if producer else ")"),
            "# by irnet's ONNX importer. The parameters' values are the imported weights;",
            "# `= zeros` only gives them an initialiser.",
        ]
        imports = [f"from nn import {', '.join(self.imports)}"] if self.imports else []
        body = [*self.params.values(), *self.lines, f"return {result}"]
        statements = (textwrap.indent(s, "    ") for s in body)
        model = [f"model {self.name}({signature}){returns} {{", *statements, "}"]
        return "\n".join([*header, *([""] + imports if imports else []), "", *model]) + "\n"

    # --- types and shapes

    def numpy_dtype(self, elem_type: int, what: str) -> np.dtype:
        try:
            dtype = np.dtype(self.onnx.helper.tensor_dtype_to_np_dtype(elem_type))
        except Exception:
            dtype = None
        if dtype not in DTYPES:
            onnx_name = self.onnx.TensorProto.DataType.Name(elem_type)
            raise IrnError(f"{self.path}: {what} is {onnx_name}; irnet has f32, f64, i32, i64 "
                           "and bool tensors")  # fmt: skip
        return dtype

    @staticmethod
    def dims(shape: Any) -> Shape:
        return tuple(
            d.dim_value if d.HasField("dim_value") else BATCH if d.dim_param == BATCH else None
            for d in shape.dim
        )

    def inferred(self, name: str) -> tuple[Shape | None, np.dtype | None]:
        """What shape inference says of a tensor: its shape (None when unknown) and dtype."""
        t = self.types.get(name)
        if t is None or not t.HasField("tensor_type"):
            return None, None
        tensor_type = t.tensor_type
        shape = self.dims(tensor_type.shape) if tensor_type.HasField("shape") else None
        try:
            dtype = np.dtype(self.onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        except Exception:
            dtype = None
        return shape, dtype

    def known_shape(self, name: str) -> Shape | None:
        """An operand's shape, None when unknown."""
        if name in self.consts:
            return self.consts[name].shape
        return self.values[name].shape if name in self.values else None

    def shape(self, name: str, node: Node) -> Shape:
        """The shape of an input of `node`; refused when inference did not find it."""
        if name in self.consts:
            return self.consts[name].shape
        shape = self.values[name].shape if name in self.values else None
        if shape is None:
            raise self.refuse(node, f"the shape of '{name}' is unknown (ONNX shape inference "
                                    "did not find it), and this node needs it")  # fmt: skip
        return shape

    def rank(self, name: str, node: Node) -> int:
        return len(self.shape(name, node))

    def dtype(self, name: str) -> np.dtype:
        return self.consts[name].dtype if name in self.consts else self.values[name].dtype

    # --- operands

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def const_ints(self, node: Node, i: int, what: str, batch_ok: bool = False) -> list[int] | None:
        """Input `i` as integers (shapes, axes), None when absent; it must be constant. With
        `batch_ok` (a reshape's shape), a computed shape holding the batch size is accepted:
        the batch is `BATCH` there."""
        name = node.input(i)
        if not name:
            return None
        if batch_ok and name in self.symbolic:
            return [v if v == BATCH else int(v) for v in self.symbolic[name].reshape(-1)]
        array = self.const(name)
        if array is None:
            raise self.refuse(node, f"its {what} ('{name}') must be constant: irnet needs it at "
                                    "compile time")  # fmt: skip
        return [int(v) for v in array.reshape(-1)]

    def runtime(self, name: str, node: Node) -> Value:
        if name not in self.values:
            raise self.refuse(node, f"its input '{name}' must be computed by the graph here")
        return self.values[name]

    def operand(self, name: str, node: Node | None = None, beside: Value | None = None) -> str:
        """The expression for input `name`. A constant is a literal where one element stands
        for it (`beside` is the tensor it broadcasts against, of at least its rank), else a
        `param`; an integer constant of several elements is refused (no tensor literals)."""
        if name in self.values:
            return self.values[name].expr
        if name in self.symbolic:
            raise IrnError(f"{self.path}: {node}: '{name}' is computed from the batch size, which "
                           "irnet knows only at run time; only a Reshape may use it")  # fmt: skip
        if name not in self.consts:
            where = f"{node}: " if node else ""
            raise IrnError(f"{self.path}: {where}the tensor '{name}' is not defined")
        array = self.consts[name]
        if beside is not None and array.size == 1 and array.ndim <= len(beside.shape or ()):
            text = literal(array.reshape(()), beside.dtype)
            if text is not None:
                return text
        if array.dtype.kind != "f":
            what = f"{node}: " if node else ""
            raise IrnError(
                f"{self.path}: {what}the constant '{name}' ({array.dtype}{list(array.shape)}) "
                "is used as a tensor; irnet has parameters of floats only and no tensor literals"
            )
        if name not in self.param_of:
            self.param_of[name] = self.param(name, array)
        return self.param_of[name]

    # --- what the converters write

    def param(self, hint: str, array: np.ndarray) -> str:
        """Declare a new parameter holding `array` (float); its name."""
        if array.dtype not in DTYPES:
            raise IrnError(f"{self.path}: the constant '{hint}' is {array.dtype}; irnet's "
                           "parameters are f32 or f64")  # fmt: skip
        name = self.names.fresh(hint)
        self.params[name] = f"param {name}: {type_text(array.dtype, array.shape)} = zeros"
        self.weights[name] = np.ascontiguousarray(array)
        return name

    def use(self, function: str) -> None:
        """Import `function` from the standard library."""
        if function not in self.imports:
            self.imports.append(function)

    def layer(self, function: str) -> str:
        """The instance name of the next call of standard-library layer `function`
        (`dense_0`, `dense_1`, ...), which prefixes its parameters' names."""
        self.use(function)
        k = self.instances[function]
        self.instances[function] += 1
        return f"{function}_{k}"

    def emit(
        self, out: str, expr: str, shape: Shape | None = None, dtype: np.dtype | None = None
    ) -> Value:
        """`name = expr` for the ONNX tensor `out`; its shape and dtype, when not given, are
        those shape inference found."""
        found_shape, found_dtype = self.inferred(out)
        value = Value(
            self.names.fresh(out),
            shape if shape is not None else found_shape,
            dtype if dtype is not None else found_dtype,
        )
        self.lines.append(f"{value.expr} = {expr}")
        self.values[out] = value
        return value

    def temp(self, hint: str, expr: str, shape: Shape, dtype: np.dtype) -> Value:
        """A helper statement of a node written in several (`x_2d = reshape(x, ...)`)."""
        value = Value(self.names.fresh(hint), shape, dtype)
        self.lines.append(f"{value.expr} = {expr}")
        return value

    def alias(self, out: str, source: str) -> None:
        """`out` is `source` (Identity, Dropout in inference): no statement."""
        for table in (self.values, self.consts, self.symbolic):
            if source in table:
                table[out] = table[source]
                return
        raise IrnError(f"{self.path}: the tensor '{source}' is not defined")

    def only_consumer(self, name: str) -> Node | None:
        """The one node reading `name`, when exactly one does and it is not a graph output."""
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or name in self.outputs:
            return None
        return readers[0]

    def reshape(self, value: Value, shape: Shape, hint: str) -> Value:
        """`value` reshaped to `shape`, as a helper statement; refused by the caller's checks
        when more than one size is unknown."""
        expr = f"reshape({value.expr}, {shape_list(shape)})"
        return self.temp(hint, expr, shape, value.dtype)


def live_nodes(graph: Any, outputs: Sequence[str]) -> list[Node]:
    """The nodes the outputs depend on, in graph order: a dead branch is not imported (nor
    refused)."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    live: set[int] = set()
    pending = list(outputs)
    while pending:
        i = producer.get(pending.pop())
        if i is not None and i not in live:
            live.add(i)
            pending.extend(graph.node[i].input)
    return [Node(n, i) for i, n in enumerate(graph.node) if i in live]


# --- constant folding --------------------------------------------------------------------------

Folder = Callable[[Importer, Node, list[np.ndarray]], np.ndarray]


class NotFoldable(Exception):
    """A node that looked foldable but is not (a `Shape` of a size unknown here)."""


SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity"}
"""The folders that also move shape vectors holding the batch (`Importer.symbolic`), as
`x.view(x.size(0), -1)` exports: `Shape`, `Gather`, `Unsqueeze`, `Concat`, then `Reshape`."""


def fold_constants(imp: Importer) -> None:
    """Compute at import every live node whose inputs are all constants (or shape vectors) and
    which `FOLDERS` knows, in graph order: shapes for `Reshape`, a bias reshaped for a
    convolution, `Constant`s. Done before the walk, so patterns see the folded constants."""
    for node in imp.nodes:
        fold_node(imp, node)


def fold_node(imp: Importer, node: Node) -> bool:
    """Fold `node` if it can be (see `fold_constants`); whether it was. The walk tries again
    the nodes left: a `Shape` whose size ONNX inference lost (after a `Range`) folds there
    from the shape the importer computed, and the nodes that read it after it."""
    folder = FOLDERS.get(node.op)
    inputs = [i for i in node.inputs if i]
    symbolic = any(i in imp.symbolic for i in inputs)
    known = all(i in imp.consts or i in imp.symbolic for i in inputs) or node.op == "Shape"
    if folder is None or node.index in imp.done or not known or len(node.outputs) != 1:
        return False
    if symbolic and node.op not in SHAPE_OPS:
        return False
    arrays = [imp.consts.get(i, imp.symbolic.get(i)) if i else None for i in node.inputs]
    try:
        result = np.asarray(folder(imp, node, arrays))
    except (NotFoldable, TypeError, ValueError, IndexError):
        return False
    store_folded(imp, node.outputs[0], result)
    imp.done.add(node.index)
    return True


def store_folded(imp: Importer, name: str, result: np.ndarray) -> None:
    if result.dtype.kind in "OU" and any(v == BATCH for v in result.flat):
        imp.symbolic[name] = result.astype(object)  # NumPy made a lone "N" a str array
        return
    dtype = imp.inferred(name)[1]
    imp.consts[name] = result.astype(dtype if dtype is not None else result.dtype)


def fold_shape(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    """The shape of a tensor, a vector with the batch as `BATCH` (`start`, `end`: opset 15):
    the shape the importer gave it where known (inference may lose the batch), else ONNX's."""
    value = imp.values.get(node.input(0))
    shape = value.shape if value is not None else None
    if shape is None:
        shape = imp.inferred(node.input(0))[0]
    if shape is None or None in shape:
        raise NotFoldable
    dims = list(shape)[slice(node.attr("start", 0), node.attr("end"))]
    if len(dims) == len(shape):
        imp.shape_of[node.outputs[0]] = node.input(0)
    return np.array(dims, dtype=object if BATCH in dims else np.int64)


def fold_slice(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    if imp.opset < 10:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
    else:
        starts, ends, axes, steps = (*arrays[1:3], *(arrays[3:5] + [None, None])[:2])
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * arrays[0].ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return arrays[0][tuple(index)]


def fold_cast(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    """A cast of a shape vector holding the batch leaves it as it is (integers stay integers)."""
    if arrays[0].dtype == object:
        return arrays[0]
    return arrays[0].astype(imp.onnx.helper.tensor_dtype_to_np_dtype(node.attr("to")))


def fold_constant(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    onnx = imp.onnx
    for a in node.proto.attribute:
        value = onnx.helper.get_attribute_value(a)
        if a.name == "value":
            return onnx.numpy_helper.to_array(value)
        if a.name in ("value_float", "value_floats"):
            return np.array(value, np.float32)
        if a.name in ("value_int", "value_ints"):
            return np.array(value, np.int64)
    raise imp.refuse(node, "a Constant needs value, value_float(s) or value_int(s)")


def fold_elementwise(function: Callable[..., np.ndarray]) -> Folder:
    """NumPy's function, in the first operand's dtype (`Pow` of f32 by i64 stays f32)."""

    def fold(imp: Importer, node: Node, arrays: list) -> np.ndarray:
        return np.asarray(function(*arrays)).astype(arrays[0].dtype)

    return fold


def fold_float_division(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    """`Div` of floats (batch norm's gamma / sqrt(var + eps)); integer division is left to
    the runtime, as NumPy's floors where ONNX's truncates."""
    if any(a.dtype.kind != "f" for a in arrays):
        raise NotFoldable
    return fold_elementwise(np.true_divide)(imp, node, arrays)


def fold_reshape(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    target = [int(v) for v in arrays[1].reshape(-1)]
    return arrays[0].reshape(reshape_target(imp, node, arrays[0].shape, target))


def fold_shaped(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    """`Flatten`, `Squeeze`, `Unsqueeze`: their result shape, as the converters compute it."""
    return arrays[0].reshape(SHAPERS[node.op](imp, node, arrays[0].shape))


def fold_range(imp: Importer, node: Node, arrays: list) -> np.ndarray:
    """`Range` of constant scalars as ONNX Runtime computes it: max(ceil((limit - start) /
    delta), 0) elements (the difference in the inputs' dtype, the quotient in double), each
    the previous plus delta in that dtype (for floats, not start + i * delta)."""
    start, limit, delta = (np.asarray(a).reshape(()) for a in arrays[:3])
    if delta == 0:
        raise imp.refuse(node, "its delta is 0: the range never reaches its limit")
    count = max(math.ceil(float(limit - start) / float(delta)), 0)
    steps = np.full(count, delta, dtype=start.dtype)
    steps[:1] = start
    return np.add.accumulate(steps, dtype=start.dtype)


COMPARISONS: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "Equal": ("==", np.equal),
    "Less": ("<", np.less),
    "LessOrEqual": ("<=", np.less_equal),
    "Greater": (">", np.greater),
    "GreaterOrEqual": (">=", np.greater_equal),
}
"""ONNX's comparisons: irnet's operator and NumPy's function for each."""

FOLDERS: dict[str, Folder] = {
    "Constant": fold_constant,
    "Identity": lambda imp, node, a: a[0],
    "Add": fold_elementwise(np.add),
    "Sub": fold_elementwise(np.subtract),
    "Mul": fold_elementwise(np.multiply),
    "Div": fold_float_division,
    "Neg": fold_elementwise(np.negative),
    "Sqrt": fold_elementwise(np.sqrt),
    "Reshape": fold_reshape,
    "Flatten": fold_shaped,
    "Squeeze": fold_shaped,
    "Unsqueeze": fold_shaped,
    "Transpose": lambda imp, node, a: np.transpose(a[0], node.attr("perm")),
    "Concat": lambda imp, node, a: np.concatenate(a, axis=node.attr("axis")),
    "Cast": fold_cast,
    "Shape": fold_shape,
    "Slice": fold_slice,
    "Gather": lambda imp, node, a: np.take(a[0], a[1], axis=node.attr("axis", 0)),
    "Range": fold_range,
    "Where": lambda imp, node, a: np.where(*a),
    **{op: lambda imp, node, a, f=f: f(a[0], a[1]) for op, (_, f) in COMPARISONS.items()},
}
"""The ops computed at import when their inputs are constant: exact in NumPy (no
transcendental functions, whose last bit may differ from a runtime's), or mere data movement.
`Div` folds floats only: NumPy's integer division floors where ONNX's truncates."""


# --- shapes the importer computes itself --------------------------------------------------------


def reshape_target(imp: Importer, node: Node, source: Shape, target: list[int]) -> Shape:
    """ONNX `Reshape`'s result shape: 0 copies the input's size (unless `allowzero`), -1 takes
    the rest. The batch stays the batch where the other sizes account for every element."""
    allowzero = node.attr("allowzero", 0)
    if allowzero and 0 in target:
        raise imp.refuse(node, "allowzero=1 with a 0 in the shape makes an empty tensor")
    dims: list[Dim] = [source[i] if v == 0 and not allowzero else v for i, v in enumerate(target)]
    if target.count(-1) > 1:
        raise imp.refuse(node, f"the shape {target} has more than one -1")
    unknown_in = sorted(str(d) for d in source if not isinstance(d, int))
    unknown_out = sorted(str(d) for d in dims if not isinstance(d, int) and d != -1)
    known_in = math.prod(d for d in source if isinstance(d, int))
    known_out = math.prod(d for d in dims if isinstance(d, int) and d != -1)
    if -1 in dims:
        if unknown_in == unknown_out:
            rest = known_in // known_out if known_out else 0
        elif not unknown_out and unknown_in == [BATCH] and known_in == known_out:
            rest = BATCH
        else:
            rest = None
        dims[dims.index(-1)] = rest
    elif unknown_in != unknown_out:
        raise imp.refuse(node, f"reshaping {list(source)} to the static shape {target} fixes "
                               "the batch size, which irnet keeps dynamic")  # fmt: skip
    return tuple(dims)


def flatten_shape(imp: Importer, node: Node, source: Shape) -> Shape:
    axis = node.attr("axis", 1) % (len(source) + 1) if source else 0
    return (product(source[:axis]), product(source[axis:]))


def squeeze_shape(imp: Importer, node: Node, source: Shape) -> Shape:
    axes = axes_of(imp, node, len(source))
    if axes is None:
        axes = [i for i, d in enumerate(source) if d == 1]
    if any(source[a] != 1 for a in axes):
        raise imp.refuse(node, f"cannot squeeze axes {axes} of {list(source)}")
    return tuple(d for i, d in enumerate(source) if i not in axes)


def unsqueeze_shape(imp: Importer, node: Node, source: Shape) -> Shape:
    rank = len(source) + len(axes_of(imp, node, None) or [])
    axes = axes_of(imp, node, rank) or []
    dims = iter(source)
    return tuple(1 if i in axes else next(dims) for i in range(rank))


SHAPERS: dict[str, Callable[[Importer, Node, Shape], Shape]] = {
    "Flatten": flatten_shape,
    "Squeeze": squeeze_shape,
    "Unsqueeze": unsqueeze_shape,
}


def axes_of(imp: Importer, node: Node, rank: int | None) -> list[int] | None:
    """A node's `axes`: the attribute (older opsets) or the constant second input, made
    non-negative for `rank` (when given); None when there are none."""
    axes = node.attr("axes")
    if axes is None:
        axes = imp.const_ints(node, 1, "axes")
    if axes is None:
        return None
    return sorted({a % rank for a in axes}) if rank is not None else list(axes)


def window_out(size: Dim, kernel: int, stride: int, pad: int, dilation: int = 1) -> Dim:
    if not isinstance(size, int):
        return None
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


# --- converters: elementwise ---------------------------------------------------------------------

Converter = Callable[[Importer, Node], None]


def first(imp: Importer, node: Node) -> Value:
    """The node's first input, which must be a tensor the graph computes."""
    return imp.runtime(node.input(0), node)


def unary(function: str) -> Converter:
    """`relu(x)`, `exp(x)`, ...: one builtin of the same meaning."""

    def convert(imp: Importer, node: Node) -> None:
        x = first(imp, node)
        imp.emit(node.outputs[0], f"{function}({x.expr})", x.shape, x.dtype)

    return convert


def convert_neg(imp: Importer, node: Node) -> None:
    x = first(imp, node)
    imp.emit(node.outputs[0], f"-{x.expr}", x.shape, x.dtype)


def binary_operands(imp: Importer, node: Node) -> tuple[str, str, Value]:
    """Both operands of a binary node, a constant scalar as a literal of the other's dtype;
    and the tensor operand that sets the dtype."""
    a, b = node.input(0), node.input(1)
    tensor = imp.values.get(a) or imp.values.get(b)
    if tensor is None:
        raise imp.refuse(node, "both operands are constants that the importer does not fold")
    return imp.operand(a, node, tensor), imp.operand(b, node, tensor), tensor


def binary(symbol: str, floats_only: bool = False) -> Converter:
    """`a + b`, `a - b`, ...: irnet broadcasts as NumPy, as ONNX does (a `?` size meets only its
    own size or 1, which the batch always does)."""

    def convert(imp: Importer, node: Node) -> None:
        lhs, rhs, tensor = binary_operands(imp, node)
        if floats_only and tensor.dtype.kind != "f":
            raise imp.refuse(node, f"irnet's {symbol} takes floats, not {tensor.dtype}")
        others = [imp.dtype(n) for n in node.inputs if n in imp.values]
        if symbol == "**" and len(set(others)) > 1:
            raise imp.refuse(node, "the exponent is a tensor of another dtype than the base")
        shape = broadcast([imp.known_shape(n) for n in node.inputs[:2]])
        imp.emit(node.outputs[0], f"{lhs} {symbol} {rhs}", shape, tensor.dtype)

    return convert


def pairwise(function: str) -> Converter:
    """`Max`/`Min` of any number of operands: `maximum(maximum(a, b), c)`."""

    def convert(imp: Importer, node: Node) -> None:
        inputs = [i for i in node.inputs if i]
        tensor = next((imp.values[i] for i in inputs if i in imp.values), None)
        if tensor is None:
            raise imp.refuse(node, "all operands are constants")
        expr = imp.operand(inputs[0], node, tensor)
        for name in inputs[1:]:
            expr = f"{function}({expr}, {imp.operand(name, node, tensor)})"
        shape = broadcast([imp.known_shape(n) for n in inputs])
        imp.emit(node.outputs[0], expr, shape, tensor.dtype)

    return convert


def compare(symbol: str) -> Converter:
    """`a > b`, `a == b`, ...: a bool tensor, broadcast as NumPy (and ONNX) do."""

    def convert(imp: Importer, node: Node) -> None:
        lhs, rhs, _ = binary_operands(imp, node)
        shape = broadcast([imp.known_shape(n) for n in node.inputs[:2]])
        imp.emit(node.outputs[0], f"{lhs} {symbol} {rhs}", shape, np.dtype(np.bool_))

    return convert


def convert_where(imp: Importer, node: Node) -> None:
    """`where(cond, a, b)`, a constant scalar branch as a literal of the other's dtype. The
    condition must be computed: a constant mask would be a bool tensor literal."""
    cond, a, b = node.input(0), node.input(1), node.input(2)
    if cond not in imp.values:
        raise imp.refuse(node, f"its condition '{cond}' is a constant, which would be a bool "
                               "tensor literal; irnet has none")  # fmt: skip
    mask = imp.values[cond]
    dtype = imp.dtype(a if a in imp.values or b not in imp.values else b)
    shapes = [imp.known_shape(n) for n in (cond, a, b)]
    beside = Value("", broadcast(shapes) or mask.shape, dtype)
    args = [mask.expr, imp.operand(a, node, beside), imp.operand(b, node, beside)]
    imp.emit(node.outputs[0], f"where({', '.join(args)})", broadcast(shapes), dtype)


def convert_clip(imp: Importer, node: Node) -> None:
    """`minimum(maximum(x, lo), hi)`; bounds from inputs (opset 11) or attributes (before),
    an infinite or absent bound left out."""
    x = first(imp, node)
    expr = x.expr
    for i, (key, function) in enumerate([("min", "maximum"), ("max", "minimum")], start=1):
        name = node.input(i)
        bound = node.attr(key) if imp.opset < 11 else None
        if name:
            array = imp.const(name)
            if array is not None and array.size == 1 and not np.isfinite(array.reshape(())):
                continue
            expr = f"{function}({expr}, {imp.operand(name, node, x)})"
        elif bound is not None and np.isfinite(bound):
            expr = f"{function}({expr}, {literal(bound, x.dtype)})"
    imp.emit(node.outputs[0], expr, x.shape, x.dtype)


def convert_leaky_relu(imp: Importer, node: Node) -> None:
    x = first(imp, node)
    alpha = literal(node.attr("alpha", 0.01), x.dtype)
    zero = literal(0, x.dtype)
    imp.emit(node.outputs[0], f"where({x.expr} < {zero}, {x.expr} * {alpha}, {x.expr})",
             x.shape, x.dtype)  # fmt: skip


def convert_gelu(imp: Importer, node: Node) -> None:
    """`Gelu` (opset 20): irnet's `gelu` with the same `approximate` ("none" or "tanh")."""
    x = first(imp, node)
    mode = node.attr("approximate", "none")
    if mode not in ("none", "tanh"):
        raise imp.refuse(node, f'approximate must be "none" or "tanh", not "{mode}"')
    imp.emit(node.outputs[0], f'gelu({x.expr}, approximate="{mode}")', x.shape, x.dtype)


def convert_cast(imp: Importer, node: Node) -> None:
    x = first(imp, node)
    dtype = imp.numpy_dtype(node.attr("to"), f"the target of {node}")
    if dtype == x.dtype:
        imp.alias(node.outputs[0], node.input(0))
        return
    imp.emit(node.outputs[0], f"cast({x.expr}, {DTYPES[dtype]})", x.shape, dtype)


def convert_identity(imp: Importer, node: Node) -> None:
    imp.alias(node.outputs[0], node.input(0))


def convert_dropout(imp: Importer, node: Node) -> None:
    """Inference: the identity. A mask output that is used, or a training mode that is not a
    constant false, is refused."""
    if len(node.outputs) > 1 and node.outputs[1] and imp.consumers.get(node.outputs[1]):
        raise imp.refuse(node, "its mask output is used; the import is the inference graph")
    mode = node.input(2)
    if mode and (imp.const(mode) is None or bool(imp.const(mode).reshape(-1)[0])):
        raise imp.refuse(node, "training_mode must be a constant false: the import is inference")
    imp.alias(node.outputs[0], node.input(0))


# --- converters: reductions and normalisations --------------------------------------------------


def axis_arg(axes: Sequence[int]) -> str:
    return str(axes[0]) if len(axes) == 1 else str(list(axes))


def reduction(function: str) -> Converter:
    """`sum`/`mean`/`max` over the axes (attribute, or input from opset 13 for ReduceSum and
    18 for the others); no axes reduce them all, or nothing with `noop_with_empty_axes`."""

    def convert(imp: Importer, node: Node) -> None:
        x = first(imp, node)
        rank = imp.rank(node.input(0), node)
        axes = axes_of(imp, node, rank)
        keep = bool(node.attr("keepdims", 1))
        if not axes and node.attr("noop_with_empty_axes", 0):
            imp.alias(node.outputs[0], node.input(0))
            return
        reduced = set(range(rank)) if not axes else set(axes)
        shape = tuple(
            1 if i in reduced else d for i, d in enumerate(x.shape) if keep or i not in reduced
        )
        args = ([f"axis={axis_arg(axes)}"] if axes else []) + (["keepdims=true"] if keep else [])
        imp.emit(node.outputs[0], f"{function}({', '.join([x.expr, *args])})", shape, x.dtype)

    return convert


def softmax(function: str) -> Converter:
    """`softmax(x, axis=k)`. Before opset 13, (Log)Softmax normalises over all the axes from
    `axis` (default 1) on, flattened into one: a reshape to 2-D and back, unless `axis` is
    the last."""

    def convert(imp: Importer, node: Node) -> None:
        x = first(imp, node)
        rank = imp.rank(node.input(0), node)
        axis = node.attr("axis", -1 if imp.opset >= 13 else 1)
        if imp.opset >= 13 or axis % rank == rank - 1:
            imp.emit(node.outputs[0], f"{function}({x.expr}, axis={axis})", x.shape, x.dtype)
            return
        flat = (product(x.shape[: axis % rank]), product(x.shape[axis % rank :]))
        check_reshape(imp, node, flat, x.shape)
        rows = imp.reshape(x, flat, f"{node.outputs[0]}_rows")
        done = imp.temp(f"{node.outputs[0]}_{function}", f"{function}({rows.expr}, axis=1)", flat,
                        x.dtype)  # fmt: skip
        imp.emit(node.outputs[0], f"reshape({done.expr}, {shape_list(x.shape)})", x.shape, x.dtype)

    return convert


def check_reshape(imp: Importer, node: Node, *shapes: Shape) -> None:
    for shape in shapes:
        if sum(not isinstance(d, int) for d in shape) > 1:
            raise imp.refuse(node, f"it needs a reshape to {list(shape)}, and irnet's reshape "
                                   "takes at most one size known only at run time")  # fmt: skip


def constant_vectors(imp: Importer, node: Node, names: Sequence[str], size: int) -> bool:
    """Whether each of `names` is a float constant of `size` elements (a per-channel vector)."""
    arrays = [imp.const(n) for n in names]
    return all(a is not None and a.dtype.kind == "f" and a.size == size for a in arrays)


def convert_batch_norm(imp: Importer, node: Node) -> None:
    """Inference form: `batch_norm(x, eps=...)` on NCHW input with constant statistics; other
    ranks spelt out with the same operations, the parameters shaped [C, 1, ...]."""
    if node.attr("training_mode", 0) or not node.attr("spatial", 1):
        raise imp.refuse(node, "only the inference form (training_mode=0, spatial) is imported")
    if any(o and imp.consumers.get(o) for o in node.outputs[1:]):
        raise imp.refuse(node, "its running statistics outputs are used (training form)")
    x = first(imp, node)
    shape = imp.shape(node.input(0), node)
    channels, eps = shape[1], literal(node.attr("epsilon", 1e-5), x.dtype)
    stats = node.inputs[1:5]
    if not isinstance(channels, int) or not constant_vectors(imp, node, stats, channels):
        raise imp.refuse(node, "its scale, bias, mean and variance must be constant vectors")
    gamma, beta, mean, var = (imp.const(n).reshape(channels).astype(x.dtype) for n in stats)
    if len(shape) == 4:
        prefix = imp.layer("batch_norm")
        imp.weights[f"{prefix}.gamma"], imp.weights[f"{prefix}.beta"] = gamma, beta
        imp.state[f"{prefix}.running_mean"], imp.state[f"{prefix}.running_var"] = mean, var
        imp.emit(node.outputs[0], f"batch_norm({x.expr}, eps={eps})", shape, x.dtype)
        return
    column = (channels,) + (1,) * (len(shape) - 2)
    g, b, m, v = (imp.param(n, a.reshape(column)) for n, a in zip(stats, (gamma, beta, mean, var)))
    imp.emit(node.outputs[0], f"({x.expr} - {m}) * ({g} / sqrt({v} + {eps})) + {b}", shape,
             x.dtype)  # fmt: skip


def convert_layer_norm(imp: Importer, node: Node) -> None:
    """`layer_norm(x, eps=...)` over the last axis with constant scale (and bias, else zeros);
    other axes or a computed scale spelt out: mean, centred variance, scale and shift."""
    if any(o and imp.consumers.get(o) for o in node.outputs[1:]):
        raise imp.refuse(node, "its mean and inverse standard deviation outputs are used")
    x = first(imp, node)
    shape = imp.shape(node.input(0), node)
    axis = node.attr("axis", -1) % len(shape)
    eps = literal(node.attr("epsilon", 1e-5), x.dtype)
    size = shape[-1]
    scale, bias = node.input(1), node.input(2)
    vectors = [scale, bias] if bias else [scale]
    last = axis == len(shape) - 1 and isinstance(size, int)
    if last and constant_vectors(imp, node, vectors, size):
        prefix = imp.layer("layer_norm")
        imp.weights[f"{prefix}.gamma"] = imp.const(scale).reshape(size)
        beta = imp.const(bias).reshape(size) if bias else np.zeros(size, x.dtype)
        imp.weights[f"{prefix}.beta"] = beta
        imp.emit(node.outputs[0], f"layer_norm({x.expr}, eps={eps})", shape, x.dtype)
        return
    axes = axis_arg(list(range(axis, len(shape))))
    out = node.outputs[0]
    mu = imp.temp(f"{out}_mean", f"mean({x.expr}, axis={axes}, keepdims=true)", None, x.dtype)
    d = imp.temp(f"{out}_centered", f"{x.expr} - {mu.expr}", shape, x.dtype)
    var = imp.temp(f"{out}_var", f"mean({d.expr} * {d.expr}, axis={axes}, keepdims=true)", None,
                   x.dtype)  # fmt: skip
    expr = f"{d.expr} / sqrt({var.expr} + {eps}) * {imp.operand(scale, node, x)}"
    if bias:
        expr += f" + {imp.operand(bias, node, x)}"
    imp.emit(out, expr, shape, x.dtype)


# --- converters: linear layers ------------------------------------------------------------------


def broadcast_bias(array: np.ndarray | None, target: tuple[int, ...]) -> np.ndarray | None:
    """A constant added after a product or a convolution as a bias vector, when it broadcasts
    to `target` (`[1, ..., units]`, `[1, F, 1, 1]`) and stretches no further: a scalar or one
    value per output unit or channel; None otherwise."""
    if array is None or array.dtype.kind != "f" or array.ndim > len(target):
        return None
    try:
        if np.broadcast_shapes(array.shape, target) != target:
            return None
    except ValueError:
        return None
    return np.broadcast_to(array, target).reshape(-1).copy()


def dense(imp: Importer, out: str, x: Value, w: np.ndarray, b: np.ndarray) -> None:
    prefix = imp.layer("dense")
    imp.weights[f"{prefix}.w"], imp.weights[f"{prefix}.b"] = w, b
    shape = (*x.shape[:-1], w.shape[1]) if x.shape is not None else None
    imp.emit(out, f"dense({x.expr}, {w.shape[1]})", shape, x.dtype)


def added_bias(imp: Importer, name: str, target: tuple[int, ...]) -> tuple[Node, np.ndarray] | None:
    """The `Add` node that alone reads `name`, when its other operand is a constant bias
    (`broadcast_bias` to `target`); that node and the bias as a vector."""
    add = imp.only_consumer(name)
    if add is None or add.op != "Add" or add.index in imp.done:
        return None
    other = add.input(1) if add.input(0) == name else add.input(0)
    bias = broadcast_bias(imp.const(other), target)
    return None if bias is None else (add, bias)


def convert_matmul(imp: Importer, node: Node) -> None:
    """`a @ b`; by a constant matrix followed by an `Add` of a constant bias, `dense`. A 1-D
    operand is made a matrix and the result reshaped back, as NumPy's matmul does."""
    a, b = node.input(0), node.input(1)
    w, x = imp.const(b), imp.values.get(a)
    matrix = w is not None and w.ndim == 2 and x is not None and w.dtype == x.dtype
    if matrix and x.shape is not None and len(x.shape) >= 2:
        target = (1,) * (len(x.shape) - 1) + (w.shape[1],)
        fused = added_bias(imp, node.outputs[0], target)
        if fused is not None:
            add, bias = fused
            imp.done.add(add.index)
            dense(imp, add.outputs[0], x, w, bias)
            return
    sa, sb = imp.shape(a, node), imp.shape(b, node)
    lhs, rhs = imp.operand(a, node), imp.operand(b, node)
    if len(sa) >= 2 and len(sb) >= 2:
        shape = broadcast([sa[:-2], sb[:-2]]) + (sa[-2], sb[-1])
        imp.emit(node.outputs[0], f"{lhs} @ {rhs}", shape, imp.dtype(a))
        return
    dtype = imp.dtype(a)
    if len(sa) == 1:
        lhs = imp.temp(f"{a}_row", f"reshape({lhs}, [1, {sa[0]}])", (1, sa[0]), dtype).expr
        shape = (*sb[:-2], sb[-1]) if len(sb) >= 2 else ()
    if len(sb) == 1:
        rhs = imp.temp(f"{b}_column", f"reshape({rhs}, [{sb[0]}, 1])", (sb[0], 1), dtype).expr
        shape = sa[:-1] if len(sa) >= 2 else ()
    check_reshape(imp, node, shape)
    imp.emit(node.outputs[0], f"reshape({lhs} @ {rhs}, {shape_list(shape)})", shape, dtype)


def convert_gemm(imp: Importer, node: Node) -> None:
    """`alpha * A' @ B' + beta * C`: `dense` in the common case (alpha = beta = 1, no transA,
    constant B and a constant C that is a bias), else spelt out, constants transposed here."""
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    trans_a, trans_b = node.attr("transA", 0), node.attr("transB", 0)
    a, b, c = node.input(0), node.input(1), node.input(2)
    w = imp.const(b)
    x = imp.values.get(a)
    if w is not None and x is not None and w.ndim == 2 and w.dtype == x.dtype:
        w = w.T if trans_b else w
        bias = broadcast_bias(imp.const(c), (1, w.shape[1])) if c else None
        if alpha == 1 and beta == 1 and not trans_a and bias is not None:
            dense(imp, node.outputs[0], x, np.ascontiguousarray(w), bias)
            return
    lhs = transposed(imp, node, a, trans_a)
    rhs = transposed(imp, node, b, trans_b)
    expr = f"{lhs} @ {rhs}"
    dtype = imp.dtype(a)
    if alpha != 1:
        expr = f"({expr}) * {literal(alpha, dtype)}"
    sa, sb = imp.shape(a, node), imp.shape(b, node)
    shape = (sa[1] if trans_a else sa[0], sb[0] if trans_b else sb[1])
    if c:
        term = imp.operand(c, node, Value("", shape, dtype))
        expr += f" + {term}" if beta == 1 else f" + {term} * {literal(beta, dtype)}"
        shape = broadcast([shape, imp.known_shape(c)])
    imp.emit(node.outputs[0], expr, shape, dtype)


def transposed(imp: Importer, node: Node, name: str, transpose: int) -> str:
    """An operand of `Gemm`, transposed when asked: a constant at import, a tensor by
    `transpose`."""
    array = imp.const(name)
    if not transpose:
        return imp.operand(name, node)
    if array is not None:
        if array.dtype.kind != "f":
            return imp.operand(name, node)  # refused there
        return imp.param(f"{name}_t", np.ascontiguousarray(array.T))
    return f"transpose({imp.operand(name, node)})"


# --- converters: convolution and pooling --------------------------------------------------------


def window_pads(
    imp: Importer, node: Node, spatial: Shape, kernel: list[int], strides: list[int],
    dilations: list[int],
) -> list[int]:  # fmt: skip
    """One padding per spatial axis, the same on both sides as irnet pads: from `pads`, or
    computed for `auto_pad` SAME_UPPER/SAME_LOWER (static sizes only); refused where ONNX pads
    the two sides of an axis differently."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    rank = len(kernel)
    if auto_pad == "VALID":
        return [0] * rank
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if not all(isinstance(s, int) for s in spatial):
            raise imp.refuse(node, f"auto_pad={auto_pad} needs static spatial sizes")
        totals = [
            max((-(-s // st) - 1) * st + d * (k - 1) + 1 - s, 0)
            for s, k, st, d in zip(spatial, kernel, strides, dilations)
        ]
        if any(t % 2 for t in totals):
            raise imp.refuse(node, f"auto_pad={auto_pad} pads {totals} in all here, unevenly on "
                                   "the two sides; irnet pads both sides alike")  # fmt: skip
        return [t // 2 for t in totals]
    if auto_pad != "NOTSET":
        raise imp.refuse(node, f"unknown auto_pad '{auto_pad}'")
    pads = list(node.attr("pads", [0] * (2 * rank)))
    if pads[:rank] != pads[rank:]:
        raise imp.refuse(node, f"its pads {pads} differ at the start and the end of an axis; "
                               "irnet pads both sides of an axis alike")  # fmt: skip
    return pads[:rank]


def spatial_rank(imp: Importer, node: Node, rank: int) -> int:
    if rank not in (3, 4):
        raise imp.refuse(node, f"it works on {rank - 2}-D data; irnet imports 1-D and 2-D")
    return rank - 2


def as_2d(imp: Importer, node: Node, x: Value) -> tuple[Value, bool]:
    """A 1-D node's input [N, C, L] as [N, C, 1, L] (`True`: reshape the result back)."""
    if len(x.shape) == 4:
        return x, False
    shape = (x.shape[0], x.shape[1], 1, x.shape[2])
    check_reshape(imp, node, shape)
    return imp.reshape(x, shape, f"{node.input(0)}_2d"), True


def pairs(values: list[int], one_d: bool, pad: int) -> list[int]:
    """A 1-D window's parameter as the 2-D pair of its reshaped input (height 1)."""
    return [pad, *values] if one_d else values


def convert_conv(imp: Importer, node: Node) -> None:
    """`conv` or `conv1d` for the stdlib's cases (a constant weight and bias, one group; `conv`
    also square and evenly strided and padded), else `conv2d` with a bias parameter shaped
    [F, 1, 1], 1-D as 2-D with a height of 1, the result reshaped back."""
    x = first(imp, node)
    shape = imp.shape(node.input(0), node)
    w_shape = imp.shape(node.input(1), node)
    rank = spatial_rank(imp, node, len(shape))
    kernel = list(node.attr("kernel_shape", w_shape[2:]))
    strides = list(node.attr("strides", [1] * rank))
    dilations = list(node.attr("dilations", [1] * rank))
    group = node.attr("group", 1)
    if not all(isinstance(k, int) for k in w_shape):
        raise imp.refuse(node, f"its weight's shape {list(w_shape)} must be static")
    pads = window_pads(imp, node, shape[2:], kernel, strides, dilations)
    filters = w_shape[0]
    spatial = [window_out(s, *a) for s, a in zip(shape[2:], zip(kernel, strides, pads, dilations))]
    out_shape = (shape[0], filters, *spatial)
    w, b = imp.const(node.input(1)), imp.const(node.input(2))
    add = None
    if rank == 2 and not node.input(2) and w is not None:
        add, b = added_bias(imp, node.outputs[0], (1, filters, 1, 1)) or (None, None)
    elif b is not None:
        b = broadcast_bias(b.reshape(1, -1, 1, 1), (1, filters, 1, 1)) if rank == 2 else None
    if (
        rank == 2 and w is not None and b is not None and w.dtype == x.dtype
        and len(set(kernel)) == 1 and len(set(strides)) == 1 and len(set(pads)) == 1
        and dilations == [1, 1] and group == 1
    ):  # fmt: skip
        out = node.outputs[0]
        if add is not None:
            imp.done.add(add.index)
            out = add.outputs[0]
        prefix = imp.layer("conv")
        imp.weights[f"{prefix}.w"], imp.weights[f"{prefix}.b"] = w, b
        args = f"{x.expr}, {filters}, {kernel[0]}, stride={strides[0]}, padding={pads[0]}"
        imp.emit(out, f"conv({args})", out_shape, x.dtype)
        return
    bias = imp.const(node.input(2)) if node.input(2) else None
    if rank == 1 and w is not None and bias is not None and w.dtype == x.dtype and group == 1:
        prefix = imp.layer("conv1d")
        imp.weights[f"{prefix}.w"], imp.weights[f"{prefix}.b"] = w, bias
        args = (f"{x.expr}, {filters}, {kernel[0]}, stride={strides[0]}, padding={pads[0]}, "
                f"dilation={dilations[0]}")  # fmt: skip
        imp.emit(node.outputs[0], f"conv1d({args})", out_shape, x.dtype)
        return
    out = node.outputs[0]
    x2, one_d = as_2d(imp, node, x)
    weight = conv_weight(imp, node, w_shape, one_d)
    args = [
        f"stride={ints_text(pairs(strides, one_d, 1))}",
        f"padding={ints_text(pairs(pads, one_d, 0))}",
        f"dilation={ints_text(pairs(dilations, one_d, 1))}",
        f"groups={group}",
    ]
    defaults = {"stride=1", "padding=0", "dilation=1", "groups=1"}
    call = f"conv2d({', '.join([x2.expr, weight] + [a for a in args if a not in defaults])})"
    if one_d:
        conv_2d = imp.temp(f"{out}_2d", call, (shape[0], filters, 1, spatial[0]), x.dtype)
        call = f"reshape({conv_2d.expr}, {shape_list(out_shape)})"
    if node.input(2):
        bias = conv_bias(imp, node, filters, rank)
        call = f"{call} + {bias}"
    imp.emit(out, call, out_shape, x.dtype)


def conv_weight(imp: Importer, node: Node, w_shape: Shape, one_d: bool) -> str:
    """The weight, OIHW; a 1-D one [F, C, K] as [F, C, 1, K] (a constant reshaped here)."""
    name = node.input(1)
    w = imp.const(name)
    if not one_d:
        return imp.operand(name, node)
    target = (w_shape[0], w_shape[1], 1, w_shape[2])
    if w is not None and w.dtype.kind == "f":
        return imp.param(name, w.reshape(target))
    return f"reshape({imp.operand(name, node)}, {shape_list(target)})"


def conv_bias(imp: Importer, node: Node, filters: int, rank: int) -> str:
    """The bias as a [F, 1, 1] (2-D) or [F, 1] (1-D) parameter, or a tensor reshaped so."""
    name = node.input(2)
    target = (filters,) + (1,) * rank
    b = imp.const(name)
    if b is not None and b.dtype.kind == "f":
        return imp.param(name, b.reshape(target))
    return f"reshape({imp.operand(name, node)}, {shape_list(target)})"


def pool(function: str, average: bool) -> Converter:
    """`max_pool`/`avg_pool` (stdlib) for square windows without padding; else `max_pool2d`/
    `avg_pool2d` (with `count_include_pad=false` where ONNX leaves padding out of an average's
    divisor, its default); 1-D as 2-D. Refused: dilations, ceil_mode where it changes the size,
    padding more than half the window (irnet's limit)."""
    builtin = f"{function}2d"

    def convert(imp: Importer, node: Node) -> None:
        if len(node.outputs) > 1 and node.outputs[1] and imp.consumers.get(node.outputs[1]):
            raise imp.refuse(node, "its Indices output is used; irnet's pools give values only")
        x = first(imp, node)
        shape = imp.shape(node.input(0), node)
        rank = spatial_rank(imp, node, len(shape))
        kernel = list(node.attr("kernel_shape"))
        strides = list(node.attr("strides", [1] * rank))
        if list(node.attr("dilations", [1] * rank)) != [1] * rank:
            raise imp.refuse(node, "dilated pooling windows are not supported by irnet's pools")
        pads = window_pads(imp, node, shape[2:], kernel, strides, [1] * rank)
        excluded = average and any(pads) and not node.attr("count_include_pad", 0)
        if any(p > k // 2 for p, k in zip(pads, kernel)):
            raise imp.refuse(node, f"padding {pads} exceeds half the window {kernel} (irnet's "
                                   "limit)")  # fmt: skip
        spatial = [window_out(s, k, st, p) for s, k, st, p in zip(shape[2:], kernel, strides, pads)]
        check_ceil_mode(imp, node, shape[2:], kernel, strides, pads, spatial)
        out_shape = (*shape[:2], *spatial)
        out = node.outputs[0]
        if rank == 2 and len(set(kernel)) == 1 and len(set(strides)) == 1 and not any(pads):
            imp.use(function)
            stride = "" if strides[0] == kernel[0] else f", stride={strides[0]}"
            imp.emit(out, f"{function}({x.expr}, {kernel[0]}{stride})", out_shape, x.dtype)
            return
        x2, one_d = as_2d(imp, node, x)
        args = [ints_text(pairs(kernel, one_d, 1)), f"stride={ints_text(pairs(strides, one_d, 1))}"]
        if any(pads):
            args.append(f"padding={ints_text(pairs(pads, one_d, 0))}")
        if excluded:  # ONNX's default: padding left out of the divisor
            args.append("count_include_pad=false")
        call = f"{builtin}({', '.join([x2.expr, *args])})"
        if one_d:
            pooled = imp.temp(f"{out}_2d", call, (*shape[:2], 1, spatial[0]), x.dtype)
            call = f"reshape({pooled.expr}, {shape_list(out_shape)})"
        imp.emit(out, call, out_shape, x.dtype)

    return convert


def check_ceil_mode(
    imp: Importer, node: Node, spatial: Shape, kernel: list[int], strides: list[int],
    pads: list[int], floor: list[Dim],
) -> None:  # fmt: skip
    """ceil_mode=1 is accepted where it gives the floor's sizes (irnet's windows floor)."""
    if not node.attr("ceil_mode", 0):
        return
    for s, k, st, p, f in zip(spatial, kernel, strides, pads, floor):
        if not isinstance(s, int):
            raise imp.refuse(node, "ceil_mode=1 needs static spatial sizes")
        ceil = -(-(s + 2 * p - k) // st) + 1
        if (ceil - 1) * st >= s + p:  # the last window must start inside the input
            ceil -= 1
        if ceil != f:
            raise imp.refuse(node, "ceil_mode=1 adds a partial window here; irnet's pools "
                                   "keep whole windows only (ceil_mode=0)")  # fmt: skip


def global_pool(function: str) -> Converter:
    """`GlobalAveragePool`/`GlobalMaxPool`: `mean`/`max` over the spatial axes, kept."""

    def convert(imp: Importer, node: Node) -> None:
        x = first(imp, node)
        shape = imp.shape(node.input(0), node)
        axes = list(range(2, len(shape)))
        out_shape = (*shape[:2], *[1] * len(axes))
        expr = f"{function}({x.expr}, axis={axis_arg(axes)}, keepdims=true)"
        imp.emit(node.outputs[0], expr, out_shape, x.dtype)

    return convert


# --- converters: layout and indexing ------------------------------------------------------------


def reshaped(shaper: Callable[[Importer, Node, Shape], Shape]) -> Converter:
    """`Flatten`, `Squeeze`, `Unsqueeze` as `reshape` (`flatten` for the stdlib's case)."""

    def convert(imp: Importer, node: Node) -> None:
        x = first(imp, node)
        source = imp.shape(node.input(0), node)
        shape = shaper(imp, node, source)
        write_reshape(imp, node, x, source, shape)

    return convert


def write_reshape(imp: Importer, node: Node, x: Value, source: Shape, shape: Shape) -> None:
    if shape == source:
        imp.alias(node.outputs[0], node.input(0))
        return
    check_reshape(imp, node, shape)
    if node.op == "Flatten" and len(source) == 4 and node.attr("axis", 1) == 1:
        imp.use("flatten")
        imp.emit(node.outputs[0], f"flatten({x.expr})", shape, x.dtype)
        return
    imp.emit(node.outputs[0], f"reshape({x.expr}, {shape_list(shape)})", shape, x.dtype)


def convert_reshape(imp: Importer, node: Node) -> None:
    """`Reshape` by a constant shape (0 copies a size, -1 takes the rest)."""
    x = first(imp, node)
    source = imp.shape(node.input(0), node)
    target = imp.const_ints(node, 1, "shape", batch_ok=True)
    if target is None:
        raise imp.refuse(node, "it needs a shape input")
    write_reshape(imp, node, x, source, reshape_target(imp, node, source, target))


def convert_transpose(imp: Importer, node: Node) -> None:
    x = first(imp, node)
    rank = imp.rank(node.input(0), node)
    perm = list(node.attr("perm", range(rank)[::-1]))
    shape = tuple(x.shape[p] for p in perm)
    imp.emit(node.outputs[0], f"transpose({x.expr}, perm={perm})", shape, x.dtype)


def convert_concat(imp: Importer, node: Node) -> None:
    inputs = [i for i in node.inputs if i]
    operands = [imp.operand(i, node) for i in inputs]
    shapes = [imp.known_shape(i) for i in inputs]
    axis = node.attr("axis")
    shape = None
    if all(s is not None for s in shapes):
        axis %= len(shapes[0])
        shape = tuple(merged(dims) for dims in zip(*shapes))
        sizes = [s[axis] for s in shapes]
        joined = sum(sizes) if all(isinstance(d, int) for d in sizes) else None
        shape = (*shape[:axis], joined, *shape[axis + 1 :])
    listed = ", ".join(operands)
    if len(listed) > 72:  # a long list, one the exporters write, goes over several lines
        listed = "\n" + textwrap.indent(textwrap.fill(listed, 88), "    ") + "\n"
    call = f"concat([{listed}], axis={node.attr('axis')})"
    imp.emit(node.outputs[0], call, shape, imp.dtype(inputs[0]))


def convert_slice(imp: Importer, node: Node) -> None:
    """A subscript `x[a:b, ::s]` from constant starts, ends, axes and steps (inputs from opset
    10, attributes before). Negative steps, and a bound counted from the end of a size known
    only at run time, are refused (irnet's subscripts cannot say them)."""
    x = first(imp, node)
    shape = imp.shape(node.input(0), node)
    rank = len(shape)
    if imp.opset < 10:
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes, steps = node.attr("axes"), None
    else:
        starts, ends = imp.const_ints(node, 1, "starts"), imp.const_ints(node, 2, "ends")
        axes, steps = imp.const_ints(node, 3, "axes"), imp.const_ints(node, 4, "steps")
    axes = [a % rank for a in (axes if axes is not None else range(len(starts)))]
    steps = steps or [1] * len(starts)
    parts, dims = [":"] * rank, list(shape)
    for axis, start, end, step in zip(axes, starts, ends, steps):
        parts[axis], dims[axis] = slice_part(imp, node, shape[axis], start, end, step)
    while parts and parts[-1] == ":":
        parts.pop()
    if not parts:
        imp.alias(node.outputs[0], node.input(0))
        return
    imp.emit(node.outputs[0], f"{x.expr}[{', '.join(parts)}]", tuple(dims), x.dtype)


def slice_part(
    imp: Importer, node: Node, size: Dim, start: int, end: int, step: int
) -> tuple[str, Dim]:
    """One axis of a slice as subscript text, and the size it leaves."""
    if step <= 0:
        raise imp.refuse(node, f"its step {step} is not positive; irnet slices step forwards")
    if isinstance(size, int):
        start, end, step = slice(start, end, step).indices(size)
        end = max(end, start)
        length = len(range(start, end, step))
        text = (f"{start}" if start else "") + ":" + (f"{end}" if end < size else "")
        text += f":{step}" if step != 1 else ""
        return ("" if text == ":" else text) or ":", length
    if start < 0 or (end < OPEN_END and end < 0):
        raise imp.refuse(node, "a bound counted from the end of a size known only at run time")
    text = (f"{start}" if start else "") + ":" + (f"{end}" if end < OPEN_END else "")
    text += f":{step}" if step != 1 else ""
    whole = not start and end >= OPEN_END and step == 1
    return text, size if whole else None


def convert_gather(imp: Importer, node: Node) -> None:
    """`embedding(ids, vocab, dim)` for rows of a constant table (ids cast to i32, the
    embedding's index type); else `gather(x, indices, axis=k)`, constant indices as a literal
    scalar. irnet refuses negative indices at run time where ONNX counts them from the end."""
    data, indices = node.input(0), node.input(1)
    axis = node.attr("axis", 0)
    table, ids = imp.const(data), imp.values.get(indices)
    rows = table is not None and table.ndim == 2 and table.dtype.kind == "f" and axis in (0, -2)
    if rows and ids is not None and ids.dtype.kind == "i":
        prefix = imp.layer("embedding")
        imp.weights[f"{prefix}.table"] = table
        index = ids.expr if ids.dtype == np.int32 else f"cast({ids.expr}, i32)"
        dtype = "" if table.dtype == np.float32 else f", F={DTYPES[table.dtype]}"
        shape = (*ids.shape, table.shape[1]) if ids.shape is not None else None
        call = f"embedding({index}, {table.shape[0]}, {table.shape[1]}{dtype})"
        imp.emit(node.outputs[0], call, shape, table.dtype)
        return
    source = imp.shape(data, node)
    axis %= len(source)
    index = imp.const(indices)
    if index is not None:
        if index.size != 1 or index.ndim or not isinstance(source[axis], int):
            raise imp.refuse(node, "constant indices must be one integer (a scalar) on a static "
                                   "axis; irnet has no integer tensor literals")  # fmt: skip
        idx = str(int(index) % source[axis])
    else:
        idx = imp.runtime(indices, node).expr
    args = [imp.operand(data, node), idx] + ([f"axis={axis}"] if axis else [])
    middle = () if index is not None else imp.known_shape(indices)
    shape = None if middle is None else (*source[:axis], *middle, *source[axis + 1 :])
    imp.emit(node.outputs[0], f"gather({', '.join(args)})", shape, imp.dtype(data))


def convert_range(imp: Importer, node: Node) -> None:
    """Reached only where `fold_range` could not fold: a bound known only at run time. irnet's
    sizes beyond the batch are static, so the range's length must be known here."""
    names = [node.input(i) for i in range(3)]
    name = next(n for n in names if n not in imp.consts)
    why = "is computed from the batch size" if name in imp.symbolic else "is computed by the graph"
    raise imp.refuse(node, f"its bound '{name}' {why}, known only at run time; irnet needs "
                           "a range's length at compile time (constant bounds)")  # fmt: skip


def convert_expand(imp: Importer, node: Node) -> None:
    """`Expand` (NumPy broadcasting of the input and the shape) as `broadcast_to(x, like=t)`
    where the shape is `Shape(t)` of a tensor `t`, else `broadcast_to(x, shape=[...])` for a
    static one; no statement where the shape stays. A constant counting 0, 1, ... along one
    axis (`Range` reshaped, as irnet exports `iota`) expanded to `t`'s shape is
    `iota(t, axis=k)`, as irnet has no integer tensor literals."""
    data, target_name = node.input(0), node.input(1)
    target = imp.const_ints(node, 1, "shape", batch_ok=True)
    source = imp.shape(data, node)
    shape = broadcast([source, tuple(target)])
    like = imp.values.get(imp.shape_of.get(target_name, ""))
    like = like if like is not None and like.shape == shape else None
    array = imp.const(data)
    axis = counting_axis(array, shape) if array is not None else None
    if like is not None and axis is not None:
        expr = f"iota({like.expr}, axis={axis})"
        if array.dtype != np.int64:  # iota counts in i64
            expr = f"cast({expr}, {DTYPES[array.dtype]})"
        imp.emit(node.outputs[0], expr, shape, array.dtype)
        return
    if shape == source:
        imp.alias(node.outputs[0], data)
        return
    x = imp.operand(data, node)
    if like is not None:
        imp.emit(node.outputs[0], f"broadcast_to({x}, like={like.expr})", shape, imp.dtype(data))
        return
    if not all(isinstance(d, int) for d in shape):
        raise imp.refuse(node, f"it broadcasts to {list(shape)}, a shape with the batch size "
                               "that is not the shape of a tensor the graph computes (Shape "
                               "of it), which broadcast_to needs as `like`")  # fmt: skip
    imp.emit(node.outputs[0], f"broadcast_to({x}, shape={list(shape)})", shape, imp.dtype(data))


def counting_axis(array: np.ndarray, shape: Shape) -> int | None:
    """The axis along which constant `array`, broadcast to `shape`, holds 0, 1, 2, ... and is
    the same across the other axes (what `iota` computes); None when there is none."""
    if array.ndim > len(shape) or array.dtype.kind not in "iuf":
        return None
    aligned = array.reshape((1,) * (len(shape) - array.ndim) + array.shape)
    for axis, size in enumerate(shape):
        others = aligned.shape[:axis] + aligned.shape[axis + 1 :]
        along = aligned.shape[axis] == size and all(d == 1 for d in others)
        if along and np.array_equal(aligned.reshape(-1), np.arange(size)):
            return axis
    return None


def convert_shape(imp: Importer, node: Node) -> None:
    """Reached only where `fold_shape` could not fold: a size other than the batch unknown."""
    raise imp.refuse(node, f"the shape of '{node.input(0)}' is not known here beyond the batch "
                           "(irnet computes with static sizes only)")  # fmt: skip


# --- the table ----------------------------------------------------------------------------------

CONVERTERS: dict[str, Converter] = {
    **{
        op: unary(op.lower())
        for op in ("Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Erf", "Abs")
    },
    "Neg": convert_neg,
    "Add": binary("+"),
    "Sub": binary("-"),
    "Mul": binary("*"),
    "Div": binary("/", floats_only=True),
    "Pow": binary("**", floats_only=True),
    **{op: compare(symbol) for op, (symbol, _) in COMPARISONS.items()},
    "Where": convert_where,
    "Max": pairwise("maximum"),
    "Min": pairwise("minimum"),
    "Clip": convert_clip,
    "LeakyRelu": convert_leaky_relu,
    "Gelu": convert_gelu,
    "Cast": convert_cast,
    "Identity": convert_identity,
    "Dropout": convert_dropout,
    "Softmax": softmax("softmax"),
    "LogSoftmax": softmax("log_softmax"),
    "ReduceSum": reduction("sum"),
    "ReduceMean": reduction("mean"),
    "ReduceMax": reduction("max"),
    "BatchNormalization": convert_batch_norm,
    "LayerNormalization": convert_layer_norm,
    "MatMul": convert_matmul,
    "Gemm": convert_gemm,
    "Conv": convert_conv,
    "MaxPool": pool("max_pool", average=False),
    "AveragePool": pool("avg_pool", average=True),
    "GlobalAveragePool": global_pool("mean"),
    "GlobalMaxPool": global_pool("max"),
    "Flatten": reshaped(flatten_shape),
    "Squeeze": reshaped(squeeze_shape),
    "Unsqueeze": reshaped(unsqueeze_shape),
    "Reshape": convert_reshape,
    "Transpose": convert_transpose,
    "Concat": convert_concat,
    "Slice": convert_slice,
    "Gather": convert_gather,
    "Range": convert_range,
    "Expand": convert_expand,
    "Constant": lambda imp, node: None,  # always folded
    "Shape": convert_shape,
}
"""Each supported ONNX op type and its converter."""


# --- checking the result ------------------------------------------------------------------------


def verify(imported: Imported, path: Path, target: str | None) -> Model:
    """The program compiled for `target`, its parameters compared with the weights: names,
    shapes and dtypes must match exactly. A program that does not compile is refused as an
    `IrnError` (irnet cannot express something the importer let through); a mismatch is a bug
    here."""
    from .model import loads

    try:
        model = loads(imported.text, name=f"<import of {path.name}>", target=target)
    except IrnError as e:
        raise IrnError(f"{path}: the imported program does not compile:\n{e}") from None
    for what, tensors, given in (
        ("parameters", model.params, imported.weights),
        ("state tensors", model.state, imported.state),
    ):
        declared = {name: (tuple(a.shape), a.dtype) for name, a in tensors.items()}
        weights = {name: (tuple(a.shape), a.dtype) for name, a in given.items()}
        if declared != weights:
            raise RuntimeError(
                f"internal error in the ONNX importer: the program of {path} declares the "
                f"{what} {declared}, but the weights are {weights}"
            )
    return model
