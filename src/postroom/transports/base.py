"""The transport contract: ``send`` one envelope, ``close``. Transports report what happened
(a result, or a :class:`~postroom.errors.DeliveryError` carrying the stage and the reply);
they never write a status and never decide about retries."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a transport hands off: the sender, the recipients and the exact message bytes.

    SMTP and the outbox send ``data`` (the MIME bytes). HTTP delivery builds its request from
    the rendered parts instead: ``recipient``, ``subject``, ``text``, ``html``,
    ``template_type`` and ``template_data`` (None when the caller did not give them).
    """

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    recipient: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    template_type: str | None = None
    template_data: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """A successful hand-off: which transport (``smtp``, ``http``, ``outbox``), the host (and
    port) it went to, the provider's acceptance (``250 2.0.0 Ok: queued as 4Fh2kq0xQ``; an
    HTTP status and the start of the body) and the provider's id for the message in it."""

    reply: str | None = None
    provider_message_id: str | None = None
    transport: str | None = None
    host: str | None = None


def target_host(url: str) -> str | None:
    """``host:port`` of a URL (no credentials, path or query), as a dispatch records it."""
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}" if parts.port else host


class Transport(Protocol):
    """Something that can hand a message to a provider."""

    async def send(self, envelope: Envelope) -> SendResult:
        """Hand one message off; raise ``DeliveryError`` when it could not be."""

    async def close(self) -> None:
        """Release connections; the transport may not be used afterwards."""


@dataclass(slots=True)
class Step:
    """One step of a conversation, as ``test-smtp`` prints it."""

    stage: str
    ok: bool
    ms: float
    detail: str | None = None
    reply: str | None = None

    def to_json(self) -> dict[str, object]:
        """The step object."""
        out: dict[str, object] = {"stage": self.stage, "ok": self.ok, "ms": round(self.ms, 1)}
        if self.detail is not None:
            out["detail"] = self.detail
        if self.reply is not None:
            out["reply"] = self.reply
        return out


@dataclass(slots=True)
class Recorder:
    """Collects the steps of a conversation. Attached by ``test-smtp``; None for real sends."""

    steps: list[Step] = field(default_factory=list)

    @contextmanager
    def timed(self, stage: str) -> Iterator[Step]:
        """Time a step; the caller fills in ``detail``/``reply`` and ``ok`` is set on success."""
        step = Step(stage=stage, ok=False, ms=0.0)
        start = time.perf_counter()
        try:
            yield step
            step.ok = True
        finally:
            step.ms = (time.perf_counter() - start) * 1000
            self.steps.append(step)
