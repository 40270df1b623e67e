"""Tenants as the API, the dashboard and the CLI see them: whose settings apply to a message
("this tenant, or the default for one that is gone"), whether its bodies may be shown,
``test-smtp`` with a tenant's saved settings, and a new intake token for a saved tenant."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from postroom.config.passwords import generate_password
from postroom.config.secrets import MASK
from postroom.config.settings import MIN_INTAKE_TOKEN, CourierSettings, Settings
from postroom.config.tenants import TenantRegistry
from postroom.errors import InputError, NotFoundError
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


# -- intake tokens ---------------------------------------------------------------------------

_TOKEN_CHARS = re.compile(rf"[A-Za-z0-9._~+/=-]{{{MIN_INTAKE_TOKEN},512}}")
"""What a typed token may hold: the characters of a bearer token, so that it fits in an
``Authorization`` header, a cookie or a basic-auth password without quoting."""


@dataclass(frozen=True, slots=True)
class IntakeToken:
    """A tenant's new intake token. ``token`` is shown this once (the tenant keeps only its
    hash); ``generated`` is False for a token the user typed, which is not shown back;
    ``keep_others`` keeps the stored tokens working beside it."""

    token: str = field(repr=False)
    generated: bool
    keep_others: bool


def new_intake_token(typed: str = "", *, keep_others: bool = False) -> IntakeToken:
    """The token ``typed``, checked, or a generated one (32 random bytes) when it is empty.
    Raise :class:`InputError` naming ``intake_token`` for a typed token that cannot work."""
    if not typed:
        return IntakeToken(generate_password(), generated=True, keep_others=keep_others)
    if typed.lower().startswith("sha256:"):
        raise InputError(
            "reads as a stored hash (sha256:...), which never works as a token; type the token "
            "itself, or leave the field empty to have one made",
            field="intake_token",
        )
    if len(typed) < MIN_INTAKE_TOKEN:
        raise InputError(
            f"is {len(typed)} characters long; an intake token needs {MIN_INTAKE_TOKEN} or "
            "more (leave the field empty to have a 43-character one made)",
            field="intake_token",
        )
    if not _TOKEN_CHARS.fullmatch(typed):
        raise InputError(
            "may hold only letters, digits and - . _ ~ + / = (no spaces), at most 512 of them, "
            "so that it fits in an Authorization header; leave the field empty to have one made",
            field="intake_token",
        )
    return IntakeToken(typed, generated=False, keep_others=keep_others)


def with_intake_token(courier: Mapping[str, Any], token: IntakeToken) -> dict[str, Any]:
    """A courier section (as the registry describes it, credentials masked) with ``token`` as
    its intake token: alone, or after the stored ones (``***`` keeps each of them when
    :meth:`~postroom.config.tenants.TenantRegistry.save` stores the section, hashed like
    every intake token)."""
    tokens = [MASK, token.token] if token.keep_others else [token.token]
    return {**courier, "intake_tokens": tokens}
