"""The one place that maps rows to models and back: a new column of ``messages`` or
``dispatches`` means one edit here (and one in :mod:`postroom.store.schema`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from postroom.models import (
    Diagnosis,
    Dispatch,
    DispatchStatus,
    Message,
    Priority,
    Status,
    TemplateType,
    WaitingFor,
)
from postroom.store.base import Completion, StoredOAuthToken, StoredTenant, new_id
from postroom.store.evidence import handoff_fields, handoff_values


def message_row(message: Message) -> dict[str, Any]:
    """The ``messages`` row of ``message`` (its dispatches are rows of their own)."""
    return {
        "id": message.id,
        "tenant": message.tenant,
        "status": message.status.value,
        "type": "email",
        "recipient": message.recipient,
        "template_type": message.template_type.value,
        "template_data": message.template_data,
        "subject": message.subject,
        "body": message.body,
        "html_body": message.html_body,
        "mime": b"" if message.mime_ref else message.mime,  # kept once in relay_bodies
        "send_count": message.send_count,
        "max_attempts": message.max_attempts,
        "idempotency_key": message.idempotency_key,
        "request_hash": message.request_hash,
        "locale": message.locale,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "next_attempt_at": message.next_attempt_at,
        "expires_at": message.expires_at,
        "waiting_for": message.waiting_for.value if message.waiting_for else None,
        "last_error": message.last_error.to_json() if message.last_error else None,
        "lease_owner": message.lease_owner,
        "lease_until": message.lease_until,
        "priority": message.priority.value,
        "folded_duplicates": message.folded_duplicates,
        "content_hash": message.content_hash,
    }


def message_from_row(
    row: Row[Any] | Mapping[str, Any], attempts: tuple[Dispatch, ...] = ()
) -> Message:
    """The message a ``messages`` row (or the dict of one being written) holds, with
    ``attempts`` as its dispatches."""
    m = row._mapping if isinstance(row, Row) else row
    last_error = m["last_error"]
    return Message(
        id=m["id"],
        tenant=m["tenant"],
        status=Status(m["status"]),
        recipient=m["recipient"],
        template_type=TemplateType(m["template_type"]),
        template_data=m["template_data"] or {},
        subject=m["subject"],
        body=m["body"],
        html_body=m["html_body"],
        mime=m["mime"],
        send_count=m["send_count"],
        max_attempts=m["max_attempts"],
        idempotency_key=m["idempotency_key"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        next_attempt_at=m["next_attempt_at"],
        expires_at=m["expires_at"],
        waiting_for=WaitingFor(m["waiting_for"]) if m["waiting_for"] else None,
        last_error=Diagnosis.from_json(last_error) if last_error else None,
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
        request_hash=m["request_hash"],
        reclaimed_from=m.get("reclaimed_from"),
        dispatches=attempts,
        priority=Priority(m.get("priority") or Priority.URGENT.value),
        folded_duplicates=int(m.get("folded_duplicates") or 0),
        content_hash=m.get("content_hash"),
        locale=m.get("locale"),
        mime_ref=m.get("mime_ref"),
    )


def dispatch_row(
    c: Completion, error: dict[str, Any] | None, worker: str, now: datetime
) -> dict[str, Any]:
    """The ``dispatches`` row of one attempt, failed when ``error`` is set."""
    return {
        "id": new_id(),
        "message_id": c.message_id,
        "status": (DispatchStatus.FAILED if error else DispatchStatus.SUCCESS).value,
        "error": error,
        "worker": worker,
        "reclaimed_from": c.reclaimed_from,
        "created_at": now,
        "updated_at": now,
        **handoff_values(c.handoff),
    }


def dispatch_from_row(row: Row[Any]) -> Dispatch:
    """The attempt a ``dispatches`` row holds."""
    m = row._mapping
    return Dispatch(
        id=m["id"],
        message_id=m["message_id"],
        status=DispatchStatus(m["status"]),
        error=Diagnosis.from_json(m["error"]) if m["error"] else None,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        reclaimed_from=m.get("reclaimed_from"),
        **handoff_fields(m),
    )


def tenant_from_row(row: Row[Any]) -> StoredTenant:
    """The saved tenant a ``tenants`` row holds."""
    m = row._mapping
    return StoredTenant(m["id"], m["courier"], m["created_at"], m["updated_at"])


def token_from_row(row: Row[Any]) -> StoredOAuthToken:
    """The kept refresh token an ``oauth_tokens`` row holds."""
    m = row._mapping
    return StoredOAuthToken(m["tenant"], m["refresh_token"], m["origin"], m["updated_at"])


def aware(value: datetime) -> datetime:
    """``value`` as timezone-aware UTC (SQLite hands back naive times in some aggregates)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
