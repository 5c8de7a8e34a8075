"""The interactive REPL (`irnet repl`): `session.Session` answers inputs (the modules beside
it do the work, split by job), `terminal` is the prompt_toolkit front end. `Session` is the
entry point for programs and tests."""

from __future__ import annotations

from .session import Output, Session, needs_more

__all__ = ["Output", "Session", "needs_more"]
