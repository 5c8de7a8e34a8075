"""The dtypes of irnet, in one table: each one's `.irn` name, IR element type and NumPy dtype.

    f32  <-> f32 <-> float32        i32  <-> i32 <-> int32        bool <-> i1 <-> bool
    f64  <-> f64 <-> float64        i64  <-> i64 <-> int64

Every layer that maps between these spellings (frontend, reference interpreter, emitters,
runtime, REPL) looks them up here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import TensorType, f32, f64, i1, i32, i64
from xdsl.ir import Attribute


@dataclass(frozen=True)
class DType:
    name: str
    """As `.irn` spells it: `f32`."""
    element_type: Attribute
    """The IR's element type: `f32`, `i1` for bool."""
    numpy: np.dtype


DTYPES = (
    DType("f32", f32, np.dtype(np.float32)),
    DType("f64", f64, np.dtype(np.float64)),
    DType("i32", i32, np.dtype(np.int32)),
    DType("i64", i64, np.dtype(np.int64)),
    DType("bool", i1, np.dtype(np.bool_)),
)
NAMES = tuple(d.name for d in DTYPES)

BY_NAME = {d.name: d for d in DTYPES}
BY_ELEMENT_TYPE = {d.element_type: d for d in DTYPES}
BY_NUMPY = {d.numpy: d for d in DTYPES}


class DTypeError(ValueError):
    """A type outside the table (hand-written IR can hold any); the message is user-facing."""


def dtype_of(t: Attribute) -> DType:
    """The dtype of an element type, or of a tensor type's elements."""
    element = t.element_type if isinstance(t, TensorType) else t
    found = BY_ELEMENT_TYPE.get(element)
    if found is None:
        raise DTypeError(f"{element} is not an irnet dtype ({', '.join(NAMES)})")
    return found


def numpy_dtype(t: Attribute, float_dtype: np.dtype | None = None) -> np.dtype:
    """The NumPy dtype of an element type or a tensor type; floats become `float_dtype` when it
    is given (a float64 run of a float32 model)."""
    dtype = dtype_of(t).numpy
    return np.dtype(float_dtype) if float_dtype is not None and dtype.kind == "f" else dtype


def dtype_name(t: Attribute) -> str:
    """`f32` for an element type; a type outside the table as the IR prints it, because error
    messages name whatever type they meet."""
    found = BY_ELEMENT_TYPE.get(t)
    return str(t) if found is None else found.name
