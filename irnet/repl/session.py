"""The REPL's evaluation core: a `Session` takes one input at a time (an expression, an
assignment, a definition or a `:command`) and answers with `Output`s. No terminal code lives
here; `terminal.py` drives it from prompt_toolkit, and tests drive it directly.

How an input is evaluated:

- **Definitions** (`def`, `model`, `train`, `import`, `from`) are kept as source text, one
  chunk per input or loaded file, each parsed under its own name (`<input-3>`,
  `examples/mnist_mlp.irn`) so that errors quote the right line. All chunks share one
  namespace, later definitions replacing earlier ones of the same name. A definition is
  accepted only if every model and train block of the session still compiles.
- **Expressions** compile, through the frontend's own `FunctionBuilder` and `evaluate`, into a
  throwaway public function `@__repl__` whose arguments are the session variables the
  expression uses (typed by their exact static shapes) and the tensors that REPL builtins
  such as `randn(3, 4)` make in NumPy; its results are the tensors in the expression's value.
  The IRGen API is used rather than a generated `.irn` text because the result type is not
  known before evaluation, compile-time values (`size(x, 0)`, `range(3)`, a function) need no
  function at all, and errors then point straight at what the user typed (the input is parsed
  with the assignment target blanked out, so columns are unchanged). The default pipeline
  runs over the module and the reference interpreter evaluates `@__repl__`.
- **Parameters** of layers an expression calls are drawn from their initialisers with the
  session seed (`irnet.params.initial_parameters`). A model's parameters are drawn from the
  model's own function, so `mnist_mlp(x)` uses the weights `irnet run --seed 0` would, and
  two calls of one model share them. Nothing trains in the REPL, so the values are a pure
  function of the seed; they are cached only to save the work.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, StringAttr, SymbolRefAttr, TensorType
from xdsl.ir import SSAValue
from xdsl.printer import Printer

from irnet import ast, driver, params, reference, summary, train_ir
from irnet.builtins import BUILTINS, suggest
from irnet.dialects.ad import GradRequestOp, ValueAndGradOp
from irnet.dialects.shapes import format_shape
from irnet.dialects.shapes import format_type as ir_type
from irnet.errors import IrnError, remember_source
from irnet.grammar.lexer import DTYPES, RESERVED
from irnet.imports import STDLIB_DIR, FunctionRef, LoadedModule, Program
from irnet.initializers import INITIALIZERS
from irnet.irgen import DTYPES as IR_DTYPES
from irnet.irgen import DTypeValue, FunctionBuilder, IRGen, describe, evaluate, type_spelling
from irnet.parser import parse, parse_expression
from irnet.runner import load_array_file

REPL_SYMBOL = "__repl__"
STAGES = ("frontend", *driver.PIPELINE)
MAX_ELEMENTS = 2**27
"""The largest tensor a REPL builtin makes (512 MiB of f32): a typo must not exhaust memory."""


@dataclass(frozen=True)
class Output:
    """One piece of an answer. `kind` tells the terminal how to show it: `text`, `value`,
    `error`, `ir` (xDSL IR) or `python` (emitted source)."""

    text: str
    kind: str = "text"


# --- the shape of an input ---------------------------------------------------------------------

_BRACKETS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[()\[\]{}]')


def bracket_depth(text: str) -> int:
    """Brackets and braces open at the end of `text`, outside strings and comments."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
    return depth


def needs_more(text: str) -> bool:
    """Whether an input continues on the next line: a bracket or brace is open (a block, a
    call), or the last line ends in `\\`. A `:command` is always one line."""
    if text.lstrip().startswith(":"):
        return False
    return text.rstrip(" \t").endswith("\\") or bracket_depth(text) > 0


_FIRST_WORD = re.compile(r"\s*(?:#[^\n]*\n\s*)*([A-Za-z_]\w*)")
_ASSIGNMENT = re.compile(r"\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=(?!=)")
_BLANK_LINES = re.compile(r"^(?:[ \t]*\n)+")
_NO_CODE = re.compile(r"\s*(?:#[^\n]*\s*)*")
DEFINITIONS = ("def", "model", "train", "import", "from")
STATEMENTS = ("param", "return", "for")


def masked(text: str, start: int, end: int) -> str:
    """`text` with everything outside [start, end) blanked, newlines kept: parsing it gives
    the locations the user sees."""
    return "".join(c if start <= i < end or c == "\n" else " " for i, c in enumerate(text))


def parse_span(text: str, start: int, end: int, display: str) -> ast.Expr:
    """Parse `text[start:end]` as an expression located in the whole input `text`."""
    try:
        return parse_expression(masked(text, start, end), display)
    finally:
        remember_source(display, text)  # errors quote the line as typed, not as blanked


