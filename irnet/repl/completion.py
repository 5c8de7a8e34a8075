"""Tab completion: the names the prompt knows (keywords, builtins, REPL builtins, definitions,
variables, `module.` members), `:commands`, function names after `:ir`, `:params` and
`:compile`, and stages after `--after`. File paths after `:load` are the terminal's."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from irnet.builtins import BUILTINS
from irnet.grammar.lexer import RESERVED
from irnet.imports import FunctionRef, LoadedModule
from irnet.initializers import INITIALIZERS

from .commands import COMMANDS, STAGES
from .display import type_name, what
from .evaluation import Evaluator
from .makers import MAKERS

Completions = list[tuple[str, str]]
"""(completion, what it is), for the menu."""


def complete(session: Evaluator, before_cursor: str) -> tuple[str, Completions]:
    """Completions of the word before the cursor: (that word, its completions)."""
    command_word = re.fullmatch(r"\s*(:\w*)", before_cursor)
    if command_word:
        word = command_word.group(1)
        names = [(":" + c.name, c.summary) for c in COMMANDS.values()]
        return word, [(n, s) for n, s in names if n.startswith(word)]
    found = re.search(r"[A-Za-z_]\w*$", before_cursor)
    word = found.group() if found else ""
    if before_cursor.count('"') % 2 == 1 or re.match(r"\s*:load\b", before_cursor):
        return word, []
    prefix = before_cursor[: len(before_cursor) - len(word)]
    if re.search(r"--after\s+$", prefix):
        return word, [(s, "stage") for s in STAGES if s.startswith(word)]
    if re.match(r"\s*:(ir|params|compile)\b", prefix):
        return word, [(s, "function") for s in session.symbols if s.startswith(word)]
    attribute = re.search(r"([A-Za-z_]\w*)\.$", prefix)
    if attribute:
        module = session.scope.namespace.get(attribute.group(1))
        names = module.namespace if isinstance(module, LoadedModule) else {}
        return word, [(n, kind_of(v)) for n, v in names.items() if n.startswith(word)]
    return word, [(n, kind) for n, kind in vocabulary(session).items() if n.startswith(word)]


def vocabulary(session: Evaluator) -> dict[str, str]:
    """Every name the prompt knows, with what it is; later entries win."""
    words = {k: "keyword" for k in RESERVED}
    words.update({n: "initialiser" for n in INITIALIZERS})
    words.update({n: "builtin" for n in BUILTINS})
    words.update({n: "REPL builtin" for n in MAKERS})
    words.update({n: kind_of(v) for n, v in session.scope.namespace.items()})
    words.update({n: kind_of(v) for n, v in session.variables.items()})
    return dict(sorted(words.items()))


def kind_of(value: Any) -> str:
    """What a name is, briefly, for completion menus."""
    if isinstance(value, np.ndarray):
        return type_name(value)
    if isinstance(value, FunctionRef):
        origin = value.module.display
        return value.fn.kind + ("" if origin.startswith("<") else f" ({origin})")
    if isinstance(value, LoadedModule):
        return "module"
    return what(value)
