"""Priority lanes at intake: which lane a message goes in, what makes two messages
duplicates, and the per-tenant rules the store enforces when it stores them."""

from __future__ import annotations

import email
import email.policy
import hashlib
from collections.abc import Sequence
from dataclasses import replace

from postroom.config.settings import CourierSettings
from postroom.errors import InputError
from postroom.models import NewMessage, Priority, TemplateType, default_priority
from postroom.store.base import Budget

PRIORITY_HEADER = "X-Postroom-Priority"
"""The header by which mail handed to the SMTP listener names its lane."""


def parse_priority(
    value: object, *, template_type: TemplateType, field: str = "priority"
) -> Priority:
    """The lane a caller asked for, or the template type's default when ``value`` is None;
    raise :class:`InputError` naming ``field`` and the three lanes for anything else."""
    if value is None:
        return default_priority(template_type)
    try:
        return Priority(str(value).strip().lower()) if isinstance(value, str) else Priority("")
    except ValueError:
        raise InputError(
            f"{value!r} is not a priority; use urgent, normal or bulk", field=field
        ) from None


def content_hash(
    tenant: str, recipient: str, template_type: TemplateType, parts: Sequence[str | bytes]
) -> str:
    """What identifies a duplicate: the tenant, the recipient (case-insensitive), the
    template type and the rendered content (subject and bodies, or listener MIME)."""
    digest = hashlib.sha256()
    for part in (tenant, recipient.lower(), template_type.value, *parts):
        raw = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "big") + raw)
    return digest.hexdigest()


def tenant_budget(courier: CourierSettings) -> Budget:
    """What a tenant's new messages get (its retries plus the first send, its TTLs) and what
    the store enforces when it stores them (folded duplicates, per-recipient limits)."""
    limits = courier.recipient_limits
    return Budget(
        courier.message_retries + 1,
        courier.message_ttl,
        bulk_ttl=courier.bulk_ttl,
        dedupe_window=courier.dedupe_window,
        cooldown=limits.cooldown,
        per_hour=limits.per_hour,
    )


def listener_message(
    new: NewMessage, *, header: str | None, login_priority: Priority = Priority.URGENT
) -> NewMessage:
    """Mail handed to the SMTP listener, with its lane and duplicate hash: the lane the
    ``X-Postroom-Priority`` header names (``header``, None when absent), else the listener
    login's (urgent by default: Keycloak's mail is verification and reset mail); the hash is
    of the MIME without its ``Date`` and ``Message-ID``, so a re-sent copy matches. Raise
    :class:`InputError` naming the header for a value that is not a lane."""
    priority = login_priority
    if header is not None:
        priority = parse_priority(header, template_type=new.template_type, field=PRIORITY_HEADER)
    parsed = email.message_from_bytes(new.mime, policy=email.policy.compat32)
    for name in ("Date", "Message-ID", PRIORITY_HEADER):
        del parsed[name]
    stable = parsed.as_bytes()
    digest = content_hash(new.tenant, new.recipient, new.template_type, [stable])
    return replace(new, priority=priority, content_hash=digest)
