"""Diagnostics: source positions, user-facing errors (`file:line:col: error: message`, the
source line and a caret) and IR locations mapped back to `.irn` positions.

A leaf module: every layer (dialects, lowering, the frontend, the runtime) reports through it,
and it imports nothing from the project.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdsl.dialects.builtin import CallSiteLoc, FileLineColLoc, FusedLoc, NameLoc
from xdsl.ir import Attribute


@dataclass(frozen=True)
class Loc:
    """A 1-based line and column in a named source file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


_SOURCES: dict[str, str] = {}
"""Text of every file the frontend has read, so any error can quote its line."""


MAX_SOURCE_BYTES = 8 * 1024 * 1024
"""The largest source file (`.irn`, `.mlir`, an import) read: far above any real program, and
a bound on what a device, a FIFO or a mistaken data file can make the frontend swallow."""

MAX_QUOTED_CHARS = 160
"""How much of a source line an error quotes: a longer line is cut around the caret."""


def remember_source(name: str, text: str) -> None:
    _SOURCES[name] = text


def read_source(path: Path, shown: str | None = None) -> str:
    """A source file's text: a regular file of at most `MAX_SOURCE_BYTES` bytes, in UTF-8
    (a mistake is reported at the line and column of the first bad byte). `shown` is the
    name errors give it (the path by default)."""
    name = shown or str(path)
    try:
        # stat before open: opening a FIFO would block, and a device reads forever.
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
            raise IrnError(f"cannot read {name}: it is {kind}, not a regular file")
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as e:
        raise IrnError(f"cannot read {name}: {e.strerror or e}") from None
    if len(data) > MAX_SOURCE_BYTES:
        limit = MAX_SOURCE_BYTES // (1024 * 1024)
        raise IrnError(f"cannot read {name}: larger than the {limit} MiB a source file may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        column = len(data[line_start : e.start].decode("utf-8", errors="replace")) + 1
        loc = Loc(name, data.count(b"\n", 0, e.start) + 1, column)
        remember_source(name, data.decode("utf-8", errors="replace"))
        message = f"not UTF-8 text: invalid byte 0x{data[e.start]:02x} in {name}"
        raise IrnError(message, loc) from None


def source_line(loc: Loc) -> str | None:
    text = _SOURCES.get(loc.file)
    if text is None:
        try:
            text = read_source(Path(loc.file))
        except IrnError:  # not UTF-8: read_source remembered the text with the bad bytes replaced
            text = _SOURCES.get(loc.file)
            if text is None:
                return None
    lines = text.split("\n")  # as the lexer counts lines: not at form feeds or U+2028
    return lines[loc.line - 1].rstrip("\r") if 0 < loc.line <= len(lines) else None


class IrnError(Exception):
    """A mistake in the user's input, reported at a source location when one is known."""

    def __init__(self, message: str, loc: Loc | None = None, notes: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.notes = notes or []

    def __str__(self) -> str:
        if self.loc is None:
            return "\n".join([f"error: {self.message}", *self.notes])
        lines = [f"{self.loc}: error: {self.message}"]
        line = source_line(self.loc)
        if line is not None:
            line, caret_col = _excerpt(line, min(max(self.loc.column, 1), len(line) + 1))
            prefix = "".join(c if c == "\t" else " " for c in line[: caret_col - 1])
            lines += [f"    {line}", f"    {prefix}^"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _excerpt(line: str, caret_col: int) -> tuple[str, int]:
    """At most `MAX_QUOTED_CHARS` of `line` around the caret's column, "..." marking what is
    cut, and the caret's column in that excerpt: a megabyte-long line is never echoed whole."""
    if len(line) <= MAX_QUOTED_CHARS:
        return line, caret_col
    start = max(min(caret_col - 1 - MAX_QUOTED_CHARS // 2, len(line) - MAX_QUOTED_CHARS), 0)
    end = start + MAX_QUOTED_CHARS
    head = "..." if start > 0 else ""
    tail = "..." if end < len(line) else ""
    return head + line[start:end] + tail, caret_col - start + len(head)


def source_loc(location: Attribute) -> tuple[Loc | None, list[str]]:
    """The innermost source position of an IR location, and notes naming the call sites."""
    match location:
        case FileLineColLoc():
            return Loc(location.filename.data, location.line.data, location.column.data), []
        case CallSiteLoc():
            loc, notes = source_loc(location.callee)
            caller, caller_notes = source_loc(location.caller)
            called = [f"called from {caller}"] if caller else []
            return loc, notes + called + caller_notes
        case NameLoc():
            return source_loc(location.location)
        case FusedLoc():
            for inner in location.locations.data:
                loc, notes = source_loc(inner)
                if loc is not None:
                    return loc, notes
    return None, []


def error_at(message: str, location: Attribute) -> IrnError:
    loc, notes = source_loc(location)
    return IrnError(message, loc, notes)


def in_order(given: Mapping[str, Any], names: Sequence[str], what: str) -> list[Any]:
    """The values of `given` in the order of `names`, refused unless the keys are exactly
    those names; `what` says whose they are ("@mnist_mlp takes the arguments")."""
    unknown = sorted(set(given) - set(names))
    missing = [n for n in names if n not in given]
    if unknown or missing:
        problems = [*(["missing " + ", ".join(missing)] if missing else []),
                    *(["unknown " + ", ".join(unknown)] if unknown else [])]  # fmt: skip
        raise IrnError(f"{what} {', '.join(names)}; {'; '.join(problems)}")
    return [given[n] for n in names]
