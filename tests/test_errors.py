"""Every mistake a `.irn` author can make ends in one located `IrnError`: the right line and
column, a message that says what is wrong (and, for shapes, names the op and both shapes), and
through the `irnet` command line a `file:line:col: error:` paragraph with a caret, exit status 1
and no traceback.

The main table is `ERRORS`: (id, source, line, column, message regex, strings the message must
mention). A bug found later belongs in the table as a strict xfail whose reason starts with
"BUG:", so that the suite says when it is fixed.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from textwrap import dedent

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.dialects.func import ReturnOp
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from irnet import driver
from irnet.diagnostics import MAX_SOURCE_BYTES, IrnError
from irnet.parser import MAX_NESTING

FILE = "t.irn"
BIN = Path(sys.executable).parent


def src(text: str) -> str:
    """A source text written indented in this file, its first line being line 1."""
    return dedent(text).lstrip("\n")


def case(id, source, line, column, pattern, mentions=(), marks=()):
    return pytest.param(src(source), line, column, pattern, mentions, id=id, marks=marks)


def compile_error(source: str, name: str = FILE) -> IrnError:
    with pytest.raises(IrnError) as info:
        driver.compile_source(source, name)
    return info.value


def check_rendering(err: IrnError, file: str) -> None:
    """`str(err)` is `file:line:col: error: message`, the source line, then a caret under the
    column."""
    header, *rest = str(err).splitlines()
    assert header == f"{file}:{err.loc.line}:{err.loc.column}: error: {err.message}"
    quoted, caret = rest[0], rest[1]
    assert caret.strip() == "^"
    assert len(caret) - 4 == err.loc.column  # both are indented by four spaces
    assert quoted.startswith("    ")


# fmt: off
ERRORS = [
    # --- syntax --------------------------------------------------------------------------------
    case(
        "syntax-missing-operand",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x +
        }
        """,
        2, 15, r"^unexpected end of line; expected .*a name",
    ),
    case(
        "syntax-unexpected-character",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x $ 1
        }
        """,
        2, 14, r"^unexpected character '\$'$",
    ),
    case(
        "syntax-unclosed-parenthesis",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return relu(x
        }
        """,
        3, 1, r"^unexpected '\}'; expected .*'\)'",
    ),
    case(
        "syntax-missing-brace",
        """
        model m(x: f32[N]) -> f32[N]
            return x
        }
        """,
        1, 29, r"^unexpected end of line; expected .*'\{'",
    ),
    case(
        "syntax-untyped-argument",
        """
        def f(x) -> f32[N] {
            return x
        }
        """,
        1, 8, r"^unexpected '\)'; expected ':'",
    ),
    case(
        "syntax-statement-at-top-level",
        """
        x = 3
        """,
        1, 1, r"^unexpected 'x'; expected .*model",
    ),
    case(
        "unknown-dtype",
        """
        model m(x: f16[N]) -> f32[N] {
            return x
        }
        """,
        1, 12, r"^unknown dtype 'f16'",
    ),
    case(
        "syntax-missing-arrow",
        """
        model m()
        """,
        1, 10, r"^unexpected end of (line|file); expected '->', '\{'$",
    ),
    case(
        "syntax-expected-tokens-spelled-as-written",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x[.]
        }
        """,
        2, 14, r"^(?!.*__anon)unexpected '\.'; expected .*'\.\.\.'",
    ),
    case(
        "syntax-expected-keywords-spelled-as-written",
        """
        def f(a: 3) -> f32 {
            return a
        }
        """,
        1, 10, r"^(?!.*_kw)unexpected '3'; expected .*'float', 'int'",
    ),
    case(
        "syntax-positional-after-keyword",
        """
        model m(x: f32[N, 3]) -> f32[3] {
            return sum(axis=0, x)
        }
        """,
        2, 24, r"positional argument (follows|after) (a )?keyword",
    ),
    # --- names, calls and arguments ------------------------------------------------------------
    case(
        "unknown-name-did-you-mean",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return relu(xx)
        }
        """,
        2, 17, r"^unknown name 'xx'; did you mean 'x'\?$",
    ),
    case(
        "unknown-name-nothing-close",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return relu(qqq)
        }
        """,
        2, 17, r"^unknown name 'qqq'$",
    ),
    case(
        "unknown-function-did-you-mean",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return rellu(x)
        }
        """,
        2, 12, r"^unknown name 'rellu'; did you mean 'relu'\?$",
    ),
    case(
        "if-statement",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            if x { return x }
            return x
        }
        """,
        2, 5, r"^'if' is not a statement of the language: .*use `where\(cond, a, b\)`$",
    ),
    case(
        "while-statement",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            while x { x = x }
            return x
        }
        """,
        2, 5, r"^'while' is not a statement of the language: a loop over a run-time extent is `",
    ),
    case(
        "unknown-name-the-stdlib-defines",
        """
        model m(x: f32[N, 3]) -> f32[N, 4] {
            return dense(x, 4)
        }
        """,
        2, 12,
        r"^unknown name 'dense': the standard library's nn defines it; "
        r"add `from nn import dense` \(or `import nn` and write `nn.dense`\)$",
    ),
    case(
        "unknown-library-function",
        """
        import nn
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return nn.dens(x, 3)
        }
        """,
        3, 12, r"^stdlib/nn\.irn has no 'dens'; did you mean 'dense'\?$",
    ),
    case(
        "not-callable",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x(1)
        }
        """,
        2, 12, r"^a tensor f32\[\?, 3\] is not callable$",
    ),
    case(
        "builtin-too-many-arguments",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return relu(x, x)
        }
        """,
        2, 12, r"^relu\(\) takes 1 argument but 2 were given$",
    ),
    case(
        "builtin-missing-argument",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return reshape(x)
        }
        """,
        2, 12, r"^reshape\(\) is missing the argument 'shape'$",
    ),
    case(
        "builtin-unknown-keyword",
        """
        model m(x: f32[N, 3]) -> f32[N] {
            return sum(x, axs=1)
        }
        """,
        2, 19, r"^sum\(\) has no parameter 'axs'; did you mean 'axis'\?$",
    ),
    case(
        "builtin-argument-given-twice",
        """
        model m(x: f32[N, 3]) -> f32[N] {
            return sum(x, 1, axis=1)
        }
        """,
        2, 22, r"^sum\(\) got two values for 'axis'$",
    ),
    case(
        "def-missing-argument",
        """
        def f(a: f32[...], k: int) -> f32[...] {
            return a
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x)
        }
        """,
        5, 12, r"^f\(\) is missing the argument 'k'$",
    ),
    case(
        "def-too-many-arguments",
        """
        def f(a: f32[...], k: int) -> f32[...] {
            return a
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x, 1, 2)
        }
        """,
        5, 12, r"^f\(\) takes 2 arguments but 3 were given$",
    ),
    case(
        "def-unknown-keyword",
        """
        def f(a: f32[...], units: int) -> f32[...] {
            return a
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x, unit=1)
        }
        """,
        5, 17, r"^f\(\) has no parameter 'unit'; did you mean 'units'\?$",
    ),
    case(
        "def-compile-time-argument-type",
        """
        def f(a: f32[...], k: int) -> f32[...] {
            return a
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x, 1.5)
        }
        """,
        5, 12, r"^argument 'k' of f must be int, got 1\.5$",
    ),
    case(
        "def-argument-is-a-function",
        """
        from nn import dense
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return dense(dense, 3)
        }
        """,
        3, 12, r"^argument 'x' of dense must be a tensor, got the function 'dense'$",
    ),
    case(
        "model-input-not-a-tensor",
        """
        model m(x: int) -> f32[3] {
            return x
        }
        """,
        1, 9, r"^model inputs must be tensors; 'x' is a compile-time int$",
    ),
    case(
        "duplicate-function",
        """
        def f(a: f32[...]) -> f32[...] {
            return a
        }
        def f(a: f32[...]) -> f32[...] {
            return a
        }
        """,
        4, 1, r"^'f' is defined twice in t\.irn$",
    ),
    case(
        "duplicate-argument-name",
        """
        model m(x: f32[N, 3], x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        """,
        1, 23, r"'x'.*(twice|duplicate|already)",
    ),
    # --- initialisers --------------------------------------------------------------------------
    case(
        "initialiser-unknown",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[3, 3] = glorot
            return x @ w
        }
        """,
        2, 26, r"^unknown initialiser 'glorot'; did you mean 'glorot_(uniform|normal)'\?$",
    ),
    case(
        "initialiser-unknown-argument",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[3, 3] = normal(sdt=1.0)
            return x @ w
        }
        """,
        2, 26, r"^initialiser 'normal' has no argument 'sdt' \(it takes mean, std\)$",
    ),
    case(
        "initialiser-missing-argument",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[3, 3] = constant
            return x @ w
        }
        """,
        2, 26, r"^initialiser 'constant' needs the argument 'value'$",
    ),
    case(
        "initialiser-positional-argument",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[3, 3] = normal(0.1)
            return x @ w
        }
        """,
        2, 26, r"^an initialiser is a name such as `zeros` or a call with keyword arguments",
    ),
    case(
        "initialiser-argument-not-a-number",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[3, 3] = normal(std=x)
            return x @ w
        }
        """,
        2, 33, r"^initialiser argument 'std' must be a number$",
    ),
    # --- parameters ----------------------------------------------------------------------------
    case(
        "param-shape-depends-on-runtime-dim",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[N, 3] = zeros
            return x * w
        }
        """,
        2, 18, r"shape of parameter 'w' depends on a dimension known only at run time",
    ),
    case(
        "param-integer-dtype",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: i32[3] = zeros
            return x
        }
        """,
        2, 14, r"^parameters are float tensors; 'w' is i32$",
    ),
    case(
        "param-negative-dim",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[-3] = zeros
            return x
        }
        """,
        2, 18, r"^parameter 'w' has a negative dimension -3$",
    ),
    case(
        "param-defined-twice",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[3] = zeros
            param w: f32[3] = ones
            return x * w
        }
        """,
        3, 5, r"^'w' is already defined$",
    ),
    case(
        "state-integer-dtype",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            state count: i32[3] = zeros
            return x
        }
        """,
        2, 18, r"^state tensors are float tensors; 'count' is i32$",
    ),
    case(
        "state-run-time-shape",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            state s: f32[N] = zeros
            return x
        }
        """,
        2, 18, r"^the shape of state tensor 's' depends on a dimension known only at run time",
    ),
    case(
        "state-next-value-of-another-shape",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            state total: f32[3] = zeros
            total = total + x
            return x
        }
        """,
        3, 5, r"^state 'total' is f32\[3\]; its next value must be too, but this is f32\[\?, 3\]$",
    ),
    case(
        "state-next-value-of-another-dtype",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            state total: f32[3] = zeros
            total = total > 0.0
            return x
        }
        """,
        3, 5, r"^state 'total' is f32\[3\]; its next value must be too, but this is bool\[3\]$",
    ),
    case(
        "state-named-as-a-parameter",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[3] = zeros
            state w: f32[3] = zeros
            return x * w
        }
        """,
        3, 5, r"^'w' is already defined$",
    ),
    case(
        "signature-negative-dim",
        """
        model m(x: f32[N, -3]) -> f32[N, -3] {
            return x
        }
        """,
        1, 19, r"negative dimension",
    ),
    case(
        "broadcast-to-negative-dim",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return broadcast_to(x, [-1, 3])
        }
        """,
        2, 12, r"negative",
    ),
    case(
        "runtime-dim-as-value",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x * N
        }
        """,
        2, 14, r"\bN\b.*a dimension known only at run time",
    ),
    case(
        "runtime-dim-as-range",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x * len(range(N))
        }
        """,
        2, 20, r"\bN\b.*a dimension known only at run time",
    ),
    case(
        "runtime-dim-negated",
        """
        model m(x: f32[N, 3]) -> f32[] {
            return -N
        }
        """,
        2, 12, r"\bN\b.*a dimension known only at run time",
    ),
    # --- dtypes --------------------------------------------------------------------------------
    case(
        "dtype-f32-plus-f64",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x + cast(x, f64)
        }
        """,
        2, 14, r"^dtype clash in nn\.add: .* \(insert an explicit cast\)$",
        ("nn.add", "f32[?, 3]", "f64[?, 3]"),
    ),
    case(
        "dtype-float-literal-with-int-tensor",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return cast(cast(x, i32) + 1.5, f32)
        }
        """,
        2, 30, r"^dtype clash: the float 1\.5 cannot become an i32\[\?, 3\] value$",
    ),
    case(
        "dtype-not-a-dtype",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return cast(x, f32) + cast(x, [1])
        }
        """,
        2, 27, r"^expected a dtype \(f32, f64, i32, i64, bool\), got the list \[1\]$",
    ),
    case(
        "dtype-float-op-on-int",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return cast(relu(cast(x, i32)), f32)
        }
        """,
        2, 17, r"needs a floating-point tensor",
        ("nn.relu", "i32[?, 3]"),
    ),
    # --- shapes --------------------------------------------------------------------------------
    case(
        "shape-matmul-inner-dims",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[4, 3] = zeros
            return x @ w
        }
        """,
        3, 14, r"inner dimensions differ",
        ("nn.matmul", "f32[?, 3]", "f32[4, 3]"),
    ),
    case(
        "shape-broadcast",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param b: f32[4] = zeros
            return x + b
        }
        """,
        3, 14, r"cannot broadcast",
        ("nn.add", "f32[?, 3]", "f32[4]"),
    ),
    case(
        "shape-conv2d-channels",
        """
        model m(x: f32[N, 3, 8, 8]) -> f32[N, 2, 6, 6] {
            param w: f32[2, 5, 3, 3] = zeros
            return conv2d(x, w)
        }
        """,
        3, 12, r"has 3 channels but weight .* expects 5",
        ("nn.conv2d", "f32[?, 3, 8, 8]", "f32[2, 5, 3, 3]"),
    ),
    case(
        "shape-conv2d-window-larger-than-input",
        """
        model m(x: f32[N, 3, 8, 8]) -> f32[N, 2, 1, 1] {
            param w: f32[2, 3, 9, 9] = zeros
            return conv2d(x, w)
        }
        """,
        3, 12, r"window of size 9 .*does not fit an input of size 8",
        ("nn.conv2d", "f32[?, 3, 8, 8]", "f32[2, 3, 9, 9]"),
    ),
    case(
        "shape-pool-window-larger-than-input",
        """
        model m(x: f32[N, 3, 8, 8]) -> f32[N, 3, 1, 1] {
            return max_pool2d(x, 9)
        }
        """,
        2, 12, r"window of size 9 .*does not fit an input of size 8",
        ("nn.max_pool2d", "f32[?, 3, 8, 8]", "kernel 9"),
    ),
    case(
        "shape-pool-rank",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return max_pool2d(x, 2)
        }
        """,
        2, 12, r"needs a rank-4 tensor",
        ("nn.max_pool2d", "f32[?, 3]"),
    ),
    case(
        "shape-pool-kernel-zero",
        """
        model m(x: f32[N, 3, 8, 8]) -> f32[N, 3, 8, 8] {
            return max_pool2d(x, 0)
        }
        """,
        2, 12, r"^nn\.max_pool2d: kernel must be", ("nn.max_pool2d", "[0, 0]"),
    ),
    case(
        "shape-reshape-element-count",
        """
        model m(x: f32[N, 3]) -> f32[5] {
            param w: f32[2, 3] = zeros
            return reshape(w, [5])
        }
        """,
        3, 12, r"element counts differ",
        ("nn.reshape", "f32[2, 3]", "[5]"),
    ),
    case(
        "shape-concat",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[2, 4] = zeros
            return concat([x, w], axis=0)
        }
        """,
        3, 12, r"differ in another dimension",
        ("nn.concat", "f32[?, 3]", "f32[2, 4]"),
    ),
    case(
        "shape-declared-result",
        """
        model m(x: f32[N, 3]) -> f32[N, 4] {
            return x
        }
        """,
        1, 26, r"^'m' is declared to return f32\[N, 4\] \(f32\[\?, 4\]\) but returns f32\[\?, 3\]$",
        ("'m'", "f32[N, 4]", "f32[?, 3]"),
    ),
    case(
        "shape-declared-result-dtype",
        """
        model m(x: f32[N, 3]) -> f64[N, 3] {
            return x
        }
        """,
        1, 26, r"^'m' is declared to return f64\[N, 3\]",
        ("'m'", "f64[N, 3]", "f32[?, 3]"),
    ),
    case(
        "shape-declared-result-rank",
        """
        model m(x: f32[N, 3]) -> f32[N] {
            return x
        }
        """,
        1, 26, r"^'m' is declared to return f32\[N\] (\(f32\[\?\]\) )?but returns f32\[\?, 3\]$",
        ("'m'", "f32[N]", "f32[?, 3]"),
    ),
    case(
        "shape-argument-of-def",
        """
        def f(a: f32[M, 4]) -> f32[M, 4] {
            return a
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x)
        }
        """,
        5, 12, r"^argument 'a' of f expects f32\[M, 4\], got f32\[\?, 3\]$",
        ("f", "f32[M, 4]", "f32[?, 3]"),
    ),
    case(
        "shape-argument-dims-bound-by-earlier-argument",
        """
        def g(a: f32[M, K], b: f32[K, P]) -> f32[M, P] {
            return a @ b
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            param w: f32[4, 3] = zeros
            return g(x, w)
        }
        """,
        6, 12, r"^argument 'b' of g expects f32\[K, P\], got f32\[4, 3\]$",
        ("g", "f32[K, P]", "f32[4, 3]"),
    ),
    case(
        "shape-argument-of-library-function",
        """
        import nn
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train m(y: f32[N]) {
            loss = nn.cross_entropy(m(x), y)
        }
        """,
        6, 12, r"^argument 'labels' of cross_entropy expects i32\[N\], got f32\[\?\]$",
        ("cross_entropy", "i32[N]", "f32[?]"),
    ),
    case(
        "type-two-ellipses",
        """
        def f(a: f32[..., ...]) -> f32[...] {
            return a
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x)
        }
        """,
        1, 19, r"(only one|more than one|at most one) `?\.\.\.`?",
    ),
    case(
        "shape-index-out-of-range",
        """
        model m(x: f32[N, 3]) -> f32[N] {
            return x[:, 5]
        }
        """,
        2, 12, r"^index 5 is out of range for dimension 1 of size 3$",
        ("index 5", "size 3"),
    ),
    case(
        "shape-too-many-subscripts",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x[0, 0, 0]
        }
        """,
        2, 12, r"^too many subscripts \(3\) for f32\[\?, 3\]$",
        ("(3)", "f32[?, 3]"),
    ),
    case(
        "shape-list-index-out-of-range",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            sizes = [1, 2]
            return x * sizes[2]
        }
        """,
        3, 16, r"^index 2 is out of range for a list of 2$",
        ("index 2", "list of 2"),
    ),
    case(
        "shape-transpose-permutation",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return transpose(x, [0, 0])
        }
        """,
        2, 12, r"is not a permutation",
        ("nn.transpose", "[0, 0]", "f32[?, 3]"),
    ),
    case(
        "shape-axis-out-of-range",
        """
        model m(x: f32[N, 3]) -> f32[N] {
            return sum(x, axis=5)
        }
        """,
        2, 12, r"axis 5 is out of range",
        ("nn.reduce_sum", "f32[?, 3]"),
    ),
    case(
        "shape-loss-not-scalar",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train m(y: f32[N, 3]) {
            loss = m(x) - y
        }
        """,
        5, 17, r"^the loss must be a float scalar, but this is f32\[\?, 3\] \(reduce it",
        ("loss", "f32[?, 3]"),
    ),
    case(
        "shape-model-called-with-other-type",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train m(y: f32[N, 4]) {
            loss = mean(m(y))
        }
        """,
        5, 17, r"^argument 'x' of model m expects f32\[(N|\?), 3\], got (a tensor )?f32\[\?, 4\]$",
        ("m", "f32[", ", 3]", "f32[?, 4]"),
    ),
    # --- compile-time values -------------------------------------------------------------------
    case(
        "compile-time-division-by-zero",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x * (1 / 0)
        }
        """,
        2, 19, r"^compile-time arithmetic failed: division by zero$",
    ),
    case(
        "compile-time-compare-list",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x * ([1] < 2)
        }
        """,
        2, 21, r"cannot (apply|compare) '<' .*list",
    ),
    case(
        "int-too-big-for-an-axis",
        """
        model m(x: f32[N, 3]) -> f32[N] {
            return sum(x, axis=100000000000000000000)
        }
        """,
        2, 12, r"axis",
    ),
    case(
        "int-too-big-for-f32",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x * 1000000000000000000000000000000000000000000
        }
        """,
        2, 14, r"(too large|out of range|does not fit)",
    ),
    case(
        "int-too-big-for-i32",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return cast(cast(x, i32) * 10000000000, f32)
        }
        """,
        2, 30, r"(too large|out of range|does not fit)",
    ),
    case(
        "int-too-big-for-one-hot",
        """
        model m(x: i32[N]) -> f32[N, 3] {
            return one_hot(x, 100000000000000000000)
        }
        """,
        2, 12, r"num_classes",
    ),
    case(
        "for-over-a-tensor",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            for row in x {
                y = row
            }
            return x
        }
        """,
        2, 16, r"^`for` loops run over a compile-time list, got a tensor f32\[\?, 3\]; a loop over",
    ),
    case(
        "assign-to-signature-dim",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            N = 3
            return x
        }
        """,
        2, 5, r"^'N' is a dimension of the signature; pick another name$",
    ),
    case(
        "ellipsis-in-model-signature",
        """
        model m(x: f32[...]) -> f32[...] {
            return x
        }
        """,
        1, 16, r"^`\.\.\.` is not allowed in a model signature",
    ),
    case(
        "matmul-with-a-number",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x @ 2
        }
        """,
        2, 14, r"^`@` multiplies two tensors$",
    ),
    # --- return --------------------------------------------------------------------------------
    case(
        "return-missing",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            y = x
        }
        """,
        1, 1, r"^'m' does not return a value \(add `return \.\.\.`\)$",
    ),
    case(
        "return-followed-by-unreachable-code",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
            y = x
        }
        """,
        3, 5, r"^unreachable statement after `return`$",
    ),
    case(
        "return-inside-for",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            for i in [1, 2] {
                return x
            }
            return x
        }
        """,
        2, 5, r"^`return` inside a `for` loop is not supported$",
    ),
    # --- recursion -----------------------------------------------------------------------------
    case(
        "recursion-def",
        """
        def f(a: f32[...]) -> f32[...] {
            return f(a)
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x)
        }
        """,
        2, 12, r"^'f' calls itself; recursion is not supported$",
    ),
    case(
        "recursion-mutual",
        """
        def f(a: f32[...]) -> f32[...] {
            return g(a)
        }
        def g(a: f32[...]) -> f32[...] {
            return f(a)
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x)
        }
        """,
        5, 12, r"^'f' calls itself; recursion is not supported$",
    ),
    case(
        "recursion-model",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return m(x)
        }
        """,
        1, 1, r"^model 'm' calls itself$",
    ),
    # --- train blocks --------------------------------------------------------------------------
    case(
        "train-unknown-entry",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train m(y: f32[N, 3]) {
            los = mean(m(x) - y)
        }
        """,
        5, 5, r"^unknown train entry 'los'; did you mean 'loss'\? \(entries: data, loss,",
    ),
    case(
        "train-entry-given-twice",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train m(y: f32[N, 3]) {
            loss = mean(m(x) - y)
            loss = sum(m(x) - y)
        }
        """,
        6, 5, r"^train entry 'loss' is given twice$",
    ),
    case(
        "train-missing-loss",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train m(y: f32[N, 3]) {
            epochs = 3
        }
        """,
        4, 1, r"^train block for 'm' has no `loss = \.\.\.` entry$",
    ),
    case(
        "train-unknown-model",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train mm(y: f32[N, 3]) {
            loss = mean(m(x) - y)
        }
        """,
        4, 1, r"^train block names no model 'mm'; did you mean 'm'\?$",
    ),
    case(
        "train-names-a-def",
        """
        def f(a: f32[...]) -> f32[...] {
            return a
        }
        train f(y: f32[N]) {
            loss = mean(y)
        }
        """,
        4, 1, r"^train block names no model 'f'$",
    ),
    case(
        "train-target-not-a-tensor",
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x
        }
        train m(y: int) {
            loss = mean(m(x))
        }
        """,
        4, 9, r"^train target 'y' must be a tensor$",
    ),
    # --- imports -------------------------------------------------------------------------------
    case(
        "import-missing-module",
        """
        import nosuchmodule
        """,
        1, 1, r"^cannot find module 'nosuchmodule' \(looked for .*nosuchmodule\.irn and the",
    ),
    case(
        "import-missing-file",
        """
        import "layers/nosuch.irn" as layers
        """,
        1, 1, r"^cannot find module 'layers/nosuch\.irn'",
    ),
    case(
        "import-nonexistent-name",
        """
        from nn import dense, nonexistent
        """,
        1, 1, r"^stdlib/nn\.irn defines no function 'nonexistent'$",
    ),
    case(
        "import-a-builtin",
        """
        from nn import log_softmax
        """,
        1, 1, r"^stdlib/nn\.irn defines no function 'log_softmax'; 'log_softmax' is a builtin, "
        r"usable without an import$",
    ),
    case(
        "import-name-twice",
        """
        import nn
        import nn
        """,
        2, 1, r"^'nn' is defined twice in t\.irn$",
    ),
]
# fmt: on


ERRORS_BY_ID = {p.id: p.values for p in ERRORS}


@pytest.mark.parametrize(("source", "line", "column", "pattern", "mentions"), ERRORS)
def test_error(source, line, column, pattern, mentions):
    err = compile_error(source)
    assert re.search(pattern, err.message), err.message
    assert (err.loc.file, err.loc.line, err.loc.column) == (FILE, line, column), str(err)
    for word in mentions:
        assert word in err.message, f"{word!r} is not in: {err.message}"
    check_rendering(err, FILE)


def test_every_shape_case_checks_what_its_message_names():
    """A shape error must name the op (or function) and both shapes (or the shape and the
    offending size): every shape case in the table lists at least two of them."""
    shape_cases = [p for p in ERRORS if p.id.startswith("shape-")]
    assert len(shape_cases) >= 20
    assert [p.id for p in shape_cases if len(p.values[4]) < 2 and not p.marks] == []


def test_error_inside_a_library_function_notes_the_call_site():
    source = src(
        """
        from nn import dense
        model m(x: f32[N]) -> f32[N, 3] {
            return dense(x, 3)
        }
        """
    )
    err = compile_error(source)
    assert err.loc.file == "stdlib/nn.irn"  # the `param w: ...[I, units]` that cannot be built
    check_rendering(err, "stdlib/nn.irn")
    assert any("t.irn:3:12" in note for note in err.notes), str(err)


# --- programs that must compile ------------------------------------------------------------------

VALID = [
    pytest.param(
        """
        model m(x: f32[N, 3]) -> f32[2, 3] {
            return broadcast_to(x[0], [2, 3])
        }
        """,
        id="broadcast-to-a-shape",
    ),
    pytest.param(
        """
        def scale(a: f32[...], k: float = 2.0) -> f32[...] {
            return a * k
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return scale(x) + scale(x, k=0.5)
        }
        """,
        id="compile-time-default",
    ),
    pytest.param(
        """
        def f(a: f32[...], b: f32[...] = relu(a)) -> f32[...] {
            return a + b
        }
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return f(x)
        }
        """,
        id="tensor-default-argument",
    ),
]


@pytest.mark.parametrize("source", VALID)
def test_valid_program_compiles(source):
    driver.compile_source(src(source), FILE)


# --- files: import cycles and unreadable imports --------------------------------------------------


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(src(text), encoding="utf-8")


def load_error(path: Path) -> IrnError:
    with pytest.raises(IrnError) as info:
        driver.load(path)
    return info.value


MODEL_USING_B = """
    import b
    model m(x: f32[N]) -> f32[N] {
        return b.f(x)
    }
    """
DEF_USING_A = """
    import a
    def f(x: f32[...]) -> f32[...] {
        return x
    }
    """


@pytest.mark.parametrize(
    ("files", "main", "where", "pattern"),
    [
        pytest.param(
            {"a.irn": MODEL_USING_B, "b.irn": DEF_USING_A},
            "a.irn", ("b.irn", 1, 1), r"^import cycle: a\.irn -> b\.irn -> a\.irn$",
            id="two-files",
        ),
        pytest.param(
            {"self.irn": "import self\n"},
            "self.irn", ("self.irn", 1, 1), r"^import cycle: self\.irn -> self\.irn$",
            id="self",
        ),
        pytest.param(
            {"main.irn": 'import "lib/c.irn" as c\n', "lib/c.irn": 'import "../main.irn" as m\n'},
            "main.irn", ("lib/c.irn", 1, 1), r"^import cycle: main\.irn -> c\.irn -> main\.irn$",
            id="through-a-folder",
        ),
        pytest.param(
            {"main.irn": "import lib\n", "lib.irn": "def f(x: f32[...]) -> f32[...] {\n"},
            "main.irn", ("lib.irn", 1, 33), r"^unexpected end of file",
            id="syntax-error-in-an-import",
        ),
    ],
)  # fmt: skip
def test_import_errors_in_files(tmp_path, files, main, where, pattern):
    write(tmp_path, files)
    err = load_error(tmp_path / main)
    file, line, column = where
    assert re.search(pattern, err.message), err.message
    assert (err.loc.file, err.loc.line, err.loc.column) == (str(tmp_path / file), line, column)
    check_rendering(err, str(tmp_path / file))


def test_import_of_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / "bad.irn").write_bytes(b"\xff\xfe not text")
    (tmp_path / "main.irn").write_text("import bad\n")
    err = load_error(tmp_path / "main.irn")
    assert "bad.irn" in err.message
    assert (err.loc.line, err.loc.column) == (1, 1)


def test_main_file_that_is_not_utf8(tmp_path):
    (tmp_path / "bad.irn").write_bytes(b"\xff\xfe not text")
    err = load_error(tmp_path / "bad.irn")
    assert (err.loc.file, err.loc.line, err.loc.column) == (str(tmp_path / "bad.irn"), 1, 1)
    assert err.message == f"not UTF-8 text: invalid byte 0xff in {tmp_path / 'bad.irn'}"


# --- the command line ----------------------------------------------------------------------------


def irnet_check(path: Path, timeout: float = 60, memory: int | None = None):
    """`irnet check PATH` as a user runs it, optionally under an address-space limit."""

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [str(BIN / "irnet"), "check", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit_memory if memory else None,
    )


CLI_CASES = ["syntax-unclosed-parenthesis", "unknown-name-did-you-mean", "shape-matmul-inner-dims",
             "train-missing-loss", "import-nonexistent-name"]  # fmt: skip


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_reports_error_with_location_and_caret(tmp_path, case_id):
    source, line, column, pattern, _ = ERRORS_BY_ID[case_id]
    path = tmp_path / "model.irn"
    path.write_text(source, encoding="utf-8")
    result = irnet_check(path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}:{line}:{column}: error: ")
    assert re.search(pattern, result.stderr.splitlines()[0].split(": error: ", 1)[1])
    caret = result.stderr.splitlines()[2]
    assert caret.strip() == "^" and len(caret) - 4 == column
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_cli_error_in_an_imported_file_names_that_file(tmp_path):
    write(tmp_path, {"a.irn": MODEL_USING_B, "b.irn": DEF_USING_A})
    result = irnet_check(tmp_path / "a.irn")
    assert result.returncode == 1
    assert result.stderr.startswith(f"{tmp_path / 'b.irn'}:1:1: error: import cycle: ")
    assert "Traceback" not in result.stderr


def test_cli_import_of_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / "bad.irn").write_bytes(b"\xff\xfe not text")
    (tmp_path / "main.irn").write_text("import bad\n")
    result = irnet_check(tmp_path / "main.irn")
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr


# Inputs that make the frontend run away. Run in a subprocess with a time and memory limit, so a
# hang or a runaway allocation fails the test instead of the test run.
RUNAWAY = [
    pytest.param(
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            for i in range(1000000000) {
                y = x
            }
            return x
        }
        """,
        2, 14,
        id="unrolling-a-huge-range",
    ),
    pytest.param(
        """
        model m(x: f32[N, 3]) -> f32[N, 3] {
            return x * (9 ** 9 ** 9 > 0)
        }
        """,
        2, 19,
        id="compile-time-power-tower",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("source", "line", "column"), RUNAWAY)
