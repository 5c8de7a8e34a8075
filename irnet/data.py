"""The data layer of `irnet train`: the sources a train block's `data = ...` entry names, loaded
into a `Dataset` of batch-first NumPy arrays, with seeded splitting and batching, and
`fit_to_input` to shape a source's examples to a model's inputs.

    data = mnist("../data/mnist")                  # MNIST IDX files, gzip or raw
    data = npz("arrays.npz", x="x", y="y")         # arrays by name
    data = npy("x.npy", "y.npy")                   # one array per file
    data = csv("table.csv.gz", label=-1)           # a numeric table, the label one of its columns
    data = csv("t.csv", x=["a", "b"], label="c")   # chosen columns, by header name or index
    data = text("input.txt", context=8)            # next-character prediction
    data = text("input.txt", part=0.9)             # ... on the first 90 % of the characters

Paths are relative to the `.irn` file's folder. Every problem with a source or its files is an
`IrnError` naming the file (and line, for text formats) and what is wrong.
"""

from __future__ import annotations

import csv as csv_module
import difflib
import gzip
import io
import json
import math
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from irnet.dialects.dtypes import numpy_dtype
from irnet.dialects.shapes import DYN, format_shape, format_type

from . import ast
from .diagnostics import IrnError

# --- datasets ------------------------------------------------------------------------------------


@dataclass
class FeatureStats:
    """Per-column mean and standard deviation of a normalised table, to normalise new rows."""

    mean: np.ndarray
    std: np.ndarray

    def apply(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)


@dataclass
class Dataset:
    inputs: list[np.ndarray]
    """Model inputs, first axis = examples."""
    targets: list[np.ndarray]
    """Training targets, same first axis."""
    source: str
    """What it was loaded from, for messages."""
    vocabulary: str | None = None
    """text(): the character of each id."""
    feature_stats: FeatureStats | None = None
    """csv(normalize=true): how the features were normalised."""

    def __post_init__(self) -> None:
        sizes = {len(a) for a in self.inputs + self.targets}
        if not self.inputs and not self.targets:
            raise IrnError(f"data from {self.source} holds no arrays")
        if len(sizes) > 1:
            shapes = ", ".join(format_shape(a.shape) for a in self.inputs + self.targets)
            raise IrnError(
                f"data from {self.source} has arrays with different numbers of examples "
                f"(shapes {shapes}); their first axes must agree"
            )

    def __len__(self) -> int:
        return len((self.inputs + self.targets)[0])

    def take(self, index: np.ndarray | slice) -> Dataset:
        """The examples at `index` (a slice keeps views; an index array copies)."""
        return replace(
            self,
            inputs=[a[index] for a in self.inputs],
            targets=[a[index] for a in self.targets],
        )

    def split(
        self, fraction: float, seed: int, contiguous: bool = False
    ) -> tuple[Dataset, Dataset]:
        """(train, validation): validation gets round(fraction * n) examples, drawn by a seeded
        permutation, or the last ones when `contiguous` (for overlapping text windows)."""
        if not (isinstance(fraction, int | float) and 0 <= fraction < 1):
            raise IrnError(f"val_split must be at least 0 and less than 1, not {fraction}")
        n = len(self)
        held = round(fraction * n)
        if held == n:
            raise IrnError(
                f"val_split = {fraction} leaves none of the {n} examples of {self.source} "
                "for training"
            )
        if contiguous:
            return self.take(slice(0, n - held)), self.take(slice(n - held, n))
        order = np.random.default_rng(seed).permutation(n)
        return self.take(np.sort(order[held:])), self.take(np.sort(order[:held]))

    def batches(
        self, batch_size: int, rng: np.random.Generator | None
    ) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
        """(inputs, targets) batches: shuffled with `rng` (one permutation per call) or in order;
        the last batch holds the remaining examples and may be smaller."""
        count = self.num_batches(batch_size)
        order = rng.permutation(len(self)) if rng is not None else None
        for b in range(count):
            window = slice(b * batch_size, (b + 1) * batch_size)
            index = window if order is None else order[window]
            yield [a[index] for a in self.inputs], [a[index] for a in self.targets]

    def num_batches(self, batch_size: int) -> int:
        if not (isinstance(batch_size, int) and not isinstance(batch_size, bool)) or batch_size < 1:
            raise IrnError(f"batch must be a positive integer, not {batch_size!r}")
        return math.ceil(len(self) / batch_size)


