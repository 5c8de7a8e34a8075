"""Text to AST: the Lark grammar in `irnet.grammar`, then a transformer to `irnet.ast` nodes."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.grammar import Rule
from lark.lexer import TerminalDef

from . import ast
from .cache_files import cache_root, private_folder, sha256, write_atomically
from .diagnostics import IrnError, remember_source
from .grammar import GRAMMAR

_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}

MAX_NESTING = 100
"""The most brackets and braces open at once. The tree of deeper input overflows Python's
stack when it is transformed, and only after the whole input is parsed: counting them here
refuses it at the first bracket too many."""


class _TooDeep(Exception):
    """Raised by the post-lexer at the first bracket past `MAX_NESTING`."""

    def __init__(self, token: Token):
        super().__init__()
        self.token = token


class _BracketNewlines:
    """Post-lexer: a newline inside ( ) or [ ] continues the expression; inside { } or at top
    level it ends a statement (as in Python, with braces for blocks)."""

    always_accept = ("_NEWLINE",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        open_brackets: list[str] = []
        for token in stream:
            if token.type in _OPENERS:
                open_brackets.append(token.type)
                if len(open_brackets) > MAX_NESTING:
                    raise _TooDeep(token)
            elif token.type in _OPENERS.values():
                if open_brackets and _OPENERS[open_brackets[-1]] == token.type:
                    open_brackets.pop()
            elif token.type == "_NEWLINE" and open_brackets and open_brackets[-1] != "LBRACE":
                continue
            yield token


OPTIONS = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
    "start": ["start", "expr"],
}


@cache
def _lark() -> Lark:
    """The parser. Building its LALR tables takes 0.1 s, a third of a cached model's start, so
    they are kept in the compile cache as JSON (data, never pickle), keyed by the grammar."""
    tables = _tables_path()
    if tables is not None:
        try:
            data, memo = json.loads(tables.read_bytes(), object_hook=_decode)
            return Lark._load_from_dict(data, memo, postlex=_BracketNewlines())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # missing or damaged: built again and rewritten
    parser = Lark(GRAMMAR, postlex=_BracketNewlines(), **OPTIONS)
    if tables is not None:
        data, memo = parser.memo_serialize([TerminalDef, Rule])
        data["options"].pop("postlex")  # an object: given again when loading
        with contextlib.suppress(OSError):
            write_atomically(tables, json.dumps(_encode([data, memo])).encode())
    return parser


def _tables_path() -> Path | None:
    """Where the parser's tables are kept; None where the compile cache cannot be used."""
    key = sha256(f"{GRAMMAR}\n{lark.__version__}\n{sorted(OPTIONS.items())}".encode())
    try:
        return private_folder(cache_root()) / f"parser-{key[:24]}.json"
    except (IrnError, OSError):
        return None


def _encode(value: object) -> object:
    """`value` as JSON keeps it: tuples and dicts with keys other than strings tagged."""
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"<items>": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"<tuple>": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(tagged: dict) -> object:
    if "<items>" in tagged:
        return {k: v for k, v in tagged["<items>"]}
    if "<tuple>" in tagged:
        return tuple(tagged["<tuple>"])
    return tagged


_SPELLING = {
    "_NEWLINE": "end of line",
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "DTYPE": "a dtype (f32, f64, i32, i64, bool)",
    "COMPARE": "a comparison",
}
"""How "expected ..." names the terminals that are patterns; literal ones show their text."""


def _spell(terminal: str) -> str:
    if terminal in _SPELLING:
        return _SPELLING[terminal]
    definition = _lark().get_terminal(terminal)
    if definition.pattern.type == "str":
        return repr(definition.pattern.value)
    return terminal.lower()


def _describe(token: Token | None) -> str:
    if token is None or token.type == "$END":
        return "end of file"
    if token.type == "_NEWLINE":
        return "end of line"
    text = str(token)
    return repr(text) if len(text) <= 40 else f"{text[:30]!r}... ({len(text):,} characters)"


