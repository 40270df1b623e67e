"""Text from outside: what Postroom accepts, and how it shows it on a terminal.

Three rules, each defined once and used everywhere:

- :func:`header_line_problem`: a header value (and anything sent on an SMTP command line) is one
  line: no character that ``str.splitlines()`` splits on (CR, LF, VT, FF, FS, GS, RS, NEL,
  LS, PS), no NUL, and no lone surrogate. Python's email package splits header values on
  every one of them, so each is a way to start a new header line.
- :func:`data_problem`: user data (addresses, subjects, bodies, template data) is text a
  database and an email can hold: no lone surrogate, no NUL, no NaN or Infinity (JSON has
  neither), not nested past :data:`MAX_DEPTH`.
- :func:`terminal_safe`: text that came from outside (a server reply, a stored subject) is
  printed with its control characters escaped, so that it cannot move the cursor, set the
  window title or hide what follows.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from postroom.errors import InputError

HEADER_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")
"""Every character ``str.splitlines()`` splits on, and NUL."""

MAX_DEPTH = 64
"""How deeply template data may nest (objects and lists)."""


def _name(char: str) -> str:
    """``U+2028 (LINE SEPARATOR)``: a character named so that it can be found in the input."""
    short = {"\x00": "NUL", "\x0b": "VT", "\x0c": "FF", "\x85": "NEL"}
    name = unicodedata.name(char, "") or short.get(char, "")
    return f"U+{ord(char):04X} ({name})" if name else f"U+{ord(char):04X}"


_BREAK = re.compile(f"[{re.escape(''.join(sorted(HEADER_BREAKS)))}]")


def _surrogate_problem(text: str) -> str | None:
    """A lone surrogate has no UTF-8 form: it is not text (JSON's ``\\ud800`` can make one)."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")  # in C, and it fails only on a surrogate
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate {_name(text[exc.start])}, which is not valid Unicode text"
        )
    return None


MAX_HEADER_VALUE = 998
"""Characters in one header value: RFC 5322's line limit. A longer value is folded by the
MIME writer, but nothing an identity system sends needs more, and a cap keeps every later
parse of the message cheap."""


def header_line_problem(value: str) -> str | None:
    """Why ``value`` cannot be written as one header line, or None when it can."""
    if len(value) > MAX_HEADER_VALUE:
        return (
            f"is {len(value):,} characters long; a header value may have at most "
            f"{MAX_HEADER_VALUE} (shorten it)"
        )
    found = _BREAK.search(value)
    if found is not None:
        char = found.group()
        what = "a NUL character" if char == "\x00" else f"a line break, {_name(char)}"
        return f"contains {what}; it must be one line of text"
    return _surrogate_problem(value)


def check_header_line(value: str, *, field: str) -> str:
    """Return ``value`` when it is one header line; else raise :class:`InputError` naming
    ``field`` and the character found."""
    problem = header_line_problem(value)
    if problem is not None:
        raise InputError(problem, field=field)
    return value


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which email and the database cannot carry"
    return _surrogate_problem(text)


def data_problem(value: Any) -> tuple[str, str] | None:
    """The first problem in a JSON-like value as ``(path, problem)``, or None when it is fine.

    ``path`` is dotted (``items.0.name``; empty for ``value`` itself). Refused: text with a
    NUL or a lone surrogate (in keys too), NaN and +/-Infinity, nesting past :data:`MAX_DEPTH`.
    """
    found = _data_problem(value, [])
    if found is None:
        return None
    path, problem = found
    shown = [terminal_safe(p) for p in path[:8]]
    return ".".join(shown) + (".(...)" if len(path) > 8 else ""), problem


def _data_problem(value: Any, path: list[str]) -> tuple[list[str], str] | None:
    if isinstance(value, str):
        problem = _text_problem(value)
        return None if problem is None else (path, problem)
    if isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        return path, f"is {shown}, which JSON cannot carry; send a number or a string"
    if isinstance(value, Mapping | list | tuple):
        if len(path) >= MAX_DEPTH:
            return path, f"is nested more than {MAX_DEPTH} levels deep"
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (problem := _text_problem(key)) is not None:
                return [*path, key], f"the key {problem}"
            found = _data_problem(item, [*path, str(key)])
            if found is not None:
                return found
    return None


def check_data(value: Any, *, field: str) -> None:
    """Raise :class:`InputError` naming ``field`` (and the path inside it) when
    :func:`data_problem` finds a problem in ``value``."""
    found = data_problem(value)
    if found is not None:
        path, problem = found
        raise InputError(problem, field=f"{field}.{path}" if path else field)


def _shown(char: str) -> bool:
    """True for a character a terminal shows as itself (letters, marks, symbols, spaces)."""
    return char.isprintable() or unicodedata.category(char) == "Zs"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character a terminal would act on (C0 and C1 controls such as ESC
    and CSI, bidirectional overrides, line and paragraph separators, lone surrogates) written
    as a Python-style escape (``\\x1b``); with ``keep_newlines``, LF stays a line break."""
    if text.isprintable():
        return text
    return "".join(
        char
        if _shown(char) or (keep_newlines and char == "\n")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def json_terminal_safe(text: str) -> str:
    """JSON text (as ``json.dumps`` writes it) with the characters :func:`terminal_safe`
    escapes written as JSON ``\\u`` escapes instead: the same JSON value, safe to print."""
    return "\n".join(
        line
        if line.isprintable()
        else "".join(c if _shown(c) else json.dumps(c)[1:-1] for c in line)
        for line in text.split("\n")
    )


def did_you_mean(given: str, names: Iterable[str]) -> str:
    """``' (did you mean X?)'`` when one of ``names`` is close to ``given``, else ``''``."""
    close = difflib.get_close_matches(given, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
