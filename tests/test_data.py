"""The data layer of `irnet train` (`irnet/data.py`): every source on small files written here,
every malformed file ending in an `IrnError` that names the file and the problem, seeded
splitting and batching, `fit_to_input`, and one check of the data shipped in `data/`."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import TensorType, f32, i32

from irnet import data
from irnet.data import (
    MAX_TEXT_BYTES,
    Dataset,
    DataSpec,
    describe_kinds,
    fit_to_input,
    load,
    parts,
)
from irnet.diagnostics import IrnError, Loc
from irnet.dialects.shapes import DYN

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def in_tmp_path(at_repo_root, tmp_path, monkeypatch):
    """Messages show paths relative to the working directory: here, the test's folder."""
    monkeypatch.chdir(tmp_path)


def load_error(spec: DataSpec, base: Path, part: str = "train") -> str:
    with pytest.raises(IrnError) as info:
        load(spec, base, part)
    return info.value.message


LOC = Loc("m.irn", 9, 12)
"""Where a train block's `data = ...` entry is: every error about the data points there."""


def located_error(kind: str, args: tuple, options: dict, base: Path) -> str:
    with pytest.raises(IrnError) as info:
        load(DataSpec(kind, args, options, LOC), base)
    assert info.value.loc == LOC
    return info.value.message


# --- mnist -------------------------------------------------------------------------------------


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_mnist(folder: Path, gz: bool = True, train: int = 5, test: int = 3) -> dict:
    """A tiny MNIST folder; returns the arrays written, by file stem."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, test),
    }
    folder.mkdir(exist_ok=True)
    for stem, array in arrays.items():
        magic = 2051 if "images" in stem else 2049
        write(folder / (stem + ".gz" * gz), idx_bytes(magic, array), gz)
    return arrays


MNIST = DataSpec("mnist", ("mnist",))


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_mnist_train_and_test_parts(tmp_path, gz):
    arrays = make_mnist(tmp_path / "mnist", gz)
    train, test = load(MNIST, tmp_path), load(MNIST, tmp_path, "test")
    (images,), (labels,) = train.inputs, train.targets
    assert images.shape == (5, 28, 28) and images.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_allclose(images, arrays["train-images-idx3-ubyte"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])
    assert len(test) == 3 and train.source == 'mnist("mnist")'
    assert test.source == 'mnist("mnist") (test part)'


@pytest.mark.parametrize(
    "normalize, expected",
    [
        ("none", lambda x: x),
        ("scale", lambda x: x / 255),
        ("standardize", lambda x: (x / 255 - 0.1307) / 0.3081),
    ],
)
def test_mnist_normalize(tmp_path, normalize, expected):
    raw = make_mnist(tmp_path / "mnist")["train-images-idx3-ubyte"]
    images = load(DataSpec("mnist", ("mnist",), {"normalize": normalize}), tmp_path).inputs[0]
    np.testing.assert_allclose(images, expected(raw), rtol=1e-5, atol=1e-6)


def test_mnist_gzip_is_detected_by_content_not_suffix(tmp_path):
    arrays = make_mnist(tmp_path / "mnist", gz=False)
    folder = tmp_path / "mnist"
    images = folder / "train-images-idx3-ubyte"
    (folder / "train-labels-idx1-ubyte").rename(folder / "train-labels-idx1-ubyte.gz")  # raw
    images.write_bytes(gzip.compress(images.read_bytes()))  # gzip without the suffix
    dataset = load(MNIST, tmp_path)
    np.testing.assert_array_equal(dataset.targets[0], arrays["train-labels-idx1-ubyte"])


def corrupt(folder: Path, stem: str, data: bytes) -> None:
    write(folder / f"{stem}.gz", data, gz=True)


@pytest.mark.parametrize(
    "stem, data, message",
    [
        (
            "train-images-idx3-ubyte",
            idx_bytes(2049, np.zeros(5)),
            "mnist/train-images-idx3-ubyte.gz: not an IDX image file "
            "(magic number 2049, expected 2051)",
        ),
        (
            "train-labels-idx1-ubyte",
            idx_bytes(2051, np.zeros((5, 28, 28))),
            "mnist/train-labels-idx1-ubyte.gz: not an IDX label file "
            "(magic number 2051, expected 2049)",
        ),
        (
            "train-images-idx3-ubyte",
            idx_bytes(2051, np.zeros((5, 28, 28)))[:-10],
            "mnist/train-images-idx3-ubyte.gz: truncated: the header announces 5 images of "
            "shape [28, 28] (3920 bytes) but 3910 bytes follow it",
        ),
        (
            "train-images-idx3-ubyte",
            idx_bytes(2051, np.zeros((5, 28, 28)))[:10],
            "mnist/train-images-idx3-ubyte.gz: truncated in its header (10 bytes)",
        ),
        (
            "train-labels-idx1-ubyte",
            idx_bytes(2049, np.zeros(4)),
            "mnist/train-images-idx3-ubyte.gz has 5 images but "
            "mnist/train-labels-idx1-ubyte.gz has 4 labels",
        ),
    ],
    ids=["images-magic", "labels-magic", "truncated", "truncated-header", "counts"],
)
def test_mnist_malformed(tmp_path, stem, data, message):
    make_mnist(tmp_path / "mnist")
    corrupt(tmp_path / "mnist", stem, data)
    assert load_error(MNIST, tmp_path) == message


def test_mnist_bad_gzip(tmp_path):
    make_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    message = load_error(MNIST, tmp_path, "test")
    assert message.startswith("mnist/t10k-labels-idx1-ubyte.gz: not a readable gzip file")


def test_mnist_missing_file_and_folder(tmp_path):
    make_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    load(MNIST, tmp_path)  # the train part is complete
    message = load_error(MNIST, tmp_path, "test")
    assert message.startswith(
        "mnist: missing t10k-images-idx3-ubyte.gz (or t10k-images-idx3-ubyte)"
    )
    assert load_error(DataSpec("mnist", ("nowhere",)), tmp_path).startswith(
        "nowhere: no such folder"
    )


def test_mnist_test_part_alone(tmp_path):
    """Fashion-MNIST's test set comes as a folder of the two t10k files."""
    arrays = make_mnist(tmp_path / "mnist")
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "mnist" / f"{stem}.gz").unlink()
    assert parts(MNIST, tmp_path) == ("test",)
    test = load(MNIST, tmp_path, "test")
    np.testing.assert_array_equal(test.targets[0], arrays["t10k-labels-idx1-ubyte"])
    assert located_error("mnist", ("mnist",), {}, tmp_path) == (
        "mnist: has no training part, only the test part (t10k files); training needs "
        "train-images-idx3-ubyte and train-labels-idx1-ubyte (irnet eval --part test can "
        "evaluate this folder)"
    )


