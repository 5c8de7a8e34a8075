"""The `.irn` grammar (grammar/irn.lark) and parser (irnet/parser.py).

For every construct: the AST it parses to, the line and column of its nodes, and the errors
(`file:line:col: error: ...`, the source line, a caret) that malformed input gets. Known bugs
were strict xfails; they are fixed and now plain regression tests.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import irnet
from irnet import ast
from irnet.diagnostics import IrnError
from irnet.parser import parse

FILE = "test.irn"
ROOT = Path(__file__).resolve().parents[1]
NOWHERE = ast.Loc("", 0, 0)  # locations never take part in AST equality
EXPR_COL = len("    y = ") + 1  # column where `expr()` puts its expression, on line 2


# --- helpers --------------------------------------------------------------------------------------


def parse_src(text: str) -> ast.Module:
    return parse(text, FILE)


def expr(text: str) -> ast.Expr:
    """Parse `text` as the value of `y = ...` on line 2 of a function body."""
    (stmt,) = parse_src(f"def f() {{\n    y = {text}\n}}\n").functions[0].body
    assert isinstance(stmt, ast.Assign)
    return stmt.value


def header(text: str) -> ast.Function:
    """Parse a function header (everything before the `{`) with an empty body."""
    (function,) = parse_src(f"{text} {{\n}}\n").functions
    return function


def syntax_error(text: str) -> IrnError:
    with pytest.raises(IrnError) as info:
        parse_src(text)
    return info.value


def sexp(node: ast.Node | None) -> str:
    """A compact rendering of an expression or a type: operators and calls in prefix form."""
    match node:
        case None:
            return ""
        case ast.Name(id=name) | ast.DType(name=name):
            return name
        case ast.Number(value=value) | ast.String(value=value):
            return repr(value)
        case ast.Bool(value=value):
            return "true" if value else "false"
        case ast.ListExpr(items=items):
            return "[" + " ".join(map(sexp, items)) + "]"
        case ast.BinOp(op=op, lhs=lhs, rhs=rhs):
            return f"({op} {sexp(lhs)} {sexp(rhs)})"
        case ast.Neg(operand=operand):
            return f"(neg {sexp(operand)})"
        case ast.Call(func=func, args=args, keywords=keywords):
            kws = [f"{k.name}={sexp(k.value)}" for k in keywords]
            return "(call " + " ".join([sexp(func), *map(sexp, args), *kws]) + ")"
        case ast.Attribute(value=value, name=name):
            return f"(. {sexp(value)} {name})"
        case ast.Index(value=value, subscripts=subscripts):
            return f"(index {sexp(value)} " + " ".join(map(sexp, subscripts)) + ")"
        case ast.Slice(start=start, stop=stop, step=step):
            return f"{sexp(start)}:{sexp(stop)}" + ("" if step is None else f":{sexp(step)}")
        case ast.Ellipsis():
            return "..."
        case ast.Dynamic():
            return "?"
        case ast.TensorTypeExpr(dtype=dtype, dims=dims):
            return dtype + (f"[{', '.join(map(sexp, dims))}]" if dims else "")
        case ast.ScalarTypeExpr(kind=kind):
            return kind
        case ast.ListTypeExpr(kind=kind):
            return f"[{kind}]"
    raise TypeError(f"not an expression or a type: {node!r}")


def argument(arg: ast.Argument) -> str:
    default = "" if arg.default is None else f" = {sexp(arg.default)}"
    return f"{arg.name}: {sexp(arg.type)}{default}"


def statements(body: list[ast.Stmt], depth: int = 0):
    """(rendering, line, column) of every statement in source order, `for` bodies indented."""
    for stmt in body:
        match stmt:
            case ast.Param(name=name, type=type_, init=init, kind=kind):
                text = f"{kind} {name}: {sexp(type_)} = {sexp(init)}"
            case ast.Assign(target=target, value=value):
                text = f"{target} = {sexp(value)}"
            case ast.Return(value=value):
                text = f"return {sexp(value)}"
            case ast.For(var=var, iterable=iterable):
                text = f"for {var} in {sexp(iterable)}"
        yield "  " * depth + text, stmt.loc.line, stmt.loc.column
        if isinstance(stmt, ast.For):
            yield from statements(stmt.body, depth + 1)


def walk(node: ast.Node):
    """`node` and every node under it, children in field (= source) order."""
    yield node
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.Node):
                yield from walk(child)


def label(node: ast.Node) -> str:
    """A short name for a node in location tables."""
    match node:
        case ast.BinOp(op=text) | ast.Name(id=text) | ast.TensorTypeExpr(dtype=text):
            return text
        case ast.ScalarTypeExpr(kind=kind):
            return kind
        case ast.Number(value=value):
            return repr(value)
        case ast.Argument(name=name):
            return f"{name}:"
        case ast.Keyword(name=name):
            return f"{name}="
        case ast.Attribute(name=name):
            return f".{name}"
    return type(node).__name__


def expr_locations(text: str) -> list[tuple[str, int]]:
    """(label, column within `text`) of every node of the expression `text`."""
    nodes = list(walk(expr(text)))
    assert {(n.loc.file, n.loc.line) for n in nodes} == {(FILE, 2)}
    return [(label(n), n.loc.column - EXPR_COL + 1) for n in nodes]


def anchor(node: ast.Node) -> str | None:
    """The text a node's location must point at; None where no fixed text applies."""
    match node:
        case ast.Import(names=names):
            return "import" if names is None else "from"
        case ast.Function(kind=kind, name=name):
            return f"{kind} {name}"
        case ast.Train():
            return "train"
        case ast.Param(kind=kind):
            return kind
        case ast.Return():
            return "return"
        case ast.For():
            return "for"
        case ast.Assign(target=text) | ast.Argument(name=text) | ast.Entry(name=text):
            return text
        case ast.Keyword(name=text) | ast.Name(id=text) | ast.DType(name=text):
            return text
        case ast.TensorTypeExpr(dtype=text) | ast.ScalarTypeExpr(kind=text):
            return text
        case ast.BinOp(op="**"):
            return None  # at its left operand: see test_power_is_located_at_its_operator
        case ast.BinOp(op=op):
            return op
        case ast.Neg():
            return "-"
        case ast.Bool(value=value):
            return "true" if value else "false"
        case ast.String():
            return '"'
        case ast.ListExpr() | ast.ListTypeExpr():
            return "["
        case ast.Dynamic():
            return "?"
        case ast.Ellipsis():
            return "..."
    return None


