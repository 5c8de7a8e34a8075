"""`irnet run`: compile a file, bind its function's inputs from .npy/.npz files and its
parameters from their initialisers (or a checkpoint that fits), evaluate on the reference, cpu
or cuda target, print or save."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .diagnostics import IrnError
from .model import Model


def load_array_file(path: str) -> dict[str, np.ndarray] | np.ndarray:
    """An .npy array, or an .npz archive's arrays by name; never unpickles."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise IrnError(f"input file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise IrnError(f"cannot read {path} as .npy/.npz: {e}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    return loaded


def input_arrays(specs: list[str]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep:
            value = load_array_file(path)
            if isinstance(value, dict):
                raise IrnError(f"{path}: give one array (.npy) for input '{name}'")
            arrays[name] = value
        else:
            value = load_array_file(spec)
            if not isinstance(value, dict):
                raise IrnError(f"{spec}: name the input it holds, as NAME={spec}")
            arrays.update(value)
    return arrays


def run_file(args: argparse.Namespace) -> None:
    model = Model.open(args.file, model=model_of(args.function), target=args.target,
                       float64=args.f64, seed=args.seed)  # fmt: skip
    if args.checkpoint:
        model.load(args.checkpoint)
    function = model.compile(args.function, training=args.training)
    given = input_arrays(args.input)
    names = list(function.signature.arguments)
    missing = [n for n in names if n not in given]
    if missing:
        raise IrnError(
            f"{function.name} needs the input '{missing[0]}' (give -i {missing[0]}=FILE.npy)"
        )
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise IrnError(f"{function.name} has no input named {', '.join(unknown)}")
    result = function(**given)
    outputs = result if isinstance(result, tuple) else (result,)
    if args.output:
        save(Path(args.output), outputs)
    else:
        for i, out in enumerate(outputs):
            label = f"result {i}: " if len(outputs) > 1 else ""
            print(f"{label}{out.dtype}{list(out.shape)}\n{np.array2string(out, threshold=200)}")


def model_of(function: str | None) -> str | None:
    """The model a function belongs to: `m` for `m` and for a train function `m.loss`."""
    return function.split(".")[0] if function else None


def save(path: Path, outputs: tuple[np.ndarray, ...]) -> None:
    if path.suffix == ".npz":
        np.savez(path, *outputs)
    elif len(outputs) == 1:
        np.save(path, outputs[0])
    else:
        raise IrnError(f"{path}: {len(outputs)} results need an .npz file")
