"""The Pygments lexer for `.irn` (`grammar/lexer.py`): the token of every construct, no error
tokens on real programs, word lists that agree with the language, and its registration."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import PROGRAMS, ROOT
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from irnet.builtins import BUILTINS
from irnet.grammar import GRAMMAR, lexer
from irnet.grammar.lexer import RESERVED, IrnLexer
from irnet.imports import STDLIB_DIR
from irnet.initializers import INITIALIZERS


def tokens(text: str) -> list[tuple]:
    """The significant tokens: whitespace dropped, adjacent string pieces kept apart."""
    return [(t, v) for t, v in IrnLexer().get_tokens(text) if t is not Whitespace]


def test_comments_and_line_continuations():
    assert tokens("x = a \\\n  + b  # the sum") == [
        (Name, "x"), (Operator, "="), (Name, "a"), (Text, "\\\n"), (Operator, "+"),
        (Name, "b"), (Comment.Single, "# the sum"),
    ]  # fmt: skip


def test_definitions_name_their_function():
    source = "def f(x: F[...]) -> F {}\nmodel m(x: f32[N, 4]) {}\ntrain m(y: i32[N]) {}"
    found = tokens(source)
    assert (Keyword.Declaration, "def") in found and (Name.Function, "f") in found
    assert (Keyword.Declaration, "model") in found and (Name.Function, "m") in found
    assert (Keyword.Declaration, "train") in found


def test_imports():
    assert tokens('from nn import dense, mse\nimport nn as layers\nimport "b/r.irn" as rb') == [
        (Keyword.Namespace, "from"), (Name.Namespace, "nn"), (Keyword.Namespace, "import"),
        (Name, "dense"), (Punctuation, ","), (Name, "mse"),
        (Keyword.Namespace, "import"), (Name.Namespace, "nn"), (Keyword.Namespace, "as"),
        (Name.Namespace, "layers"),
        (Keyword.Namespace, "import"), (String.Double, '"'), (String.Double, "b/r.irn"),
        (String.Double, '"'), (Keyword.Namespace, "as"), (Name.Namespace, "rb"),
    ]  # fmt: skip


def test_statements_and_keywords():
    found = tokens("param w: f32[3] = glorot_uniform\nfor u in [1, 2] { return true }")
    assert found[0] == (Keyword.Declaration, "param")
    for token in [
        (Name.Builtin.Pseudo, "glorot_uniform"),
        (Keyword, "for"),
        (Keyword, "in"),
        (Keyword, "return"),
        (Keyword.Constant, "true"),
    ]:
        assert token in found


def test_types():
    found = tokens("def f(x: bool[?, ...], k: int, r: float, F: dtype, s: [int]) -> i64 {}")
    for token in [
        (Keyword.Type, "bool"),
        (Punctuation, "?"),
        (Punctuation, "..."),
        (Keyword.Type, "int"),
        (Keyword.Type, "float"),
        (Keyword.Type, "dtype"),
        (Keyword.Type, "i64"),
    ]:
        assert token in found
    # `dtype` is a type only in an argument's type; elsewhere it is a keyword argument's name
    assert (Name, "dtype") in tokens("one_hot(y, 10, dtype=f64)")


def test_calls_builtins_and_names():
    assert tokens("relu(dense(x, 4)).w") == [
        (Name.Builtin, "relu"), (Punctuation, "("), (Name.Function, "dense"), (Punctuation, "("),
        (Name, "x"), (Punctuation, ","), (Number.Integer, "4"), (Punctuation, ")"),
        (Punctuation, ")"), (Punctuation, "."), (Name, "w"),
    ]  # fmt: skip
    assert tokens("relu_2 maximum_x") == [(Name, "relu_2"), (Name, "maximum_x")]


@pytest.mark.parametrize("number", ["0.5", "1.", ".5", "1e-5", "2E+3", "3.25e2"])
def test_floats(number):
    assert tokens(number) == [(Number.Float, number)]


def test_integers_and_operators():
    found = tokens("-a ** 2 + b * c / d @ e - 1 == f != g < h <= i > j >= k")
    assert (Number.Integer, "2") in found and (Number.Integer, "1") in found
    operators = [v for t, v in found if t is Operator]
    assert operators == ["-", "**", "+", "*", "/", "@", "-", "==", "!=", "<", "<=", ">", ">="]


def test_strings_and_escapes():
    assert tokens(r'"a\"b\n"') == [
        (String.Double, '"'), (String.Double, "a"), (String.Escape, r"\""), (String.Double, "b"),
        (String.Escape, r"\n"), (String.Double, '"'),
    ]  # fmt: skip
    unterminated = tokens('"open\nx')
    assert (Error, "\n") in unterminated and unterminated[-1] == (Name, "x")


def test_punctuation_and_unknown_characters():
    assert [t for t, _ in tokens("x[0:2, ::2]; {}")] == [
        Name, Punctuation, Number.Integer, Punctuation, Number.Integer, Punctuation,
        Punctuation, Punctuation, Number.Integer, Punctuation, Punctuation, Punctuation,
        Punctuation,
    ]  # fmt: skip
    assert (Error, "$") in tokens("x $ y")


@pytest.mark.parametrize(
    "path", [*PROGRAMS, *sorted(STDLIB_DIR.glob("*.irn"))], ids=lambda p: getattr(p, "name", p)
)
def test_real_programs_lex_without_errors_and_round_trip(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    pieces = list(IrnLexer().get_tokens(text))
    assert "".join(v for _, v in pieces) == text
    assert not [v for t, v in pieces if t is Error]


def test_word_lists_agree_with_the_language():
    assert set(lexer.INITIALIZERS) == set(INITIALIZERS)
    assert set(lexer.BUILTINS) == set(BUILTINS)
    reserved = re.search(r"NAME: /\(\?!\(([^)]*)\)", GRAMMAR).group(1)
    assert set(reserved.split("|")) == RESERVED


def test_registered_with_pygments():
    """Through the `pygments.lexers` entry point, so any Pygments tool finds it."""
    assert type(get_lexer_by_name("irn")).__name__ == "IrnLexer"
    assert type(get_lexer_for_filename("model.irn")).__name__ == "IrnLexer"


def test_importing_the_lexer_stays_light():
    """Highlighting tools load it; it must not pull in xDSL or the compiler."""
    code = "import sys, irnet.grammar.lexer; print('xdsl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