def check_anchors(module: ast.Module, text: str, filename: str = FILE) -> int:
    """Every node's location lies in `filename` at the text it stands for; returns how many
    nodes were checked."""
    lines = text.split("\n")
    checked = 0
    for node in walk(module):
        if isinstance(node, ast.Module):
            continue
        assert node.loc.file == filename
        rest = lines[node.loc.line - 1][node.loc.column - 1 :]
        expected = anchor(node)
        if isinstance(node, ast.Number):
            assert re.match(r"\.?[0-9]", rest), (node, node.loc)
        elif expected is not None:
            assert rest.startswith(expected), (node, node.loc, rest)
        checked += 1
    return checked


# --- imports --------------------------------------------------------------------------------------

IMPORTS = [
    ("import nn", ast.Import(NOWHERE, "nn")),
    ("import nn as n", ast.Import(NOWHERE, "nn", "n")),
    ('import "layers.irn" as layers', ast.Import(NOWHERE, "layers.irn", "layers")),
    ('import "lib/my layers.irn"', ast.Import(NOWHERE, "lib/my layers.irn")),
    ("from nn import dense", ast.Import(NOWHERE, "nn", None, ["dense"])),
    ("from nn import dense, mlp", ast.Import(NOWHERE, "nn", None, ["dense", "mlp"])),
    ('from "layers.irn" import block', ast.Import(NOWHERE, "layers.irn", None, ["block"])),
]


@pytest.mark.parametrize(("text", "expected"), IMPORTS, ids=[t for t, _ in IMPORTS])
def test_import(text, expected):
    (imported,) = parse_src(f"\n  {text}\n").imports
    assert imported == expected
    assert (imported.loc.file, imported.loc.line, imported.loc.column) == (FILE, 2, 3)


def test_imports_keep_their_order_and_accept_semicolons():
    module = parse_src("import nn; import a as b\nfrom nn import dense;\n")
    assert [(i.module, i.alias, i.names) for i in module.imports] == [
        ("nn", None, None),
        ("a", "b", None),
        ("nn", None, ["dense"]),
    ]
    assert [(i.loc.line, i.loc.column) for i in module.imports] == [(1, 1), (1, 12), (2, 1)]


# --- function headers: kinds, parameters, types ---------------------------------------------------

