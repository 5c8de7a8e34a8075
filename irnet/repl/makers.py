"""The REPL builtins: `zeros`, `randn`, `tensor`, `load`, ... make concrete tensors in NumPy
(the language's `zeros` and `ones` build ops, which these shadow at the prompt); at the prompt
each becomes an argument of `@__repl__`, its value beside it. Random ones draw from the
session's seeded generator."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from irnet import ast
from irnet.diagnostics import IrnError
from irnet.dialects.dtypes import BY_NAME, BY_NUMPY, DTYPES, NAMES
from irnet.function_builder import DTypeValue, FunctionBuilder, describe
from irnet.runner import load_array_file

from .prompt import PromptBuilder

MAX_ELEMENTS = 2**27
"""The largest tensor a REPL builtin makes (512 MiB of f32): a typo must not exhaust memory."""


def as_irn_array(value: Any) -> np.ndarray:
    """An array of a dtype `.irn` has: other floats become f32, other integers i32 or i64."""
    array = np.asarray(value)
    if array.dtype in BY_NUMPY:
        return array
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind in "iu":
        small = array.dtype.itemsize < 4 or array.dtype == np.int32
        return array.astype(np.int32 if small else np.int64)
    raise IrnError(f"arrays of {array.dtype} have no .irn dtype ({', '.join(NAMES)})")


@dataclass(frozen=True)
class Maker:
    """A REPL builtin: its usage and summary for `:help`, the keywords it takes, and the NumPy
    function that makes its tensor."""

    name: str
    usage: str
    summary: str
    keywords: tuple[str, ...]
    make: Callable[..., np.ndarray]

    def __call__(self, fb: FunctionBuilder, loc: ast.Loc, args: list, keywords: list) -> Any:
        """Called by the frontend as its builtins are: the tensor, as an argument of
        `@__repl__`."""
        if not isinstance(fb, PromptBuilder):
            raise IrnError(f"{self.name}() makes a tensor at the prompt only, not in a def", loc)
        options = {}
        for name, value, kw_loc in keywords:
            if name not in self.keywords:
                known = f" (it takes {', '.join(self.keywords)})" if self.keywords else ""
                raise IrnError(f"{self.name}() has no parameter '{name}'{known}", kw_loc)
            options[name] = value
        return fb.input(self.name, as_irn_array(self.make(fb.rng, loc, *args, **options)), loc)


MAKERS: dict[str, Maker] = {}


def maker(usage: str, summary: str, *keywords: str) -> Callable:
    """Register a NumPy function `make(rng, loc, *args, **keywords)` as the REPL builtin its
    usage names."""

    def register(make: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        name = usage.split("(")[0]
        MAKERS[name] = Maker(name, usage, summary, keywords, make)
        return make

    return register


def _shape(name: str, loc: ast.Loc, dims: tuple) -> tuple[int, ...]:
    """The shape a builtin is asked for, as `zeros(2, 3)` or `zeros([2, 3])`."""
    if len(dims) == 1 and isinstance(dims[0], list):
        dims = tuple(dims[0])
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise IrnError(f"{name}(): a size is a non-negative integer, got {describe(d)}", loc)
    if np.prod(dims, dtype=np.float64) > MAX_ELEMENTS:
        raise IrnError(f"{name}(): {list(dims)} is too large for the REPL", loc)
    return dims


def _dtype(name: str, loc: ast.Loc, dtype: Any, kinds: str = "fib") -> np.dtype:
    """The NumPy dtype of a `dtype=` argument, which must be of one of `kinds` (NumPy's)."""
    if not isinstance(dtype, DTypeValue) or BY_NAME[dtype.name].numpy.kind not in kinds:
        allowed = [d.name for d in DTYPES if d.numpy.kind in kinds]
        raise IrnError(f"{name}(): dtype must be one of {', '.join(allowed)}", loc)
    return BY_NAME[dtype.name].numpy


F32 = DTypeValue("f32")
I32 = DTypeValue("i32")


@maker("zeros(*shape, dtype=f32)", "a tensor of zeros", "dtype")
def _zeros(rng, loc, *dims, dtype=F32):
    return np.zeros(_shape("zeros", loc, dims), _dtype("zeros", loc, dtype))


@maker("ones(*shape, dtype=f32)", "a tensor of ones", "dtype")
def _ones(rng, loc, *dims, dtype=F32):
    return np.ones(_shape("ones", loc, dims), _dtype("ones", loc, dtype))


@maker(
    "randn(*shape, dtype=f32)", "normal(0, 1) samples, from the session's seeded stream", "dtype"
)
def _randn(rng, loc, *dims, dtype=F32):
    dtype = _dtype("randn", loc, dtype, "f")
    return rng.standard_normal(_shape("randn", loc, dims)).astype(dtype)


@maker("rand(*shape, dtype=f32)", "uniform samples in [0, 1)", "dtype")
def _rand(rng, loc, *dims, dtype=F32):
    return rng.random(_shape("rand", loc, dims)).astype(_dtype("rand", loc, dtype, "f"))


@maker("randint(*shape, high=, dtype=i32)", "integers in [0, high)", "high", "dtype")
def _randint(rng, loc, *dims, high=None, dtype=I32):
    if isinstance(high, bool) or not isinstance(high, int) or high < 1:
        raise IrnError("randint() needs high=, a positive integer: randint(8, high=10)", loc)
    dtype = _dtype("randint", loc, dtype, "i")
    return rng.integers(0, high, _shape("randint", loc, dims)).astype(dtype)


@maker("arange(start=0, stop, step=1, dtype=?)", "evenly spaced values (i32 for integers)", "dtype")
def _arange(rng, loc, *bounds, dtype=None):
    numbers = all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    if not numbers or not 1 <= len(bounds) <= 3 or (len(bounds) == 3 and bounds[2] == 0):
        raise IrnError("arange() takes one to three numbers: arange(5), arange(0, 1, 0.25)", loc)
    start, stop, step = {1: (0, *bounds, 1), 2: (*bounds, 1), 3: bounds}[len(bounds)]
    if math.ceil((stop - start) / step) > MAX_ELEMENTS:
        raise IrnError(f"arange(): {list(bounds)} is too large for the REPL", loc)
    integral = all(isinstance(b, int) for b in bounds)
    default = np.int32 if integral else np.float32
    return np.arange(start, stop, step).astype(
        default if dtype is None else _dtype("arange", loc, dtype)
    )


@maker("tensor(values, dtype=?)", "a tensor from a (nested) list literal", "dtype")
def _tensor(rng, loc, values, dtype=None):
    def check(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                check(item)
        elif not isinstance(v, int | float):
            raise IrnError(f"tensor() takes numbers and lists of them, got {describe(v)}", loc)

    check(values)
    try:
        array = np.array(values)
    except ValueError:
        array = None
    if array is None or array.dtype.kind not in "fib":
        raise IrnError("tensor(): the nested lists are ragged", loc)
    if dtype is not None:
        return array.astype(_dtype("tensor", loc, dtype))
    if array.dtype.kind == "i":  # integer literals are i32 in .irn, unless they do not fit
        return array.astype(np.int32 if np.all(np.abs(array) < 2**31) else np.int64)
    return array.astype(np.float32) if array.dtype.kind == "f" else array


@maker('load("file.npy", name=?)', "an array from .npy, or .npz with name=", "name")
def _load(rng, loc, path, name=None):
    if not isinstance(path, str):
        raise IrnError('load() takes a file name: load("x.npy")', loc)
    loaded = load_array_file(path)
    if isinstance(loaded, dict):
        if name not in loaded:
            raise IrnError(f"{path} holds {', '.join(loaded)}; pick one with name=", loc)
        return loaded[name]
    return loaded
