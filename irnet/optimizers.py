"""Optimisers as IR: each writes its parameter update with `nn` ops, so a backend compiles the
whole training step (forward, gradients, update) into one function.

An optimiser names its per-parameter state slots, its hyperparameters with defaults, and an
update rule `(e, p, g, slots, lr, t, hp) -> (p', slots')` written with an `Emitter`. The
learning rate `lr` and the step count `t` (1 at the first step) are run-time scalars: schedules
change `lr` without recompiling. Conventions follow PyTorch's `torch.optim` (Lion, which
PyTorch lacks, follows its paper). A hyperparameter whose default is a bool is a flag, given as
`true`/`false` (`rmsprop(centered=true)`); the others are numbers.

Shared hyperparameters: `weight_decay` (L2, added to the gradient; decoupled for AdamW and
Lion) and `clip_norm` (rescale all gradients together when their global norm exceeds it; 0 =
off).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xdsl.ir import SSAValue

from irnet.dialects import nn
from irnet.dialects.nn_builder import Emitter

Slots = dict[str, SSAValue]
Update = Callable[
    [Emitter, SSAValue, SSAValue, Slots, SSAValue, SSAValue, Mapping[str, float]],
    tuple[SSAValue, Slots],
]
SHARED = {"weight_decay": 0.0, "clip_norm": 0.0}


@dataclass(frozen=True)
class Optimizer:
    name: str
    slots: tuple[str, ...]
    defaults: dict[str, float]
    update: Update
    decoupled_decay: bool = False

    def hyperparameters(self, given: Mapping[str, object]) -> dict[str, float]:
        """Defaults completed by `given`; raises ValueError naming an unknown hyperparameter or
        a value of the wrong kind (a number for a flag, a flag or a string for a number)."""
        known = {**SHARED, **self.defaults}
        for name, value in given.items():
            if name not in known:
                raise ValueError(
                    f"{self.name} has no hyperparameter '{name}' (it has {', '.join(known)})"
                )
            is_flag = isinstance(known[name], bool)
            if isinstance(value, bool) != is_flag or not isinstance(value, int | float):
                kind = "true or false" if is_flag else "a number"
                shown = str(value).lower() if isinstance(value, bool) else repr(value)
                raise ValueError(f"{self.name}: {name} must be {kind}, got {shown}")
        return {**known, **{k: v if isinstance(v, bool) else float(v) for k, v in given.items()}}


def _sgd(e, p, g, slots, lr, t, hp):
    return e.sub(p, e.mul(g, lr)), {}


def _momentum(e, p, g, slots, lr, t, hp):
    velocity = e.add(e.mul(slots["velocity"], hp["momentum"]), g)
    return e.sub(p, e.mul(velocity, lr)), {"velocity": velocity}


def _nesterov(e, p, g, slots, lr, t, hp):
    velocity = e.add(e.mul(slots["velocity"], hp["momentum"]), g)
    step = e.add(g, e.mul(velocity, hp["momentum"]))
    return e.sub(p, e.mul(step, lr)), {"velocity": velocity}


def _adam(e, p, g, slots, lr, t, hp):
    b1, b2 = hp["beta1"], hp["beta2"]
    m = e.add(e.mul(slots["m"], b1), e.mul(g, 1.0 - b1))
    v = e.add(e.mul(slots["v"], b2), e.mul(e.mul(g, g), 1.0 - b2))
    m_hat = e.div(m, e.sub(1.0, e.op(nn.PowOp, e.const(b1, t), t)))
    v_hat = e.div(v, e.sub(1.0, e.op(nn.PowOp, e.const(b2, t), t)))
    step = e.div(m_hat, e.add(e.op(nn.SqrtOp, v_hat), hp["eps"]))
    return e.sub(p, e.mul(step, lr)), {"m": m, "v": v}


def _rmsprop(e, p, g, slots, lr, t, hp):
    """torch.optim.RMSprop: eps is added outside the square root; `centered` divides by the
    running variance (mean of g² less the squared mean of g); `momentum` > 0 accumulates the
    scaled step in a buffer. A slot that the flags leave unused is passed through unchanged,
    since an optimiser's slots cannot depend on its hyperparameters."""
    alpha = hp["alpha"]
    square_avg = e.add(e.mul(slots["square_avg"], alpha), e.mul(e.mul(g, g), 1.0 - alpha))
    new_slots = {**slots, "square_avg": square_avg}
    variance = square_avg
    if hp["centered"]:
        grad_avg = e.add(e.mul(slots["grad_avg"], alpha), e.mul(g, 1.0 - alpha))
        variance = e.sub(square_avg, e.mul(grad_avg, grad_avg))
        new_slots["grad_avg"] = grad_avg
    step = e.div(g, e.add(e.op(nn.SqrtOp, variance), hp["eps"]))
    if hp["momentum"] > 0:
        step = e.add(e.mul(slots["momentum_buffer"], hp["momentum"]), step)
        new_slots["momentum_buffer"] = step
    return e.sub(p, e.mul(step, lr)), new_slots


