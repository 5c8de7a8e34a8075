"""Parameter initialisers: the names a `param` may use, their keyword arguments, and how each
draws its values. The frontend checks a `param`'s initialiser against `INITIALIZERS`; the
runtime calls `initialize` with a seeded NumPy generator.

Fan-in and fan-out follow PyTorch: for a `[I, O]` dense weight they are I and O; for an OIHW
convolution weight they are I*kh*kw and O*kh*kw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

Draw = Callable[[np.random.Generator, tuple[int, ...], Mapping[str, float]], np.ndarray]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    if len(shape) == 2:
        return shape[0], shape[1]
    return shape[1] * receptive, shape[0] * receptive


def _glorot_uniform(rng, shape, kw):
    fan_in, fan_out = fans(shape)
    limit = kw["gain"] * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def _glorot_normal(rng, shape, kw):
    fan_in, fan_out = fans(shape)
    return rng.normal(0.0, kw["gain"] * math.sqrt(2.0 / (fan_in + fan_out)), shape)


def _he_uniform(rng, shape, kw):
    limit = kw["gain"] * math.sqrt(6.0 / fans(shape)[0])
    return rng.uniform(-limit, limit, shape)


def _he_normal(rng, shape, kw):
    return rng.normal(0.0, kw["gain"] * math.sqrt(2.0 / fans(shape)[0]), shape)


INITIALIZERS: dict[str, tuple[dict[str, float | None], Draw]] = {
    "zeros": ({}, lambda rng, shape, kw: np.zeros(shape)),
    "ones": ({}, lambda rng, shape, kw: np.ones(shape)),
    "constant": ({"value": None}, lambda rng, shape, kw: np.full(shape, kw["value"])),
    "normal": (
        {"mean": 0.0, "std": 1.0},
        lambda rng, shape, kw: rng.normal(kw["mean"], kw["std"], shape),
    ),
    "uniform": (
        {"low": -1.0, "high": 1.0},
        lambda rng, shape, kw: rng.uniform(kw["low"], kw["high"], shape),
    ),
    "glorot_uniform": ({"gain": 1.0}, _glorot_uniform),
    "glorot_normal": ({"gain": 1.0}, _glorot_normal),
    "xavier_uniform": ({"gain": 1.0}, _glorot_uniform),
    "xavier_normal": ({"gain": 1.0}, _glorot_normal),
    "he_uniform": ({"gain": 1.0}, _he_uniform),
    "he_normal": ({"gain": 1.0}, _he_normal),
    "kaiming_uniform": ({"gain": 1.0}, _he_uniform),
    "kaiming_normal": ({"gain": 1.0}, _he_normal),
}
"""name -> (keyword arguments with defaults, None meaning required; the draw function)."""


def complete_arguments(name: str, given: Mapping[str, float]) -> dict[str, float]:
    """The keyword arguments of initialiser `name` with defaults filled in; raises ValueError."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initialiser '{name}'; known: {', '.join(INITIALIZERS)}")
    defaults = INITIALIZERS[name][0]
    unknown = set(given) - set(defaults)
    if unknown:
        expected = ", ".join(defaults) or "no arguments"
        raise ValueError(
            f"initialiser '{name}' has no argument '{sorted(unknown)[0]}' (it takes {expected})"
        )
    missing = [k for k, v in defaults.items() if v is None and k not in given]
    if missing:
        raise ValueError(f"initialiser '{name}' needs the argument '{missing[0]}'")
    return {**defaults, **given}  # type: ignore[dict-item]


def initialize(
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    rng: np.random.Generator,
    arguments: Mapping[str, float] | None = None,
) -> np.ndarray:
    kw = complete_arguments(name, arguments or {})
    return INITIALIZERS[name][1](rng, shape, kw).astype(dtype)