HEADERS = [
    # header, [arguments], result
    ("def f()", [], ""),
    ("model m(x: f32[N, 784]) -> f32[N, 10]", ["x: f32[N, 784]"], "f32[N, 10]"),
    ("def d(x: f32[..., I], k: int) -> f32[..., k]", ["x: f32[..., I]", "k: int"], "f32[..., k]"),
    (
        "def f(x: f32[N, C, H, W]) -> f32[N, C * H * W]",
        ["x: f32[N, C, H, W]"],
        "f32[N, (* (* C H) W)]",
    ),
    ("def p(x: f32[N, ?, ?]) -> f32", ["x: f32[N, ?, ?]"], "f32"),
    ("def s(x: f32, y: f32[]) -> i64[]", ["x: f32", "y: f32"], "i64"),
    (
        "def d(x: f64[2 * N + 1, N / 2, -1], m: bool[?, ...]) -> i32[N,]",
        ["x: f64[(+ (* 2 N) 1), (/ N 2), (neg 1)]", "m: bool[?, ...]"],
        "i32[N]",
    ),
    (
        "def c(eps: float = 0.00001, hidden: [int] = [64, 32], rates: [float] = [],)",
        ["eps: float = 1e-05", "hidden: [int] = [64 32]", "rates: [float] = []"],
        "",
    ),
    (
        "def pool(x: f32[N], size: int, stride: int = size, pad: int = -1,)",
        ["x: f32[N]", "size: int", "stride: int = size", "pad: int = (neg 1)"],
        "",
    ),
    (
        "model g(\n    x: f32[N,\n           784],  # comment\n\n    y: i32[N],\n) -> f32[\n    N]",
        ["x: f32[N, 784]", "y: i32[N]"],
        "f32[N]",
    ),
]


@pytest.mark.parametrize(("text", "args", "result"), HEADERS, ids=[h[0] for h in HEADERS])
def test_function_header(text, args, result):
    function = header(text)
    assert text.startswith(f"{function.kind} {function.name}(")
    assert [argument(a) for a in function.args] == args
    assert sexp(function.result) == result
    assert function.body == []


def test_header_locations():
    function = header("model m(x: f32[..., ?, C * H], n: int, l: [int] = [], b: bool) -> f64[N]")
    assert (function.loc.line, function.loc.column) == (1, 1)
    nodes = [*function.args, function.result]
    located = [(label(n), n.loc.line, n.loc.column) for top in nodes for n in walk(top)]
    assert located == [
        ("x:", 1, 9),
        ("f32", 1, 12),
        ("Ellipsis", 1, 16),
        ("Dynamic", 1, 21),
        ("*", 1, 26),
        ("C", 1, 24),
        ("H", 1, 28),
        ("n:", 1, 32),
        ("int", 1, 35),
        ("l:", 1, 40),
        ("ListTypeExpr", 1, 43),
        ("ListExpr", 1, 51),
        ("b:", 1, 55),
        ("bool", 1, 58),
        ("f64", 1, 67),
        ("N", 1, 71),
    ]


def test_header_locations_across_lines():
    function = header("\n\nmodel g(\n    x: f32[N,\n        784],\n) -> f32[N]")
    assert (function.loc.line, function.loc.column) == (3, 1)
    (x,) = function.args
    assert [(label(n), n.loc.line, n.loc.column) for n in walk(x)] == [
        ("x:", 4, 5),
        ("f32", 4, 8),
        ("N", 4, 12),
        ("784", 5, 9),
    ]
    assert (function.result.loc.line, function.result.loc.column) == (6, 6)


# --- statements, separators, comments -------------------------------------------------------------

BODY = """\
def f(x: f32[N, I], hidden: [int]) -> f32[N, 10] {
    param w: f32[I, 10] = glorot_uniform
    param b: f32[10] = normal(std=0.01)

    # a comment on its own line
    h = x; g = h  # two statements, then a comment
    for u in [64, 32] {
        for v in hidden { h = relu(h) }
        h = g
    }
    return h @ w + b
}
"""


def test_statements_and_their_locations():
    (function,) = parse_src(BODY).functions
    assert list(statements(function.body)) == [
        ("param w: f32[I, 10] = glorot_uniform", 2, 5),
        ("param b: f32[10] = (call normal std=0.01)", 3, 5),
        ("h = x", 6, 5),
        ("g = h", 6, 12),
        ("for u in [64 32]", 7, 5),
        ("  for v in hidden", 8, 9),
        ("    h = (call relu h)", 8, 27),
        ("  h = g", 9, 9),
        ("return (+ (@ h w) b)", 11, 5),
    ]


@pytest.mark.parametrize("text", ["{}", "{\n}", "{\n\n  # nothing\n\n}", "{ ; ; }", "{;}"])
def test_empty_body(text):
    assert parse_src(f"def f() {text}").functions[0].body == []


CANONICAL = """\
def f(x: f32[N, 3]) -> f32[N] {
    y = g(x[0, 1], axis=1)
    z = [y, 2]
    return z
}
"""

