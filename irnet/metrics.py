"""Validation metrics, each defined by what it measures: which comparison a metric makes follows
from the model's output type, the target's type and what the output holds, and a pairing where
the metric means nothing is refused at the `metrics` entry instead of printing a wrong number.

- `accuracy`: class logits (or probabilities) `F[N, C]` against integer labels `i32[N]` or
  one-hot targets `F[N, C]` (the largest output is the class), or one output per example
  (`F[N]`, `F[N, 1]`) against 0/1 targets (above 0.5 for a probability, the output of
  `sigmoid`, above 0 for a logit). A regression (an `mse` loss) has no accuracy.
- `top_k_accuracy(k=5)`: the label is among the `k` largest outputs (classes only).
- `binary_accuracy(threshold=...)`: the 0/1 comparison with a threshold of your choice.
- `mae`, `rmse`: mean absolute and root mean squared error of float outputs.
- the name of a `def NAME(output, target) -> F` of the file: a custom metric, its value on each
  batch averaged over the data set, weighted by batch size.

With several targets a metric compares the output with the one target that fits it, or the one
named by `target="y"`. Every metric is a sum over the examples of a data set, divided at the
end, so the result does not depend on the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import TensorType

from irnet.dialects.shapes import DYN, format_type, is_float, is_int

from . import ast
from .diagnostics import IrnError
from .params import Argument

REGRESSION_LOSSES = {"mse"}
"""Losses of the standard library that make a model a regression."""


@dataclass(frozen=True)
class Metric:
    key: str
    """Its name in the log (`val_accuracy`, `val_top5_accuracy`, `val_mae`)."""
    label: str
    """Its name in the epoch summary (`acc`, `top5`, `mae`)."""
    target: int
    """Which of the model's targets it compares the output with."""
    score: Callable[[np.ndarray, np.ndarray], tuple[float, int]] | None
    """(sum, count) over a batch of outputs and targets; None for a custom metric."""
    percent: bool = True
    root: bool = False
    """Report the square root of the mean (rmse)."""
    custom: bool = False
    """A `def` of the file, compiled as `@m.metric.NAME(output, target)`: its value on each
    batch, weighted by the batch's size."""

    def value(self, total: float, count: int) -> float:
        mean = total / max(count, 1)
        return math.sqrt(mean) if self.root else mean


@dataclass(frozen=True)
class Pairing:
    """What a metric compares: the model's output type and one target."""

    output: TensorType
    target: Argument
    index: int
    probability: bool
    """The output is a probability (the model ends in `sigmoid`), not a logit."""

    @property
    def kind(self) -> str | None:
        """ "class", "onehot", "binary" or None (no accuracy makes sense)."""
        out, tgt = self.output.get_shape(), self.target.type.get_shape()
        classes = out[-1] if out else 1
        if len(out) == len(tgt) + 1 and is_int(self.target.type) and classes != 1:
            return "class"
        if len(out) == len(tgt) and out[-1:] == tgt[-1:] and classes not in (1, DYN):
            return "onehot" if is_float(self.target.type) else None
        if squeezed(out) == squeezed(tgt):
            return "binary"
        return None


def squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    """A per-example shape without a trailing 1: `[N, 1]` and `[N]` compare equal."""
    return tuple(shape[:-1]) if shape and shape[-1] == 1 else tuple(shape)


def resolve(
    specs: Sequence, output: TensorType, targets: Sequence[Argument], probability: bool, loss
) -> list[Metric]:
    """The metrics of a `metrics = [...]` entry (Specs; `loss` is always reported and needs
    none), checked against the model's output type and targets."""
    metrics = []
    for spec in specs:
        if spec.name == "loss":
            continue
        pairings = [Pairing(output, t, i, probability) for i, t in enumerate(targets)]
        if spec.name not in METRICS:  # a def of the file, which train_ir has compiled
            wanted = spec.kwargs.get("target")
            index = next((p.index for p in pairings if p.target.name == wanted), 0)
            metrics.append(Metric(spec.name, spec.name, index, None, False, custom=True))
            continue
        metrics.append(METRICS[spec.name](spec, choose(spec, pairings, loss), loss))
    return metrics


def choose(spec, pairings: list[Pairing], loss) -> Pairing:
    wanted = spec.kwargs.get("target")
    if wanted is not None:
        for p in pairings:
            if p.target.name == wanted:
                return p
        names = ", ".join(p.target.name for p in pairings) or "none"
        raise IrnError(
            f"{spec.name}: the model has no target {wanted!r} (targets: {names})", spec.loc
        )
    if not pairings:
        raise IrnError(
            f"{spec.name} compares the output with a target, and this train block has none",
            spec.loc,
        )
    if len(pairings) == 1:
        return pairings[0]
    fitting = [p for p in pairings if fits(spec.name, p)]
    if len(fitting) == 1:
        return fitting[0]
    names = ", ".join(p.target.name for p in pairings)
    example = f'{spec.name}(target="{pairings[0].target.name}")'
    message = f"{spec.name}: name the target it measures, e.g. {example} (targets: {names})"
    raise IrnError(message, spec.loc)


