"""ONNX export (`irnet/onnx_export.py`): every example and every exportable `nn` op, exported
and run in ONNX Runtime on two batch sizes, agrees with the reference interpreter; dropout is
off in the export; an op that cannot be exported is refused at its source line, and the target
file is then left as it was."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from conftest import ROOT

import irnet
from irnet.diagnostics import IrnError
from irnet.dialects import nn
from irnet.dialects.dtypes import numpy_dtype
from irnet.params import arguments, find_function

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra (irnet[onnx])")
ort = pytest.importorskip("onnxruntime", reason="the exports run in onnxruntime (irnet[onnx])")

from irnet.onnx_export import EMITTERS, export_onnx  # noqa: E402 (needs onnx, skipped above)

EXAMPLES = sorted((ROOT / "examples").glob("*.irn")) + sorted((ROOT / "examples").glob("*/*.irn"))
BATCHES = (2, 5)
RTOL = 1e-5
ATOL = 1e-6
"""Absolute tolerance per unit of the output's largest magnitude: float32 sums of hundreds of
products (a convolution, a dense layer) round differently in NumPy and ONNX Runtime, and an
element that cancels to near zero keeps the rounding error of its large terms."""


def inputs_for(model: irnet.Model, batch: int, seed: int, ranges: dict) -> dict[str, np.ndarray]:
    """Random inputs of the model function, every `?` of size `batch`: floats in [-2, 2), ints
    in [0, 4), bools half true, or in `ranges[name] = (low, high)`."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in arguments(find_function(model._module, model.name)):
        if arg.kind in ("param", "state"):
            continue
        shape, dtype = arg.concrete_shape(batch), numpy_dtype(arg.type)
        if dtype.kind == "b":
            feeds[arg.name] = rng.random(shape) < 0.5
        elif dtype.kind == "i":
            feeds[arg.name] = rng.integers(*ranges.get(arg.name, (0, 4)), shape).astype(dtype)
        else:
            feeds[arg.name] = rng.uniform(*ranges.get(arg.name, (-2, 2)), shape).astype(dtype)
    return feeds


def session(path: Path):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(got: np.ndarray, want: np.ndarray) -> float:
    """Assert that ONNX Runtime's `got` equals the reference's `want` (exactly for ints and
    bools, else within RTOL and ATOL scaled to the output); the largest relative difference."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want)
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return 0.0
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale)
    difference = np.abs(got.astype(np.float64) - want)
    return float(np.max(difference / np.maximum(np.abs(want), ATOL * scale), initial=0.0))


def check_export(
    model: irnet.Model, path: Path, opset: int = 17, ranges: dict | None = None
) -> float:
    """Export `model`, check it, run it on `BATCHES` and compare with `model(x)`; the largest
    relative difference seen."""
    proto = export_onnx(model, path, opset=opset)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert proto.opset_import[0].version == opset
    run = session(path)
    worst = 0.0
    for seed, batch in enumerate(BATCHES):
        feeds = inputs_for(model, batch, seed, ranges or {})
        want = model(**feeds)
        (got,) = run.run(None, feeds)
        worst = max(worst, compare(got, want))
    return worst


# --- the examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_an_example_exports_and_agrees_with_the_reference(example, tmp_path):
    model = irnet.load(example, target="reference", seed=1)
    path = tmp_path / "model.onnx"
    check_export(model, path, ranges={"context": (0, 65)})  # char_mlp's ids: the vocabulary
    proto = onnx.load(path)
    graph = proto.graph
    signature = model.functions[model.name]
    assert [i.name for i in graph.input] == list(signature.arguments)
    assert [o.name for o in graph.output] == ["output"]
    for value in [*graph.input, *graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "N"  # the batch is dynamic
    params = {**model.params.numpy(), **model.state.numpy()}
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    assert initializers.keys() == params.keys()
    for name, value in params.items():
        np.testing.assert_array_equal(initializers[name], value)


@pytest.mark.parametrize("name", ["vision", "tokens", "regress", "sequence"])
def test_the_standard_library_exports(name, tmp_path):
    """Every layer of `nn` in a model: batch and layer norm, dropout, pools, an embedding, the
    recurrent layers (`gru`, `lstm`, a `scan` run backwards)."""
    program = ROOT / "tests" / "programs" / "stdlib_all.irn"
    model = irnet.load(program, model=name, target="reference", seed=2)
    check_export(model, tmp_path / "m.onnx", ranges={"ids": (0, 20)})


# --- every op ----------------------------------------------------------------------------------


class Case(NamedTuple):
    """A model `m(signature)` returning `body` (an expression, or statements ending in a
    `return`), with `(low, high)` ranges for its inputs' random values."""

    id: str
    signature: str
    body: str
    ranges: dict = {}


