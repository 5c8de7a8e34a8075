"""`irnet.onnx_import`: ONNX graphs built with `onnx.helper`, run in ONNX Runtime, imported as
`.irn` programs and run on the reference target; the two must agree. One small graph per
supported op and attribute variant, whole networks, the standard-library layers the text
should call, and the refusals of what irnet cannot express."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import irnet
from irnet.diagnostics import IrnError
from irnet.onnx_import import Imported, import_onnx, literal, write_imported

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto

RTOL, ATOL = 1e-5, 1e-6
BATCH = 3
DIFFERENCES: dict[str, float] = {}
"""The largest relative difference of each case, for the record (`-s` prints it)."""


# --- building, running and importing ----------------------------------------------------------


def rand(*shape: int, seed: int = 0, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def tensor_type(array: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(array.dtype)


@dataclass
class Graph:
    """A one-output ONNX graph: its nodes, inputs (example arrays; the first dimension is the
    dynamic batch `N` when `dynamic`) and initializers."""

    nodes: list
    inputs: dict[str, np.ndarray]
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 20
    dynamic: bool = True
    output: str = "y"
    out_type: int = TensorProto.FLOAT

    def model(self) -> onnx.ModelProto:
        inputs = [
            helper.make_tensor_value_info(
                name, tensor_type(a), ["N", *a.shape[1:]] if self.dynamic else list(a.shape)
            )
            for name, a in self.inputs.items()
        ]
        graph = helper.make_graph(
            self.nodes,
            "g",
            inputs,
            [helper.make_tensor_value_info(self.output, self.out_type, None)],
            [numpy_helper.from_array(a, name) for name, a in self.inits.items()],
        )
        return helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", self.opset)],
            ir_version=10,
            producer_name="tests",
        )


def save(model: onnx.ModelProto, folder: Path, name: str = "model") -> Path:
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def run_both(graph: Graph, tmp_path: Path, case: str) -> Imported:
    """Run `graph` in ONNX Runtime and, imported, on the reference target; assert that they
    agree within RTOL/ATOL; the import."""
    path = save(graph.model(), tmp_path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, graph.inputs)
    imported = import_onnx(path)
    model = irnet.loads(imported.text, target="reference")
    model.params.update(imported.weights)
    model.state.update(imported.state)
    got = model(*graph.inputs.values())
    assert (got.shape, got.dtype) == (expected.shape, expected.dtype), imported.text
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=imported.text)
    wide = expected.astype(np.float64)  # bool outputs too, which do not subtract
    scale = np.maximum(np.abs(wide), ATOL / RTOL)
    DIFFERENCES[case] = float(np.max(np.abs(got.astype(np.float64) - wide) / scale, initial=0.0))
    return imported


def node(op: str, inputs: list[str], output: str = "y", **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"{op.lower()}_{output}", **attrs)


def one(op: str, inputs: dict, inits: dict | None = None, opset: int = 20, **attrs) -> Graph:
    """A graph of one node whose inputs are `inputs` then `inits`, in that order."""
    names = [*inputs, *(inits or {})]
    return Graph([node(op, names, **attrs)], inputs, inits or {}, opset=opset)


def ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def iota_nodes(x: str, axis: int, rank: int, out: str) -> list:
    """The index along `axis` of every element of `x` as irnet exports `iota`: `Range(0, n)` of
    the size `Shape` gives, reshaped to that axis, `Expand`ed to the shape of `x`."""
    along = [1] * rank
    along[axis] = -1

    def constant(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value))

    return [
        helper.make_node("Shape", [x], [f"{out}_shape"]),
        constant(f"{out}_at", np.array(axis, np.int64)),
        helper.make_node("Gather", [f"{out}_shape", f"{out}_at"], [f"{out}_n"], axis=0),
        constant(f"{out}_0", np.array(0, np.int64)),
        constant(f"{out}_1", np.array(1, np.int64)),
        helper.make_node("Range", [f"{out}_0", f"{out}_n", f"{out}_1"], [f"{out}_range"]),
        constant(f"{out}_along", ints(*along)),
        helper.make_node("Reshape", [f"{out}_range", f"{out}_along"], [f"{out}_column"]),
        helper.make_node("Expand", [f"{out}_column", f"{out}_shape"], [out]),
    ]


X = rand(BATCH, 4)
X3 = rand(BATCH, 3, 4)
IMG = rand(BATCH, 2, 7, 7)
SEQ = rand(BATCH, 2, 9)
POSITIVE = rand(BATCH, 4, low=0.1, high=2.0)

# --- one node per op --------------------------------------------------------------------------

CASES: dict[str, Graph] = {
    **{op: one(op, {"x": X}) for op in ["Relu", "Sigmoid", "Tanh", "Exp", "Erf", "Neg", "Abs"]},
    "Log": one("Log", {"x": POSITIVE}),
    "Sqrt": one("Sqrt", {"x": POSITIVE}),
    **{
        f"{op}-tensors": one(op, {"a": X3, "b": rand(BATCH, 3, 4, seed=1)})
        for op in ["Add", "Sub", "Mul", "Div"]
    },
    **{f"{op}-weight": one(op, {"x": X3}, {"w": rand(4, seed=2)}) for op in ["Add", "Mul"]},
    "Sub-scalar-first": Graph(
        [node("Sub", ["c", "x"])], {"x": X3}, {"c": np.array(0.25, np.float32)}
    ),
    "Div-scalar": one("Div", {"x": X3}, {"c": np.array([-3.0], np.float32)}),
    "Pow-tensors": one("Pow", {"a": POSITIVE, "b": rand(BATCH, 4, seed=3)}),
    "Pow-int-exponent": one("Pow", {"x": X}, {"e": np.array(3, np.int64)}),
    "Max": one("Max", {"a": X, "b": rand(BATCH, 4, seed=1)}, {"c": np.array(0.1, np.float32)}),
    "Min": one("Min", {"a": X, "b": rand(BATCH, 4, seed=1)}),
    "Clip": one(
        "Clip", {"x": X}, {"lo": np.array(-0.5, np.float32), "hi": np.array(0.5, np.float32)}
    ),
    "Clip-min-only": one("Clip", {"x": X}, {"lo": np.array(0.0, np.float32)}),
    "Clip-opset10": one("Clip", {"x": X}, opset=10, min=-0.25, max=0.75),
    "LeakyRelu": one("LeakyRelu", {"x": X}, alpha=0.2),
    "Gelu-none": one("Gelu", {"x": X}, approximate="none"),
    "Gelu-tanh": one("Gelu", {"x": X}, approximate="tanh"),
    "Cast-to-f64": Graph(
        [node("Cast", ["x"], to=TensorProto.DOUBLE)], {"x": X}, out_type=TensorProto.DOUBLE
    ),
    "Identity": one("Identity", {"x": X}),
    "Dropout": one("Dropout", {"x": X}, {"ratio": np.array(0.5, np.float32)}),
    "Softmax": one("Softmax", {"x": X3}, axis=1),
    "Softmax-last": one("Softmax", {"x": X3}),
    "LogSoftmax": one("LogSoftmax", {"x": X3}, axis=-1),
    "Softmax-opset11-flattens": one("Softmax", {"x": X3}, opset=11, axis=1),
    "LogSoftmax-opset11-last": one("LogSoftmax", {"x": X3}, opset=11, axis=2),
    "ReduceMean-attr-keep": one("ReduceMean", {"x": X3}, opset=13, axes=[1]),
    "ReduceMean-input-drop": one("ReduceMean", {"x": X3}, {"axes": ints(-1)}, keepdims=0),
    "ReduceSum-input-keep": one("ReduceSum", {"x": X3}, {"axes": ints(1, 2)}, opset=13),
    "ReduceSum-attr-drop": one("ReduceSum", {"x": X3}, opset=11, axes=[0, 2], keepdims=0),
    "ReduceSum-all": one("ReduceSum", {"x": X3}, opset=13, keepdims=0),
    "ReduceSum-noop": one("ReduceSum", {"x": X3}, noop_with_empty_axes=1),
    "ReduceMax-attr": one("ReduceMax", {"x": X3}, opset=13, axes=[2], keepdims=0),
    "ReduceMax-input": one("ReduceMax", {"x": X3}, {"axes": ints(1)}),
    "Gemm-transB0": one("Gemm", {"x": X}, {"w": rand(4, 5, seed=1), "b": rand(5, seed=2)}),
    "Gemm-transB1": one(
        "Gemm", {"x": X}, {"w": rand(5, 4, seed=1), "b": rand(1, 5, seed=2)}, transB=1
    ),
    "Gemm-alpha-beta": one(
        "Gemm", {"x": X}, {"w": rand(4, 5, seed=1), "b": rand(5, seed=2)}, alpha=0.5, beta=2.0
    ),
    "Gemm-transA-tensors": Graph(
        [node("Gemm", ["a", "b"], transA=1)], {"a": rand(5, 4), "b": rand(5, 2)}, dynamic=False
    ),
    "MatMul-batched": one("MatMul", {"a": X3, "b": rand(BATCH, 4, 2, seed=1)}),
    "MatMul-weight": one("MatMul", {"x": X3}, {"w": rand(4, 6, seed=1)}),
    "MatMul-vector": one("MatMul", {"x": X3}, {"v": rand(4, seed=1)}),
    "Conv2d-stdlib": one(
        "Conv", {"x": IMG}, {"w": rand(3, 2, 3, 3, seed=1), "b": rand(3, seed=2)}, pads=[1] * 4
    ),
    "Conv2d-strides-pads-dilations": one(
        "Conv",
        {"x": IMG},
        {"w": rand(4, 2, 3, 2, seed=1), "b": rand(4, seed=2)},
        strides=[2, 1],
        pads=[1, 0, 1, 0],
        dilations=[1, 2],
    ),
    "Conv2d-no-bias": one("Conv", {"x": IMG}, {"w": rand(3, 2, 3, 3, seed=1)}, strides=[2, 2]),
    "Conv2d-groups": one(
        "Conv", {"x": IMG}, {"w": rand(4, 1, 3, 3, seed=1), "b": rand(4, seed=2)}, group=2
    ),
    "Conv2d-same-upper": one(
        "Conv", {"x": IMG}, {"w": rand(3, 2, 3, 3, seed=1)}, auto_pad="SAME_UPPER"
    ),
    "Conv1d": one("Conv", {"x": SEQ}, {"w": rand(4, 2, 3, seed=1), "b": rand(4, seed=2)}),
    "Conv1d-strides-pads-dilations": one(
        "Conv",
        {"x": SEQ},
        {"w": rand(4, 2, 3, seed=1), "b": rand(4, seed=2)},
        strides=[2],
        pads=[2, 2],
        dilations=[2],
    ),
    "MaxPool2d-stdlib": one("MaxPool", {"x": IMG}, kernel_shape=[2, 2], strides=[2, 2]),
    "MaxPool2d-overlapping": one("MaxPool", {"x": IMG}, kernel_shape=[3, 3], strides=[2, 2]),
    "MaxPool2d-pads": one(
        "MaxPool", {"x": IMG}, kernel_shape=[3, 2], strides=[1, 2], pads=[1, 1, 1, 1]
    ),
    "MaxPool2d-ceil-same-size": one(
        "MaxPool", {"x": IMG}, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1
    ),
    "MaxPool1d": one("MaxPool", {"x": SEQ}, kernel_shape=[3], strides=[2], pads=[1, 1]),
    "AveragePool2d-stdlib": one("AveragePool", {"x": IMG}, kernel_shape=[2, 2], strides=[2, 2]),
    "AveragePool2d-pads-counted": one(
        "AveragePool",
        {"x": IMG},
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        count_include_pad=1,
    ),
    "AveragePool2d-pads-left-out": one(
        "AveragePool", {"x": IMG}, kernel_shape=[3, 3], strides=[1, 2], pads=[1, 1, 1, 1]
    ),
    "AveragePool1d": one("AveragePool", {"x": SEQ}, kernel_shape=[2], strides=[1]),
    "AveragePool1d-pads-left-out": one(
        "AveragePool", {"x": SEQ}, kernel_shape=[3], strides=[2], pads=[1, 1]
    ),
    "GlobalAveragePool": one("GlobalAveragePool", {"x": IMG}),
    "GlobalMaxPool": one("GlobalMaxPool", {"x": IMG}),
    "BatchNormalization-4d": one(
        "BatchNormalization",
        {"x": IMG},
        {
            "scale": rand(2, seed=1),
            "bias": rand(2, seed=2),
            "mean": rand(2, seed=3),
            "var": rand(2, seed=4, low=0.5, high=2.0),
        },
        epsilon=1e-3,
    ),
    "BatchNormalization-3d": one(
        "BatchNormalization",
        {"x": SEQ},
        {
            "scale": rand(2, seed=1),
            "bias": rand(2, seed=2),
            "mean": rand(2, seed=3),
            "var": rand(2, seed=4, low=0.5, high=2.0),
        },
    ),
    "LayerNormalization": one(
        "LayerNormalization", {"x": X3}, {"s": rand(4, seed=1), "b": rand(4, seed=2)}
    ),
    "LayerNormalization-no-bias": one(
        "LayerNormalization", {"x": X3}, {"s": rand(4, seed=1)}, epsilon=1e-3
    ),
    "LayerNormalization-axis1": one(
        "LayerNormalization", {"x": X3}, {"s": rand(3, 4, seed=1), "b": rand(3, 4, seed=2)}, axis=1
    ),
    "Flatten-4d": one("Flatten", {"x": IMG}),
    "Flatten-axis2": one("Flatten", {"x": IMG}, axis=2),
    "Reshape-zero-minus-one": one("Reshape", {"x": IMG}, {"shape": ints(0, -1, 7)}),
    "Reshape-minus-one-first": one("Reshape", {"x": X3}, {"shape": ints(-1, 2, 2)}),
    "Reshape-zero-copies": one("Reshape", {"x": X3}, {"shape": ints(0, 0, 2, 2)}),
    "Squeeze-Unsqueeze": Graph(
        [node("Unsqueeze", ["x", "at"], "u"), node("Squeeze", ["u", "at"])],
        {"x": X3},
        {"at": ints(2)},
    ),
    "Transpose": one("Transpose", {"x": X3}, perm=[0, 2, 1]),
    "Concat": one("Concat", {"x": X3, "x2": rand(BATCH, 3, 2, seed=1)}, axis=2),
    "Concat-weight-static": Graph(
        [node("Concat", ["x", "w"], axis=1)], {"x": X3}, {"w": rand(BATCH, 2, 4)}, dynamic=False
    ),
    "Slice": one("Slice", {"x": X3}, {"s": ints(1, -3), "e": ints(3, 2**63 - 1), "a": ints(1, 2)}),
    "Slice-steps": one(
        "Slice", {"x": X3}, {"s": ints(0, 0), "e": ints(3, 4), "a": ints(1, 2), "t": ints(2, 3)}
    ),
    "Gather-embedding-int64": Graph(
        [node("Gather", ["t", "ids"])],
        {"ids": np.array([[1, 0, 4], [2, 2, 3], [4, 1, 0]], np.int64)},
        {"t": rand(5, 3)},
    ),
    "Gather-axis1": one(
        "Gather", {"x": X3, "i": np.array([[2, 0], [1, 1], [0, 2]], np.int64)}, axis=1
    ),
    "Gather-constant-index": one("Gather", {"x": X3}, {"i": np.array(-1, np.int64)}, axis=2),
    "Constant": Graph(
        [
            helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(rand(4, seed=5))),
            helper.make_node("Constant", [], ["k"], value_float=2.0),
            node("Mul", ["x", "c"], "m"),
            node("Add", ["m", "k"]),
        ],
        {"x": X3},
    ),
    "static-batch": Graph([node("Relu", ["x"])], {"x": X}, dynamic=False),
    **{
        op: Graph(
            [node(op, ["a", "b"])], {"a": X, "b": rand(BATCH, 4, seed=1)}, out_type=TensorProto.BOOL
        )
        for op in ["Greater", "Less", "GreaterOrEqual", "LessOrEqual"]
    },
    "Equal-int-scalar": Graph(
        [node("Equal", ["a", "c"])],
        {"a": np.arange(12).reshape(3, 4) % 3},
        {"c": np.array(1, np.int64)},
        out_type=TensorProto.BOOL,
    ),
    "Where": one("Where", {"c": X > 0, "a": X, "b": rand(BATCH, 4, seed=1)}),
    "Where-scalar-branch": Graph(
        [node("Less", ["x", "zero"], "neg"), node("Where", ["neg", "low", "x"])],
        {"x": X3},
        {"zero": np.array(0.0, np.float32), "low": np.array(-1e9, np.float32)},
    ),
    "Range-float-folded": Graph(
        [node("Range", ["s", "l", "d"], "r"), node("Add", ["x", "r"])],
        {"x": rand(BATCH, 8)},
        {
            "s": np.array(0.1, np.float32),
            "l": np.array(2.3, np.float32),
            "d": np.array(0.3, np.float32),
        },
    ),
    "Range-Expand-iota": Graph(
        [
            *iota_nodes("x", axis=2, rank=3, out="i"),
            node("Cast", ["i"], "f", to=TensorProto.FLOAT),
            node("Mul", ["x", "f"]),
        ],
        {"x": X3},
    ),
    "Expand-like": Graph(
        [node("Shape", ["z"], "s"), node("Expand", ["x", "s"])],
        {"x": rand(BATCH, 1, 4), "z": X3},
    ),
    "Expand-weight-static": Graph(
        [node("Expand", ["w", "s"], "e"), node("Add", ["x", "e"])],
        {"x": X3},
        {"w": rand(4, seed=1), "s": ints(3, 1)},
    ),
    "Expand-keeps-the-shape": one("Expand", {"x": X3}, {"s": ints(3, 1)}),
    # variants and corners
    "Concat-negative-axis": one("Concat", {"a": X3, "b": X3}, axis=-1),
    "Gemm-f64": Graph(
        [node("Gemm", ["x", "w", "b"], transB=1)],
        {"x": X.astype(np.float64)},
        {"w": rand(3, 4).astype(np.float64), "b": rand(3).astype(np.float64)},
        out_type=TensorProto.DOUBLE,
    ),
    "Gather-embedding-int32": Graph(
        [node("Gather", ["t", "ids"])],
        {"ids": np.array([[1, 2], [0, 3], [3, 3]], np.int32)},
        {"t": rand(4, 5)},
    ),
    "MatMul-add-scalar-bias": Graph(
        [node("MatMul", ["x", "w"], "m"), node("Add", ["m", "c"])],
        {"x": X},
        {"w": rand(4, 3), "c": np.array([0.5], np.float32)},
    ),
    "MatMul-vector-left": Graph([node("MatMul", ["v", "x"])], {"x": X3}, {"v": rand(3)}),
    "Squeeze-no-axes": Graph(
        [node("Unsqueeze", ["x", "a"], "u"), node("Squeeze", ["u"])], {"x": X3}, {"a": ints(1, 3)}
    ),
    "BatchNormalization-2d": one(
        "BatchNormalization",
        {"x": X},
        {"s": rand(4), "b": rand(4, seed=1), "m": rand(4, seed=2), "v": rand(4, low=0.5)},
    ),
    "Softmax-opset11-axis0": one("Softmax", {"x": X3}, opset=11, axis=0),
    "Conv2d-same-lower-even": one(
        "Conv", {"x": IMG}, {"w": rand(3, 2, 3, 3)}, auto_pad="SAME_LOWER"
    ),
    "Conv2d-valid": one("Conv", {"x": IMG}, {"w": rand(3, 2, 3, 3)}, auto_pad="VALID"),
    "MaxPool2d-same-upper": one("MaxPool", {"x": IMG}, kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
    "Clip-infinite-bound": one(
        "Clip", {"x": X}, {"lo": np.array(-np.inf, np.float32), "hi": np.array(0.5, np.float32)}
    ),
    "Slice-batch-axis": one("Slice", {"x": X3}, {"s": ints(0), "e": ints(2), "a": ints(0)}),
    "LayerNormalization-f64": Graph(
        [node("LayerNormalization", ["x", "s", "b"])],
        {"x": X3.astype(np.float64)},
        {"s": rand(4).astype(np.float64), "b": rand(4, seed=1).astype(np.float64)},
        out_type=TensorProto.DOUBLE,
    ),
    "Add-int64": Graph(
        [node("Add", ["a", "b"])],
        {"a": np.arange(12).reshape(3, 4)},
        {"b": np.array(2, np.int64)},
        out_type=TensorProto.INT64,
    ),
    "dead-branch-skipped": Graph(
        [node("Relu", ["x"]), helper.make_node("Hardmax", ["x"], ["unused"])], {"x": X}
    ),
    "weight-shared-by-two-layers": Graph(
        [node("Gemm", ["x", "w", "b"], "h", transB=1), node("Gemm", ["h", "w", "b"], transB=1)],
        {"x": X},
        {"w": rand(4, 4), "b": rand(4)},
    ),
    "unused-input": Graph([node("Relu", ["x"])], {"x": X, "unused": X}),
    "output-is-input": Graph([node("Identity", ["x"])], {"x": X}),
}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_one_node_agrees_with_onnx_runtime(case, tmp_path):
    run_both(CASES[case], tmp_path, case)


# --- the standard library where a pattern matches ------------------------------------------------


@pytest.mark.parametrize(
    "case, calls",
    [
        ("Gemm-transB0", ["dense(x, 5)"]),
        ("Gemm-transB1", ["dense(x, 5)"]),
        ("Conv2d-stdlib", ["conv(x, 3, 3, stride=1, padding=1)"]),
        ("Conv1d-strides-pads-dilations", ["conv1d(x, 4, 3, stride=2, padding=2, dilation=2)"]),
        ("MaxPool2d-stdlib", ["max_pool(x, 2)"]),
        ("AveragePool2d-stdlib", ["avg_pool(x, 2)"]),
        ("BatchNormalization-4d", ["batch_norm(x, eps=0.001)"]),
        ("LayerNormalization", ["layer_norm(x, eps=1e-05)"]),
        ("Gather-embedding-int64", ["embedding(cast(ids, i32), 5, 3)"]),
        ("Flatten-4d", ["flatten(x)"]),
    ],
)
def test_patterns_use_the_standard_library(case, calls, tmp_path):
    path = save(CASES[case].model(), tmp_path)
    text = import_onnx(path).text
    for call in calls:
        assert call in text, text
    layer = calls[0].split("(")[0]
    assert f"from nn import {layer}" in text


def test_the_text_is_readable(tmp_path):
    """A header, imports, the signature with the batch as N, one line per node, the result."""
    graph = mlp()
    path = save(graph.model(), tmp_path, "tiny-mlp")
    imported = import_onnx(path)
    assert imported.name == "tiny_mlp"
    assert set(imported.weights) == {"dense_0.w", "dense_0.b", "dense_1.w", "dense_1.b"}
    assert imported.text == (
        "# Imported from tiny-mlp.onnx (ONNX opset 20, produced by tests)\n"
        "# by irnet's ONNX importer. The parameters' values are the imported weights;\n"
        "# `= zeros` only gives them an initialiser.\n"
        "\n"
        "from nn import dense\n"
        "\n"
        "model tiny_mlp(input_1: f32[N, 4]) -> f32[N, 3] {\n"
        "    fc1_Gemm = dense(input_1, 8)\n"
        "    fc1_Relu = relu(fc1_Gemm)\n"
        "    logits = dense(fc1_Relu, 3)\n"
        "    return logits\n"
        "}\n"
    )
    assert import_onnx(path, name="net").name == "net"


def test_weights_that_are_not_layers_become_params(tmp_path):
    graph = one("Conv", {"x": IMG}, {"conv.weight": rand(3, 2, 3, 3)}, strides=[2, 2])
    imported = import_onnx(save(graph.model(), tmp_path))
    assert "param conv_weight: f32[3, 2, 3, 3] = zeros" in imported.text
    assert "conv2d(x, conv_weight, stride=2)" in imported.text
    assert list(imported.weights) == ["conv_weight"]


def test_names_are_sanitised_and_unique(tmp_path):
    graph = Graph(
        [node("Relu", ["input.1"], "/a/b:c"), node("Neg", ["/a/b:c"], "a_b_c"),
         node("Exp", ["a_b_c"], "max"), node("Abs", ["max"], "y")],
        {"input.1": X},
    )  # fmt: skip
    text = run_both(graph, tmp_path, "names").text
    assert "model model_model(input_1: f32[N, 4])" in text
    assert "a_b_c = relu(input_1)" in text and "a_b_c_1 = -a_b_c" in text
    assert "max_ = exp(a_b_c_1)" in text


def test_literals_give_back_the_same_value():
    for value in [0.1, 1e-5, -2.5, 3.0, 1e20, np.float32(0.7071067811865476)]:
        text = literal(value, np.dtype(np.float32))
        assert np.float32(float(text.strip("()"))) == np.float32(value)
        assert "." in text or "e" in text
    assert literal(-3, np.dtype(np.int64)) == "(-3)"
    assert literal(np.inf, np.dtype(np.float32)) is None


# --- whole networks -------------------------------------------------------------------------------


def mlp() -> Graph:
    return Graph(
        [
            helper.make_node(
                "Gemm", ["input.1", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"], transB=1
            ),
            helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/fc1/Relu_output_0"]),
            helper.make_node(
                "Gemm", ["/fc1/Relu_output_0", "fc2.weight", "fc2.bias"], ["logits"], transB=1
            ),
        ],
        {"input.1": X},
        {
            "fc1.weight": rand(8, 4, seed=1),
            "fc1.bias": rand(8, seed=2),
            "fc2.weight": rand(3, 8, seed=3),
            "fc2.bias": rand(3, seed=4),
        },
        output="logits",
    )


def test_mlp(tmp_path):
    run_both(mlp(), tmp_path, "net-mlp")


def test_cnn(tmp_path):
    graph = Graph(
        [
            node("Conv", ["x", "c1.w", "c1.b"], "c1", pads=[1, 1, 1, 1]),
            node("Relu", ["c1"], "r1"),
            node("MaxPool", ["r1"], "p1", kernel_shape=[2, 2], strides=[2, 2]),
            node("Conv", ["p1", "c2.w", "c2.b"], "c2"),
            node("Relu", ["c2"], "r2"),
            node("Flatten", ["r2"], "f"),
            node("Gemm", ["f", "fc.w", "fc.b"], "y", transB=1),
        ],
        {"x": rand(BATCH, 1, 8, 8)},
        {
            "c1.w": rand(4, 1, 3, 3, seed=1),
            "c1.b": rand(4, seed=2),
            "c2.w": rand(6, 4, 3, 3, seed=3),
            "c2.b": rand(6, seed=4),
            "fc.w": rand(5, 24, seed=5),
            "fc.b": rand(5, seed=6),
        },
    )
    text = run_both(graph, tmp_path, "net-cnn").text
    assert text.count("conv(") == 2 and "max_pool(" in text and "dense(" in text
    assert "flatten(" in text


def test_batch_norm_and_global_pool(tmp_path):
    stats = {
        f"bn.{k}": rand(4, seed=i, low=0.5 if k == "var" else -1, high=2)
        for i, k in enumerate(["scale", "bias", "mean", "var"])
    }
    graph = Graph(
        [
            node("Conv", ["x", "c.w"], "c", pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", *stats], "bn"),
            node("Relu", ["bn"], "r"),
            node("GlobalAveragePool", ["r"], "gap"),
            node("Flatten", ["gap"], "f"),
            node("MatMul", ["f", "fc.w"], "mm"),
            node("Add", ["fc.b", "mm"], "y"),
        ],
        {"x": rand(BATCH, 2, 6, 6)},
        {"c.w": rand(4, 2, 3, 3, seed=7), **stats, "fc.w": rand(4, 3), "fc.b": rand(3, seed=8)},
    )
    imported = run_both(graph, tmp_path, "net-bn-gap")
    assert "batch_norm(" in imported.text and "dense(f, 3)" in imported.text
    assert list(imported.state) == ["batch_norm_0.running_mean", "batch_norm_0.running_var"]
    assert "mean(bn_1, axis=[2, 3], keepdims=true)" in imported.text.replace("r, ", "bn_1, ")


def test_embedding_layer_norm_softmax(tmp_path):
    """A transformer-like block: token embedding, positional term, layer norm, a self-attention
    score, softmax, a feed-forward layer with GELU."""
    d = 8
    graph = Graph(
        [
            node("Gather", ["emb.table", "ids"], "e"),
            node("Add", ["e", "pos"], "h"),
            node("LayerNormalization", ["h", "ln.s", "ln.b"], "n"),
            node("MatMul", ["n", "wq"], "q"),
            node("Transpose", ["n"], "kt", perm=[0, 2, 1]),
            node("MatMul", ["q", "kt"], "s"),
            node("Div", ["s", "scale"], "s2"),
            node("Softmax", ["s2"], "a", axis=-1),
            node("MatMul", ["a", "n"], "ctx"),
            node("MatMul", ["ctx", "ff.w"], "ff"),
            node("Add", ["ff", "ff.b"], "ffb"),
            node("Gelu", ["ffb"], "g"),
            node("ReduceMean", ["g", "axis1"], "pooled", keepdims=0),
            node("LogSoftmax", ["pooled"], "y", axis=1),
        ],
        {"ids": np.random.default_rng(1).integers(0, 10, (BATCH, 5)).astype(np.int64)},
        {
            "emb.table": rand(10, d, seed=1),
            "pos": rand(5, d, seed=2),
            "ln.s": rand(d, seed=3),
            "ln.b": rand(d, seed=4),
            "wq": rand(d, d, seed=5),
            "scale": np.array(np.sqrt(d), np.float32),
            "ff.w": rand(d, 6, seed=6),
            "ff.b": rand(6, seed=7),
            "axis1": ints(1),
        },
    )
    imported = run_both(graph, tmp_path, "net-transformer")
    for call in ["embedding(cast(ids, i32), 10, 8)", "layer_norm(h, eps=1e-05)", "dense(ctx, 6)"]:
        assert call in imported.text
    assert "param pos: f32[5, 8] = zeros" in imported.text
    assert "s2 = s / 2.828427" in imported.text


def test_a_chain_of_constants_is_computed_at_import(tmp_path):
    """Exporters reshape a bias by a node of its own (irnet's `conv` exports so): the bias is
    reshaped here, and the convolution and its `Add` are `conv`."""
    graph = Graph(
        [
            node("Conv", ["x", "w"], "c"),
            helper.make_node(
                "Constant", [], ["shape"], value=numpy_helper.from_array(ints(3, 1, 1))
            ),
            node("Reshape", ["b", "shape"], "b3"),
            node("Add", ["c", "b3"], "y"),
        ],
        {"x": IMG},
        {"w": rand(3, 2, 3, 3), "b": rand(3, seed=1)},
    )
    imported = run_both(graph, tmp_path, "folded-bias")
    assert "y = conv(x, 3, 3, stride=1, padding=0)" in imported.text
    assert list(imported.weights) == ["conv_0.w", "conv_0.b"]


def test_a_reshape_by_the_batch_size_computed_in_the_graph(tmp_path):
    """PyTorch's `x.view(x.size(0), -1)`: `Shape`, `Gather`, `Unsqueeze`, `Concat` compute
    `[N, -1]` for a `Reshape`; the importer folds them, the batch staying `N`."""
    graph = Graph(
        [
            node("Relu", ["x"], "r"),
            node("Shape", ["r"], "shape"),
            node("Gather", ["shape", "zero"], "n", axis=0),
            node("Unsqueeze", ["n", "axes"], "n1"),
            node("Concat", ["n1", "rest"], "target", axis=0),
            node("Reshape", ["r", "target"], "flat"),
            node("Gemm", ["flat", "w", "b"], "y", transB=1),
        ],
        {"x": IMG},
        {
            "zero": np.array(0, np.int64),
            "axes": ints(0),
            "rest": ints(-1),
            "w": rand(3, 98),
            "b": rand(3),
        },
    )
    text = run_both(graph, tmp_path, "net-view-size0").text
    assert "flat = reshape(r, [N, 98])" in text and "Shape" not in text


def test_a_causal_mask_as_irnet_exports_it(tmp_path):
    """irnet's causal mask, `where(iota(s, axis=-1) > iota(s, axis=-2), -1e9, s)`, exports
    `iota` as `Range`, `Reshape` and `Expand` to `Shape(s)`: imported as `iota`. Twice, as in
    a transformer's two blocks: ONNX shape inference loses the batch after the first mask, so
    the second `Shape` folds from the shapes the importer computed."""

    def masked_softmax(scores: str, out: str) -> list:
        return [
            *iota_nodes(scores, axis=3, rank=4, out=f"{out}_column"),
            *iota_nodes(scores, axis=2, rank=4, out=f"{out}_row"),
            node("Greater", [f"{out}_column", f"{out}_row"], f"{out}_future"),
            node("Where", [f"{out}_future", "low", scores], f"{out}_masked"),
            node("Softmax", [f"{out}_masked"], out, axis=3),
        ]

    graph = Graph(
        [*masked_softmax("x", "a"), *masked_softmax("a", "y")],
        {"x": rand(BATCH, 2, 5, 5)},
        {"low": np.array(-1e9, np.float32)},
    )
    text = run_both(graph, tmp_path, "net-causal-mask").text
    assert "a_column = iota(x, axis=3)" in text and "y_row = iota(a, axis=2)" in text
    assert "a_masked = where(a_future, (-1e+09), x)" in text
    assert "y = softmax(y_masked, axis=3)" in text and "range" not in text


def test_write_imported_writes_the_program_and_its_weights(tmp_path):
    """What `irnet import` calls: the program, its weights beside it as .safetensors, the model
    named after the program by default; loading both runs the model."""
    source = save(mlp().model(), tmp_path, "source")
    program, weights = write_imported(source, tmp_path / "out" / "net.irn")
    assert weights == tmp_path / "out" / "net.safetensors" and weights.exists()
    model = irnet.load(program, target="reference")
    assert model.name == "net"
    model.load(weights)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"input.1": X})
    np.testing.assert_allclose(model(X), expected, rtol=RTOL, atol=ATOL)


def test_external_data_inside_the_folder(tmp_path):
    graph = one("MatMul", {"x": X3}, {"w": rand(4, 300, seed=1)})
    path = tmp_path / "model.onnx"
    onnx.save(graph.model(), str(path), save_as_external_data=True, location="w.bin",
              size_threshold=0)  # fmt: skip
    assert (tmp_path / "w.bin").exists()
    imported = import_onnx(path)
    np.testing.assert_array_equal(imported.weights["w"], graph.inits["w"])


# --- what is refused ------------------------------------------------------------------------------


def refused(graph_or_model, tmp_path: Path, *fragments: str) -> str:
    model = graph_or_model.model() if isinstance(graph_or_model, Graph) else graph_or_model
    path = save(model, tmp_path)
    with pytest.raises(IrnError) as e:
        import_onnx(path)
    message = str(e.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_truncated_file(tmp_path):
    data = mlp().model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IrnError, match="cut.onnx"):
        import_onnx(path)


def test_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are not the weights you are looking for\n")
    with pytest.raises(IrnError, match="notes.onnx"):
        import_onnx(path)
    with pytest.raises(IrnError, match="No such file"):
        import_onnx(tmp_path / "missing.onnx")


def test_an_unsupported_op(tmp_path):
    message = refused(one("Hardmax", {"x": X}), tmp_path, "Hardmax", "'hardmax_y'")
    assert "Conv, " in message and "Gemm, " in message  # the supported ops are listed


def test_another_domain(tmp_path):
    graph = one("Relu", {"x": X})
    graph.nodes[0].domain = "com.example"
    model = graph.model()
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    refused(model, tmp_path, "com.example")


@pytest.mark.parametrize(
    "graph, fragments",
    [
        (
            one("Conv", {"x": IMG}, {"w": rand(3, 2, 3, 3)}, pads=[1, 0, 0, 0]),
            ["pads [1, 0, 0, 0]"],
        ),
        (one("Conv", {"x": IMG}, {"w": rand(3, 2, 2, 2)}, auto_pad="SAME_LOWER"), ["SAME_LOWER"]),
        (
            one("MaxPool", {"x": IMG}, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
            ["ceil_mode"],
        ),
        (one("MaxPool", {"x": IMG}, kernel_shape=[2, 2], dilations=[2, 2]), ["dilated"]),
        (one("MaxPool", {"x": IMG}, kernel_shape=[2, 2], pads=[2, 2, 2, 2]), ["half the window"]),
        (one("Conv", {"x": rand(BATCH, 1, 3, 3, 3)}, {"w": rand(1, 1, 2, 2, 2)}), ["3-D"]),
        (one("Gelu", {"x": X}, approximate="erf"), ["approximate"]),
        (
            one("Slice", {"x": X3}, {"s": ints(3), "e": ints(0), "a": ints(1), "t": ints(-1)}),
            ["step -1"],
        ),
        (
            one(
                "BatchNormalization",
                {"x": IMG},
                {"s": rand(2), "b": rand(2), "m": rand(2), "v": rand(2)},
                training_mode=1,
            ),
            ["inference"],
        ),
        (one("Reshape", {"x": X3}, {"shape": ints(3, 12)}), ["batch"]),
        (one("Add", {"x": X}, {"i": ints(1, 2, 3, 4)}), ["no tensor literals"]),
        (
            Graph(
                [node("Div", ["a", "b"])],
                {"a": ints(4, 6)[None], "b": ints(2, 3)[None]},
                out_type=TensorProto.INT64,
            ),
            ["floats"],
        ),
        (
            Graph([node("Pow", ["x", "e"])], {"x": X, "e": np.ones((BATCH, 4), np.int64)}),
            ["exponent"],
        ),
        (
            Graph(
                [
                    node("Shape", ["x"], "s"),
                    node("Cast", ["s"], "f", to=TensorProto.FLOAT),
                    node("Mul", ["x", "f"]),
                ],
                {"x": rand(BATCH, 1)},
            ),
            ["batch size"],
        ),
        (one("Gather", {"x": X3}, {"i": ints(0, 2)}, axis=1), ["constant indices"]),
        (
            Graph([*iota_nodes("x", axis=0, rank=2, out="i"), node("Cast", ["i"], to=1)], {"x": X}),
            ["(Range)", "'i_n'", "batch size"],
        ),
        (
            Graph(
                [node("ReduceMax", ["k"], "m", keepdims=0), node("Range", ["s", "m", "d"])],
                {"k": ints(3, 5, 4)},
                {"s": np.array(0, np.int64), "d": np.array(1, np.int64)},
                out_type=TensorProto.INT64,
            ),
            ["(Range)", "'m'", "computed by the graph"],
        ),
        (
            Graph(
                [node("Range", ["s", "l", "d"])],
                {"unused": X},
                {k: np.array(v, np.float32) for k, v in {"s": 0, "l": 4, "d": 0}.items()},
            ),
            ["(Range)", "delta is 0"],
        ),
        (one("Expand", {"x": rand(BATCH, 1, 4)}, {"s": ints(3, 4)}), ["(Expand)", "like"]),
        (
            Graph(
                [node("Shape", ["z"], "s"), node("Expand", ["k", "s"])],
                {"z": X},
                {"k": ints(5, 1, 2, 7)},
                out_type=TensorProto.INT64,
            ),
            ["(Expand)", "no tensor literals"],
        ),
        (
            Graph(
                [node("Where", ["c", "x", "z"])],
                {"x": X},
                {"c": np.array([True, False, True, True]), "z": np.array(0.0, np.float32)},
            ),
            ["(Where)", "'c'", "bool tensor literal"],
        ),
        (
            Graph([], {"x": X}, {"y": rand(4).astype(np.float16)}, out_type=TensorProto.FLOAT16),
            ["float16"],
        ),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_what_irnet_cannot_express_is_refused(graph, fragments, tmp_path):
    refused(graph, tmp_path, *fragments)


def test_several_outputs(tmp_path):
    graph = one("Relu", {"x": X})
    model = graph.model()
    model.graph.node.append(helper.make_node("Neg", ["x"], ["z"]))
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    refused(model, tmp_path, "2 outputs", "y, z")


def test_a_dynamic_size_beyond_the_batch(tmp_path):
    model = one("Relu", {"x": X}).model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "T"
    refused(model, tmp_path, "input 'x'", "static")


def test_a_dtype_irnet_lacks(tmp_path):
    half = X.astype(np.float16)
    refused(Graph([node("Relu", ["x"])], {"x": half}, out_type=TensorProto.FLOAT16), tmp_path,
            "FLOAT16")  # fmt: skip


@pytest.mark.parametrize("where", ["../outside.bin", "/tmp/irnet-absolute.bin", "link.bin"])
def test_external_data_outside_the_folder_is_never_read(where, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.zeros(1200, np.float32).tobytes())
    (folder / "link.bin").symlink_to(outside)
    model = one("MatMul", {"x": X3}, {"w": rand(4, 300)}).model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=where)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(IrnError, match="outside the model's folder"):
        import_onnx(path)


def test_report_differences():
    """Not a check: prints the largest relative difference measured (run with -s)."""
    if DIFFERENCES:
        worst = max(DIFFERENCES, key=DIFFERENCES.get)
        print(f"\nlargest relative difference: {DIFFERENCES[worst]:.3g} ({worst}) over "
              f"{len(DIFFERENCES)} cases")  # fmt: skip
