"""Training without targets: `train m { loss = ... }` with a loss over the inputs and outputs
only (an autoencoder), on data without targets or with labels it ignores."""

from __future__ import annotations

import numpy as np
import pytest

from irnet import train
from irnet.diagnostics import IrnError
from irnet.model import open_session

AUTOENCODER = """from nn import dense, mse

model ae(x: f32[N, 6]) -> f32[N, 6] {
    return dense(relu(dense(x, 3)), 6)
}

train ae {
    data      = DATA
    loss      = mse(ae(x), x)
    optimizer = adam(lr=0.02)
    epochs    = 5
    val_split = 0.25
}
"""


def write(tmp_path, data: str, **arrays) -> str:
    np.savez(tmp_path / "ae.npz", **arrays)
    path = tmp_path / "ae.irn"
    path.write_text(AUTOENCODER.replace("DATA", data))
    return str(path)


@pytest.mark.parametrize(
    "data",
    ['npz("ae.npz", x="x", y=[])', 'npz("ae.npz", x="x", y="labels")'],
    ids=["none", "ignored"],
)
def test_an_autoencoder_trains_without_targets(tmp_path, data):
    x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    path = write(tmp_path, data, x=x, labels=np.arange(64))
    session = open_session(path)
    assert session.role("target") == []
    train.train(session, train.TrainOptions())
    losses = [r["train_loss"] for r in session.history]
    assert losses[-1] < losses[0] and "val_loss" in session.history[-1]


def test_an_archive_without_targets_says_how_to_train_without_them(tmp_path):
    path = write(tmp_path, 'npz("ae.npz", x="x")', x=np.zeros((8, 6), np.float32))
    session = open_session(path)
    with pytest.raises(IrnError, match=r"has no array 'y'.*without targets takes y=\[\]"):
        train.train(session, train.TrainOptions())
