"""The message list (filters, keyset pages, auto-refresh) and one message in detail (envelope,
headers, bodies in a sandbox, every attempt with its diagnosis; retry and cancel)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from postroom.errors import ConflictError, InputError, NotFoundError
from postroom.models import Message, Priority, Status, TemplateType
from postroom.service import messages as message_service
from postroom.service.tenants import courier_for
from postroom.store import MessageFilter
from postroom.web.dashboard.headers import shown_headers
from postroom.web.dashboard.pages import (
    EMAIL_CSP,
    DashboardRoute,
    form_value,
    query,
    read_form,
    redirect,
    render,
)
from postroom.web.dashboard.session import Session, require_viewer
from postroom.web.state import exposes_bodies, registry, store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
Viewer = Annotated[Session, Depends(require_viewer)]

PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    """The list's filters as the form gave them (empty: any)."""

    tenant: str = ""
    status: str = ""
    template: str = ""
    recipient: str = ""
    priority: str = ""
    provider_id: str = ""

    def params(self) -> dict[str, str | None]:
        """As query parameters."""
        return {
            "tenant": self.tenant,
            "status": self.status,
            "template": self.template,
            "recipient": self.recipient,
            "priority": self.priority,
            "provider_id": self.provider_id,
        }

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return any(self.params().values())


def _headers(message: Message, exposed: bool) -> list[tuple[str, str]]:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(message.mime)
    return shown_headers(parsed, exposed=exposed)


@router.get("/messages")
async def message_list(
    request: Request,
    _viewer: Viewer,
    tenant: str = "",
    status: str = "",
    template: str = "",
    recipient: str = "",
    priority: str = "",
    provider_id: str = "",
    page: str = "",
    fragment: str = "",
) -> Response:
    """Newest first, 50 a page; ``fragment=rows`` answers only the table rows (auto-refresh)."""
    filters = Filters(
        tenant.strip(),
        status.strip(),
        template.strip(),
        recipient.strip(),
        priority.strip(),
        provider_id.strip(),
    )
    error = None
    try:
        chosen_status = Status(filters.status) if filters.status else None
        chosen_lane = Priority(filters.priority) if filters.priority else None
        if page:
            message_service.parse_page_token(page)
    except (ValueError, InputError):
        chosen_status, chosen_lane = None, None
        error = (
            "That status, priority or page is not one this list knows; start again from the newest."
        )
    if filters.template and filters.template not in {t.value for t in TemplateType}:
        error = f"There is no template type {filters.template!r}."
    rows: list[Message] = []
    next_token = None
    if error is None:
        found = await message_service.list_page(
            store(request),
            MessageFilter(
                status=chosen_status,
                recipient=filters.recipient or None,
                tenant=filters.tenant or None,
                template_type=filters.template or None,
                priority=chosen_lane,
                provider_message_id=filters.provider_id or None,
                limit=PAGE_SIZE,
            ),
            token=page or None,
        )
        rows, next_token = found.messages, found.next_token
    exposed = {name: await exposes_bodies(request, name) for name in {m.tenant for m in rows}}
    settings = await registry(request).settings()
    context: dict[str, Any] = {
        "rows": rows,
        "exposed": exposed,
        "now": datetime.now(UTC),
    }
    if fragment == "rows":
        return render(request, "message_rows.html", **context)
    older = query("/messages", **filters.params(), page=next_token) if next_token else None
    return render(
        request,
        "messages.html",
        title="Messages",
        nav="messages",
        filters=filters,
        tenants=settings.tenant_names(),
        statuses=[s.value for s in Status],
        templates=[t.value for t in TemplateType],
        priorities=[p.value for p in Priority],
        first_page=not page,
        newest=query("/messages", **filters.params()),
        refresh=query("/messages", **filters.params(), fragment="rows"),
        older=older,
        error=error,
        status=400 if error else 200,
        **context,
    )


async def _detail(
    request: Request, message_id: str, *, status: int = 200, **extra: object
) -> Response:
    message = await message_service.get(store(request), message_id)
    exposed = await exposes_bodies(request, message.tenant)
    settings = await registry(request).settings()
    courier = courier_for(settings, message.tenant)
    return render(
        request,
        "message.html",
        status=status,
        title=f"Message to {message.recipient}",
        nav="messages",
        m=message,
        exposed=exposed,
        headers=await asyncio.to_thread(_headers, message, exposed),
        ttl=courier.message_ttl,
        now=datetime.now(UTC),
        **extra,
    )


@router.get("/messages/{message_id}")
async def message_detail(request: Request, _viewer: Viewer, message_id: str) -> Response:
    """One message with every attempt; auto-refreshes while it is queued or processing."""
    return await _detail(request, message_id)


@router.get("/messages/{message_id}/html")
async def message_html(request: Request, _viewer: Viewer, message_id: str) -> Response:
    """The stored HTML body, for the sandboxed iframe of the detail page: no scripts, no
    remote content, an opaque origin (CSP ``sandbox``), even when opened on its own."""
    message = await store(request).get(message_id)
    if message.html_body is None or not await exposes_bodies(request, message.tenant):
        raise NotFoundError("this message has no HTML body to show")
    return Response(
        message.html_body,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


@router.post("/messages/{message_id}/retry")
async def retry(request: Request, _viewer: Viewer, message_id: str) -> Response:
    """Queue an abandoned message again, after a confirmation when it outlived its TTL."""
    form = await read_form(request)
    message = await store(request).get(message_id)
    settings = await registry(request).settings()
    ttl = courier_for(settings, message.tenant).message_ttl
    age = (datetime.now(UTC) - message.created_at).total_seconds()
    if (
        message.status is Status.ABANDONED
        and 0 < ttl < age
        and form_value(form, "confirm") != "yes"
    ):
        return render(
            request,
            "confirm_retry.html",
            title="Retry an old message?",
            nav="messages",
            m=message,
            age=age,
            ttl=ttl,
        )
    try:
        await message_service.retry(store(request), settings, message_id)
    except (ConflictError, InputError) as exc:
        return await _detail(request, message_id, status=409, error=str(exc))
    return redirect(query(f"/messages/{message_id}", notice="retried"))


@router.post("/messages/{message_id}/cancel")
async def cancel(request: Request, _viewer: Viewer, message_id: str) -> Response:
    """Abandon a queued message with code ``cancelled``, after a confirmation."""
    form = await read_form(request)
    if form_value(form, "confirm") != "yes":
        message = await message_service.get(store(request), message_id)
        return render(
            request, "confirm_cancel.html", title="Cancel a message?", nav="messages", m=message
        )
    try:
        await message_service.cancel(store(request), message_id)
    except ConflictError as exc:
        return await _detail(request, message_id, status=409, error=str(exc))
    return redirect(query(f"/messages/{message_id}", notice="cancelled"))