OPS = [
    Case("neg", "x: f32[N, 3]", "-x"),
    Case("neg-int", "i: i32[N, 3]", "-i"),
    Case("abs", "x: f32[N, 3]", "abs(x)"),
    Case("abs-int", "i: i32[N, 3]", "abs(i)", {"i": (-5, 5)}),
    Case("exp", "x: f32[N, 3]", "exp(x)"),
    Case("log", "x: f32[N, 3]", "log(x)", {"x": (0.1, 3)}),
    Case("sqrt", "x: f32[N, 3]", "sqrt(x)", {"x": (0, 3)}),
    Case("tanh", "x: f32[N, 3]", "tanh(x)"),
    Case("sigmoid", "x: f32[N, 3]", "sigmoid(x)"),
    Case("relu", "x: f32[N, 3]", "relu(x)"),
    Case("gelu-tanh", "x: f32[N, 3]", "gelu(x)", {"x": (-5, 5)}),
    Case("gelu-exact", "x: f32[N, 3]", 'gelu(x, approximate="none")', {"x": (-5, 5)}),
    Case("erf", "x: f32[N, 3]", "erf(x)"),
    Case("add", "x: f32[N, 3], b: f32[3]", "x + b"),
    Case("sub", "x: f32[N, 3], y: f32[N, 1]", "x - y"),
    Case("mul", "x: f32[N, 3]", "x * 2.5"),
    Case("div", "x: f32[N, 3], y: f32[N, 3]", "x / y", {"y": (0.5, 2)}),
    Case("pow", "x: f32[N, 3], y: f32[3]", "x ** y", {"x": (0.1, 2)}),
    Case("maximum", "x: f32[N, 3], y: f32[1, 3]", "maximum(x, y)"),
    Case("minimum", "x: f32[N, 3]", "minimum(x, 0.5)"),
    Case("iota", "x: f32[N, 3, 4]", "iota(x, axis=1) * 10 + iota(x)"),
    Case("tril-triu", "x: f32[N, 4, 5]", "tril(x, k=1) - triu(x)"),
    Case(
        "avg-pool-pads-left-out",
        "x: f32[N, 2, 5, 6]",
        "avg_pool2d(x, 3, stride=[1, 2], padding=1, count_include_pad=false)",
    ),
    Case("int-arith", "i: i32[N, 3], j: i32[3]", "maximum(i * j - 1, minimum(i, j + 2))"),
    Case(
        "floor-div-mod",
        "i: i32[N, 3], j: i32[3]",
        "i // j * 10 + i % j",
        {"i": (-9, 9), "j": (1, 5)},
    ),
    Case(
        "floor-div-mod-negative",
        "i: i64[N, 3], j: i64[3]",
        "i // j * 10 + i % j",
        {"i": (-9, 9), "j": (-5, -1)},
    ),
    Case("cmp-eq", "i: i32[N, 3], j: i32[N, 3]", "i == j"),
    Case("cmp-ne", "i: i32[N, 3], j: i32[N, 3]", "i != j"),
    Case("cmp-lt", "i: i32[N, 3], j: i32[3]", "i < j"),
    Case("cmp-le", "i: i32[N, 3], j: i32[N, 3]", "i <= j"),
    Case("cmp-gt", "i: i32[N, 3]", "i > 2"),
    Case("cmp-float", "x: f32[N, 3], y: f32[3]", "cast(x < y, i32) + cast(x >= 0.5, i32)"),
    Case("cmp-ge", "i: i32[N, 3], j: i32[3]", "i >= j"),
    Case("cmp-bool", "p: bool[N, 3], q: bool[N, 3]", "cast(p < q, f32) + cast(p >= q, f32) * 2.0"),
    Case("select", "x: f32[N, 3], y: f32[3]", "where(x > y, x, 0.0)"),
    Case("cast-to-int", "x: f32[N, 3]", "cast(x * 3.0, i32)"),
    Case("cast-to-float", "i: i32[N, 3]", "cast(i, f64)", {"i": (-9, 9)}),
    Case("cast-bool", "x: f32[N, 3]", "cast(cast(x * 2.0, i64), bool)"),
    Case("constant", "x: f32[N, 3]", "x * 0.25 + 3"),
    Case("constant-vector", "x: f32[N, 3]", "x * reshape(broadcast_to(2.0, shape=[3]), [1, 3])"),
    Case("matmul", "x: f32[N, 3], w: f32[3, 4]", "x @ w"),
    Case("matmul-batched", "x: f32[N, 2, 3], w: f32[N, 3, 4]", "x @ w"),
    Case("transpose", "x: f32[N, 2, 3]", "transpose(x)"),
    Case("transpose-perm", "x: f32[N, 2, 3]", "transpose(x, perm=[0, 2, 1])"),
    Case("reshape-flatten", "x: f32[N, 2, 3]", "reshape(x, [N, 6])"),
    Case("reshape-other-axis", "x: f32[N, 6]", "reshape(x, [3, -1, 2])"),
    Case("reshape-static", "x: f32[N, 3], w: f32[6]", "x * reshape(w, [2, 3])[1]"),
    Case("broadcast-like", "x: f32[N, 3], b: f32[N, 1]", "broadcast_to(b, like=x)"),
    Case("broadcast-static", "b: f32[3]", "broadcast_to(b, shape=[2, 3])"),
    Case("sum", "x: f32[N, 3]", "sum(x, axis=1)"),
    Case("sum-all", "x: f32[N, 3]", "sum(x)"),
    Case("sum-int", "i: i32[N, 3]", "sum(i, axis=0, keepdims=true)"),
    Case("mean", "x: f32[N, 2, 3]", "mean(x, axis=[0, -1], keepdims=true)"),
    Case("mean-all", "x: f32[N, 3]", "mean(x)"),
    Case("max", "x: f32[N, 3]", "max(x, axis=-1)"),
    Case("max-scalar", "x: f32", "max(x)"),
    Case("argmax", "x: f32[N, 4]", "argmax(x, axis=1)"),
    Case("argmax-first-axis", "x: f32[N, 4]", "argmax(x, axis=0)"),
    Case("softmax", "x: f32[N, 4]", "softmax(x, axis=1)"),
    Case("softmax-first-axis", "x: f32[N, 4]", "softmax(x * 10.0, axis=0)"),
    Case("log-softmax", "x: f32[N, 4]", "log_softmax(x)"),
    Case("log-softmax-scalar", "x: f32", "log_softmax(x, axis=0) + softmax(x, axis=0)"),
    Case("conv2d", "x: f32[N, 2, 7, 6], w: f32[4, 2, 3, 3]", "conv2d(x, w, padding=1)"),
    Case(
        "conv2d-strided-grouped",
        "x: f32[N, 4, 9, 8], w: f32[6, 2, 3, 2]",
        "conv2d(x, w, stride=[2, 1], padding=[1, 0], dilation=[1, 2], groups=2)",
    ),
    Case(
        "max-pool", "x: f32[N, 2, 7, 6]", "max_pool2d(x, 3, stride=2, padding=1)", {"x": (-3, -1)}
    ),
    Case("avg-pool", "x: f32[N, 2, 7, 6]", "avg_pool2d(x, [3, 2], stride=[2, 1], padding=[1, 1])"),
    Case("gather", "t: f32[5, 3], ids: i32[N, 2]", "t[ids]", {"ids": (0, 5)}),
    Case("gather-axis", "x: f32[N, 5], ids: i64[4]", "gather(x, ids, axis=1)", {"ids": (0, 5)}),
    Case("one-hot", "i: i32[N]", "one_hot(i, 4)", {"i": (-5, 6)}),
    Case("one-hot-f64", "i: i64[N, 2]", "one_hot(i, 3, dtype=f64)"),
    Case("concat", "x: f32[N, 3], y: f32[N, 2]", "concat([x, y, x], axis=1)"),
    Case("concat-batch", "x: f32[N, 3], y: f32[2, 3]", "concat([x, y], axis=0)"),
    Case("slice", "x: f32[N, 6, 5]", "x[:, 1:5:2, ::2]"),
    Case("slice-batch", "x: f32[N, 3]", "x[1:, 2]"),
    Case("axis-size", "x: f32[N, 3]", "grad(msq)(x)"),
    Case("training-folded", "x: f32[N, 3]", "where(training(), x * 2.0, x)"),
    Case("training-used", "x: f32[N, 3]", "x + cast(training(), f32) * 3.0 + 1.0"),
    Case("training-expanded", "x: f32[2, 3]", "where(training(), x, 0.0)"),
    Case("training-unfolded", "x: f32[N, 3]", "where(training(), x, 0.0)"),
    Case(
        "training-broadcast", "x: f32[N, 3]", "where(broadcast_to(training(), shape=[3]), 1.0, x)"
    ),
    Case("scan", "xs: f32[N, T, 3], h: f32[N, 4]", "scan(rnn, h, xs, axis=1)"),  # T at run time
    Case(
        "scan-reverse-two-sequences",
        "xs: f32[N, 5, 3], ys: f32[N, 5, 3]",
        "scan(mix, xs[:, 0], [xs, ys], axis=1, reverse=true)",
    ),
    Case("scan-gru", "x: f32[N, T, 3]", "gru(x, 4)"),
    Case("scan-lstm", "x: f32[N, 6, 3]", "lstm(x, 4)"),
    Case("scan-step-in-inference", "xs: f32[N, 4, 3], h: f32[N, 3]", "scan(noisy, h, xs, axis=1)"),
]