def fits(name: str, p: Pairing) -> bool:
    if name in ("mae", "rmse"):
        return is_float(p.target.type) and squeezed(p.output.get_shape()) == squeezed(
            p.target.type.get_shape()
        )
    return p.kind is not None


def refuse(spec, p: Pairing, why: str) -> IrnError:
    return IrnError(
        f"{spec.name} is meaningless here: the output is {format_type(p.output)} and the target "
        f"{p.target.name} is {format_type(p.target.type)}; {why}",
        spec.loc,
    )


# --- the metrics -------------------------------------------------------------------------------


def accuracy(spec, p: Pairing, loss) -> Metric:
    if isinstance(loss, ast.Call) and getattr(loss.func, "id", None) in REGRESSION_LOSSES:
        raise refuse(spec, p, "the loss makes this a regression; use mae or rmse")
    match p.kind:
        case "class" | "onehot":
            return Metric("accuracy", "acc", p.index, top_k(1, p.kind))
        case "binary":
            return Metric("accuracy", "acc", p.index, above(0.5 if p.probability else 0.0, p))
    raise refuse(spec, p, "accuracy compares classes or 0/1 labels")


def top_k_accuracy(spec, p: Pairing, loss) -> Metric:
    k = spec.kwargs.get("k", 5)
    classes = p.output.get_shape()[-1] if p.output.get_shape() else 1
    if p.kind not in ("class", "onehot"):
        raise refuse(spec, p, "top-k accuracy compares class scores with labels")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or (classes != DYN and k > classes):
        raise IrnError(
            f"top_k_accuracy: k must be an integer in [1, {classes}], got {k!r}", spec.loc
        )
    return Metric(f"top{k}_accuracy", f"top{k}", p.index, top_k(k, p.kind))


def binary_accuracy(spec, p: Pairing, loss) -> Metric:
    if p.kind != "binary":
        raise refuse(spec, p, "binary accuracy compares one output per example with 0/1 labels")
    threshold = spec.kwargs.get("threshold", 0.5 if p.probability else 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise IrnError(f"binary_accuracy: threshold must be a number, got {threshold!r}", spec.loc)
    return Metric("binary_accuracy", "binary acc", p.index, above(float(threshold), p))


def errors(root: bool) -> Callable:
    def make(spec, p: Pairing, loss) -> Metric:
        if not fits(spec.name, p):
            raise refuse(spec, p, f"{spec.name} needs a float target of the output's shape")

        def score(out: np.ndarray, tgt: np.ndarray) -> tuple[float, int]:
            diff = out.reshape(len(out), -1).astype(np.float64) - tgt.reshape(len(tgt), -1)
            return float(np.sum(diff * diff if root else np.abs(diff))), diff.size

        return Metric(spec.name, spec.name, p.index, score, percent=False, root=root)

    return make


def top_k(k: int, kind: str) -> Callable[[np.ndarray, np.ndarray], tuple[float, int]]:
    def score(out: np.ndarray, tgt: np.ndarray) -> tuple[float, int]:
        labels = np.argmax(tgt, axis=-1) if kind == "onehot" else tgt
        if k == 1:
            hits = np.argmax(out, axis=-1) == labels
        else:
            best = np.argpartition(-out, k - 1, axis=-1)[..., :k]
            hits = np.any(best == labels[..., None], axis=-1)
        return float(np.sum(hits)), hits.size

    return score


def above(threshold: float, p: Pairing) -> Callable[[np.ndarray, np.ndarray], tuple[float, int]]:
    def score(out: np.ndarray, tgt: np.ndarray) -> tuple[float, int]:
        tgt = tgt.reshape(len(tgt), -1)
        if not np.all((tgt == 0) | (tgt == 1)):
            bad = tgt[(tgt != 0) & (tgt != 1)].flat[0]
            raise IrnError(
                f"accuracy compares with 0/1 targets, but target {p.target.name} holds {bad}: "
                "a regression target? use mae or rmse"
            )
        hits = (out.reshape(len(out), -1) > threshold) == (tgt == 1)
        return float(np.sum(hits)), hits.size

    return score


METRICS: dict[str, Callable] = {
    "accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy,
    "binary_accuracy": binary_accuracy,
    "mae": errors(root=False),
    "rmse": errors(root=True),
}
"""Each metric a `metrics` entry may name (besides `loss`), by the rule that builds it."""


def check_labels(dataset, output: TensorType, targets: Sequence[Argument], model: str) -> None:
    """Integer class labels must lie in [0, classes): a label outside gives a zero one-hot row
    and trains silently on nothing. Checked when data is loaded, before anything runs."""
    shape = output.get_shape()
    if not shape or shape[-1] in (DYN, 1):
        return
    classes = shape[-1]
    for arg, values in zip(targets, dataset.targets):
        if not is_int(arg.type) or len(arg.type.get_shape()) + 1 != len(shape):
            continue
        bad = np.flatnonzero((values < 0) | (values >= classes))
        if bad.size:
            example = np.unravel_index(bad[0], values.shape)[0]
            raise IrnError(
                f"{dataset.source}: label {values.flat[bad[0]]} of example {example} (target "
                f"{arg.name}) is outside [0, {classes}): {model} has {classes} classes "
                f"({bad.size} such labels in all)"
            )
