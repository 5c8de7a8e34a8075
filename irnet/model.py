"""irnet as a library: a `Model` is one model of a `.irn` program, with its parameters, its
state, its functions compiled for a target, and its train block.

    import irnet

    model = irnet.load("examples/mnist_mlp.irn")      # or irnet.loads(text)
    model.functions                                   # name -> Signature
    logits = model(x)                                 # the model function, compiled
    loss = model.compile("loss")(x=x, y=y)            # any of its functions, by argument name
    value, grads = model.grad(wrt=["dense_0.w"])(x, y)
    model.params["dense_0.b"] = np.zeros(256)         # checked: name, shape, dtype
    history = model.fit(x_train, y_train, epochs=3, validation_data=(x_val, y_val))
    model.save("mnist.npz"); model.load("mnist.npz", strict=False)

The CLI and the REPL are built on this module: `irnet run` calls `Model.compile`, `irnet
train` calls `Model.fit`, `irnet eval`/`predict` call `Model.evaluate`/`predict`.

Parameters are the model's (a file's models each have their own: load another with
`model=NAME`); state is what the model keeps beside them that training updates but the
optimiser does not (batch norm's running statistics, `state NAME: ...` in `.irn`). Both are
saved in checkpoints, with the optimiser's moments and step count (`optimizer_state`). All live
where the model's target keeps them (on the device for cuda) and are read as NumPy arrays.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from irnet.dialects import nn
from irnet.dialects.shapes import format_type

from . import checkpoint as ckpt
from . import data as datasets
from . import driver, stages, targets
from . import metrics as metric_rules
from .callbacks import Callback, History
from .diagnostics import IrnError
from .distributed import World
from .functions import add_gradient, format_ir, keep_only, public_functions, reachable
from .params import (
    Argument,
    arguments,
    caller_results,
    find_function,
    initial_parameters,
    result_roles,
)
from .train import Session, computation
from .train import evaluate as evaluate_on
from .train import fit as fit_on
from .train_config import SETTINGS

LoadReport = ckpt.Fit
"""What `Model.load` took from a checkpoint: `loaded`, `missing`, `unexpected` and
`mismatched` names, and `report()` lines."""

FED = ("param", "state", "opt")
"""The argument roles a `Model` supplies itself; the caller gives the others."""


def load(
    path: str | Path,
    *,
    model: str | None = None,
    target: str | None = None,
    float64: bool = False,
    seed: int | None = None,
    **settings: Any,
) -> Model:
    """The model `model` (by default the first with a train block, else the first) of the
    `.irn` file at `path`.

    `target` is where its functions run unless a call names another: `reference` (NumPy),
    `cpu` (Numba), `cuda`, or `auto` (cpu where Numba works), by default `$IRNET_TARGET` or
    `auto`. `float64` builds every `f32` of the program as `f64`. `settings` override the
    train block's entries (`epochs`, `batch`, `lr`, `optimizer`, `seed`, ...), as the command
    line's flags do. `seed` draws the initial parameters (default: the train block's seed,
    else 0) and seeds training."""
    return Model.open(path, model=model, target=target, float64=float64, seed=seed, **settings)


def loads(
    text: str,
    *,
    name: str = "<string>",
    model: str | None = None,
    target: str | None = None,
    float64: bool = False,
    seed: int | None = None,
    **settings: Any,
) -> Model:
    """`load` for a program given as text; `name` is what its errors call it, and its
    imports and data paths resolve from the current folder."""
    settings = checked_settings(settings, seed)
    compiled = driver.compile_source(text, name, Path.cwd() / name, settings, float64=float64)
    return Model._open(compiled, model, target, settings, seed)


def checked_settings(settings: dict, seed: int | None) -> dict:
    """The train-block overrides given (those not None), with `seed`; unknown names refused."""
    unknown = [name for name in settings if name not in SETTINGS]
    if unknown:
        raise IrnError(
            f"unknown train setting {', '.join(unknown)}; the settings are {', '.join(SETTINGS)}"
        )
    given = {name: value for name, value in settings.items() if value is not None}
    return given if seed is None else {**given, "seed": seed}


def load_data(source: str, *args: Any, part: str = "train", **options: Any) -> tuple[Any, Any]:
    """The `part` ("train" or "test") of a data source, as a train block's `data = ...` names
    it, as NumPy arrays `(inputs, targets)`: each one array, or a list where there are several.
    `irnet.load_data("mnist", "data/mnist", part="test")` is `mnist("data/mnist")`'s test set:
    images as float32 in [0, 1], shape [N, 28, 28], and int32 labels. Paths are relative to the
    current folder."""
    dataset = datasets.load(datasets.DataSpec(source, args, options, None), Path.cwd(), part)
    inputs, targets = dataset.inputs, dataset.targets
    return (
        inputs[0] if len(inputs) == 1 else inputs,
        targets[0] if len(targets) == 1 else targets,
    )


class UnknownName(IrnError, KeyError):
    """A name that a model does not have; a `KeyError` too, as mappings raise."""

    def __str__(self) -> str:
        return str(self.args[0])


def unknown(what: str, name: str, known: Iterable[str], owner: str) -> UnknownName:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; it has {', '.join(known)}"
    return UnknownName(f"{owner} has no {what} '{name}'{hint}")


def host(value: Any) -> np.ndarray:
    """A runner's value as a NumPy array (copied off the device on the cuda target)."""
    return value.copy_to_host() if hasattr(value, "copy_to_host") else np.asarray(value)