HELPERS = """\
from nn import tril, triu, gru, lstm, dropout
def msq(x: F[N, K]) -> F {
    return mean(x * x)
}
def rnn(h: F[N, H], x: F[N, I]) -> F[N, H] {
    param w: F[I, H] = glorot_uniform
    return tanh(x @ w + h)
}
def mix(c: F[N, K], x: F[N, K], y: F[N, K]) -> F[N, K] {
    return tanh(c * x + y)
}
def noisy(h: F[N, K], x: F[N, K]) -> F[N, K] {
    return tanh(dropout(x, 0.5) + h * 0.5 + mean(x, axis=1, keepdims=true))
}
"""
"""What the programs of `OPS` may call: `grad(msq)` makes an `nn.axis_size`; `rnn`, `mix` and
`noisy` are steps of a loop, `rnn` reading a weight from outside its step (a `with` value),
`noisy` with a dropout that inference leaves out and a reduction whose form is the opset's."""


def source(signature: str, body: str) -> str:
    statements = body if "return" in body else f"return {body}"
    return f"{HELPERS}model m({signature}) {{\n    {statements}\n}}\n"


CASES = {case.id: case for case in OPS}


@functools.cache
def op_model(case_id: str) -> irnet.Model:
    case = CASES[case_id]
    return irnet.loads(source(case.signature, case.body), name=f"{case.id}.irn", target="reference")


