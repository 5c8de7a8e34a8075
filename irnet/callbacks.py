"""What `Model.fit` calls as it trains (`Callback`), what it returns (`History`), and the
callbacks that come with irnet: `EarlyStopping`, `ModelCheckpoint`, `JsonLog`.

A callback subclasses `Callback` and overrides the hooks it needs. `fit` calls them on the
process that prints (rank 0 of a data-parallel job). A callback ends training by setting
`model.stop_training`: `fit` stops before the next epoch and prints `stop_message`, if the
callback has one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .diagnostics import IrnError


class Model(Protocol):
    """What a callback sees of the `irnet.Model` that `fit` trains."""

    name: str
    stop_training: bool
    """Set it to end training before the next epoch."""

    @property
    def epoch(self) -> int: ...

    @property
    def history(self) -> list[dict]: ...

    def save(self, path: str | Path) -> None: ...


class Callback:
    """Hooks into `Model.fit`; each does nothing unless overridden."""

    stop_message: str | None = None
    """Why this callback stopped training, printed by a verbose `fit`."""

    def on_train_begin(self, model: Model, logged: Sequence[str]) -> None:
        """Before the first epoch; `logged` names what each epoch's record will hold."""

    def on_epoch_begin(self, model: Model, epoch: int) -> None:
        """Before epoch `epoch` (counted from 1)."""

    def on_batch_end(self, model: Model, step: int, loss: float) -> None:
        """After each optimiser step: the model's step count and the batch's loss."""

    def on_epoch_end(self, model: Model, record: dict) -> None:
        """After each epoch, with its record (`epoch`, `train_loss`, `val_loss`, metrics, ...),
        which is already in `model.history`."""

    def on_train_end(self, model: Model, history: History) -> None:
        """After the last epoch, or after a callback stopped training."""


@dataclass
class History:
    """The records of the epochs one `fit` trained; `history["val_loss"]` lists a metric by
    epoch, as Keras's `History.history[...]` does."""

    records: list[dict] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        if not any(key in r for r in self.records):
            known = sorted({k for r in self.records for k in r})
            raise KeyError(f"no epoch logged '{key}'; the records hold {', '.join(known)}")
        return [r[key] for r in self.records if key in r]

    def __len__(self) -> int:
        return len(self.records)


VALIDATION_HINT = (
    " (validation metrics need validation data: val_split, --val-split or validation_data=)"
)


@dataclass
class Monitor:
    """A logged metric and its best value. Which way is better follows from the name:
    accuracies (`val_accuracy`, `val_top5_accuracy`) improve upwards, everything else (losses,
    `val_mae`, `val_rmse`) downwards. Only a strict improvement counts; NaN never improves."""

    name: str
    best: float = math.nan
    best_epoch: int = 0
    since_best: int = 0

    def check(self, logged: Sequence[str]) -> None:
        """Refuse, before training, a metric that the epoch records will not hold."""
        if self.name not in logged:
            validated = any(k.startswith("val_") for k in logged)
            why = "" if validated else VALIDATION_HINT
            raise IrnError(
                f"monitor {self.name}: the epoch log has no {self.name}{why}; "
                f"it has {', '.join(logged)}"
            )

    def update(self, record: dict) -> bool:
        """Take one epoch's record; whether it improves on the best so far."""
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

    def replay(self, history: Sequence[dict]) -> None:
        """Go through the records of a resumed run, so that its best and patience go on."""
        for record in history:
            if self.name in record:
                self.update(record)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs (0: never)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3):
        self.monitor, self.patience = Monitor(monitor), patience

    def on_train_begin(self, model: Model, logged: Sequence[str]) -> None:
        self.monitor.check(logged)
        self.monitor.replay(model.history)
        self._judge(model)

    def on_epoch_end(self, model: Model, record: dict) -> None:
        self.monitor.update(record)
        self._judge(model)

    def _judge(self, model: Model) -> None:
        watch = self.monitor
        if self.patience > 0 and watch.since_best >= self.patience:
            model.stop_training = True
            self.stop_message = (
                f"stopping early after epoch {model.epoch}: {watch.name} has not improved for "
                f"{watch.since_best} epoch{'s' * (watch.since_best != 1)} "
                f"(best {watch.best:.4f} after epoch {watch.best_epoch})"
            )


class ModelCheckpoint(Callback):
    """After every epoch, write `MODEL-epochK.npz` and `MODEL-last.npz` into `directory`,
    and with `keep_best` also `MODEL-best.npz` whenever `monitor` improves. Each write is
    atomic (`Model.save`)."""

    def __init__(
        self, directory: str | Path, keep_best: bool = False, monitor: str = "val_loss"
    ) -> None:
        self.directory, self.keep_best = Path(directory), keep_best
        self.monitor = Monitor(monitor)

    def on_train_begin(self, model: Model, logged: Sequence[str]) -> None:
        if self.keep_best:
            self.monitor.check(logged)
            self.monitor.replay(model.history)

    def on_epoch_end(self, model: Model, record: dict) -> None:
        best = self.keep_best and self.monitor.update(record)
        for name in ["epoch" + str(model.epoch), "last", *(["best"] if best else [])]:
            model.save(self.directory / f"{model.name}-{name}.npz")


class JsonLog(Callback):
    """Append each epoch's record to `path` as a line of JSON."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, model: Model, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
