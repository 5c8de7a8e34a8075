"""The Python API (`irnet.load`, `irnet.Model`): calling, gradients, IR, parameters,
checkpoints and training from Python, and the errors bad input gets."""

from __future__ import annotations

import numpy as np
import pytest

import irnet
from irnet.diagnostics import IrnError

TINY = """
from nn import dense, cross_entropy

model tiny(x: f32[N, 4]) -> f32[N, 3] {
    return dense(relu(dense(x, 8)), 3)
}

train tiny(y: i32[N]) {
    loss      = cross_entropy(tiny(x), y)
    optimizer = adam(lr=0.05)
    schedule  = constant()
    batch     = 16
    epochs    = 2
    metrics   = [accuracy]
    seed      = 3
}
"""

PLAIN = """
from nn import dense

model plain(x: f32[N, 2]) -> f32[N, 1] {
    return dense(x, 1)
}
"""


def blobs(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable clusters in 4-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    x = rng.normal(size=(n, 4)).astype(np.float32) + 3 * np.eye(4, dtype=np.float32)[y]
    return x, y


@pytest.fixture
def tiny() -> irnet.Model:
    return irnet.loads(TINY, name="tiny.irn", target="reference")


def test_a_model_lists_its_functions_with_their_signatures(tiny):
    assert list(tiny.functions) == [
        "tiny", "tiny.loss", "tiny.eval", "tiny.grad", "tiny.update", "tiny.step",
    ]  # fmt: skip
    model = tiny.functions["tiny"]
    assert str(model) == "tiny(x: f32[?, 4]) -> f32[?, 3]"
    assert model.arguments == {"x": "f32[?, 4]"}
    assert model.params == ("dense_0.w", "dense_0.b", "dense_1.w", "dense_1.b")
    assert tiny.functions["tiny.loss"].arguments == {"x": "f32[?, 4]", "y": "i32[?]"}
    assert tiny.functions["tiny.step"].optimizer_state[-1] == "t"
    assert tiny.functions["tiny.step"].state == ()


def test_a_compiled_function_takes_arrays_by_position_or_name_and_uses_the_parameters(tiny):
    x, y = blobs(5)
    p = tiny.params
    hidden = np.maximum(x @ p["dense_0.w"] + p["dense_0.b"], 0)
    expected = hidden @ p["dense_1.w"] + p["dense_1.b"]
    np.testing.assert_allclose(tiny(x), expected, rtol=1e-5, atol=1e-6)
    loss = tiny.compile("loss")
    assert loss(x, y) == loss(y=y, x=x) == tiny.compile("tiny.loss")(x, y=y)
    assert loss(x, y).shape == ()


def test_the_cpu_target_agrees_with_the_reference(tiny):
    x, y = blobs(7)
    on_cpu = tiny.compile("eval", target="cpu")(x, y)
    on_reference = tiny.compile("eval", target="reference")(x, y)
    for a, b in zip(on_cpu, on_reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradients_agree_with_finite_differences_in_float64():
    model = irnet.loads(TINY, name="tiny.irn", target="reference", float64=True)
    x, y = blobs(6)
    x = x.astype(np.float64)
    value, grads = model.grad(wrt=["dense_0.w", "x"])(x, y)
    assert set(grads) == {"dense_0.w", "x"} and grads["x"].shape == x.shape
    loss = model.compile("loss")
    assert value == pytest.approx(loss(x, y))
    eps = 1e-6
    for index in [(0, 0), (2, 5), (3, 7)]:
        w = model.params["dense_0.w"].copy()
        w[index] += eps
        model.params["dense_0.w"] = w
        up = loss(x, y)
        w[index] -= 2 * eps
        model.params["dense_0.w"] = w
        down = loss(x, y)
        w[index] += eps
        model.params["dense_0.w"] = w
        assert grads["dense_0.w"][index] == pytest.approx((up - down) / (2 * eps), rel=1e-5)
    shifted = x.copy()
    shifted[1, 2] += eps
    up = loss(shifted, y)
    shifted[1, 2] -= 2 * eps
    assert grads["x"][1, 2] == pytest.approx((up - loss(shifted, y)) / (2 * eps), rel=1e-5)


def test_the_ir_shows_each_stage(tiny):
    before = tiny.ir("tiny.grad", after="frontend")
    after = tiny.ir("tiny.grad", after="autodiff")
    assert "ad.value_and_grad" in before and "ad.value_and_grad" not in after
    assert "func.func @tiny.grad" in after and "func.func @tiny.step" not in after
    assert "loc(" in tiny.ir(after="frontend", locations=True)
    assert "@numba.njit" in tiny.ir("tiny", after="kernels", target="cpu") or "njit" in (
        tiny.ir(after="kernels")
    )
    with pytest.raises(IrnError, match="no such stage; the stages of --target cpu are"):
        tiny.ir(after="autodif")


def test_parameters_are_a_checked_mapping(tiny):
    params = tiny.params
    assert list(params) == ["dense_0.w", "dense_0.b", "dense_1.w", "dense_1.b"]
    assert "dense_0.w" in params and "nope" not in params
    with pytest.raises(ValueError, match="read-only"):
        params["dense_0.b"][0] = 1.0
    params["dense_0.b"] = np.arange(8)  # integers cast to the parameter's float32
    assert params["dense_0.b"].dtype == np.float32 and params["dense_0.b"][3] == 3.0
    with pytest.raises(IrnError, match=r"shape \[7\] to parameter 'dense_0.b' .* shape \[8\]"):
        params["dense_0.b"] = np.zeros(7)
    with pytest.raises(IrnError, match="cannot assign complex128 values"):
        params["dense_0.b"] = np.zeros(8, complex)
    with pytest.raises(KeyError, match="no parameter 'dense0.b'; did you mean dense_0.b"):
        params["dense0.b"]
    before = params.numpy()
    with pytest.raises(IrnError, match="dense_1.b"):
        params.update({"dense_0.w": np.ones((4, 8)), "dense_1.b": np.ones(4)})
    for name, value in params.numpy().items():  # a refused update changes nothing
        np.testing.assert_array_equal(value, before[name])
    with pytest.raises(IrnError, match="fixed by its program"):
        del params["dense_0.w"]


def test_a_checkpoint_loads_strictly_or_reports_what_does_not_fit(tiny, tmp_path):
    x, y = blobs()
    tiny.fit(x, y, epochs=1, verbose=False)
    tiny.save(tmp_path / "tiny.npz")
    other = irnet.loads(TINY, name="tiny.irn", target="reference")
    assert other.load(tmp_path / "tiny.npz").exact
    np.testing.assert_array_equal(other(x), tiny(x))
    wider = irnet.loads(TINY.replace("dense(x, 8)", "dense(x, 9)"), target="reference")
    saved = (tmp_path / "tiny.npz").read_bytes()
    with pytest.raises(IrnError, match="'dense_0.w' has shape"):
        wider.load(tmp_path / "tiny.npz")
    report = wider.load(tmp_path / "tiny.npz", strict=False)
    assert report.loaded == ["dense_1.b"]
    assert set(report.mismatched) == {"dense_0.w", "dense_0.b", "dense_1.w"}
    assert (tmp_path / "tiny.npz").read_bytes() == saved


def test_resuming_takes_the_optimizer_state_and_the_position(tiny, tmp_path):
    x, y = blobs()
    tiny.fit(x, y, epochs=1, verbose=False)
    tiny.save(tmp_path / "tiny.npz")
    tiny.fit(x, y, epochs=1, verbose=False)
    resumed = irnet.loads(TINY, name="tiny.irn", target="reference")
    resumed.load(tmp_path / "tiny.npz", resume=True)
    assert (resumed.epoch, resumed.step) == (1, 6)
    resumed.fit(x, y, epochs=1, verbose=False)
    for name, value in tiny.params.items():
        np.testing.assert_array_equal(resumed.params[name], value)


NORMED = """
from nn import batch_norm, dense, cross_entropy

model normed(x: f32[N, 2, 3, 3]) -> f32[N, 3] {
    return dense(reshape(batch_norm(x), [N, 18]), 3)
}

train normed(y: i32[N]) {
    loss      = cross_entropy(normed(x), y)
    optimizer = adam(lr=0.01)
    batch     = 8
    seed      = 1
}
"""


def test_state_is_trained_saved_loaded_and_resumed(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, (32, 2, 3, 3)).astype(np.float32)
    y = rng.integers(0, 3, 32).astype(np.int32)
    model = irnet.loads(NORMED, name="normed.irn", target="reference")
    assert list(model.state) == ["batch_norm_0.running_mean", "batch_norm_0.running_var"]
    assert model.functions["normed"].state == tuple(model.state)
    model.fit(x, y, epochs=1, verbose=False, validation_split=0.0)
    moved = model.state.numpy()
    assert not np.allclose(moved["batch_norm_0.running_mean"], 0.0)
    model.save(tmp_path / "normed.npz")
    model.fit(x, y, epochs=1, verbose=False, validation_split=0.0)

    weights = irnet.loads(NORMED, name="normed.irn", target="cpu")
    weights.load(tmp_path / "normed.npz")  # parameters and state; inference uses the state
    np.testing.assert_array_equal(weights.state["batch_norm_0.running_var"],
                                  moved["batch_norm_0.running_var"])  # fmt: skip
    assert weights.epoch == 0 and not weights.optimizer_state["t"]
    resumed = irnet.loads(NORMED, name="normed.irn", target="reference")
    resumed.load(tmp_path / "normed.npz", resume=True)
    resumed.fit(x, y, epochs=1, verbose=False, validation_split=0.0)
    for name, value in model.state.items():
        np.testing.assert_array_equal(resumed.state[name], value)

    wider = NORMED.replace("f32[N, 2, 3, 3]", "f32[N, 3, 3, 3]").replace("18]", "27]")
    other = irnet.loads(wider, name="wider.irn", target="reference")
    with pytest.raises(IrnError, match="state tensor 'batch_norm_0.running_var' has shape"):
        other.load(tmp_path / "normed.npz")


def test_fit_trains_with_validation_data_callbacks_and_a_history(tiny, tmp_path):
    x, y = blobs(128)
    seen: list[tuple] = []

    class Count(irnet.Callback):
        def on_batch_end(self, model, step, loss):
            seen.append(("batch", step))

        def on_epoch_end(self, model, record):
            seen.append(("epoch", record["epoch"]))

    before = tiny.evaluate(x, y)
    history = tiny.fit(
        x, y, epochs=3, batch=32, validation_split=0.25, verbose=False,
        callbacks=[Count(), irnet.ModelCheckpoint(tmp_path, keep_best=True)],
    )  # fmt: skip
    assert len(history) == 3 and len(history["val_loss"]) == 3
    assert seen.count(("epoch", 3)) == 1 and sum(k == "batch" for k, _ in seen) == 9
    assert history["val_accuracy"][-1] > 0.8
    assert tiny.evaluate(x, y)["loss"] < before["loss"] / 2
    assert {p.name for p in tmp_path.iterdir()} >= {"tiny-epoch3.npz", "tiny-last.npz"}
    assert tiny.predict(x[:5]).shape == (5, 3)


def test_early_stopping_ends_training(tiny):
    x, y = blobs()
    stop = irnet.EarlyStopping("train_loss", patience=1)
    tiny.params.update({n: np.zeros_like(v) for n, v in tiny.params.items()})  # a flat start
    history = tiny.fit(x, y, epochs=5, callbacks=[stop], verbose=False, shuffle=False,
                       batch=96)  # fmt: skip
    assert len(history) == 5 or stop.stop_message.startswith("stopping early")
    with pytest.raises(IrnError, match="monitor val_loss: the epoch log has no val_loss"):
        tiny.fit(x, y, epochs=1, callbacks=[irnet.EarlyStopping()], verbose=False)


def test_fit_takes_batches_from_any_iterable(tiny):
    x, y = blobs(64)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    history = tiny.fit(batches, epochs=2, verbose=False, validation_data=batches[:1])
    assert history["train_loss"][1] < history["train_loss"][0]
    assert tiny.step == 8
    with pytest.raises(IrnError, match="yielded no batch: an iterator is used up"):
        tiny.fit(iter(batches), epochs=2, verbose=False)


def test_a_train_step_lowers_the_loss(tiny):
    x, y = blobs(32)
    first = tiny.train_step(x, y)
    for _ in range(20):
        last = tiny.train_step(x, y, lr=0.05)
    assert last < first / 2 and tiny.step == 21


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m(np.zeros((2, 5), np.float32)),
         r"argument 0 `x` of @tiny has shape \[2, 5\], which does not fit its type f32\[\?, 4\]"),
        (lambda m: m(np.zeros((2, 4), complex)), "argument 0 `x` of @tiny is complex128"),
        (lambda m: m(z=np.zeros((2, 4))), r"@tiny has no argument 'z'; it has x"),
        (lambda m: m.compile("loss")(np.zeros((2, 4))), r"tiny.loss\(x, y\): missing y"),
        (lambda m: m.compile("lost"), "model tiny has no function 'lost'; did you mean"),
        (lambda m: m.grad(wrt="w"), "@tiny.loss has no parameter or argument 'w'"),
        (lambda m: m.train_step(np.zeros((2, 4))), "gives 0 target"),
    ],
)  # fmt: skip
def test_bad_calls_are_refused_naming_what_is_wrong(tiny, call, message):
    with pytest.raises(IrnError, match=message):
        call(tiny)


