"""Optimisers as IR: each writes its parameter update with `nn` ops, so a backend compiles the
whole training step (forward, gradients, update) into one function.

An optimiser names its per-parameter state slots, its hyperparameters with defaults, and an
update rule `(e, p, g, slots, lr, t, hp) -> (p', slots')` written with an `Emitter`. The
learning rate `lr` and the step count `t` (1 at the first step) are run-time scalars: schedules
change `lr` without recompiling. Conventions follow PyTorch's `torch.optim`.

Shared hyperparameters: `weight_decay` (L2, added to the gradient; decoupled for AdamW) and
`clip_norm` (rescale all gradients together when their global norm exceeds it; 0 = off).
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

    def hyperparameters(self, given: Mapping[str, float]) -> dict[str, float]:
        """Defaults completed by `given`; raises ValueError naming an unknown one."""
        known = {**SHARED, **self.defaults}
        for name in given:
            if name not in known:
                raise ValueError(
                    f"{self.name} has no hyperparameter '{name}' (it has {', '.join(known)})"
                )
        return {**known, **{k: float(v) for k, v in given.items()}}


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


ADAM_DEFAULTS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
OPTIMIZERS = {
    o.name: o
    for o in (
        Optimizer("sgd", (), {"lr": 0.01}, _sgd),
        Optimizer("momentum", ("velocity",), {"lr": 0.01, "momentum": 0.9}, _momentum),
        Optimizer("nesterov", ("velocity",), {"lr": 0.01, "momentum": 0.9}, _nesterov),
        Optimizer("adam", ("m", "v"), ADAM_DEFAULTS, _adam),
        Optimizer("adamw", ("m", "v"), {**ADAM_DEFAULTS, "weight_decay": 0.01}, _adam, True),
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
