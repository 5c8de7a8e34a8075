"""Faults a training run survives, with real processes: SIGKILL at any moment (during a
checkpoint write too) leaves only loadable checkpoints, the next run removes the temp files the
kill left, and resuming ends bit for bit where an uninterrupted run does; a reader of stdout
that goes away (`irnet train | head -1`) stops the run after an epoch with its checkpoint
written; bad checkpoint metadata is one clear error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import console_script, subprocess_env
from test_train import TINY

from irnet import checkpoint, cli, train
from irnet.model import open_session

EPOCHS = 400
"""Far more than any test lets a run finish: the kills and the closed pipe come first."""


@pytest.fixture
def tiny(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(4, 3)), axis=1).astype(np.int32)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    path = tmp_path / "tiny.irn"
    path.write_text(TINY.replace("OPTIMIZER", "adam(lr=0.02)").replace("DTYPE", "f32"))
    return path


def irnet_train(path: Path, directory: Path, *flags: str, **popen) -> subprocess.Popen:
    command = [console_script("irnet"), "train", str(path), "--epochs", str(EPOCHS)]
    command += ["--checkpoint-dir", str(directory), *flags]
    return subprocess.Popen(command, env=subprocess_env(), text=True, **popen)


DIES_WRITING = """
import io, os, signal, sys
import numpy as np
from irnet import cli

real, calls = np.savez, [0]

def savez(file, *args, **kwargs):
    calls[0] += 1
    if calls[0] == int(os.environ["DIE_AT_WRITE"]):  # half the archive, then the kill
        whole = io.BytesIO()
        real(whole, *args, **kwargs)
        file.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real(file, *args, **kwargs)

np.savez = savez
sys.exit(cli.main(sys.argv[1:]))
"""
"""`irnet train` in a process that SIGKILLs itself halfway through its DIE_AT_WRITE-th write."""


def visible_checkpoints(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def uninterrupted(path: Path, epochs: int, target: str = "reference") -> dict[str, np.ndarray]:
    """The parameters after `epochs` epochs of one run with the killed run's settings."""
    session = open_session(str(path), {"epochs": EPOCHS}, target=target)
    train.train(session, train.TrainOptions(checkpoint_dir=None, stop_after=epochs))
    return session.to_host(session.params)


def resume(
    path: Path, directory: Path, epochs: int, target: str = "reference"
) -> subprocess.CompletedProcess:
    run = irnet_train(path, directory, "--resume", "--stop-after", str(epochs), "--target", target,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    stdout, stderr = run.communicate(timeout=120)
    return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)


def assert_resumes_bit_for_bit(path: Path, directory: Path, target: str = "reference") -> None:
    """Every visible checkpoint loads; resuming for two epochs removes the kill's temp files
    and ends where an uninterrupted run of as many epochs does."""
    for visible in visible_checkpoints(directory):
        checkpoint.load(visible)
    left = temporaries(directory)
    start = checkpoint.load(checkpoint.latest(directory, "tiny")).meta["epoch"]
    resumed = resume(path, directory, 2, target)
    assert resumed.returncode == 0, resumed.stderr
    assert temporaries(directory) == []
    if left:
        assert f"removed {len(left)} temporary file" in resumed.stdout
    final = checkpoint.load(directory / "tiny-last.npz")
    assert final.meta["epoch"] == start + 2
    expected = uninterrupted(path, start + 2, target)
    for name, value in expected.items():
        np.testing.assert_array_equal(final.params[name], value)


@pytest.mark.parametrize("write", [2, 3])  # epoch 1's tiny-last.npz; epoch 2's tiny-epoch2.npz
def test_a_kill_during_a_checkpoint_write(tiny, tmp_path, write):
    directory = tmp_path / "ckpt"
    command = [sys.executable, "-c", DIES_WRITING, "train", str(tiny), "--epochs", str(EPOCHS),
               "--checkpoint-dir", str(directory)]  # fmt: skip
    env = {**subprocess_env(), "DIE_AT_WRITE": str(write)}
    killed = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert len(temporaries(directory)) == 1  # the half-written archive, as a kill leaves it
    assert_resumes_bit_for_bit(tiny, directory)


