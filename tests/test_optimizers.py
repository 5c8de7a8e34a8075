"""RMSprop, Adagrad and Lion against their published update rules, and the exponential and
one-cycle schedules against their formulas.

The oracle for each optimiser is a NumPy transcription of its published algorithm (PyTorch's
documented `torch.optim` pseudocode; for Lion, Chen et al. 2023 as lucidrains' lion-pytorch),
written here independently of the IR: in PyTorch's terms, with PyTorch's state (Adagrad's sum
starts at `initial_accumulator_value`) and the weight decay where each rule puts it. The model
is least squares, `mse(x @ w + b, y)`, whose gradient is written in NumPy too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irnet import driver
from irnet.cpu import CpuRunner
from irnet.diagnostics import IrnError
from irnet.params import arguments, find_function
from irnet.reference import Reference
from irnet.schedules import learning_rate, options

PROGRAM = """
from nn import dense, mse

model lin(x: f64[N, 3]) -> f64[N, 2] {
    return dense(x, 2)
}

train lin(y: f64[N, 2]) {
    loss      = mse(lin(x), y)
    optimizer = OPTIMIZER
}
"""


# --- the published rules, in NumPy -------------------------------------------------------------


def rmsprop(p, g, state, lr, t, hp):
    """torch.optim.RMSprop."""
    g = g + hp["weight_decay"] * p
    alpha = hp["alpha"]
    state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
    variance = state["square_avg"]
    if hp["centered"]:
        state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
        variance = variance - state["grad_avg"] ** 2
    avg = np.sqrt(variance) + hp["eps"]
    if hp["momentum"] > 0:
        state["momentum_buffer"] = hp["momentum"] * state["momentum_buffer"] + g / avg
        return p - lr * state["momentum_buffer"]
    return p - lr * g / avg


def adagrad(p, g, state, lr, t, hp):
    """torch.optim.Adagrad."""
    g = g + hp["weight_decay"] * p
    clr = lr / (1 + (t - 1) * hp["lr_decay"])
    state["sum"] = state["sum"] + g * g
    return p - clr * g / (np.sqrt(state["sum"]) + hp["eps"])


def lion(p, g, state, lr, t, hp):
    """Lion, as lucidrains' lion-pytorch: decay the weights, step by the sign, then update m."""
    b1, b2 = hp["beta1"], hp["beta2"]
    p = p * (1 - lr * hp["weight_decay"])
    p = p - lr * np.sign(b1 * state["m"] + (1 - b1) * g)
    state["m"] = b2 * state["m"] + (1 - b2) * g
    return p


RULES = {"rmsprop": rmsprop, "adagrad": adagrad, "lion": lion}


def initial_state(name, hp, p):
    if name == "adagrad":
        return {"sum": np.full_like(p, hp["initial_accumulator_value"])}
    slots = {"rmsprop": ("square_avg", "grad_avg", "momentum_buffer"), "lion": ("m",)}[name]
    return {s: np.zeros_like(p) for s in slots}


def clipped(grads, clip_norm):
    """torch.nn.utils.clip_grad_norm_ over all gradients together."""
    if not clip_norm:
        return grads
    norm = np.sqrt(sum(np.sum(g * g) for g in grads))
    return [g * min(1.0, clip_norm / (norm + 1e-6)) for g in grads]


def least_squares_grads(x, y, w, b):
    """The gradient of mean((x @ w + b - y)²) for w and b."""
    d = 2 * (x @ w + b - y) / y.size
    return [x.T @ d, d.sum(axis=0)]


class Published:
    """The NumPy optimiser over the parameters [w, b]; `t` counts steps from 1 as PyTorch."""

    def __init__(self, name, hp, params):
        self.rule, self.hp, self.t = RULES[name], hp, 0
        self.states = [initial_state(name, hp, p) for p in params]

    def step(self, params, grads, lr):
        self.t += 1
        grads = clipped(grads, self.hp["clip_norm"])
        steps = zip(params, grads, self.states)
        return [self.rule(p, g, s, lr, self.t, self.hp) for p, g, s in steps]


# --- the compiled update -----------------------------------------------------------------------


def reference_runner(module):
    return Reference(module, float_dtype=np.float64)


