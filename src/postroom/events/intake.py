"""A provider's event webhook request, from its raw bytes to stored events: verified as the
provider signs it, replays refused, parsed, stored once, matched to messages; then hard
bounces and complaints suppress the address and the identity system's webhooks are owed."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from postroom.config.settings import CourierSettings
from postroom.config.tenants import TenantRegistry
from postroom.errors import NotFoundError
from postroom.events import parse, sns, verify
from postroom.events.model import EventKind, ProviderEvent
from postroom.events.verify import Refused, Verified
from postroom.events.webhooks import message_data, owed
from postroom.metrics import Metrics
from postroom.store import Store, utcnow
from postroom.store.events_base import MatchedEvent, Suppression, WebhookDelivery
from postroom.store.records import events_of

log = logging.getLogger("postroom.events")

PROVIDERS = ("sendgrid", "mailgun", "postmark", "ses", "generic")
NONCES_KEPT = 2 * verify.TOLERANCE + 60  # a replay older than this is refused as stale anyway
WEBHOOK_TYPES = {
    EventKind.DELIVERED: "message.delivered",
    EventKind.BOUNCED: "message.bounced",
    EventKind.COMPLAINED: "message.complained",
}


class EventIntake:
    """Takes providers' event webhook requests for every tenant."""

    def __init__(self, store: Store, tenants: TenantRegistry, metrics: Metrics | None) -> None:
        self.records = events_of(store)
        self.tenants = tenants
        self.metrics = metrics
        self.certificates = sns.CertificateCache()

    async def take(
        self, provider: str, tenant: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """Verify, store and act on one request; return what was done. Raise
        ``NotFoundError`` for an unknown provider or tenant, :class:`Refused` when the request
        is not proven to be the provider's (or is a replay), ``parse.PayloadError`` for a
        verified body of the wrong shape."""
        if provider not in PROVIDERS:
            raise NotFoundError(f"no provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        settings = await self.tenants.settings()
        if tenant not in settings.tenant_names():
            raise NotFoundError(f"no tenant {tenant!r}")
        courier = settings.tenant(tenant)
        config = getattr(courier.provider_events, provider)
        if config is None:
            raise Refused(f"tenant {tenant!r} has no provider_events.{provider} configured")
        now = utcnow()
        lowered = {k.lower(): v for k, v in headers.items()}
        if provider == "ses":
            verified = await sns.verify(
                config,
                verify._json(body),
                now=now,
                pattern=settings.serve.sns_cert_host_pattern,
                certificates=self.certificates,
                allow_private_targets=self.tenants.allows_private_targets(tenant),
            )
        else:
            check = getattr(verify, provider)
            verified = check(config, body, lowered, now=now)
        nonce = f"{tenant}:{verified.nonce}" if verified.nonce is not None else None
        if provider == "ses" and verified.body.get("Type") != "Notification":
            if nonce is not None and await self.records.nonce_seen(
                nonce, now=now, keep=NONCES_KEPT
            ):
                raise Refused("this signed request was already taken (a replay)")
            return await self._subscription(verified, settings.serve.sns_cert_host_pattern, tenant)
        events = list(self._parse(provider, verified, lowered, now))
        taken = await self.records.take_events(
            tenant,
            events,
            now=now,
            nonce=nonce,
            keep=NONCES_KEPT,
            plan=lambda matched: plan(tenant, courier, matched, now=now),
        )
        if taken is None:
            raise Refused("this signed request was already taken (a replay)")
        matched = taken
        if self.metrics is not None:
            for item in matched:
                self.metrics.delivery_events.labels(
                    item.event.kind.value, item.event.provider
                ).inc()
        return {
            "received": len(events),
            "stored": len(matched),
            "matched": sum(1 for m in matched if m.event.message_id),
        }

    def _parse(
        self, provider: str, verified: Verified, headers: Mapping[str, str], now: Any
    ) -> Sequence[ProviderEvent]:
        if provider == "ses":
            return list(parse.ses(verified.body, now))
        if provider == "generic":
            return list(parse.generic(verified.body, now, request_id=headers["webhook-id"]))
        reader = getattr(parse, provider)
        return list(reader(verified.body, now))

    async def _subscription(self, verified: Verified, pattern: str, tenant: str) -> dict[str, Any]:
        kind = str(verified.body.get("Type"))
        if kind == "SubscriptionConfirmation":
            await sns.confirm(
                verified.body,
                pattern=pattern,
                allow_private_targets=self.tenants.allows_private_targets(tenant),
            )
            log.info(
                "tenant %s: SNS subscription to %s confirmed", tenant, verified.body["TopicArn"]
            )
            return {"confirmed": verified.body["TopicArn"]}
        return {"received": 0, "stored": 0, "matched": 0}

    async def match_pending(self) -> int:
        """Match events whose send was recorded after they came; act on them."""
        matched = await self.records.match_pending(now=utcnow())
        if not matched:
            return 0
        settings = await self.tenants.settings()
        for item in matched:
            tenant = item.event.tenant
            if tenant in settings.tenant_names():
                courier = settings.tenant(tenant)
                await self._owe_only(tenant, courier, item)
        return len(matched)

    async def _owe_only(self, tenant: str, courier: CourierSettings, item: MatchedEvent) -> None:
        # The suppression (if any) was added when the event came; only the webhook is new.
        await self.records.add_deliveries(_owed_for(tenant, courier, item, now=utcnow()))


def plan(
    tenant: str, courier: CourierSettings, matched: Sequence[MatchedEvent], *, now: datetime
) -> tuple[list[Suppression], list[WebhookDelivery]]:
    """What new events lead to: a suppression for each hard bounce or complaint (matched to
    a message or not), and the webhooks owed for each matched delivery, bounce or complaint."""
    entries: list[Suppression] = []
    deliveries: list[WebhookDelivery] = []
    expire = courier.suppression.expire
    for item in matched:
        event = item.event
        if event.kind is EventKind.COMPLAINED or (event.kind is EventKind.BOUNCED and event.hard):
            entries.append(
                Suppression(
                    tenant=tenant,
                    address=event.recipient,
                    reason=_reason(event.kind, event.diagnosis, event.reply),
                    event=event.kind.value,
                    event_ref=event.id,
                    message_id=event.message_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=expire) if expire else None,
                )
            )
        if event.message_id is not None:
            deliveries += _owed_for(tenant, courier, item, now=now)
    return entries, deliveries


def _owed_for(
    tenant: str, courier: CourierSettings, item: MatchedEvent, *, now: datetime
) -> list[WebhookDelivery]:
    kind = WEBHOOK_TYPES.get(item.event.kind)
    if kind is None:
        return []
    data = message_data(
        message_id=item.event.message_id,
        recipient=item.recipient or item.event.recipient,
        template_type=item.template_type,
        template_data=item.template_data,
        event=item.event.kind.value,
        diagnosis=item.event.diagnosis,
    )
    return owed(tenant, courier, kind, data, now=now)


def _reason(kind: EventKind, diagnosis: str | None, reply: str | None) -> str:
    words = "hard bounce" if kind is EventKind.BOUNCED else "spam complaint"
    detail = f" ({diagnosis})" if diagnosis and diagnosis != "complaint" else ""
    return f"{words}{detail}: {reply}" if reply else f"{words}{detail}"