@pytest.mark.parametrize(
    ("delay", "target"), [(0.0, "reference"), (0.15, "reference"), (0.05, "cpu")]
)
def test_a_kill_at_any_moment(tiny, tmp_path, delay, target):
    """SIGKILL from outside, once the first checkpoint is there and a moment later; on the
    compiled target too."""
    directory = tmp_path / "ckpt"
    run = irnet_train(tiny, directory, "--target", target,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (directory / "tiny-epoch1.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    run.send_signal(signal.SIGKILL)
    assert run.wait(timeout=60) == -signal.SIGKILL
    assert_resumes_bit_for_bit(tiny, directory, target)


def test_a_concurrent_runs_temp_files_are_kept(tiny, tmp_path):
    """A temp file whose writer is alive is another run's write in progress."""
    directory = tmp_path / "ckpt"
    directory.mkdir()
    live = directory / f".tiny-last.npz.{os.getppid()}.abc123.tmp"
    live.write_bytes(b"in progress")
    train.train(open_session(str(tiny), {"epochs": 1}),
                train.TrainOptions(checkpoint_dir=directory))  # fmt: skip
    assert live.read_bytes() == b"in progress"


def test_a_closed_output_pipe_stops_after_the_epoch_with_its_checkpoint(tiny, tmp_path):
    """`irnet train ... | head -1`: the reader takes one line and exits."""
    directory = tmp_path / "ckpt"
    run = irnet_train(tiny, directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout.readline().startswith("training tiny:")
    run.stdout.close()
    stderr = run.stderr.read()
    assert run.wait(timeout=120) == 1
    last = checkpoint.load(directory / "tiny-last.npz")
    stopped = last.meta["epoch"]
    assert 1 <= stopped < EPOCHS and len(last.meta["history"]) == stopped
    assert stderr == (
        f"error: the output's reader went away: stopped after epoch {stopped} of {EPOCHS}; "
        f"its checkpoint is in {directory}; continue with --resume\n"
    )
    assert temporaries(directory) == []


# --- bad metadata on --resume ------------------------------------------------------------------


def with_meta(path: Path, **changes) -> None:
    """Rewrite the checkpoint at `path` with metadata fields changed (None: removed)."""
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(changes)
    meta = {key: value for key, value in meta.items() if value is not None}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


BAD_RESUMES = {  # metadata changes, and what the refusal says after the file's name
    "epoch text": ({"epoch": "abc"}, "its metadata field 'epoch' is \"abc\""),
    "epoch fraction": ({"epoch": 1.7}, "its metadata field 'epoch' is 1.7"),
    "epoch huge": ({"epoch": 10**30}, "its metadata field 'epoch' is 1000000000000000000000000"),
    "step negative": ({"step": -5}, "its metadata field 'step' is -5"),
    "history": ({"history": "garbage"}, "its metadata field 'history' is \"garbage\""),
    "no epoch": ({"epoch": None}, "its metadata has no 'epoch', which --resume needs"),
    "no step": ({"step": None}, "its metadata has no 'step', which --resume needs"),
    "steps the epochs cannot take": (
        {"step": 7, "history": [{"epoch": 1, "step": 4}, {"epoch": 2, "step": 7}]},
        "its metadata field 'step' is 7, which 2 epochs of 5 steps cannot have reached",
    ),
}


@pytest.mark.parametrize("changes, named", BAD_RESUMES.values(), ids=BAD_RESUMES.keys())
def test_resume_refuses_bad_metadata_with_one_line(tiny, tmp_path, capsys, changes, named):
    directory = tmp_path / "ckpt"
    flags = ["train", str(tiny), "--epochs", "3", "--checkpoint-dir", str(directory)]
    assert cli.main([*flags, "--stop-after", "2"]) == 0
    with_meta(directory / "tiny-last.npz", **changes)
    capsys.readouterr()
    assert cli.main([*flags, "--resume"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"error: {directory / 'tiny-last.npz'} is not a usable irnet ")
    assert named in stderr and stderr.count("\n") == 1


def test_resume_past_the_runs_epochs_is_refused(tiny, tmp_path, capsys):
    directory = tmp_path / "ckpt"
    flags = ["train", str(tiny), "--checkpoint-dir", str(directory)]
    assert cli.main([*flags, "--epochs", "3"]) == 0
    assert cli.main([*flags, "--epochs", "2", "--resume"]) == 1
    assert "is after epoch 3, past the 2 epochs this run trains" in capsys.readouterr().err