@pytest.mark.parametrize("case", OPS, ids=[case.id for case in OPS])
def test_an_op_exports_and_agrees_with_the_reference(case, tmp_path):
    check_export(op_model(case.id), tmp_path / "op.onnx", ranges=case.ranges)


def test_the_ops_cover_every_emitter():
    used = {type(op) for case in OPS for op in find_function(op_model(case.id)._module, "m").walk()}
    missing = sorted(cls.name for cls in EMITTERS.keys() - used)
    assert not missing, f"no case in OPS exports {', '.join(missing)}"


OPSET_CASES = [
    "gelu-tanh",
    "gelu-exact",
    "mean",
    "max",
    "sum",
    "axis-size",
    "one-hot",
    "softmax",
    "scan-reverse-two-sequences",
    "scan-step-in-inference",
]
"""The ops whose ONNX form depends on the opset: axes as an input from 18 (in a loop's step
too), `Gelu` from 20, `Scan` versioned anew at 19 and 21."""


@pytest.mark.parametrize("opset", [18, 20, 21])
def test_later_opsets_export_the_same_values(opset, tmp_path):
    for case_id in OPSET_CASES:
        check_export(op_model(case_id), tmp_path / f"{case_id}.onnx", opset, CASES[case_id].ranges)
    if opset >= 20:
        nodes = export_onnx(op_model("gelu-exact"), tmp_path / "gelu.onnx", opset=opset).graph.node
        assert [n.op_type for n in nodes] == ["Gelu", "Identity"]


def test_an_opset_outside_17_to_21_is_refused(tmp_path):
    with pytest.raises(IrnError, match="opsets 17 to 21, not 16"):
        export_onnx(op_model("neg"), tmp_path / "m.onnx", opset=16)
    assert not (tmp_path / "m.onnx").exists()


# --- inference mode ----------------------------------------------------------------------------

DROPOUT = """\
from nn import dense, dropout

model m(x: f32[N, 4]) -> f32[N, 3] {
    h = dropout(relu(dense(x, 8)), 0.5)
    return dense(dropout(h, 0.25), 3)
}
"""


def test_dropout_is_off_in_the_export(tmp_path):
    model = irnet.loads(DROPOUT, target="reference")
    ops = {type(op) for op in find_function(model._module, "m").walk()}
    assert {nn.RandomUniformOp, nn.TrainingOp} <= ops  # the IR has dropout's draws
    check_export(model, tmp_path / "m.onnx")
    nodes = [n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node]
    assert nodes == ["MatMul", "Add", "Relu", "MatMul", "Add", "Identity"]


