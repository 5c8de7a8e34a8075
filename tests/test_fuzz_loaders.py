"""Fuzzing the file loaders: data (IDX, npz, CSV, text) and checkpoints. Whatever bytes a file
holds (a valid file with bytes flipped, inserted or cut off), loading it ends with its arrays
or a clean `IrnError` naming it; never another exception.

Each case starts from a small valid file and mutates it with a hypothesis strategy
(derandomised, so CI is reproducible). `IRNET_FUZZ_EXAMPLES` raises the number of inputs for a
longer run: `IRNET_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_fuzz_loaders.py`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irnet import checkpoint
from irnet import data as datasets
from irnet.diagnostics import IrnError

EXAMPLES = int(os.environ.get("IRNET_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """`original` with a few bytes flipped, a run inserted, or its end cut off."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "cut", "zero"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "cut":
            del data[at:]
        elif data:
            data[at : at + 8] = bytes(len(data[at : at + 8]))
    return bytes(data)


def idx(array: np.ndarray) -> bytes:
    dims = struct.pack(">" + "I" * array.ndim, *array.shape)
    return bytes([0, 0, 0x08, array.ndim]) + dims + array.astype(np.uint8).tobytes()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 255, (4, 28, 28))
LABELS = RNG.integers(0, 10, 4)
NPZ = npz_bytes(x=RNG.normal(size=(5, 3)).astype(np.float32), y=np.arange(5))
CSV = b"a,b,label\n1.5,2,0\n3,4.25,1\n-1,0,0\n"


def load(folder: Path, kind: str, *args: str, **options) -> None:
    spec = datasets.DataSpec(kind, args, options, None)
    with contextlib.suppress(IrnError):  # a clean error is fine; any other exception is not
        datasets.load(spec, folder)


@FUZZ
@given(st.data())
def test_mutated_idx_files(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("idx")
    images = data.draw(mutated(idx(IMAGES)))
    labels = data.draw(mutated(idx(LABELS)))
    compress = data.draw(st.booleans())
    for name, content in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        path = folder / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(content) if compress else content)
    load(folder, "mnist", str(folder))


@FUZZ
@given(st.data())
def test_mutated_npz_files(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("npz")
    (folder / "d.npz").write_bytes(data.draw(mutated(NPZ)))
    load(folder, "npz", "d.npz", x="x", y="y")


@FUZZ
@given(st.data())
def test_mutated_csv_files(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("csv")
    (folder / "d.csv").write_bytes(data.draw(mutated(CSV)))
    load(folder, "csv", "d.csv")


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "m.npz"
    params = {"dense_0.w": np.ones((3, 2), np.float32), "dense_0.b": np.zeros(2, np.float32)}
    checkpoint.save(path, checkpoint.Checkpoint(params, {"t": np.zeros((), np.float32)}, {}))
    return path.read_bytes()


@FUZZ
@given(st.data())
def test_mutated_checkpoints(tmp_path_factory, saved_checkpoint, data):
    path = tmp_path_factory.mktemp("ck") / "m.npz"
    path.write_bytes(data.draw(mutated(saved_checkpoint)))
    try:
        checkpoint.load(path)
    except IrnError as e:
        assert str(path) in str(e) or path.name in str(e)
