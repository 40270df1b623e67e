"""Webhooks back to the identity system: each event stored first (a
:class:`~postroom.store.events_base.WebhookDelivery` per subscribed endpoint), then POSTed with
Standard Webhooks headers through the guarded client, retried with backoff for a day."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from postroom.config.settings import CourierSettings, Settings
from postroom.config.tenants import TenantRegistry
from postroom.models import Message, Status
from postroom.net.client import make_client, shown_url
from postroom.store import Completion, Store, utcnow
from postroom.store.events_base import EventRecords, WebhookDelivery
from postroom.store.records import events_of

log = logging.getLogger("postroom.webhooks")

RETRY_FOR = timedelta(days=1)
MAX_BACKOFF = 3600.0
LEASE = 60.0
ANSWER_KEPT = 500  # characters of a receiver's answer kept for the dashboard


def reference_of(template_data: dict[str, Any] | None) -> str | None:
    """The identity system's own id of a message: ``reference`` given at intake, else the Ory
    intake's ``template_data.identity.id``."""
    data = template_data or {}
    given = data.get("reference")
    if isinstance(given, str) and given:
        return given
    identity = data.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("id"), str):
        return str(identity["id"])
    return None


def owed(
    tenant: str,
    courier: CourierSettings,
    event_type: str,
    data: dict[str, Any],
    *,
    now: datetime,
) -> list[WebhookDelivery]:
    """One delivery of ``event_type`` per endpoint of ``courier.webhooks`` subscribed to it,
    each with its own ``webhook-id``; the payload is ``{type, timestamp, data}``."""
    out: list[WebhookDelivery] = []
    for index, hook in enumerate(courier.webhooks):
        if event_type not in hook.events:
            continue
        payload = {
            "type": event_type,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {"tenant": tenant, **data},
        }
        out.append(
            WebhookDelivery(
                id="msg_" + uuid.uuid4().hex,
                tenant=tenant,
                endpoint=index,
                url=hook.url,
                event_type=event_type,
                message_id=data.get("message_id"),
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                last_status=None,
                last_answer=None,
                created_at=now,
                updated_at=now,
            )
        )
    return out


def message_data(
    *,
    message_id: str | None,
    recipient: str,
    template_type: str | None,
    template_data: dict[str, Any] | None,
    event: str,
    diagnosis: str | None,
) -> dict[str, Any]:
    """The ``data`` of a webhook payload (``tenant`` is added by :func:`owed`)."""
    return {
        "message_id": message_id,
        "recipient": recipient,
        "template_type": template_type,
        "event": event,
        "diagnosis": diagnosis,
        "reference": reference_of(template_data),
    }


def finished_webhooks(
    courier: CourierSettings, message: Message, completion: Completion, *, now: datetime
) -> list[WebhookDelivery]:
    """The ``message.sent`` or ``message.abandoned`` deliveries a finished message owes."""
    if not courier.webhooks:
        return []
    sent = completion.status is Status.SENT
    data = message_data(
        message_id=message.id,
        recipient=message.recipient,
        template_type=message.template_type.value,
        template_data=message.template_data,
        event="sent" if sent else "abandoned",
        diagnosis=completion.error.code if completion.error else None,
    )
    kind = "message.sent" if sent else "message.abandoned"
    return owed(message.tenant, courier, kind, data, now=now)


def sign(secret: str, delivery_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery_id, at, body),
        "content-type": "application/json",
    }


class WebhookSender:
    """Sends due deliveries, one request each, until stopped; any number of processes may
    run one (deliveries are leased when taken)."""

    def __init__(
        self, store: Store, tenants: TenantRegistry, *, poll: float = 0.5, timeout: float = 10.0
    ) -> None:
        self.records: EventRecords = events_of(store)
        self.tenants = tenants
        self.poll = poll
        self.timeout = timeout
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    def _client(self, allow_private: bool) -> httpx.AsyncClient:
        if allow_private not in self._clients:
            self._clients[allow_private] = make_client(
                timeout=self.timeout, connections=8, allow_private_targets=allow_private
            )
        return self._clients[allow_private]

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set."""
        try:
            while not stop.is_set():
                try:
                    sent = await self.run_once()
                except Exception:
                    log.exception("sending webhooks failed; retrying shortly")
                    sent = 0
                if sent:
                    continue
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {waiter, stopper}, timeout=self.poll, return_when="FIRST_COMPLETED"
                )
                waiter.cancel()
                stopper.cancel()
        finally:
            for client in self._clients.values():
                await client.aclose()

    async def run_once(self) -> int:
        """Send what is due now; return how many were tried."""
        due = await self.records.claim_deliveries(now=utcnow(), lease=LEASE, limit=32)
        if due:
            settings = await self.tenants.settings()
            await asyncio.gather(*(self._send(settings, d) for d in due))
        return len(due)

    async def _send(self, settings: Settings, delivery: WebhookDelivery) -> None:
        try:
            courier = settings.tenant(delivery.tenant)
            hook = courier.webhooks[delivery.endpoint]
        except (KeyError, IndexError):
            courier, hook = None, None
        if courier is None or hook is None or hook.url != delivery.url:
            await self._finish(delivery, "failed", None, "the webhook is no longer configured")
            return
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
        headers = sign(hook.secret, delivery.id, utcnow(), body)
        client = self._client(self.tenants.allows_private_targets(delivery.tenant))
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            answer = f"no answer from {shown_url(delivery.url)}: {exc or type(exc).__name__}"
            await self._retry(delivery, courier, None, answer)
            return
        answer = f"{response.status_code} {response.text[:ANSWER_KEPT]}".strip()
        if 200 <= response.status_code < 300:
            await self._finish(delivery, "delivered", response.status_code, answer)
        else:
            await self._retry(delivery, courier, response.status_code, answer)

    async def _retry(
        self,
        delivery: WebhookDelivery,
        courier: CourierSettings,
        status: int | None,
        answer: str,
    ) -> None:
        delay = min(courier.retry.initial * 2**delivery.attempts, MAX_BACKOFF)
        when = utcnow() + timedelta(seconds=delay)
        if when > delivery.created_at + RETRY_FOR:
            await self._finish(delivery, "failed", status, answer)
            return
        log.info("webhook %s to %s: %s; retry at %s", delivery.id, delivery.url, answer, when)
        await self.records.finish_delivery(
            delivery.id,
            status="pending",
            next_attempt_at=when,
            last_status=status,
            last_answer=answer,
            now=utcnow(),
        )

    async def _finish(
        self, delivery: WebhookDelivery, status: str, code: int | None, answer: str
    ) -> None:
        await self.records.finish_delivery(
            delivery.id,
            status=status,
            next_attempt_at=None,
            last_status=code,
            last_answer=answer,
            now=utcnow(),
        )
