"""Scalar formulas (`dialects/formula.py`): the language is checked when a formula is made, and
every target's rendering computes the same values."""

from __future__ import annotations

import numpy as np
import pytest

from irnet.dialects import nn
from irnet.dialects.formula import Formula, FormulaError, numpy_function


@pytest.mark.parametrize(
    "text", ["exp(x, x)", "foo(x)", "x.real", "x if x else x", "y + 1", "x < x < x", "[x]", "'a'"]
)
def test_a_formula_outside_the_language_is_refused(text):
    with pytest.raises(FormulaError, match="formula"):
        Formula(text)


def test_rendering_spells_literals_and_calls_per_target():
    relu = Formula("where(x <= 0, 0, x)")
    numba = relu.render(["a"], lambda v: f"np.float32({float(v)})", call_ternary)
    assert numba == "(np.float32(0.0) if (a <= np.float32(0.0)) else a)"
    power = Formula("-x ** y", ("x", "y")).render(["a", "b"], repr, lambda n, a: f"{n}{a}")
    assert power == "-power['a', 'b']"


def call_ternary(name: str, args: list[str]) -> str:
    assert name == "where"
    return f"({args[1]} if {args[0]} else {args[2]})"


def test_numpy_function_keeps_float32_and_casts_to_the_result_dtype():
    x = np.array([-1.5, 0.0, 2.5], np.float32)
    gelu = numpy_function(nn.GELU["none"])(x, dtype=np.float32)
    assert gelu.dtype == np.float32
    cast = numpy_function(Formula("cast(x)"))(x, dtype=np.int32)
    np.testing.assert_array_equal(cast, [-1, 0, 2])
    assert cast.dtype == np.int32
