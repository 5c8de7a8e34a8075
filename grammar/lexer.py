"""A Pygments lexer for `.irn`, registered under the `pygments.lexers` entry point, so that
`pygmentize -l irn model.irn` (or any Pygments-based tool) highlights `.irn` files; the REPL
uses it too.

It imports nothing but Pygments, so tools that only highlight stay fast: the word lists below
are spelt out rather than read from `irnet.builtins` (which pulls in xDSL), and
`tests/test_lexer.py` checks that they agree with the grammar, the builtins and the
initialisers.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
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

KEYWORDS = ("return", "for", "in", "param", "state")
DECLARATIONS = ("def", "model", "train")
NAMESPACE = ("import", "from", "as")
CONSTANTS = ("true", "false")
DTYPES = ("f32", "f64", "i32", "i64", "bool")
COMPILE_TIME_TYPES = ("int", "float")
RESERVED = frozenset(
    (*KEYWORDS, *DECLARATIONS, *NAMESPACE, *CONSTANTS, *DTYPES, *COMPILE_TIME_TYPES)
)
"""The words that are never names (the grammar's NAME terminal excludes exactly these)."""

BUILTINS = (
    "abs", "argmax", "avg_pool2d", "broadcast_to", "cast", "concat", "conv2d", "erf", "exp",
    "full", "gather", "gelu", "grad", "iota", "len", "log", "log_softmax", "matmul", "max",
    "max_pool2d", "maximum", "mean", "minimum", "numel", "one_hot", "ones", "random_uniform",
    "range", "relu", "reshape", "scan", "sigmoid", "size", "softmax", "sqrt", "sum", "tanh",
    "training", "transpose", "value_and_grad", "where", "zeros",
)  # fmt: skip
"""The language's builtin functions (`irnet.builtins.BUILTINS`)."""

INITIALIZERS = (
    "constant", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "kaiming_normal",
    "kaiming_uniform", "normal", "ones", "uniform", "xavier_normal", "xavier_uniform", "zeros",
)  # fmt: skip
"""The parameter initialisers (`irnet.initializers.INITIALIZERS`)."""

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


class IrnLexer(RegexLexer):
    """`.irn`, irnet's model language."""

    name = "irn"
    aliases = ["irn", "irnet"]
    filenames = ["*.irn"]
    mimetypes = ["text/x-irn"]

    tokens = {
        "root": [
            (r"[ \t\r\f]+", Whitespace),
            (r"\n", Whitespace),
            (r"\\\n", Text),  # a line continuation
            (r"#[^\n]*", Comment.Single),
            (
                rf"\b(def|model|train)(\s+)({IDENT})",
                bygroups(Keyword.Declaration, Whitespace, Name.Function),
            ),
            # `from nn` and a line's `import nn` name modules; in `from nn import f`, f is not one
            (rf"\b(from)(\s+)({IDENT})", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            (
                rf"^([ \t]*)(import)(\s+)({IDENT})",
                bygroups(Whitespace, Keyword.Namespace, Whitespace, Name.Namespace),
            ),
            (rf"\b(as)(\s+)({IDENT})", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            (words(NAMESPACE, prefix=r"\b", suffix=r"\b"), Keyword.Namespace),
            (words(("param", "state"), prefix=r"\b", suffix=r"\b"), Keyword.Declaration),
            (words(KEYWORDS, prefix=r"\b", suffix=r"\b"), Keyword),
            (words(CONSTANTS, prefix=r"\b", suffix=r"\b"), Keyword.Constant),
            (words(DTYPES + COMPILE_TIME_TYPES, prefix=r"\b", suffix=r"\b"), Keyword.Type),
            # `dtype` is a type only where an argument's type goes: `F: dtype`.
            (r"(:)(\s*)(dtype)\b", bygroups(Punctuation, Whitespace, Keyword.Type)),
            (words(BUILTINS, prefix=r"\b", suffix=r"\b"), Name.Builtin),
            (words(INITIALIZERS, prefix=r"\b", suffix=r"\b"), Name.Builtin.Pseudo),
            (rf"{IDENT}(?=\s*\()", Name.Function),
            (IDENT, Name),
            (r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r'"', String.Double, "string"),
            (r"->|\*\*|//|==|!=|<=|>=|[-+*/%@<>=]", Operator),
            (r"\.\.\.|\?", Punctuation),  # in types: any number of dims, a run-time dim
            (r"[()\[\]{},:;.]", Punctuation),
            (r".", Error),
        ],
        "string": [
            (r'\\["\\nt]', String.Escape),
            (r'[^"\\\n]+', String.Double),
            (r'"', String.Double, "#pop"),
            (r"\\.?|\n", Error, "#pop"),  # a bad escape, or the line ends before the quote
        ],
    }