class Tensors(MutableMapping[str, np.ndarray]):
    """A model's parameters (or state): arrays by name, in the program's order.

    Reading gives a read-only NumPy view; assigning an array checks that the name exists, the
    shape is the same and the dtype casts safely, and stores a copy. `update` checks every
    entry before it changes any, so a refused update leaves the model as it was. Entries
    cannot be deleted: a model's parameters are fixed by its program."""

    def __init__(self, what: str, owner: str, table: ckpt.Table, values: dict[str, Any]):
        self._what, self._owner, self._table = what, owner, table
        self._values = values
        """The runner's values, shared with the trainer, which replaces them each step."""

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._table:
            raise unknown(self._what, name, self._table, self._owner)
        view = host(self._values[name]).view()
        view.flags.writeable = False
        return view

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __delitem__(self, name: str) -> None:
        raise IrnError(f"{self._owner}'s {self._what}s are fixed by its program; '{name}' stays")

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def update(self, other: Mapping[str, Any] | None = None, /, **more: Any) -> None:  # type: ignore[override]
        """Assign several entries, all or none: each is checked before any changes."""
        given = {**dict(other or {}), **more}
        checked = {name: self._checked(name, value) for name, value in given.items()}
        self._values.update(checked)

    def _checked(self, name: str, value: Any) -> np.ndarray:
        if name not in self._table:
            raise unknown(self._what, name, self._table, self._owner)
        shape, dtype = self._table[name]
        array = np.asarray(value)
        where = f"{self._what} '{name}' of {self._owner}"
        if array.shape != tuple(shape):
            raise IrnError(
                f"cannot assign an array of shape {list(array.shape)} to {where}, "
                f"which has shape {list(shape)}"
            )
        if not np.can_cast(array.dtype, dtype, "same_kind"):
            raise IrnError(f"cannot assign {array.dtype} values to {where}, which is {dtype}")
        return np.array(array, dtype=dtype, order="C", copy=True)

    def numpy(self) -> dict[str, np.ndarray]:
        """Every entry as a NumPy array of its own (a copy, safe to keep and change)."""
        return {name: np.array(host(self._values[name])) for name in self._table}

    def __repr__(self) -> str:
        entries = ", ".join(
            f"{n}: {list(s)} {np.dtype(d).name}" for n, (s, d) in self._table.items()
        )
        return f"{self._what}s of {self._owner} ({entries})"


