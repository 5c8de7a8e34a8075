"""`irnet run`: compile a file, bind its function's inputs from .npy/.npz files and its
parameters from their initialisers (or a checkpoint that fits), evaluate on the reference, cpu
or cuda target, print or save."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from xdsl.dialects import func

from . import checkpoint as ckpt
from . import driver
from .diagnostics import IrnError
from .params import arguments, find_function, initial_parameters
from .targets import make_runner


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


def default_function(module) -> func.FuncOp:
    public = [f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_visibility is None]
    if not public:
        raise IrnError("this file defines no model to run")
    return public[0]


def run_file(args: argparse.Namespace) -> None:
    module = driver.load(args.file, float64=args.f64).module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    function = find_function(module, args.function) if args.function else default_function(module)
    name = function.sym_name.data
    given = input_arrays(args.input)
    params = (
        checkpoint_parameters(Path(args.checkpoint), function)
        if args.checkpoint
        else initial_parameters(function, args.seed)
    )
    values = []
    for arg in arguments(function):
        if arg.kind == "param":
            values.append(params[arg.name])
        elif arg.name in given:
            values.append(given.pop(arg.name))
        else:
            raise IrnError(
                f"{name} needs the {arg.kind} '{arg.name}' (give -i {arg.name}=FILE.npy)"
            )
    if given:
        raise IrnError(f"{name} has no input named {', '.join(sorted(given))}")
    runner = make_runner(module, args.target, source_name=args.file)
    results = runner.run(name, values, training=args.training, seed=args.seed)
    outputs = tuple(runner.to_host(r) for r in results)
    if args.output:
        save(Path(args.output), outputs)
    else:
        for i, out in enumerate(outputs):
            label = f"result {i}: " if len(outputs) > 1 else ""
            print(f"{label}{out.dtype}{list(out.shape)}\n{np.array2string(out, threshold=200)}")


def checkpoint_parameters(path: Path, function: func.FuncOp) -> dict[str, np.ndarray]:
    """The parameters of the checkpoint at `path`, refused unless they fit `function`'s."""
    loaded = ckpt.load(path)
    expected = ckpt.table_of(arguments(function), "param")
    ckpt.check_fits(loaded, path, model=function.sym_name.data, params=expected)
    return loaded.params


def save(path: Path, outputs: tuple[np.ndarray, ...]) -> None:
    if path.suffix == ".npz":
        np.savez(path, *outputs)
    elif len(outputs) == 1:
        np.save(path, outputs[0])
    else:
        raise IrnError(f"{path}: {len(outputs)} results need an .npz file")
