"""The REPL's `:commands`. Each is a function of the session and the command line, registered
in `COMMANDS` by `@command` under the name its usage gives; `run_command` finds one by its name
or a unique prefix of it (`:pas` is `:passes`)."""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from irnet import ast, driver, summary
from irnet.builtins import suggest
from irnet.diagnostics import IrnError
from irnet.dialects.shapes import is_float
from irnet.functions import add_gradient, format_ir, functions_of, public_functions, reachable
from irnet.imports import FunctionRef
from irnet.targets import AUTO, EMITTERS, TARGETS, resolve
from irnet.universe import IRNET_UNIVERSE

from .display import Output, format_value, static_type, what
from .evaluation import Evaluator
from .inputs import parse_span
from .makers import MAKERS

STAGES = ("frontend", *driver.PIPELINE)
"""What `:ir --after` may name: the frontend's IR, then each pass of the default pipeline."""


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
        """The expression in `text[start:end]` (by default, all the arguments)."""
        start = self.start if start is None else start
        end = len(self.text) if end is None else end
        if not self.text[start:end].strip():
            raise IrnError("this command needs an expression; see :help")
        return parse_span(self.text, start, end, self.display)


Handler = Callable[[Evaluator, CommandLine], list[Output]]


@dataclass(frozen=True)
class Command:
    """A registered `:command`: its name, what `:help` shows of it, and its handler."""

    name: str
    usage: str
    summary: str
    run: Handler


COMMANDS: dict[str, Command] = {}


def command(usage: str, summary: str) -> Callable[[Handler], Handler]:
    """Register a function as the REPL command its usage names (`:load FILE` is `load`)."""

    def register(handler: Handler) -> Handler:
        name = usage.split()[0][1:]
        COMMANDS[name] = Command(name, usage, summary, handler)
        return handler

    return register


def run_command(session: Evaluator, text: str, display: str) -> list[Output]:
    """Answer a `:command` input."""
    match = re.match(r"\s*:(\S*)\s*", text)
    name = match.group(1)
    found = [c for c in COMMANDS if c == name] or [c for c in COMMANDS if c.startswith(name)]
    if len(found) != 1:
        choices = ", ".join(":" + c for c in found) if found else "none"
        hint = f"it could be {choices}" if found else f"see :help{suggest(name, list(COMMANDS))}"
        raise IrnError(f"unknown command :{name} ({hint})")
    return COMMANDS[found[0]].run(session, CommandLine(text, match.end(), display))


def options(
    args: str, valued: tuple[str, ...] = (), switches: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, Any]]:
    """A command's words: (positional words, {flag: value, or True for a switch})."""
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


# --- the commands, in the order :help lists them ---


@command(":help", "this help")
def show_help(session: Evaluator, line: CommandLine) -> list[Output]:
    commands = table([(c.usage, c.summary) for c in COMMANDS.values()])
    makers = table([(m.usage, m.summary) for m in MAKERS.values()])
    sections = [HELP_INTRO, "Commands:\n" + commands, HELP_MAKERS + makers, HELP_KEYS]
    return [Output("\n\n".join(sections))]


@command(
    ":load FILE | CHECKPOINT [MODEL]",
    "add a .irn file's definitions, or take a checkpoint's (.npz) parameters",
)
def load_file(session: Evaluator, line: CommandLine) -> list[Output]:
    words, _ = options(line.args)
    if not words or len(words) > 2 or (len(words) == 2 and not words[0].endswith(".npz")):
        raise IrnError(
            "usage: :load FILE or :load CHECKPOINT.npz [MODEL] (quote names with spaces)"
        )
    if not words[0].endswith(".npz"):
        return session.load(words[0])
    model = session.model(words[1] if len(words) == 2 else None)
    report = model.load(words[0])
    return [Output(f"loaded {len(report.loaded)} parameters of {model.name} from {words[0]}")]