def test_parts_on_disk(tmp_path):
    make_mnist(tmp_path / "mnist")
    assert parts(MNIST, tmp_path) == ("train", "test")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    assert parts(MNIST, tmp_path) == ("train", "test")  # the missing file is named on reading
    for stem in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "mnist" / f"{stem}.gz").unlink()
    assert parts(MNIST, tmp_path) == ("train",)
    assert parts(DataSpec("npz", ("d.npz",)), tmp_path) == ("train",)


# --- npz, npy ----------------------------------------------------------------------------------


def test_npz_by_name_and_lists(tmp_path):
    a, b, y = np.ones((4, 2)), np.zeros((4, 3)), np.arange(4)
    np.savez(tmp_path / "d.npz", x=a, a=a, b=b, y=y)
    plain = load(DataSpec("npz", ("d.npz",)), tmp_path)
    assert plain.inputs[0].shape == (4, 2) and plain.targets[0].tolist() == [0, 1, 2, 3]
    listed = load(DataSpec("npz", ("d.npz",), {"x": ["a", "b"], "y": "y"}), tmp_path)
    assert [x.shape for x in listed.inputs] == [(4, 2), (4, 3)]


def test_npz_missing_name_lists_the_names(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.ones((2, 2)), labels=np.ones(2))
    message = load_error(DataSpec("npz", ("d.npz",)), tmp_path)
    assert message == "d.npz: has no array 'x'; it has 'images', 'labels'"


