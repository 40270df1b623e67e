"""Tenants as the API, the dashboard and the CLI see them: whose settings apply to a message
("this tenant, or the default for one that is gone"), whether its bodies may be shown, and
``test-smtp`` with a tenant's saved settings."""

from __future__ import annotations

from postroom.config.settings import CourierSettings, Settings
from postroom.config.tenants import TenantRegistry
from postroom.errors import NotFoundError
from postroom.models import RenderedEmail
from postroom.store.refresh_tokens import refresh_token_keeper
from postroom.transports.smtp_probe import SmtpTestReport, run_smtp_test


def courier_for(settings: Settings, tenant: str) -> CourierSettings:
    """The courier settings of ``tenant``; the top-level ``courier`` for a tenant that is no
    longer configured (its messages stay, and are retried with the default's budget)."""
    return settings.tenant(tenant) if tenant in settings.tenant_names() else settings.courier


def exposes_bodies(settings: Settings, tenant: str, *, dev: bool = False) -> bool:
    """True when subjects and bodies of ``tenant``'s messages may be shown: in dev mode, or
    when the (configured) tenant sets ``expose_message_bodies``; otherwise they read
    ``<redacted>`` in the API, the dashboard and the CLI alike."""
    if dev:
        return True
    return tenant in settings.tenant_names() and settings.tenant(tenant).expose_message_bodies


async def smtp_test(
    registry: TenantRegistry,
    tenant_id: str,
    *,
    to: str | None,
    no_send: bool,
    email: RenderedEmail | None = None,
) -> SmtpTestReport:
    """``test-smtp`` with a tenant's saved settings, as the worker would send: with the
    tenant's private-target rule and its kept OAuth2 sign-in; ``email``, when given, is sent
    instead of the test email (a template preview's "send me this"). Raise
    ``NotFoundError`` for an unknown tenant."""
    settings = await registry.settings()
    if tenant_id not in settings.tenant_names():
        raise NotFoundError(f"no tenant {tenant_id!r}")
    courier = settings.tenant(tenant_id)
    return await run_smtp_test(
        courier,
        to=to,
        no_send=no_send,
        allow_private_targets=registry.allows_private_targets(tenant_id),
        refresh_tokens=refresh_token_keeper(
            registry.store, courier, tenant_id, secrets=settings.secrets.default
        ),
        email=email,
    )