# --- data specs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """A train block's `data = kind(args..., options...)` entry, its values as Python values."""

    kind: str
    args: tuple = ()
    options: dict = field(default_factory=dict)
    loc: ast.Loc | None = field(default=None, compare=False)

    def __str__(self) -> str:
        items = [irn_literal(a) for a in self.args]
        items += [f"{k}={irn_literal(v)}" for k, v in self.options.items()]
        return f"{self.kind}({', '.join(items)})"


def irn_literal(value: Any) -> str:
    """A value as a `.irn` author writes it: `"a"`, `true`, `-1`, `["a", "b"]`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(irn_literal(v) for v in value) + "]"
    return str(value)


# --- options and the table of sources --------------------------------------------------------


@dataclass(frozen=True)
class Option:
    default: Any
    expected: str
    """What the option accepts, for messages."""
    accepts: Callable[[Any], bool]
    shown: str | None = None
    """How describe_kinds() shows the default, when not as a literal."""
    is_path: bool = False
    """Relative to the .irn file's folder, like the positional arguments."""


def choice(default: Any, *values: Any) -> Option:
    expected = ", ".join(map(irn_literal, values[:-1])) + f" or {irn_literal(values[-1])}"
    return Option(default, expected, lambda v: any(type(v) is type(c) and v == c for c in values))


def integer(default: int, minimum: int | None = None) -> Option:
    expected = "an integer" if minimum is None else f"an integer of at least {minimum}"
    return Option(default, expected, lambda v: type(v) is int and (minimum is None or v >= minimum))


def _is_names(value: Any) -> bool:
    is_list = isinstance(value, list | tuple) and len(value) > 0
    return isinstance(value, str) or (is_list and all(isinstance(v, str) for v in value))


def _are_targets(value: Any) -> bool:
    """Target names; `[]` for a model trained without targets (an autoencoder)."""
    return value in ([], ()) or _is_names(value)


def _is_column(value: Any) -> bool:
    return type(value) is int or isinstance(value, str)


def _is_columns(value: Any) -> bool:
    is_list = isinstance(value, list | tuple) and len(value) > 0
    return _is_column(value) or (is_list and all(map(_is_column, value)))


def _is_text_part(value: Any) -> bool:
    """A fraction in [-1, 1] other than 0, or a character range [start, end] with start < end."""
    if isinstance(value, list | tuple):
        pair = len(value) == 2 and all(type(v) is int for v in value)
        return pair and 0 <= value[0] < value[1]
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < abs(value) <= 1


NAMES = "a name or a non-empty list of names"
TARGET_NAMES = "a name, a list of names, or [] for a model without targets"
PATH = Option(None, "a path", lambda v: isinstance(v, str), shown="PATH", is_path=True)
LABEL = Option(None, "a column index or a header name", _is_column, "-1")
COLUMNS = Option(
    None,
    "a column (an index or a header name) or a non-empty list of columns",
    _is_columns,
    "OTHERS",
)
TEXT_PART = Option(
    None,
    "a fraction (0.9: the first 90 %; -0.1: the last 10 %) or a character range [start, end] "
    "with 0 <= start < end",
    _is_text_part,
    "ALL",
)
BOOLEAN = choice(False, True, False)


@dataclass(frozen=True)
class Source:
    params: tuple[str, ...]
    """Its positional arguments, paths relative to the .irn file's folder."""
    options: dict[str, Option]
    read: Callable[[list[Path], dict[str, Any], str], Dataset]
    """(paths, options with defaults, part) -> Dataset."""
    summary: str
    has_test_part: bool = False
    find_parts: Callable[[list[Path]], tuple[str, ...]] = lambda paths: ("train",)
    """(paths) -> the parts present on disk, for sources whose folders may lack one."""

    def signature(self, kind: str) -> str:
        options = [
            f"{name}={o.shown or irn_literal(o.default)}" for name, o in self.options.items()
        ]
        return f"{kind}({', '.join([*self.params, *options])})"


def describe_kinds() -> str:
    """One line per data source, its arguments and options, for messages and --help."""
    return "\n".join(f"  {s.signature(kind)}: {s.summary}" for kind, s in SOURCES.items())


