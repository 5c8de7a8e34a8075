"""Fuzzing the frontend: whatever the input, `driver.compile_source` ends with verified IR or a
clean `IrnError` at a real location, within a time and a memory limit; never another
exception, never a hang.

Four sources of input, each a hypothesis strategy (derandomised, so CI is reproducible):
arbitrary text; random sequences of `.irn` tokens; random programs built from the grammar
(types, statements, expressions, calls of builtins and library functions); and the examples
and the standard library with random lines and tokens deleted, duplicated or swapped and
numbers changed. Then deep nesting, and a corpus of regressions.

Known bugs: `KNOWN_BUGS` lists the exceptions that bugs already reported (each with a strict
xfail here or in test_errors.py) raise, so that the fuzzers keep looking for new ones; each
hit is recorded as a hypothesis event (`pytest --hypothesis-show-statistics`). When a bug is
fixed, its xfail turns into a failure: delete the xfail mark and its entry here.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import resource
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lark.exceptions import VisitError

from irnet import driver
from irnet.diagnostics import IrnError

ROOT = Path(__file__).resolve().parent.parent
FILE = "fuzz.irn"
SECONDS_PER_INPUT = 5
"""A hang guard: no input may take longer (the slowest example compiles in ~0.1 s)."""
EXTRA_MEMORY = 3 * 1024**3
"""A runaway-allocation guard: address space an input may add to the test process."""

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,  # the SIGALRM limit below stops a hang; a deadline only measures it
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # the guards and the folder serve every example
    ],
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


# --- the property --------------------------------------------------------------------------------

KNOWN_BUGS: list[tuple[str, tuple[type[BaseException], ...], str]] = [
    # (bug, exception types, message regex) of bugs reported and not yet fixed; none now.
]  # fmt: skip


class Hang(BaseException):
    """Raised by SIGALRM in an input that runs too long (a BaseException, so that no
    `except Exception` in irnet or Lark can swallow it)."""


def known_bug(exc: BaseException) -> str | None:
    while isinstance(exc, VisitError):  # Lark wraps what a transformer callback raises
        exc = exc.orig_exc
    for name, types, pattern in KNOWN_BUGS:
        if isinstance(exc, types) and re.search(pattern, str(exc)):
            return name
    return None


@contextlib.contextmanager
def time_limit(seconds: float):
    if not hasattr(signal, "setitimer"):  # no SIGALRM (Windows): the watchdog still guards
        yield
        return

    def expire(signum, frame):
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(source: str, name: str = FILE, path: Path | None = None) -> str:
    """Compile `source`: "ir", or "error" for a well-formed IrnError; anything else (a hang
    included) raises."""
    try:
        with time_limit(SECONDS_PER_INPUT):
            driver.compile_source(source, name, path)
        return "ir"
    except IrnError as err:
        check_located(err, source, name)
        return "error"
    except Hang:
        raise AssertionError(f"no result within {SECONDS_PER_INPUT} s") from None


def check_clean(source: str, name: str = FILE, path: Path | None = None) -> str:
    """`outcome` inside a hypothesis test, letting known bugs pass (returning their name)."""
    try:
        return outcome(source, name, path)
    except Exception as exc:
        found = known_bug(exc)
        if found is None:
            raise
        event(f"known bug: {found}")
        return found


def check_located(err: IrnError, source: str, name: str) -> None:
    """The message is there, and a location in the compiled file is on one of its lines
    (or just past the end) and renders with its source line and a caret."""
    assert err.message.strip(), repr(err)
    rendered = str(err)
    if err.loc is None or err.loc.file != name:
        return
    lines = source.split("\n")
    assert 1 <= err.loc.line <= len(lines) + 1, rendered
    assert err.loc.column >= 1, rendered
    assert rendered.startswith(f"{name}:{err.loc.line}:{err.loc.column}: error: "), rendered
    if err.loc.line <= len(lines):
        assert rendered.split("\n")[2].strip() == "^", rendered


# --- guards: memory and a last-resort watchdog ---------------------------------------------------


def address_space() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def guarded():
    """Cap the address space (a runaway allocation then raises MemoryError instead of taking
    the machine's memory) and arm a watchdog that ends the run with a traceback should an
    input hang where SIGALRM cannot interrupt it (inside one long C call)."""
    used = address_space()
    if used is None or not hasattr(resource, "RLIMIT_AS"):
        pytest.skip("no way to cap memory here (needs Linux /proc and RLIMIT_AS)")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = used + EXTRA_MEMORY
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    faulthandler.dump_traceback_later(300, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --- strategy 1: arbitrary text ------------------------------------------------------------------


@fuzz(300)
@given(st.text())
def test_arbitrary_text(guarded, text):
    check_clean(text)


# --- strategy 2: random token sequences ----------------------------------------------------------

# fmt: off
KEYWORDS = ["import", "from", "as", "def", "model", "param", "return", "for", "in", "train",
            "int", "float", "true", "false", "f32", "f64", "i32", "i64", "bool"]
NAMES = ["x", "y", "h", "w", "b", "m", "f", "nn", "N", "C", "units", "loss", "relu", "dense",
         "mean", "sum", "reshape", "conv2d", "max_pool2d", "concat", "range", "zeros", "normal",
         "glorot_uniform", "cross_entropy", "std", "axis"]
NUMBERS = ["0", "1", "2", "3", "8", "-1", "0.5", "1e-3", ".5", "2."]
PUNCTUATION = ["+", "-", "*", "/", "@", "**", "==", "!=", "<", "<=", ">", ">=", "=", "->", ":",
               ",", ".", "...", "?", ";", "(", ")", "[", "]", "{", "}", "\n", '"nn"',
               "# comment\n"]
# fmt: on
TOKENS = KEYWORDS + NAMES + NUMBERS + PUNCTUATION

HEADERS = [
    "",
    "model m(x: f32[N, 3]) -> f32[N, 3] {\n    ",
    "model m(x: f32[N, 3]) -> f32[N, 3] {\n    return ",
    "import nn\nmodel m(x: f32[N, 1, 8, 8]) -> f32[N, 4] {\n    h = ",
    "def f(a: f32[..., I], k: int = 2) -> f32[..., k] {\n    param w: f32[",
    "model m(x: f32[N, 3]) -> f32[N, 3] {\n    return x\n}\ntrain m(y: f32[N, 3]) {\n    loss = ",
]


def no_power_towers(source: str) -> bool:
    """Skips inputs with three or more `**`: 3 ** 3 ** 3 ** 3 is the known power-tower hang
    (test_errors.py test_runaway_input_is_a_clean_error), one C call SIGALRM cannot stop."""
    return source.count("**") < 3


token_sequences = st.builds(
    lambda header, tokens: header + " ".join(tokens),
    st.sampled_from(HEADERS),
    st.lists(st.sampled_from(TOKENS), max_size=40),
).filter(no_power_towers)


@fuzz(300)
@given(token_sequences)
def test_random_token_sequences(guarded, source):
    check_clean(source)


# --- strategy 3: random programs from the grammar ------------------------------------------------

# fmt: off
DIMS = ["N", "C", "1", "3", "4", "8", "0", "?", "...", "N * 2", "units", "-1"]
DTYPES = ["f32", "f32", "f32", "f64", "i32", "i64", "bool"]
FUNCTIONS = ["relu", "exp", "log", "sqrt", "tanh", "sigmoid", "gelu", "abs", "maximum", "minimum",
             "where", "cast", "matmul", "transpose", "reshape", "broadcast_to", "sum", "mean",
             "max", "argmax", "softmax", "log_softmax", "conv2d", "max_pool2d", "avg_pool2d",
             "gather", "one_hot", "concat", "random_uniform", "training", "range", "len", "size",
             "nn.dense", "nn.conv", "nn.max_pool", "nn.flatten", "nn.layer_norm", "nn.batch_norm",
             "nn.dropout", "nn.embedding", "nn.mlp", "nn.mse", "nn.cross_entropy", "nn.accuracy",
             "f", "m", "nosuch"]
KEYWORD_ARGS = ["axis", "keepdims", "perm", "shape", "like", "stride", "padding", "dilation",
                "groups", "kernel", "dtype", "seed", "num_classes", "units", "k", "rate"]
ATOMS = ["x", "y", "h", "w", "a", "k", "N", "C", "i", "units", "nn", "0", "1", "2", "3", "8",
         "-1", "0.5", "1e-3", "true", "false", "f32", "i32", '"s"', "[]", "[1, 2]", "[N, 3]",
         "[0, 1]"]
SUBSCRIPTS = [":", "0", "1", "-1", "1:", ":2", "::2", "...", "0:1", "x", "cast(x, i32)"]
INITIALISERS = ["zeros", "ones", "glorot_uniform", "he_normal", "constant", "nope",
                "normal(std=0.1)", "uniform(low=0, high=2)", "constant(value=3)", "normal(1)",
                "normal(std=x)"]
BINARY = ["+", "-", "*", "/", "@", "**", "==", "<", ">="]
# fmt: on

names = st.sampled_from(["x", "y", "h", "w", "a", "i", "N"])
types = st.one_of(
    st.just("f32[N, 3]"),
    st.builds(
        lambda dtype, dims: f"{dtype}[{', '.join(dims)}]",
        st.sampled_from(DTYPES),
        st.lists(st.sampled_from(DIMS), max_size=4),
    ),
)


def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keyword = st.builds("{}={}".format, st.sampled_from(KEYWORD_ARGS), inner)
    return st.one_of(
        st.builds("({} {} {})".format, inner, st.sampled_from(BINARY), inner),
        st.builds("-{}".format, inner),
        st.builds(
            lambda f, args: f"{f}({', '.join(args)})",
            st.sampled_from(FUNCTIONS),
            st.lists(st.one_of(inner, keyword), max_size=4),
        ),
        st.builds(
            lambda value, subs: f"{value}[{', '.join(subs)}]",
            inner,
            st.lists(st.one_of(st.sampled_from(SUBSCRIPTS), inner), min_size=1, max_size=3),
        ),
        st.builds(lambda items: f"[{', '.join(items)}]", st.lists(inner, max_size=3)),
        st.builds("{}.{}".format, inner, st.sampled_from(["dense", "w", "nosuch"])),
    )


expressions = st.recursive(st.sampled_from(ATOMS), extend, max_leaves=10)
statements = st.one_of(
    st.builds("{} = {}".format, names, expressions),
    st.builds("param {}: {} = {}".format, names, types, st.sampled_from(INITIALISERS)),
    st.builds(
        "for {} in {} {{\n        {} = {}\n    }}".format, names, expressions, names, expressions
    ),
)


def body(stmts: list[str], result: str) -> str:
    return "".join(f"    {s}\n" for s in stmts) + f"    return {result}\n"


programs = st.builds(
    lambda imports, helper, sig, result_type, stmts, result, train: (
        imports + helper + f"model m({sig}) -> {result_type} {{\n{body(stmts, result)}}}\n" + train
    ),
    st.sampled_from(["", "import nn\n", "from nn import dense, mlp, cross_entropy\n"]),
    st.one_of(
        st.just(""),
        st.builds(
            lambda t, stmts, result: (
                f"def f(a: {t}, k: int = 2) -> {t} {{\n{body(stmts, result)}}}\n"
            ),
            types,
            st.lists(statements, max_size=2),
            expressions,
        ),
    ),
    st.one_of(st.just("x: f32[N, 3]"), st.builds("x: {}, y: {}".format, types, types)),
    types,
    st.lists(statements, max_size=4),
    expressions,
    st.one_of(
        st.just(""),
        st.builds("train m(t: {}) {{\n    loss = {}\n}}\n".format, types, expressions),
    ),
).filter(no_power_towers)


@fuzz(400)
@given(programs)
def test_random_programs(guarded, source):
    check_clean(source)


def test_random_programs_reach_the_frontend():
    """The grammar strategy is only worth its time if its programs get past the parser and,
    some of them, all the way to IR."""
    outcomes: list[str] = []

    @fuzz(100)
    @given(programs)
    def sample(source):
        try:
            driver.compile_source(source, FILE)
            outcomes.append("ir")
        except IrnError as err:
            outcomes.append("syntax" if err.message.startswith("unexpected") else "frontend")
        except Exception:
            outcomes.append("bug")  # test_random_programs reports these

    sample()
    assert outcomes.count("frontend") >= len(outcomes) // 2, outcomes
    assert "ir" in outcomes


# --- strategy 4: mutated examples and standard library ------------------------------------------

SEEDS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").glob("*.irn"))
SEEDS.append("irnet/stdlib/nn.irn")
STDLIB_USER = ROOT / "tests/programs/stdlib_all.irn"
"""Instantiates every function of nn.irn: a mutated nn.irn is compiled through it."""

TOKEN = re.compile(
    r"\s+|#[^\n]*|\"[^\"\n]*\"|[A-Za-z_]\w*|\d+\.?\d*(?:[eE][-+]?\d+)?|->|\*\*|\.\.\.|[=!<>]=|."
)
NUMBER = re.compile(r"\d")
NAME = re.compile(r"[A-Za-z_]\w*")
NEW_NUMBERS = ["0", "-1", "1000000000"]

Mutation = Callable[[st.DrawFn, str], str]


def pick(draw: st.DrawFn, count: int) -> int:
    return draw(st.integers(0, count - 1))


def on_lines(edit: Callable[[list[str], int, int], None]) -> Mutation:
    def mutate(draw: st.DrawFn, text: str) -> str:
        lines = text.split("\n")
        edit(lines, pick(draw, len(lines)), pick(draw, len(lines)))
        return "\n".join(lines)

    return mutate


def on_tokens(edit: Callable[[list[str], int, int, st.DrawFn], None]) -> Mutation:
    def mutate(draw: st.DrawFn, text: str) -> str:
        tokens = TOKEN.findall(text)
        solid = [i for i, t in enumerate(tokens) if not t.isspace()]
        edit(tokens, solid[pick(draw, len(solid))], solid[pick(draw, len(solid))], draw)
        return "".join(tokens)

    return mutate


def swap(items: list, i: int, j: int, *_) -> None:
    items[i], items[j] = items[j], items[i]


def change_number(tokens: list[str], _i: int, _j: int, draw: st.DrawFn) -> None:
    numbers = [k for k, t in enumerate(tokens) if NUMBER.match(t)]
    if numbers:
        tokens[numbers[pick(draw, len(numbers))]] = draw(st.sampled_from(NEW_NUMBERS))


def swap_names(tokens: list[str], _i: int, _j: int, draw: st.DrawFn) -> None:
    """Swap two identifiers: the syntax survives, so the frontend's checks get the input."""
    names = [k for k, t in enumerate(tokens) if NAME.fullmatch(t) and t not in KEYWORDS]
    swap(tokens, names[pick(draw, len(names))], names[pick(draw, len(names))])


MUTATIONS: dict[str, tuple[int, Mutation]] = {
    # name: (weight, mutation); syntax-preserving ones weigh more, to get past the parser
    "delete line": (1, on_lines(lambda lines, i, _j: lines.pop(i))),
    "duplicate line": (1, on_lines(lambda lines, i, j: lines.insert(j, lines[i]))),
    "swap lines": (1, on_lines(swap)),
    "delete token": (1, on_tokens(lambda tokens, i, _j, _d: tokens.pop(i))),
    "duplicate token": (1, on_tokens(lambda tokens, i, j, _d: tokens.insert(j, tokens[i]))),
    "swap tokens": (1, on_tokens(swap)),
    "swap names": (3, on_tokens(swap_names)),
    "change number": (4, on_tokens(change_number)),
}
MENU = sorted(name for name, (weight, _) in MUTATIONS.items() for _ in range(weight))


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, str]:
    seed = draw(st.sampled_from(SEEDS))
    text = (ROOT / seed).read_text(encoding="utf-8")
    for name in draw(st.lists(st.sampled_from(MENU), min_size=1, max_size=4)):
        text = MUTATIONS[name][1](draw, text)
    return seed, text