def test_npz_rejects_pickles_and_wrong_kinds(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{}], dtype=object), y=np.ones(1))
    assert "cannot read its arrays" in load_error(DataSpec("npz", ("o.npz",)), tmp_path)
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    assert "use npy(x_path, y_path)" in load_error(DataSpec("npz", ("x.npy",)), tmp_path)
    (tmp_path / "junk.npz").write_text("not an archive")
    assert "junk.npz: cannot read it" in load_error(DataSpec("npz", ("junk.npz",)), tmp_path)


def test_npy_pair_and_example_counts(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    np.save(tmp_path / "y.npy", np.arange(3))
    np.save(tmp_path / "y4.npy", np.arange(4))
    dataset = load(DataSpec("npy", ("x.npy", "y.npy")), tmp_path)
    assert len(dataset) == 3 and dataset.source == 'npy("x.npy", "y.npy")'
    message = load_error(DataSpec("npy", ("x.npy", "y4.npy")), tmp_path)
    assert "different numbers of examples (shapes [3, 2], [4])" in message
    assert load_error(DataSpec("npy", ("x.npy", "no.npy")), tmp_path) == "no.npy: no such file"


# --- csv ---------------------------------------------------------------------------------------


def csv_data(tmp_path: Path, text: str, name: str = "t.csv", **options) -> Dataset:
    path = tmp_path / name
    data = text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return load(DataSpec("csv", (name,), options), tmp_path)


TABLE = [[1.0, 2.0, 0.0], [3.0, 4.0, 1.0], [5.0, 6.0, 2.0]]


@pytest.mark.parametrize(
    "name, text",
    [
        ("t.csv", "1,2,0\n3,4,1\n5,6,2\n"),
        ("t.csv", "a,b,label\n1,2,0\n3,4,1\n\n5,6,2\n"),
        ("t.csv", "a;b;label\n1;2;0\n3;4;1\n5;6;2\n"),
        ("t.csv", "1\t2\t0\n3\t4\t1\n5\t6\t2\n"),
        ("t.csv", " 1  2 0\n3 4   1\n5 6 2"),
        ("t.csv.gz", "1, 2, 0\r\n3, 4, 1\r\n5, 6, 2\r\n"),
        ("t.csv", '"a","b","c"\n"1","2","0"\n3,4,1\n5,6,2\n'),
        ("t.csv", "3,2,class_0,class_1,class_2\n1,2,0\n3,4,1\n5,6,2\n"),  # sklearn's first line
    ],
    ids=["plain", "header", "semicolon", "tab", "spaces", "gzip-crlf", "quoted", "sklearn"],
)
def test_csv_formats(tmp_path, name, text):
    dataset = csv_data(tmp_path, text, name)
    (features,), (labels,) = dataset.inputs, dataset.targets
    assert features.dtype == labels.dtype == np.float32
    np.testing.assert_array_equal(features, np.array(TABLE)[:, :2])
    np.testing.assert_array_equal(labels, np.array(TABLE)[:, 2:])


def test_csv_label_column_header_and_classes(tmp_path):
    text = "y,a,b\n0,1,2\n1,3,4\n"
    by_name = csv_data(tmp_path, text, label="y", classes=True)
    by_index = csv_data(tmp_path, text, label=-3, classes=True)
    for dataset in (by_name, by_index):
        assert dataset.inputs[0].tolist() == [[1, 2], [3, 4]]
        assert dataset.targets[0].dtype == np.int32 and dataset.targets[0].tolist() == [0, 1]
    forced = csv_data(tmp_path, "1,2\n3,4\n5,6\n", header=True)
    assert forced.targets[0].ravel().tolist() == [4, 6]


def test_csv_target_file_and_normalize(tmp_path):
    (tmp_path / "y.csv").write_text("10\n20\n30\n")
    dataset = csv_data(tmp_path, "1 5 7\n2 5 8\n3 5 9\n", target="y.csv", normalize=True)
    (features,), (target,) = dataset.inputs, dataset.targets
    assert target.shape == (3, 1) and target.ravel().tolist() == [10, 20, 30]
    np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(features.std(axis=0), [1, 0, 1], atol=1e-6)  # constant -> 0
    stats = dataset.feature_stats
    np.testing.assert_allclose(stats.mean, [2, 5, 8])
    np.testing.assert_allclose(stats.apply(np.array([[2.0, 5, 8]])), 0)


def test_csv_feature_columns(tmp_path):
    text = "a,b,c,d\n1,2,3,0\n4,5,6,1\n"
    named = csv_data(tmp_path, text, header=True, x=["c", "a"], label="d")
    assert named.inputs[0].tolist() == [[3, 1], [6, 4]]
    assert named.targets[0].ravel().tolist() == [0, 1]
    one = csv_data(tmp_path, text, x="b", label=0)
    assert one.inputs[0].tolist() == [[2], [5]] and one.targets[0].ravel().tolist() == [1, 4]
    indexed = csv_data(tmp_path, "1,2,3,0\n4,5,6,1\n", x=[0, -2])  # the label: the last column
    assert indexed.inputs[0].tolist() == [[1, 3], [4, 6]]
    (tmp_path / "y.csv").write_text("7\n8\n")
    with_target = csv_data(tmp_path, text, x=["d", "b"], target="y.csv", normalize=True)
    np.testing.assert_allclose(with_target.feature_stats.mean, [0.5, 3.5])


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("a,b,c\n1,2,3\n", {"x": ["a", "e"]}, "t.csv: no column named 'e'; the header has 'a',"),
        ("1,2,3\n", {"x": ["a"]}, "t.csv: x='a' names a column, but there is no header"),
        ("1,2,3\n", {"x": [0, 3]}, "t.csv: no x column 3; the rows have 3 columns"),
        ("a,b,c\n1,2,3\n", {"x": ["a", "c"]}, "t.csv: column 'c' is the label; x cannot take"),
        ("1,2,3\n", {"x": 0, "label": 0}, "t.csv: column 0 is the label; x cannot take it too"),
        ("1,2,3,4\n", {"x": 4}, "t.csv: no x column 4; the rows have 4 columns"),
        ("1,2,3\n4,5,6\n", {"x": [], "header": False}, "csv(): x must be a column (an index"),
        ("1,2,3\n4,5,6\n", {"x": [1.5]}, "csv(): x must be a column (an index or a header"),
    ],
)
def test_csv_bad_columns_are_located(tmp_path, text, options, message):
    (tmp_path / "t.csv").write_text(text)
    assert located_error("csv", ("t.csv",), options, tmp_path).startswith(message)


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("1,2,3\n4,5\n", {}, "t.csv:2: row has 2 columns but line 1 has 3"),
        ("1,2\n3,x\n", {}, "t.csv:2: column 2 is 'x', not a number"),
        ("a,b\n\n1,2\n3,,\n", {}, "t.csv:4: row has 3 columns but line 3 has 2"),
        ("1,2\n3,\n", {}, "t.csv:2: column 2 is empty"),
        ("\n  \n", {}, "t.csv: empty file, no rows"),
        ("a,b\n", {}, "t.csv: has a header line but no rows"),
        ("a,b\n1,2\n", {"header": False}, "t.csv:1: column 1 is 'a', not a number"),
        ("1,2\n", {"label": "b"}, "t.csv: label='b' names a column, but there is no header"),
        ("a,b\n1,2\n", {"label": "c"}, "t.csv: no column named 'c'; the header has 'a', 'b'"),
        ("1,2\n", {"label": 2}, "t.csv: no label column 2; the rows have 2 columns"),
        ("1\n2\n", {}, "t.csv: has one column, the label; no features are left"),
        ("1,0.5\n", {"classes": True}, "t.csv:1: label 0.5 is not a class index"),
        ("1,2\n", {"target": "y.csv", "label": 0}, "csv(): give either label"),
        ("1,2\n", {"target": "y.csv"}, "y.csv: has 2 rows but t.csv has 1"),
        ("1,2\n", {"target": "t.csv"}, "t.csv: has 2 columns; a target file has one"),
    ],
)
def test_csv_malformed(tmp_path, text, options, message):
    (tmp_path / "y.csv").write_text("1\n2\n")
    with pytest.raises(IrnError) as info:
        csv_data(tmp_path, text, **options)
    assert info.value.message.startswith(message)


