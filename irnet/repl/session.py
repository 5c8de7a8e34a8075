"""The REPL without its terminal: a `Session` takes one input at a time (an expression, an
assignment, a definition or a `:command`) and answers with `Output`s, never with an exception.
`terminal.py` drives it from prompt_toolkit, and tests drive it directly.

The work is split by job, each module importing only those below it:

- `completion.py`: Tab completion of names, `:commands` and their arguments;
- `commands.py`: the `:commands` (`:load`, `:ir`, `:grad`, `:compile`, `:target`, ...);
- `evaluation.py`: the core, an `Evaluator` that turns definitions, expressions and
  assignments into IR and values;
- `makers.py`: the REPL builtins that make tensors in NumPy (`randn`, `tensor`, `load`, ...);
- `prompt.py`: `@__repl__`, the function one input compiles into;
- `ir.py`: the functions of compiled modules, their printout, the gradient `:grad` adds;
- `inputs.py` and `display.py`: the text of an input, and how values and answers are shown.
"""

from __future__ import annotations

import os
import re
import traceback

from irnet.diagnostics import IrnError, remember_source

from . import completion
from .commands import COMMANDS, run_command
from .completion import Completions
from .display import Output, format_value
from .evaluation import Evaluator
from .inputs import bracket_depth, check_length, needs_more
from .makers import MAKERS

__all__ = ["COMMANDS", "MAKERS", "Output", "Session", "bracket_depth", "format_value", "needs_more"]

_BLANK_LINES = re.compile(r"^(?:[ \t]*\n)+")
_NO_CODE = re.compile(r"\s*(?:#[^\n]*\s*)*")


class Session(Evaluator):
    """A REPL session: an `Evaluator` (definitions, variables, seed, target) that also answers
    `:commands` and completes names."""

    def run(self, text: str) -> list[Output]:
        """Answer one input; mistakes become error outputs, never exceptions."""
        try:
            check_length(text)
        except IrnError as e:
            return [Output(str(e), "error")]
        text = _BLANK_LINES.sub("", text.rstrip())
        if _NO_CODE.fullmatch(text):
            return []
        display = self.next_display()
        remember_source(display, text)
        try:
            if text.lstrip().startswith(":"):
                return run_command(self, text, display)
            return self.execute(text, display)
        except IrnError as e:
            return [Output(str(e), "error")]
        except RecursionError:
            return [Output("error: the input is nested too deeply", "error")]
        except Exception as e:  # an irnet bug: say so, and keep the session
            details = traceback.format_exc() if os.environ.get("IRNET_TRACEBACK") else ""
            message = (
                f"internal error: {type(e).__name__}: {e}\nThis is a bug in irnet; "
                "set IRNET_TRACEBACK=1 for the traceback."
            )
            return [Output(details + message, "error")]

    def complete(self, before_cursor: str) -> tuple[str, Completions]:
        """Completions of the word before the cursor: (that word, [(completion, what)])."""
        return completion.complete(self, before_cursor)
