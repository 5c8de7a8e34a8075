"""`irnet train`, `eval`, `predict` and `sample`: run a train block's compiled functions
(`@m.step`, `@m.eval`, `@m`; see `train_ir`) over real data.

All randomness derives from the seed: parameters from `(seed, name)`, the shuffle of epoch `e`
from `(seed, e)`, dropout from `(seed, step)`. A checkpoint written after epoch `k` therefore
resumes bit for bit: training N epochs equals training k, stopping, and resuming for N - k.

Data-parallel (under `mpirun`): every process shuffles the same way, takes its slice of each
global batch, and the step's `dist.allreduce` sums the loss and gradients weighted by each
slice's share, so K processes follow one process's trajectory up to summation order. Rank 0
alone prints, evaluates, logs, plots and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.printer import Printer

from irnet.dialects.dtypes import numpy_dtype

from . import checkpoint as ckpt
from . import data as datasets
from . import metrics as metric_rules
from . import threads
from .callbacks import Callback, EarlyStopping, History, JsonLog, ModelCheckpoint
from .diagnostics import IrnError, in_order
from .distributed import World
from .params import Argument, arguments, find_function, result_roles
from .progress import Progress
from .schedules import learning_rate
from .targets import Array, Runner
from .train_config import TrainConfig


@dataclass
class Session:
    """A train block compiled for a target, with its parameters and state (kept where the
    runner keeps them: on the device for cuda)."""

    path: Path
    model: str
    config: TrainConfig
    runner: Runner
    step_args: list[Argument]
    program: str
    """The fingerprint of what training computes (`computation`), kept in checkpoints."""
    world: World = field(default_factory=World)
    params: dict[str, Array] = field(default_factory=dict)
    """Shared with the `Model`'s `params` (and `state` with its `state`): changed in place."""
    state: dict[str, Array] = field(default_factory=dict)
    """The model's state tensors (batch norm's running statistics), which steps update."""
    opt: dict[str, Array] = field(default_factory=dict)
    """The optimiser's state: its moments by parameter (`m.dense_0.w`) and the step count `t`."""
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    checkpoint_config: dict | None = None
    checkpoint_program: str | None = None
    metrics: list[metric_rules.Metric] = field(default_factory=list)
    """The block's metrics, resolved against the model's output and target types."""
    output_type: TensorType | None = None
    """The model's output type (`@m.eval`'s second result), for label checks."""
    owner: Any = None
    """The `irnet.Model` this trains (`callbacks.Model` is what callbacks see of it)."""
    resumed: Path | None = None
    """The checkpoint `restore` continued from, whose position `fit` checks."""
    signatures: dict[str, tuple[list[Argument], list]] = field(default_factory=dict)

    def role(self, kind: str) -> list[Argument]:
        return [a for a in self.step_args if a.kind == kind]

    @property
    def dtype(self) -> np.dtype:
        return numpy_dtype(self.role("param")[0].type)

    def fit(self, arrays: list[np.ndarray], kind: str, source: str) -> list[np.ndarray]:
        args = self.role(kind)
        if kind == "target" and not args:
            return []  # a loss over inputs and outputs only: the data's labels go unused
        if len(arrays) != len(args):
            names = ", ".join(a.name for a in args)
            raise IrnError(
                f"{source} gives {len(arrays)} {kind}(s) but {self.model} takes "
                f"{len(args)} ({names})"
            )
        what = "the model's input" if kind == "input" else "the target"
        return [
            datasets.fit_to_input(a, arg.type, arg.name, source, what)
            for a, arg in zip(arrays, args)
        ]

    def as_arrays(self, value: Any, kind: str) -> list[np.ndarray]:
        """A caller's data for the arguments of one kind ("input" or "target"): one array,
        a list or tuple of them in the arguments' order, or a dict by argument name."""
        names = [a.name for a in self.role(kind)]
        if value is None:
            return []
        if isinstance(value, Mapping):
            return [
                np.asarray(v) for v in in_order(value, names, f"{self.model} takes the {kind}s")
            ]
        if isinstance(value, list | tuple):
            return [np.asarray(v) for v in value]
        return [np.asarray(value)]

    def split_data(self, data: list, source: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Arrays given in the step's order, the inputs then the targets, fitted to them."""
        count = len(self.role("input"))
        return (
            self.fit([np.asarray(a) for a in data[:count]], "input", source),
            self.fit([np.asarray(a) for a in data[count:]], "target", source),
        )

    def to_host(self, arrays: dict[str, Array]) -> dict[str, np.ndarray]:
        return {name: self.runner.to_host(value) for name, value in arrays.items()}

    def from_host(self, arrays: dict[str, np.ndarray]) -> dict[str, Array]:
        return {name: self.runner.from_host(value) for name, value in arrays.items()}

    @property
    def distributed(self) -> bool:
        return any(a.name == "share" for a in self.role("hyper"))

    def train_step(self, inputs, targets, lr: float, detect_anomaly: bool) -> float:
        """One step on a global batch (this process's slice of it when distributed); the
        batch's mean loss."""
        hyper = {"lr": np.asarray(lr, self.dtype)}
        options = dict(
            training=True, step=self.step, seed=self.config.seed, check_finite=detect_anomaly
        )
        if self.distributed:
            rows = len(inputs[0])
            mine = self.world.slice(rows)
            inputs, targets = [a[mine] for a in inputs], [a[mine] for a in targets]
            hyper["share"] = np.asarray(len(inputs[0]) / rows, self.dtype)
        if self.distributed and not self.runner.runs_allreduce:
            loss = self.split_step(inputs, targets, hyper, options)
        else:
            step = f"{self.model}.step"
            (loss,) = self.call(step, self.arguments(step, inputs, targets, hyper), **options)
        self.step += 1
        return float(self.runner.to_host(loss))  # the one value a step copies off a device

    def arguments(
        self, function: str, inputs=(), targets=(), hyper=None, grads=None
    ) -> list[Array]:
        """`function`'s arguments, as their roles ask: the data, then the model's parameters,
        state, optimiser state, hyperparameters and gradients by name."""
        data = {"input": iter(inputs), "target": iter(targets)}
        stores = {**self.stores(), "hyper": hyper or {}, "grad": grads or {}}
        return [
            next(data[a.kind]) if a.kind in data else stores[a.kind][a.name]
            for a in self.signature(function)[0]
        ]

    def signature(self, function: str) -> tuple[list[Argument], list[tuple[str, str] | None]]:
        """`function`'s arguments and result roles, read from its IR once."""
        if function not in self.signatures:
            ir = self.runner.function(function)
            self.signatures[function] = (arguments(ir), result_roles(ir))
        return self.signatures[function]

    def stores(self) -> dict[str, dict[str, Array]]:
        return {"param": self.params, "state": self.state, "opt": self.opt}

    def call(self, function: str, args: list[Array], grads=None, **options) -> list[Array]:
        """Run `function`; store its results that have a role (a parameter's, state's or
        optimiser state's next value; a gradient into `grads`) by name, and return the others."""
        results = self.runner.run(function, args, **options)
        return self.keep(function, results, grads)

    def keep(
        self, function: str, results: Sequence[Array], grads=None, store: bool = True
    ) -> list[Array]:
        """`function`'s results without a role; with `store`, the others stored by role."""
        stores = {**self.stores(), "grad": grads if grads is not None else {}}
        plain = []
        for role, value in zip(self.signature(function)[1], results):
            if role is None:
                plain.append(value)
            elif store:
                stores[role[0]][role[1]] = value
        return plain

    def split_step(self, inputs, targets, hyper, options) -> Array:
        """The step for a runner that does not run `dist.allreduce` itself: `@m.grad`, the
        allreduce of the loss, state and gradients between processes, then `@m.update`."""
        grad_fn = f"{self.model}.grad"
        args = self.arguments(grad_fn, inputs, targets)
        results = self.runner.run(grad_fn, args, **options)
        reduced = self.world.allreduce([self.runner.to_host(v) for v in results], hyper["share"])
        grads: dict[str, Array] = {}
        (loss,) = self.keep(grad_fn, [self.runner.from_host(v) for v in reduced], grads)
        update_fn = f"{self.model}.update"
        self.call(update_fn, self.arguments(update_fn, hyper=hyper, grads=grads), **options)
        return loss

    def evaluate(self, dataset: datasets.Dataset, batch: int) -> dict[str, float]:
        """Mean loss and the block's metrics over `dataset`."""
        total, count = 0.0, 0
        tallies = [[0.0, 0] for _ in self.metrics]
        for inputs, targets in dataset.batches(batch, None):
            inputs = self.fit(inputs, "input", dataset.source)
            targets = self.fit(targets, "target", dataset.source)
            loss, output = self.inference(f"{self.model}.eval", inputs, targets)
            n = len(inputs[0])
            total += float(self.runner.to_host(loss)) * n
            count += n
            on_host = self.runner.to_host(output)
            for metric, tally in zip(self.metrics, tallies):
                target = targets[metric.target]
                if metric.custom:
                    function = f"{self.model}.metric.{metric.key}"
                    (value,) = self.runner.run(function, [output, target])
                    part, seen = float(self.runner.to_host(value)) * n, n
                else:
                    part, seen = metric.score(on_host, target)
                tally[0] += part
                tally[1] += seen
        results = {"loss": total / max(count, 1)}
        for metric, (part, seen) in zip(self.metrics, tallies):
            results[metric.key] = metric.value(part, seen)
        return results

    def inference(self, function: str, inputs, targets=()) -> list[Array]:
        """`function`'s plain results in inference mode: the state it would update is left
        as it is."""
        args = self.arguments(function, inputs, targets)
        return self.keep(function, self.runner.run(function, args, seed=self.config.seed),
                         store=False)  # fmt: skip

    def normalized(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """New inputs scaled as the training data was (`csv(..., normalize=true)`)."""
        if self.config.data is None:
            return inputs
        stats = load_data(self).feature_stats
        return inputs if stats is None else [stats.apply(inputs[0]), *inputs[1:]]

    def predict(self, inputs: list[np.ndarray], batch: int) -> np.ndarray:
        outputs = []
        for start in range(0, len(inputs[0]), batch):
            chunk = [a[start : start + batch] for a in inputs]
            (out,) = self.inference(self.model, chunk)
            outputs.append(self.runner.to_host(out))
        return np.concatenate(outputs)

    # --- checkpoints ---

    def checkpoint(self) -> ckpt.Checkpoint:
        meta = {
            "model": self.model,
            "epoch": self.epoch,
            "step": self.step,
            "program": self.program,
            # `fit(epochs=...)` may train past the block's epochs: the run's length is recorded
            "config": {**self.config.as_dict(), "epochs": max(self.config.epochs, self.epoch)},
            "rng": {
                "seed": self.config.seed,
                "derivation": "params (seed, name); shuffle (seed, epoch); dropout (seed, step)",
            },
            "history": self.history,
        }
        host = {kind: self.to_host(store) for kind, store in self.stores().items()}
        return ckpt.Checkpoint(host["param"], host["state"], meta, host["opt"])

    def share_state(self) -> None:
        """Rank 0's parameters, model and optimiser state and position on every process."""
        if self.world.size == 1:
            return
        for store in self.stores().values():
            store.update(self.from_host(self.world.broadcast(self.to_host(store))))
        self.epoch, self.step = self.world.broadcast_ints(self.epoch, self.step)

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at `path` (`--resume`): its parameters, model and
        optimiser state, position and history.

        Resuming bit for bit needs the same step, but the source text is no key for that: a
        comment edit changes nothing, and flags change the optimizer without touching it. So
        the checkpoint must hold exactly the parameters and the optimiser state this step
        updates, by name, shape and dtype; another optimizer has other state and is refused
        (`--init-from` takes the parameters alone). What the tables cannot show refuses
        nothing but is named in notes (`changed_settings`): changed settings, and a changed
        model or loss (the `program` fingerprint)."""
        loaded = ckpt.load(path)  # validates the metadata it has; a resume needs all of it
        ckpt.require_meta(path, loaded.meta, ckpt.RESUME_FIELDS, "--resume")
        tables = {kind: self.table(kind) for kind in ("param", "state", "opt")}
        ckpt.check_fits(loaded, path, model=self.model, params=tables["param"],
                        state=tables["state"], opt=tables["opt"])  # fmt: skip
        self.params.update(self.from_host(loaded.params))
        self.state.update(self.from_host(loaded.state))
        self.opt.update(self.from_host(loaded.opt))
        meta = loaded.meta
        self.checkpoint_config, self.checkpoint_program = meta["config"], meta["program"]
        self.epoch, self.step, self.history = meta["epoch"], meta["step"], meta["history"]
        self.resumed = path

    def table(self, kind: str) -> ckpt.Table:
        """The names, shapes and dtypes a checkpoint must hold: of "param", "state" or
        "opt"."""
        return ckpt.table_of(self.step_args, kind)


def computation(module: ModuleOp, model: str) -> str:
    """A fingerprint of what training computes: `@MODEL.loss` (the model and its loss) as IR
    printed without source locations, so comments, formatting and unrelated functions leave
    it alone."""
    text = io.StringIO()
    Printer(text, print_debuginfo=False).print_op(find_function(module, f"{model}.loss"))
    return ckpt.fingerprint(text.getvalue())


def data_spec(session: Session) -> datasets.DataSpec:
    if session.config.data is None:
        raise IrnError(
            f"the train block of {session.model} has no `data = ...` entry; give one with --data"
        )
    spec = session.config.data
    return datasets.DataSpec(spec.name, spec.args, spec.kwargs, spec.loc)


def load_data(session: Session, part: str = "train") -> datasets.Dataset:
    dataset = datasets.load(data_spec(session), session.path.parent, part)
    if session.output_type is not None:
        metric_rules.check_labels(
            dataset, session.output_type, session.role("target"), session.model
        )
    return dataset


def splits(
    session: Session, fraction: float | None = None
) -> tuple[datasets.Dataset, datasets.Dataset | None, datasets.Dataset | None]:
    """Training, validation (`fraction`, default the block's `val_split`) and test (if the
    source has a test part) sets."""
    full = load_data(session)
    val = None
    fraction = session.config.val_split if fraction is None else fraction
    if fraction > 0:
        contiguous = session.config.data.name == "text"
        full, val = full.split(fraction, session.config.seed, contiguous)
    has_test = "test" in datasets.parts(data_spec(session), session.path.parent)
    return full, val, load_data(session, "test") if has_test else None


def format_metrics(prefix: str, metrics: dict[str, float], rules=()) -> str:
    """`val loss 0.1893  val acc 94.55%  val mae 0.1200`: the loss, then each metric."""
    parts = [f"{prefix} loss {metrics['loss']:.4f}"]
    for rule in rules:
        value = metrics[rule.key]
        shown = f"{100 * value:.2f}%" if rule.percent else f"{value:.4f}"
        parts.append(f"{prefix} {rule.label} {shown}")
    return "  ".join(parts)


class Batches:
    """Batches a caller gives to `fit` or `evaluate`: an iterable of `(inputs, targets)`
    pairs (each an array, a list of arrays or a dict by name), iterated once per epoch."""

    def __init__(self, session: Session, iterable: Iterable, source: str) -> None:
        self.session, self.iterable, self.source = session, iterable, source

    def batches(self, batch_size: int, rng: np.random.Generator | None):
        produced = False
        for item in self.iterable:
            if not (isinstance(item, list | tuple) and len(item) == 2):
                raise IrnError(
                    f"{self.source} must yield (inputs, targets) pairs, not {item!r:.60}"
                )
            produced = True
            yield (self.session.as_arrays(item[0], "input"),
                   self.session.as_arrays(item[1], "target"))  # fmt: skip
        if not produced:
            raise IrnError(
                f"{self.source} yielded no batch: an iterator is used up after one pass; give "
                "a list, or an object whose __iter__ starts over each epoch"
            )

    def num_batches(self, batch_size: int) -> int | None:
        return len(self.iterable) if hasattr(self.iterable, "__len__") else None

    def describe(self) -> str:
        count = self.num_batches(0)
        return f"{count:,} batches" if count is not None else "batches"


def caller_data(session: Session, x: Any, y: Any, source: str) -> datasets.Dataset | Batches:
    """A caller's data: arrays `x` (inputs) and `y` (targets), or batches in `x`."""
    if isinstance(x, datasets.Dataset | Batches):
        return x
    if y is None and session.role("target") and not isinstance(x, np.ndarray | Mapping):
        return Batches(session, x, source)
    inputs, targets = session.as_arrays(x, "input"), session.as_arrays(y, "target")
    return datasets.Dataset(inputs, targets, source)


def training_data(session, x, y, validation_data, validation_split):
    """The training set and the validation set (or None) of a `fit` call: `validation_data`,
    or else `validation_split` (by default the block's `val_split`) held out of the data."""
    fraction = session.config.val_split if validation_split is None else validation_split
    if validation_data is not None:
        fraction = 0
    if x is None and y is None:
        train_set, val_set, _ = splits(session, fraction)
    else:
        train_set, val_set = caller_data(session, x, y, "the data given to fit"), None
        if isinstance(train_set, Batches) and validation_split:
            raise IrnError("validation_split holds out part of arrays; give validation_data "
                           "for batches")  # fmt: skip
        if isinstance(train_set, datasets.Dataset) and fraction:
            train_set, val_set = train_set.split(fraction, session.config.seed)
    if isinstance(validation_data, tuple) and len(validation_data) == 2:
        val_set = caller_data(session, *validation_data, "validation_data")
    elif validation_data is not None:
        val_set = caller_data(session, validation_data, None, "validation_data")
    return train_set, val_set


def fit(
    session: Session,
    x: Any = None,
    y: Any = None,
    *,
    epochs: int | None,
    batch: int | None,
    validation_data: Any,
    validation_split: float | None,
    shuffle: bool | None,
    callbacks: Sequence[Callback],
    verbose: bool,
    detect_anomaly: bool = False,
) -> History:
    """`Model.fit`: `epochs` more epochs (default: the train block's) from where the model
    is, the learning-rate schedule spanning them."""
    model, config = session.owner, session.config
    root = session.world.is_root
    session.share_state()  # rank 0's parameters, optimiser state and position everywhere
    batch = config.batch if batch is None else batch
    shuffle = config.shuffle if shuffle is None else shuffle
    epochs = config.epochs if epochs is None else epochs
    train_set, val_set = training_data(session, x, y, validation_data, validation_split)
    steps = train_set.num_batches(batch)
    if steps is None and config.schedule.name != "constant":
        raise IrnError(
            f"schedule {config.schedule} needs the number of batches per epoch: give batches "
            "that have a len() (a list), or schedule='constant()'"
        )
    if session.resumed is not None and not changed_settings(session):
        check_position(session, session.resumed, steps)
    start, last = session.epoch, session.epoch + epochs
    say = print if verbose and root else lambda *args: None
    logged = ["train_loss"]
    if val_set is not None:
        logged += ["val_loss", *(f"val_{metric.key}" for metric in session.metrics)]
    callbacks = list(callbacks) if root else []
    model.stop_training = False
    for callback in callbacks:
        callback.on_train_begin(model, logged)
    processes = f" on {session.world.size} processes" if session.world.size > 1 else ""
    size = f"{len(train_set):,} examples" if isinstance(train_set, datasets.Dataset) else (
        train_set.describe())  # fmt: skip
    say(
        f"training {session.model}: {size}, batch {batch}, {last} epoch{'s' * (last != 1)}, "
        f"{config.optimizer}, schedule {config.schedule}{processes}"
    )
    history, horizon = History(), (steps or 0) * last
    for epoch in range(start, last):
        # rank 0 alone keeps the history and runs callbacks, so it alone decides
        (stop,) = session.world.broadcast_ints(int(model.stop_training))
        if stop:
            for callback in callbacks:
                if callback.stop_message:
                    say(callback.stop_message)
            break
        for callback in callbacks:
            callback.on_epoch_begin(model, epoch + 1)
        loss, seconds, lr = train_epoch(session, train_set, epoch, last, batch, shuffle,
                                        horizon, callbacks, detect_anomaly, verbose)  # fmt: skip
        session.epoch = epoch + 1
        if not root:
            continue
        record = {"epoch": session.epoch, "step": session.step, "train_loss": loss, "lr": lr,
                  "seconds": seconds}  # fmt: skip
        summary = [f"epoch {session.epoch}/{last}", f"train loss {loss:.4f}"]
        if val_set is not None:
            metrics = session.evaluate(val_set, batch)
            record.update({f"val_{k}": v for k, v in metrics.items()})
            summary.append(format_metrics("val", metrics, session.metrics))
        say("  ".join([*summary, f"{seconds:.1f}s"]))
        session.history.append(record)
        history.records.append(record)
        for callback in callbacks:
            callback.on_epoch_end(model, record)
    for callback in callbacks:
        callback.on_train_end(model, history)
    return history


def train_epoch(session, train_set, epoch, last, batch, shuffle, total_steps, callbacks,
                detect_anomaly, verbose):  # fmt: skip
    """One pass over the training set, shuffled with `(seed, epoch)` if `shuffle`: the mean
    loss, the seconds, the last lr. Rank 0 shows its progress on stderr when `verbose`."""
    config = session.config
    base_lr = config.hyperparameters["lr"]
    rng = np.random.default_rng([config.seed, epoch]) if shuffle else None
    quiet = None if verbose and session.world.is_root else open(os.devnull, "w")  # noqa: SIM115
    steps = train_set.num_batches(batch) or 0
    bar = Progress(f"epoch {epoch + 1}/{last}", steps, quiet or sys.stderr)
    running, seen, lr = 0.0, 0, base_lr
    for inputs, targets in train_set.batches(batch, rng):
        if len(inputs[0]) < session.world.size:
            continue  # a last batch smaller than the number of processes cannot be split
        inputs = session.fit(inputs, "input", train_set.source)
        targets = session.fit(targets, "target", train_set.source)
        lr = learning_rate(
            config.schedule.name, config.schedule_options, base_lr, session.step, total_steps
        )
        loss = session.train_step(inputs, targets, lr, detect_anomaly)
        threads.follow_load()
        n = len(inputs[0])
        running += loss * n
        seen += n
        bar.update(n, running / seen)
        for callback in callbacks:
            callback.on_batch_end(session.owner, session.step, loss)
    seconds = bar.close()
    if quiet is not None:
        quiet.close()
    return running / max(seen, 1), seconds, lr


def evaluate(
    session: Session, x: Any, y: Any, batch: int | None, part: str = "test"
) -> dict[str, float]:
    """`Model.evaluate`: over the caller's data, or the train block's `part`."""
    if x is None and y is None:
        dataset = block_part(session, part)
    else:
        dataset = caller_data(session, x, y, "the data given to evaluate")
    return session.evaluate(dataset, batch or session.config.batch)


def block_part(session: Session, part: str) -> datasets.Dataset:
    """The `test`, `validation` or `train` part of the train block's data."""
    if part == "test":
        if "test" not in datasets.parts(data_spec(session), session.path.parent):
            raise IrnError(f"the data of {session.model} has no test part; give part= or data")
        return load_data(session, "test")
    train_part, validation, _ = splits(session)
    if part == "train":
        return train_part
    if part == "validation" and validation is not None:
        return validation
    if part == "validation":
        raise IrnError("no validation split: give --val-split or train with val_split")
    raise IrnError(f"part must be test, validation or train, not {part!r}")


# --- `irnet train` ---


@dataclass
class TrainOptions:
    checkpoint_dir: Path | None = None
    resume: str | None = None
    log: Path | None = None
    plot: Path | None = None
    detect_anomaly: bool = False
    stop_after: int | None = None
    """Train at most this many epochs in this run (a job's time limit); `--resume` goes on."""
    init_from: Path | None = None
    """Start from this checkpoint's parameters, with fresh optimiser state, at epoch 0."""
    strict: bool = True
    """`init_from` must fit the model exactly; else what fits is loaded and reported."""


class Guarded:
    """A text stream whose reader may go away (`irnet train ... | head -1`): a write to a
    closed pipe is dropped and marks it `broken`, instead of raising in the middle of an epoch
    and losing it. Each write is flushed, so that the failure shows now and not at exit."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.broken = stream, False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                self.broken = True
        return len(text)

    def flush(self) -> None:
        pass  # each write has been flushed

    def isatty(self) -> bool:
        return self.stream.isatty()


class ReaderGone(Callback):
    """Stops training after an epoch whose output nobody read (`Guarded` streams)."""

    def __init__(self, *streams: Guarded) -> None:
        self.streams = streams

    @property
    def gone(self) -> bool:
        return any(stream.broken for stream in self.streams)

    def on_epoch_end(self, model, record: dict) -> None:
        if self.gone:
            model.stop_training = True


class StopAfter(Callback):
    """Stops training after `epochs` epochs of this run (`--stop-after`)."""

    def __init__(self, epochs: int) -> None:
        self.epochs, self.done = epochs, 0

    def on_epoch_end(self, model, record: dict) -> None:
        self.done += 1
        if self.done >= self.epochs:
            model.stop_training = True


class OutputClosed(IrnError):
    """The reader of the run's output went away: training stopped after an epoch, with its
    checkpoint written, and the exit status says so."""


def train(session: Session, options: TrainOptions) -> dict[str, float]:
    """`irnet train`: the train block's data and epochs through `Model.fit`, with the
    callbacks the flags ask for; then the test set's metrics, which it returns."""
    model, config, root = session.owner, session.config, session.world.is_root
    out, err = Guarded(sys.stdout), Guarded(sys.stderr)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # type: ignore[type-var]
        return train_guarded(model, session, config, root, options, out, err)


def train_guarded(model, session, config, root, options, out, err) -> dict[str, float]:
    say = print if root else lambda *args: None
    name = config.monitor or ("val_loss" if config.val_split > 0 else "train_loss")
    callbacks: list[Callback] = [EarlyStopping(name, config.patience)]
    if config.keep_best and options.checkpoint_dir is None:
        raise IrnError(
            f"keep_best writes {session.model}-best.npz into the checkpoint directory, "
            "and --checkpoint-dir '' asks for none"
        )
    if options.plot and root:
        require_matplotlib()
    if options.checkpoint_dir is not None:
        callbacks.append(ModelCheckpoint(options.checkpoint_dir, config.keep_best, name))
        removed = ckpt.remove_stale_temporaries(options.checkpoint_dir) if root else []
        if removed:
            say(f"removed {len(removed)} temporary file{'s' * (len(removed) != 1)} that "
                f"interrupted checkpoint writes left in {options.checkpoint_dir}")  # fmt: skip
    if options.log is not None:
        callbacks.append(JsonLog(options.log))
    if options.stop_after is not None:
        callbacks.append(StopAfter(options.stop_after))
    reader = ReaderGone(out, err)
    callbacks.append(reader)
    if options.resume and root:
        resume_from = resolve_resume(session, options)
        model.load(resume_from, resume=True)
        if session.epoch > config.epochs:
            raise IrnError(
                f"--resume: {resume_from} is after epoch {session.epoch}, past the "
                f"{config.epochs} epochs this run trains; give --epochs {session.epoch} or more"
            )
        say(f"resumed from {resume_from} after epoch {session.epoch} (step {session.step})")
        for note in changed_settings(session):
            say(f"note: {note}")
    elif options.init_from and root:
        fit_report = model.load(options.init_from, strict=options.strict)
        say(f"initialised from {options.init_from}: " + "\n  ".join(fit_report.report()))
    (start,) = session.world.broadcast_ints(session.epoch)
    model.fit(epochs=config.epochs - start, callbacks=callbacks,
              detect_anomaly=options.detect_anomaly, verbose=True)  # fmt: skip
    if reader.gone:
        kept = (
            f"its checkpoint is in {options.checkpoint_dir}; continue with --resume"
            if options.checkpoint_dir is not None
            else "no checkpoint written (--checkpoint-dir '')"
        )
        raise OutputClosed(
            f"the output's reader went away: stopped after epoch {session.epoch} of "
            f"{config.epochs}; {kept}"
        )
    stopped_early = callbacks[0].stop_message is not None
    if session.epoch < config.epochs and not stopped_early:
        say(f"stopped after epoch {session.epoch} of {config.epochs}; continue with --resume")
        return {}
    has_test = root and "test" in datasets.parts(data_spec(session), session.path.parent)
    final = model.evaluate(part="test") if has_test else {}
    if final:
        say(format_metrics("test", final, session.metrics))
    if options.plot and root:
        plot(session.history, options.plot)
    return final


def changed_settings(session: Session) -> list[str]:
    """The settings that differ from those the checkpoint was trained with, and whether the
    model or its loss does."""
    recorded = session.checkpoint_config or {}
    current = session.config.as_dict()
    notes = [
        f"{key} was {recorded[key]} and is now {current[key]}"
        for key in current
        if key in recorded and recorded[key] != current[key]
    ]
    if session.checkpoint_program not in (None, session.program):
        notes.append("the model or its loss computes differently from when it was written")
    return notes


def check_position(session: Session, path: Path, steps_per_epoch: int | None) -> None:
    """Refuse a resumed step that its epochs cannot have taken under the same settings:
    `steps_per_epoch` each, or one fewer where a distributed run skipped a last batch smaller
    than its process count."""
    epoch, step = session.epoch, session.step
    if steps_per_epoch is None:
        return
    if not epoch * (steps_per_epoch - 1) <= step <= epoch * steps_per_epoch:
        raise IrnError(
            f"{path} is not a usable irnet checkpoint: its metadata field 'step' is {step}, "
            f"which {epoch} epochs of {steps_per_epoch} steps cannot have reached."
        )


def resolve_resume(session: Session, options: TrainOptions) -> Path:
    if options.resume != "latest":
        return Path(options.resume)
    directory = options.checkpoint_dir or Path("checkpoints")
    found = ckpt.latest(directory, session.model)
    if found is None:
        raise IrnError(f"--resume: no checkpoint of {session.model} in {directory}")
    return found


def require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise IrnError(
            "--plot needs matplotlib: pip install matplotlib (or pip install 'irnet[plot]')"
        ) from None
    return plt


def plot(history: list[dict], path: Path) -> None:
    plt = require_matplotlib()
    epochs = [r["epoch"] for r in history]
    keys = [k for k in ("train_loss", "val_loss", "val_accuracy") if all(k in r for r in history)]
    fig, axes = plt.subplots(1, 2 if "val_accuracy" in keys else 1, figsize=(10, 4), squeeze=False)
    for key in (k for k in keys if k.endswith("loss")):
        axes[0][0].plot(epochs, [r[key] for r in history], marker="o", label=key.replace("_", " "))
    axes[0][0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0][0].legend()
    if "val_accuracy" in keys:
        axes[0][1].plot(epochs, [100 * r["val_accuracy"] for r in history], marker="o")
        axes[0][1].set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
