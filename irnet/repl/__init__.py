"""The interactive REPL (`irnet repl`): `session` evaluates inputs, `terminal` is the
prompt_toolkit front end. `Session` is the entry point for programs and tests."""

from __future__ import annotations

from .session import Output, Session, needs_more

__all__ = ["Output", "Session", "needs_more"]
