"""One delivery attempt: the tenant's route (settings, rate limits, sender) and transport, the
hand-off, and the :class:`~postroom.store.Completion` it ends in (sent, or retry or give up as
``retry`` decides). The worker's loop (:mod:`postroom.worker.worker`) claims the messages and
writes what the attempts end in."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from postroom.clock import utcnow
from postroom.config import Settings
from postroom.config.settings import CourierSettings
from postroom.config.tenants import TenantRegistry
from postroom.diagnosis.catalogue import diagnose_unexpected
from postroom.diagnosis.classify import diagnose_error
from postroom.errors import ConfigError, DeliveryError
from postroom.models import Handoff, Message, Status
from postroom.render.mime import envelope_address
from postroom.store import Completion, Queue, Tenants
from postroom.store.refresh_tokens import refresh_token_keeper
from postroom.transports import Envelope, Transport, make_transport
from postroom.worker import retry
from postroom.worker.lanes import BulkHolds, Route, held_window

log = logging.getLogger("postroom.worker")


class WorkerStore(Queue, Tenants, Protocol):
    """What the worker uses of the store: the queue, and the OAuth2 refresh tokens that its
    transports keep for tenants."""


class Attempts:
    """The tenants' routes and open transports, and one attempt at a message through them."""

    def __init__(
        self,
        store: WorkerStore,
        settings: Settings,
        *,
        concurrency: int,
        lease: float,
        transport_factory: Callable[[CourierSettings, int], Transport] | None,
        tenants: TenantRegistry | None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.concurrency = concurrency
        self.tenants = tenants
        self.holds = BulkHolds(lease)  # the rate limits' slots, and the bulk mail they hold back
        self._factory = transport_factory
        self._transports: dict[str, Transport] = {}
        self._routes: dict[str, Route] = {}
        self._caps: dict[str, int] | None = None  # bulk_caps(), for these settings

    def transport(self, tenant: str) -> Transport:
        """The tenant's transport, opened on first use and kept for the next messages."""
        transport = self._transports.get(tenant)
        if transport is None:
            courier = self.settings.tenant(tenant)
            if self._factory is not None:
                transport = self._factory(courier, self.concurrency)
            else:
                # Tenants saved through the API may not reach private addresses (SSRF guard).
                allow = self.tenants.allows_private_targets(tenant) if self.tenants else True
                keeper = refresh_token_keeper(
                    self.store, courier, tenant, secrets=self.settings.secrets.default
                )
                transport = make_transport(
                    courier,
                    pool_size=self.concurrency,
                    allow_private_targets=allow,
                    refresh_tokens=keeper,
                )
            self._transports[tenant] = transport
        return transport

    def bulk_caps(self) -> dict[str, int]:
        """Every tenant with a rate limit, with how many of its bulk messages a claim takes
        (``Route.bulk_per_claim``)."""
        if self._caps is None:
            routes = {name: self.route(name) for name in self.settings.tenant_names()}
            self._caps = {
                name: cap for name, route in routes.items() if (cap := route.bulk_per_claim)
            }
        return self._caps

    def route(self, tenant: str) -> Route:
        """The tenant's settings, limits and sender; raise ``KeyError`` for an unknown one."""
        route = self._routes.get(tenant)
        if route is None:
            courier = self.settings.tenant(tenant)
            route = Route(
                courier,
                [(limit.count, held_window(limit.per)) for limit in courier.effective_rate_limits],
                envelope_address(courier.smtp.from_address),
            )
            self._routes[tenant] = route
        return route

    async def attempt(self, message: Message) -> Completion:
        """Hand ``message`` to its tenant's transport, unless its tenant is gone, it has
        expired or a rate limit holds it; what came of it, as the completion to write."""
        try:
            route = self.route(message.tenant)
        except KeyError:
            found = await self._route_read_again(message)
            if found is None:
                broken = self.tenants.broken(message.tenant) if self.tenants else None
                return retry.tenant_unusable(message, broken, self.settings.courier)
            route = found
        courier = route.courier
        now = utcnow()
        if retry.is_expired(message, now=now):
            return retry.expired(message, courier)
        if route.limits:
            wait = await self.holds.take(self.store, route, message, now)
            if wait is not None:
                return retry.rate_limited(message, wait)
        envelope = Envelope(
            message_id=message.id,
            sender=envelope_address(message.relay_sender() or route.sender),
            recipients=(envelope_address(message.recipient),),
            data=message.mime,
            recipient=message.recipient,
            subject=message.subject,
            text=message.body,
            html=message.html_body,
            template_type=message.template_type.value,
            template_data=message.template_data,
        )
        try:
            result = await self.transport(message.tenant).send(envelope)
        except (DeliveryError, ConfigError) as exc:
            diagnosis = diagnose_error(exc)
            retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
            completion = retry.after_failure(
                message, diagnosis, courier, now=utcnow(), retry_after=retry_after
            )
            log.info(
                "message %s attempt %d failed: %s (%s)",
                message.id,
                message.send_count + 1,
                diagnosis.code,
                "retry" if completion.status is Status.QUEUED else "give up",
            )
            return completion
        except Exception as exc:  # a bug must not lose the message: record it and retry
            log.exception("message %s: unexpected error", message.id)
            diagnosis = diagnose_unexpected(exc)
            return retry.after_failure(message, diagnosis, courier, now=utcnow())
        handoff = Handoff(result.transport, result.host, result.reply, result.provider_message_id)
        return Completion(message.id, Status.SENT, handoff=handoff)

    async def _route_read_again(self, message: Message) -> Route | None:
        """The route of a tenant these settings do not know, from settings read after the
        message was enqueued (a tenant saved through the API in another process a moment
        before); None when the tenant is gone."""
        if self.tenants is None:
            return None
        await self.use_settings(await self.tenants.settings_read_after(message.created_at))
        try:
            return self.route(message.tenant)
        except KeyError:
            return None

    async def use_settings(self, fresh: Settings) -> None:
        """Go on with ``fresh`` settings: forget the routes, and close the transports of the
        tenants that changed or are gone (the next message opens a new one)."""
        if fresh is self.settings:  # nothing changed since the last read
            return
        old, self.settings = self.settings, fresh
        self._routes.clear()
        self._caps = None
        for name in list(self._transports):
            try:
                changed = old.tenant(name) != fresh.tenant(name)
            except KeyError:
                changed = True
            if changed:
                transport = self._transports.pop(name)
                with contextlib.suppress(Exception):
                    await transport.close()

    async def close(self) -> None:
        """Close every transport opened so far."""
        transports, self._transports = self._transports, {}
        for transport in transports.values():
            with contextlib.suppress(Exception):
                await transport.close()