# Statements people bring from Python, and what `.irn` offers instead.
MISSING_STATEMENTS = {
    "if": "for a value chosen element by element use `where(cond, a, b)`",
    "elif": "for a value chosen element by element use `where(cond, a, b)`",
    "else": "for a value chosen element by element use `where(cond, a, b)`",
    "while": (
        "a loop over a run-time extent is `scan(cell, init, xs)`, which runs def `cell` on "
        "its carry and each slice of `xs`; `for i in range(n) { ... }` repeats statements a "
        "number of times known at compile time"
    ),
}


def _syntax_error(e: UnexpectedInput, filename: str, text: str) -> IrnError:
    loc = ast.Loc(filename, max(e.line, 1), max(e.column, 1))
    lines = text.split("\n")
    line = lines[loc.line - 1] if loc.line <= len(lines) else ""
    word = re.match(r"\s*([a-z]+)\b", line)
    if word and word.group(1) in MISSING_STATEMENTS and word.end() < loc.column:
        keyword = word.group(1)
        start = ast.Loc(filename, loc.line, word.start(1) + 1)
        return IrnError(f"'{keyword}' is not a statement of the language: "
                        f"{MISSING_STATEMENTS[keyword]}", start)  # fmt: skip
    if isinstance(e, UnexpectedCharacters):
        return IrnError(f"unexpected character {e.char!r}", loc)
    if isinstance(e, UnexpectedEOF):
        return IrnError("unexpected end of file (is a bracket or brace left open?)", loc)
    assert isinstance(e, UnexpectedToken)
    expected = sorted({_spell(t) for t in e.expected if not t.startswith("$")})
    hint = f"; expected {', '.join(expected[:6])}" if expected else ""
    return IrnError(f"unexpected {_describe(e.token)}{hint}", loc)


def parse(text: str, filename: str = "<input>") -> ast.Module:
    """Parse `.irn` source; raises IrnError with the location of the first mistake."""
    return _parse(text, filename, "start")


def parse_expression(text: str, filename: str = "<expression>") -> ast.Expr:
    """Parse one expression, such as a flag's value `adam(lr=3e-4)`."""
    return _parse(text, filename, "expr")


def _parse(text: str, filename: str, start: str):
    remember_source(filename, text)
    try:
        return _ToAst(filename).transform(_lark().parse(text, start=start))
    except UnexpectedInput as e:
        raise _syntax_error(e, filename, text) from None
    except _TooDeep as e:
        loc = ast.Loc(filename, e.token.line or 1, e.token.column or 1)
        raise IrnError(f"brackets nested more than {MAX_NESTING} deep", loc) from None
    except VisitError as e:
        if isinstance(e.orig_exc, IrnError):
            raise e.orig_exc from None
        if isinstance(e.orig_exc, RecursionError):
            raise _too_deep(text, filename) from None
        raise
    except RecursionError:
        raise _too_deep(text, filename) from None


