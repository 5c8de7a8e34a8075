"""A `train` block's settings: its entries read as plain values (numbers, strings, lists, and
calls such as `adam(lr=0.001)`), completed with defaults, overridden by command-line flags, and
checked against the known optimisers, schedules and metrics (the data source is checked when it
is loaded, at the `data` entry's location)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import ast
from . import metrics as metric_rules
from .builtins import suggest
from .diagnostics import IrnError
from .optimizers import OPTIMIZERS
from .parser import parse_expression
from .schedules import SCHEDULES, options

ENTRIES = (
    "data", "loss", "optimizer", "schedule", "batch", "epochs", "metrics", "seed", "val_split",
    "shuffle", "monitor", "patience", "keep_best",
)  # fmt: skip
METRICS = ("loss", *metric_rules.METRICS)
SETTINGS = (
    "epochs", "batch", "lr", "optimizer", "schedule", "seed", "data", "val_split",
    "shuffle", "monitor", "patience", "keep_best",
)  # fmt: skip
"""The entries a caller may override: `irnet train`'s flags, `irnet.load`'s keywords."""


@dataclass(frozen=True)
class Spec:
    """`name(args..., key=value...)` as written in a train block or a flag."""

    name: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    loc: ast.Loc | None = field(default=None, compare=False)

    def __str__(self) -> str:
        """The `.irn` spelling: `adam(lr=0.001)`, `csv("a.csv", normalize=true)`."""
        parts = [literal(a) for a in self.args] + [
            f"{k}={literal(v)}" for k, v in self.kwargs.items()
        ]
        return f"{self.name}({', '.join(parts)})"


def literal(value: Any) -> str:
    """A value as a `.irn` author writes it: `"a"`, `true`, `-1`, `[1, 2]`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, Spec):
        return str(value)
    return str(value)


PLAIN_SETTINGS = (
    "batch", "epochs", "seed", "val_split", "shuffle", "monitor", "patience", "keep_best",
)  # fmt: skip
"""The settings whose values are already JSON."""


@dataclass
class TrainConfig:
    model: str
    loss: ast.Expr | None = None
    data: Spec | None = None
    optimizer: Spec = field(default_factory=lambda: Spec("sgd"))
    schedule: Spec = field(default_factory=lambda: Spec("constant"))
    batch: int = 32
    epochs: int = 1
    metrics: list[Spec] = field(default_factory=list)
    seed: int = 0
    val_split: float = 0.0
    shuffle: bool = True
    """Shuffle the training examples every epoch (with `seed`)."""
    monitor: str | None = None
    """The metric `patience` and `keep_best` watch, as the epoch log names it (`val_loss`,
    `val_accuracy`, `train_loss`); None: `val_loss` with a validation split, else `train_loss`."""
    patience: int = 0
    """Stop after this many epochs without improvement of `monitor` (0: never stop early)."""
    keep_best: bool = False
    """Also write `<model>-best.npz` whenever `monitor` improves."""

    @property
    def hyperparameters(self) -> dict[str, float]:
        return OPTIMIZERS[self.optimizer.name].hyperparameters(self.optimizer.kwargs)

    @property
    def schedule_options(self) -> dict[str, float]:
        return options(self.schedule.name, self.schedule.kwargs)

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-friendly values (checkpoints record them)."""
        return {
            "data": str(self.data) if self.data else None,
            "metrics": [spelled(m) for m in self.metrics],
            "optimizer": str(self.optimizer),
            "schedule": str(self.schedule),
            **{k: getattr(self, k) for k in PLAIN_SETTINGS},
        }


def value(expr: ast.Expr) -> Any:
    """A train entry's value: literals, lists, names (`accuracy`) and calls (`adam(lr=1e-3)`)."""
    match expr:
        case ast.Number(value=v) | ast.String(value=v) | ast.Bool(value=v):
            return v
        case ast.Neg(operand=ast.Number(value=v)):
            return -v
        case ast.ListExpr(items=items):
            return [value(i) for i in items]
        case ast.Name(id=name):
            return Spec(name, loc=expr.loc)
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
            kwargs = {k.name: value(k.value) for k in keywords}
            return Spec(name, tuple(value(a) for a in args), kwargs, expr.loc)
    raise IrnError(
        "a train entry is a number, a string, a list, or a call such as adam(lr=0.001)", expr.loc
    )


def from_block(train: ast.Train) -> TrainConfig:
    config = TrainConfig(train.model)
    seen: set[str] = set()
    for entry in train.entries:
        if entry.name not in ENTRIES:
            raise IrnError(
                f"unknown train entry '{entry.name}'{suggest(entry.name, ENTRIES)} "
                f"(entries: {', '.join(ENTRIES)})",
                entry.loc,
            )
        if entry.name in seen:
            raise IrnError(f"train entry '{entry.name}' is given twice", entry.loc)
        seen.add(entry.name)
        if entry.name == "loss":
            config.loss = entry.value
        else:
            set_entry(config, entry.name, value(entry.value), entry.loc)
    if config.loss is None:
        raise IrnError(f"train block for '{train.model}' has no `loss = ...` entry", train.loc)
    return config


