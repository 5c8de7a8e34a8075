"""Training checkpoints: parameters, optimiser state and JSON metadata in one `.npz` file.

Layout of the archive (written by `np.savez`, read with `allow_pickle=False` only):

    format          0-d str array, `FORMAT` ("irnet-checkpoint-1")
    meta            uint8 array, the UTF-8 text of a JSON object
    param/<name>    one array per parameter, by dotted name ("dense_0.w")
    state/<name>    one array per optimiser state entry ("m.dense_0.w", "t")

`meta` carries what the trainer needs to resume: epoch, step, model name (`"model"`), source
hash (`"source_hash"`), config, RNG states and history. JSON keeps Python's big integers exactly,
so `np.random.Generator.bit_generator.state` round-trips; NumPy scalars and arrays in meta are
written as plain numbers and lists (tuples come back as lists, non-string dict keys as strings).
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .diagnostics import IrnError

FORMAT = "irnet-checkpoint-1"
PARAM = "param/"
STATE = "state/"
MAX_LISTED = 5
"""How many differences `check_compatible` names before summarising the rest."""

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive
_ARCHIVE_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError)
"""What a damaged archive raises (RuntimeError: zipfile's "encrypted", "unsupported method")."""


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    """Parameter values by dotted name, e.g. "dense_0.w"."""
    state: dict[str, np.ndarray] = field(default_factory=dict)
    """Optimiser state by name, e.g. "m.dense_0.w", "t"."""
    meta: dict = field(default_factory=dict)
    """JSON-serialisable: epoch, step, model, source_hash, config, rng states, history."""


def source_hash(*texts: str) -> str:
    """SHA-256 hex of a model's source texts (main file first, then imports in a stable order).

    Each text is length-prefixed, so ("ab", "c") and ("a", "bc") hash differently."""
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
    path = Path(path)
    entries = _entries(checkpoint)  # refuse bad input before touching the disk
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, entries)
    except OSError as e:
        raise IrnError(f"cannot write checkpoint {path}: {_reason(e)}") from None


def _entries(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    entries = {"format": np.array(FORMAT), "meta": _encode_meta(checkpoint.meta)}
    for prefix, arrays in ((PARAM, checkpoint.params), (STATE, checkpoint.state)):
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


def _write_atomically(path: Path, entries: dict[str, np.ndarray]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


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
    """Read a checkpoint written by `save`; anything else is refused with an IrnError."""
    path = Path(path)
    try:
        arrays = dict(_read_archive(path))
    except OSError as e:
        raise IrnError(f"cannot read checkpoint {path}: {_reason(e)}") from None
    return _decode(path, arrays)


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
    _check_format(path, arrays.pop("format"))
    meta = _decode_meta(path, arrays.pop("meta"))
    params, state = _split(path, arrays)
    return Checkpoint(params=params, state=state, meta=meta)


def _check_format(path: Path, value: np.ndarray) -> None:
    version = (
        str(value) if value.dtype.kind == "U" and value.ndim == 0 else f"<{value.dtype} array>"
    )
    if version != FORMAT:
        raise _not_a_checkpoint(
            path, f"its format is '{version}', and this version of irnet reads '{FORMAT}'"
        )


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


def _split(path: Path, arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
    params: dict[str, np.ndarray] = {}
    state: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key.startswith(PARAM):
            params[key.removeprefix(PARAM)] = value
        elif key.startswith(STATE):
            state[key.removeprefix(STATE)] = value
        else:
            raise _not_a_checkpoint(path, f"it has an unexpected entry {key!r}")
    return params, state


def _not_a_checkpoint(path: Path, problem: str) -> IrnError:
    return IrnError(f"{path} is not a usable irnet checkpoint: {problem}.")


def _damaged(path: Path, key: str, e: Exception) -> IrnError:
    return _not_a_checkpoint(path, f"entry {key!r} is damaged ({_one_line(e)})")


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _reason(e: OSError) -> str:
    return e.strerror or _one_line(e)


# --- compatibility ------------------------------------------------------------------------------


def check_compatible(
    checkpoint: Checkpoint,
    path: Path,
    *,
    model: str,
    source_hash: str,
    params: Mapping[str, tuple[tuple[int, ...], np.dtype]],
) -> None:
    """Refuse to resume `model` from `checkpoint` (read from `path`) unless it was written for
    the same model, from the same source, with the same parameter names, shapes and dtypes."""
    differences = [
        *_identity_differences(checkpoint.meta, model, source_hash),
        *_param_differences(checkpoint.params, params),
    ]
    if differences:
        raise IrnError(
            f"cannot use checkpoint {path}, which does not match model '{model}': "
            + _summarise(differences)
        )


def _identity_differences(meta: dict, model: str, source: str) -> Iterator[str]:
    written_for = meta.get("model")
    if written_for is None:
        yield "it does not record which model it was written for"
    elif written_for != model:
        yield f"it was written for model '{written_for}'"
    if meta.get("source_hash") != source:
        yield "the model source changed since the checkpoint was written"


def _param_differences(
    saved: Mapping[str, np.ndarray], expected: Mapping[str, tuple[tuple[int, ...], np.dtype]]
) -> Iterator[str]:
    for name in sorted(expected.keys() - saved.keys()):
        yield f"parameter '{name}' is missing from the checkpoint"
    for name in sorted(saved.keys() - expected.keys()):
        yield f"the checkpoint has a parameter '{name}' that the model does not"
    for name in sorted(expected.keys() & saved.keys()):
        shape, dtype = tuple(expected[name][0]), np.dtype(expected[name][1])
        array = saved[name]
        if array.shape != shape:
            yield (
                f"parameter '{name}' has shape {_shape(array.shape)} in the checkpoint "
                f"but {_shape(shape)} in the model"
            )
        if array.dtype != dtype:
            yield f"parameter '{name}' is {array.dtype} in the checkpoint but {dtype} in the model"


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
