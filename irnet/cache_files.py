"""Files of the compile cache that this process may trust: private folders, atomic writes,
locks between processes and content hashes. Code in the cache runs in the user's process, so
every folder irnet makes there is created mode 0700, and a cache folder that another user owns
or can write is refused (`IrnError`: the CLI exits 1 and says how to fix it) rather than worked
around, since any cache under such a folder could be planted."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from .diagnostics import IrnError

CACHE_ENV = "IRNET_CACHE_DIR"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "irnet"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_state(folder: Path) -> tuple[int, int] | None:
    """A folder's modification time and size: they change when a file is added to it, so a
    cache looks for new Numba files only when this does."""
    try:
        st = folder.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def private_folder(folder: Path) -> Path:
    """`folder`, created mode 0700 if missing; an error if another user owns or can write it
    (they could plant code that this process would run)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise IrnError(
            f"the compile cache folder {folder} belongs to another user (uid {st.st_uid}); "
            f"set {CACHE_ENV} to a folder of your own"
        )
    if st.st_mode & 0o022:
        raise IrnError(
            f"the compile cache folder {folder} can be written by other users "
            f"(mode {st.st_mode & 0o777:o}); run `chmod 700 {folder}` or set {CACHE_ENV} "
            "to a folder of your own"
        )
    return folder


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temp file and rename it over `path`: readers see the old file or the new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) while inside."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield  # closing the file releases the lock
