"""Learning-rate schedules: the learning rate of step `k` (0-based) of `total` steps, computed on
the host and passed to the compiled step as a scalar, so changing it never recompiles.

Every schedule takes `warmup=` steps of linear warm-up from 0 (as `LinearLR` + a scheduler in
PyTorch). `step` decays by `gamma` every `every` steps (PyTorch's StepLR, counted in steps);
`cosine` anneals to `min_lr` over the steps after warm-up (CosineAnnealingLR).
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


SCHEDULES = {
    s.name: s
    for s in (
        Schedule("constant", {}, lambda lr, k, n, o: lr),
        Schedule(
            "step",
            {"every": 1000, "gamma": 0.1},
            lambda lr, k, n, o: lr * o["gamma"] ** (k // int(o["every"])),
        ),
        Schedule(
            "cosine",
            {"min_lr": 0.0},
            lambda lr, k, n, o: (
                o["min_lr"]
                + 0.5 * (lr - o["min_lr"]) * (1 + math.cos(math.pi * min(k, n) / max(n, 1)))
            ),
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
    warmup = int(opts["warmup"])
    if step < warmup:
        return base_lr * (step + 1) / warmup
    return SCHEDULES[name].shape(base_lr, step - warmup, max(total - warmup, 1), opts)
