"""`--f64` is a float64 computation: the frontend builds every `f32` of the program as `f64`, so
literals keep their decimal value and every constant the optimiser adds is float64 (the run-time
`float_dtype` override of the reference alone read literals already rounded to float32)."""

from __future__ import annotations

import re

import numpy as np

from irnet import driver, reference, train
from irnet.model import open_session

LITERAL = """model m(x: f32[N, 2]) -> f32[N, 2] {
    return x * 0.1
}
"""


def test_literals_keep_their_decimal_value(tmp_path):
    x = np.ones((1, 2))
    exact = driver.compile_source(LITERAL, "m.irn", float64=True).module
    (out,) = reference.run(exact, "m", [x])
    assert out.dtype == np.float64 and out[0, 0] == 0.1
    # The defect: the float64 override of an f32 program multiplies by 0.10000000149.
    rounded = driver.compile_source(LITERAL, "m.irn").module
    (old,) = reference.run(rounded, "m", [x], float_dtype=np.float64)
    assert old[0, 0] == float(np.float32(0.1)) != 0.1


TINY = """from nn import dense, mse

model tiny(x: f32[N, 3]) -> f32[N, 1] {
    return dense(x, 1)
}

train tiny(y: f32[N, 1]) {
    data      = npz("tiny.npz", x="x", y="y")
    loss      = mse(tiny(x), y)
    optimizer = adam(lr=0.01)
    schedule  = cosine()
    batch     = 8
    epochs    = 2
}
"""


def test_a_float64_training_step_has_no_float32_in_it(tmp_path):
    path = tmp_path / "tiny.irn"
    path.write_text(TINY)
    compiled = driver.load(path, float64=True)
    driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
    text = str(compiled.module)
    assert not re.search(r"xf32>|<f32>", text)  # Adam's constants, the step count, lr: all f64
    assert "tensor<f64>" in text


def test_train_f64_runs_the_float64_program(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3))
    np.savez(tmp_path / "tiny.npz", x=x, y=x @ np.array([[0.5], [-1.0], [2.0]]))
    path = tmp_path / "tiny.irn"
    path.write_text(TINY)
    session = open_session(str(path), float64=True)
    assert all(v.dtype == np.float64 for v in session.params.values())
    train.train(session, train.TrainOptions())
    assert session.history[-1]["train_loss"] < session.history[0]["train_loss"]
