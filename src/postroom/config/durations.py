"""Durations as people write them in configuration: ``500ms``, ``30s``, ``5m``, ``1h``, ``30d``."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Return the duration in seconds; raise ``ValueError`` naming the accepted forms.

    A bare number is seconds. Compound forms like ``1h30m`` are accepted. The result is a
    finite number of seconds, never negative.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or 30d, not a boolean")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        if math.isnan(seconds) or (isinstance(value, float) and math.isinf(value)):
            shown = "NaN" if math.isnan(seconds) else "infinity"
            raise ValueError(f"expected a duration such as 30s, 5m, 1h or 30d, not {shown}")
        if seconds < 0:
            raise ValueError("a duration cannot be negative")
        return _finite(seconds)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _finite(float(text))
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 1h or 30d")
    return _finite(total)


def _finite(seconds: float) -> float:
    if math.isinf(seconds):
        raise ValueError("is too long to be a duration; write it like 30s, 5m, 1h or 30d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable form: ``90`` -> ``1m30s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def check_at_most(seconds: float, limit: float) -> float:
    """Return ``seconds`` when it is at most ``limit``; else raise ``ValueError`` naming the
    limit (a duration past it would overflow the dates it is added to, or mean a mistake)."""
    if seconds > limit:
        raise ValueError(
            f"{format_duration(seconds)} is too long; the longest allowed is "
            f"{format_duration(limit)}"
        )
    return seconds


def at_most(limit: float) -> AfterValidator:
    """A pydantic validator for ``Annotated[Duration, at_most(30 * DAY)]``: the setting's
    longest allowed value, named in the error."""
    return AfterValidator(lambda seconds: check_at_most(seconds, limit))


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A setting written as a duration (``30s``, ``5m``...), in seconds."""

PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A duration that must be longer than zero (timeouts, leases, windows)."""