@pytest.fixture(scope="module")
def stdlib_folder(tmp_path_factory) -> Path:
    """A folder where `import nn` finds the mutated nn.irn before the standard library's."""
    folder = tmp_path_factory.mktemp("stdlib")
    (folder / "stdlib_all.irn").write_text(STDLIB_USER.read_text(encoding="utf-8"))
    return folder


def test_seeds_compile(stdlib_folder):
    """Unmutated, every seed compiles: the mutants start from working programs."""
    for seed in SEEDS:
        text = (ROOT / seed).read_text(encoding="utf-8")
        assert compile_seed(seed, text, stdlib_folder, check=outcome) == "ir"


def compile_seed(seed: str, text: str, stdlib_folder: Path, check=check_clean) -> str:
    if seed.endswith("stdlib/nn.irn"):
        (stdlib_folder / "nn.irn").write_text(text, encoding="utf-8")
        user = stdlib_folder / "stdlib_all.irn"
        return check(user.read_text(encoding="utf-8"), str(user), user)
    return check(text, seed, ROOT / seed)


@fuzz(300)
@given(mutants())
def test_mutated_examples(guarded, stdlib_folder, mutant):
    seed, text = mutant
    compile_seed(seed, text, stdlib_folder)


# --- deep nesting --------------------------------------------------------------------------------


