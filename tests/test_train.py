"""Training: each optimiser's IR update against its formula in NumPy, schedules, train-block
settings and flags, determinism, exact resume, refused checkpoints, anomaly detection, and the
console commands end to end on a tiny model."""

from __future__ import annotations

import gzip
import json
import subprocess

import numpy as np
import pytest
from conftest import ROOT, console_script, subprocess_env

from irnet import driver, reference, train
from irnet.diagnostics import IrnError
from irnet.model import open_session
from irnet.schedules import learning_rate, options

TINY = """
from nn import dense, cross_entropy

model tiny(x: DTYPE[N, 4]) -> DTYPE[N, 3] {
    return dense(tanh(dense(x, 8)), 3)
}

train tiny(y: i32[N]) {
    data      = npz("tiny.npz", x="x", y="y")
    loss      = cross_entropy(tiny(x), y)
    optimizer = OPTIMIZER
    batch     = 16
    epochs    = 3
    metrics   = [accuracy]
    val_split = 0.25
    seed      = 7
}
"""


@pytest.fixture
def tiny(tmp_path):
    """Write the tiny model and a separable data set; return a function giving its path."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(4, 3)), axis=1).astype(np.int32)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)

    def write(optimizer: str = "adam(lr=0.02)", name: str = "tiny.irn", dtype="f32") -> str:
        path = tmp_path / name
        path.write_text(TINY.replace("OPTIMIZER", optimizer).replace("DTYPE", dtype))
        return str(path)

    return write


# --- optimisers --------------------------------------------------------------------------------


def reference_update(name, hp, p, g, slots, lr, t):
    """torch.optim's formulas, written directly."""
    if hp.get("clip_norm"):
        norm = np.sqrt(sum(np.sum(gi * gi) for gi in g))
        g = [gi * min(1.0, hp["clip_norm"] / (norm + 1e-6)) for gi in g]
    new_p, new_slots = [], []
    for pi, gi, si in zip(p, g, slots):
        decay = hp.get("weight_decay", 0.0)
        if name != "adamw":
            gi = gi + decay * pi
        if name == "sgd":
            new_p.append(pi - lr * gi)
            new_slots.append({})
        elif name in ("momentum", "nesterov"):
            v = hp["momentum"] * si["velocity"] + gi
            step = gi + hp["momentum"] * v if name == "nesterov" else v
            new_p.append(pi - lr * step)
            new_slots.append({"velocity": v})
        else:
            b1, b2 = hp["beta1"], hp["beta2"]
            m = b1 * si["m"] + (1 - b1) * gi
            v = b2 * si["v"] + (1 - b2) * gi * gi
            m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
            q = pi - lr * m_hat / (np.sqrt(v_hat) + hp["eps"])
            if name == "adamw":
                q = q - lr * decay * pi
            new_p.append(q)
            new_slots.append({"m": m, "v": v})
    return new_p, new_slots


OPTIMIZER_CASES = [
    "sgd(lr=0.1)",
    "sgd(lr=0.1, weight_decay=0.01)",
    "momentum(lr=0.05, momentum=0.8)",
    "nesterov(lr=0.05, momentum=0.9, weight_decay=0.001)",
    "adam(lr=0.003, beta1=0.8, beta2=0.99, eps=0.000001)",
    "adam(lr=0.003, clip_norm=0.5)",
    "adamw(lr=0.003, weight_decay=0.1)",
]


@pytest.mark.parametrize("optimizer", OPTIMIZER_CASES)
def test_update_matches_the_formula(tiny, optimizer):
    compiled = driver.load(tiny(optimizer, dtype="f64"))  # f64: exact constants
    config = compiled.trains["tiny"]
    module = driver.run_passes(compiled.module, ",".join(driver.PIPELINE))
    update = reference.Reference(module, float_dtype=np.float64)
    fn = update.function("tiny.update")
    from irnet.params import arguments

    args = arguments(fn)
    rng = np.random.default_rng(1)
    values = {a.name: rng.normal(size=a.type.get_shape()) for a in args}
    params = [a for a in args if a.kind == "param"]
    slot_names = [
        n for n in ("velocity", "m", "v") if any(a.name.startswith(n + ".") for a in args)
    ]
    for a in args:
        if a.name.startswith("v."):
            values[a.name] = np.abs(values[a.name])  # a second moment is non-negative
    t, lr = 4.0, 0.003 if "adam" in optimizer else 0.07
    values["t"], values["lr"] = np.asarray(t), np.asarray(lr)
    outputs = update.run("tiny.update", [values[a.name] for a in args])
    hp = config.hyperparameters
    p = [values[a.name] for a in params]
    g = [values[f"{a.name}"] for a in args if a.kind == "grad"]
    slots = [{s: values[f"{s}.{a.name}"] for s in slot_names} for a in params]
    want_p, want_slots = reference_update(config.optimizer.name, hp, p, g, slots, lr, t)
    got_p = outputs[: len(params)]
    got_slots = outputs[len(params) : -1]
    for got, want in zip(got_p, want_p):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    flat = [s[name] for s in want_slots for name in slot_names]
    for got, want in zip(got_slots, flat):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert outputs[-1] == t + 1


