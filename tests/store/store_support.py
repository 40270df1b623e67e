"""What the store contract suites share: a message as intake would hand it to the store."""

from __future__ import annotations

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
