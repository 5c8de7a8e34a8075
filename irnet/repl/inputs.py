"""The text of an input: whether it continues on the next line, and parsing a part of it at
the columns the user typed it."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any

from irnet import ast
from irnet.diagnostics import IrnError, remember_source
from irnet.parser import parse_expression

MAX_INPUT_CHARS = 16 * 1024
"""The longest input the prompt answers; a longer one is refused before it is parsed (parsing
costs about a second per 50,000 characters). `:load` reads files of any sensible size."""

_BRACKETS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[()\[\]{}]')


def bracket_depth(text: str) -> int:
    """Brackets and braces open at the end of `text`, outside strings and comments."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
    return depth


def needs_more(text: str) -> bool:
    """Whether an input continues on the next line: a bracket or brace is open (a block, a
    call), or the last line ends in `\\`. A `:command` is always one line."""
    if text.lstrip().startswith(":"):
        return False
    return text.rstrip(" \t").endswith("\\") or bracket_depth(text) > 0


def check_length(text: str) -> None:
    """Refuse an input longer than `MAX_INPUT_CHARS`, before anything else reads it."""
    if len(text) > MAX_INPUT_CHARS:
        raise IrnError(
            f"the input is longer than {MAX_INPUT_CHARS:,} characters; put it in a file and "
            ":load it"
        )


def masked(text: str, start: int, end: int) -> str:
    """`text` with everything outside [start, end) blanked, newlines kept: parsing it gives
    the locations the user sees."""
    return "".join(c if start <= i < end or c == "\n" else " " for i, c in enumerate(text))


def parse_span(text: str, start: int, end: int, display: str) -> ast.Expr:
    """Parse `text[start:end]` as an expression located in the whole input `text`."""
    try:
        return parse_expression(masked(text, start, end), display)
    finally:
        remember_source(display, text)  # errors quote the line as typed, not as blanked


def names_in(node: Any) -> list[str]:
    """Every name an AST fragment mentions, in source order (a superset of the variables it
    reads: `@__repl__`'s arguments come in that order)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, list):
        children = node
    elif is_dataclass(node):
        children = [getattr(node, f.name) for f in fields(node)]
    else:
        return []
    return list(dict.fromkeys(name for child in children for name in names_in(child)))
