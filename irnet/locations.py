"""IR locations back to `.irn` source positions, for errors raised by passes."""

from __future__ import annotations

from xdsl.dialects.builtin import CallSiteLoc, FileLineColLoc, FusedLoc, NameLoc
from xdsl.ir import Attribute

from .ast import Loc
from .errors import IrnError


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
