"""What the store contract suites share: a message as intake would hand it to the store."""

from __future__ import annotations

from datetime import datetime, timedelta

from postroom.models import NewMessage, TemplateType


def new(n: int = 0, *, key: str | None = None, tenant: str = "default") -> NewMessage:
    return NewMessage(
        tenant=tenant,
        recipient=f"user{n}@example.org",
        template_type=TemplateType.TEST,
        template_data={"to": f"user{n}@example.org"},
        subject=f"subject {n}",
        body="body",
        html_body=None,
        mime=b"Subject: x\r\n\r\nbody\r\n",
        idempotency_key=key,
        request_hash=f"hash{n}",
    )


class Clock:
    """A clock the stores read instead of the real one (see the ``clock_at`` fixture): time
    moves one microsecond per reading (as real time never stands still) and otherwise only
    when a test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on."""
        self.now += timedelta(seconds=seconds)