@pytest.mark.parametrize(
    ("name", "opts", "step", "total", "expected"),
    [
        ("constant", {}, 50, 100, 0.1),
        ("constant", {"warmup": 10}, 4, 100, 0.1 * 5 / 10),
        ("step", {"every": 30, "gamma": 0.5}, 65, 100, 0.1 * 0.25),
        ("cosine", {}, 0, 100, 0.1),
        ("cosine", {}, 50, 100, 0.05),
        ("cosine", {"min_lr": 0.01}, 100, 100, 0.01),
        ("cosine", {"warmup": 20}, 60, 100, 0.05),
    ],
)
def test_schedules(name, opts, step, total, expected):
    lr = learning_rate(name, options(name, opts), 0.1, step, total)
    assert lr == pytest.approx(expected)


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        ("adamm(lr=0.1)", "unknown optimizer 'adamm'; did you mean 'adam'"),
        ("adam(momentum=0.9)", "adam has no hyperparameter 'momentum'"),
        ("sgd(0.1)", "give sgd's settings by name"),
        ('sgd(lr="fast")', "lr must be a number"),
    ],
)
def test_bad_optimizer_is_a_located_error(tiny, optimizer, message):
    with pytest.raises(IrnError, match=message) as info:
        driver.load(tiny(optimizer))
    assert info.value.loc is not None and info.value.loc.line == 11  # the optimizer line


def test_flags_override_the_block(tiny):
    flags = {"epochs": 5, "lr": 0.5, "optimizer": "momentum", "schedule": "cosine(warmup=3)"}
    config = driver.load(tiny(), flags).trains["tiny"]
    assert (config.epochs, config.optimizer.name, config.schedule.name) == (5, "momentum", "cosine")
    assert config.hyperparameters["lr"] == 0.5
    with pytest.raises(IrnError, match="batch must be a positive integer"):
        driver.load(tiny(), {"batch": 0})
    with pytest.raises(IrnError, match="--optimizer:1:5: error"):
        driver.load(tiny(), {"optimizer": "adam("})


# --- determinism, resume, checkpoints ----------------------------------------------------------


def run_training(path, tmp_path, epochs, resume=None, seed=None, stop_after=None):
    session = open_session(path, {"epochs": epochs, "seed": seed})
    options = train.TrainOptions(
        checkpoint_dir=tmp_path / "ckpt", resume=resume, stop_after=stop_after
    )
    metrics = train.train(session, options)
    return session, metrics


def test_same_seed_same_numbers_other_seed_other_numbers(tiny, tmp_path):
    a, _ = run_training(tiny(), tmp_path, 2)
    b, _ = run_training(tiny(), tmp_path, 2)
    c, _ = run_training(tiny(), tmp_path, 2, seed=8)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert any(not np.array_equal(a.params[n], c.params[n]) for n in a.params)


def test_resume_is_bit_for_bit(tiny, tmp_path):
    """With a schedule that depends on the total length: stopping must not change it."""
    path = tiny("adam(lr=0.02)").replace("tiny.irn", "cosine.irn")
    with open(path, "w") as f:
        f.write(TINY.replace("OPTIMIZER", "adam(lr=0.02)\n    schedule = cosine()")
                .replace("DTYPE", "f32"))  # fmt: skip
    straight, _ = run_training(path, tmp_path / "a", 3)
    stopped, _ = run_training(path, tmp_path / "b", 3, stop_after=2)
    assert stopped.epoch == 2
    resumed, _ = run_training(path, tmp_path / "b", 3, resume="latest")
    assert resumed.step == straight.step
    for name in straight.params:
        np.testing.assert_array_equal(straight.params[name], resumed.params[name])
    for name in straight.state:
        np.testing.assert_array_equal(straight.state[name], resumed.state[name])


