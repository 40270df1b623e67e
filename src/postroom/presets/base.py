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

    def describe(self) -> str:
        """In words, e.g. ``10,000 recipients per 1d``."""
        return f"{self.count:,} {self.unit} per {self.per}"


@dataclass(frozen=True, slots=True)
class Preset:
    """A provider's settings, limits and set-up notes.

    For ``kind == "smtp"``: ``uri_template`` is the connection URI with ``{username}``,
    ``{password}``, ``{region}``, ``{domain}`` placeholders, and ``params`` names the values
    ``presets uri`` needs (``username``, ``password``, ``region``, ``domain``). For
    ``kind == "http"``: ``request_config`` is the ``courier.http.request_config`` a user pastes
    (placeholders in the same ``{...}`` form). ``notes`` are what a user must know (in our own
    words); ``steps`` are the set-up steps in the order a user follows them.
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
    steps: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    default_region: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Everything ``presets show --json`` prints; only the fields this preset uses."""
        out: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "summary": self.summary,
        }
        optional: dict[str, Any] = {
            "uri_template": self.uri_template,
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "username_format": self.username_format,
            "credentials_url": self.credentials_url,
            "params": list(self.params) or None,
            "regions": list(self.regions) or None,
            "default_region": self.default_region,
            "request_config": self.request_config,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        out["rate_limits"] = [limit.to_json() for limit in self.rate_limits]
        out["steps"] = list(self.steps)
        out["notes"] = list(self.notes)
        return out
