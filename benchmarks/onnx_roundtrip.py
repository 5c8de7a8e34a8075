"""Every example through ONNX and back, on real data, measured: what `irnet export` writes, run
by ONNX Runtime, against `irnet predict`; and what `irnet import` makes of that file, run by
irnet, against ONNX Runtime.

    .venv/bin/python benchmarks/onnx_roundtrip.py [--checkpoint-dir checkpoints] [--rows 2000]

Each example takes its trained checkpoint `CHECKPOINT_DIR/MODEL-last.npz` where there is one
(`irnet train examples/MODEL.irn` writes it), else its initial parameters (said in the table).
Inputs are the first `--rows` examples of the train block's test data (else its training
data; random observations for the CartPole policy, which has no data). Differences are the
largest absolute difference over all outputs relative to the largest output magnitude, and,
for models with several outputs per row, the share of rows whose largest output (the
predicted class) is the same.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

import irnet
from irnet.onnx_import import import_onnx
from irnet.train import block_part

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.irn")) + sorted((ROOT / "examples").glob("*/*.irn"))


def inputs(model: irnet.Model, rows: int) -> tuple[np.ndarray, str]:
    """The model's inputs from its own data, as `irnet predict` takes them (unnormalised), and
    where they came from."""
    if model.config is None or model.config.data is None:
        return np.random.default_rng(0).normal(size=(rows, 4)).astype(np.float32), "random"
    for part in ("test", "train"):
        try:
            dataset = block_part(model.trainer, part)
        except irnet.Error:
            continue
        (x,) = model.trainer.fit([dataset.inputs[0][:rows]], "input", dataset.source)
        stats = dataset.feature_stats  # csv(normalize=true): back to the file's values
        return (x if stats is None else (x * stats.std + stats.mean).astype(x.dtype)), part
    raise SystemExit(f"{model.name}: no data")


def difference(a: np.ndarray, b: np.ndarray) -> str:
    """The largest difference relative to the largest magnitude, and for several outputs per
    row the share of rows with the same largest one."""
    scale = max(float(np.abs(b).max()), 1e-30)
    text = f"{np.abs(a - b).max() / scale:.1e}"
    if a.ndim == 2 and a.shape[1] > 1:
        text += f", {100 * np.mean(a.argmax(-1) == b.argmax(-1)):.2f} % same argmax"
    return text


def round_trip(example: Path, checkpoints: Path, rows: int, folder: Path) -> list[str]:
    model = irnet.load(example)
    checkpoint = checkpoints / f"{model.name}-last.npz"
    trained = checkpoint.exists()
    if trained:
        model.load(checkpoint)
    x, part = inputs(model, rows)
    predicted = model.predict(x)
    model.export(folder / f"{model.name}.onnx")
    session = ort.InferenceSession(str(folder / f"{model.name}.onnx"))
    name = next(iter(model.functions[model.name].arguments))
    (by_onnx,) = session.run(None, {name: x})
    return [
        f"{example.relative_to(ROOT)}",
        "trained" if trained else "initial",
        f"{len(x)} {part}",
        difference(by_onnx, predicted),
        imported_difference(folder / f"{model.name}.onnx", model.name, x, by_onnx),
    ]


def imported_difference(path: Path, name: str, x: np.ndarray, by_onnx: np.ndarray) -> str:
    """`difference` of the imported model's output from ONNX Runtime's, or why the importer
    refused the file."""
    try:
        imported = import_onnx(path)
    except irnet.Error as e:
        return "not imported: " + str(e).split(": ", 2)[-1].split(";")[0]
    again = irnet.loads(imported.text, name=f"{name}-imported.irn")
    again.params.update(imported.weights)
    again.state.update(imported.state)
    return difference(again(x), by_onnx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"))
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    header = ["example", "weights", "inputs", "ONNX Runtime vs irnet predict",
              "irnet import, then run, vs ONNX Runtime"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    with tempfile.TemporaryDirectory() as folder:
        for example in EXAMPLES:
            row = round_trip(example, args.checkpoint_dir, args.rows, Path(folder))
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
