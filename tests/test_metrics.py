"""Metrics defined by what they measure (`irnet/metrics.py`): each number is checked against
NumPy on the same outputs, and a pairing where a metric means nothing is refused with a located
error instead of printing a wrong number."""

from __future__ import annotations

import math

import numpy as np
import pytest

from irnet import train
from irnet.diagnostics import IrnError
from irnet.model import open_session

BINARY = """from nn import dense, binary_cross_entropy

model clf(x: f32[N, 4]) -> f32[N, 1] {
    return sigmoid(dense(x, 1))
}

train clf(y: f32[N, 1]) {
    data      = npz("bin.npz", x="x", y="y")
    loss      = binary_cross_entropy(clf(x), y)
    optimizer = adam(lr=0.05)
    metrics   = [METRICS]
    val_split = 0.2
    batch     = 16
}
"""

CLASSES = """from nn import dense, cross_entropy

model net(x: f32[N, 4]) -> f32[N, 5] {
    return dense(x, 5)
}

train net(y: i32[N]) {
    data      = npz("cls.npz", x="x", y="y")
    loss      = cross_entropy(net(x), y)
    metrics   = [METRICS]
    val_split = 0.25
    batch     = 8
}
"""

REGRESSION = """from nn import dense, mse

model reg(x: f32[N, 4]) -> f32[N, 1] {
    return dense(x, 1)
}

train reg(y: f32[N, 1]) {
    data    = npz("reg.npz", x="x", y="y")
    loss    = mse(reg(x), y)
    metrics = [METRICS]
}
"""

TWO_TARGETS = """from nn import dense, cross_entropy, mse

model two(x: f32[N, 4]) -> f32[N, 3] {
    return dense(x, 3)
}

train two(w: f32[N, 1], y: i32[N]) {
    data    = npz("two.npz", x="x", y=["w", "y"])
    loss    = cross_entropy(two(x), y) + mse(two(x)[:, 0:1], w)
    metrics = [METRICS]
}
"""


def write(tmp_path, text: str, metrics: str, **arrays) -> str:
    data_file = text.split('npz("')[1].split('"')[0]
    np.savez(tmp_path / data_file, **arrays)
    path = tmp_path / "model.irn"
    path.write_text(text.replace("METRICS", metrics))
    return str(path)


def outputs(session, dataset) -> np.ndarray:
    params = [session.params[a.name] for a in session.role("param")]
    inputs = session.fit(dataset.inputs, "input", dataset.source)
    targets = session.fit(dataset.targets, "target", dataset.source)
    _, out = session.runner.run(f"{session.model}.eval", [*inputs, *targets, *params])
    return np.asarray(out)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_binary_accuracy_of_a_sigmoid_output_is_a_fraction(tmp_path, rng):
    """The defect: `val acc 2929.41%` (argmax over one column, compared against every row)."""
    x = rng.normal(size=(100, 4)).astype(np.float32)
    y = (x[:, :1] + x[:, 1:2] > 0).astype(np.float32)
    path = write(tmp_path, BINARY, "accuracy", x=x, y=y)
    session = open_session(path, {"epochs": 3})
    train.train(session, train.TrainOptions())
    _, val, _ = train.splits(session)
    metrics = session.evaluate(val, 16)
    out = outputs(session, val)
    expected = np.mean((out > 0.5) == (val.targets[0] == 1))  # a probability: above 0.5
    assert 0 <= metrics["accuracy"] <= 1
    assert metrics["accuracy"] == pytest.approx(expected)


def test_class_top_k_and_one_hot_accuracy_against_numpy(tmp_path, rng):
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 5, 40).astype(np.int32)
    path = write(tmp_path, CLASSES, "accuracy, top_k_accuracy(k=3)", x=x, y=y)
    session = open_session(path)
    full, _, _ = train.splits(session)
    metrics = session.evaluate(full, 8)
    out, labels = outputs(session, full), full.targets[0]
    assert metrics["accuracy"] == pytest.approx(np.mean(np.argmax(out, 1) == labels))
    top3 = np.argsort(-out, axis=1)[:, :3]
    assert metrics["top3_accuracy"] == pytest.approx(np.mean(np.any(top3 == labels[:, None], 1)))


def test_mae_and_rmse_against_numpy(tmp_path, rng):
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.normal(size=(30, 1)).astype(np.float32)
    session = open_session(write(tmp_path, REGRESSION, "mae, rmse", x=x, y=y))
    full, _, _ = train.splits(session)
    metrics = session.evaluate(full, 7)  # a batch size that does not divide the data
    diff = outputs(session, full).astype(np.float64) - full.targets[0]
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(diff)))
    assert metrics["rmse"] == pytest.approx(math.sqrt(np.mean(diff**2)))