def test_training_learns(tiny, tmp_path):
    session, _ = run_training(tiny("adam(lr=0.05)"), tmp_path, 10)
    history = session.history
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 0.8


def test_checkpoint_of_another_model_is_refused(tiny, tmp_path):
    run_training(tiny(), tmp_path, 1)
    other = tiny().replace("tiny.irn", "other.irn")
    with open(other, "w") as f:
        f.write(
            TINY.replace("OPTIMIZER", "adam").replace("DTYPE", "f32").replace("(x, 8)", "(x, 9)")
        )
    session = open_session(other)
    before = {k: v.copy() for k, v in session.params.items()}
    with pytest.raises(IrnError, match="does not match model"):
        session.restore(tmp_path / "ckpt" / "tiny-last.npz")
    for name, value in before.items():
        np.testing.assert_array_equal(session.params[name], value)


def test_detect_anomaly_names_the_line(tmp_path):
    np.savez(
        tmp_path / "d.npz", x=np.full((8, 2), -1.0, np.float32), y=np.zeros((8, 1), np.float32)
    )
    path = tmp_path / "bad.irn"
    path.write_text(
        "from nn import dense, mse\n"
        "model bad(x: f32[N, 2]) -> f32[N, 1] {\n"
        "    return dense(log(x), 1)\n"
        "}\n"
        "train bad(y: f32[N, 1]) {\n"
        '    data = npz("d.npz", x="x", y="y")\n'
        "    loss = mse(bad(x), y)\n"
        "}\n"
    )
    session = open_session(str(path))
    with pytest.raises(IrnError, match="nn.log: produced NaN") as info:
        train.train(session, train.TrainOptions(detect_anomaly=True))
    assert (info.value.loc.line, info.value.loc.column) == (3, 18)


# --- the console commands ----------------------------------------------------------------------


def irnet(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script("irnet"), *args],
        capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=cwd,
    )  # fmt: skip


def test_train_eval_predict_end_to_end(tiny, tmp_path):
    path = tiny()
    ckpt = tmp_path / "ck"
    log = tmp_path / "log.jsonl"
    result = irnet("train", path, "--checkpoint-dir", str(ckpt), "--log", str(log),
                   "--plot", str(tmp_path / "curves.png"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "epoch 3/3" in result.stdout and "val acc" in result.stdout
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2, 3]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    checkpoint = ckpt / "tiny-last.npz"
    evaluated = irnet("eval", path, "--checkpoint", str(checkpoint), "--part", "validation")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "validation acc" in evaluated.stdout
    np.save(tmp_path / "x.npy", np.zeros((5, 4), np.float32))
    out = tmp_path / "y.npy"
    predicted = irnet("predict", path, "--checkpoint", str(checkpoint), "--input",
                      str(tmp_path / "x.npy"), "-o", str(out))  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert np.load(out).shape == (5, 3)


def test_corrupt_checkpoint_is_a_clean_error(tiny, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    result = irnet("eval", tiny(), "--checkpoint", str(bad))
    assert result.returncode == 1
    assert "not a usable irnet checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_predict_scales_inputs_as_the_training_data(tmp_path):
    """linreg's data is csv(..., normalize=true): raw rows given to predict are standardised
    with the training data's statistics before the model sees them."""
    session, _ = run_training(str(ROOT / "examples" / "linreg.irn"), tmp_path, 1)
    dataset = train.load_data(session)
    with gzip.open(ROOT / "data" / "diabetes" / "diabetes_data_raw.csv.gz") as f:
        raw = np.loadtxt(f)[:5]
    expected = session.predict([dataset.inputs[0][:5]], 8)
    got = session.predict(session.normalized([raw.astype(np.float32)]), 8)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)  # float32 rounding


# --- data choices: shuffle, eval's default part ------------------------------------------------


def targets_seen(session, monkeypatch) -> list[int]:
    """Train `session` one epoch; the training targets in the order its steps saw them."""
    seen, step = [], session.train_step

    def recording(inputs, targets, *rest):
        seen.extend(targets[0].tolist())
        return step(inputs, targets, *rest)

    monkeypatch.setattr(session, "train_step", recording)
    train.train(session, train.TrainOptions())
    return seen


def test_shuffle_false_trains_in_order(tiny, tmp_path, monkeypatch):
    block = TINY.replace("OPTIMIZER", "adam").replace("DTYPE", "f32")  # tiny writes its data
    path = tmp_path / "ordered.irn"
    path.write_text(
        block.replace("    seed      = 7\n", "    seed      = 7\n    shuffle   = false\n")
    )
    ordered = open_session(str(path), {"epochs": 1})
    in_order = train.splits(ordered)[0].targets[0].tolist()
    assert targets_seen(ordered, monkeypatch) == in_order
    shuffled = targets_seen(open_session(str(path), {"epochs": 1, "shuffle": True}), monkeypatch)
    assert shuffled != in_order and sorted(shuffled) == sorted(in_order)


def test_eval_without_part_picks_a_part_the_data_has(tiny, tmp_path, capsys):
    from irnet import cli

    path = tiny()  # npz data: no test part; val_split = 0.25 of 96 examples
    run_training(path, tmp_path, 1)
    checkpoint = str(tmp_path / "ckpt" / "tiny-last.npz")
    assert cli.main(["eval", path, "--checkpoint", checkpoint]) == 0
    out = capsys.readouterr().out
    assert "evaluating the validation part (no --part given; the data has no test part)" in out
    assert "(validation, 24 examples): validation loss" in out
    assert cli.main(["eval", path, "--checkpoint", checkpoint, "--val-split", "0"]) == 0
    out = capsys.readouterr().out
    assert "evaluating the train part (no --part given; the data has no test part and" in out
    assert "(train, 96 examples): train loss" in out
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "t10k-images-idx3-ubyte.gz").touch()  # only whether the part is there
    session = open_session(path, {"data": 'mnist("m")'})
    assert cli.default_part(session) == ("test", "the data has a test part")