def test_load_refuses_unknown_settings_and_missing_pieces(tmp_path):
    with pytest.raises(IrnError, match="unknown train setting epoch; the settings are"):
        irnet.loads(TINY, epoch=3)
    plain = irnet.loads(PLAIN, target="reference")
    assert plain(np.ones((3, 2), np.float32)).shape == (3, 1)
    with pytest.raises(IrnError, match="has no train block for plain"):
        plain.fit(np.ones((3, 2)), np.ones((3, 1)))
    with pytest.raises(IrnError, match="has no train block for the settings epochs"):
        irnet.loads(PLAIN, epochs=3)
    with pytest.raises(IrnError, match="the program has no model 'tinny'; did you mean tiny"):
        irnet.loads(TINY, model="tinny")
    with pytest.raises(IrnError, match="missing.irn: No such file"):
        irnet.load(tmp_path / "missing.irn")
    plain.save(tmp_path / "plain.npz")
    assert irnet.loads(PLAIN).load(tmp_path / "plain.npz").exact


def test_load_data_reads_a_train_block_source():
    x, y = irnet.load_data("csv", "data/diabetes/diabetes_data_raw.csv.gz",
                           target="data/diabetes/diabetes_target.csv.gz")  # fmt: skip
    assert x.shape == (442, 10) and y.shape[0] == 442


def test_on_the_cuda_target_the_parameters_read_back_from_the_device():
    """In Numba's CUDA simulator (tests/conftest.py): a step leaves device arrays behind,
    which `params` reads as NumPy, and the functions agree with the reference."""
    x, y = blobs(8)
    on_device = irnet.loads(TINY, name="tiny.irn", target="cuda")
    on_reference = irnet.loads(TINY, name="tiny.irn", target="reference")
    for model in (on_device, on_reference):
        model.train_step(x, y)
    assert not isinstance(on_device.trainer.params["dense_0.w"], np.ndarray)
    for name, value in on_reference.params.items():
        np.testing.assert_allclose(on_device.params[name], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(on_device(x), on_reference(x), rtol=1e-5, atol=1e-6)