# --- text --------------------------------------------------------------------------------------


def test_text_windows_and_vocabulary(tmp_path):
    (tmp_path / "t.txt").write_text("abcab\n")
    dataset = load(DataSpec("text", ("t.txt",), {"context": 2}), tmp_path)
    assert dataset.vocabulary == "\nabc"
    decode = np.array(list(dataset.vocabulary))
    (windows,), (following,) = dataset.inputs, dataset.targets
    assert windows.dtype == following.dtype == np.int32 and len(dataset) == 6 - 2
    assert ["".join(w) for w in decode[windows]] == ["ab", "bc", "ca", "ab"]
    assert "".join(decode[following]) == "cab\n"
    assert "context=6 needs at least 7" in load_error(
        DataSpec("text", ("t.txt",), {"context": 6}), tmp_path
    )


def test_text_windows_every_stride_characters(tmp_path):
    (tmp_path / "t.txt").write_text("abcdefghij")
    dataset = load(DataSpec("text", ("t.txt",), {"context": 3, "stride": 3}), tmp_path)
    decode = np.array(list(dataset.vocabulary))
    (windows,), (following,) = dataset.inputs, dataset.targets
    assert ["".join(w) for w in decode[windows]] == ["abc", "def", "ghi"]
    assert "".join(decode[following]) == "dgj"
    assert "stride" in load_error(DataSpec("text", ("t.txt",), {"stride": 0}), tmp_path)


