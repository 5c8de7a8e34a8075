"""examples/cartpole_reinforce.py, REINFORCE on CartPole-v1, at a small size: it runs, learns
(its parameters move), repeats exactly at a fixed seed, and its checkpoint loads back."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from conftest import ROOT

import irnet

pytest.importorskip("gymnasium")


def example():
    path = ROOT / "examples" / "cartpole_reinforce.py"
    spec = importlib.util.spec_from_file_location("cartpole_reinforce", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_discounted_returns_are_normalised():
    g = example().discounted_returns([1.0, 1.0, 1.0], gamma=0.5)  # 1.75, 1.5, 1.0
    expected = np.array([1.75, 1.5, 1.0])
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(g, expected, rtol=1e-5)
    assert g.dtype == np.float32


def test_solved_at_is_the_first_window_reaching_195():
    cartpole = example()
    assert cartpole.solved_at([100.0] * 150) is None
    # the window of episodes 66 to 165 holds 65 returns of 300 and 35 of 0: a mean of 195
    assert cartpole.solved_at([0.0] * 100 + [300.0] * 100) == 165
    assert cartpole.solved_at([500.0] * 99) is None  # fewer than 100 episodes


def test_a_short_run_trains_repeats_and_saves(tmp_path, capsys):
    cartpole = example()
    initial = irnet.load(cartpole.POLICY, seed=3).params.numpy()
    checkpoint = tmp_path / "policy.npz"
    argv = ["--episodes", "20", "--seed", "3", "--target", "reference", "--save", str(checkpoint)]
    assert cartpole.main(argv) == 0
    out = capsys.readouterr().out
    mean = float(re.search(r"mean return over the last 100 episodes: (\S+)", out).group(1))
    assert 8 <= mean <= 500  # CartPole episodes last 8 to 500 steps, a reward of 1 each
    assert "not solved" in out and "20 episodes in" in out

    model, returns = cartpole.train(20, seed=3, target="reference", log_every=0)
    assert len(returns) == 20 and all(8 <= r <= 500 and r == int(r) for r in returns)
    assert np.mean(returns) == pytest.approx(mean, abs=0.05)  # the same run as main's
    again = cartpole.train(20, seed=3, target="reference", log_every=0)[1]
    assert again == returns
    assert cartpole.train(20, seed=4, target="reference", log_every=0)[1] != returns

    trained = model.params.numpy()
    for name, value in initial.items():
        assert np.all(np.isfinite(trained[name]))
        assert not np.array_equal(trained[name], value), name
    fresh = irnet.load(cartpole.POLICY, seed=3, target="reference")
    fresh.load(checkpoint)
    for name, value in trained.items():
        np.testing.assert_array_equal(fresh.params[name], value)