def names_in(node: Any) -> list[str]:
    """Every name an AST fragment mentions, in source order (a superset of the variables it
    reads: `@__repl__`'s arguments come in that order)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, list):
        children = node
    elif is_dataclass(node):
        children = [getattr(node, f.name) for f in fields(node)]
    else:
        return []
    return list(dict.fromkeys(name for child in children for name in names_in(child)))


# --- concrete values ---------------------------------------------------------------------------

IRN_DTYPES = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.bool_): "bool",
}
NUMPY_DTYPES = {name: dtype for dtype, name in IRN_DTYPES.items()}


def as_irn_array(value: Any) -> np.ndarray:
    """An array of a dtype `.irn` has: other floats become f32, other integers i32 or i64."""
    array = np.asarray(value)
    if array.dtype in IRN_DTYPES:
        return array
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind in "iu":
        small = array.dtype.itemsize < 4 or array.dtype == np.int32
        return array.astype(np.int32 if small else np.int64)
    raise IrnError(f"arrays of {array.dtype} have no .irn dtype (f32, f64, i32, i64, bool)")


def type_name(array: np.ndarray) -> str:
    return IRN_DTYPES[array.dtype] + format_shape(array.shape)


def tensor_type(array: np.ndarray) -> TensorType:
    return TensorType(IR_DTYPES[IRN_DTYPES[array.dtype]], array.shape)


def format_value(value: Any) -> str:
    """A value as the REPL prints it: tensors as `f32[2, 3]` and NumPy's printout (with four
    digits, as PyTorch prints), compile-time values in `.irn` spelling."""
    if isinstance(value, np.ndarray):
        body = np.array2string(
            value, precision=4, suppress_small=True, threshold=200, edgeitems=3, max_line_width=96
        )
        return f"{type_name(value)} {body}" if value.ndim == 0 else f"{type_name(value)}\n{body}"
    if isinstance(value, tuple) or (
        isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value)
    ):
        return "\n".join(f"[{i}] {format_value(v)}" for i, v in enumerate(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, DTypeValue):
        return value.name
    if isinstance(value, FunctionRef):
        return header(value.fn)
    return describe(value)


def static_type(value: Any) -> str:
    """What `:type` says: `f32[3, 4]` for a tensor, a tuple of those, or the compile-time
    value itself."""
    if isinstance(value, SSAValue):
        return ir_type(value.type)
    if isinstance(value, tuple | list) and any(isinstance(v, SSAValue) for v in value):
        inner = ", ".join(static_type(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{type(value).__name__} {value!r}"
    return format_value(value)


def header(fn: ast.Function) -> str:
    """`def dense(x: F[..., I], units: int) -> F[..., units]`, spelt from the source."""

    def spell(t: ast.ArgType) -> str:
        if isinstance(t, ast.TensorTypeExpr):
            return type_spelling(t) if t.dims else t.dtype  # `-> f32`, as written
        return f"[{t.kind}]" if isinstance(t, ast.ListTypeExpr) else t.kind

    args = ", ".join(f"{a.name}: {spell(a.type)}" for a in fn.args)
    result = f" -> {spell(fn.result)}" if fn.result is not None else ""
    return f"{fn.kind} {fn.name}({args}){result}"


def tensors_in(value: Any) -> list[SSAValue]:
    """The tensors of a compiled value, in order (a tuple or list may hold several)."""
    if isinstance(value, SSAValue):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in tensors_in(v)]
    return []


def substitute(value: Any, arrays: dict[SSAValue, np.ndarray]) -> Any:
    """`value` with each tensor replaced by its computed array."""
    if isinstance(value, SSAValue):
        return arrays[value]
    if isinstance(value, tuple | list):
        return type(value)(substitute(v, arrays) for v in value)
    return value


# --- REPL builtins: tensors made in NumPy ------------------------------------------------------


@dataclass(frozen=True)
class Maker:
    """A REPL builtin that makes a concrete tensor in NumPy (the language itself has no tensor
    constructors). At the prompt it becomes an argument of `@__repl__`, its value beside it."""

    name: str
    usage: str
    summary: str
    keywords: tuple[str, ...]
    make: Callable[..., np.ndarray]

    def __call__(self, fb: FunctionBuilder, loc: ast.Loc, args: list, keywords: list) -> Any:
        if not isinstance(fb, PromptBuilder):
            raise IrnError(f"{self.name}() makes a tensor at the prompt only, not in a def", loc)
        options = {}
        for name, value, kw_loc in keywords:
            if name not in self.keywords:
                known = f" (it takes {', '.join(self.keywords)})" if self.keywords else ""
                raise IrnError(f"{self.name}() has no parameter '{name}'{known}", kw_loc)
            options[name] = value
        return fb.input(self.name, as_irn_array(self.make(fb.rng, loc, *args, **options)), loc)


MAKERS: dict[str, Maker] = {}


def maker(usage: str, summary: str, *keywords: str):
    def register(make: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        name = usage.split("(")[0]
        MAKERS[name] = Maker(name, usage, summary, keywords, make)
        return make

    return register


def _shape(name: str, loc: ast.Loc, dims: tuple) -> tuple[int, ...]:
    if len(dims) == 1 and isinstance(dims[0], list):
        dims = tuple(dims[0])
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise IrnError(f"{name}(): a size is a non-negative integer, got {describe(d)}", loc)
    if np.prod(dims, dtype=np.float64) > MAX_ELEMENTS:
        raise IrnError(f"{name}(): {list(dims)} is too large for the REPL", loc)
    return dims


def _dtype(name: str, loc: ast.Loc, dtype: Any, kinds: str = "fib") -> np.dtype:
    if not isinstance(dtype, DTypeValue) or NUMPY_DTYPES[dtype.name].kind not in kinds:
        allowed = [n for n in DTYPES if NUMPY_DTYPES[n].kind in kinds]
        raise IrnError(f"{name}(): dtype must be one of {', '.join(allowed)}", loc)
    return NUMPY_DTYPES[dtype.name]


F32 = DTypeValue("f32")
I32 = DTypeValue("i32")


@maker("zeros(*shape, dtype=f32)", "a tensor of zeros", "dtype")
def _zeros(rng, loc, *dims, dtype=F32):
    return np.zeros(_shape("zeros", loc, dims), _dtype("zeros", loc, dtype))


@maker("ones(*shape, dtype=f32)", "a tensor of ones", "dtype")
def _ones(rng, loc, *dims, dtype=F32):
    return np.ones(_shape("ones", loc, dims), _dtype("ones", loc, dtype))


@maker(
    "randn(*shape, dtype=f32)", "normal(0, 1) samples, from the session's seeded stream", "dtype"
)
def _randn(rng, loc, *dims, dtype=F32):
    dtype = _dtype("randn", loc, dtype, "f")
    return rng.standard_normal(_shape("randn", loc, dims)).astype(dtype)


@maker("rand(*shape, dtype=f32)", "uniform samples in [0, 1)", "dtype")
def _rand(rng, loc, *dims, dtype=F32):
    return rng.random(_shape("rand", loc, dims)).astype(_dtype("rand", loc, dtype, "f"))


@maker("randint(*shape, high=, dtype=i32)", "integers in [0, high)", "high", "dtype")
def _randint(rng, loc, *dims, high=None, dtype=I32):
    if isinstance(high, bool) or not isinstance(high, int) or high < 1:
        raise IrnError("randint() needs high=, a positive integer: randint(8, high=10)", loc)
    dtype = _dtype("randint", loc, dtype, "i")
    return rng.integers(0, high, _shape("randint", loc, dims)).astype(dtype)


@maker("arange(start=0, stop, step=1, dtype=?)", "evenly spaced values (i32 for integers)", "dtype")
def _arange(rng, loc, *bounds, dtype=None):
    numbers = all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    if not numbers or not 1 <= len(bounds) <= 3 or (len(bounds) == 3 and bounds[2] == 0):
        raise IrnError("arange() takes one to three numbers: arange(5), arange(0, 1, 0.25)", loc)
    start, stop, step = {1: (0, *bounds, 1), 2: (*bounds, 1), 3: bounds}[len(bounds)]
    if math.ceil((stop - start) / step) > MAX_ELEMENTS:
        raise IrnError(f"arange(): {list(bounds)} is too large for the REPL", loc)
    integral = all(isinstance(b, int) for b in bounds)
    default = np.int32 if integral else np.float32
    return np.arange(start, stop, step).astype(
        default if dtype is None else _dtype("arange", loc, dtype)
    )


@maker("tensor(values, dtype=?)", "a tensor from a (nested) list literal", "dtype")
def _tensor(rng, loc, values, dtype=None):
    def check(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                check(item)
        elif not isinstance(v, int | float):
            raise IrnError(f"tensor() takes numbers and lists of them, got {describe(v)}", loc)

    check(values)
    try:
        array = np.array(values)
    except ValueError:
        array = None
    if array is None or array.dtype.kind not in "fib":
        raise IrnError("tensor(): the nested lists are ragged", loc)
    if dtype is not None:
        return array.astype(_dtype("tensor", loc, dtype))
    if array.dtype.kind == "i":  # integer literals are i32 in .irn, unless they do not fit
        return array.astype(np.int32 if np.all(np.abs(array) < 2**31) else np.int64)
    return array.astype(np.float32) if array.dtype.kind == "f" else array


@maker('load("file.npy", name=?)', "an array from .npy, or .npz with name=", "name")
def _load(rng, loc, path, name=None):
    if not isinstance(path, str):
        raise IrnError('load() takes a file name: load("x.npy")', loc)
    loaded = load_array_file(path)
    if isinstance(loaded, dict):
        if name not in loaded:
            raise IrnError(f"{path} holds {', '.join(loaded)}; pick one with name=", loc)
        return loaded[name]
    return loaded


# --- one prompt, compiled ----------------------------------------------------------------------


@dataclass
class PromptBuilder(FunctionBuilder):
    """The body of `func.func @__repl__`: one input being compiled. Session variables and the
    tensors REPL builtins make become its arguments, with their values beside them."""

    rng: np.random.Generator | None = None
    values: dict[SSAValue, np.ndarray] = field(default_factory=dict)

    def input(self, name: str, array: np.ndarray, loc: ast.Loc) -> SSAValue:
        arg = self.add_argument(name, tensor_type(array), loc, {"nn.input": StringAttr(name)})
        self.values[arg] = array
        return arg

    def lift(self, name: str, value: Any, loc: ast.Loc) -> Any:
        """A session value as compiled code sees it: each array becomes an argument."""
        if isinstance(value, np.ndarray):
            return self.input(name, value, loc)
        if isinstance(value, tuple | list):
            return type(value)(self.lift(f"{name}_{i}", v, loc) for i, v in enumerate(value))
        return value


def model_parameters(gen: IRGen, function: func.FuncOp) -> dict[SSAValue, tuple[str, str]]:
    """The arguments of `function` that are parameters of a model it calls (or asks the
    gradient of), each as (model symbol, the parameter's name in that model)."""
    specs = {spec.symbol: spec for spec in gen.models.values()}
    owned = {}
    for op in function.body.walk():
        callee = getattr(op, "callee", None)
        spec = specs.get(callee.string_value()) if isinstance(callee, SymbolRefAttr) else None
        if spec is None:
            continue
        operands = op.args if isinstance(op, GradRequestOp) else op.operands
        inputs = len(gen.functions[spec.symbol].args) - len(spec.params)
        for value, param in zip(operands[inputs:], spec.params):
            owned[value] = (spec.symbol, param.name)
    return owned


def add_gradient(module: ModuleOp, function: func.FuncOp, wrt: int) -> str:
    """A public function returning `function`'s value and its gradient with respect to
    argument `wrt` (an `ad.value_and_grad` request, expanded by the autodiff pass)."""
    types = [a.type for a in function.args]
    wrapper = func.FuncOp(f"{function.sym_name.data}.grad", (types, []))
    for arg, original in zip(wrapper.args, function.args):
        arg.name_hint = original.name_hint
    request = ValueAndGradOp.request(function, list(wrapper.args), [wrt])
    request.location = function.location
    wrapper.body.block.add_ops([request, func.ReturnOp(*request.results)])
    wrapper.function_type = FunctionType.from_lists(types, request.result_types)
    module.body.block.add_op(wrapper)
    return wrapper.sym_name.data


def reachable(module: ModuleOp, name: str) -> list[func.FuncOp]:
    """The function `name` and every function it calls or differentiates, in module order."""
    functions = {f.sym_name.data: f for f in functions_of(module)}
    seen: set[str] = set()

    def visit(symbol: str) -> None:
        if symbol in seen or symbol not in functions:
            return
        seen.add(symbol)
        for op in functions[symbol].body.walk():
            callee = getattr(op, "callee", None)
            if isinstance(callee, SymbolRefAttr):
                visit(callee.string_value())

    visit(name)
    return [f for f in functions.values() if f.sym_name.data in seen]


def format_ir(functions: list[func.FuncOp], locations: bool = False) -> str:
    out = StringIO()
    printer = Printer(out, print_debuginfo=locations)
    for i, function in enumerate(functions):
        out.write("\n" * (i > 0))
        printer.print_op(function)
    return out.getvalue()


def functions_of(module: ModuleOp) -> list[func.FuncOp]:
    return [f for f in module.ops if isinstance(f, func.FuncOp)]


def public_functions(module: ModuleOp) -> list[func.FuncOp]:
    return [f for f in functions_of(module) if f.sym_visibility is None]


@dataclass
class Compiled:
    """An input compiled into a module, before any pass: `@__repl__` and what it calls, and
    the values of `@__repl__`'s arguments."""

    module: ModuleOp
    function: func.FuncOp
    args: list[np.ndarray]


# --- targets -----------------------------------------------------------------------------------

TARGETS = ("reference", "cpu", "cuda")
BACKEND_NAMES = {"cpu": ("numba-cpu", "cpu", "numba"), "cuda": ("numba-cuda", "cuda")}
"""Where a compiled backend is looked for: targets registered with xDSL through irnet's plug-in
(`IRNET_UNIVERSE.all_targets` in `irnet/universe.py`, the registry `xdsl-opt -t` uses), under
one of these names. An `xdsl.utils.target.Target` emits source with `emit(ctx, module, out)`;
one that also has `run(module, function, args, seed=...)` can evaluate REPL inputs."""


def find_backend(target: str) -> Any:
    from irnet.universe import IRNET_UNIVERSE

    registered = IRNET_UNIVERSE.all_targets
    for name in BACKEND_NAMES[target]:
        if name in registered:
            return registered[name]()()
    raise IrnError(
        f"the {target} target is not available yet: no backend named "
        f"{' or '.join(BACKEND_NAMES[target])} is registered with irnet's xDSL plug-in. "
        "Until one lands, :ir NAME shows the IR it would compile, and expressions run on the "
        "reference target."
    )


# --- the session -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """The source of one definition input or loaded file."""

    text: str
    display: str
    key: Path


def prelude() -> list[Chunk]:
    """Every standard-library module, imported as a module and its functions by name, so that
    `dense(x, 4)` and `nn.dense(x, 4)` both work at the prompt."""
    chunks = []
    for path in sorted(STDLIB_DIR.glob("*.irn")):
        names = [f.name for f in parse(path.read_text(encoding="utf-8"), str(path)).functions]
        text = f"import {path.stem}\nfrom {path.stem} import {', '.join(names)}\n"
        chunks.append(Chunk(text, "<prelude>", Path.cwd() / f"<prelude {path.stem}>"))
    return chunks


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    run: Callable[[Session, CommandLine], list[Output]]


@dataclass(frozen=True)
class CommandLine:
    """A `:command` input: the whole text and where its arguments start, so that expressions
    in it are parsed at the columns the user typed them."""

    text: str
    start: int
    display: str

    @property
    def args(self) -> str:
        return self.text[self.start :].strip()

    def loc(self, offset: int) -> ast.Loc:
        line_start = self.text.rfind("\n", 0, offset) + 1
        return ast.Loc(self.display, self.text.count("\n", 0, offset) + 1, offset - line_start + 1)

    def expression(self, start: int | None = None, end: int | None = None) -> ast.Expr:
        start = self.start if start is None else start
        end = len(self.text) if end is None else end
        if not self.text[start:end].strip():
            raise IrnError("this command needs an expression; see :help")
        return parse_span(self.text, start, end, self.display)


COMMANDS: dict[str, Command] = {}


def command(usage: str, summary: str):
    """Register a `Session` method as the REPL command its usage names."""

    def register(method: Callable[[Session, CommandLine], list[Output]]):
        name = usage.split()[0][1:]
        COMMANDS[name] = Command(name, usage, summary, method)
        return method

    return register


def options(args: str, valued: tuple[str, ...] = (), switches: tuple[str, ...] = ()):
    """A command's words: (positional words, {flag: value or True})."""
    try:
        words = shlex.split(args)
    except ValueError as e:
        raise IrnError(f"cannot split the arguments: {e}") from None
    positional, flags = [], {}
    while words:
        word = words.pop(0)
        if word in valued:
            if not words:
                raise IrnError(f"{word} needs a value")
            flags[word] = words.pop(0)
        elif word in switches:
            flags[word] = True
        elif word.startswith("--"):
            known = ", ".join((*valued, *switches)) or "none"
            raise IrnError(f"unknown option {word} (options: {known})")
        else:
            positional.append(word)
    return positional, flags


class Session:
    """A REPL session: definitions, variables, and the settings (seed, target)."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.target = "reference"
        self.count = 0
        self.done = False
        self.reset()

    def reset(self) -> None:
        self.chunks: list[Chunk] = prelude()
        self.variables: dict[str, Any] = {}
        self.rng = np.random.default_rng(self.seed)
        self.last: tuple[ModuleOp, str] | None = None
        self.weights: dict[tuple[str, str], np.ndarray] = {}
        self.symbols: list[str] = []
        self.rebuild()

    # --- entry points ---

    def run(self, text: str) -> list[Output]:
        """Answer one input; mistakes become error outputs, never exceptions."""
        text = _BLANK_LINES.sub("", text.rstrip())
        if _NO_CODE.fullmatch(text):
            return []
        self.count += 1
        display = f"<input-{self.count}>"
        remember_source(display, text)
        try:
            if text.lstrip().startswith(":"):
                return self.run_command(text, display)
            return self.execute(text, display)
        except IrnError as e:
            return [Output(str(e), "error")]
        except RecursionError:
            return [Output("error: the input is nested too deeply", "error")]
        except Exception as e:  # an irnet bug: say so, and keep the session
            details = traceback.format_exc() if os.environ.get("IRNET_TRACEBACK") else ""
            message = (
                f"internal error: {type(e).__name__}: {e}\nThis is a bug in irnet; "
                "set IRNET_TRACEBACK=1 for the traceback."
            )
            return [Output(details + message, "error")]

    def eval(self, expression: str) -> Any:
        """The value of an expression over the session's variables; raises IrnError."""
        self.count += 1
        display = f"<input-{self.count}>"
        return self.evaluate(parse_span(expression, 0, len(expression), display))

    def execute(self, text: str, display: str) -> list[Output]:
        first = _FIRST_WORD.match(text)
        word = first.group(1) if first else ""
        if word in DEFINITIONS:
            return self.define(Chunk(text, display, Path.cwd() / display))
        if word in STATEMENTS:
            raise IrnError(
                f"`{word}` belongs in the body of a def or model; at the prompt, type an "
                "expression, an assignment (name = expression) or a definition",
                ast.Loc(display, 1, first.start(1) + 1),
            )
        assignment = _ASSIGNMENT.match(text)
        if assignment is None:
            value = self.evaluate(parse_span(text, 0, len(text), display))
            return [Output(format_value(value), "value")]
        targets = [t.strip() for t in assignment.group(1).split(",")]
        loc = ast.Loc(display, 1, assignment.start(1) + 1)
        for target in targets:
            if target in RESERVED:
                raise IrnError(f"'{target}' is a reserved word and cannot be assigned", loc)
        value = self.evaluate(parse_span(text, assignment.end(), len(text), display))
        return self.assign(targets, value, loc)

    def assign(self, targets: list[str], value: Any, loc: ast.Loc) -> list[Output]:
        values = (value,) if len(targets) == 1 else value
        if len(targets) > 1 and (not isinstance(value, tuple) or len(value) != len(targets)):
            count = len(value) if isinstance(value, tuple) else 1
            raise IrnError(f"cannot unpack {count} value(s) into {len(targets)} names", loc)
        self.variables.update(zip(targets, values))
        return [
            Output(
                f"{t}: {type_name(v)}" if isinstance(v, np.ndarray) else f"{t} = {format_value(v)}"
            )
            for t, v in zip(targets, values)
        ]

    # --- definitions ---

    def rebuild(self) -> None:
        """Parse every chunk into one program whose modules share a namespace."""
        self.program = Program()
        namespace: dict[str, Any] = {}
        trains: dict[str, ast.Train] = {}
        for chunk in self.chunks:
            module = self.program.load_text(chunk.text, chunk.display, chunk.key)
            namespace.update(module.namespace)
            module.namespace = namespace  # so a definition sees those of other inputs
            trains.update({t.model: t for t in module.tree.trains})
        # The session's own functions; imported ones live in modules with a symbol prefix.
        own = [
            r.fn for r in namespace.values() if isinstance(r, FunctionRef) and not r.module.prefix
        ]
        tree = ast.Module(ast.Loc("<session>", 1, 1), [], own, list(trains.values()))
        self.scope = LoadedModule("", "<session>", tree, "", namespace)

    def compile_session(self) -> ModuleOp:
        """Every model and train block of the session, through the frontend (as
        `driver.compile_source` does for one file)."""
        gen = IRGen(self.program, self.scope)
        gen.generate()
        train_ir.generate(gen)
        gen.module_op.verify()
        return gen.module_op

    def define(self, chunk: Chunk) -> list[Output]:
        previous = self.chunks
        self.chunks = [c for c in previous if c.key != chunk.key] + [chunk]
        try:
            self.rebuild()
            module = self.compile_session()
        except BaseException:
            self.chunks = previous
            self.rebuild()
            raise
        self.symbols = [f.sym_name.data for f in public_functions(module)]
        self.weights.clear()
        tree = self.program.modules[chunk.key].tree
        for fn in tree.functions:
            self.variables.pop(fn.name, None)
        return [Output(line) for line in self.describe_chunk(tree, module)]

    def describe_chunk(self, tree: ast.Module, module: ModuleOp) -> list[str]:
        functions = {f.sym_name.data: f for f in public_functions(module)}
        lines = []
        for imp in tree.imports:
            names = ", ".join(imp.names) if imp.names else imp.alias or Path(imp.module).stem
            lines.append(
                f"imported {names} from {imp.module}" if imp.names else f"imported {names}"
            )
        for fn in tree.functions:
            if fn.kind == "model" and fn.name in functions:
                count = sum(p.count for p in summary.parameters(functions[fn.name]))
                lines.append(
                    f"model {summary.signature(functions[fn.name])}  ({count:,} parameters)"
                )
            else:
                lines.append(header(fn))
        for train in tree.trains:
            made = [s for s in functions if s.startswith(train.model + ".")]
            lines.append(f"train {train.model}: {', '.join('@' + s for s in made)}")
        return lines

    def load(self, path: str) -> list[Output]:
        file = Path(path).expanduser()
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise IrnError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        lines = self.define(Chunk(text, path, file.resolve()))
        return [Output(f"loaded {path}"), *(Output("  " + o.text) for o in lines)]

    # --- expressions ---

    def prompt(self, expr: ast.Expr, extra: tuple[str, ...] = ()) -> PromptBuilder:
        """A builder for `@__repl__` that sees the REPL builtins and, as arguments, the
        session variables `expr` uses (and those named in `extra`)."""
        gen = IRGen(self.program, self.scope)
        fb = PromptBuilder(gen, self.scope, rng=self.rng)
        gen.unique_symbol(REPL_SYMBOL)  # reserved before any model takes the name
        fb.env.update({n: m for n, m in MAKERS.items() if n not in self.scope.namespace})
        for name in dict.fromkeys([*extra, *names_in(expr)]):
            if name in self.variables:
                fb.env[name] = fb.lift(name, self.variables[name], expr.loc)
        return fb

    def compile(self, expr: ast.Expr, extra: tuple[str, ...] = ()) -> tuple[Any, Compiled | None]:
        """The compiled value of `expr`, and, when it holds tensors, `@__repl__`."""
        fb = self.prompt(expr, extra)
        value = evaluate(fb, expr)
        tensors = tensors_in(value)
        if not tensors:
            return value, None
        function = fb.gen.finish(fb, REPL_SYMBOL, tensors, expr.loc, expr.loc, private=False)
        self.bind_weights(fb, function)
        args = [fb.values[a] for a in function.args]
        return value, Compiled(fb.gen.module_op, function, args)

    def bind_weights(self, fb: PromptBuilder, function: func.FuncOp) -> None:
        owners = model_parameters(fb.gen, function)
        for arg, info in zip(function.args, params.arguments(function)):
            if info.kind == "param":
                owner, name = owners.get(arg, (REPL_SYMBOL, info.name))
                source = function if owner == REPL_SYMBOL else fb.gen.functions[owner]
                fb.values[arg] = self.weight(source, owner, name, arg.type)

    def weight(self, source: func.FuncOp, owner: str, name: str, type_: TensorType) -> np.ndarray:
        """A parameter's initial value, drawn once per model (or per prompt-level layer)."""
        cached = self.weights.get((owner, name))
        shape = tuple(type_.get_shape())
        if cached is None or cached.shape != shape or cached.dtype != params.numpy_dtype(type_):
            drawn = params.initial_parameters(source, self.seed)
            self.weights.update({(owner, n): v for n, v in drawn.items()})
        return self.weights[(owner, name)]

    def execute_compiled(self, compiled: Compiled, name: str | None = None) -> tuple:
        name = name or compiled.function.sym_name.data
        if self.target == "reference":
            return reference.Reference(compiled.module).run(name, compiled.args, seed=self.seed)
        backend = find_backend(self.target)
        return backend.run(compiled.module, name, compiled.args, seed=self.seed)

    def evaluate(self, expr: ast.Expr) -> Any:
        value, compiled = self.compile(expr)
        if compiled is None:
            return value
        self.last = (compiled.module.clone(), compiled.function.sym_name.data)
        driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
        results = self.execute_compiled(compiled)
        return substitute(value, dict(zip(tensors_in(value), results)))

    # --- commands ---

    def run_command(self, text: str, display: str) -> list[Output]:
        match = re.match(r"\s*:(\S*)\s*", text)
        name = match.group(1)
        found = [c for c in COMMANDS if c == name] or [c for c in COMMANDS if c.startswith(name)]
        if len(found) != 1:
            choices = ", ".join(":" + c for c in found) if found else "none"
            hint = (
                f"it could be {choices}" if found else f"see :help{suggest(name, list(COMMANDS))}"
            )
            raise IrnError(f"unknown command :{name} ({hint})")
        return COMMANDS[found[0]].run(self, CommandLine(text, match.end(), display))

    @command(":help", "this help")
    def cmd_help(self, line: CommandLine) -> list[Output]:
        commands = table([(c.usage, c.summary) for c in COMMANDS.values()])
        makers = table([(m.usage, m.summary) for m in MAKERS.values()])
        return [
            Output(
                "\n\n".join([HELP_INTRO, "Commands:\n" + commands, HELP_MAKERS + makers, HELP_KEYS])
            )
        ]

    @command(":load FILE", "add a file's definitions (imports resolve beside it)")
    def cmd_load(self, line: CommandLine) -> list[Output]:
        words, _ = options(line.args)
        if len(words) != 1:
            raise IrnError("usage: :load FILE (quote a name with spaces)")
        return self.load(words[0])

    @command(":ir [NAME] [--after PASS] [--loc]", "IR of the last expression or a function")
    def cmd_ir(self, line: CommandLine) -> list[Output]:
        words, flags = options(line.args, valued=("--after",), switches=("--loc",))
        stage = flags.get("--after", STAGES[-1])
        if stage not in STAGES:
            raise IrnError(f"--after {stage}: no such stage; the stages are {', '.join(STAGES)}")
        if len(words) > 1:
            raise IrnError("usage: :ir [NAME] [--after PASS] [--loc]")
        if words:
            module, names = self.compile_session(), [self.function_symbol(words[0])]
        elif self.last is not None:
            module, names = self.last[0].clone(), [self.last[1]]
        else:
            module = self.compile_session()
            names = [f.sym_name.data for f in public_functions(module)]
            if not names:
                return [Output("nothing to show yet: evaluate an expression or :load a file")]
        driver.run_passes(module, ",".join(driver.PIPELINE[: STAGES.index(stage)]))
        wanted = {f.sym_name.data for name in names for f in reachable(module, name)}
        shown = [f for f in functions_of(module) if f.sym_name.data in wanted]
        return [Output(format_ir(shown, "--loc" in flags), "ir")]

    def function_symbol(self, name: str) -> str:
        if name in self.symbols:
            return name
        ref = self.scope.namespace.get(name)
        if isinstance(ref, FunctionRef):
            raise IrnError(
                f"'{name}' is a def: it is compiled at each call, for the argument types of that "
                f"call. Call it at the prompt (e.g. {name}(x)), then :ir shows that call."
            )
        raise IrnError(f"no function '{name}'{suggest(name, self.symbols)}")

    @command(":passes", "the pass pipeline, in order")
    def cmd_passes(self, line: CommandLine) -> list[Output]:
        rows = [(s, PASS_SUMMARIES.get(s) or pass_summary(s)) for s in STAGES]
        return [Output("The stages, in order (:ir --after STAGE):\n" + table(rows))]

    @command(":grad EXPR wrt NAME [--ir]", "d(EXPR)/d(NAME), and with --ir its IR")
    def cmd_grad(self, line: CommandLine) -> list[Output]:
        rest = line.text[line.start :]
        match = re.search(r"(?s)(.*\S)\s+wrt\s+([A-Za-z_]\w*)(\s+--ir)?\s*$", rest)
        if match is None:
            raise IrnError("usage: :grad EXPR wrt NAME [--ir], e.g. :grad sum(relu(x @ w)) wrt w")
        name = match.group(2)
        wrt = self.variables.get(name)
        if not isinstance(wrt, np.ndarray) or wrt.dtype.kind != "f":
            got = what(wrt) if name in self.variables else "not a variable"
            raise IrnError(f"'{name}' must be a variable holding a float tensor; it is {got}")
        start = line.start + match.start(1)
        value, compiled = self.compile(line.expression(start, start + len(match.group(1))), (name,))
        if not is_float_scalar(value):
            raise IrnError(
                f":grad needs a float scalar, but this is {static_type(value)} "
                "(reduce it with sum(...) or mean(...))",
                line.loc(start),
            )
        position = next(i for i, a in enumerate(compiled.function.args) if a.name_hint == name)
        symbol = add_gradient(compiled.module, compiled.function, position)
        driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
        result, gradient = self.execute_compiled(compiled, symbol)
        outputs = [
            Output(f"value: {format_value(result)}", "value"),
            Output(f"d/d{name}: {format_value(gradient)}", "value"),
        ]
        if match.group(3):
            outputs.append(Output(format_ir(reachable(compiled.module, symbol)), "ir"))
        return outputs

    @command(":type EXPR", "the type of an expression, without running it")
    def cmd_type(self, line: CommandLine) -> list[Output]:
        value, _ = self.compile(line.expression())
        return [Output(static_type(value))]

    @command(":time EXPR", "how long an expression takes to compile and to run")
    def cmd_time(self, line: CommandLine) -> list[Output]:
        start = time.perf_counter()
        value, compiled = self.compile(line.expression())
        built = time.perf_counter()
        if compiled is None:
            return [Output(f"compile-time value; frontend {ms(built - start)}")]
        driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
        optimised = time.perf_counter()
        runs, best, total = 0, float("inf"), 0.0
        while runs < 1000 and (runs < 3 or total < 0.5):
            before = time.perf_counter()
            self.execute_compiled(compiled)
            elapsed = time.perf_counter() - before
            runs, best, total = runs + 1, min(best, elapsed), total + elapsed
        return [
            Output(
                f"frontend {ms(built - start)}, passes {ms(optimised - built)}; "
                f"run {ms(best)} (best of {runs}, {self.target} target)"
            )
        ]

    @command(":compile [cpu|cuda] NAME", "the source a backend emits for a function")
    def cmd_compile(self, line: CommandLine) -> list[Output]:
        words, _ = options(line.args)
        target = words.pop(0) if words and words[0] in BACKEND_NAMES else "cpu"
        backend = find_backend(target)
        if len(words) != 1:
            raise IrnError("usage: :compile [cpu|cuda] NAME")
        module = self.compile_session()
        symbol = self.function_symbol(words[0])
        driver.run_passes(module, ",".join(driver.PIPELINE))
        alone = ModuleOp([f.clone() for f in reachable(module, symbol)])
        out = StringIO()
        backend.emit(driver.context(), alone, out)
        return [Output(out.getvalue(), "python")]

    @command(":target [reference|cpu|cuda]", "where expressions run (reference by default)")
    def cmd_target(self, line: CommandLine) -> list[Output]:
        words, _ = options(line.args)
        if not words:
            return [Output(f"target: {self.target}")]
        if words[0] not in TARGETS:
            raise IrnError(f"unknown target '{words[0]}'; the targets are {', '.join(TARGETS)}")
        if words[0] != "reference" and not hasattr(find_backend(words[0]), "run"):
            raise IrnError(
                f"the {words[0]} target emits code (:compile {words[0]} NAME) but cannot run "
                "REPL expressions yet"
            )
        self.target = words[0]
        return [Output(f"target: {self.target}")]

    @command(":params [MODEL]", "the parameter table of a model")
    def cmd_params(self, line: CommandLine) -> list[Output]:
        words, _ = options(line.args)
        module = self.compile_session()
        functions = {f.sym_name.data: f for f in public_functions(module)}
        models = [f.name for f in self.scope.tree.functions if f.kind == "model"]
        if words:
            if words[0] not in models:
                raise IrnError(f"no model '{words[0]}'{suggest(words[0], models)}")
            models = words[:1]
        if not models:
            return [Output("no model is defined yet: :load a file, or type a model")]
        tables = [
            f"model {summary.signature(functions[m])}\n"
            + summary.parameter_table(summary.parameters(functions[m]))
            for m in models
        ]
        return [Output("\n\n".join(tables))]

    @command(":reset", "forget every definition and variable")
    def cmd_reset(self, line: CommandLine) -> list[Output]:
        self.reset()
        return [Output("session reset")]

    @command(":quit", "leave (Ctrl-D does too)")
    def cmd_quit(self, line: CommandLine) -> list[Output]:
        self.done = True
        return []

    # --- completion ---

    def complete(self, before_cursor: str) -> tuple[str, list[tuple[str, str]]]:
        """Completions of the word before the cursor: (that word, [(completion, what)])."""
        command_word = re.fullmatch(r"\s*(:\w*)", before_cursor)
        if command_word:
            word = command_word.group(1)
            names = [(":" + c.name, c.summary) for c in COMMANDS.values()]
            return word, [(n, s) for n, s in names if n.startswith(word)]
        found = re.search(r"[A-Za-z_]\w*$", before_cursor)
        word = found.group() if found else ""
        if before_cursor.count('"') % 2 == 1 or re.match(r"\s*:load\b", before_cursor):
            return word, []
        prefix = before_cursor[: len(before_cursor) - len(word)]
        if re.search(r"--after\s+$", prefix):
            return word, [(s, "stage") for s in STAGES if s.startswith(word)]
        if re.match(r"\s*:(ir|params|compile)\b", prefix):
            return word, [(s, "function") for s in self.symbols if s.startswith(word)]
        attribute = re.search(r"([A-Za-z_]\w*)\.$", prefix)
        if attribute:
            module = self.scope.namespace.get(attribute.group(1))
            names = module.namespace if isinstance(module, LoadedModule) else {}
            return word, [(n, kind_of(v)) for n, v in names.items() if n.startswith(word)]
        return word, [(n, what) for n, what in self.vocabulary().items() if n.startswith(word)]

    def vocabulary(self) -> dict[str, str]:
        """Every name the prompt knows, with what it is; later entries win."""
        words = {k: "keyword" for k in RESERVED}
        words.update({n: "initialiser" for n in INITIALIZERS})
        words.update({n: "builtin" for n in BUILTINS})
        words.update({n: "REPL builtin" for n in MAKERS})
        words.update({n: kind_of(v) for n, v in self.scope.namespace.items()})
        words.update({n: kind_of(v) for n, v in self.variables.items()})
        return dict(sorted(words.items()))


def kind_of(value: Any) -> str:
    """What a name is, briefly, for completion menus."""
    if isinstance(value, np.ndarray):
        return type_name(value)
    if isinstance(value, FunctionRef):
        origin = value.module.display
        return value.fn.kind + ("" if origin.startswith("<") else f" ({origin})")
    if isinstance(value, LoadedModule):
        return "module"
    return what(value)


def what(value: Any) -> str:
    """A value in words, for messages: `a tensor f32[3]`, `the function 'f'`."""
    return f"a tensor {type_name(value)}" if isinstance(value, np.ndarray) else describe(value)


def is_float_scalar(value: Any) -> bool:
    return (
        isinstance(value, SSAValue)
        and value.type.get_num_dims() == 0
        and value.type.element_type in (IR_DTYPES["f32"], IR_DTYPES["f64"])
    )


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(left) for left, _ in rows)
    return "\n".join(f"  {left.ljust(width)}  {right}" for left, right in rows)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