def test_runaway_input_is_a_clean_error(tmp_path, source, line, column):
    path = tmp_path / "runaway.irn"
    path.write_text(src(source), encoding="utf-8")
    try:
        result = irnet_check(path, timeout=4, memory=2 * 1024**3)
    except subprocess.TimeoutExpired:
        pytest.fail("irnet check ran for more than 4 s")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"{path}:{line}:{column}: error: ")


# --- bounded reads ------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_not_read_as_a_source():
    started = time.monotonic()
    err = load_error(Path("/dev/zero"))
    assert time.monotonic() - started < 5
    assert (
        err.message == "cannot read /dev/zero: it is a device, FIFO or socket, not a regular file"
    )


def test_a_fifo_or_a_folder_is_not_read_as_a_source(tmp_path):
    os.mkfifo(tmp_path / "pipe.irn")  # opening it would block until a writer came
    assert "pipe.irn: it is a device, FIFO or socket" in load_error(tmp_path / "pipe.irn").message
    (tmp_path / "dir.irn").mkdir()
    assert load_error(tmp_path / "dir.irn").message.endswith(
        "dir.irn: it is a folder, not a regular file"
    )


def test_a_huge_source_is_refused_unread(tmp_path):
    with open(tmp_path / "big.irn", "wb") as f:
        f.truncate(2**31)  # sparse: no disk used
    started = time.monotonic()
    err = load_error(tmp_path / "big.irn")
    assert time.monotonic() - started < 5
    assert err.message.endswith(
        f"larger than the {MAX_SOURCE_BYTES // 2**20} MiB a source file may be"
    )
    (tmp_path / "main.irn").write_text("\nimport big\n")
    err = load_error(tmp_path / "main.irn")  # an import: the error points at it
    assert err.message.startswith("cannot read ") and "big.irn: larger than" in err.message
    assert (err.loc.line, err.loc.column) == (2, 1)