def parts(spec: DataSpec, base_dir: Path) -> tuple[str, ...]:
    """The parts ("train", "test") that the data `spec` names has on disk, without reading them:
    an mnist folder may hold either pair of IDX files (Fashion-MNIST's test set comes alone)."""
    source = _source(spec)
    _bind(spec, source)
    return source.find_parts([_resolve(base_dir, arg) for arg in spec.args])


def load(spec: DataSpec, base_dir: Path, part: str = "train") -> Dataset:
    """The `part` ("train" or "test") of the data `spec` names; paths relative to `base_dir`."""
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', not {part!r}")
    source = _source(spec)
    options = _bind(spec, source)
    for name, option in source.options.items():
        if option.is_path and options[name] is not None:
            options[name] = _resolve(base_dir, options[name])
    if part == "test" and not source.has_test_part:
        raise IrnError(
            f"{spec} has no separate test part; hold out examples with val_split instead",
            spec.loc,
        )
    paths = [_resolve(base_dir, arg) for arg in spec.args]
    try:
        dataset = source.read(paths, options, part)
    except IrnError as e:
        e.loc = e.loc or spec.loc
        raise
    label = str(spec) if part == "train" else f"{spec} (test part)"
    return replace(dataset, source=label)


def _resolve(base_dir: Path, path: str) -> Path:
    return Path(base_dir) / Path(path).expanduser()


def _source(spec: DataSpec) -> Source:
    if spec.kind not in SOURCES:
        raise IrnError(
            f"unknown data source '{spec.kind}'{_suggest(spec.kind, SOURCES)}",
            spec.loc,
            notes=[f"the data sources are:\n{describe_kinds()}"],
        )
    return SOURCES[spec.kind]


def _bind(spec: DataSpec, source: Source) -> dict[str, Any]:
    """The options with their defaults, after checking the arguments against `source`."""
    usage = [f"usage: {source.signature(spec.kind)}"]
    if len(spec.args) != len(source.params):
        wanted = len(source.params)
        raise IrnError(
            f"{spec.kind}() takes {wanted} argument{'s' * (wanted != 1)} "
            f"({', '.join(source.params)}) before its options, but {len(spec.args)} "
            f"{'was' if len(spec.args) == 1 else 'were'} given",
            spec.loc,
            notes=usage,
        )
    for param, arg in zip(source.params, spec.args):
        if not isinstance(arg, str):
            raise IrnError(f"{spec.kind}(): {param} must be a path string", spec.loc, usage)
    for name, value in spec.options.items():
        option = source.options.get(name)
        if option is None:
            known = ", ".join(source.options)
            raise IrnError(
                f"{spec.kind}() has no option '{name}'{_suggest(name, source.options)}; "
                f"its options are {known}",
                spec.loc,
                notes=usage,
            )
        if not option.accepts(value):
            raise IrnError(
                f"{spec.kind}(): {name} must be {option.expected}, not {irn_literal(value)}",
                spec.loc,
                notes=usage,
            )
    return {**{k: o.default for k, o in source.options.items()}, **spec.options}


def _suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- files -------------------------------------------------------------------------------------


def shown(path: Path) -> str:
    """A path as messages show it: normalised, relative to the working directory when inside."""
    text = os.path.normpath(path)
    if os.path.isabs(text):
        relative = os.path.relpath(text)
        return text if relative.startswith("..") else relative
    return text


MAX_TEXT_BYTES = 256 * 1024 * 1024
"""The largest csv or text file read (after gunzipping): parsing text costs many times its
size in memory, so a bigger table belongs in an .npz archive."""