# --- checkpoints keyed by what they hold -------------------------------------------------------

EDITED = (
    "# tiny, with comments, other spacing and a new function: no parameter changes\n"
    + TINY.replace("OPTIMIZER", "adam(lr=0.02)")
    .replace("DTYPE", "f32")
    .replace("    return dense(", "    # the hidden layer\n    return   dense(")
    + "\nmodel unrelated(x: f32[N, 2]) -> f32[N, 2] {\n    return x\n}\n"
)


def test_editing_comments_formatting_or_other_functions_keeps_the_checkpoint(
    tiny, tmp_path, capsys
):
    straight, _ = run_training(tiny(), tmp_path / "a", 2)
    run_training(tiny(), tmp_path / "b", 2, stop_after=1)
    edited = tmp_path / "edited.irn"
    edited.write_text(EDITED)
    capsys.readouterr()
    resumed, _ = run_training(str(edited), tmp_path / "b", 2, resume="latest")
    assert "resumed from" in capsys.readouterr().out
    for name in straight.params:
        np.testing.assert_array_equal(straight.params[name], resumed.params[name])
    assert "note:" not in capsys.readouterr().out  # nothing changed that a note would name


def test_a_changed_shape_is_refused_naming_the_parameter(tiny, tmp_path):
    run_training(tiny(), tmp_path, 1)
    wider = tmp_path / "wider.irn"
    wider.write_text(TINY.replace("OPTIMIZER", "adam").replace("DTYPE", "f32").replace("8", "9"))
    with pytest.raises(IrnError) as info:
        open_session(str(wider)).owner.load(tmp_path / "ckpt" / "tiny-last.npz")
    assert str(info.value).endswith(
        "which does not match model 'tiny': "
        "parameter 'dense_0.w' has shape [4, 8] in the checkpoint but [4, 9] in the model; "
        "parameter 'dense_0.b' has shape [8] in the checkpoint but [9] in the model; "
        "parameter 'dense_1.w' has shape [8, 3] in the checkpoint but [9, 3] in the model."
    )


def test_resume_needs_the_same_optimizer_state_and_notes_a_changed_loss(tiny, tmp_path, capsys):
    run_training(tiny("adam(lr=0.02)"), tmp_path, 2, stop_after=1)
    with pytest.raises(IrnError, match="It was written with another optimizer: --init-from"):
        run_training(tiny("momentum(lr=0.02)", name="momentum.irn"), tmp_path, 2, resume="latest")
    changed = tmp_path / "changed.irn"
    changed.write_text(EDITED.replace("tanh", "relu"))
    capsys.readouterr()
    resumed, _ = run_training(str(changed), tmp_path, 2, resume="latest")
    assert resumed.epoch == 2
    assert "note: the model or its loss computes differently" in capsys.readouterr().out


