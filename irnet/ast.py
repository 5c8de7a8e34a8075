"""The `.irn` abstract syntax tree. Every node keeps the source location it was parsed from."""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import Loc


@dataclass
class Node:
    loc: Loc = field(repr=False, compare=False)


# --- types ---------------------------------------------------------------------------------------


@dataclass
class TensorTypeExpr(Node):
    """`f32[N, 784]`; a dim is an expression, `?` (Dynamic) or `...` (Ellipsis)."""

    dtype: str
    dims: list[Expr]


@dataclass
class ScalarTypeExpr(Node):
    """`int`, `float` or `dtype`: a compile-time argument."""

    kind: str


@dataclass
class ListTypeExpr(Node):
    """`[int]`: a compile-time list."""

    kind: str


ArgType = TensorTypeExpr | ScalarTypeExpr | ListTypeExpr


# --- expressions ---------------------------------------------------------------------------------


@dataclass
class Name(Node):
    id: str


@dataclass
class Number(Node):
    value: int | float


@dataclass
class Bool(Node):
    value: bool


@dataclass
class String(Node):
    value: str


@dataclass
class DType(Node):
    name: str


@dataclass
class ListExpr(Node):
    items: list[Expr]


@dataclass
class BinOp(Node):
    """`lhs op rhs` for op in + - * / @ ** == != < <= > >=."""

    op: str
    lhs: Expr
    rhs: Expr


@dataclass
class Neg(Node):
    operand: Expr


@dataclass
class Keyword(Node):
    name: str
    value: Expr


@dataclass
class Call(Node):
    func: Expr
    args: list[Expr]
    keywords: list[Keyword]


@dataclass
class Slice(Node):
    start: Expr | None
    stop: Expr | None
    step: Expr | None


@dataclass
class Dynamic(Node):
    """`?` in a type: a dimension known only at run time."""


@dataclass
class Ellipsis(Node):
    """`...` in a type or a subscript: any number of dimensions."""


@dataclass
class Index(Node):
    value: Expr
    subscripts: list[Expr | Slice | Ellipsis]


@dataclass
class Attribute(Node):
    value: Expr
    name: str


Expr = (
    Name
    | Number
    | Bool
    | String
    | DType
    | ListExpr
    | BinOp
    | Neg
    | Call
    | Index
    | Attribute
    | Dynamic
    | Ellipsis
)


# --- statements and items ------------------------------------------------------------------------


@dataclass
class Param(Node):
    """`param w: f32[I, units] = glorot_uniform`: a trainable tensor and its initialiser; or,
    with `kind` "state", `state running_mean: F[C] = zeros`: model state, which training
    updates (by assigning to its name) and checkpoints save, but the optimiser leaves alone."""

    name: str
    type: TensorTypeExpr
    init: Expr
    kind: str = "param"


@dataclass
class Assign(Node):
    target: str
    value: Expr


@dataclass
class Unpack(Node):
    """`loss, grad = value_and_grad(f, wrt="w")(x, w)`: one name per value of a tuple."""

    targets: list[str]
    value: Expr


@dataclass
class Return(Node):
    value: Expr


@dataclass
class For(Node):
    """`for units in hidden { ... }`: unrolled at compile time over a list."""

    var: str
    iterable: Expr
    body: list[Stmt]


Stmt = Param | Assign | Unpack | Return | For


@dataclass
class Argument(Node):
    name: str
    type: ArgType
    default: Expr | None = None


@dataclass
class Function(Node):
    """A `def` (a reusable layer or function) or a `model` (a trainable entry point)."""

    kind: str
    name: str
    args: list[Argument]
    result: TensorTypeExpr | None
    body: list[Stmt]


@dataclass
class Entry(Node):
    name: str
    value: Expr


@dataclass
class Train(Node):
    """`train model(y: i32[N]) { loss = ..., optimizer = ..., ... }`."""

    model: str
    targets: list[Argument]
    entries: list[Entry]


@dataclass
class Import(Node):
    """`import nn`, `import "layers.irn" as layers`, `from nn import dense, mlp`."""

    module: str
    alias: str | None = None
    names: list[str] | None = None


@dataclass
class Module(Node):
    imports: list[Import]
    functions: list[Function]
    trains: list[Train]
