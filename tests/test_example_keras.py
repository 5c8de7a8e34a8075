"""examples/keras_style.py at a small size: 2,000 training images, one epoch, as a command. The
accuracy it prints is far above chance, and the checkpoint it saves loads back into the
script's model and predicts what the script measured."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import ROOT, subprocess_env

SCRIPT = ROOT / "examples" / "keras_style.py"


def example_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keras_style", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keras_style_small(tmp_path: Path) -> None:
    saved = tmp_path / "mnist_model.npz"
    # from another folder: the script finds the data beside itself, not in the current folder
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--limit", "2000", "--epochs", "1", "--save", str(saved)],
        cwd=tmp_path,
        env=subprocess_env(),  # IRNET_TARGET=reference, as conftest sets it
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "training mnist_dense: 1,800 examples, batch 32, 1 epoch" in result.stdout
    found = re.search(r"^test accuracy (\d\.\d+)$", result.stdout, re.MULTILINE)
    assert found, result.stdout
    accuracy = float(found.group(1))
    assert accuracy > 0.7, result.stdout  # chance is 0.1

    assert saved.is_file()
    example = example_module()
    model = example.build_model(target="reference")
    report = model.load(saved)  # strict: exactly the model's parameters
    assert sorted(report.loaded) == sorted(model.params)
    x_test, y_test = example.mnist("test")
    predicted = model.predict(x_test).argmax(axis=1)
    assert np.mean(predicted == y_test) == pytest.approx(accuracy, abs=5e-5)