def _too_deep(text: str, filename: str) -> IrnError:
    """Recursion leaves no position behind: blame the longest line, where deep nesting is."""
    lines = text.split("\n")
    line = max(range(len(lines)), key=lambda i: len(lines[i]))
    return IrnError("expression nested too deeply", ast.Loc(filename, line + 1, 1))


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(token: Token) -> str:
    """The text of a string literal; the grammar admits only the escapes in `_ESCAPES`."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES[m.group(1)], token[1:-1])


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
    def __init__(self, filename: str):
        super().__init__()
        self.filename = filename

    def _loc(self, meta) -> ast.Loc:
        return ast.Loc(self.filename, getattr(meta, "line", 1), getattr(meta, "column", 1))

    def _tok(self, token: Token) -> ast.Loc:
        return ast.Loc(self.filename, token.line or 1, token.column or 1)

    # --- items ---
    def start(self, meta, *items):
        module = ast.Module(self._loc(meta), [], [], [])
        for item in items:
            if isinstance(item, ast.Import):
                module.imports.append(item)
            elif isinstance(item, ast.Function):
                module.functions.append(item)
            else:
                module.trains.append(item)
        return module

    def _module_name(self, token: Token) -> str:
        return _unquote(token) if token.type == "STRING" else str(token)

    def import_stmt(self, meta, module, alias):
        return ast.Import(self._loc(meta), self._module_name(module), alias and str(alias))

    def from_import(self, meta, module, *names):
        return ast.Import(self._loc(meta), self._module_name(module), None, [str(n) for n in names])

    def function(self, meta, kind, name, params, result, body):
        return ast.Function(self._loc(meta), str(kind), str(name), params or [], result, body)

    def params(self, meta, *params):
        return [p for p in params if p is not None]

    def param(self, meta, name, type_, default):
        return ast.Argument(self._tok(name), str(name), type_, default)

    def scalar_type(self, meta, kind):
        return ast.ScalarTypeExpr(self._loc(meta), str(kind))

    def list_type(self, meta, kind):
        return ast.ListTypeExpr(self._loc(meta), str(kind))

    def type(self, meta, dtype, dims):
        return ast.TensorTypeExpr(self._loc(meta), str(dtype), dims or [])

    def dims(self, meta, *dims):
        return [d for d in dims if d is not None]

    def dynamic_dim(self, meta):
        return ast.Dynamic(self._loc(meta))

    def ellipsis(self, meta):
        return ast.Ellipsis(self._loc(meta))

    def block(self, meta, *stmts):
        return [s for s in stmts if s is not None]

    def param_stmt(self, meta, name, type_, init):
        return ast.Param(self._loc(meta), str(name), type_, init)

    def state_stmt(self, meta, name, type_, init):
        return ast.Param(self._loc(meta), str(name), type_, init, kind="state")

    def assign(self, meta, name, value):
        return ast.Assign(self._loc(meta), str(name), value)

    def unpack(self, meta, *names_and_value):
        *names, value = names_and_value
        return ast.Unpack(self._loc(meta), [str(n) for n in names], value)

    def return_stmt(self, meta, value):
        return ast.Return(self._loc(meta), value)

    def for_stmt(self, meta, var, iterable, body):
        return ast.For(self._loc(meta), str(var), iterable, body)

    def train(self, meta, model, targets, *entries):
        entries = [e for e in entries if e is not None]
        return ast.Train(self._loc(meta), str(model), targets or [], entries)

    def entry(self, meta, name, value):
        return ast.Entry(self._tok(name), str(name), value)

    # --- expressions ---
    def compare(self, meta, lhs, op, rhs):
        return ast.BinOp(self._tok(op), str(op), lhs, rhs)

    def binary(self, meta, lhs, op, rhs):
        return ast.BinOp(self._tok(op), str(op), lhs, rhs)

    def neg(self, meta, _minus, operand):
        return ast.Neg(self._loc(meta), operand)

    def call(self, meta, func, args):
        args = args or []
        keywords = [a for a in args if isinstance(a, ast.Keyword)]
        positional = [a for a in args if not isinstance(a, ast.Keyword)]
        if keywords and positional and args.index(keywords[0]) < args.index(positional[-1]):
            raise IrnError("positional argument after a keyword argument", positional[-1].loc)
        return ast.Call(self._loc(meta), func, positional, keywords)

    def args(self, meta, *args):
        return [a for a in args if a is not None]

    def keyword(self, meta, name, value):
        return ast.Keyword(self._tok(name), str(name), value)

    def index(self, meta, value, subscripts):
        return ast.Index(self._loc(meta), value, subscripts)

    def subscripts(self, meta, *subs):
        return [s for s in subs if s is not None]

    def slice(self, meta, start, stop, step):
        return ast.Slice(self._loc(meta), start, stop, step)

    def attribute(self, meta, value, name):
        return ast.Attribute(self._loc(meta), value, str(name))

    def name(self, meta, token):
        return ast.Name(self._tok(token), str(token))

    def int(self, meta, token):
        return ast.Number(self._tok(token), int(token))

    def float(self, meta, token):
        return ast.Number(self._tok(token), float(token))

    def string(self, meta, token):
        return ast.String(self._tok(token), _unquote(token))

    def true(self, meta, token):
        return ast.Bool(self._tok(token), True)

    def false(self, meta, token):
        return ast.Bool(self._tok(token), False)

    def dtype(self, meta, token):
        return ast.DType(self._tok(token), str(token))

    def list(self, meta, *items):
        return ast.ListExpr(self._loc(meta), [i for i in items if i is not None])
