"""Jsonnet's error messages made readable: one line, with the line and column in the body."""

from __future__ import annotations

import re

_LOCATION = re.compile(r"^\s*(?P<name>.+?):\(?(?P<line>\d+):(?P<column>\d+)")


def tidy_error(text: str, name: str, *, line_offset: int = 0) -> tuple[str, int | None, int | None]:
    """Jsonnet's error text as one line, with the line and column in the body when known.

    ``STATIC ERROR: body:3:5: unexpected "}"`` becomes ``('unexpected "}"', 3, 5)``;
    a runtime error takes its location from the innermost stack frame inside the body.
    ``line_offset`` lines are subtracted (the body was evaluated inside a wrapper); locations
    that fall outside the body are ignored.
    """
    first, *frames = text.strip().splitlines()
    if first.startswith("STATIC ERROR: "):
        rest = first.removeprefix("STATIC ERROR: ")
        match = _LOCATION.match(rest)
        if match:
            message = rest[match.end() :].lstrip(")").lstrip("-0123456789:() ").strip()
            return message or rest, int(match["line"]), int(match["column"])
        return rest, None, None
    message = first.removeprefix("RUNTIME ERROR: ").strip()
    for frame in frames:
        match = _LOCATION.match(frame)
        if match and match["name"].strip() == name and int(match["line"]) > line_offset:
            return message, int(match["line"]) - line_offset, int(match["column"])
    return message, None, None


def where(line: int | None, column: int | None) -> str:
    """`` at line L, column C`` for a location in the body, or nothing when it is unknown."""
    if line is None:
        return ""
    return f" at line {line}" + (f", column {column}" if column is not None else "")