SAME_PROGRAM = {
    "semicolons": "def f(x: f32[N, 3]) -> f32[N] { y = g(x[0, 1], axis=1); z = [y, 2]; return z }",
    "trailing-semicolons": "def f(x: f32[N, 3]) -> f32[N] {\n y = g(x[0, 1], axis=1);\n"
    " z = [y, 2];;\n return z;\n}",
    "blank-lines-and-comments": "\n# leading comment\n\ndef f(x: f32[N, 3]) -> f32[N] {  # c\n"
    "\n    # c\n    y = g(x[0, 1], axis=1)  # c\n\n\n    z = [y, 2]\n    return z\n\n}\n\n# end",
    "newlines-inside-brackets": (
        "def f(\n    x: f32[\n        N,\n        3,\n    ],\n) -> f32[N] {\n"
        "    y = g(\n        x[\n            0,\n            1\n        ],  # comment\n\n"
        "        axis=1,\n    )\n    z = [\n        y,\n        2\n    ]\n    return z\n}"
    ),
    "backslash-continuation": "def f(x: f32[N, 3]) -> f32[N] {\n    y = \\\n"
    "        g(x[0, 1], axis=1)\n    z = [y, 2]\n    return \\\n z\n}\n",
    "crlf": CANONICAL.replace("\n", "\r\n"),
    "no-final-newline": CANONICAL.rstrip("\n"),
    "tabs-and-form-feeds": CANONICAL.replace("    ", "\t").replace(" = ", "\f=\f"),
}


@pytest.mark.parametrize("text", SAME_PROGRAM.values(), ids=SAME_PROGRAM.keys())
def test_layout_does_not_change_the_ast(text):
    assert parse_src(text) == parse_src(CANONICAL)


def test_newline_inside_brackets_keeps_lines_and_columns():
    value = expr("g(\n        a,\n        b=c + 1,\n    )[\n        0]")
    assert [(label(n), n.loc.line, n.loc.column) for n in walk(value)] == [
        ("Index", 2, 9),
        ("Call", 2, 9),
        ("g", 2, 9),
        ("a", 3, 9),
        ("b=", 4, 9),
        ("+", 4, 13),
        ("c", 4, 11),
        ("1", 4, 15),
        ("0", 6, 9),
    ]


def test_crlf_line_endings_keep_columns():
    (function,) = parse_src(BODY.replace("\n", "\r\n")).functions
    assert list(statements(function.body)) == list(statements(parse_src(BODY).functions[0].body))


def test_brackets_inside_strings_do_not_swallow_newlines():
    (function,) = parse_src('def f() {\n    a = g("(", "[")\n    b = a\n}\n').functions
    assert list(statements(function.body)) == [("a = (call g '(' '[')", 2, 5), ("b = a", 3, 5)]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment", "  \n# c\n\n;\n"])
def test_empty_module(text):
    assert parse_src(text) == ast.Module(NOWHERE, [], [], [])


# --- train ----------------------------------------------------------------------------------------

TRAIN = """\
train mnist_mlp(y: i32[N]) {
    data      = mnist("data/mnist")
    loss      = cross_entropy(mnist_mlp(x), y)
    optimizer = adam(lr=1e-3); batch = 128

    metrics   = [accuracy]  # comment
}
"""


def test_train_entries_and_locations():
    (train,) = parse_src(TRAIN).trains
    assert (train.model, train.loc.line, train.loc.column) == ("mnist_mlp", 1, 1)
    assert [argument(a) for a in train.targets] == ["y: i32[N]"]
    assert (train.targets[0].loc.line, train.targets[0].loc.column) == (1, 17)
    assert [(e.name, sexp(e.value), e.loc.line, e.loc.column) for e in train.entries] == [
        ("data", "(call mnist 'data/mnist')", 2, 5),
        ("loss", "(call cross_entropy (call mnist_mlp x) y)", 3, 5),
        ("optimizer", "(call adam lr=0.001)", 4, 5),
        ("batch", "128", 4, 32),
        ("metrics", "[accuracy]", 6, 5),
    ]


@pytest.mark.parametrize(
    ("text", "targets", "entries"),
    [
        ("train m {}", [], []),
        ("train m() {\n}", [], []),
        ("train m { seed = 0 }", [], ["seed"]),
        (
            "train m(\n    y: i32[N],\n    w: f32[N],\n) {\n    a = 1; b = 2\n}",
            ["y", "w"],
            ["a", "b"],
        ),
    ],
)
def test_train_forms(text, targets, entries):
    (train,) = parse_src(text).trains
    assert [t.name for t in train.targets] == targets
    assert [e.name for e in train.entries] == entries