@dataclass(frozen=True)
class Signature:
    """A function as its callers see it: the arguments they give (name -> type, in order),
    the result types, and the parameters, state and optimiser state the model supplies."""

    name: str
    arguments: dict[str, str]
    results: tuple[str, ...]
    params: tuple[str, ...]
    state: tuple[str, ...]
    optimizer_state: tuple[str, ...]
    text: str

    @classmethod
    def of(cls, function: func.FuncOp) -> Signature:
        args = arguments(function)
        given = {caller_name(a): format_type(a.type) for a in args if a.kind not in FED}
        types = function.function_type.outputs.data
        results = tuple(format_type(types[i]) for i in caller_results(function))
        name = function.sym_name.data
        spelled = ", ".join(f"{arg}: {t}" for arg, t in given.items())
        return cls(
            name,
            given,
            results,
            tuple(a.name for a in args if a.kind == "param"),
            tuple(a.name for a in args if a.kind == "state"),
            tuple(a.name for a in args if a.kind == "opt"),
            f"{name}({spelled}) -> {', '.join(results)}",
        )

    def __str__(self) -> str:
        return self.text


def caller_name(argument: Argument) -> str:
    """What a caller calls an argument: its name, `grad.NAME` for a parameter's gradient."""
    return f"grad.{argument.name}" if argument.kind == "grad" else argument.name


class Function:
    """One function of a model compiled for a target: a plain callable on NumPy arrays.

    Give the arguments of its signature by position or by name; the model supplies its
    parameters (and state) as they are at the call. The results come back as NumPy arrays:
    one array, or a tuple for several. A wrong shape or dtype is refused naming the argument,
    its type and what was given."""

    def __init__(
        self,
        model: Model,
        symbol: str,
        runner: targets.Runner,
        target: str,
        training: bool = False,
        results: Callable[[tuple], Any] | None = None,
    ):
        self.name, self.target, self.training = symbol, target, training
        self._model, self._runner = model, runner
        function = runner.function(symbol)
        self.signature = Signature.of(function)
        self._names = list(self.signature.arguments)
        stores = {
            "param": model.params._values,
            "state": model.state._values,
            "opt": model.optimizer_state._values,
        }
        self._roles = result_roles(function)
        plan: list[tuple[dict[str, Any] | None, Any]] = []
        given = 0
        for arg in arguments(function):
            if arg.kind in FED:
                plan.append((stores[arg.kind], arg.name))
            else:
                plan.append((None, given))
                given += 1
        self._plan = plan
        self._results = results

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) != len(self._names):
            args = self._bind(args, kwargs)
        values = [args[key] if store is None else store[key] for store, key in self._plan]
        results = self._runner.run(self.name, values, seed=self._model.seed, training=self.training)
        arrays = []
        for role, value in zip(self._roles, results):
            if role is None or role[0] != "state":
                arrays.append(host(value))
            elif self.training:  # a call in training mode updates the state, as a step does
                self._model.state._values[role[1]] = value
        arrays = tuple(arrays)
        if self._results is not None:
            return self._results(arrays)
        return arrays[0] if len(arrays) == 1 else arrays

    def _bind(self, args: tuple, kwargs: dict) -> tuple:
        names, where = self._names, f"{self.name}({', '.join(self._names)})"
        if len(args) > len(names):
            raise IrnError(f"{where} takes {len(names)} arguments, got {len(args)}")
        bound = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise unknown("argument", name, names, f"@{self.name}")
            if name in bound:
                raise IrnError(f"{where}: argument '{name}' given twice")
            bound[name] = value
        missing = [n for n in names if n not in bound]
        if missing:
            raise IrnError(f"{where}: missing {', '.join(missing)}")
        return tuple(bound[n] for n in names)

    def __repr__(self) -> str:
        return f"<irnet function {self.signature} on {self.target}>"