class Compiled:
    """The program with `optimizer`, through the pipeline; its `update` and `step` called with
    the state threaded from call to call, as the trainer does."""

    def __init__(self, tmp_path, optimizer, make_runner=reference_runner):
        path = tmp_path / "lin.irn"
        path.write_text(PROGRAM.replace("OPTIMIZER", optimizer))
        loaded = driver.load(str(path))
        self.hp = loaded.trains["lin"].hyperparameters
        self.name = loaded.trains["lin"].optimizer.name
        self.module = driver.run_passes(loaded.module, ",".join(driver.PIPELINE))
        self.runner = make_runner(self.module)
        state = [a for a in arguments(find_function(self.module, "lin.step")) if a.kind == "opt"]
        self.state_names = [a.name for a in state]
        self.state = [np.zeros(a.type.get_shape()) for a in state]

    def update(self, params, grads, lr):
        out = self.runner.run("lin.update", [*params, *grads, *self.state, np.asarray(lr)])
        return self.unpack(out[: len(params)], out[len(params) :])

    def step(self, x, y, params, lr):
        out = self.runner.run("lin.step", [x, y, *params, *self.state, np.asarray(lr)])
        return self.unpack(out[1 : 1 + len(params)], out[1 + len(params) :])

    def unpack(self, params, state):
        self.state = [self.runner.to_host(s) for s in state]
        return [self.runner.to_host(p) for p in params]


def problem(seed=0):
    """A small least-squares problem and a starting point."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 3))
    y = x @ rng.normal(size=(3, 2)) + 0.1 * rng.normal(size=(16, 2))
    return x, y, [rng.normal(size=(3, 2)), rng.normal(size=(2,))]


CASES = [
    "rmsprop(lr=0.01)",
    "rmsprop(lr=0.01, centered=true)",
    "rmsprop(lr=0.01, momentum=0.9)",
    "rmsprop(lr=0.02, alpha=0.9, eps=0.001, centered=true, momentum=0.5, weight_decay=0.1)",
    "adagrad(lr=0.1)",
    "adagrad(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.2, weight_decay=0.01)",
    "lion(lr=0.001)",
    "lion(lr=0.003, beta1=0.8, beta2=0.95, weight_decay=0.5, clip_norm=0.5)",
    "rmsprop(lr=0.01, clip_norm=0.1, weight_decay=0.01)",
]


@pytest.mark.parametrize("optimizer", CASES)
def test_update_steps_match_the_published_rule(tmp_path, optimizer):
    """Three calls of `lin.update` on given gradients, one with zeros (sign(0) = 0 for Lion)."""
    compiled = Compiled(tmp_path, optimizer)
    rng = np.random.default_rng(1)
    params = [rng.normal(size=(3, 2)), rng.normal(size=(2,))]
    published = Published(compiled.name, compiled.hp, params)
    want = got = params
    for k in range(3):
        grads = [rng.normal(size=(3, 2)), np.array([0.0, -0.5]) if k == 0 else rng.normal(size=2)]
        lr = 0.5 * compiled.hp["lr"] * (k + 1)  # the run-time lr is the one the step uses
        want, got = published.step(want, grads, lr), compiled.update(got, grads, lr)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    assert compiled.state[-1] == 3  # t


@pytest.mark.parametrize("optimizer", CASES)
def test_twenty_training_steps_follow_the_published_rule(tmp_path, optimizer):
    compiled = Compiled(tmp_path, optimizer)
    x, y, start = problem()
    published = Published(compiled.name, compiled.hp, start)
    lr = compiled.hp["lr"]
    want = got = start
    for _ in range(20):
        want = published.step(want, least_squares_grads(x, y, *want), lr)
        got = compiled.step(x, y, got, lr)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)

    def loss(params):
        return np.mean((x @ params[0] + params[1] - y) ** 2)

    assert loss(got) < loss(start)


@pytest.mark.parametrize(
    "optimizer",
    [
        "rmsprop(lr=0.01, centered=true)",  # momentum_buffer is passed through unchanged
        "adagrad(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.2)",
        "lion(lr=0.003, weight_decay=0.5, clip_norm=0.5)",
    ],
)
def test_cpu_target_agrees(tmp_path, cache, optimizer):
    cpu = Compiled(
        tmp_path,
        optimizer,
        lambda m: CpuRunner(m, float_dtype=np.float64, parallel=False, cache=cache),
    )
    x, y, start = problem(2)
    published = Published(cpu.name, cpu.hp, start)
    want = got = start
    for _ in range(5):
        want = published.step(want, least_squares_grads(x, y, *want), cpu.hp["lr"])
        got = cpu.step(x, y, got, cpu.hp["lr"])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    for name, value in zip(cpu.state_names, cpu.state):
        if name.startswith("momentum_buffer."):  # unused: returned as it came, never written
            assert not value.any(), name


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        ("rmsprop(centered=1)", "rmsprop: centered must be true or false, got 1"),
        ("lion(lr=true)", "lion: lr must be a number, got true"),
        ('adagrad(eps="small")', "adagrad: eps must be a number, got 'small'"),
        ("lion(momentum=0.9)", "lion has no hyperparameter 'momentum'"),
    ],
)
def test_bad_hyperparameter_is_a_located_error(tmp_path, optimizer, message):
    path = tmp_path / "lin.irn"
    path.write_text(PROGRAM.replace("OPTIMIZER", optimizer))
    with pytest.raises(IrnError, match=message) as info:
        driver.load(str(path))
    assert info.value.loc is not None and info.value.loc.line == 10  # the optimizer line


def test_a_flag_given_on_the_command_line(tmp_path):
    path = tmp_path / "lin.irn"
    path.write_text(PROGRAM.replace("OPTIMIZER", "sgd"))
    flags = {"optimizer": "rmsprop(centered=true)", "lr": 0.5}
    config = driver.load(str(path), flags).trains["lin"]
    assert str(config.optimizer) == "rmsprop(centered=true, lr=0.5)"
    assert config.hyperparameters["centered"] is True


# --- schedules ---------------------------------------------------------------------------------


def one_cycle_torch(max_lr, total, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
    """torch.optim.lr_scheduler.OneCycleLR's get_lr (two phases, cosine), for every step."""
    initial = max_lr / div_factor
    phases = [
        (float(pct_start * total) - 1, initial, max_lr),
        (float(total - 1), max_lr, initial / final_div_factor),
    ]
    rates = []
    for step in range(total):
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                rates.append(end + (start - end) / 2 * (math.cos(math.pi * pct) + 1))
                break
            start_step = end_step
    return rates


