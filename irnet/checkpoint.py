"""Training checkpoints: parameters, model state, optimiser state and JSON metadata in one
`.npz` file.

Layout of the archive (written by `np.savez`, read with `allow_pickle=False` only):

    format          0-d str array, `FORMAT` ("irnet-checkpoint-2")
    meta            uint8 array, the UTF-8 text of a JSON object
    param/<name>    one array per parameter, by dotted name ("dense_0.w")
    state/<name>    one array per model state tensor ("batch_norm_0.running_mean")
    opt/<name>      one array per optimiser state entry ("m.dense_0.w", "t")

Format 1 had no model state: its `state/` entries were the optimiser's, and are read as such.

`meta` carries what the trainer needs to resume: epoch, step, model name (`"model"`), the
fingerprint of its computation (`"program"`), config, RNG states and history. JSON keeps
Python's big integers exactly, so `np.random.Generator.bit_generator.state` round-trips; NumPy
scalars and arrays in meta are written as plain numbers and lists (tuples come back as lists,
non-string dict keys as strings).

`load` validates every metadata field it knows that a checkpoint carries (`check_meta`: types,
ranges, and that epoch, step and history agree); `--resume` also needs each of them present
(`RESUME_FIELDS`), while `eval`, `predict` and `--init-from` read the weights alone (parameters
and model state) and need none. Unknown fields are kept and ignored.

Writes go to a temp file `.<name>.<pid>.<random>.tmp` beside the checkpoint, renamed into place;
a process killed mid-write leaves that file behind, and `remove_stale_temporaries` deletes those
whose writer is no longer alive.

A checkpoint fits a program when it holds the arrays the program expects, by name, shape and
dtype (`check_fits`): it is keyed by what it holds, not by the source text it came from.

Weights alone move between tools as `.safetensors` files (`save_weights`): the parameters and
the model state by irnet's names, no optimiser state, metadata `format`, `model` and `state`
(the JSON list of the names that are state). `load` reads them as a checkpoint without
optimiser state, so `--checkpoint`, `--init-from` and `Model.load` take them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from irnet.dialects.dtypes import numpy_dtype

from .diagnostics import IrnError

if TYPE_CHECKING:
    from .params import Argument

FORMAT = "irnet-checkpoint-2"
FORMAT_1 = "irnet-checkpoint-1"
"""The format before model state, still read."""
WEIGHTS_FORMAT = "irnet-weights-1"
"""The `format` metadata of a `.safetensors` file `save_weights` writes."""
SAFETENSORS = ".safetensors"
PARAM = "param/"
STATE = "state/"
OPT = "opt/"
MAX_LISTED = 5
"""How many differences `check_fits` names before summarising the rest."""

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive
_ARCHIVE_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError)
"""What a damaged archive raises (RuntimeError: zipfile's "encrypted", "unsupported method")."""


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    """Parameter values by dotted name, e.g. "dense_0.w"."""
    state: dict[str, np.ndarray] = field(default_factory=dict)
    """Model state by name, e.g. "batch_norm_0.running_mean"."""
    meta: dict = field(default_factory=dict)
    """JSON-serialisable: epoch, step, model, program, config, rng states, history."""
    opt: dict[str, np.ndarray] = field(default_factory=dict)
    """Optimiser state by name, e.g. "m.dense_0.w", "t"."""


def fingerprint(*texts: str) -> str:
    """SHA-256 hex of texts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


# --- saving -------------------------------------------------------------------------------------


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically: a reader sees the old file or the new, never a
    partial one. The parent directory is created if missing."""
    entries = _entries(checkpoint)  # refuse bad input before touching the disk
    write_file(Path(path), lambda f: np.savez(f, allow_pickle=False, **entries), "checkpoint")


def save_weights(
    path: Path,
    params: Mapping[str, np.ndarray],
    model: str,
    state: Mapping[str, np.ndarray] | None = None,
) -> None:
    """The parameters and the model state, as a `.safetensors` file keyed by irnet's names,
    which other tools (PyTorch, JAX, Hugging Face) read; `load` reads it back."""
    numpy_format = _safetensors().numpy
    state = state or {}
    # np.asarray, not np.ascontiguousarray: that one makes a 0-d array 1-d
    arrays = {name: np.asarray(value, order="C") for name, value in {**params, **state}.items()}
    metadata = {"format": WEIGHTS_FORMAT, "model": model, "state": json.dumps(list(state))}
    data = numpy_format.save(arrays, metadata=metadata)
    write_file(Path(path), lambda f: f.write(data), "weights")


def write_file(path: Path, write: Callable[[BinaryIO], object], what: str) -> None:
    """Write a file atomically with `write(f)`, naming it as `what` in an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, write)
    except OSError as e:
        raise IrnError(f"cannot write {what} {path}: {_reason(e)}") from None


def _safetensors():
    try:
        import safetensors.numpy  # the submodule, imported so that `safetensors.numpy` exists
    except ImportError:
        raise IrnError(
            "reading and writing .safetensors files needs the onnx extra: pip install 'irnet[onnx]'"
        ) from None
    return safetensors


def _entries(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    entries = {"format": np.array(FORMAT), "meta": _encode_meta(checkpoint.meta)}
    sections = ((PARAM, checkpoint.params), (STATE, checkpoint.state), (OPT, checkpoint.opt))
    for prefix, arrays in sections:
        for name, value in arrays.items():
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise TypeError(f"checkpoint entry {prefix}{name} is an object array")
            entries[prefix + name] = array
    return entries


def _encode_meta(meta: dict) -> np.ndarray:
    if not isinstance(meta, dict):
        raise TypeError(f"checkpoint meta must be a dict, not {type(meta).__name__}")
    text = json.dumps(meta, default=_json_default, ensure_ascii=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"checkpoint meta holds a {type(value).__name__}, which JSON cannot store")


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    # The writer's pid in the name tells a later run whether the file is debris of a killed
    # writer or the work of a live one (`remove_stale_temporaries`).
    prefix = f".{path.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


_TEMPORARY = re.compile(r"\..+\.npz\.(\d+)\.\w+\.tmp")
"""The name of `_write_atomically`'s temp file; group 1 is the writer's pid."""


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temp files that killed writers left in `directory`; the paths removed.

    Only files named as `_write_atomically` names them are touched, and only when their writer
    is gone: a pid that is not alive, or this process's own pid (reused from a dead writer,
    since this process has no write in progress when it calls this). A concurrent run writing
    into the same folder keeps its files. A reused pid of a dead writer keeps its file until
    that pid is free again: a leak of one file, never a deleted write."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:  # no such directory yet: nothing to clean
        return removed
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match and not _writer_alive(int(match[1])):
            with contextlib.suppress(FileNotFoundError):  # another run cleaned it first
                entry.unlink()
                removed.append(entry)
    return removed


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid() or not 0 < pid < 2**31:  # 0 and beyond pid_t: no process's pid
        return False
    if os.name != "posix":
        return True  # no cheap liveness test (os.kill would terminate it): keep the file
    try:
        os.kill(pid, 0)  # signal 0 checks existence and sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- loading ------------------------------------------------------------------------------------


def load(path: Path) -> Checkpoint:
    """Read a checkpoint written by `save`, or the parameters of a `.safetensors` file;
    anything else is refused with an IrnError."""
    path = Path(path)
    if path.suffix == SAFETENSORS:
        return _load_weights(path)
    try:
        arrays = dict(_read_archive(path))
    except OSError as e:
        raise IrnError(f"cannot read checkpoint {path}: {_reason(e)}") from None
    return _decode(path, arrays)


def _load_weights(path: Path) -> Checkpoint:
    """A `.safetensors` file's tensors as parameters, and those its `state` metadata lists as
    model state (no optimiser state, no other metadata)."""
    library = _safetensors()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IrnError(f"cannot read weights {path}: {_reason(e)}") from None
    try:
        tensors = library.numpy.load(data)
        with library.safe_open(path, "np") as opened:
            metadata = opened.metadata() or {}
        state_names = set(json.loads(metadata.get("state", "[]")))
    except Exception as e:  # SafetensorError, or a header or metadata that is not JSON
        raise IrnError(f"{path} is not a usable .safetensors file: {_one_line(e)}") from None
    params = {n: np.asarray(v) for n, v in tensors.items() if n not in state_names}
    state = {n: np.asarray(v) for n, v in tensors.items() if n in state_names}
    return Checkpoint(params, state)


def _read_archive(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    with open(path, "rb") as f:
        if f.read(4) not in _ZIP_MAGIC:
            raise _not_a_checkpoint(path, "it is not an .npz (zip) archive")
    try:
        npz = np.load(path, allow_pickle=False)
    except (*_ARCHIVE_ERRORS, ValueError) as e:
        raise _not_a_checkpoint(
            path, f"it is a damaged or truncated archive ({_one_line(e)})"
        ) from None
    with npz:
        for key in npz.files:
            yield key, _read_entry(path, npz, key)


def _read_entry(path: Path, npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        value = npz[key]
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise _not_a_checkpoint(
                path,
                f"entry {key!r} is an object array, which only unpickling could read, "
                "and irnet never unpickles checkpoint data",
            ) from None
        raise _damaged(path, key, e) from None
    except _ARCHIVE_ERRORS as e:
        raise _damaged(path, key, e) from None
    if not isinstance(value, np.ndarray):
        raise _not_a_checkpoint(path, f"entry {key!r} is not a NumPy array")
    return value


def _decode(path: Path, arrays: dict[str, np.ndarray]) -> Checkpoint:
    for key in ("format", "meta"):
        if key not in arrays:
            raise _not_a_checkpoint(path, f"it has no '{key}' entry")
    version = _check_format(path, arrays.pop("format"))
    meta = _decode_meta(path, arrays.pop("meta"))
    check_meta(path, meta)
    if version == FORMAT_1:  # its state/ was the optimiser's
        arrays = {OPT + k.removeprefix(STATE) if k.startswith(STATE) else k: v
                  for k, v in arrays.items()}  # fmt: skip
    sections = _split(path, arrays)
    return Checkpoint(sections[PARAM], sections[STATE], meta, sections[OPT])


def _check_format(path: Path, value: np.ndarray) -> str:
    version = (
        str(value) if value.dtype.kind == "U" and value.ndim == 0 else f"<{value.dtype} array>"
    )
    if version not in (FORMAT, FORMAT_1):
        raise _not_a_checkpoint(
            path,
            f"its format is '{version}', and this version of irnet reads '{FORMAT}' and "
            f"'{FORMAT_1}'",
        )
    return version


def _decode_meta(path: Path, value: np.ndarray) -> dict:
    if value.dtype != np.uint8 or value.ndim != 1:
        raise _not_a_checkpoint(path, "its 'meta' entry is not a byte array of JSON text")
    try:
        meta = json.loads(value.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _not_a_checkpoint(path, f"its 'meta' entry is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise _not_a_checkpoint(path, "its 'meta' entry is JSON but not an object")
    return meta


# --- metadata -------------------------------------------------------------------------------------

RESUME_FIELDS = ("model", "program", "epoch", "step", "config", "rng", "history")
"""The metadata `--resume` needs: all that the trainer writes."""


def check_meta(path: Path, meta: dict) -> None:
    """Refuse metadata that the trainer could not have written, naming the field and value:
    each known field's type and range, and the agreement of epoch, step and history (one
    record per epoch, numbered from 1, the last at the checkpoint's step). Absent fields pass:
    `require_meta` says which a use needs."""
    for name, check in _FIELD_CHECKS.items():
        if name in meta and (problem := check(meta[name])):
            raise _bad_field(path, name, meta[name], problem)
    epoch, step, history = meta.get("epoch"), meta.get("step"), meta.get("history")
    config, rng = meta.get("config") or {}, meta.get("rng") or {}
    if epoch is not None and epoch > config.get("epochs", epoch):
        raise _bad_field(path, "epoch", epoch, f"is past its config's epochs, {config['epochs']}")
    if "seed" in rng and "seed" in config and rng["seed"] != config["seed"]:
        raise _bad_field(
            path, "rng.seed", rng["seed"], f"differs from config.seed, {config['seed']}"
        )
    if history is None:
        return
    for number, record in enumerate(history, 1):
        if record.get("epoch") != number:
            where, value = f"history[{number - 1}].epoch", record.get("epoch")
            raise _bad_field(path, where, value, f"should be {number}: one record per epoch")
    if epoch is not None and len(history) != epoch:
        raise _bad_field(path, "epoch", epoch, f"disagrees with its {len(history)} history records")
    if step is not None and history and history[-1].get("step", step) != step:
        last = history[-1]["step"]
        raise _bad_field(path, "step", step, f"disagrees with its last record's step, {last}")


def require_meta(path: Path, meta: dict, fields: Iterable[str], use: str) -> None:
    """Refuse a checkpoint whose metadata lacks one of `fields`, which `use` needs."""
    missing = [name for name in fields if name not in meta]
    if missing:
        raise _not_a_checkpoint(
            path, f"its metadata has no {', '.join(map(repr, missing))}, which {use} needs"
        )


def _count_problem(value: object) -> str | None:
    """A whole number ≥ 0 (JSON's true and false are Python bools, which are ints: refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return "must be a whole number ≥ 0"
    return None


def _config_problem(value: object) -> str | None:
    if not isinstance(value, dict):
        return "must be an object of settings"
    for key in ("epochs", "batch"):
        if key in value and (_count_problem(value[key]) or value[key] == 0):
            return f"has {key} {_shown(value[key])}, which must be a whole number ≥ 1"
    if "seed" in value and value["seed"] is not None and _count_problem(value["seed"]):
        return f"has seed {_shown(value['seed'])}, which must be a whole number ≥ 0"
    return None


def _rng_problem(value: object) -> str | None:
    if not isinstance(value, dict):
        return 'must be an object {"seed": ..., "derivation": ...}'
    if "seed" in value and value["seed"] is not None and _count_problem(value["seed"]):
        return f"has seed {_shown(value['seed'])}, which must be a whole number ≥ 0"
    if not isinstance(value.get("derivation", ""), str):
        return "has a derivation that is not text"
    return None


def _history_problem(value: object) -> str | None:
    if not isinstance(value, list):
        return "must be a list of per-epoch records"
    for index, record in enumerate(value):
        if not isinstance(record, dict):
            return f"has record {index}, {_shown(record)}, which is not an object"
        for key, number in record.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                return f"has record {index} with {key} {_shown(number)}, which is not a number"
        if "step" in record and _count_problem(record["step"]):
            return f"has record {index} with step {_shown(record['step'])}"
    return None


_FIELD_CHECKS = {
    "model": lambda v: None if isinstance(v, str) and v else "must be a model name",
    "program": lambda v: (
        None
        if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)
        else "must be a SHA-256 fingerprint (64 hex digits)"
    ),
    "epoch": _count_problem,
    "step": _count_problem,
    "config": _config_problem,
    "rng": _rng_problem,
    "history": _history_problem,
}


def _bad_field(path: Path, name: str, value: object, problem: str) -> IrnError:
    return _not_a_checkpoint(
        path, f"its metadata field '{name}' is {_shown(value)}, which {problem}"
    )


def _shown(value: object, limit: int = 60) -> str:
    """A value as JSON, cut short: metadata can hold anything, error messages should not."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The arrays by section (`PARAM`, `STATE`, `OPT`), each by name."""
    sections: dict[str, dict[str, np.ndarray]] = {PARAM: {}, STATE: {}, OPT: {}}
    for key, value in arrays.items():
        prefix = next((p for p in sections if key.startswith(p)), None)
        if prefix is None:
            raise _not_a_checkpoint(path, f"it has an unexpected entry {key!r}")
        sections[prefix][key.removeprefix(prefix)] = value
    return sections


def _not_a_checkpoint(path: Path, problem: str) -> IrnError:
    return IrnError(f"{path} is not a usable irnet checkpoint: {problem}.")


def _damaged(path: Path, key: str, e: Exception) -> IrnError:
    return _not_a_checkpoint(path, f"entry {key!r} is damaged ({_one_line(e)})")


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _reason(e: OSError) -> str:
    return e.strerror or _one_line(e)


# --- fitting a program ---------------------------------------------------------------------------


Table = Mapping[str, tuple[tuple[int, ...], np.dtype]]
"""What a program expects of a checkpoint: array names to (shape, dtype)."""


def table_of(arguments: Iterable[Argument], kind: str) -> Table:
    """The table of a function's arguments of one kind: "param", "state" or "opt"."""
    chosen = (a for a in arguments if a.kind == kind)
    return {a.name: (tuple(a.type.get_shape()), numpy_dtype(a.type)) for a in chosen}


@dataclass
class Fit:
    """How a checkpoint's arrays meet a table, name by name."""

    loaded: list[str]
    """In both, with the same shape and dtype: these are the ones a program can take."""
    missing: list[str]
    """The program's, absent from the checkpoint."""
    unexpected: list[str]
    """The checkpoint's, unknown to the program."""
    mismatched: dict[str, str]
    """In both but differing, with how ("has shape [4, 3] in the checkpoint but [4, 5] in the
    model")."""

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def differences(self, kind: str) -> list[str]:
        """One phrase per difference; `kind` names the arrays ("parameter")."""
        return [
            *(f"{kind} '{name}' is missing from the checkpoint" for name in self.missing),
            *(f"the checkpoint has an unexpected {kind} '{name}'" for name in self.unexpected),
            *(f"{kind} '{name}' {how}" for name, how in self.mismatched.items()),
        ]

    def report(self) -> list[str]:
        """The lines of a non-strict load's report: what was loaded and what was not."""
        lines = [f"loaded {_count(self.loaded, 'parameter')}: {', '.join(self.loaded)}"]
        if self.missing:
            lines.append(f"missing, left as initialised: {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected, ignored: {', '.join(self.unexpected)}")
        for name, how in self.mismatched.items():
            lines.append(f"not loaded, left as initialised: '{name}' {how}")
        return lines


def compare(saved: Mapping[str, np.ndarray], expected: Table, owner: str = "the model") -> Fit:
    """Match `saved` arrays against `expected` by name, shape and dtype; `owner` is what the
    table describes, for the phrases ("the model", "the optimizer")."""
    fit = Fit(
        loaded=[],
        missing=[name for name in expected if name not in saved],
        unexpected=[name for name in saved if name not in expected],
        mismatched={},
    )
    for name in (name for name in expected if name in saved):
        shape, dtype = tuple(expected[name][0]), np.dtype(expected[name][1])
        array = saved[name]
        how = []
        if array.shape != shape:
            how.append(
                f"has shape {_shape(array.shape)} in the checkpoint but {_shape(shape)} in {owner}"
            )
        if array.dtype != dtype:
            how.append(f"is {array.dtype} in the checkpoint but {dtype} in {owner}")
        if how:
            fit.mismatched[name] = " and ".join(how)
        else:
            fit.loaded.append(name)
    return fit


def check_fits(
    checkpoint: Checkpoint,
    path: Path,
    *,
    model: str,
    params: Table,
    state: Table | None = None,
    opt: Table | None = None,
) -> Fit:
    """Refuse `checkpoint` (read from `path`) for `model` unless it holds exactly the parameters
    of `params` and the model state of `state` (none by default), by name, shape and dtype,
    and, when `opt` is given (a resume), exactly that optimiser state. Nothing else is
    compared: not the source text, so that editing a comment or an unrelated function keeps a
    checkpoint usable, and not the model name it was written for. Returns the weights' `Fit`
    (all of them loaded)."""
    state = state or {}
    fit = compare({**checkpoint.params, **checkpoint.state}, {**params, **state})
    differences = compare(checkpoint.params, params).differences("parameter")
    differences += compare(checkpoint.state, state).differences("state tensor")
    opt_fit = compare(checkpoint.opt, opt, "the optimizer") if opt is not None else None
    if opt_fit is not None:
        differences += opt_fit.differences("optimizer state")
    if not differences:
        return fit
    written_for = checkpoint.meta.get("model")
    origin = f", written for model '{written_for}'" if written_for not in (None, model) else ""
    advice = (
        " It was written with another optimizer: --init-from CKPT starts from its parameters "
        "with fresh optimizer state."
        if fit.exact and opt_fit is not None
        else ""
    )
    raise IrnError(
        f"cannot use checkpoint {path}{origin}, which does not match model '{model}': "
        + _summarise(differences)
        + advice
    )


def _count(names: list[str], noun: str) -> str:
    return f"{len(names)} {noun}{'s' * (len(names) != 1)}"


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _summarise(differences: list[str]) -> str:
    listed = "; ".join(differences[:MAX_LISTED])
    rest = len(differences) - MAX_LISTED
    return listed + (f"; and {rest} more difference{'s' * (rest > 1)}." if rest > 0 else ".")


# --- finding the newest checkpoint -------------------------------------------------------------


def latest(directory: Path, prefix: str) -> Path | None:
    """The checkpoint to resume from among those the trainer wrote into `directory`:
    `<prefix>-last.npz` if present, else the `<prefix>-epoch<k>.npz` with the highest k
    (by number, not by modification time). None when there is neither."""
    directory = Path(directory)
    last = directory / f"{prefix}-last.npz"
    if last.is_file():
        return last
    pattern = re.compile(re.escape(prefix) + r"-epoch(\d+)\.npz")
    try:
        candidates = [
            (int(match[1]), entry)
            for entry in directory.iterdir()
            if (match := pattern.fullmatch(entry.name)) and entry.is_file()
        ]
    except OSError:  # no such directory, or not a directory
        return None
    return max(candidates, default=(None, None))[1]
