"""examples/audio: the committed clips are what make_tones.py makes from its seed, and
tones.irn learns them (five epochs, far above the 20 % of chance)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import numpy as np
from conftest import ROOT

import irnet

FOLDER = ROOT / "examples" / "audio"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tones", FOLDER / "make_tones.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_clips_are_the_generators():
    make_tones = generator()
    rng = np.random.default_rng(make_tones.SEED)
    for part, count in make_tones.SIZES.items():
        x, y = make_tones.make(count, rng)
        with np.load(FOLDER / f"tones-{part}.npz") as committed:
            np.testing.assert_array_equal(committed["x"], x)
            np.testing.assert_array_equal(committed["y"], y)
    assert sorted(np.unique(y)) == list(range(len(make_tones.CLASSES)))


def test_tones_learns_the_clips():
    model = irnet.load(FOLDER / "tones.irn", target="cpu", epochs=5)
    history = model.fit(verbose=False)
    assert history["val_accuracy"][-1] > 0.6
    with np.load(FOLDER / "tones-test.npz") as test:
        scores = model.evaluate(test["x"], test["y"])
    assert scores["accuracy"] > 0.6