def set_entry(config: TrainConfig, name: str, raw: Any, loc: ast.Loc | None) -> None:
    """Check one setting and store it; `loc` places the error (None for a flag)."""
    checkers = {
        "data": lambda v: as_spec(v, "data", loc),
        "optimizer": lambda v: check_optimizer(as_spec(v, "optimizer", loc)),
        "schedule": lambda v: check_schedule(as_spec(v, "schedule", loc)),
        "batch": lambda v: positive_int(v, "batch", loc),
        "epochs": lambda v: positive_int(v, "epochs", loc),
        "seed": lambda v: nonnegative_int(v, "seed", loc),
        "val_split": lambda v: fraction(v, loc),
        "metrics": lambda v: metric_names(v, loc),
        "shuffle": lambda v: flag(v, "shuffle", loc),
        "monitor": lambda v: monitor_name(v, loc),
        "patience": lambda v: nonnegative_int(v, "patience", loc),
        "keep_best": lambda v: flag(v, "keep_best", loc),
    }
    setattr(config, name, checkers[name](raw))


def as_spec(raw: Any, what: str, loc: ast.Loc | None) -> Spec:
    if isinstance(raw, Spec):
        return raw
    raise IrnError(f"{what} must be a name or a call such as {what}(...), got {raw!r}", loc)


def check_optimizer(spec: Spec) -> Spec:
    if spec.name not in OPTIMIZERS:
        hint = suggest(spec.name, list(OPTIMIZERS))
        known = ", ".join(OPTIMIZERS)
        raise IrnError(f"unknown optimizer '{spec.name}'{hint} (known: {known})", spec.loc)
    if spec.args:
        raise IrnError(f"give {spec.name}'s settings by name, e.g. {spec.name}(lr=0.01)", spec.loc)
    try:  # checks the kinds too: numbers, and flags such as rmsprop(centered=true)
        OPTIMIZERS[spec.name].hyperparameters(spec.kwargs)
    except ValueError as e:
        raise IrnError(str(e), spec.loc) from None
    return spec


def check_schedule(spec: Spec) -> Spec:
    numbers(spec)
    try:
        options(spec.name, spec.kwargs)
    except ValueError as e:
        hint = suggest(spec.name, list(SCHEDULES)) if spec.name not in SCHEDULES else ""
        raise IrnError(f"{e}{hint}", spec.loc) from None
    return spec


def numbers(spec: Spec) -> None:
    for key, v in spec.kwargs.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise IrnError(f"{spec.name}: {key} must be a number, got {v!r}", spec.loc)


def positive_int(v: Any, what: str, loc: ast.Loc | None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise IrnError(f"{what} must be a positive integer, got {v!r}", loc)
    return v


def nonnegative_int(v: Any, what: str, loc: ast.Loc | None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise IrnError(f"{what} must be a non-negative integer, got {v!r}", loc)
    return v


def flag(v: Any, what: str, loc: ast.Loc | None) -> bool:
    if not isinstance(v, bool):
        raise IrnError(f"{what} must be true or false, got {literal(v)}", loc)
    return v


MONITORED = re.compile(r"(train|val)_\w+")


def monitor_name(v: Any, loc: ast.Loc | None) -> str:
    name = v.name if isinstance(v, Spec) else v
    if not isinstance(name, str) or not MONITORED.fullmatch(name):
        raise IrnError(
            f"monitor names a logged metric such as val_loss or val_accuracy, got {literal(v)}",
            loc,
        )
    return name


def fraction(v: Any, loc: ast.Loc | None) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
        raise IrnError(f"val_split must be a fraction in [0, 1), got {v!r}", loc)
    return float(v)


def metric_names(v: Any, loc: ast.Loc | None) -> list[Spec]:
    """The metrics asked for, as written: `accuracy`, `top_k_accuracy(k=3)`, or the name of a
    `def` of the file (a custom metric, checked by `train_ir`); whether each fits the model is
    checked when the model's types are known (`metrics.resolve`)."""
    items = v if isinstance(v, list) else [v]
    specs = []
    for item in items:
        spec = Spec(item, loc=loc) if isinstance(item, str) else item
        if not isinstance(spec, Spec):
            known = ", ".join(METRICS)
            raise IrnError(
                f"a metric is a name such as accuracy (known: {known}), not {literal(item)}", loc
            )
        specs.append(spec)
    return specs


def spelled(spec: Spec) -> str:
    """`accuracy`, or `top_k_accuracy(k=3)` when it has settings."""
    return str(spec) if spec.args or spec.kwargs else spec.name


def with_overrides(config: TrainConfig, flags: dict[str, Any]) -> TrainConfig:
    """A copy with command-line flags applied. `lr` changes the optimizer's learning rate; an
    optimizer, schedule or data flag is `.irn` text such as `adam(lr=3e-4)` or `sgd`."""
    config = dataclasses.replace(config)
    for name, raw in sorted(flags.items(), key=lambda item: item[0] == "lr"):  # lr last
        if raw is None:
            continue
        if name == "lr":
            kwargs = {**config.optimizer.kwargs, "lr": float(raw)}
            config.optimizer = check_optimizer(dataclasses.replace(config.optimizer, kwargs=kwargs))
        elif name in ("data", "optimizer", "schedule", "metrics"):
            set_entry(
                config, name, value(parse_expression(raw, f"--{name.replace('_', '-')}")), None
            )
        else:
            set_entry(config, name, raw, None)
    return config