def init_from(path, checkpoint, strict=True):
    session = open_session(path, {"epochs": 1})
    train.train(session, train.TrainOptions(init_from=checkpoint, strict=strict))
    return session


def test_init_from_takes_the_parameters_alone(tiny, tmp_path, capsys):
    trained, _ = run_training(tiny(), tmp_path, 2)
    capsys.readouterr()
    still = tiny("momentum(lr=0)", name="still.irn")
    session = init_from(still, tmp_path / "ckpt" / "tiny-last.npz")
    out = capsys.readouterr().out
    assert "loaded 4 parameters: dense_0.w, dense_0.b, dense_1.w, dense_1.b" in out
    assert "epoch 1/1" in out  # from epoch 0, with fresh optimizer state
    for name in trained.params:  # lr 0: what it started from is what it ends with
        np.testing.assert_array_equal(session.params[name], trained.params[name])


def test_init_from_non_strict_loads_what_fits_and_reports_the_rest(tiny, tmp_path, capsys):
    run_training(tiny(), tmp_path, 1)
    wider = tmp_path / "wider.irn"
    wider.write_text(TINY.replace("OPTIMIZER", "adam").replace("DTYPE", "f32").replace("8", "9"))
    checkpoint = tmp_path / "ckpt" / "tiny-last.npz"
    with pytest.raises(IrnError, match="parameter 'dense_0.w' has shape"):
        init_from(str(wider), checkpoint)
    capsys.readouterr()
    session = open_session(str(wider), {"epochs": 1})
    fit = session.owner.load(checkpoint, strict=False)
    assert fit.loaded == ["dense_1.b"]
    assert list(fit.mismatched) == ["dense_0.w", "dense_0.b", "dense_1.w"]
    loaded = ckpt_params(checkpoint)["dense_1.b"]
    np.testing.assert_array_equal(session.params["dense_1.b"], loaded)
    init_from(str(wider), checkpoint, strict=False)
    out = capsys.readouterr().out
    assert f"initialised from {checkpoint}: loaded 1 parameter: dense_1.b\n" in out
    assert "not loaded, left as initialised: 'dense_0.w' has shape [4, 8]" in out


def ckpt_params(path) -> dict[str, np.ndarray]:
    from irnet import checkpoint

    return checkpoint.load(path).params


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a checkpoint", "it is not an .npz (zip) archive"),
        ("arrays", "it has no 'format' entry"),
        ("truncated", "it is a damaged or truncated archive"),
    ],
)
def test_init_from_a_file_that_is_not_a_checkpoint_is_one_clear_error(
    tiny, tmp_path, content, problem
):
    bad = tmp_path / "bad.npz"
    if content == "arrays":
        np.savez(bad, w=np.zeros(3))
    elif content == "truncated":
        run_training(tiny(), tmp_path, 1)
        bad.write_bytes((tmp_path / "ckpt" / "tiny-last.npz").read_bytes()[:-100])
    else:
        bad.write_bytes(content)
    with pytest.raises(IrnError) as info:
        init_from(tiny(), bad)
    assert str(info.value).startswith(f"error: {bad} is not a usable irnet checkpoint: {problem}")


def test_run_and_predict_use_a_checkpoints_weights(tiny, tmp_path, capsys):
    from irnet.cli import main

    trained, _ = run_training(tiny(), tmp_path, 2)
    checkpoint = str(tmp_path / "ckpt" / "tiny-last.npz")
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    want = trained.predict([x], 16)
    assert main(["run", tiny(), "--checkpoint", checkpoint, "-i", f"x={tmp_path / 'x.npy'}",
                 "-o", str(tmp_path / "run.npy")]) == 0  # fmt: skip
    assert main(["predict", tiny(), "--checkpoint", checkpoint, "--input",
                 str(tmp_path / "x.npy"), "-o", str(tmp_path / "predict.npy")]) == 0  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "run.npy"), want)
    np.testing.assert_array_equal(np.load(tmp_path / "predict.npy"), want)
    wider = tmp_path / "wider.irn"
    wider.write_text(TINY.replace("OPTIMIZER", "adam").replace("DTYPE", "f32").replace("8", "9"))
    capsys.readouterr()
    for command in (["run", str(wider), "-i", f"x={tmp_path / 'x.npy'}"],
                    ["predict", str(wider), "--input", str(tmp_path / "x.npy")]):  # fmt: skip
        assert main([*command, "--checkpoint", checkpoint]) == 1
        assert "parameter 'dense_0.w' has shape [4, 8]" in capsys.readouterr().err


