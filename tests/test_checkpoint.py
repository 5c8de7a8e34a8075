"""Training checkpoints: round trip, atomic writes, and every refusal of `load` and
`check_fits` as the user reads it."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from irnet import checkpoint
from irnet.checkpoint import (
    FORMAT,
    Checkpoint,
    check_fits,
    compare,
    fingerprint,
    latest,
    load,
    save,
)
from irnet.diagnostics import IrnError

MODEL = "mnist_mlp"


def sample() -> Checkpoint:
    rng = np.random.default_rng(7)
    return Checkpoint(
        params={
            "dense_0.w": rng.standard_normal((4, 3)).astype(np.float32),
            "dense_0.b": np.zeros(3, np.float64),
            "scale": np.array(2.5, np.float32),  # 0-d
            "ids": np.arange(5, dtype=np.int32),
            "mask": np.array([[True, False]]),
            "empty": np.zeros((0, 3), np.int64),
        },
        state={"batch_norm_0.running_var": np.full(3, 0.5, np.float32)},
        opt={"m.dense_0.w": np.ones((4, 3), np.float32), "t": np.array(12)},
        meta={
            "model": MODEL,
            "program": fingerprint("func.func @mnist_mlp.loss(...) { ... }"),
            "epoch": 3,
            "step": 1200,
            "config": {"optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999]}},
            "history": [
                {"epoch": 1, "step": 400, "loss": 2.31},
                {"epoch": 2, "step": 800, "loss": float("inf")},
                {"epoch": 3, "step": 1200, "loss": 1.05},
            ],
            "note": "élan ✓",
        },
    )


def expected_params(ckpt: Checkpoint) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {name: (value.shape, value.dtype) for name, value in ckpt.params.items()}


def expected_state(ckpt: Checkpoint) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {name: (value.shape, value.dtype) for name, value in ckpt.state.items()}


def assert_arrays_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name].dtype == value.dtype, name
        assert got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value)


def refusal(action, *args, **kwargs) -> str:
    """The message of the IrnError that `action` raises, checked to be one paragraph."""
    with pytest.raises(IrnError) as info:
        action(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- round trip ---------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    original = sample()
    save(tmp_path / "run-last.npz", original)
    loaded = load(tmp_path / "run-last.npz")
    assert_arrays_equal(loaded.params, original.params)
    assert_arrays_equal(loaded.state, original.state)
    assert_arrays_equal(loaded.opt, original.opt)
    assert loaded.meta == original.meta


def test_a_format_1_checkpoint_reads_its_state_as_the_optimizers(tmp_path):
    """Before model state, `state/` held the optimiser's moments and step count."""
    path = write_npz(tmp_path / "old.npz", format=np.array("irnet-checkpoint-1"))
    with np.load(path) as npz:
        entries = dict(npz)
    entries["state/t"] = np.array(3.0, np.float32)
    np.savez(path, **entries)
    loaded = load(path)
    assert loaded.state == {} and list(loaded.opt) == ["t"] and float(loaded.opt["t"]) == 3.0


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_rng_state_round_trips_exactly(tmp_path, bit_generator):
    rng = np.random.Generator(bit_generator(12345))
    rng.random(10)  # move away from the seeded state
    save(tmp_path / "c.npz", Checkpoint({}, {}, {"rng": rng.bit_generator.state}))

    restored = np.random.Generator(bit_generator())
    restored.bit_generator.state = load(tmp_path / "c.npz").meta["rng"]
    np.testing.assert_array_equal(restored.random(100), rng.random(100))
    np.testing.assert_array_equal(restored.integers(0, 2**62, 10), rng.integers(0, 2**62, 10))


def test_numpy_values_in_meta_are_stored_as_plain_json(tmp_path):
    meta = {"loss": np.float32(0.5), "step": np.int64(7), "curve": np.array([1.0, 2.0])}
    save(tmp_path / "c.npz", Checkpoint({}, {}, meta))
    assert load(tmp_path / "c.npz").meta == {"loss": 0.5, "step": 7, "curve": [1.0, 2.0]}