def test_text_parts(tmp_path):
    (tmp_path / "t.txt").write_text("abcdefghij")  # 10 characters

    def chars(part):
        dataset = load(DataSpec("text", ("t.txt",), {"context": 1, "part": part}), tmp_path)
        assert dataset.vocabulary == "abcdefghij"  # the whole file's, whatever the part
        (windows,), (following,) = dataset.inputs, dataset.targets
        return "".join(dataset.vocabulary[i] for i in [*windows[:1, 0], *following])

    assert chars(0.7) == "abcdefg" and chars(-0.3) == "hij"
    assert chars(1) == chars(-1.0) == "abcdefghij"
    assert chars([2, 5]) == "cde" and chars([0, 10]) == "abcdefghij"
    assert chars(0.25) == "ab" and chars(-0.75) == "cdefghij"  # 2.5 rounds to even: no gap


@pytest.mark.parametrize("fraction", [0.9, 0.07, 0.33, 0.55, 0.123])
def test_text_fractions_split_without_gap_or_overlap(tmp_path, fraction):
    (tmp_path / "t.txt").write_text("x" * 1000 + "y" * 1001)

    def size(part):
        return len(load(DataSpec("text", ("t.txt",), {"context": 1, "part": part}), tmp_path))

    assert size(fraction) + size(round(fraction - 1, 10)) == 2001 - 2  # one window per part


@pytest.mark.parametrize(
    "part, message",
    [
        (0, "text(): part must be a fraction (0.9: the first 90 %; -0.1: the last 10 %) or a"),
        (1.5, "text(): part must be a fraction"),
        (-2, "text(): part must be a fraction"),
        (True, "text(): part must be a fraction"),
        ("end", "text(): part must be a fraction"),
        ([5, 2], "text(): part must be a fraction"),
        ([-1, 4], "text(): part must be a fraction"),
        ([0.1, 0.5], "text(): part must be a fraction"),
        ([0, 4, 8], "text(): part must be a fraction"),
        ([2, 99], "t.txt: part=[2, 99] ends past its 10 characters"),
        (0.05, "t.txt: part=0.05 holds 0 characters; context=1 needs at least 2"),
    ],
)
def test_text_bad_parts_are_located(tmp_path, part, message):
    (tmp_path / "t.txt").write_text("abcdefghij")
    assert located_error("text", ("t.txt",), {"context": 1, "part": part}, tmp_path).startswith(
        message
    )


# --- specs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        (DataSpec("mnst", ("d",)), "unknown data source 'mnst' (did you mean 'mnist'?)"),
        (DataSpec("csv", ("t.csv",), {"lable": 0}), "csv() has no option 'lable' (did you mean"),
        (DataSpec("csv", ("a", "b")), "csv() takes 1 argument (path) before its options, but 2"),
        (DataSpec("npy", ("a",)), "npy() takes 2 arguments (x_path, y_path) before its options"),
        (DataSpec("csv", (3,)), "csv(): path must be a path string"),
        (DataSpec("text", ("t",), {"context": 0}), "text(): context must be an integer of at"),
        (DataSpec("mnist", ("d",), {"normalize": "yes"}), 'mnist(): normalize must be "scale"'),
        (DataSpec("csv", ("t",), {"header": 1}), 'csv(): header must be true, false or "auto"'),
    ],
)
def test_spec_errors(tmp_path, spec, message):
    with pytest.raises(IrnError) as info:
        load(spec, tmp_path)
    assert info.value.message.startswith(message)
    assert any(spec.kind in note or "mnist(dir" in note for note in info.value.notes)