def returning(expression: str) -> str:
    """A model whose body is `return expression`, on line 2."""
    return f"model m(x: f32[N, 3]) -> f32[N, 3] {{\n    return {expression}\n}}\n"


DEPTH = 10_000
NESTED = [
    pytest.param("(" * DEPTH + "x" + ")" * DEPTH, id="parentheses"),
    pytest.param("(" * DEPTH + "x", id="unclosed-parentheses"),
    pytest.param("x * len(" + "[" * DEPTH + "]" * DEPTH + ")", id="lists"),
    pytest.param("-" * DEPTH + "x", id="negations"),
    pytest.param("x" + " + x" * DEPTH, id="sum-chain"),
    pytest.param("x" + "[0]" * DEPTH, id="subscripts"),
    pytest.param("x" + ".a" * DEPTH, id="attributes"),
    pytest.param(
        "relu(" * DEPTH + "x" + ")" * DEPTH,
        id="calls",
    ),
    pytest.param(
        "x" + " ** 1" * DEPTH,
        id="powers",
    ),
]


@pytest.mark.parametrize("expression", NESTED)
def test_deep_nesting(guarded, expression):
    try:
        driver.compile_source(returning(expression), FILE)
    except IrnError as err:
        check_located(err, returning(expression), FILE)


def test_deep_nesting_error_points_at_the_expression():
    with pytest.raises(IrnError, match="nested too deeply") as info:
        driver.compile_source(returning("-" * DEPTH + "x"), FILE)
    assert info.value.loc.line == 2