def test_file_layout(tmp_path):
    save(tmp_path / "c.npz", sample())
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert str(npz["format"]) == FORMAT
        assert npz["meta"].dtype == np.uint8
        assert json.loads(npz["meta"].tobytes())["model"] == MODEL
        assert {"param/dense_0.w", "param/scale", "state/batch_norm_0.running_var", "opt/t",
                "opt/m.dense_0.w"} <= set(npz.files)  # fmt: skip


def test_save_refuses_unstorable_input_before_touching_the_disk(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        save(tmp_path / "c.npz", Checkpoint({"w": np.array([{}], dtype=object)}))
    with pytest.raises(TypeError, match="JSON"):
        save(tmp_path / "c.npz", Checkpoint({}, {}, {"when": object()}))
    assert files_in(tmp_path) == []


# --- atomic writes ------------------------------------------------------------------------------


def test_save_creates_the_directory_and_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "runs" / "deep" / "c.npz"
    save(path, sample())
    newer = Checkpoint({"w": np.full(2, 9.0)}, {}, {"epoch": 4})
    save(path, newer)
    assert_arrays_equal(load(path).params, newer.params)
    assert load(path).meta == {"epoch": 4}
    assert files_in(path.parent) == ["c.npz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saved_file_has_an_ordinary_mode(tmp_path):
    save(tmp_path / "c.npz", sample())
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save(path, sample())
    before = path.read_bytes()

    def replace_fails(src, dst):
        assert Path(src).exists()  # the temporary file was complete when the rename failed
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(checkpoint.os, "replace", replace_fails)
    message = refusal(save, path, Checkpoint({"w": np.zeros(1)}))
    assert message == f"error: cannot write checkpoint {path}: Input/output error"
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["c.npz"]


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, failure):
    path = tmp_path / "c.npz"
    save(path, sample())
    before = path.read_bytes()

    def savez_fails_halfway(file, *args, **kwargs):
        file.write(before[: len(before) // 2])
        raise failure

    monkeypatch.setattr(checkpoint.np, "savez", savez_fails_halfway)
    with pytest.raises(type(failure)):
        save(path, Checkpoint({"w": np.zeros(1)}))
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["c.npz"]


def test_unwritable_directory_is_an_irn_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    message = refusal(save, tmp_path / "file" / "c.npz", sample())
    assert message.startswith(f"error: cannot write checkpoint {tmp_path / 'file' / 'c.npz'}: ")


# --- load refusals ------------------------------------------------------------------------------


def write_npz(path: Path, **entries) -> Path:
    """An archive as `save` would write it, with `entries` added, replaced or (None) removed."""
    arrays = {
        "format": np.array(FORMAT),
        "meta": np.frombuffer(b'{"epoch": 1}', np.uint8),
        "param/w": np.zeros(3, np.float32),
    }
    arrays.update(entries)
    with open(path, "wb") as f:
        np.savez(f, **{key: value for key, value in arrays.items() if value is not None})
    return path


def json_bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8)


def test_write_npz_makes_a_loadable_checkpoint(tmp_path):
    assert load(write_npz(tmp_path / "c.npz")).meta == {"epoch": 1}


BAD_ARCHIVES = {
    "no format": ({"format": None}, "it has no 'format' entry"),
    "no meta": ({"meta": None}, "it has no 'meta' entry"),
    "other version": (
        {"format": np.array("irnet-checkpoint-3")},
        "its format is 'irnet-checkpoint-3', and this version of irnet reads "
        "'irnet-checkpoint-2' and 'irnet-checkpoint-1'",
    ),
    "format not a string": ({"format": np.array(1)}, "its format is '<int64 array>'"),
    "meta not JSON": ({"meta": json_bytes("{epoch: 1")}, "its 'meta' entry is not valid JSON ("),
    "meta not UTF-8": ({"meta": np.array([0xFF, 0xFE], np.uint8)}, "is not valid JSON"),
    "meta not an object": ({"meta": json_bytes("[1, 2]")}, "is JSON but not an object"),
    "meta not bytes": ({"meta": np.zeros(3)}, "'meta' entry is not a byte array of JSON text"),
    "object array": (
        {"state/t": np.array([{"evil": 1}], dtype=object)},
        "entry 'state/t' is an object array, which only unpickling could read, "
        "and irnet never unpickles checkpoint data",
    ),
    "unexpected entry": ({"weights": np.zeros(1)}, "it has an unexpected entry 'weights'"),
}


@pytest.mark.parametrize("entries, problem", BAD_ARCHIVES.values(), ids=BAD_ARCHIVES.keys())
def test_load_refuses_a_bad_archive(tmp_path, entries, problem):
    path = write_npz(tmp_path / "c.npz", **entries)
    message = refusal(load, path)
    assert message.startswith(f"error: {path} is not a usable irnet checkpoint: ")
    assert problem in message


def test_load_refuses_a_member_that_is_not_an_array(tmp_path):
    path = write_npz(tmp_path / "c.npz")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("readme.txt", "hello")
    assert "entry 'readme.txt' is not a NumPy array" in refusal(load, path)


def test_load_refuses_a_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    assert refusal(load, path) == f"error: cannot read checkpoint {path}: No such file or directory"


def test_load_refuses_a_directory(tmp_path):
    assert refusal(load, tmp_path).startswith(f"error: cannot read checkpoint {tmp_path}: ")


@pytest.mark.parametrize("content", [b"", b"\x80\x04junk", os.urandom(300), b'{"epoch": 1}'])
def test_load_refuses_what_is_not_an_archive(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    assert refusal(load, path) == (
        f"error: {path} is not a usable irnet checkpoint: it is not an .npz (zip) archive."
    )


@pytest.mark.parametrize("fraction", [0.001, 0.1, 0.5, 0.9, 0.99])
def test_load_refuses_a_truncated_checkpoint(tmp_path, fraction):
    save(tmp_path / "full.npz", sample())
    data = (tmp_path / "full.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    message = refusal(load, path)
    assert message.startswith(f"error: {path} is not a usable irnet checkpoint: ")


def test_load_refuses_a_corrupted_entry(tmp_path):
    path = tmp_path / "c.npz"
    save(path, Checkpoint({"w": np.zeros(1000, np.float32)}))
    data = bytearray(path.read_bytes())
    data[data.index(b"\x00" * 1000) + 500] = 1  # inside param/w's data: its CRC fails
    path.write_bytes(bytes(data))
    assert "entry 'param/w' is damaged (Bad CRC-32" in refusal(load, path)


# --- fitting a program ---------------------------------------------------------------------------


def fit_refusal(ckpt: Checkpoint, model: str = MODEL, **tables) -> str:
    """The reason `check_fits` gives, after the common prefix (which it checks)."""
    tables.setdefault("params", expected_params(ckpt))
    tables.setdefault("state", expected_state(ckpt))
    message = refusal(check_fits, ckpt, Path("runs/c.npz"), model=model, **tables)
    assert message.startswith("error: cannot use checkpoint runs/c.npz")
    return message.split(f"does not match model '{model}': ", 1)[1]


def test_fitting_checkpoint_passes_and_every_parameter_is_loaded():
    ckpt = sample()
    fit = check_fits(ckpt, Path("c.npz"), model=MODEL, params=expected_params(ckpt),
                     state=expected_state(ckpt))  # fmt: skip
    assert fit.exact and fit.loaded == [*ckpt.params, *ckpt.state]


def test_only_the_arrays_decide_not_the_recorded_model_or_source():
    ckpt = sample()
    ckpt.meta.update(model="renamed", source_hash="0" * 64)
    tables = {"params": expected_params(ckpt), "state": expected_state(ckpt)}
    check_fits(ckpt, Path("c.npz"), model=MODEL, **tables)
    del ckpt.meta["model"]
    check_fits(ckpt, Path("c.npz"), model=MODEL, **tables)


def test_parameter_differences_are_named():
    ckpt = sample()
    params = expected_params(ckpt)
    del params["ids"]
    params["dense_1.w"] = ((3, 2), np.dtype(np.float32))
    params["dense_0.w"] = ((4, 5), np.dtype(np.float32))
    params["scale"] = ((), np.dtype(np.float64))
    params["mask"] = ((2,), np.dtype(np.int8))
    assert fit_refusal(ckpt, params=params) == (
        "parameter 'dense_1.w' is missing from the checkpoint; "
        "the checkpoint has an unexpected parameter 'ids'; "
        "parameter 'dense_0.w' has shape [4, 3] in the checkpoint but [4, 5] in the model; "
        "parameter 'scale' is float32 in the checkpoint but float64 in the model; "
        "parameter 'mask' has shape [1, 2] in the checkpoint but [2] in the model "
        "and is bool in the checkpoint but int8 in the model."
    )


def test_another_models_checkpoint_says_whose_it_is():
    ckpt = sample()
    message = refusal(check_fits, ckpt, Path("c.npz"), model="cifar_cnn", params={})
    assert message.startswith(
        f"error: cannot use checkpoint c.npz, written for model '{MODEL}', "
        "which does not match model 'cifar_cnn': the checkpoint has an unexpected parameter"
    )


def test_model_state_is_compared_as_the_weights_are():
    ckpt = sample()
    assert fit_refusal(ckpt, state={}) == (
        "the checkpoint has an unexpected state tensor 'batch_norm_0.running_var'."
    )
    wider = {"batch_norm_0.running_var": ((4,), np.dtype(np.float32))}
    assert fit_refusal(ckpt, state=wider) == (
        "state tensor 'batch_norm_0.running_var' has shape [3] in the checkpoint but [4] in "
        "the model."
    )


def test_optimizer_state_is_compared_when_given():
    ckpt = sample()
    state = {"m.dense_0.w": ((4, 3), np.dtype(np.float32)), "t": ((), np.dtype(np.int64))}
    check_fits(ckpt, Path("c.npz"), model=MODEL, params=expected_params(ckpt),
               state=expected_state(ckpt), opt=state)  # fmt: skip
    other = {"velocity.dense_0.w": ((4, 3), np.dtype(np.float32)), "t": ((), np.dtype(np.int64))}
    assert fit_refusal(ckpt, opt=other) == (
        "optimizer state 'velocity.dense_0.w' is missing from the checkpoint; "
        "the checkpoint has an unexpected optimizer state 'm.dense_0.w'. "
        "It was written with another optimizer: "
        "--init-from CKPT starts from its parameters with fresh optimizer state."
    )
    state["t"] = ((), np.dtype(np.float32))
    assert fit_refusal(ckpt, opt=state) == (
        "optimizer state 't' is int64 in the checkpoint but float32 in the optimizer. "
        "It was written with another optimizer: "
        "--init-from CKPT starts from its parameters with fresh optimizer state."
    )


def test_many_differences_are_summarised():
    params = {f"layer_{i}.w": ((1,), np.dtype(np.float32)) for i in range(8)}
    message = fit_refusal(sample(), params=params)
    assert message.count("; ") == 5
    # 8 missing and 6 unexpected parameters: 14 differences, 5 of them listed
    assert message.endswith("; and 9 more differences.")


def test_compare_reports_what_a_non_strict_load_takes():
    ckpt = sample()
    params = expected_params(ckpt)
    del params["ids"]
    params["dense_1.w"] = ((3, 2), np.dtype(np.float32))
    params["dense_0.w"] = ((4, 5), np.dtype(np.float32))
    fit = compare(ckpt.params, params)
    assert not fit.exact
    assert fit.loaded == ["dense_0.b", "scale", "mask", "empty"]
    assert (fit.missing, fit.unexpected, list(fit.mismatched)) == (
        ["dense_1.w"],
        ["ids"],
        ["dense_0.w"],
    )
    assert fit.report() == [
        "loaded 4 parameters: dense_0.b, scale, mask, empty",
        "missing, left as initialised: dense_1.w",
        "unexpected, ignored: ids",
        "not loaded, left as initialised: 'dense_0.w' "
        "has shape [4, 3] in the checkpoint but [4, 5] in the model",
    ]


# --- fingerprint and latest ---------------------------------------------------------------------


def test_fingerprint():
    assert len(fingerprint("a")) == 64 and fingerprint("a") == fingerprint("a")
    assert fingerprint("a") != fingerprint("b")
    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert fingerprint("main", "lib") != fingerprint("lib", "main")


def touch(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for age, name in enumerate(names):
        (directory / name).write_bytes(b"")
        os.utime(directory / name, (1_000_000 - age, 1_000_000 - age))  # later names are older


def test_latest_picks_the_highest_epoch_not_the_newest_file(tmp_path):
    touch(tmp_path, "run-epoch2.npz", "run-epoch10.npz", "run-epoch9.npz")
    touch(tmp_path, "other-epoch99.npz", "run-epoch11.npz.tmp", ".run-epoch12.npz.x.tmp")
    (tmp_path / "run-epoch50.npz").mkdir()
    assert latest(tmp_path, "run") == tmp_path / "run-epoch10.npz"


def test_latest_prefers_the_last_checkpoint(tmp_path):
    touch(tmp_path, "run-epoch3.npz", "run-last.npz")
    assert latest(tmp_path, "run") == tmp_path / "run-last.npz"


def test_latest_treats_the_prefix_literally(tmp_path):
    touch(tmp_path, "a.b-epoch1.npz", "axb-epoch7.npz")
    assert latest(tmp_path, "a.b") == tmp_path / "a.b-epoch1.npz"


def test_latest_finds_nothing(tmp_path):
    assert latest(tmp_path / "missing", "run") is None
    touch(tmp_path, "run.npz", "run-epoch.npz", "run-epochx.npz")
    assert latest(tmp_path, "run") is None


# --- metadata -------------------------------------------------------------------------------------


def trainer_meta() -> dict:
    """Metadata as the trainer writes it after epoch 2 of 3, at 5 steps an epoch."""
    return {
        "model": "tiny",
        "epoch": 2,
        "step": 10,
        "program": fingerprint("tiny"),
        "config": {"epochs": 3, "batch": 16, "seed": 7},
        "rng": {"seed": 7, "derivation": "params (seed, name); shuffle (seed, epoch)"},
        "history": [{"epoch": 1, "step": 5, "loss": 0.9}, {"epoch": 2, "step": 10, "loss": 0.5}],
    }


BAD_META = {  # what the meta holds: (field, value), then the field and value the refusal names
    "epoch text": ("epoch", "abc", "'epoch' is \"abc\""),
    "epoch digits": ("epoch", "1", "'epoch' is \"1\""),
    "epoch fraction": ("epoch", 1.7, "'epoch' is 1.7"),
    "epoch bool": ("epoch", True, "'epoch' is true"),
    "epoch negative": ("epoch", -1, "'epoch' is -1"),
    "epoch huge": ("epoch", 10**30, "'epoch' is 1000000000000000000000000000000"),
    "epoch vs history": ("epoch", 3, "'epoch' is 3, which disagrees with its 2 history"),
    "step negative": ("step", -5, "'step' is -5"),
    "step vs history": ("step", 11, "'step' is 11, which disagrees with its last record's step"),
    "history number": ("history", 42, "'history' is 42"),
    "history text": ("history", "garbage", "'history' is \"garbage\""),
    "history record": ("history", [1, 2], "'history' is [1, 2], which has record 0"),
    "history value": (
        "history",
        [{"epoch": 1, "loss": "x"}],
        '\'history\' is [{"epoch": 1, "loss": "x"}], which has record 0',
    ),
    "history order": ("history", [{"epoch": 2}, {"epoch": 1}], "'history[0].epoch' is 2"),
    "config": ("config", [], "'config' is []"),
    "config epochs": ("config", {"epochs": 0}, "'config' is {\"epochs\": 0}, which has epochs 0"),
    "rng": ("rng", "pcg", "'rng' is \"pcg\""),
    "rng seed": ("rng", {"seed": 8}, "'rng.seed' is 8, which differs from config.seed, 7"),
    "model": ("model", 3, "'model' is 3"),
    "program": ("program", "abc", "'program' is \"abc\""),
}


@pytest.mark.parametrize("field, value, named", BAD_META.values(), ids=BAD_META.keys())
def test_load_refuses_bad_metadata_naming_the_file_field_and_value(tmp_path, field, value, named):
    path = tmp_path / "tiny-last.npz"
    save(path, Checkpoint({"w": np.zeros(3)}, meta={**trainer_meta(), field: value}))
    message = refusal(load, path)
    assert f"{path} is not a usable irnet checkpoint: its metadata field {named}" in message
    assert "\n" not in message


def test_trainer_metadata_and_partial_metadata_load(tmp_path):
    """Only fields present are checked: `eval` and `--init-from` read the parameters alone."""
    for meta in (trainer_meta(), {}, {"epoch": 0}, {"note": "unknown fields are kept"}):
        save(tmp_path / "c.npz", Checkpoint({"w": np.zeros(3)}, meta=meta))
        assert load(tmp_path / "c.npz").meta == meta


def test_require_meta_names_what_is_missing(tmp_path):
    meta = trainer_meta()
    del meta["step"], meta["history"]
    message = refusal(checkpoint.require_meta, tmp_path / "c.npz", meta, ["epoch", "step",
                      "history"], "--resume")  # fmt: skip
    assert "its metadata has no 'step', 'history', which --resume needs" in message


# --- temp files left by killed writers -----------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead, live = dead_pid(), os.getppid()
    names = {
        f".tiny-last.npz.{dead}.ab12cd_x.tmp": False,  # a killed writer's
        f".tiny-epoch3.npz.{os.getpid()}.zz9.tmp": False,  # ours, reused: we write nothing yet
        f".tiny-last.npz.{live}.q1w2e3.tmp": True,  # a live writer's
        f".tiny-last.npz.{dead}.tmp": True,  # not irnet's pattern
        "tiny-last.npz": True,
        f"notes.{dead}.x.tmp": True,
    }
    touch(tmp_path, *names)
    removed = checkpoint.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, kept in names.items() if not kept)
    assert files_in(tmp_path) == sorted(n for n, kept in names.items() if kept)
    assert checkpoint.remove_stale_temporaries(tmp_path / "absent") == []


def test_the_temp_file_carries_the_writers_pid(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(os, "replace", lambda src, dst: seen.append(Path(src).name))
    save(tmp_path / "tiny-last.npz", sample())
    assert seen[0].startswith(f".tiny-last.npz.{os.getpid()}.") and seen[0].endswith(".tmp")


# --- weights as safetensors ----------------------------------------------------------------------


def test_weights_round_trip_through_safetensors_that_other_tools_read(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    params = sample().params
    path = tmp_path / "weights.safetensors"
    checkpoint.save_weights(path, params, MODEL)
    read_by_other_tools = safetensors_numpy.load_file(str(path))
    loaded = load(path)
    assert set(read_by_other_tools) == set(loaded.params) == set(params)
    for name, value in params.items():
        assert loaded.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.params[name], value)
        np.testing.assert_array_equal(read_by_other_tools[name], value)
    assert loaded.state == {} and loaded.meta == {}
    with_state = tmp_path / "with_state.safetensors"
    checkpoint.save_weights(with_state, params, MODEL, sample().state)
    assert_arrays_equal(load(with_state).state, sample().state)
    assert_arrays_equal(load(with_state).params, params)
    with open(path, "rb") as f:  # the header names irnet's format and the model
        header = f.read(8 + int.from_bytes(f.read(8), "little"))
    assert b'"format":"irnet-weights-1"' in header and b'"model":"mnist_mlp"' in header


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"\xff" * 8 + b"{}", (16).to_bytes(8, "little") + b'{"a": 1}   ']
)
def test_a_damaged_safetensors_file_is_refused_in_one_line(tmp_path, content):
    pytest.importorskip("safetensors")
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(IrnError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"error: {path} is not a usable .safetensors file: ")
    assert "\n" not in message


def test_weights_that_do_not_fit_are_refused_naming_them(tmp_path):
    pytest.importorskip("safetensors")
    params = sample().params
    path = tmp_path / "weights.safetensors"
    checkpoint.save_weights(path, {**params, "dense_0.w": np.zeros((4, 4), np.float32)}, MODEL)
    expected = {name: (value.shape, value.dtype) for name, value in params.items()}
    with pytest.raises(IrnError, match=r"'dense_0.w' has shape \[4, 4\] in the checkpoint"):
        check_fits(load(path), path, model=MODEL, params=expected)