@pytest.mark.parametrize(
    ("opts", "step", "expected"),
    [
        ({}, 0, 0.1),
        ({"gamma": 0.9}, 1, 0.09),
        ({"gamma": 0.9}, 10, 0.1 * 0.9**10),
        ({"gamma": 0.9, "warmup": 4}, 1, 0.1 * 2 / 4),
        ({"gamma": 0.9, "warmup": 4}, 4, 0.1),
        ({"gamma": 0.9, "warmup": 4}, 7, 0.1 * 0.9**3),
    ],
)
def test_exponential_decays_every_step(opts, step, expected):
    lr = learning_rate("exponential", options("exponential", opts), 0.1, step, 100)
    assert lr == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("total", [100, 7, 1000])
def test_one_cycle_is_pytorchs(total):
    opts = options("one_cycle", {"max_lr": 0.4})
    got = [learning_rate("one_cycle", opts, 0.1, k, total) for k in range(total)]
    np.testing.assert_allclose(got, one_cycle_torch(0.4, total), rtol=1e-12)


@pytest.mark.parametrize(
    ("opts", "step", "expected"),
    [
        ({"max_lr": 0.4}, 0, 0.4 / 25),
        ({"max_lr": 0.4}, 29, 0.4),  # the peak, at pct_start·100 − 1
        ({"max_lr": 0.4}, 99, 0.4 / 25 / 1e4),
        ({"max_lr": 0.4}, 150, 0.4 / 25 / 1e4),  # past the end: stays at the floor
        ({}, 29, 0.1),  # max_lr 0: the optimiser's lr
        ({"pct_start": 0.5, "div_factor": 10, "final_div_factor": 100}, 49, 0.1),
        ({"pct_start": 0.5, "div_factor": 10, "final_div_factor": 100}, 99, 0.1 / 10 / 100),
        # warm-up ramps to where the cycle starts, and the cycle runs over the rest
        ({"max_lr": 0.4, "warmup": 10}, 4, 0.4 / 25 * 5 / 10),
        ({"max_lr": 0.4, "warmup": 10}, 10, 0.4 / 25),
        ({"max_lr": 0.4, "warmup": 10}, 10 + 26, 0.4),  # 0.3·90 − 1 steps after warm-up
    ],
)
def test_one_cycle_at_chosen_steps(opts, step, expected):
    lr = learning_rate("one_cycle", options("one_cycle", opts), 0.1, step, 100)
    assert lr == pytest.approx(expected, rel=1e-12)