@command(":ir [NAME] [--after PASS] [--loc]", "IR of the last expression or a function")
def show_ir(session: Evaluator, line: CommandLine) -> list[Output]:
    words, flags = options(line.args, valued=("--after",), switches=("--loc",))
    stage = flags.get("--after", STAGES[-1])
    if stage not in STAGES:
        raise IrnError(f"--after {stage}: no such stage; the stages are {', '.join(STAGES)}")
    if len(words) > 1:
        raise IrnError("usage: :ir [NAME] [--after PASS] [--loc]")
    if words:
        module, names = session.compile_session(), [function_symbol(session, words[0])]
    elif session.last is not None:
        module, names = session.last[0].clone(), [session.last[1]]
    else:
        module = session.compile_session()
        names = [f.sym_name.data for f in public_functions(module)]
        if not names:
            return [Output("nothing to show yet: evaluate an expression or :load a file")]
    driver.run_passes(module, ",".join(driver.PIPELINE[: STAGES.index(stage)]))
    wanted = {f.sym_name.data for name in names for f in reachable(module, name)}
    shown = [f for f in functions_of(module) if f.sym_name.data in wanted]
    return [Output(format_ir(shown, "--loc" in flags), "ir")]


@command(":passes", "the pass pipeline, in order")
def show_passes(session: Evaluator, line: CommandLine) -> list[Output]:
    rows = [(s, PASS_SUMMARIES.get(s) or pass_summary(s)) for s in STAGES]
    return [Output("The stages, in order (:ir --after STAGE):\n" + table(rows))]


@command(":grad EXPR wrt NAME [--ir]", "d(EXPR)/d(NAME), and with --ir its IR")
def show_gradient(session: Evaluator, line: CommandLine) -> list[Output]:
    rest = line.text[line.start :]
    match = re.search(r"(?s)(.*\S)\s+wrt\s+([A-Za-z_]\w*)(\s+--ir)?\s*$", rest)
    if match is None:
        raise IrnError("usage: :grad EXPR wrt NAME [--ir], e.g. :grad sum(relu(x @ w)) wrt w")
    name = match.group(2)
    wrt = session.variables.get(name)
    if not isinstance(wrt, np.ndarray) or wrt.dtype.kind != "f":
        got = what(wrt) if name in session.variables else "not a variable"
        raise IrnError(f"'{name}' must be a variable holding a float tensor; it is {got}")
    start = line.start + match.start(1)
    expr = line.expression(start, start + len(match.group(1)))
    value, compiled = session.compile(expr, (name,))
    if not is_float_scalar(value):
        raise IrnError(
            f":grad needs a float scalar, but this is {static_type(value)} "
            "(reduce it with sum(...) or mean(...))",
            line.loc(start),
        )
    position = next(i for i, a in enumerate(compiled.function.args) if a.name_hint == name)
    symbol = add_gradient(compiled.module, compiled.function, [position])
    driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
    result, gradient = session.execute_compiled(compiled, symbol)
    outputs = [
        Output(f"value: {format_value(result)}", "value"),
        Output(f"d/d{name}: {format_value(gradient)}", "value"),
    ]
    if match.group(3):
        outputs.append(Output(format_ir(reachable(compiled.module, symbol)), "ir"))
    return outputs


@command(":type EXPR", "the type of an expression, without running it")
def show_type(session: Evaluator, line: CommandLine) -> list[Output]:
    value, _ = session.compile(line.expression())
    return [Output(static_type(value))]


@command(":time EXPR", "how long an expression takes to compile and to run")
def time_expression(session: Evaluator, line: CommandLine) -> list[Output]:
    start = time.perf_counter()
    value, compiled = session.compile(line.expression())
    built = time.perf_counter()
    if compiled is None:
        return [Output(f"compile-time value; frontend {ms(built - start)}")]
    driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
    optimised = time.perf_counter()
    # Runs until half a second has passed (at least 3, at most 1000): the best is the time.
    runs, best, total = 0, float("inf"), 0.0
    while runs < 1000 and (runs < 3 or total < 0.5):
        before = time.perf_counter()
        session.execute_compiled(compiled)
        elapsed = time.perf_counter() - before
        runs, best, total = runs + 1, min(best, elapsed), total + elapsed
    return [
        Output(
            f"frontend {ms(built - start)}, passes {ms(optimised - built)}; "
            f"run {ms(best)} (best of {runs}, {target_name(session.target)} target)"
        )
    ]


@command(":compile [cpu|cuda] NAME", "the source a target emits for a function")
def show_compiled_source(session: Evaluator, line: CommandLine) -> list[Output]:
    words, _ = options(line.args)
    target = words.pop(0) if words and words[0] in EMITTERS else "cpu"
    # The module is in memory, not a file, so it is emitted as `xdsl-opt -t numba-cpu` would.
    emitter = IRNET_UNIVERSE.all_targets[f"numba-{target}"]()()
    if len(words) != 1:
        raise IrnError("usage: :compile [cpu|cuda] NAME")
    module = session.compile_session()
    symbol = function_symbol(session, words[0])
    driver.run_passes(module, ",".join(driver.PIPELINE))
    alone = ModuleOp([f.clone() for f in reachable(module, symbol)])
    out = StringIO()
    emitter.emit(driver.context(), alone, out)
    return [Output(out.getvalue(), "python")]


