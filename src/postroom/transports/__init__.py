"""Transports: how a message leaves. ``make_transport`` picks one from a tenant's settings."""

from __future__ import annotations

from postroom.config.settings import CourierSettings
from postroom.errors import ConfigError
from postroom.oauth.client import RefreshTokenKeeper
from postroom.transports.base import Envelope, Recorder, SendResult, Step, Transport
from postroom.transports.http import HttpTransport
from postroom.transports.outbox import OutboxTransport
from postroom.transports.smtp import SmtpTransport


def make_transport(
    courier: CourierSettings,
    *,
    pool_size: int = 1,
    allow_private_targets: bool = True,
    refresh_tokens: RefreshTokenKeeper | None = None,
) -> Transport:
    """The transport a tenant's settings ask for.

    ``allow_private_targets`` False (tenants saved through the API) makes the SMTP and HTTP
    transports refuse loopback, private and link-local addresses, checked on the resolved
    address (see :mod:`postroom.net.targets`). ``refresh_tokens`` keeps the refresh
    token of an OAuth2 device-code sign-in (``courier.smtp.oauth2.flow: device_code``).
    """
    if courier.strategy == "smtp":
        uri = courier.smtp.uri()
        if uri is None:
            raise ConfigError(
                "delivery_strategy is smtp but no connection_uri is set",
                path="courier.smtp.connection_uri",
            )
        return SmtpTransport(
            uri,
            courier.smtp,
            pool_size=pool_size,
            allow_private_targets=allow_private_targets,
            refresh_tokens=refresh_tokens,
        )
    if courier.strategy == "http":
        return HttpTransport(
            courier.http, pool_size=pool_size, allow_private_targets=allow_private_targets
        )
    return OutboxTransport(courier.outbox_path)


__all__ = [
    "Envelope",
    "HttpTransport",
    "OutboxTransport",
    "Recorder",
    "SendResult",
    "SmtpTransport",
    "Step",
    "Transport",
    "make_transport",
]