class Model:
    """One model of a `.irn` program: its functions, parameters and state, compiled on demand
    for a target, and trained by its train block (`fit`). Made by `irnet.load` / `loads`."""

    def __init__(
        self,
        compiled: driver.Compiled,
        name: str | None = None,
        target: str | None = None,
        world: World | None = None,
        seed: int | None = None,
    ):
        module = compiled.module
        self._frontend = module.clone()
        """The IR before any pass, for `ir()` and for the functions `grad()` adds."""
        driver.run_passes(module, ",".join(driver.PIPELINE))
        self._module = module
        self._compiled = compiled
        self.name = pick_model(module, compiled, name)
        self.config = compiled.trains.get(self.name)
        """The train block's settings (with the overrides `load` was given), or None."""
        self.path = compiled.path
        self.target = targets.default_target(target)
        self.world = world or World()
        self.seed = seed if seed is not None else self.config.seed if self.config else 0
        """Draws the initial parameters; with a train block also its shuffles and dropout."""
        model_fn = find_function(module, self.name)
        owner = f"model {self.name}"
        step_args = arguments(find_function(module, f"{self.name}.step")) if self.config else []
        model_args = arguments(model_fn)
        self.params = Tensors(
            "parameter",
            owner,
            ckpt.table_of(model_args, "param"),
            initial_parameters(model_fn, self.seed),
        )
        self.state = Tensors(
            "state tensor",
            owner,
            ckpt.table_of(model_args, "state"),
            initial_parameters(model_fn, self.seed, "state"),
        )
        opt = ckpt.table_of(step_args, "opt")
        self.optimizer_state = Tensors(
            "optimizer state tensor",
            owner,
            opt,
            {name: np.zeros(shape, dtype) for name, (shape, dtype) in opt.items()},
        )
        """The optimiser's moments by parameter (`m.dense_0.w`) and its step count `t`."""
        self.functions = {
            f.sym_name.data: Signature.of(f)
            for f in public_functions(module)
            if f.sym_name.data == self.name or f.sym_name.data.startswith(self.name + ".")
        }
        """The model's functions: the model itself and what its train block adds."""
        self._runners: dict[str, targets.Runner] = {}
        self._compiled_functions: dict[tuple[str, str, bool], Function] = {}
        self._trainer: Session | None = None
        self.stop_training = False
        """Set by a callback to end `fit` after the current epoch."""

    @classmethod
    def _open(
        cls,
        compiled: driver.Compiled,
        name: str | None,
        target: str | None,
        settings: dict,
        seed: int | None,
        world: World | None = None,
    ) -> Model:
        trained = {k for k in settings if k != "seed"}
        if trained and not compiled.trains:
            where = compiled.path or "the program"
            raise IrnError(f"{where} has no train block for the settings {', '.join(trained)}")
        return cls(compiled, name, target, world, seed)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: str | None = None,
        target: str | None = None,
        float64: bool = False,
        seed: int | None = None,
        world: World | None = None,
        **settings: Any,
    ) -> Model:
        """`irnet.load`, with `world`: the processes of a data-parallel job (`irnet train`
        under `mpirun`)."""
        settings = checked_settings(settings, seed)
        distributed = world is not None and world.comm is not None
        compiled = driver.load(path, settings, distributed=distributed, float64=float64)
        return cls._open(compiled, model, target, settings, seed, world)

    # --- running ---

    def runner(self, target: str | None = None) -> targets.Runner:
        """The runner of this model's module on `target` (default: the model's), made once."""
        chosen = targets.resolve(targets.default_target(target or self.target))
        if chosen not in self._runners:
            self._runners[chosen] = targets.make_runner(
                self._module, chosen, source_name=str(self.path or self.name), world=self.world
            )
        return self._runners[chosen]

    def function_name(self, function: str | None) -> str:
        """The symbol of `function`: a full name (`mnist_mlp.loss`), a train function's kind
        (`loss`), or by default the model itself."""
        if function is None:
            return self.name
        if function in self.functions:
            return function
        if f"{self.name}.{function}" in self.functions:
            return f"{self.name}.{function}"
        kinds = [name.removeprefix(self.name + ".") for name in self.functions]
        raise unknown("function", function, dict.fromkeys([*self.functions, *kinds]),
                      f"model {self.name}")  # fmt: skip

    def compile(
        self, function: str | None = None, *, target: str | None = None, training: bool = False
    ) -> Function:
        """`function` (default: the model) compiled for `target` (default: the model's), as a
        callable on NumPy arrays; compiled once per target. `training` runs it as in
        training (dropout on)."""
        symbol = self.function_name(function)
        chosen = targets.resolve(targets.default_target(target or self.target))
        key = (symbol, chosen, training)
        if key not in self._compiled_functions:
            runner = self.runner(chosen)
            self._compiled_functions[key] = Function(self, symbol, runner, chosen, training)
        return self._compiled_functions[key]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The model function on NumPy arrays (`compile()` on the model's target)."""
        return self.compile()(*args, **kwargs)

    def grad(
        self,
        function: str | None = None,
        wrt: str | Sequence[str] | None = None,
        *,
        target: str | None = None,
    ) -> Function:
        """A callable returning `function`'s value and its gradients, `(value, {name: grad})`,
        with respect to `wrt`: names of parameters or of the function's arguments (default:
        every parameter). `function` (default: the train block's `loss`, else the model) must
        return a float scalar. The gradient is IR that the autodiff pass writes, compiled like
        any function."""
        if function is None and self.config is not None:
            function = "loss"
        symbol = self.function_name(function)
        module = self._frontend.clone()
        original = find_function(module, symbol)
        args = arguments(original)
        names = [a.name for a in args]
        wanted = [a.name for a in args if a.kind == "param"] if wrt is None else wrt
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        for name in wanted:
            if name not in names:
                raise unknown("parameter or argument", name, names, f"@{symbol}")
        gradient = add_gradient(module, original, [names.index(n) for n in wanted],
                                f"{symbol}.value_and_grad")  # fmt: skip
        keep_only(module, gradient)
        driver.run_passes(module, ",".join(driver.PIPELINE))
        chosen = targets.resolve(targets.default_target(target or self.target))
        runner = targets.make_runner(module, chosen, source_name=str(self.path or self.name))

        def results(values: tuple) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            value, *grads = values
            return value, dict(zip(wanted, grads))

        return Function(self, gradient, runner, chosen, results=results)

    # --- looking at the IR ---

    def ir(
        self,
        function: str | None = None,
        *,
        after: str = stages.DEFAULT_STAGE,
        target: str = "cpu",
        locations: bool = False,
    ) -> str:
        """The IR of `function` (default: every function of the program) after stage `after`
        of `target`'s compilation: `frontend`, a pass (`autodiff`, `fuse-elementwise`, ...),
        or `kernels` (the Numba module); as `irnet dump` prints it."""
        if target not in driver.TARGET_PIPELINES:
            raise IrnError(
                f"unknown target '{target}'; ir() shows {', '.join(driver.TARGET_PIPELINES)}"
            )
        plan = stages.Stages.of(target)
        last = plan.index(after, "after=")
        *_, (_, result) = plan.run(self._frontend.clone(), str(self.path or self.name), last)
        if isinstance(result, str):
            return result
        if function is None:
            text = _printed(result, locations)
        else:
            text = format_ir(reachable(result, self.function_name(function)), locations)
        return text

    # --- checkpoints ---

    def save(self, path: str | Path) -> None:
        """Write the parameters, the state and the training position to a checkpoint (`.npz`),
        atomically: an existing file is replaced whole or not at all."""
        if self.config is not None:
            checkpoint = self.trainer.checkpoint()
        else:
            checkpoint = ckpt.Checkpoint(
                self.params.numpy(), self.state.numpy(), {"model": self.name}, {}
            )
        ckpt.save(Path(path), checkpoint)

    def export(self, path: str | Path, *, opset: int = 17) -> None:
        """Write the model for other tools, by the suffix of `path`: `.onnx`, the model
        function in inference mode (dropout off) with the current parameters as initializers,
        a dynamic batch dimension and, for `csv(..., normalize=true)` data, the scaling of its
        input that `predict` applies; `.safetensors`, the parameters and the state by name."""
        path = Path(path)
        if path.suffix == ".onnx":
            from .onnx_export import export_onnx  # imports onnx, an optional extra

            export_onnx(self, path, opset=opset, scaling=self._input_scaling())
        elif path.suffix == ckpt.SAFETENSORS:
            ckpt.save_weights(path, self.params.numpy(), self.name, self.state.numpy())
        else:
            raise IrnError(f"{path}: export writes .onnx or .safetensors files")

    def _input_scaling(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """How `predict` scales the first input: by the mean and standard deviation of the
        train block's `csv(..., normalize=true)` data; nothing for other data."""
        data = self.config.data if self.config is not None else None
        if data is None or not data.kwargs.get("normalize"):
            return {}
        spec = datasets.DataSpec(data.name, data.args, data.kwargs, data.loc)
        stats = datasets.load(spec, (self.path or Path.cwd()).parent, "train").feature_stats
        first = next(iter(self.functions[self.name].arguments))
        return {} if stats is None else {first: (stats.mean, stats.std)}

    def load(self, path: str | Path, *, strict: bool = True, resume: bool = False) -> LoadReport:
        """Take the weights (parameters and state) of the checkpoint at `path` (an `.npz` that
        `save` or `irnet train` wrote, or a `.safetensors` file of weights).

        Strict: the checkpoint must hold exactly this model's parameters and state (names,
        shapes, dtypes), or it is refused naming each difference and nothing changes. Not
        strict: the tensors that fit are loaded, the others keep their values, and the report
        says which. `resume` also takes the optimiser state and the training position (epoch,
        step, history), to continue training where the checkpoint left it."""
        path = Path(path)
        tables = {"param": self.params._table, "state": self.state._table}
        if resume:
            self.trainer.restore(path)
            return ckpt.compare(self.params.numpy(), self.params._table)
        loaded = ckpt.load(path)
        if strict:
            fit = ckpt.check_fits(
                loaded, path, model=self.name, params=tables["param"], state=tables["state"]
            )
        else:
            fit = ckpt.compare({**loaded.params, **loaded.state},
                               {**tables["param"], **tables["state"]})  # fmt: skip
            if not fit.loaded:
                raise IrnError(f"no parameter of checkpoint {path} fits model '{self.name}'")
        self.params.update({n: loaded.params[n] for n in fit.loaded if n in tables["param"]})
        self.state.update({n: loaded.state[n] for n in fit.loaded if n in tables["state"]})
        return fit

    # --- training ---

    @property
    def trainer(self) -> Session:
        """The train block's step, evaluation and position (`train.Session`), made on first
        use on the model's target; it updates `params` and `state` in place."""
        if self._trainer is None:
            if self.config is None:
                where = self.path or "the program"
                raise IrnError(
                    f"{where} has no train block for {self.name}: training needs its loss and "
                    f"optimizer (`train {self.name}(...) {{ loss = ...; optimizer = ... }}`)"
                )
            self._trainer = self._make_trainer()
        return self._trainer

    def _make_trainer(self) -> Session:
        module, symbol, config = self._module, self.name, self.config
        assert config is not None  # `trainer` refuses a model without a train block
        step_args = arguments(find_function(module, f"{symbol}.step"))
        returned = find_function(module, f"{symbol}.eval").body.block.last_op
        assert returned is not None
        output = returned.operands[1]
        probability = isinstance(output.owner, nn.SigmoidOp)
        labels = [a for a in step_args if a.kind == "target"]
        metrics = metric_rules.resolve(config.metrics, output.type, labels, probability,
                                       config.loss)  # fmt: skip
        session = Session(
            self.path or Path(symbol),
            symbol,
            config,
            self.runner(),
            step_args,
            computation(module, symbol),
            self.world,
            params=self.params._values,
            state=self.state._values,
            opt=self.optimizer_state._values,
        )
        session.metrics, session.output_type, session.owner = metrics, output.type, self
        return session

    @property
    def epoch(self) -> int:
        return self._trainer.epoch if self._trainer is not None else 0

    @property
    def step(self) -> int:
        return self._trainer.step if self._trainer is not None else 0

    @property
    def history(self) -> list[dict]:
        """One record per epoch trained: `epoch`, `train_loss`, `val_loss`, metrics, ..."""
        return self._trainer.history if self._trainer is not None else []

    def train_step(self, *data: Any, lr: float | None = None) -> float:
        """One optimiser step on one batch: the model's inputs, then the train block's
        targets, as NumPy arrays (by position); the batch's loss. `lr` defaults to the
        optimiser's learning rate."""
        trainer = self.trainer
        inputs, labels = trainer.split_data(list(data), "train_step")
        rate = trainer.config.hyperparameters["lr"] if lr is None else float(lr)
        return trainer.train_step(inputs, labels, rate, False)

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        *,
        epochs: int | None = None,
        batch: int | None = None,
        validation_data: Any = None,
        validation_split: float | None = None,
        shuffle: bool | None = None,
        callbacks: Sequence[Callback] = (),
        verbose: bool = True,
        detect_anomaly: bool = False,
    ) -> History:
        """Train for `epochs` (default: the train block's) and return the `History`.

        The data: `x` and `y` as NumPy arrays (a list or a dict by name for several inputs or
        targets), or `x` an iterable of `(inputs, targets)` batches (a list, or anything that
        can be iterated once per epoch), or nothing for the train block's `data`.
        `validation_data` is arrays `(x, y)` or batches; else `validation_split` (by default
        the train block's `val_split`) holds out that fraction of the data.
        Callbacks see every batch and epoch (`irnet.callbacks`); `EarlyStopping` and
        `ModelCheckpoint` come built in. With `verbose`, a progress bar on
        stderr and a line per epoch on stdout, as `irnet train` prints. `detect_anomaly` stops
        at the first NaN or infinity, naming the `.irn` line that made it."""
        return fit_on(
            self.trainer, x, y, epochs=epochs, batch=batch, validation_data=validation_data,
            validation_split=validation_split, shuffle=shuffle, callbacks=callbacks,
            verbose=verbose, detect_anomaly=detect_anomaly,
        )  # fmt: skip

    def evaluate(
        self, x: Any = None, y: Any = None, *, batch: int | None = None, part: str = "test"
    ) -> dict[str, float]:
        """The loss and the train block's metrics over arrays `x`, `y` or batches, or else
        over the `part` ("test", "validation", "train") of the train block's data."""
        return evaluate_on(self.trainer, x, y, batch, part)

    def predict(self, x: Any, *, batch: int | None = None) -> np.ndarray:
        """The model's output for the inputs `x` (arrays, as `fit` takes them), computed in
        batches of `batch` (default: the train block's, else all at once). Where the train
        block's data is `csv(..., normalize=true)`, `x` is scaled as that data was."""
        if self.config is None:
            return self.compile()(*(x if isinstance(x, list | tuple) else [x]))
        trainer = self.trainer
        inputs = trainer.fit(trainer.as_arrays(x, "input"), "input", "predict()")
        return trainer.predict(trainer.normalized(inputs), batch or self.config.batch)

    def __repr__(self) -> str:
        count = sum(int(np.prod(s)) for s, _ in self.params._table.values())
        resolved = self.target == targets.AUTO and self._runners
        ran = f" ({', '.join(self._runners)})" if resolved else ""
        return (
            f"<irnet model {self.functions[self.name]}: {count:,} parameters on {self.target}{ran}>"
        )


def open_session(
    path: str,
    overrides: dict | None = None,
    model: str | None = None,
    world: World | None = None,
    target: str = "reference",
    float64: bool = False,
) -> Session:
    """The trainer of the train block of `model` (the first by default) compiled for
    `target`; `float64` builds the program in float64 (`--f64`). What the tests drive."""
    opened = Model.open(path, model=model, target=target, float64=float64, world=world,
                        **(overrides or {}))  # fmt: skip
    if opened.config is None:
        raise IrnError(f"{path} has no train block")
    return opened.trainer


def pick_model(module: ModuleOp, compiled: driver.Compiled, name: str | None) -> str:
    """The model `name`, or the first with a train block, or the first model."""
    models = [f.sym_name.data for f in public_functions(module) if "." not in f.sym_name.data]
    if name is None:
        if compiled.trains:
            name = next(iter(compiled.trains))
        elif models:
            name = models[0]
        else:
            raise IrnError("this program defines no model")
    if name not in models:
        raise unknown("model", name, models, "the program")
    return find_function(module, name).sym_name.data


def _printed(module: ModuleOp, locations: bool) -> str:
    import io

    out = io.StringIO()
    Printer(out, print_debuginfo=locations).print_op(module)
    return out.getvalue().rstrip("\n") + "\n"
