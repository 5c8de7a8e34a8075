"""The REPL's terminal: a prompt_toolkit session around a `Session`.

It highlights input with the `.irn` Pygments lexer (plus the REPL's `:commands`), completes
names through `Session.complete` (and file paths after `:load`), keeps an input open while a
bracket or brace is, and keeps history in `$IRNET_HISTORY`, else
`$XDG_DATA_HOME/irnet/history`, else `~/.local/share/irnet/history` (in memory only, said
once, when that file cannot be read or written). Ctrl-C abandons the input, Ctrl-D leaves.
A long input is neither highlighted nor completed, and one past `MAX_INPUT_CHARS` stops
growing (and is refused when run): the cost of both grows with the input at every keystroke.
When stdin is not a terminal (`irnet repl < script.irn`), inputs are read line by line with
the same continuation rule and answered in plain text.
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
from prompt_toolkit.application import get_app
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory, ConditionalAutoSuggest
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText, PygmentsTokens
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.lexers import DynamicLexer, PygmentsLexer, SimpleLexer
from prompt_toolkit.output import Output as Terminal
from prompt_toolkit.styles import Style
from pygments.lexer import RegexLexer, bygroups, inherit
from pygments.lexers.python import PythonLexer
from pygments.token import Comment, Keyword, Name, Number, Punctuation, String, Whitespace

from irnet.grammar.lexer import IrnLexer

from .inputs import MAX_INPUT_CHARS
from .session import Output, Session, bracket_depth, needs_more

PROMPT = "irn> "
INDENT = "    "
BANNER = "irnet REPL: :help lists the commands, Tab completes, Ctrl-D leaves."
STYLE = Style.from_dict(
    {"prompt": "ansigreen bold", "continuation": "ansibrightblack", "error": "ansired"}
)
ASSIST_CHARS = 4096
"""Past this many characters an input is neither highlighted, completed nor suggested from
history, and typing saves no undo states: each of these redoes its work on (or copies) the
whole input at every keystroke, which made a 64 KB line take half a minute and gigabytes."""


@Condition
def _short_input() -> bool:
    return len(get_app().current_buffer.text) <= ASSIST_CHARS


def history_path(environ: os._Environ | dict = os.environ) -> Path:
    """Where history is kept: $IRNET_HISTORY, else the user's data directory (XDG)."""
    if environ.get("IRNET_HISTORY"):
        return Path(environ["IRNET_HISTORY"]).expanduser()
    data = environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "irnet" / "history"


def open_history(path: Path) -> History:
    """A history file, created if need be; in memory only when it cannot be read and written
    (a folder, a file without permission), which is said once, here."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+b"):  # fails on a folder and without read and write permission
            pass
    except OSError as e:
        _history_lost(path, e)
        return InMemoryHistory()
    return SavedHistory(path)


def _history_lost(path: Path, e: OSError) -> None:
    print(f"irnet: history is not saved ({path}: {e.strerror or e})", file=sys.stderr)


class SavedHistory(FileHistory):
    """A `FileHistory` that outlives its file: should reading or writing it fail later (the
    file replaced by a folder, the disk full), that is said once and history stays in memory.
    Left to prompt_toolkit, the error surfaced from its event loop at every prompt."""

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path
        self.lost = False

    def load_history_strings(self) -> Iterable[str]:
        try:
            yield from super().load_history_strings()
        except OSError as e:
            self._lose(e)

    def store_string(self, string: str) -> None:
        if not self.lost:
            try:
                super().store_string(string)
            except OSError as e:
                self._lose(e)

    def _lose(self, e: OSError) -> None:
        if not self.lost:
            self.lost = True
            _history_lost(self.path, e)


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

    @bindings.add(Keys.Any, filter=~_short_input, save_before=lambda event: False)
    @bindings.add(Keys.BracketedPaste, filter=~_short_input, save_before=lambda event: False)
    def _type_long(event: KeyPressEvent) -> None:
        """Typing into a long input: no undo state (a copy of the input per keystroke), and
        nothing past one character more than an input may have, which running refuses."""
        buffer = event.current_buffer
        room = MAX_INPUT_CHARS + 1 - len(buffer.text)
        if room > 0:
            buffer.insert_text((event.data * event.arg)[:room])

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
        highlighter = PygmentsLexer(ReplLexer)
        self.prompt = PromptSession(
            [("class:prompt", PROMPT)],
            multiline=True,
            prompt_continuation=continuation,
            key_bindings=key_bindings(),
            lexer=DynamicLexer(lambda: highlighter if _short_input() else SimpleLexer()),
            completer=ReplCompleter(self.session),
            complete_while_typing=_short_input,
            auto_suggest=ConditionalAutoSuggest(AutoSuggestFromHistory(), _short_input),
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
    """`irnet repl [FILE]`; status 1 when FILE does not load (a missing or unreadable file, a
    device, one too big, a mistake in it)."""
    session = Session()
    loaded = session.run(f":load {shlex.quote(file)}") if file else []
    failed = [o.text for o in loaded if o.kind == "error"]
    if failed:
        print(*failed, sep="\n", file=sys.stderr)
        return 1
    if not sys.stdin.isatty():
        for output in loaded:
            print(output.text)
        plain_loop(session, sys.stdin, sys.stdout, sys.stderr)
        return 0
    repl = Repl(session, history=open_history(history_path()))
    for output in [Output(BANNER), *loaded]:
        repl.echo(output)
    repl.loop()
    return 0