# --- regressions: inputs that once broke the property -------------------------------------------

REGRESSIONS = [
    pytest.param("\ufeffmodel m() -> f32 {\n    return 1.0\n}\n", id="byte-order-mark"),
    pytest.param(returning("x\x00"), id="nul"),
    pytest.param("model m() -> f32 {\r    return 1.0\r}\r", id="carriage-returns"),
    pytest.param("model m() -> f32 {\n    return 1.0\n}\n\\", id="trailing-backslash"),
    pytest.param('import "a\\qb" as z\n', id="unknown-string-escape"),
    pytest.param('import "" as z\n', id="empty-import"),
    pytest.param(returning("x * (-2) ** 0.5"), id="complex-power"),
    pytest.param(returning("x * 2.0 ** 10000"), id="float-overflow"),
    pytest.param(returning("x[::0]"), id="zero-step"),
    pytest.param(returning('x * ("a" < 1)'), id="compare-string"),
    pytest.param(returning("x * (relu < 1)"), id="compare-builtin"),
    pytest.param(returning("x * (f32 < [])"), id="compare-dtype"),
    pytest.param(returning("transpose(x, [10**20, 0])"), id="huge-perm"),
    pytest.param(returning("x[10**20:]"), id="huge-slice"),
    pytest.param(
        returning("x") + "model k(x: f32[N, 4]) -> f32[N, 3] {\n    return m(x)\n}\n",
        id="model-calls-model-with-other-type",
    ),
    pytest.param(
        "def f(a: f32[] = cast(1, f32)) -> f32[] {\n    return a\n}\n" + returning("x * f()"),
        id="tensor-default",
    ),
    pytest.param(
        "import nn\n" + returning("x") + "train m(y: i32[N]) {\n"
        "    loss = nn.accuracy(m(x), y) * mean(cast(argmax(m(x), axis=1), mean))\n}\n",
        id="builtin-as-dtype",
    ),
    pytest.param(
        "import nn\n" + returning("nn.dense(nn, 3)"),
        id="module-as-argument",
    ),
]  # fmt: skip


@pytest.mark.parametrize("source", REGRESSIONS)
def test_regression(guarded, source):
    outcome(source)