# --- expressions ----------------------------------------------------------------------------------

PRECEDENCE = [
    ("a + b * c", "(+ a (* b c))"),
    ("a * b + c", "(+ (* a b) c)"),
    ("a - b - c", "(- (- a b) c)"),
    ("a - b + c", "(+ (- a b) c)"),
    ("a / b / c", "(/ (/ a b) c)"),
    ("a / b * c", "(* (/ a b) c)"),
    ("a @ b @ c", "(@ (@ a b) c)"),
    ("a @ b * c", "(* (@ a b) c)"),
    ("a * b @ c", "(@ (* a b) c)"),
    ("a + b @ c", "(+ a (@ b c))"),
    ("x @ w + b", "(+ (@ x w) b)"),
    ("a ** b ** c", "(** a (** b c))"),
    ("a * b ** c", "(* a (** b c))"),
    ("a ** b * c", "(* (** a b) c)"),
    ("-x ** 2", "(neg (** x 2))"),
    ("2 ** -1", "(** 2 (neg 1))"),
    ("2 ** -x ** 2", "(** 2 (neg (** x 2)))"),
    ("--x", "(neg (neg x))"),
    ("-a * b", "(* (neg a) b)"),
    ("a - -b", "(- a (neg b))"),
    ("-f(x)[0]", "(neg (index (call f x) 0))"),
    ("f(x) ** 2", "(** (call f x) 2)"),
    ("(a + b) * c", "(* (+ a b) c)"),
    ("a * (b + c)", "(* a (+ b c))"),
    ("(((a)))", "a"),
    ("a + b == c * d", "(== (+ a b) (* c d))"),
    ("-a < b", "(< (neg a) b)"),
    ("a.b.c", "(. (. a b) c)"),
    ("a.b(c)[d].e", "(. (index (call (. a b) c) d) e)"),
    ("x / (1.0 - rate)", "(/ x (- 1.0 rate))"),
    (
        "centered / sqrt(var + eps) * gamma + beta",
        "(+ (* (/ centered (call sqrt (+ var eps))) gamma) beta)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PRECEDENCE, ids=[t for t, _ in PRECEDENCE])
def test_precedence_and_associativity(text, expected):
    assert sexp(expr(text)) == expected


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparisons(op):
    assert sexp(expr(f"a {op} b")) == f"({op} a b)"
    assert sexp(expr(f"x+1{op}-y")) == f"({op} (+ x 1) (neg y))"


CALLS = [
    ("f()", "(call f)"),
    ("f(x)", "(call f x)"),
    ("f(x, 1,)", "(call f x 1)"),
    ("f(x, axis=1, keepdims=true)", "(call f x axis=1 keepdims=true)"),
    ("normal(std=0.01)", "(call normal std=0.01)"),
    ("f(x=-1, y=a == b)", "(call f x=(neg 1) y=(== a b))"),
    ("f(a == b)", "(call f (== a b))"),
    ("nn.dense(x, 128)", "(call (. nn dense) x 128)"),
    ("f(g(x))(y)", "(call (call f (call g x)) y)"),
    ("cast(x, f32)", "(call cast x f32)"),
    ("reshape(b, [filters, 1, 1])", "(call reshape b [filters 1 1])"),
]

INDEXING = [
    ("x[0]", "(index x 0)"),
    ("x[:, 1:3]", "(index x : 1:3)"),
    ("x[::2]", "(index x ::2)"),
    ("x[..., 0]", "(index x ... 0)"),
    ("x[1:]", "(index x 1:)"),
    ("x[:-1]", "(index x :(neg 1))"),
    ("x[1:2:3]", "(index x 1:2:3)"),
    ("x[i, j,]", "(index x i j)"),
    ("x[n - 1, ...]", "(index x (- n 1) ...)"),
    ("x[0][1]", "(index (index x 0) 1)"),
    ("x[.5:2.]", "(index x 0.5:2.0)"),
]


@pytest.mark.parametrize(
    ("text", "expected"), CALLS + INDEXING, ids=[t for t, _ in CALLS + INDEXING]
)
def test_calls_attributes_and_indexing(text, expected):
    assert sexp(expr(text)) == expected


LITERALS = [
    ("0", ast.Number(NOWHERE, 0)),
    ("42", ast.Number(NOWHERE, 42)),
    ("1.5", ast.Number(NOWHERE, 1.5)),
    ("1e-3", ast.Number(NOWHERE, 0.001)),
    ("1E3", ast.Number(NOWHERE, 1000.0)),
    ("2.5e+2", ast.Number(NOWHERE, 250.0)),
    (".5", ast.Number(NOWHERE, 0.5)),
    ("2.", ast.Number(NOWHERE, 2.0)),
    ("0.00001", ast.Number(NOWHERE, 1e-05)),
    ('"data/mnist"', ast.String(NOWHERE, "data/mnist")),
    ('""', ast.String(NOWHERE, "")),
    (r'"say \"hi\""', ast.String(NOWHERE, 'say "hi"')),
    (r'"a\\b"', ast.String(NOWHERE, "a\\b")),
    (r'"tab\tnew\n"', ast.String(NOWHERE, "tab\tnew\n")),
    ('"# not a comment"', ast.String(NOWHERE, "# not a comment")),
    ("true", ast.Bool(NOWHERE, True)),
    ("false", ast.Bool(NOWHERE, False)),
    *[(t, ast.DType(NOWHERE, t)) for t in ["f32", "f64", "i32", "i64", "bool"]],
    ("[]", ast.ListExpr(NOWHERE, [])),
    ("[1,]", ast.ListExpr(NOWHERE, [ast.Number(NOWHERE, 1)])),
    (
        "[true,[f32], 2.0]",
        ast.ListExpr(
            NOWHERE,
            [
                ast.Bool(NOWHERE, True),
                ast.ListExpr(NOWHERE, [ast.DType(NOWHERE, "f32")]),
                ast.Number(NOWHERE, 2.0),
            ],
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), LITERALS, ids=[t for t, _ in LITERALS])
def test_literals(text, expected):
    value = expr(text)
    assert value == expected
    if isinstance(value, ast.Number):  # 2.0 == 2: the Python type tells int from float
        assert type(value.value) is type(expected.value)


EXPR_LOCATIONS = [
    ("a + b * c", [("+", 3), ("a", 1), ("*", 7), ("b", 5), ("c", 9)]),
    ("a < -b", [("<", 3), ("a", 1), ("Neg", 5), ("b", 6)]),
    ("(a + b) * c", [("*", 9), ("+", 4), ("a", 2), ("b", 6), ("c", 11)]),
    (
        "nn.dense(x, units=3)",
        [("Call", 1), (".dense", 1), ("nn", 1), ("x", 10), ("units=", 13), ("3", 19)],
    ),
    (
        "x[:, 1:3]",
        [("Index", 1), ("x", 1), ("Slice", 3), ("Slice", 6), ("1", 6), ("3", 8)],
    ),
    ("x[..., ::2]", [("Index", 1), ("x", 1), ("Ellipsis", 3), ("Slice", 8), ("2", 10)]),
    ("[1, [true]]", [("ListExpr", 1), ("1", 2), ("ListExpr", 5), ("Bool", 6)]),
    (
        'f(x)[0].T == "s"',
        [("==", 11), (".T", 1), ("Index", 1), ("Call", 1), ("f", 1), ("x", 3), ("0", 6)]
        + [("String", 14)],
    ),
    ("cast(y,i64)", [("Call", 1), ("cast", 1), ("y", 6), ("DType", 8)]),
]


@pytest.mark.parametrize(("text", "expected"), EXPR_LOCATIONS, ids=[t for t, _ in EXPR_LOCATIONS])
def test_expression_locations(text, expected):
    assert expr_locations(text) == expected


# --- keywords and names ---------------------------------------------------------------------------

EVERY_NAME_POSITION = """\
import {n} as {n}
from {n} import {n}, {n}
def {n}({n}: f32[{n}] = {n}) -> f32[{n}] {{
    param {n}: f32[{n}] = {n}({n}={n})
    {n} = {n}.{n}({n})[{n}:{n}] + {n}
    for {n} in {n} {{
        {n} = {n}
    }}
    return {n}
}}
model {n}() {{
}}
train {n}({n}: i32[{n}]) {{
    {n} = {n}
}}
"""

NAME_FIELDS = {"module", "alias", "names", "name", "target", "var", "model", "id"}


@pytest.mark.parametrize(
    "name",
    ["model_dim", "define", "imports", "f32x", "true_count", "falsehood", "i64s", "bool_"]
    + ["returns", "format", "input", "params", "trainer", "ask", "from_", "integer"]
    + ["floats", "def_", "in2", "_", "A1_b"],
)
def test_names_that_start_with_a_keyword_are_plain_names(name):
    text = EVERY_NAME_POSITION.format(n=name)
    module = parse_src(text)
    found = set()
    for node in walk(module):
        assert not isinstance(node, ast.DType | ast.Bool), node
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name in NAME_FIELDS and value is not None:
                found.update(value if isinstance(value, list) else [value])
    assert found == {name}
    assert check_anchors(module, text) > 30


# --- whole programs: every node is located at its own text ----------------------------------------

PROGRAM = f"""\
import nn
import nn as n
import "layers.irn" as layers
from nn import dense, mlp
{BODY}
model net(x: f32[N, C, H, W], hidden: [int] = [64, 32], p: float = .5) -> f32[N, 10] {{
    h = reshape(x, [N, C * H * W]); keep = random_uniform(h) >= p
    return f(h, hidden)[:, 0:10] * -1 / n.scale(x[..., ::2], axis=-1, name="s")
}}

{TRAIN}"""

SHIPPED = sorted([*ROOT.glob("examples/*.irn"), *Path(irnet.__file__).parent.glob("stdlib/*.irn")])


def test_program_locations():
    module = parse_src(PROGRAM)
    assert [i.loc.line for i in module.imports] == [1, 2, 3, 4]
    assert [(f.kind, f.name, f.loc.line) for f in module.functions] == [
        ("def", "f", 5),
        ("model", "net", 18),
    ]
    assert [(t.model, t.loc.line) for t in module.trains] == [("mnist_mlp", 23)]
    assert check_anchors(module, PROGRAM) > 100


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_programs_parse_with_located_nodes(path):
    text = path.read_text(encoding="utf-8")
    module = parse(text, str(path))
    assert module.functions or module.trains
    assert check_anchors(module, text, str(path)) > 10


def test_shipped_programs_exist():
    assert {p.name for p in SHIPPED} >= {"nn.irn", "mnist_mlp.irn"}


# --- syntax errors --------------------------------------------------------------------------------

FN = "def f(x: f32) -> f32 {\n"  # line 1 of most cases


def in_fn(*lines: str) -> str:
    """A function whose body is `lines`, from line 2 on."""
    return FN + "".join(line + "\n" for line in lines) + "}\n"


SYNTAX_ERRORS = [
    # id, source, line, column, message fragment
    ("missing-}-at-eof", FN + "    return x\n", 2, 13, "unexpected end of file"),
    ("missing-}", FN + "    return x\n\ndef g() {\n}\n", 4, 1, "unexpected 'def'"),
    ("dollar", in_fn("    y = x $ 1"), 2, 11, "unexpected character '$'"),
    ("stray-bang", in_fn("    y = !x"), 2, 9, "unexpected character '!'"),
    ("unterminated-string", in_fn('    y = load("data)'), 2, 14, "unexpected character '\"'"),
    ("single-quotes", in_fn("    y = 'a'"), 2, 9, 'unexpected character "\'"'),
    ("number-then-name", in_fn("    y = 2x"), 2, 9, "unexpected character '2'"),
    ("assign-no-value", in_fn("    y = "), 2, 9, "unexpected end of line"),
    ("assign-at-top-level", "x = ", 1, 1, "unexpected 'x'"),
    ("def-f(", "def f(", 1, 6, "unexpected end of file"),
    ("missing-)-in-call", in_fn("    y = relu(x", "    return y"), 3, 5, "unexpected 'return'"),
    ("missing-)-last-line", in_fn("    return g(x"), 3, 1, "unexpected '}'"),
    ("missing-)-in-header", "def f(x: f32 {\n}\n", 1, 14, "unexpected '{'"),
    ("missing-]-in-type", "def f(x: f32[N, 3) {\n}\n", 1, 18, "unexpected ')'"),
    ("extra-)", in_fn("    y = f(1))"), 2, 13, "unexpected ')'"),
    ("param-without-type", "def f(x) {\n}\n", 1, 8, "unexpected ')'"),
    ("def-without-name", "def (x) {\n}\n", 1, 5, "unexpected '('"),
    ("brace-on-next-line", "def f()\n{\n}\n", 1, 8, "unexpected end of line"),
    ("scalar-result", "def f() -> int {\n}\n", 1, 12, "unexpected 'int'"),
    ("list-of-tensors", "def f(x: [f32]) {\n}\n", 1, 11, "unexpected 'f32'"),
    ("param-outside", in_fn("    return x") + "param w: f32 = zeros\n", 4, 1, "unexpected 'param'"),
    ("param-scalar-type", in_fn("    param w: int = zeros"), 2, 14, "unexpected 'int'"),
    ("param-no-init", in_fn("    param w: f32[3]"), 2, 20, "unexpected end of line"),
    ("return-at-top-level", "return 1\n", 1, 1, "unexpected 'return'"),
    ("two-statements", in_fn("    y = 1 z = 2"), 2, 11, "unexpected 'z'"),
    ("newline-ends-stmt", in_fn("    y = x", "        + 1"), 3, 9, "unexpected '+'"),
    ("chained-comparison", in_fn("    y = a < b < c"), 2, 15, "unexpected '<'"),
    ("keyword-no-value", in_fn("    y = f(a=)"), 2, 13, "unexpected ')'"),
    ("empty-subscript", in_fn("    y = x[]"), 2, 11, "unexpected ']'"),
    ("four-part-slice", in_fn("    y = x[1:2:3:4]"), 2, 16, "unexpected ':'"),
    ("dot-without-name", in_fn("    y = nn."), 2, 12, "unexpected end of line"),
    ("for-without-block", in_fn("    for u in xs return u"), 2, 17, "unexpected 'return'"),
    ("def-as-target", in_fn("    def = 1"), 2, 5, "unexpected 'def'"),
    ("return-as-target", in_fn("    return = 1"), 2, 12, "unexpected '='"),
    ("from-import-nothing", "from nn import\n", 1, 15, "unexpected end of line"),
    ("from-import-comma", "from nn import a,\n", 1, 18, "unexpected end of line"),
    ("import-as-nothing", "import nn as\n", 1, 13, "unexpected end of line"),
    ("entry-without-value", "train m {\n    data\n}\n", 2, 9, "unexpected end of line"),
    ("lone-}", "}\n", 1, 1, "unexpected '}'"),
    ("tab-indent", "def f() {\n\ty = $\n}\n", 2, 6, "unexpected character '$'"),
    ("crlf", "def f() {\r\n    y = $\r\n}\r\n", 2, 9, "unexpected character '$'"),
]


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [case[1:] for case in SYNTAX_ERRORS],
    ids=[case[0] for case in SYNTAX_ERRORS],
)
def test_syntax_error(source, line, column, message):
    err = syntax_error(source)
    assert (err.loc.file, err.loc.line, err.loc.column) == (FILE, line, column)
    assert message in err.message
    first, quoted, caret, *_ = str(err).split("\n")
    assert first == f"{FILE}:{line}:{column}: error: {err.message}"
    source_line = source.split("\n")[line - 1].rstrip("\r")
    assert quoted == f"    {source_line}"
    padding = "".join(c if c == "\t" else " " for c in source_line[: column - 1])
    assert caret == f"    {padding}^"


def test_missing_paren_error_names_the_paren():
    err = syntax_error(in_fn("    y = relu(x", "    return y"))
    assert "')'" in err.message


# --- known bugs -----------------------------------------------------------------------------------

KEYWORD_AS_NAME = [
    in_fn("    y = return"),
    in_fn("    y = def + model"),
    in_fn("    for in in x {", "    }"),
    "def f() { def = 1 }\n",
    "def f(model: int) {\n}\n",
    in_fn("    true = 1"),
    in_fn("    f32 = 1"),
    "train m { param = 1 }\n",
]


@pytest.mark.parametrize("source", KEYWORD_AS_NAME)
def test_keywords_are_reserved(source):
    syntax_error(source)


def test_deep_nesting_is_an_irn_error():
    err = syntax_error(f"def f() {{\n    y = {'-' * 5000}x\n}}\n")
    assert "nested too deeply" in err.message


@pytest.mark.parametrize(
    "source",
    [
        in_fn(r'    y = "\N"'),
        in_fn(r'    y = "\x4"'),
        in_fn(r'    y = "\u12"'),
        r'import "\x4" as a' + "\n",
        in_fn(r'    y = "\u00e9"'),
    ],
)
def test_bad_string_escape_is_an_irn_error(source):
    err = syntax_error(source)
    assert err.loc.line == source[: source.index('"')].count("\n") + 1


@pytest.mark.parametrize(
    ("source", "wanted", "unwanted"),
    [
        ("def f() x {\n}\n", "'->'", "'**'"),
        ("def f() {\n    y = x[.. ]\n}\n", "'...'", "__anon"),
        ("def f(x: [f32]) {\n}\n", "int", "_kw"),
    ],
)
def test_expected_tokens_are_spelled_as_written(source, wanted, unwanted):
    err = syntax_error(source)
    assert wanted in err.message
    assert unwanted not in err.message


def test_power_is_located_at_its_operator():
    assert expr_locations("a ** b") == [("**", 3), ("a", 1), ("b", 6)]


def test_positional_after_keyword_is_rejected():
    syntax_error(in_fn("    y = f(axis=1, x)"))


def test_form_feed_does_not_shift_the_quoted_line():
    err = syntax_error("import nn\n\f\ndef f() {\n    y = $\n}\n")
    assert (err.loc.line, err.loc.column) == (4, 9)
    assert str(err).split("\n")[1] == "        y = $"  # quoted with a 4-space indent