def test_only_mnist_has_a_test_part(tmp_path):
    message = load_error(DataSpec("csv", ("t.csv",)), tmp_path, "test")
    assert message == (
        'csv("t.csv") has no separate test part; hold out examples with val_split instead'
    )


def test_describe_kinds_lists_every_source():
    lines = describe_kinds().splitlines()
    assert [line.split("(")[0].strip() for line in lines] == ["mnist", "npz", "npy", "csv", "text"]
    assert 'csv(path, label=-1, x=OTHERS, header="auto", target=PATH' in describe_kinds()
    assert "text(path, context=8, part=ALL, stride=1)" in describe_kinds()


def numbered(n: int) -> Dataset:
    return Dataset([np.arange(n) * 10], [np.arange(n)], "numbers")


def ids(dataset: Dataset) -> list[int]:
    return dataset.targets[0].tolist()


def test_split_sizes_disjoint_and_seeded():
    train, val = numbered(10).split(0.25, seed=1)
    assert (len(train), len(val)) == (8, 2)  # round(2.5) == 2
    assert sorted(ids(train) + ids(val)) == list(range(10))
    assert train.inputs[0].tolist() == [10 * i for i in ids(train)]  # rows stay together
    assert ids(numbered(10).split(0.25, seed=1)[1]) == ids(val)
    vals = {tuple(ids(numbered(100).split(0.2, seed=s)[1])) for s in range(5)}
    assert len(vals) == 5
    assert len(numbered(10).split(0.0, seed=0)[1]) == 0


def test_contiguous_split_holds_out_the_end():
    train, val = numbered(10).split(0.3, seed=0, contiguous=True)
    assert ids(train) == list(range(7)) and ids(val) == [7, 8, 9]


@pytest.mark.parametrize("fraction", [1.0, -0.1, 0.99])
def test_split_rejects_fractions_leaving_no_training_data(fraction):
    with pytest.raises(IrnError, match="val_split"):
        numbered(10).split(fraction, seed=0)


