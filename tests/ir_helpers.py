"""Helpers shared by the IR-level tests: types written as in error messages, properties from
Python values, and regexes that need several fragments."""

from __future__ import annotations

import re

from xdsl.dialects.builtin import StringAttr, TensorType, UnitAttr, f32, f64, i1, i32, i64
from xdsl.ir import Attribute

from irnet.dialects import nn
from irnet.dialects.shapes import DYN

DTYPES = {"f32": f32, "f64": f64, "i32": i32, "i64": i64, "bool": i1}


def ty(spec: str) -> TensorType:
    """`"f32[?, 10]"` -> `tensor<?x10xf32>`."""
    dtype, _, dims = spec.partition("[")
    shape = [DYN if d.strip() == "?" else int(d) for d in dims.rstrip("]").split(",") if d.strip()]
    return TensorType(DTYPES[dtype], shape)


def attr(value: object) -> Attribute:
    """A property from a Python value: list -> i64 array, int -> i64, str -> string,
    True -> unit attribute."""
    if isinstance(value, Attribute):
        return value
    if value is True:
        return UnitAttr()
    if isinstance(value, int):
        return nn.int_attr(value)
    if isinstance(value, str):
        return StringAttr(value)
    assert isinstance(value, list | tuple)
    return nn.int_array(value)


def mentions(*fragments: str) -> str:
    """A regex (for `pytest.raises(match=...)`) that needs every fragment, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments)
