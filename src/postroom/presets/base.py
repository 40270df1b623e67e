"""What a provider preset is: data, no I/O. SMTP presets live in ``smtp.py``, HTTP API presets
in ``http.py``; ``postroom.presets`` gathers them into one registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` messages per ``per`` (a duration such as ``1m`` or ``1d``).

    ``unit`` says what is counted: ``messages`` or ``recipients`` (Microsoft 365 counts
    recipients per day).
    """

    count: int
    per: str
    unit: Literal["messages", "recipients"] = "messages"

    def to_json(self) -> dict[str, Any]:
        """The ``courier.rate_limits`` entry."""
        out: dict[str, Any] = {"count": self.count, "per": self.per}
        if self.unit != "messages":
            out["unit"] = self.unit
        return out


@dataclass(frozen=True, slots=True)
class Preset:
    """A provider's settings, limits and set-up notes.

    For ``kind == "smtp"``: ``uri_template`` is SPEC.md's connection URI with ``{username}``,
    ``{password}``, ``{region}``, ``{domain}`` placeholders. For ``kind == "http"``:
    ``request_config`` is the ``courier.http.request_config`` a user pastes (placeholders in
    the same ``{...}`` form).
    """

    name: str
    title: str
    kind: Literal["smtp", "http"]
    summary: str
    notes: tuple[str, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    credentials_url: str | None = None
    uri_template: str | None = None
    host: str | None = None
    port: int | None = None
    security: str | None = None
    username_format: str | None = None
    request_config: dict[str, Any] | None = field(default=None, hash=False, compare=False)