def check_regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: a folder, or a device or FIFO
    (which reads forever or blocks)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise IrnError(f"{shown(path)}: no such file") from None
    except OSError as e:
        raise IrnError(f"{shown(path)}: cannot read it ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        raise IrnError(f"{shown(path)}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise IrnError(f"{shown(path)}: is a device, FIFO or socket, not a regular file")


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """A file's bytes, gunzipped when it starts with the gzip magic bytes; with a `limit`,
    refused when there are more than `limit` of them (gunzipped or not)."""
    check_regular_file(path)
    cap = -1 if limit is None else limit + 1
    try:
        with open(path, "rb") as f:
            data = f.read(cap)
    except OSError as e:
        raise IrnError(f"{shown(path)}: cannot read it ({e.strerror})") from None
    if data.startswith(b"\x1f\x8b"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
                data = unzipped.read(cap)
        except (OSError, EOFError, zlib.error) as e:
            raise IrnError(f"{shown(path)}: not a readable gzip file ({e})") from None
    if limit is not None and len(data) > limit:
        raise IrnError(
            f"{shown(path)}: larger than the {limit // (1024 * 1024)} MiB a csv or text file "
            "may be (an .npz archive holds bigger data)"
        )
    return data


def read_text(path: Path) -> str:
    """A csv or text file's text, at most `MAX_TEXT_BYTES` of UTF-8."""
    data = read_bytes(path, MAX_TEXT_BYTES)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise IrnError(
            f"{shown(path)}: not UTF-8 text (byte {e.start}, line {line}, column {column})"
        ) from None


# --- mnist -------------------------------------------------------------------------------------

IDX_IMAGES = 2051  # unsigned bytes, 3 dimensions
IDX_LABELS = 2049  # unsigned bytes, 1 dimension
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def read_mnist(paths: list[Path], options: dict[str, Any], part: str) -> Dataset:
    folder = paths[0]
    if not folder.is_dir():
        raise IrnError(f"{shown(folder)}: no such folder (mnist() takes the folder of IDX files)")
    if part == "train" and mnist_parts(paths) == ("test",):
        train_files = " and ".join(MNIST_FILES["train"])
        raise IrnError(
            f"{shown(folder)}: has no training part, only the test part (t10k files); "
            f"training needs {train_files} (irnet eval --part test can evaluate this folder)"
        )
    image_file, label_file = (find_idx_file(folder, stem) for stem in MNIST_FILES[part])
    images = read_idx(image_file, IDX_IMAGES, "image")
    labels = read_idx(label_file, IDX_LABELS, "label")
    if len(images) != len(labels):
        raise IrnError(
            f"{shown(image_file)} has {len(images)} images but {shown(label_file)} has "
            f"{len(labels)} labels"
        )
    pixels = scale_pixels(images.astype(np.float32), options["normalize"])
    return Dataset([pixels], [labels.astype(np.int32)], shown(folder))


def scale_pixels(pixels: np.ndarray, normalize: str) -> np.ndarray:
    """ "none": 0..255; "scale": 0..1; "standardize": MNIST's mean 0 and std 1. In place."""
    if normalize != "none":
        pixels /= 255
    if normalize == "standardize":
        pixels -= MNIST_MEAN
        pixels /= MNIST_STD
    return pixels


def mnist_parts(paths: list[Path]) -> tuple[str, ...]:
    """The parts with at least one of their IDX files in the folder; a part missing its other
    file is reported when it is read."""
    folder = paths[0]
    return tuple(
        part for part, stems in MNIST_FILES.items() if any(idx_file(folder, stem) for stem in stems)
    )


def idx_file(folder: Path, stem: str) -> Path | None:
    """`stem.gz` or `stem`, also spelled with a dot before `idx` as some mirrors do."""
    dotted = stem.replace("-idx", ".idx")
    for name in (f"{stem}.gz", stem, f"{dotted}.gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def find_idx_file(folder: Path, stem: str) -> Path:
    found = idx_file(folder, stem)
    if found is not None:
        return found
    needed = ", ".join(n for pair in MNIST_FILES.values() for n in pair)
    raise IrnError(
        f"{shown(folder)}: missing {stem}.gz (or {stem}); an MNIST folder holds {needed}, "
        "each gzipped or not"
    )


def read_idx(path: Path, magic: int, what: str) -> np.ndarray:
    """An IDX file of unsigned bytes, its header checked against `magic` and its length."""
    data = read_bytes(path)
    if len(data) < 4:
        raise IrnError(f"{shown(path)}: truncated: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise IrnError(
            f"{shown(path)}: not an IDX {what} file (magic number {found}, expected {magic})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IrnError(f"{shown(path)}: truncated in its header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size, body = math.prod(dims), len(data) - header
    if body != size:
        problem = "truncated" if body < size else "longer than its header says"
        raise IrnError(
            f"{shown(path)}: {problem}: the header announces {dims[0]} {what}s of shape "
            f"{format_shape(dims[1:])} ({size} bytes) but {body} bytes follow it"
        )
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(dims)


# --- npz, npy ----------------------------------------------------------------------------------


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive


def read_array_file(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """An .npy array, or an .npz archive's arrays by name; never unpickles."""
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise IrnError(f"{shown(path)}: cannot read it ({e.strerror})") from None
    # np.load takes any other file for a pickle, which allow_pickle=False then refuses as
    # "pickled data": say what the file is not instead.
    if not magic.startswith((NPY_MAGIC, *ZIP_MAGICS)):
        raise IrnError(f"{shown(path)}: cannot read it: not an .npy or .npz file (bad magic)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise IrnError(f"{shown(path)}: cannot read it as .npy/.npz ({e})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
    try:
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise IrnError(f"{shown(path)}: cannot read its arrays ({e})") from None


def read_npz(paths: list[Path], options: dict[str, Any], part: str) -> Dataset:
    path = paths[0]
    arrays = read_array_file(path)
    if not isinstance(arrays, dict):
        raise IrnError(f"{shown(path)}: an .npy file with one array; use npy(x_path, y_path)")

    def pick(names: str | list[str]) -> list[np.ndarray]:
        names = [names] if isinstance(names, str) else list(names)
        missing = [n for n in names if n not in arrays]
        if missing:
            has = ", ".join(f"'{n}'" for n in arrays) or "no arrays"
            hint = " (a model without targets takes y=[])" if missing == ["y"] else ""
            raise IrnError(f"{shown(path)}: has no array '{missing[0]}'; it has {has}{hint}")
        return [arrays[n] for n in names]

    return Dataset(pick(options["x"]), pick(options["y"]), shown(path))


def read_npy(paths: list[Path], options: dict[str, Any], part: str) -> Dataset:
    arrays = [read_array_file(p) for p in paths]
    for path, array in zip(paths, arrays):
        if isinstance(array, dict):
            raise IrnError(f"{shown(path)}: an .npz archive; use npz(path, x=..., y=...)")
    return Dataset([arrays[0]], [arrays[1]], shown(paths[0]))


# --- csv ---------------------------------------------------------------------------------------

DELIMITERS = (";", ",", "\t")
"""Tried in this order on a line; a line with none of them is split at whitespace (" ")."""


@dataclass
class Table:
    values: np.ndarray
    """float64 [rows, columns]."""
    header: list[str] | None
    lines: list[int]
    """The line number of each row."""
    name: str


def read_csv(paths: list[Path], options: dict[str, Any], part: str) -> Dataset:
    table = read_table(paths[0], options["header"], options["delimiter"])
    label = options["label"]
    if options["target"] is not None:
        if label is not None:
            raise IrnError("csv(): give either label (a column) or target (a file), not both")
        label_index, target = None, target_column(options["target"], table)
    else:
        label_index = column_index(table, -1 if label is None else label, "label")
        target = table.values[:, label_index]
    features = feature_columns(table, options["x"], label_index)
    stats = feature_stats(features) if options["normalize"] else None
    features = stats.apply(features) if stats else features.astype(np.float32)
    targets = class_labels(target, table) if options["classes"] else regression(target)
    return Dataset([features], [targets], table.name, feature_stats=stats)


def read_table(path: Path, header: bool | str, delimiter: str) -> Table:
    name = shown(path)
    lines = [(no, line) for no, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    if not lines:
        raise IrnError(f"{name}: empty file, no rows")
    if delimiter == "auto":
        delimiter = detect_delimiter(lines[min(1, len(lines) - 1)][1])
    rows = split_rows(lines, delimiter)
    first = rows[0][1]
    has_header = not all(map(is_number, first)) if header == "auto" else header
    body = rows[1:] if has_header else rows
    if not body:
        raise IrnError(f"{name}: has a header line but no rows")
    check_widths(body, name)
    return Table(to_floats(body, name), first if has_header else None, [no for no, _ in body], name)


def detect_delimiter(line: str) -> str:
    return next((d for d in DELIMITERS if d in line), " ")


def split_rows(lines: list[tuple[int, str]], delimiter: str) -> list[tuple[int, list[str]]]:
    texts = [line for _, line in lines]
    if delimiter == " ":
        cells = [text.split() for text in texts]
    else:
        cells = [[c.strip() for c in row] for row in csv_module.reader(texts, delimiter=delimiter)]
    return [(no, row) for (no, _), row in zip(lines, cells)]


def check_widths(rows: list[tuple[int, list[str]]], name: str) -> None:
    first_no, first = rows[0]
    for no, row in rows:
        if len(row) != len(first):
            raise IrnError(
                f"{name}:{no}: row has {len(row)} columns but line {first_no} has {len(first)}"
            )


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def to_floats(rows: list[tuple[int, list[str]]], name: str) -> np.ndarray:
    try:
        return np.array([row for _, row in rows], dtype=np.float64)
    except ValueError:
        pass
    for no, row in rows:  # find the culprit to name it
        for column, cell in enumerate(row, 1):
            if not is_number(cell):
                what = "is empty" if cell == "" else f"is {cell!r}, not a number"
                raise IrnError(f"{name}:{no}: column {column} {what}")
    raise AssertionError("unreachable: a row that NumPy cannot convert holds a non-number")


def column_index(table: Table, column: int | str, option: str) -> int:
    """The index, from 0, of the column that the option `option` names by header name or by
    index (negative from the end)."""
    width = table.values.shape[1]
    if isinstance(column, str):
        if table.header is None:
            raise IrnError(
                f"{table.name}: {option}='{column}' names a column, but there is no header"
            )
        if column not in table.header:
            names = ", ".join(f"'{h}'" for h in table.header)
            raise IrnError(f"{table.name}: no column named '{column}'; the header has {names}")
        index = table.header.index(column)
    else:
        index = column
    if not -width <= index < width:
        raise IrnError(f"{table.name}: no {option} column {column}; the rows have {width} columns")
    return index % width


def feature_columns(table: Table, x: Any, label: int | None) -> np.ndarray:
    """The columns that `x` names, in its order; by default every column but the label's."""
    width = table.values.shape[1]
    if x is None:
        columns = [c for c in range(width) if c != label]
        if not columns:
            raise IrnError(f"{table.name}: has one column, the label; no features are left")
    else:
        columns = [column_index(table, c, "x") for c in ([x] if _is_column(x) else x)]
        if label in columns:  # a feature equal to the label would leak the answer
            name = f"'{table.header[label]}'" if table.header else str(label)
            raise IrnError(f"{table.name}: column {name} is the label; x cannot take it too")
    return table.values[:, columns]


def target_column(path: Path, table: Table) -> np.ndarray:
    targets = read_table(path, "auto", "auto")
    rows, columns = targets.values.shape
    if columns != 1:
        raise IrnError(f"{targets.name}: has {columns} columns; a target file has one")
    if rows != len(table.values):
        raise IrnError(f"{targets.name}: has {rows} rows but {table.name} has {len(table.values)}")
    return targets.values[:, 0]


def class_labels(target: np.ndarray, table: Table) -> np.ndarray:
    bad = np.flatnonzero((target != np.round(target)) | (target < 0))
    if len(bad):
        raise IrnError(
            f"{table.name}:{table.lines[bad[0]]}: label {target[bad[0]]:g} is not a class "
            "index (classes=true needs integers 0, 1, 2, ...)"
        )
    return target.astype(np.int32)


def regression(target: np.ndarray) -> np.ndarray:
    return target[:, None].astype(np.float32)


def feature_stats(features: np.ndarray) -> FeatureStats:
    mean, std = features.mean(axis=0), features.std(axis=0)
    std[std == 0] = 1  # a constant column becomes zeros
    return FeatureStats(mean.astype(np.float32), std.astype(np.float32))


# --- text --------------------------------------------------------------------------------------


def read_characters(paths: list[Path], options: dict[str, Any], part: str) -> Dataset:
    path, context, chosen = paths[0], options["context"], options["part"]
    stride = options["stride"]
    codes = np.frombuffer(read_text(path).encode("utf-32-le"), dtype=np.uint32)
    # The vocabulary is the whole file's, so that every part of it numbers characters alike
    # (a model trained on part=0.9 is evaluated on part=-0.1 with the same ids).
    alphabet, ids = np.unique(codes, return_inverse=True)
    ids = text_part(ids.astype(np.int32), chosen, path)
    if len(ids) <= context:
        holds = "has" if chosen is None else f"part={irn_literal(chosen)} holds"
        raise IrnError(
            f"{shown(path)}: {holds} {len(ids)} characters; context={context} needs at least "
            f"{context + 1}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], context)  # a view: no copy
    vocabulary = "".join(map(chr, alphabet))
    return Dataset(
        [windows[::stride]], [ids[context:][::stride]], shown(path), vocabulary=vocabulary
    )


def text_part(ids: np.ndarray, part: float | list[int] | None, path: Path) -> np.ndarray:
    """The characters that `part` selects: all (None), [start, end) by index, the first
    fraction f of them (f > 0), or the last -f (f < 0)."""
    if part is None:
        return ids
    n = len(ids)
    if isinstance(part, list | tuple):
        start, end = part
        if end > n:
            raise IrnError(f"{shown(path)}: part={irn_literal(part)} ends past its {n} characters")
        return ids[start:end]
    # The fraction as written (0.9 is 9/10, not the float just under it), so that part=-0.1
    # starts exactly where part=0.9 ends: the two split the text with neither gap nor overlap.
    fraction = Fraction(repr(part))
    return ids[: round(fraction * n)] if fraction > 0 else ids[round((1 + fraction) * n) :]


SOURCES: dict[str, Source] = {
    "mnist": Source(
        ("dir",),
        {"normalize": choice("scale", "scale", "standardize", "none")},
        read_mnist,
        "MNIST IDX files (gzip or raw), images f32[N, 28, 28] and labels i32[N]; "
        "a train and a test part (or the test part alone)",
        has_test_part=True,
        find_parts=mnist_parts,
    ),
    "npz": Source(
        ("path",),
        {
            "x": Option("x", NAMES, _is_names),
            "y": Option("y", TARGET_NAMES, _are_targets),
        },
        read_npz,
        "inputs x and targets y, arrays by name from an .npz archive",
    ),
    "npy": Source(("x_path", "y_path"), {}, read_npy, "inputs and targets from two .npy files"),
    "csv": Source(
        ("path",),
        {
            "label": LABEL,
            "x": COLUMNS,
            "header": choice("auto", True, False, "auto"),
            "target": PATH,
            "normalize": BOOLEAN,
            "delimiter": choice("auto", "auto", ",", ";", "\t", " "),
            "classes": BOOLEAN,
        },
        read_csv,
        "a numeric table (.gz too): features f32[N, F] (the columns x, or all but the label), "
        "the label column (or the one column of the target file) f32[N, 1], or i32[N] with "
        "classes=true",
    ),
    "text": Source(
        ("path",),
        {"context": integer(8, minimum=1), "part": TEXT_PART, "stride": integer(1, minimum=1)},
        read_characters,
        "characters (all, or the part: a fraction or a range [start, end]): windows "
        "i32[N, context] of character ids starting every `stride` characters, the next "
        "character i32[N]",
    ),
}


# --- fitting data to a model -------------------------------------------------------------------


def fit_to_input(
    array: np.ndarray,
    input_type: Any,
    name: str,
    source: str,
    what: str = "the model's input",
) -> np.ndarray:
    """`array` (batch-first) reshaped to the type of the model's input `name` (batch-first,
    the rest static, or dynamic where the array agrees) and cast to its dtype.

    `input_type` is an xDSL TensorType or a shape (a sequence of ints; -1 or None for `?`)."""
    shape, dtype, spelled = _model_type(input_type)
    if not shape:
        raise IrnError(f"{what} {name} is {spelled}, which has no batch dimension for data")
    example, wanted = array.shape[1:], shape[1:]

    def mismatch() -> IrnError:
        return IrnError(
            f"data from {source} has examples of shape {format_shape(example)} "
            f"({math.prod(example)} values) but {what} {name} is {spelled}"
        )

    if DYN not in wanted:
        if math.prod(example) != math.prod(wanted):
            raise mismatch()
        array = array.reshape((array.shape[0], *wanted))
    elif len(example) != len(wanted) or any(w not in (DYN, e) for w, e in zip(wanted, example)):
        raise mismatch()
    if dtype is None or array.dtype == dtype:
        return array
    if not np.can_cast(array.dtype, dtype, "same_kind"):
        raise IrnError(
            f"data from {source} has {array.dtype} values but {what} {name} is {spelled}"
        )
    return array.astype(dtype)


def _model_type(input_type: Any) -> tuple[tuple[int, ...], np.dtype | None, str]:
    """(shape with DYN for `?`, NumPy dtype or None, the type as `.irn` spells it)."""
    if hasattr(input_type, "get_shape"):
        return tuple(input_type.get_shape()), numpy_dtype(input_type), format_type(input_type)
    shape = tuple(DYN if d is None else d for d in input_type)
    return shape, None, format_shape(shape)
