"""The REPL's evaluation core: an `Evaluator` holds a session's definitions and variables and
turns a definition, an expression or an assignment into IR and values.

- **Definitions** (`def`, `model`, `train`, `import`, `from`) are kept as source text, one
  chunk per input or loaded file, each parsed under its own name (`<input-3>`,
  `examples/mnist_mlp.irn`) so that errors quote the right line. All chunks share one
  namespace, later definitions replacing earlier ones of the same name. A definition is
  accepted only if every model and train block of the session still compiles.
- **Expressions** compile, through the frontend's own `FunctionBuilder` and `evaluate`, into a
  throwaway public function `@__repl__` (`prompt.py`) whose arguments are the session variables
  the expression uses (typed by their exact static shapes) and the tensors that REPL builtins
  such as `randn(3, 4)` make in NumPy (`makers.py`); its results are the tensors in the
  expression's value. The IRGen API is used rather than a generated `.irn` text because the
  result type is not known before evaluation, compile-time values (`size(x, 0)`, `range(3)`, a
  function) need no function at all, and errors then point straight at what the user typed
  (the input is parsed with the assignment target blanked out, so columns are unchanged). The
  default pipeline runs over the module, and the session's target runs `@__repl__`: the
  reference interpreter unless `IRNET_TARGET` or `:target` picked another
  (`irnet.targets.make_runner`). Not `auto`, as the commands that run files default to: on the
  cpu target every new expression compiles, for a second or so, while REPL tensors are small.
- **Parameters** of layers an expression calls are drawn from their initialisers with the
  session seed (`irnet.params.initial_parameters`). A model's parameters are drawn from the
  model's own function, so `mnist_mlp(x)` uses the weights `irnet run --seed 0` would, and
  two calls of one model share them. Nothing trains in the REPL, so the values are a pure
  function of the seed; they are cached only to save the work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

from irnet import ast, driver, params, summary, train_ir
from irnet.builtins import suggest
from irnet.diagnostics import IrnError, read_source
from irnet.dialects.dtypes import numpy_dtype
from irnet.functions import public_functions
from irnet.grammar.lexer import RESERVED
from irnet.imports import STDLIB_DIR, FunctionRef, LoadedModule, Program
from irnet.irgen import IRGen, evaluate
from irnet.model import Model
from irnet.parser import parse
from irnet.targets import default_target, make_runner

from .display import Output, format_value, header, type_name
from .inputs import names_in, parse_span
from .makers import MAKERS
from .prompt import REPL_SYMBOL, Compiled, PromptBuilder, model_parameters, substitute, tensors_in

_FIRST_WORD = re.compile(r"\s*(?:#[^\n]*\n\s*)*([A-Za-z_]\w*)")
_ASSIGNMENT = re.compile(r"\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=(?!=)")
DEFINITIONS = ("def", "model", "train", "import", "from")
STATEMENTS = ("param", "state", "return", "for")


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


class Evaluator:
    """A session's definitions, variables and settings (seed, target), and their evaluation.
    `done` is set by `:quit`, for the terminal to stop."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.target = default_target(otherwise="reference")
        self.count = 0
        self.done = False
        self.reset()

    def reset(self) -> None:
        """Forget every definition, variable and drawn parameter, and restart the seeded
        stream; the standard library stays imported."""
        self.chunks: list[Chunk] = prelude()
        self.variables: dict[str, Any] = {}
        self.rng = np.random.default_rng(self.seed)
        self.last: tuple[ModuleOp, str] | None = None
        self.weights: dict[tuple[str, str], np.ndarray] = {}
        self.models: dict[str, Model] = {}
        self.symbols: list[str] = []
        self.rebuild()

    def next_display(self) -> str:
        """The name of a new input (`<input-3>`), as its errors will show it."""
        self.count += 1
        return f"<input-{self.count}>"

    def eval(self, expression: str) -> Any:
        """The value of an expression over the session's variables; raises IrnError."""
        display = self.next_display()
        return self.evaluate(parse_span(expression, 0, len(expression), display))

    def execute(self, text: str, display: str) -> list[Output]:
        """Answer a definition, an expression or an assignment (anything but a `:command`)."""
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
        """Bind `value` to one name, or unpack a tuple into several."""
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
        self.train_files: dict[str, Path] = {}
        """Where each train block was defined: its data paths resolve beside that file."""
        for chunk in self.chunks:
            module = self.program.load_text(chunk.text, chunk.display, chunk.key)
            namespace.update(module.namespace)
            module.namespace = namespace  # so a definition sees those of other inputs
            trains.update({t.model: t for t in module.tree.trains})
            self.train_files.update({t.model: chunk.key for t in module.tree.trains})
        # The session's own functions; imported ones live in modules with a symbol prefix.
        own = [
            r.fn for r in namespace.values() if isinstance(r, FunctionRef) and not r.module.prefix
        ]
        tree = ast.Module(ast.Loc("<session>", 1, 1), [], own, list(trains.values()))
        self.scope = LoadedModule("", "<session>", tree, "", namespace)

    def compile_session(self) -> ModuleOp:
        """Every model and train block of the session, through the frontend (as
        `driver.compile_source` does for one file)."""
        return self.session_program().module

    def session_program(self, model: str | None = None) -> driver.Compiled:
        """The frontend's output for the whole session, placed where `model`'s train block
        was defined."""
        gen = IRGen(self.program, self.scope)
        gen.generate()
        trains = train_ir.generate(gen)
        gen.module_op.verify()
        path = self.train_files.get(model or "", Path.cwd() / "<session>")
        return driver.Compiled(gen.module_op, None, trains, path=path)

    def model(self, name: str | None = None) -> Model:
        """The session's model `name` (by default the only one with a train block, else the
        only model) as an `irnet.Model`, made once until a definition changes: `:train` and
        `:load CHECKPOINT` change its parameters, and expressions that call it use them."""
        models = [f.name for f in self.scope.tree.functions if f.kind == "model"]
        if name is None:
            candidates = list(self.train_files) or models
            if len(candidates) != 1:
                raise IrnError(
                    "name the model: the session defines "
                    + (", ".join(candidates) if candidates else "no model yet")
                )
            name = candidates[0]
        if name not in models:
            raise IrnError(f"no model '{name}'{suggest(name, models)}")
        if name not in self.models:
            self.models[name] = Model(self.session_program(name), name, self.target)
        return self.models[name]

    def define(self, chunk: Chunk) -> list[Output]:
        """Add a chunk's definitions, replacing an earlier chunk of the same key, if the
        session still compiles with them; otherwise keep the session as it was and raise."""
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
        self.models.clear()
        tree = self.program.modules[chunk.key].tree
        for fn in tree.functions:
            self.variables.pop(fn.name, None)
        return [Output(line) for line in self.describe_chunk(tree, module)]

    def describe_chunk(self, tree: ast.Module, module: ModuleOp) -> list[str]:
        """A line per import, function and train block a chunk defines."""
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
        """Add a file's definitions (`:load`); loading it again replaces them."""
        file = Path(path).expanduser()
        text = read_source(file, path)
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
        """Give each parameter and state argument of `@__repl__` its value, as the model (or
        the prompt-level layer) it belongs to has it."""
        owners = model_parameters(fb.gen, function)
        for arg, info in zip(function.args, params.arguments(function)):
            if info.kind in params.INITIALISED:
                owner, name = owners.get(arg, (REPL_SYMBOL, info.name))
                source = function if owner == REPL_SYMBOL else fb.gen.functions[owner]
                fb.values[arg] = self.weight(source, owner, name, arg.type, info.kind)

    def weight(
        self, source: func.FuncOp, owner: str, name: str, type_: TensorType, kind: str
    ) -> np.ndarray:
        """A parameter's (or state tensor's) value: the `irnet.Model`'s where `:train` or
        `:load` made one, otherwise drawn from its initialiser once per model (or per
        prompt-level layer). The prompt evaluates in inference mode: state stays as it is."""
        if owner in self.models:
            model = self.models[owner]
            return np.array((model.params if kind == "param" else model.state)[name])
        cached = self.weights.get((owner, name))
        shape = tuple(type_.get_shape())
        if cached is None or cached.shape != shape or cached.dtype != numpy_dtype(type_):
            drawn = params.initial_parameters(source, self.seed, kind)
            self.weights.update({(owner, n): v for n, v in drawn.items()})
        return self.weights[(owner, name)]

    def execute_compiled(self, compiled: Compiled, name: str | None = None) -> tuple:
        """Run `@name` (by default `@__repl__`) of a module the pipeline has run over, on the
        session's target; the results as NumPy arrays, to print and to keep as variables."""
        name = name or compiled.function.sym_name.data
        runner = make_runner(compiled.module, self.target)
        results = runner.run(name, compiled.args, seed=self.seed)
        return tuple(runner.to_host(r) for r in results)

    def evaluate(self, expr: ast.Expr) -> Any:
        """The value of `expr`: compile-time values as they are, tensors computed."""
        value, compiled = self.compile(expr)
        if compiled is None:
            return value
        self.last = (compiled.module.clone(), compiled.function.sym_name.data)
        driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
        results = self.execute_compiled(compiled)
        return substitute(value, dict(zip(tensors_in(value), results)))