@command(":target [auto|reference|cpu|cuda]", "where expressions run (reference by default)")
def choose_target(session: Evaluator, line: CommandLine) -> list[Output]:
    words, _ = options(line.args)
    if words and words[0] not in TARGETS:
        raise IrnError(f"unknown target '{words[0]}'; the targets are {', '.join(TARGETS)}")
    if words:
        session.target = words[0]
    return [Output(f"target: {target_name(session.target)}")]


def target_name(target: str) -> str:
    """`target`, and what it runs on for `auto`: `auto (cpu)`."""
    return f"{target} ({resolve(target)})" if target == AUTO else target


@command(":params [MODEL]", "the parameter and state tables of a model")
def show_params(session: Evaluator, line: CommandLine) -> list[Output]:
    words, _ = options(line.args)
    module = session.compile_session()
    functions = {f.sym_name.data: f for f in public_functions(module)}
    models = [f.name for f in session.scope.tree.functions if f.kind == "model"]
    if words:
        if words[0] not in models:
            raise IrnError(f"no model '{words[0]}'{suggest(words[0], models)}")
        models = words[:1]
    if not models:
        return [Output("no model is defined yet: :load a file, or type a model")]
    tables = [
        f"model {summary.signature(functions[m])}\n" + summary.model_tables(functions[m])
        for m in models
    ]
    return [Output("\n\n".join(tables))]


@command(":train [EPOCHS] [MODEL]", "train a model as its train block says (EPOCHS more epochs)")
def train_model(session: Evaluator, line: CommandLine) -> list[Output]:
    words, _ = options(line.args)
    counts = [w for w in words if w.isdigit()]
    names = [w for w in words if not w.isdigit()]
    if len(counts) > 1 or len(names) > 1:
        raise IrnError("usage: :train [EPOCHS] [MODEL], e.g. :train 2")
    model = session.model(names[0] if names else None)
    history = model.fit(epochs=int(counts[0]) if counts else None)
    if not history.records:
        return [Output(f"{model.name}: no epoch trained")]
    last = history.records[-1]
    shown = "  ".join(f"{k} {v:.4f}" for k, v in last.items() if k.endswith(("loss", "accuracy")))
    return [Output(f"trained {model.name} to epoch {model.epoch}: {shown}")]


@command(":reset", "forget every definition and variable")
def reset_session(session: Evaluator, line: CommandLine) -> list[Output]:
    session.reset()
    return [Output("session reset")]


@command(":quit", "leave (Ctrl-D does too)")
def quit_session(session: Evaluator, line: CommandLine) -> list[Output]:
    session.done = True
    return []


# --- what the commands share ---


def function_symbol(session: Evaluator, name: str) -> str:
    """The public function `name` of the session, or an error saying why there is none."""
    if name in session.symbols:
        return name
    ref = session.scope.namespace.get(name)
    if isinstance(ref, FunctionRef):
        raise IrnError(
            f"'{name}' is a def: it is compiled at each call, for the argument types of that "
            f"call. Call it at the prompt (e.g. {name}(x)), then :ir shows that call."
        )
    raise IrnError(f"no function '{name}'{suggest(name, session.symbols)}")


def is_float_scalar(value: Any) -> bool:
    return isinstance(value, SSAValue) and value.type.get_num_dims() == 0 and is_float(value.type)


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
"""What `:passes` says of the stages that are not irnet's own passes."""


def pass_summary(name: str) -> str:
    """The first paragraph of an irnet pass's module docstring (`inline-functions`: ...)."""
    doc = sys.modules[driver.PASSES[name]().__module__].__doc__ or ""
    first = doc.split("\n\n")[0].replace("\n", " ")
    return re.sub(rf"^`{re.escape(name)}`:\s*", "", first)


HELP_INTRO = """\
irnet REPL: type .irn expressions, assignments and definitions.
  x = randn(3, 4)                 a variable: a tensor made in NumPy
  relu(x @ transpose(x))          an expression: compiled and run on the :target
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
