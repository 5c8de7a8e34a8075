"""`irnet gradcheck`: the autodiff pass's gradients against central finite differences, in
float64 on the reference target, per parameter.

For each checked function (every train block's loss, or one named function returning a float
scalar) a derivative request is added to the IR and expanded by the same `autodiff` pass that
training uses; inputs are random with a small batch, integer inputs stay within the sizes of
the tables and classes they index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from irnet.dialects import nn
from irnet.dialects.dtypes import numpy_dtype

from . import driver, reference
from .diagnostics import IrnError
from .functions import add_gradient
from .params import Argument, arguments, find_function, initial_parameters


@dataclass(frozen=True)
class Row:
    function: str
    name: str
    checked: int
    max_abs: float
    max_rel: float
    passed: bool


def checked_functions(module: ModuleOp, name: str | None) -> list[func.FuncOp]:
    if name is not None:
        return [find_function(module, name)]
    losses = [
        f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data.endswith(".loss")
    ]
    if not losses:
        raise IrnError("no train block to check; name a function with --function")
    return losses


def add_request(module: ModuleOp, function: func.FuncOp) -> tuple[str, list[int]]:
    """A public function returning the value and gradients of `function`, wrt its parameters
    (or, without parameters, wrt its float arguments). Results after the first (the next
    values of the model's state) are not differentiated."""
    outputs = function.function_type.outputs.data
    if not outputs or outputs[0].get_num_dims() != 0 or not nn.is_float(outputs[0]):
        raise IrnError(
            f"gradcheck needs a function returning a float scalar; "
            f"{function.sym_name.data} does not"
        )
    args = arguments(function)
    wrt = [i for i, a in enumerate(args) if a.kind == "param"] or [
        i for i, a in enumerate(args) if nn.is_float(a.type)
    ]
    return add_gradient(module, function, wrt, f"{function.sym_name.data}.gradcheck"), wrt


def integer_bound(function: func.FuncOp, index: int) -> int:
    """The exclusive upper bound for random values of an integer argument: the smallest table
    or class count that the argument indexes (2 when it indexes nothing)."""
    bounds = []
    for use in function.args[index].uses:
        op = use.operation
        if isinstance(op, nn.GatherOp) and use.index == 1:
            bounds.append(op.input.type.get_shape()[nn.get_int(op.properties, "axis")])
        elif isinstance(op, nn.OneHotOp):
            bounds.append(nn.get_int(op.properties, "num_classes"))
    return max(1, min((b for b in bounds if b > 0), default=2))


def random_arguments(function: func.FuncOp, args: list[Argument], seed: int, batch: int) -> list:
    """Inputs drawn at random; parameters from their initialisers, perturbed so that zeros and
    ones (biases, variances) are not special points."""
    rng = np.random.default_rng(seed)
    params = initial_parameters(function, seed)
    values = []
    for i, arg in enumerate(args):
        shape = arg.concrete_shape(batch)
        dtype = numpy_dtype(arg.type)
        if arg.kind == "param":
            noise = rng.normal(0.0, 0.05, shape)
            values.append(params[arg.name].astype(np.float64) + noise)
        elif np.issubdtype(dtype, np.floating):
            values.append(rng.normal(0.0, 0.7, shape).astype(np.float64))
        elif dtype == np.bool_:
            values.append(rng.random(shape) < 0.5)
        else:
            values.append(rng.integers(0, integer_bound(function, i), shape).astype(dtype))
    return values


def check_function(
    module: ModuleOp,
    function: func.FuncOp,
    *,
    seed: int,
    batch: int,
    samples: int,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> list[Row]:
    name = function.sym_name.data
    function.sym_visibility = None  # finite differences call it after autodiff has run
    request, wrt = add_request(module, function)
    driver.run_passes(module, "autodiff")
    args = arguments(function)
    values = random_arguments(function, args, seed, batch)
    rng = np.random.default_rng(seed + 1)

    def loss(vals) -> float:
        out = reference.run(module, name, vals, training=True, seed=seed, float_dtype=np.float64)
        return float(out[0])

    results = reference.run(
        module, request, values, training=True, seed=seed, float_dtype=np.float64
    )
    grads = results[len(results) - len(wrt) :]
    rows = []
    for index, grad in zip(wrt, grads):
        flat = values[index].reshape(-1)
        picks = rng.permutation(flat.size)[:samples]
        numeric = np.empty(len(picks))
        for k, j in enumerate(picks):
            saved = flat[j]
            flat[j] = saved + eps
            up = loss(values)
            flat[j] = saved - eps
            down = loss(values)
            flat[j] = saved
            numeric[k] = (up - down) / (2 * eps)
        analytic = np.asarray(grad, dtype=np.float64).reshape(-1)[picks]
        err = np.abs(analytic - numeric)
        rel = err / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-12)
        passed = bool(np.all(err <= atol + rtol * np.abs(numeric)))
        rows.append(
            Row(
                name,
                args[index].name,
                len(picks),
                float(err.max(initial=0.0)),
                float(rel.max(initial=0.0)),
                passed,
            )
        )
    return rows


def gradcheck(
    path: str, function: str | None = None, *, seed: int = 0, batch: int = 3, samples: int = 24
) -> list[Row]:
    module = driver.load(path).module
    driver.run_passes(module, "inline-functions")
    rows = []
    for target in checked_functions(module, function):
        rows += check_function(module, target, seed=seed, batch=batch, samples=samples)
    return rows


def format_rows(rows: list[Row]) -> str:
    header = ("function", "argument", "checked", "max abs err", "max rel err", "")
    cells = [
        (
            r.function,
            r.name,
            str(r.checked),
            f"{r.max_abs:.2e}",
            f"{r.max_rel:.2e}",
            "ok" if r.passed else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *cells]
    ]
    failed = sum(not r.passed for r in rows)
    lines.append(f"{len(rows) - failed}/{len(rows)} gradients match finite differences")
    return "\n".join(lines)