PASS_SUMMARIES = {
    "frontend": "the IR the frontend builds from the source (not a pass)",
    "canonicalize": "xDSL's canonicalisation: each op's folds and rewrite patterns",
    "cse": "xDSL's common-subexpression elimination",
    "dce": "xDSL's dead-code elimination",
}


def pass_summary(name: str) -> str:
    """The first paragraph of an irnet pass's module docstring (`inline-functions`: ...)."""
    doc = sys.modules[driver.PASSES[name]().__module__].__doc__ or ""
    first = doc.split("\n\n")[0].replace("\n", " ")
    return re.sub(rf"^`{re.escape(name)}`:\s*", "", first)


HELP_INTRO = """\
irnet REPL: type .irn expressions, assignments and definitions.
  x = randn(3, 4)                 a variable: a tensor made in NumPy
  relu(x @ transpose(x))          an expression: compiled, run on the reference target
  def f(a: f32[...]) -> f32 {     a definition; an open brace or bracket continues the input
      return sum(a * a)
  }
  grad(f, wrt="a")(x)             derivatives, as in .irn files
The standard library is imported: dense(x, 4) or nn.dense(x, 4). Parameters are drawn from
their initialisers with the session seed; every call of a model uses the same ones."""
HELP_MAKERS = "Tensors (REPL builtins, made in NumPy from the session's seeded stream):\n"
HELP_KEYS = """\
Keys: Tab completes; Enter runs the input once its brackets and braces are closed (Esc Enter
runs it anyway); Up and Down walk the history; Ctrl-C abandons the input; Ctrl-D leaves."""