def test_accuracy_of_a_regression_is_refused_at_the_metrics_entry(tmp_path, rng):
    x = rng.normal(size=(10, 4)).astype(np.float32)
    path = write(tmp_path, REGRESSION, "accuracy", x=x, y=x[:, :1])
    with pytest.raises(IrnError) as info:
        open_session(path)
    text = str(info.value)
    assert "model.irn:10:" in text and "regression" in text and "mae or rmse" in text


@pytest.mark.parametrize(
    ("text", "metrics", "message"),
    [
        (REGRESSION, "top_k_accuracy(k=3)", "top-k accuracy compares class scores"),
        (CLASSES, "binary_accuracy", "0/1 labels"),
        (CLASSES, "top_k_accuracy(k=9)", r"k must be an integer in \[1, 5\]"),
        (CLASSES, "rmse", "rmse needs a float target"),
        (REGRESSION, "f1", "unknown metric 'f1'"),
    ],
)
def test_metrics_that_do_not_fit_are_located_errors(tmp_path, rng, text, metrics, message):
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = x[:, :1] if text is REGRESSION else rng.integers(0, 5, 10).astype(np.int32)
    path = write(tmp_path, text, metrics, x=x, y=y)
    with pytest.raises(IrnError, match=message) as info:
        open_session(path)
    assert "model.irn:10:" in str(info.value)


def test_accuracy_on_values_that_are_not_0_1_is_an_error(tmp_path, rng):
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = np.full((20, 1), 0.5, np.float32)
    session = open_session(write(tmp_path, BINARY, "accuracy", x=x, y=y))
    full, _, _ = train.splits(session)
    with pytest.raises(IrnError, match="0/1 targets.*holds 0.5.*mae or rmse"):
        session.evaluate(full, 8)


def test_with_several_targets_accuracy_measures_the_one_that_fits(tmp_path, rng):
    """The defect: accuracy compared the output with the first target, whichever it was."""
    x = rng.normal(size=(24, 4)).astype(np.float32)
    w = rng.normal(size=(24, 1)).astype(np.float32)
    y = rng.integers(0, 3, 24).astype(np.int32)
    session = open_session(write(tmp_path, TWO_TARGETS, "accuracy", x=x, w=w, y=y))
    assert session.metrics[0].target == 1
    full, _, _ = train.splits(session)
    expected = np.mean(np.argmax(outputs(session, full), 1) == full.targets[1])
    assert session.evaluate(full, 8)["accuracy"] == pytest.approx(expected)
    named = write(tmp_path, TWO_TARGETS, 'top_k_accuracy(k=2, target="y")', x=x, w=w, y=y)
    assert open_session(named).metrics[0].target == 1
    wrong = write(tmp_path, TWO_TARGETS, 'accuracy(target="w")', x=x, w=w, y=y)
    with pytest.raises(IrnError, match="accuracy is meaningless here.*target w is f32"):
        open_session(wrong)


@pytest.mark.parametrize("bad", [5, -1, 1_000_000])
def test_labels_outside_the_classes_are_refused_before_training(tmp_path, rng, bad):
    """The defect: such labels trained silently (a zero one-hot row) to `train loss 0.0000`."""
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.integers(0, 5, 16).astype(np.int32)
    y[11] = bad
    session = open_session(write(tmp_path, CLASSES, "accuracy", x=x, y=y))
    with pytest.raises(IrnError) as info:
        train.train(session, train.TrainOptions())
    text = str(info.value)
    assert "cls.npz" in text and f"label {bad} of example 11" in text and "[0, 5)" in text


CUSTOM = REGRESSION.replace(
    "train reg",
    """def worst(output: F[N, 1], target: F[N, 1]) -> F {
    return max(abs(output - target))
}

def mean_abs(output: F[N, 1], target: F[N, 1]) -> F {
    return mean(abs(output - target))
}

train reg""",
)


def test_custom_metrics_are_defs_of_the_file(tmp_path, rng):
    """The defect: custom metrics were refused."""
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.normal(size=(30, 1)).astype(np.float32)
    session = open_session(write(tmp_path, CUSTOM, "mean_abs, mae, worst", x=x, y=y))
    full, _, _ = train.splits(session)
    metrics = session.evaluate(full, 10)  # batch means of equal batches: the exact mean
    assert metrics["mean_abs"] == pytest.approx(metrics["mae"], rel=1e-6)
    diff = np.abs(outputs(session, full) - full.targets[0])
    assert metrics["worst"] == pytest.approx(np.mean([d.max() for d in np.split(diff, 3)]))


def test_a_custom_metric_must_return_a_float_scalar(tmp_path, rng):
    text = CUSTOM.replace(
        "F[N, 1]) -> F {\n    return mean(abs(output - target))",
        "F[N, 1]) -> F[N, 1] {\n    return abs(output - target)",
    )
    x = rng.normal(size=(10, 4)).astype(np.float32)
    with pytest.raises(IrnError, match="metric mean_abs must return a float scalar"):
        open_session(write(tmp_path, text, "mean_abs", x=x, y=x[:, :1]))
