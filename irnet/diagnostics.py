"""Diagnostics: source positions, user-facing errors (`file:line:col: error: message`, the
source line and a caret) and IR locations mapped back to `.irn` positions.

A leaf module: every layer (dialects, lowering, the frontend, the runtime) reports through it,
and it imports nothing from the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def remember_source(name: str, text: str) -> None:
    _SOURCES[name] = text


def source_line(loc: Loc) -> str | None:
    text = _SOURCES.get(loc.file)
    if text is None:
        try:
            text = Path(loc.file).read_text(encoding="utf-8", errors="replace")
        except OSError:
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
            caret_col = min(max(self.loc.column, 1), len(line) + 1)
            prefix = "".join(c if c == "\t" else " " for c in line[: caret_col - 1])
            lines += [f"    {line}", f"    {prefix}^"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


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
