"""The REPL's terminal: a prompt_toolkit session around a `Session`.

It highlights input with the `.irn` Pygments lexer (plus the REPL's `:commands`), completes
names through `Session.complete` (and file paths after `:load`), keeps an input open while a
bracket or brace is, and keeps history in `$IRNET_HISTORY`, else
`$XDG_DATA_HOME/irnet/history`, else `~/.local/share/irnet/history`. Ctrl-C abandons the
input, Ctrl-D leaves. When stdin is not a terminal (`irnet repl < script.irn`), inputs are read
line by line with the same continuation rule and answered in plain text.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText, PygmentsTokens
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import Output as Terminal
from prompt_toolkit.styles import Style
from pygments.lexer import RegexLexer, bygroups, inherit
from pygments.lexers.python import PythonLexer
from pygments.token import Comment, Keyword, Name, Number, Punctuation, String, Whitespace

from irnet.grammar.lexer import IrnLexer

from .session import Output, Session, bracket_depth, needs_more

PROMPT = "irn> "
INDENT = "    "
BANNER = "irnet REPL: :help lists the commands, Tab completes, Ctrl-D leaves."
STYLE = Style.from_dict(
    {"prompt": "ansigreen bold", "continuation": "ansibrightblack", "error": "ansired"}
)


def history_path(environ: os._Environ | dict = os.environ) -> Path:
    """Where history is kept: $IRNET_HISTORY, else the user's data directory (XDG)."""
    if environ.get("IRNET_HISTORY"):
        return Path(environ["IRNET_HISTORY"]).expanduser()
    data = environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "irnet" / "history"


def open_history(path: Path) -> History:
    """A history file, created if need be; in memory only when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as e:
        print(f"irnet: history is not saved ({path}: {e.strerror})", file=sys.stderr)
        return InMemoryHistory()
    return FileHistory(str(path))


# --- highlighting ------------------------------------------------------------------------------


class ReplLexer(IrnLexer):
    """`.irn` as typed at the prompt: a leading `:command` too."""

    name = "irn REPL input"
    aliases = []
    filenames = []
    tokens = {"root": [(r"^(\s*)(:[A-Za-z]*)", bygroups(Whitespace, Keyword.Pseudo)), inherit]}


class IrLexer(RegexLexer):
    """Printed xDSL IR, enough to tell values, symbols, ops, types and locations apart."""

    name = "irnet IR"
    tokens = {
        "root": [
            (r'loc\((?:[^()"]|"[^"]*"|\((?:[^()"]|"[^"]*")*\))*\)', Comment),
            (r'"(?:[^"\\]|\\.)*"', String),
            (r"%[\w.$-]+", Name.Variable),
            (r"@[\w.$-]+", Name.Function),
            (r"\b(?:tensor|array)<[^>]*>|\b(?:f32|f64|i1|i32|i64)\b", Keyword.Type),
            (r"\b[a-z_]+\.[a-z_][\w.]*", Keyword),
            (r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", Number),
            (r"\w+", Name),
            (r"\s+", Whitespace),
            (r".", Punctuation),
        ]
    }


RENDERERS = {"ir": IrLexer, "python": PythonLexer}


def render(output: Output) -> FormattedText | PygmentsTokens:
    if output.kind == "error":
        return FormattedText([("class:error", output.text)])
    lexer = RENDERERS.get(output.kind)
    if lexer is None:
        return FormattedText([("", output.text)])
    return PygmentsTokens(list(lexer(ensurenl=False).get_tokens(output.text.rstrip("\n"))))


# --- editing -----------------------------------------------------------------------------------


class ReplCompleter(Completer):
    """Names, commands and stages from the session; file paths after `:load`."""

    def __init__(self, session: Session):
        self.session = session
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
        before = document.text_before_cursor
        load = re.match(r"\s*:load\s+", before)
        if load:
            yield from self.paths.get_completions(Document(before[load.end() :]), event)
            return
        word, candidates = self.session.complete(before)
        for text, meta in candidates:
            yield Completion(text, -len(word), display_meta=meta)


def key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        """Run the input, unless a bracket or brace is open: then continue it, indented."""
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
        elif needs_more(buffer.text):
            depth = max(bracket_depth(buffer.document.text_before_cursor), 0)
            buffer.insert_text("\n" + INDENT * depth)
        else:
            buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _run_anyway(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @bindings.add("}")
    def _close_block(event: KeyPressEvent) -> None:
        """A `}` typed on a line of indentation only takes one indentation level away."""
        buffer = event.current_buffer
        if buffer.document.current_line_before_cursor.endswith(INDENT) and not (
            buffer.document.current_line_before_cursor.strip()
        ):
            buffer.delete_before_cursor(len(INDENT))
        buffer.insert_text("}")

    return bindings


def continuation(width: int, line_number: int, wrap_count: int) -> FormattedText:
    return FormattedText([("class:continuation", "...".ljust(width))])


# --- the loop ----------------------------------------------------------------------------------


class Repl:
    """A prompt_toolkit session that feeds a `Session`. `input`/`output` default to the
    terminal; `echo` (how answers are shown) defaults to printing them highlighted."""

    def __init__(
        self,
        session: Session | None = None,
        *,
        input: Input | None = None,
        output: Terminal | None = None,
        history: History | None = None,
        echo: Callable[[Output], None] | None = None,
    ):
        self.session = session or Session()
        self.output = output
        self.echo = echo or self.show
        self.prompt = PromptSession(
            [("class:prompt", PROMPT)],
            multiline=True,
            prompt_continuation=continuation,
            key_bindings=key_bindings(),
            lexer=PygmentsLexer(ReplLexer),
            completer=ReplCompleter(self.session),
            complete_while_typing=True,
            auto_suggest=AutoSuggestFromHistory(),
            history=history or InMemoryHistory(),
            style=STYLE,
            input=input,
            output=output,
        )

    def show(self, output: Output) -> None:
        print_formatted_text(render(output), style=STYLE, output=self.output)

    def loop(self) -> None:
        """Read and answer inputs until Ctrl-D or `:quit`."""
        while not self.session.done:
            try:
                text = self.prompt.prompt()
            except KeyboardInterrupt:
                continue  # Ctrl-C: the input is abandoned, the session goes on
            except EOFError:
                break
            try:
                outputs = self.session.run(text)
            except KeyboardInterrupt:
                outputs = [Output("interrupted", "error")]
            for output in outputs:
                self.echo(output)


def plain_loop(session: Session, lines: Iterable[str], out: TextIO, err: TextIO) -> None:
    """The REPL without a terminal: inputs from `lines`, answers as plain text."""

    def answer(text: str) -> None:
        for output in session.run(text):
            print(output.text, file=err if output.kind == "error" else out)

    pending = ""
    for line in lines:
        pending += line
        if not needs_more(pending):
            answer(pending)
            pending = ""
            if session.done:
                return
    answer(pending)


def run_repl(file: str | None = None) -> int:
    """`irnet repl [FILE]`."""
    session = Session()
    loaded = session.run(f":load {shlex.quote(file)}") if file else []
    if not sys.stdin.isatty():
        for output in loaded:
            print(output.text, file=sys.stderr if output.kind == "error" else sys.stdout)
        plain_loop(session, sys.stdin, sys.stdout, sys.stderr)
        return 0
    repl = Repl(session, history=open_history(history_path()))
    for output in [Output(BANNER), *loaded]:
        repl.echo(output)
    repl.loop()
    return 0
