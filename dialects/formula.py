"""Scalar formulas: an elementwise op's computation, written once as a small Python expression
over its operands, from which every target derives its code.

    Formula("where(x <= 0, 0, x)")            # nn.relu
    Formula("x + y", ("x", "y"))               # nn.add

The language: the operand names, number literals, `+ - * / // % **`, unary `-`, one comparison
(`< <= > >= == !=`), `|` and `&` on booleans, and calls of `FUNCTIONS` plus `where(c, a, b)`
(`a` where `c` holds, else `b`) and `cast(x)` (to the op's result dtype). It is checked when
the op class is defined.

`render` turns a formula into source text with a target's spelling of literals and calls: the
reference interpreter renders NumPy code (`numpy_function`), the cpu and cuda emitters render
Numba scalar code. A new function is added to `FUNCTIONS` (its NumPy meaning) and, where Numba
spells it differently, to the emitters' names for it.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

FUNCTIONS: dict[str, tuple[str, int]] = {
    "exp": ("numpy.exp", 1),
    "log": ("numpy.log", 1),
    "sqrt": ("numpy.sqrt", 1),
    "tanh": ("numpy.tanh", 1),
    "erf": ("scipy.special.erf", 1),
    "abs": ("numpy.abs", 1),
    "power": ("numpy.power", 2),
    "maximum": ("numpy.maximum", 2),
    "minimum": ("numpy.minimum", 2),
}
"""The functions a formula may call: the NumPy ufunc that is their meaning (imported when the
reference interpreter first needs it: SciPy's import alone takes 0.15 s), and their argument
count. The compiled targets spell each as a scalar function (`np.<name>`, `math.erf`), and
`maximum` / `minimum` as a select that lets NaN through, as NumPy's do."""

SPECIAL = {"where": 3, "cast": 1}
"""Calls every target spells its own way, with their argument counts."""

BINARY = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.BitOr: "|", ast.BitAnd: "&",
}  # fmt: skip
COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


def ufunc(name: str) -> Callable[..., np.ndarray]:
    """The NumPy meaning of formula function `name`, imported on first use."""
    module, _, attribute = FUNCTIONS[name][0].rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def arity(name: str) -> int | None:
    """How many arguments the function `name` takes (None: no such function)."""
    if name in SPECIAL:
        return SPECIAL[name]
    return FUNCTIONS[name][1] if name in FUNCTIONS else None


Literal = Callable[[float | int], str]
Call = Callable[[str, list[str]], str]


class FormulaError(ValueError):
    """A formula outside the language above."""


@dataclass(frozen=True)
class Formula:
    text: str
    operands: tuple[str, ...] = ("x",)
    tree: ast.expr = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            tree = ast.parse(self.text, mode="eval").body
        except SyntaxError as e:
            raise FormulaError(f"formula {self.text!r}: {e.msg}") from None
        object.__setattr__(self, "tree", tree)
        self.render(self.operands, repr, lambda name, args: name)  # checks the language

    def render(self, args: Sequence[str], literal: Literal, call: Call) -> str:
        """The formula as source: operand names replaced by `args`, literals spelt by `literal`,
        calls (including `power` for `**`, `where` and `cast`) by `call(name, args)`."""
        names = dict(zip(self.operands, args))

        def go(node: ast.expr) -> str:
            match node:
                case ast.Name(id=name) if name in names:
                    return names[name]
                case ast.Constant(value=value) if type(value) in (int, float):
                    return literal(value)
                case ast.UnaryOp(op=ast.USub(), operand=operand):
                    return f"-{go(operand)}"
                case ast.BinOp(left=left, op=ast.Pow(), right=right):
                    return call("power", [go(left), go(right)])
                case ast.BinOp(left=left, op=op, right=right) if type(op) in BINARY:
                    return f"({go(left)} {BINARY[type(op)]} {go(right)})"
                case ast.Compare(left=left, ops=[op], comparators=[right]) if type(op) in COMPARE:
                    return f"({go(left)} {COMPARE[type(op)]} {go(right)})"
                case ast.Call(func=ast.Name(id=name), args=call_args, keywords=[]) if len(
                    call_args
                ) == arity(name):
                    return call(name, [go(a) for a in call_args])
            raise FormulaError(f"formula {self.text!r}: {ast.unparse(node)!r} is not allowed")

        return go(self.tree)


@cache
def numpy_function(formula: Formula) -> Callable[..., np.ndarray]:
    """The formula as a function of NumPy arrays, `cast` taking the dtype as its second
    argument: `f(*operands, dtype=result_dtype)`. Python literals are weak scalars in NumPy,
    so a float32 formula stays float32."""
    params = ", ".join(f"_{i}" for i in range(len(formula.operands)))
    args = [f"_{i}" for i in range(len(formula.operands))]

    called: set[str] = set()

    def call(name: str, call_args: list[str]) -> str:
        called.add(name)
        if name == "cast":
            return f"_cast({call_args[0]}, dtype)"
        return f"{'_where' if name == 'where' else name}({', '.join(call_args)})"

    body = formula.render(args, repr, call)
    namespace = {
        **{name: ufunc(name) for name in called & FUNCTIONS.keys()},
        "_where": np.where,
        "_cast": lambda a, dtype: np.asarray(a).astype(dtype),
    }
    return eval(f"lambda {params}, dtype: {body}", namespace)  # noqa: S307 (a checked formula)
