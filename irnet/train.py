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

import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.printer import Printer

from irnet.dialects import nn
from irnet.dialects.dtypes import numpy_dtype

from . import checkpoint as ckpt
from . import data as datasets
from . import driver, threads
from . import metrics as metric_rules
from .diagnostics import IrnError
from .distributed import World
from .params import Argument, arguments, find_function, initial_parameters
from .progress import Progress
from .schedules import learning_rate
from .targets import Array, Runner, make_runner
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
    state: dict[str, Array] = field(default_factory=dict)
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    checkpoint_config: dict | None = None
    checkpoint_program: str | None = None
    metrics: list[metric_rules.Metric] = field(default_factory=list)
    """The block's metrics, resolved against the model's output and target types."""
    output_type: TensorType | None = None
    """The model's output type (`@m.eval`'s second result), for label checks."""

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

    def reset(self) -> None:
        """Fresh parameters from the initialisers, zero optimiser state."""
        params = initial_parameters(self.runner.function(f"{self.model}.step"), self.config.seed)
        state = {
            a.name: np.zeros(a.type.get_shape(), numpy_dtype(a.type)) for a in self.role("state")
        }
        self.params, self.state = self.from_host(params), self.from_host(state)
        self.epoch = self.step = 0
        self.history = []

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
        extra = [np.asarray(lr, self.dtype)]
        options = dict(
            training=True, step=self.step, seed=self.config.seed, check_finite=detect_anomaly
        )
        params = [self.params[a.name] for a in self.role("param")]
        state = [self.state[a.name] for a in self.role("state")]
        if self.distributed:
            rows = len(inputs[0])
            mine = self.world.slice(rows)
            inputs, targets = [a[mine] for a in inputs], [a[mine] for a in targets]
            extra.append(np.asarray(len(inputs[0]) / rows, self.dtype))
        if self.distributed and not self.runner.runs_allreduce:
            loss, *rest = self.split_step(inputs, targets, params, state, extra, options)
        else:
            args = [*inputs, *targets, *params, *state, *extra]
            loss, *rest = self.runner.run(f"{self.model}.step", args, **options)
        names = [a.name for a in self.role("param")] + [a.name for a in self.role("state")]
        for name, value in zip(names, rest):
            (self.params if name in self.params else self.state)[name] = value
        self.step += 1
        return float(self.runner.to_host(loss))  # the one value a step copies off a device

    def split_step(self, inputs, targets, params, state, extra, options) -> list[Array]:
        """The step for a runner that does not run `dist.allreduce` itself: `@m.grad`, the
        allreduce of the loss and gradients between processes, then `@m.update`."""
        lr, share = extra
        loss, *grads = self.runner.run(
            f"{self.model}.grad", [*inputs, *targets, *params], **options
        )
        reduced = [self.runner.to_host(value) for value in (loss, *grads)]
        loss, *grads = self.world.allreduce(reduced, float(share))
        updated = self.runner.run(f"{self.model}.update", [*params, *grads, *state, lr], **options)
        return [loss, *updated]

    def evaluate(self, dataset: datasets.Dataset, batch: int) -> dict[str, float]:
        """Mean loss and the block's metrics over `dataset`."""
        total, count = 0.0, 0
        tallies = [[0.0, 0] for _ in self.metrics]
        params = [self.params[a.name] for a in self.role("param")]
        for inputs, targets in dataset.batches(batch, None):
            inputs = self.fit(inputs, "input", dataset.source)
            targets = self.fit(targets, "target", dataset.source)
            loss, output = self.runner.run(
                f"{self.model}.eval", [*inputs, *targets, *params], seed=self.config.seed
            )
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

    def normalized(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """New inputs scaled as the training data was (`csv(..., normalize=true)`)."""
        if self.config.data is None:
            return inputs
        stats = load_data(self).feature_stats
        return inputs if stats is None else [stats.apply(inputs[0]), *inputs[1:]]

    def predict(self, inputs: list[np.ndarray], batch: int) -> np.ndarray:
        params = [self.params[a.name] for a in self.role("param")]
        outputs = []
        for start in range(0, len(inputs[0]), batch):
            chunk = [a[start : start + batch] for a in inputs]
            (out,) = self.runner.run(self.model, [*chunk, *params], seed=self.config.seed)
            outputs.append(self.runner.to_host(out))
        return np.concatenate(outputs)

    # --- checkpoints ---

    def checkpoint(self) -> ckpt.Checkpoint:
        meta = {
            "model": self.model,
            "epoch": self.epoch,
            "step": self.step,
            "program": self.program,
            "config": self.config.as_dict(),
            "rng": {
                "seed": self.config.seed,
                "derivation": "params (seed, name); shuffle (seed, epoch); dropout (seed, step)",
            },
            "history": self.history,
        }
        return ckpt.Checkpoint(self.to_host(self.params), self.to_host(self.state), meta)

    def share_state(self) -> None:
        """Rank 0's parameters, optimiser state and position on every process."""
        if self.world.size == 1:
            return
        self.params = self.from_host(self.world.broadcast(self.to_host(self.params)))
        self.state = self.from_host(self.world.broadcast(self.to_host(self.state)))
        self.epoch, self.step = self.world.broadcast_ints(self.epoch, self.step)

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at `path` (`--resume`): its parameters, optimiser state,
        position and history.

        Resuming bit for bit needs the same step, but the source text is no key for that: a
        comment edit changes nothing, and flags change the optimizer without touching it. So
        the checkpoint must hold exactly the parameters and the optimiser state this step
        updates, by name, shape and dtype; another optimizer has other state and is refused
        (`--init-from` takes the parameters alone). What the tables cannot show refuses
        nothing but is named in notes (`changed_settings`): changed settings, and a changed
        model or loss (the `program` fingerprint)."""
        loaded = ckpt.load(path)  # validates the metadata it has; a resume needs all of it
        ckpt.require_meta(path, loaded.meta, ckpt.RESUME_FIELDS, "--resume")
        ckpt.check_fits(
            loaded, path, model=self.model, params=self.table("param"), state=self.table("state")
        )
        self.params = self.from_host(loaded.params)
        self.state = self.from_host(loaded.state)
        meta = loaded.meta
        self.checkpoint_config, self.checkpoint_program = meta["config"], meta["program"]
        self.epoch, self.step, self.history = meta["epoch"], meta["step"], meta["history"]

    def load_weights(self, path: Path, strict: bool = True) -> ckpt.Fit:
        """The parameters of the checkpoint at `path` in place of the current ones (`eval`,
        `predict`, `sample`, `train --init-from`); optimiser state and position stay. Strict:
        every parameter must fit, or the checkpoint is refused naming each difference. Not
        strict: those that fit by name, shape and dtype are loaded and the others keep their
        values; the `Fit` says which."""
        loaded = ckpt.load(path)
        if strict:
            fit = ckpt.check_fits(loaded, path, model=self.model, params=self.table("param"))
        else:
            fit = ckpt.compare(loaded.params, self.table("param"))
            if not fit.loaded:
                raise IrnError(f"no parameter of checkpoint {path} fits model '{self.model}'")
        self.params.update(self.from_host({name: loaded.params[name] for name in fit.loaded}))
        return fit

    def table(self, kind: str) -> ckpt.Table:
        """The names, shapes and dtypes a checkpoint must hold: of "param" or "state"."""
        return ckpt.table_of(self.step_args, kind)


def open_session(
    path: str,
    overrides: dict | None = None,
    model: str | None = None,
    world: World | None = None,
    target: str = "reference",
    float64: bool = False,
) -> Session:
    """The train block of `model` (the first by default) compiled for `target`; `float64`
    builds the program in float64 (`--f64`)."""
    world = world or World()
    compiled = driver.load(path, overrides, distributed=world.comm is not None, float64=float64)
    if not compiled.trains:
        raise IrnError(f"{path} has no train block")
    name = model or next(iter(compiled.trains))
    if name not in compiled.trains:
        raise IrnError(
            f"{path} has no train block for '{name}' (it trains {', '.join(compiled.trains)})"
        )
    module = compiled.module
    driver.run_passes(module, ",".join(driver.PIPELINE))
    symbol = find_function(module, name).sym_name.data
    step_fn: func.FuncOp = find_function(module, f"{symbol}.step")
    step_args = arguments(step_fn)
    output = find_function(module, f"{symbol}.eval").body.block.last_op.operands[1]
    config = compiled.trains[name]
    probability = isinstance(output.owner, nn.SigmoidOp)  # read before a target lowers the IR
    targets = [a for a in step_args if a.kind == "target"]
    metrics = metric_rules.resolve(config.metrics, output.type, targets, probability, config.loss)
    program = computation(module, symbol)  # before a target lowers the IR
    session = Session(
        Path(path),
        symbol,
        compiled.trains[name],
        make_runner(module, target, source_name=path, world=world),
        step_args,
        program,
        world,
    )
    session.metrics, session.output_type = metrics, output.type
    session.reset()
    return session


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
    session: Session,
) -> tuple[datasets.Dataset, datasets.Dataset | None, datasets.Dataset | None]:
    """Training, validation (from `val_split`) and test (if the source has a test part) sets."""
    full = load_data(session)
    val = None
    if session.config.val_split > 0:
        contiguous = session.config.data.name == "text"
        full, val = full.split(session.config.val_split, session.config.seed, contiguous)
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


@dataclass
class Monitor:
    """The logged metric that early stopping and `keep_best` watch, and its best value.

    Which way is better follows from the name: accuracies (`val_accuracy`,
    `val_top5_accuracy`) improve upwards, everything else (losses, `val_mae`, `val_rmse`)
    downwards. Only a strict improvement counts, and NaN never improves."""

    name: str
    patience: int
    """Epochs without improvement before stopping; 0 never stops."""
    best: float = math.nan
    best_epoch: int = 0
    since_best: int = 0

    def update(self, record: dict) -> bool:
        """Take one epoch's log record; whether it improves on the best so far."""
        value = record[self.name]
        higher = self.name.endswith("accuracy")
        improved = not math.isnan(value) and (
            math.isnan(self.best) or (value > self.best if higher else value < self.best)
        )
        if improved:
            self.best, self.best_epoch, self.since_best = value, record["epoch"], 0
        else:
            self.since_best += 1
        return improved

    @property
    def exhausted(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def stop_line(self, epoch: int) -> str:
        return (
            f"stopping early after epoch {epoch}: {self.name} has not improved for "
            f"{self.since_best} epoch{'s' * (self.since_best != 1)} "
            f"(best {self.best:.4f} after epoch {self.best_epoch})"
        )


def monitor(session: Session, options: TrainOptions) -> Monitor:
    """The run's `Monitor`, checked before training: its metric must be one the epoch log will
    have, and `keep_best` needs a checkpoint directory."""
    config = session.config
    validated = config.val_split > 0
    logged = ["train_loss"]
    if validated:
        logged += ["val_loss", *(f"val_{metric.key}" for metric in session.metrics)]
    name = config.monitor or ("val_loss" if validated else "train_loss")
    if name not in logged:
        why = "" if validated else " (validation metrics need val_split or --val-split)"
        raise IrnError(
            f"monitor {name}: the epoch log has no {name}{why}; it has {', '.join(logged)}"
        )
    if config.keep_best and options.checkpoint_dir is None:
        raise IrnError(
            f"keep_best writes {session.model}-best.npz into the checkpoint directory, "
            "and --checkpoint-dir '' asks for none"
        )
    return Monitor(name, config.patience)


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


class OutputClosed(IrnError):
    """The reader of the run's output went away: training stopped after an epoch, with its
    checkpoint written, and the exit status says so."""


def train(session: Session, options: TrainOptions) -> dict[str, float]:
    config, root = session.config, session.world.is_root
    out, err = Guarded(sys.stdout), Guarded(sys.stderr)
    say = (lambda *args: print(*args, file=out)) if root else lambda *args: None
    watch = monitor(session, options)
    if options.plot and root:
        require_matplotlib()
    if options.checkpoint_dir is not None and root:
        removed = ckpt.remove_stale_temporaries(options.checkpoint_dir)
        if removed:
            say(f"removed {len(removed)} temporary file{'s' * (len(removed) != 1)} that "
                f"interrupted checkpoint writes left in {options.checkpoint_dir}")  # fmt: skip
    if options.resume and root:
        resume_from = resolve_resume(session, options)
        session.restore(resume_from)
        if session.epoch > config.epochs:
            raise IrnError(
                f"--resume: {resume_from} is after epoch {session.epoch}, past the "
                f"{config.epochs} epochs this run trains; give --epochs {session.epoch} or more"
            )
        say(f"resumed from {resume_from} after epoch {session.epoch} (step {session.step})")
        for note in changed_settings(session):
            say(f"note: {note}")
    elif options.init_from and root:
        fit = session.load_weights(options.init_from, options.strict)
        say(f"initialised from {options.init_from}: " + "\n  ".join(fit.report()))
    for record in session.history:  # a resumed run's best and patience go on from its history
        if watch.name in record:
            watch.update(record)
    session.share_state()
    train_set, val_set, test_set = splits(session)
    steps_per_epoch = train_set.num_batches(config.batch)
    if options.resume and root and not changed_settings(session):
        check_position(session, resume_from, steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    base_lr = config.hyperparameters["lr"]
    processes = f" on {session.world.size} processes" if session.world.size > 1 else ""
    say(
        f"training {session.model}: {len(train_set):,} examples, batch {config.batch}, "
        f"{config.epochs} epoch{'s' * (config.epochs != 1)}, {config.optimizer}, "
        f"schedule {config.schedule}{processes}"
    )
    last = (
        config.epochs
        if options.stop_after is None
        else min(config.epochs, session.epoch + options.stop_after)
    )
    stopped_early = False
    for epoch in range(session.epoch, last):
        # rank 0 alone keeps the history and prints, so it alone decides, for every process
        stopped_early, reader_gone = session.world.broadcast_ints(
            int(watch.exhausted), int(out.broken or err.broken)
        )
        if reader_gone:
            break  # the epoch before has written its checkpoint
        if stopped_early:
            say(watch.stop_line(epoch))
            break
        loss, seconds, lr = train_epoch(session, train_set, epoch, steps_per_epoch, total_steps,
                                        base_lr, options, err)  # fmt: skip
        session.epoch = epoch + 1
        if not root:
            continue
        record = {"epoch": session.epoch, "step": session.step, "train_loss": loss, "lr": lr,
                  "seconds": seconds}  # fmt: skip
        summary = [f"epoch {session.epoch}/{config.epochs}", f"train loss {loss:.4f}"]
        if val_set is not None:
            metrics = session.evaluate(val_set, config.batch)
            record.update({f"val_{k}": v for k, v in metrics.items()})
            summary.append(format_metrics("val", metrics, session.metrics))
        say("  ".join([*summary, f"{seconds:.1f}s"]))
        session.history.append(record)
        write_log(options.log, record)
        improved = watch.update(record)
        save_checkpoint(session, options, best=improved and config.keep_best)
    if out.broken or err.broken:
        kept = (
            f"its checkpoint is in {options.checkpoint_dir}; continue with --resume"
            if options.checkpoint_dir is not None
            else "no checkpoint written (--checkpoint-dir '')"
        )
        raise OutputClosed(
            f"the output's reader went away: stopped after epoch {session.epoch} of "
            f"{config.epochs}; {kept}"
        )
    if session.epoch < config.epochs and not stopped_early:
        say(f"stopped after epoch {session.epoch} of {config.epochs}; continue with --resume")
        return {}
    final = session.evaluate(test_set, config.batch) if test_set is not None and root else {}
    if final:
        say(format_metrics("test", final, session.metrics))
    if options.plot and root:
        plot(session.history, options.plot)
    return final


def train_epoch(session, train_set, epoch, steps, total_steps, base_lr, options, stream=None):
    """One pass over the training set, shuffled unless `shuffle = false`: the mean loss, the
    seconds, the last lr. Rank 0 shows its progress on `stream` (stderr by default)."""
    config = session.config
    rng = np.random.default_rng([config.seed, epoch]) if config.shuffle else None
    quiet = open(os.devnull, "w") if not session.world.is_root else None  # noqa: SIM115
    bar = Progress(f"epoch {epoch + 1}/{config.epochs}", steps, quiet or stream)
    running, seen, lr = 0.0, 0, base_lr
    for inputs, targets in train_set.batches(config.batch, rng):
        if len(inputs[0]) < session.world.size:
            continue  # a last batch smaller than the number of processes cannot be split
        inputs = session.fit(inputs, "input", train_set.source)
        targets = session.fit(targets, "target", train_set.source)
        lr = learning_rate(
            config.schedule.name, config.schedule_options, base_lr, session.step, total_steps
        )
        loss = session.train_step(inputs, targets, lr, options.detect_anomaly)
        threads.follow_load()
        n = len(inputs[0])
        running += loss * n
        seen += n
        bar.update(n, running / seen)
    seconds = bar.close()
    if quiet is not None:
        quiet.close()
    return running / max(seen, 1), seconds, lr


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


def check_position(session: Session, path: Path, steps_per_epoch: int) -> None:
    """Refuse a resumed step that its epochs cannot have taken under the same settings:
    `steps_per_epoch` each, or one fewer where a distributed run skipped a last batch smaller
    than its process count."""
    epoch, step = session.epoch, session.step
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


def save_checkpoint(session: Session, options: TrainOptions, best: bool = False) -> None:
    """`MODEL-epochK.npz` and `MODEL-last.npz`, and `MODEL-best.npz` when `best`."""
    if options.checkpoint_dir is None:
        return
    state = session.checkpoint()
    names = ["epoch" + str(session.epoch), "last", *(["best"] if best else [])]
    for name in names:
        ckpt.save(options.checkpoint_dir / f"{session.model}-{name}.npz", state)


def write_log(path: Path | None, record: dict) -> None:
    if path is None:
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


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
