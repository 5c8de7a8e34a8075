"""User-facing errors: `file:line:col: error: message`, the source line and a caret."""

from __future__ import annotations

from pathlib import Path

from .ast import Loc

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