def scripted_validation(monkeypatch, losses: list[float]) -> None:
    """Validation losses as given, epoch by epoch, whatever the model does."""
    values = iter(losses)
    monkeypatch.setattr(
        train.Session, "evaluate", lambda self, d, b: {"loss": next(values), "accuracy": 0.5}
    )


def test_early_stopping_stops_after_patience_epochs_without_improvement(
    tiny, tmp_path, monkeypatch, capsys
):
    scripted_validation(monkeypatch, [3.0, 1.0, 1.0, 2.0, 0.5, 0.1])
    session = open_session(tiny(), {"epochs": 6, "patience": 2})
    train.train(session, train.TrainOptions())
    assert session.epoch == 4 and [r["val_loss"] for r in session.history] == [3, 1, 1, 2]
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        "stopping early after epoch 4: val_loss has not improved for 2 epochs "
        "(best 1.0000 after epoch 2)"
    )
    assert "continue with --resume" not in out


def test_accuracy_improves_upwards_and_a_resumed_run_remembers_its_patience(
    tiny, tmp_path, monkeypatch
):
    values = iter([0.5, 0.7, 0.6, 0.7, 0.9])
    monkeypatch.setattr(
        train.Session, "evaluate", lambda self, d, b: {"loss": 1.0, "accuracy": next(values)}
    )
    flags = {"epochs": 5, "patience": 2, "monitor": "val_accuracy"}
    session = open_session(tiny(), flags)
    train.train(session, train.TrainOptions(checkpoint_dir=tmp_path, stop_after=3))
    resumed = open_session(tiny(), flags)
    train.train(resumed, train.TrainOptions(checkpoint_dir=tmp_path, resume="latest"))
    assert resumed.epoch == 4  # 0.7 after epoch 2, then 0.6 and 0.7 do not beat it


def test_keep_best_writes_the_best_epochs_weights(tiny, tmp_path, monkeypatch):
    scripted_validation(monkeypatch, [3.0, 1.0, 2.0, 1.5])
    session = open_session(tiny(), {"epochs": 4, "keep_best": True})
    train.train(session, train.TrainOptions(checkpoint_dir=tmp_path))
    best = ckpt_params(tmp_path / "tiny-best.npz")
    for name, value in ckpt_params(tmp_path / "tiny-epoch2.npz").items():
        np.testing.assert_array_equal(best[name], value)
    assert not np.array_equal(best["dense_0.w"], session.to_host(session.params)["dense_0.w"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"monitor": "val_loss", "val_split": 0}, "monitor val_loss: the epoch log has no "
         "val_loss (validation metrics need validation data: val_split, --val-split or "
             "validation_data=); it has train_loss"),
        ({"monitor": "val_mae"}, "monitor val_mae: the epoch log has no val_mae; it has "
         "train_loss, val_loss, val_accuracy"),
    ],
)  # fmt: skip
def test_a_monitor_the_log_does_not_have_is_an_error_before_training(
    tiny, tmp_path, flags, message
):
    session = open_session(tiny(), flags)
    with pytest.raises(IrnError) as info:
        train.train(session, train.TrainOptions(checkpoint_dir=tmp_path / "ckpt"))
    assert str(info.value) == f"error: {message}"
    assert session.step == 0 and not (tmp_path / "ckpt").exists()


def failing_step(self, *args, **kwargs):
    raise IrnError("the step failed")


@pytest.mark.parametrize("failure", ["monitor", "init_from", "step", "keep_best"])
def test_a_run_that_fails_before_its_first_epoch_ends_leaves_checkpoints_untouched(
    tiny, tmp_path, monkeypatch, failure
):
    run_training(tiny(), tmp_path, 2)
    directory = tmp_path / "ckpt"
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    flags, options = {"epochs": 3}, train.TrainOptions(checkpoint_dir=directory)
    if failure == "monitor":
        flags["monitor"] = "val_top5_accuracy"
    elif failure == "init_from":
        (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
        options.init_from = tmp_path / "bad.npz"
    elif failure == "keep_best":
        flags["keep_best"] = True
        options.checkpoint_dir = None
    else:
        monkeypatch.setattr(train.Session, "train_step", failing_step)
    with pytest.raises(IrnError):
        train.train(open_session(tiny(), flags), options)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