BATCH_NORM = """
from nn import batch_norm
model m(x: f32[N, 3, 4, 4]) -> f32[N, 3, 4, 4] { return batch_norm(x) }
train m(y: f32[N, 3, 4, 4]) { loss = mean((m(x) - y) ** 2); optimizer = sgd(lr=0.1) }
"""


def test_batch_norm_exports_its_running_statistics(tmp_path):
    """The running statistics a training step moved are initializers; the batch's statistics,
    which only training uses, are not computed."""
    model = irnet.loads(BATCH_NORM, target="reference")
    x = np.random.default_rng(0).normal(3.0, 2.0, (8, 3, 4, 4)).astype(np.float32)
    model.train_step(x, np.zeros_like(x))
    assert not np.allclose(model.state["batch_norm_0.running_mean"], 0.0)
    check_export(model, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx").graph
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    np.testing.assert_array_equal(initializers["batch_norm_0.running_mean"],
                                  model.state["batch_norm_0.running_mean"])  # fmt: skip
    assert "ReduceMean" not in {n.op_type for n in graph.node}
    assert [o.name for o in graph.output] == ["output"]


@pytest.mark.parametrize(
    ("case_id", "nodes"),
    [
        ("training-folded", ["Identity"]),
        ("training-broadcast", ["Identity"]),
        ("training-expanded", ["Expand", "Identity"]),  # to the result's static shape
        ("training-unfolded", ["Where", "Identity"]),  # a `?` only the true branch knows
    ],
)
def test_a_select_on_the_training_flag_exports_its_false_operand(case_id, nodes, tmp_path):
    proto = export_onnx(op_model(case_id), tmp_path / "m.onnx")
    assert [n.op_type for n in proto.graph.node if n.op_type != "Constant"] == nodes


# --- refusals and failures ---------------------------------------------------------------------

LIVE_DRAW = """\
model m(x: f32[N, 3]) -> f32[N, 3] {
    noise = random_uniform(x)
    return x + noise
}
"""


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_a_live_random_draw_is_refused_at_its_line(existing, tmp_path):
    model = irnet.loads(LIVE_DRAW, name="noisy.irn", target="reference")
    path = tmp_path / "m.onnx"
    if existing:
        path.write_bytes(b"an earlier export")
    with pytest.raises(IrnError) as refused:
        export_onnx(model, path)
    message = str(refused.value)
    assert "nn.random_uniform" in message and "noisy.irn:2:" in message, message
    assert "noise = random_uniform(x)" in message  # the source line is quoted
    if existing:
        assert path.read_bytes() == b"an earlier export"
    else:
        assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["m.onnx"] if existing else [])


GATHER_GRADIENT = """\
def pick(t: f32[5, 3], ids: i32[N]) -> f32 {
    return sum(gather(t, ids))
}

model m(t: f32[5, 3], ids: i32[N]) -> f32[5, 3] {
    return grad(pick)(t, ids)
}
"""


def test_a_gradient_op_is_refused_naming_it(tmp_path):
    model = irnet.loads(GATHER_GRADIENT, name="g.irn", target="reference")
    with pytest.raises(
        IrnError,
        match=r"g.irn:2:16: error: cannot export nn.scatter_add to ONNX: it is a gradient op",
    ):
        export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_unwritable_path_is_an_irn_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(IrnError, match="cannot write ONNX model .*a-file/m.onnx"):
        export_onnx(op_model("neg"), tmp_path / "a-file" / "m.onnx")


def test_a_failed_write_leaves_the_existing_file_and_no_temp_file(monkeypatch, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"an earlier export")

    def refuse(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("irnet.checkpoint.os.replace", refuse)
    with pytest.raises(IrnError, match="cannot write ONNX model .*m.onnx: No space left on device"):
        export_onnx(op_model("neg"), path)
    assert path.read_bytes() == b"an earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_without_onnx_the_export_says_which_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(IrnError, match=r"needs the onnx extra: pip install 'irnet\[onnx\]'"):
        export_onnx(op_model("neg"), tmp_path / "m.onnx")


def test_a_dynamic_dimension_that_is_not_the_batch_gets_a_name_of_its_own(tmp_path):
    program = "model m(x: f32[N, T, 3]) -> f32[N, T] { return sum(x, axis=2) }"
    model = irnet.loads(program, target="reference")
    proto = export_onnx(model, tmp_path / "m.onnx")
    (x,), (out,) = proto.graph.input, proto.graph.output
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["N", "x_dim1", 3]
    assert [d.dim_param for d in out.type.tensor_type.shape.dim] == ["N", "x_dim1"]