def test_batches_in_order_with_last_partial_batch():
    dataset = numbered(10)
    batches = list(dataset.batches(4, rng=None))
    assert dataset.num_batches(4) == len(batches) == 3
    assert [t[0].tolist() for _, t in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(x[0].tolist() == [10 * i for i in t[0]] for x, t in batches)


def epoch(dataset: Dataset, rng: np.random.Generator) -> list[int]:
    return [i for _, (t,) in dataset.batches(3, rng) for i in t.tolist()]


def test_shuffled_batches_are_seeded_and_cover_every_example_once():
    dataset = numbered(10)
    first = epoch(dataset, np.random.default_rng(7))
    assert sorted(first) == list(range(10)) and first != list(range(10))
    assert epoch(dataset, np.random.default_rng(7)) == first
    assert epoch(dataset, np.random.default_rng(8)) != first
    rng = np.random.default_rng(7)
    assert epoch(dataset, rng) != epoch(dataset, rng)  # a new permutation per epoch
    assert [len(t) for _, (t,) in dataset.batches(3, rng)] == [3, 3, 3, 1]


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_integer(size):
    with pytest.raises(IrnError, match="batch must be a positive integer"):
        numbered(3).num_batches(size)


# --- fit_to_input ------------------------------------------------------------------------------


def test_fit_to_input_reshapes_examples():
    images = np.zeros((2, 28, 28), np.float32)
    assert fit_to_input(images, [DYN, 784], "x", "s").shape == (2, 784)
    assert fit_to_input(images, (None, 1, 28, 28), "x", "s").shape == (2, 1, 28, 28)
    assert fit_to_input(np.zeros((3, 8), np.int32), [DYN, DYN], "c", "s").shape == (3, 8)


def test_fit_to_input_mismatch_names_both_shapes():
    images = np.zeros((2, 28, 28), np.float32)
    with pytest.raises(IrnError) as info:
        fit_to_input(images, TensorType(f32, [DYN, 10]), "x", 'mnist("d")')
    assert info.value.message == (
        'data from mnist("d") has examples of shape [28, 28] (784 values) '
        "but the model's input x is f32[?, 10]"
    )
    with pytest.raises(IrnError, match=r"shape \[8\] \(8 values\) but the model's input c"):
        fit_to_input(np.zeros((3, 8)), [DYN, 8, DYN], "c", "s")


def test_fit_to_input_casts_to_the_model_dtype():
    labels = np.arange(3, dtype=np.int64)
    assert fit_to_input(labels, TensorType(i32, [DYN]), "y", "s").dtype == np.int32
    assert fit_to_input(labels, TensorType(f32, [DYN, 1]), "y", "s").dtype == np.float32
    with pytest.raises(IrnError, match="has float64 values but the target y is i32"):
        fit_to_input(np.ones(3), TensorType(i32, [DYN]), "y", "s", what="the target")


# --- the shipped data --------------------------------------------------------------------------


def test_shipped_data():
    examples = ROOT / "examples"
    mnist = load(DataSpec("mnist", ("../data/mnist",)), examples, "test")
    assert mnist.inputs[0].shape == (10000, 28, 28)
    assert np.bincount(mnist.targets[0]).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]  # fmt: skip
    diabetes = load(
        DataSpec(
            "csv",
            ("../data/diabetes/diabetes_data_raw.csv.gz",),
            {"target": "../data/diabetes/diabetes_target.csv.gz", "normalize": True},
        ),
        examples,
    )
    assert diabetes.inputs[0].shape == (442, 10) and diabetes.targets[0].shape == (442, 1)
    text = load(DataSpec("text", ("../data/tinyshakespeare/input.txt",)), examples)
    assert len(text.vocabulary) == 65 and text.inputs[0].shape == (1115394 - 8, 8)


# --- bounded reads ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "text", "npy", "npz"])
def test_devices_fifos_and_folders_are_not_data_files(tmp_path, kind):
    os.mkfifo(tmp_path / "pipe")  # opening it would block until a writer came
    (tmp_path / "dir").mkdir()
    for name in ["/dev/zero", "pipe"] if Path("/dev/zero").exists() else ["pipe"]:
        args = (name, name) if kind == "npy" else (name,)
        message = load_error(DataSpec(kind, args), tmp_path)
        assert message.endswith(": is a device, FIFO or socket, not a regular file")
    args = ("dir", "dir") if kind == "npy" else ("dir",)
    assert load_error(DataSpec(kind, args), tmp_path) == "dir: is a folder, not a file"


@pytest.mark.parametrize("kind", ["csv", "text"])
def test_csv_and_text_files_are_read_up_to_a_limit(tmp_path, monkeypatch, kind):
    with open(tmp_path / "big", "wb") as f:
        f.truncate(2**31)  # sparse: no disk used
    message = load_error(DataSpec(kind, ("big",)), tmp_path)
    assert message == (
        f"big: larger than the {MAX_TEXT_BYTES // 2**20} MiB a csv or text file may be "
        "(an .npz archive holds bigger data)"
    )
    # gzipped, the limit is on what it unpacks to: a small file cannot unpack to gigabytes
    monkeypatch.setattr(data, "MAX_TEXT_BYTES", 2**20)
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(bytes(2**20 + 1)))
    assert load_error(DataSpec(kind, ("bomb.gz",)), tmp_path).startswith(
        "bomb.gz: larger than the 1 MiB"
    )


def test_text_that_is_not_utf8_is_located(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"abc\nd\xffe\n")
    message = load_error(DataSpec("text", ("t.txt",)), tmp_path)
    assert message == "t.txt: not UTF-8 text (byte 5, line 2, column 2)"


@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_a_file_of_zeros_is_not_called_pickled(tmp_path, kind):
    with open(tmp_path / "zeros", "wb") as f:
        f.truncate(2**31)  # sparse: no disk used
    args = ("zeros", "zeros") if kind == "npy" else ("zeros",)
    message = load_error(DataSpec(kind, args), tmp_path)
    assert message == "zeros: cannot read it: not an .npy or .npz file (bad magic)"