def _adagrad(e, p, g, slots, lr, t, hp):
    """torch.optim.Adagrad. State starts at zero, so the slot `sum` holds the sum of g² and
    `initial_accumulator_value` is added where it is read."""
    total = e.add(slots["sum"], e.mul(g, g))
    if hp["lr_decay"]:
        lr = e.div(lr, e.add(e.mul(e.sub(t, 1.0), hp["lr_decay"]), 1.0))
    accumulated = e.add(total, hp["initial_accumulator_value"])
    step = e.div(g, e.add(e.op(nn.SqrtOp, accumulated), hp["eps"]))
    return e.sub(p, e.mul(step, lr)), {"sum": total}


def _sign(e: Emitter, x: SSAValue) -> SSAValue:
    """-1, 0 or 1 as torch.sign; zero and NaN are their own sign, so a NaN still shows."""
    negative = e.select(e.cmp("lt", x, 0.0), e.const(-1.0, x), x)
    return e.select(e.cmp("gt", x, 0.0), e.const(1.0, x), negative)


def _lion(e, p, g, slots, lr, t, hp):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as lucidrains'
    lion-pytorch: the step is the sign of an interpolation (beta1) of the momentum and the
    gradient; the momentum then moves towards the gradient with beta2. Its weight decay is
    decoupled, `p ← p − lr·(sign(...) + weight_decay·p)`."""
    b1, b2 = hp["beta1"], hp["beta2"]
    direction = _sign(e, e.add(e.mul(slots["m"], b1), e.mul(g, 1.0 - b1)))
    m = e.add(e.mul(slots["m"], b2), e.mul(g, 1.0 - b2))
    return e.sub(p, e.mul(direction, lr)), {"m": m}


ADAM_DEFAULTS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
OPTIMIZERS = {
    o.name: o
    for o in (
        Optimizer("sgd", (), {"lr": 0.01}, _sgd),
        Optimizer("momentum", ("velocity",), {"lr": 0.01, "momentum": 0.9}, _momentum),
        Optimizer("nesterov", ("velocity",), {"lr": 0.01, "momentum": 0.9}, _nesterov),
        Optimizer("adam", ("m", "v"), ADAM_DEFAULTS, _adam),
        Optimizer("adamw", ("m", "v"), {**ADAM_DEFAULTS, "weight_decay": 0.01}, _adam, True),
        Optimizer(
            "rmsprop",
            ("square_avg", "grad_avg", "momentum_buffer"),
            {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
            _rmsprop,
        ),
        Optimizer(
            "adagrad",
            ("sum",),
            {"lr": 0.01, "eps": 1e-10, "initial_accumulator_value": 0.0, "lr_decay": 0.0},
            _adagrad,
        ),
        Optimizer("lion", ("m",), {"lr": 1e-4, "beta1": 0.9, "beta2": 0.99}, _lion, True),
    )
}


def clip_by_global_norm(e: Emitter, grads: Sequence[SSAValue], clip: float) -> list[SSAValue]:
    """All gradients scaled by min(1, clip / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_."""
    squares = [e.reduce_sum(e.mul(g, g), [], keepdims=False) for g in grads]
    total = squares[0]
    for s in squares[1:]:
        total = e.add(total, s)
    norm = e.op(nn.SqrtOp, total)
    scale = e.op(nn.MinimumOp, e.div(e.const(clip, norm), e.add(norm, 1e-6)), e.const(1.0, norm))
    return [e.mul(g, scale) for g in grads]


def apply_updates(
    e: Emitter,
    optimizer: Optimizer,
    hp: Mapping[str, float],
    params: Sequence[SSAValue],
    grads: Sequence[SSAValue],
    slots: Sequence[Slots],
    lr: SSAValue,
    t: SSAValue,
) -> tuple[list[SSAValue], list[Slots]]:
    """New parameters and state slots, for every parameter."""
    if hp["clip_norm"] > 0:
        grads = clip_by_global_norm(e, grads, hp["clip_norm"])
    new_params, new_slots = [], []
    for p, g, s in zip(params, grads, slots):
        decay = hp["weight_decay"]
        if decay and not optimizer.decoupled_decay:
            g = e.add(g, e.mul(p, decay))
        p_new, s_new = optimizer.update(e, p, g, s, lr, t, hp)
        if decay and optimizer.decoupled_decay:
            p_new = e.sub(p_new, e.mul(e.mul(p, decay), lr))
        new_params.append(p_new)
        new_slots.append(s_new)
    return new_params, new_slots
