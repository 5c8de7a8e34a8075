"""Learning-rate schedules: the learning rate of step `k` (0-based) of `total` steps, computed on
the host and passed to the compiled step as a scalar, so changing it never recompiles.

Every schedule is counted in steps (batches), not epochs, and takes `warmup=` steps of linear
warm-up from 0 to the rate the schedule starts at (as `LinearLR` chained before a scheduler in
PyTorch); the schedule then runs over the steps after warm-up. `step` decays by `gamma` every
`every` steps (PyTorch's StepLR); `exponential` by `gamma` every step (ExponentialLR); `cosine`
anneals to `min_lr` (CosineAnnealingLR); `one_cycle` rises to `max_lr` and anneals far below the
start (OneCycleLR, cosine annealing; it schedules the learning rate only, not the momentum).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Shape = Callable[[float, int, int, Mapping[str, float]], float]


@dataclass(frozen=True)
class Schedule:
    name: str
    defaults: dict[str, float]
    shape: Shape
    """(base lr, step after warm-up, steps after warm-up, options) -> lr"""


def _anneal(start: float, end: float, fraction: float) -> float:
    """Cosine from `start` (fraction 0) to `end` (fraction 1)."""
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * fraction))


def _one_cycle(lr: float, k: int, n: int, o: Mapping[str, float]) -> float:
    """torch.optim.lr_scheduler.OneCycleLR (two phases, cosine) over `n` steps: from
    max_lr / div_factor up to max_lr until step pct_start·n − 1, then down to
    max_lr / (div_factor · final_div_factor) at step n − 1. max_lr 0 means the optimiser's lr."""
    peak = o["max_lr"] or lr
    start = peak / o["div_factor"]
    rise_end = o["pct_start"] * n - 1  # a float, as in PyTorch
    if k <= rise_end:
        return _anneal(start, peak, k / rise_end if rise_end > 0 else 1.0)
    fall = n - 1 - rise_end
    return _anneal(peak, start / o["final_div_factor"], min((k - rise_end) / fall, 1.0))


SCHEDULES = {
    s.name: s
    for s in (
        Schedule("constant", {}, lambda lr, k, n, o: lr),
        Schedule(
            "step",
            {"every": 1000, "gamma": 0.1},
            lambda lr, k, n, o: lr * o["gamma"] ** (k // int(o["every"])),
        ),
        Schedule("exponential", {"gamma": 0.999}, lambda lr, k, n, o: lr * o["gamma"] ** k),
        Schedule(
            "cosine",
            {"min_lr": 0.0},
            lambda lr, k, n, o: _anneal(lr, o["min_lr"], min(k, n) / max(n, 1)),
        ),
        Schedule(
            "one_cycle",
            {"max_lr": 0.0, "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4},
            _one_cycle,
        ),
    )
}


def options(name: str, given: Mapping[str, float]) -> dict[str, float]:
    """The schedule's options completed with defaults; raises ValueError on unknown ones."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}' (known: {', '.join(SCHEDULES)})")
    known = {"warmup": 0.0, **SCHEDULES[name].defaults}
    for key in given:
        if key not in known:
            raise ValueError(f"schedule {name} has no option '{key}' (it has {', '.join(known)})")
    return {**known, **{k: float(v) for k, v in given.items()}}


def learning_rate(
    name: str, opts: Mapping[str, float], base_lr: float, step: int, total: int
) -> float:
    """The learning rate of step `step` (0-based) of `total`, for the optimiser's `base_lr`."""
    warmup = int(opts["warmup"])
    shape, after = SCHEDULES[name].shape, max(total - warmup, 1)
    if step < warmup:
        return shape(base_lr, 0, after, opts) * (step + 1) / warmup
    return shape(base_lr, step - warmup, after, opts)