def test_an_over_long_line_is_quoted_around_the_caret(tmp_path):
    before = f'def f() -> f32 {{ return "{"x" * 1_000_000}" '
    (tmp_path / "long.irn").write_text(f"{before}$ {'y' * 1_000_000} }}\n")
    err = load_error(tmp_path / "long.irn")
    assert (err.loc.line, err.loc.column) == (1, len(before) + 1)
    quoted, caret = str(err).split("\n")[1:3]
    assert len(quoted) < 200 and quoted.startswith("    ...x") and quoted.endswith("y...")
    assert quoted[caret.index("^")] == "$"


def test_invalid_utf8_is_located_at_line_and_column(tmp_path):
    before = 'def f() -> f32 { return "é" '  # columns count characters, not bytes
    (tmp_path / "bad.irn").write_bytes(f"# é\n{before}".encode() + b"\xff }\n")
    err = load_error(tmp_path / "bad.irn")
    assert (err.loc.file, err.loc.line, err.loc.column) == (str(tmp_path / "bad.irn"), 2, 29)
    assert len(before) == 28
    assert str(err).startswith(
        f"{tmp_path / 'bad.irn'}:2:29: error: not UTF-8 text: invalid byte 0xff in "
    )


def test_brackets_nested_a_megabyte_deep_are_refused_at_once(tmp_path):
    depth = 1_000_000
    (tmp_path / "deep.irn").write_text(f"def f() -> f32 {{ return {'(' * depth}1{')' * depth} }}\n")
    started = time.monotonic()
    tracemalloc.start()
    try:
        err = load_error(tmp_path / "deep.irn")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5 and peak < 200 * 2**20
    assert err.message == f"brackets nested more than {MAX_NESTING} deep"
    assert (err.loc.line, err.loc.column) == (1, 24 + MAX_NESTING)  # the brace counts too


class DropReturns(ModulePass):
    """A broken pass: makes every `func.return` return nothing, against its function's type."""

    name = "drop-returns"

    def apply(self, ctx, op: ModuleOp) -> None:
        for ret in [o for o in op.walk() if isinstance(o, ReturnOp)]:
            Rewriter.replace_op(ret, ReturnOp())


@pytest.mark.parametrize("verify_each", [True, False])
def test_ir_a_pass_breaks_is_refused_after_it_or_after_the_pipeline(monkeypatch, verify_each):
    monkeypatch.setitem(driver.PASSES, "drop-returns", lambda: DropReturns)
    source = "model m(x: f32[2]) -> f32[2] { return x * 2.0 }"
    module = driver.compile_source(source, "t.irn").module
    with pytest.raises(IrnError) as e:
        driver.run_passes(module, "canonicalize,drop-returns,cse", verify_each=verify_each)
    if verify_each:
        assert "after pass 'drop-returns' does not verify:" in str(e.value)
    else:
        assert "after the passes 'canonicalize,drop-returns,cse' does not verify" in str(e.value)
        assert "IRNET_VERIFY_EACH=1 names the pass" in str(e.value)
