"""The settings model: what a configuration file may say, with its defaults.

Validation lives here; reading files and the environment lives in ``loader``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from postroom.config.branding import BrandingSettings, valid_locale
from postroom.config.dkim import DkimSettings
from postroom.config.durations import DAY, HOUR, MINUTE, Duration, PositiveDuration, at_most
from postroom.config.events import ProviderEventsSettings, SuppressionSettings, WebhookSettings
from postroom.config.http import HttpSettings
from postroom.config.listener import CourierListenerSettings, ListenerSettings, check_tenants
from postroom.config.model import SettingsModel
from postroom.config.networks import cidr_networks
from postroom.config.secrets import stored_token
from postroom.config.smtp import SmtpSettings
from postroom.deliverability.nameservers import parse_nameserver
from postroom.errors import ConfigError, InputError

MIN_INTAKE_TOKEN = 16
"""The shortest intake token a tenant accepts (a stored ``sha256:`` hash aside)."""

MAX_TTL = 30 * DAY
"""The longest ``courier.message_ttl``, and so the longest wait before a retry that a message
could still live to see (``retry.initial``, ``retry.max``, ``worker --max-wait``)."""
MAX_RETENTION = 3650 * DAY
"""The longest ``courier.retention`` (and ``cleanup --older-than``): ten years."""


class _Strict(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Strict):
    """``courier.retry``: exponential backoff with jitter between attempts."""

    initial: Annotated[Duration, at_most(MAX_TTL)] = 2.0
    max: Annotated[Duration, at_most(MAX_TTL)] = 300.0


class WorkerSettings(_Strict):
    """``courier.worker``."""

    concurrency: int = Field(default=8, ge=1, le=256)
    lease: Annotated[PositiveDuration, at_most(HOUR)] = (
        60.0  # 0 would let a second worker take a message being sent
    )


class RecipientLimitSettings(_Strict):
    """``courier.recipient_limits``: per tenant and recipient (case-insensitive), over urgent
    and normal messages (bulk and ``test`` are not counted); 0 turns a limit off."""

    cooldown: Annotated[Duration, at_most(DAY)] = 0.0  # per template type
    per_hour: int = Field(default=0, ge=0, le=100_000)


def _list_from_text(value: object) -> object:
    """``COURIER_RATE_LIMITS`` arrives as text: read it as YAML/JSON (a list of mappings)."""
    if isinstance(value, str):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(
                "write rate limits like [{count: 30, per: 1m}, {count: 10000, per: 1d}]"
            ) from None
    return value


class RateLimitSettings(_Strict):
    """One entry of ``courier.rate_limits``: at most ``count`` per ``per``."""

    count: int = Field(gt=0)
    per: Annotated[PositiveDuration, at_most(31 * DAY)]
    unit: Literal["messages", "recipients"] = "messages"


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class TokenPlace(_Strict):
    """One entry of ``courier.ory.token_in``: a request header or a cookie that carries the
    intake token (what Kratos's ``request_config.auth`` of type ``api_key`` sends)."""

    header: str | None = None
    cookie: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> TokenPlace:
        if (self.header is None) == (self.cookie is None):
            raise ValueError(
                "give exactly one of header or cookie, like {header: X-Courier-Auth} or "
                "{cookie: kratos_courier}"
            )
        name = self.header if self.header is not None else self.cookie
        if not name or not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a valid header or cookie name (letters, digits and "
                "!#$%&'*+.^_`|~- only)"
            )
        return self


class OrySettings(_Strict):
    """``courier.ory``: how ``/intake/ory`` treats what Ory Kratos sends for this tenant."""

    render: Literal["postroom", "kratos", "auto"] = "auto"
    token_in: list[TokenPlace] = Field(default_factory=list, max_length=16)


class CourierSettings(_Strict):
    """One tenant's ``courier`` section."""

    delivery_strategy: Literal["smtp", "http", "outbox"] | None = None
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    template_override_path: str | None = None
    outbox_path: str = "./var/outbox"
    expose_message_bodies: bool = False
    message_retries: int = Field(default=5, ge=0, le=100)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    message_ttl: Annotated[Duration, at_most(MAX_TTL)] = 3600.0
    retention: Annotated[Duration, at_most(MAX_RETENTION)] = 30 * DAY
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    intake_tokens: list[str] = Field(default_factory=list, repr=False)
    ory: OrySettings = Field(default_factory=OrySettings)
    preset: str | None = None
    rate_limits: Annotated[list[RateLimitSettings], BeforeValidator(_list_from_text)] = Field(
        default_factory=list
    )
    # Priority lanes: the share of each rate-limit window bulk mail may take, how long a
    # normal message waits before it counts as urgent, and how long bulk mail may wait.
    bulk_share: float = Field(default=0.8, gt=0.0, le=1.0)
    priority_aging: Annotated[Duration, at_most(MAX_TTL)] = 5 * MINUTE
    bulk_ttl: Annotated[Duration, at_most(MAX_TTL)] = 7 * DAY
    dedupe_window: Annotated[Duration, at_most(DAY)] = 60.0
    recipient_limits: RecipientLimitSettings = Field(default_factory=RecipientLimitSettings)
    locale: str = "en"  # for messages that name none (BCP 47)
    branding: BrandingSettings = Field(default_factory=BrandingSettings)

    @field_validator("locale")
    @classmethod
    def _locale_tag(cls, value: str) -> str:
        return valid_locale(value)

    provider_events: ProviderEventsSettings = Field(default_factory=ProviderEventsSettings)
    suppression: SuppressionSettings = Field(default_factory=SuppressionSettings)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    listener: CourierListenerSettings = Field(default_factory=CourierListenerSettings)
    dkim: DkimSettings = Field(default_factory=DkimSettings)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from postroom.presets import get_preset  # the registry imports settings-free modules

        try:
            return get_preset(value).name
        except InputError as exc:
            raise ValueError(str(exc).removeprefix("preset: ")) from None

    @field_validator("intake_tokens")
    @classmethod
    def _hashed_tokens(cls, value: list[str]) -> list[str]:
        # Stored hashed: a plain token in the file is hashed as it is read; a sha256: entry
        # is already the hash (presented tokens are always hashed, see token_matches).
        for token in value:
            if len(token) < MIN_INTAKE_TOKEN and not token.startswith("sha256:"):
                raise ValueError(
                    f"an intake token must be at least {MIN_INTAKE_TOKEN} characters long"
                )
        return [stored_token(token) for token in value]

    @model_validator(mode="after")
    def _smtp_needs_a_uri(self) -> CourierSettings:
        if self.delivery_strategy == "smtp" and not self.smtp.connection_uri:
            raise ValueError(
                "delivery_strategy is smtp but smtp.connection_uri is not set; set it "
                "(or COURIER_SMTP_CONNECTION_URI), or use delivery_strategy: outbox"
            )
        if self.delivery_strategy == "http" and not self.http.request_config.url:
            raise ValueError(
                "delivery_strategy is http but http.request_config.url is not set; set it "
                "(or COURIER_HTTP_REQUEST_CONFIG_URL), or use delivery_strategy: outbox"
            )
        return self

    @property
    def strategy(self) -> str:
        """The effective strategy: SMTP when a URI is configured, else HTTP when a URL is,
        else the outbox."""
        if self.delivery_strategy:
            return self.delivery_strategy
        if self.smtp.connection_uri:
            return "smtp"
        return "http" if self.http.request_config.url else "outbox"

    @property
    def effective_rate_limits(self) -> list[RateLimitSettings]:
        """The tenant's own ``rate_limits`` when it sets them (even to ``[]``), else the
        documented limits of its preset, else none."""
        if "rate_limits" in self.model_fields_set or self.preset is None:
            return list(self.rate_limits)
        from postroom.presets import get_preset

        return [
            RateLimitSettings.model_validate(limit.to_json())
            for limit in get_preset(self.preset).rate_limits
        ]


def _proxy_list(value: object) -> object:
    """``SERVE_TRUSTED_PROXIES`` arrives as text: comma-separated addresses or networks."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ServeSettings(_Strict):
    """``serve``."""

    host: str = "127.0.0.1"
    port: int = Field(default=4436, ge=0, le=65535)
    admin_token: str | None = None
    allow_private_targets: bool = False
    trusted_proxies: Annotated[list[str], BeforeValidator(_proxy_list)] = Field(
        default_factory=list
    )
    # The hosts an SNS SigningCertURL may name (https only): AWS's own unless widened here.
    sns_cert_host_pattern: str = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"

    @field_validator("sns_cert_host_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a regular expression: {exc}") from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return cidr_networks(value, example="[127.0.0.1, 10.0.0.0/8] (your reverse proxies)")


class DnsSettings(_Strict):
    """``dns``: the resolver ``doctor`` (and the DKIM publication check) asks."""

    nameservers: Annotated[list[str], BeforeValidator(_proxy_list)] = Field(default_factory=list)
    timeout: Annotated[PositiveDuration, at_most(MINUTE)] = 2.0

    @field_validator("nameservers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_nameserver(entry)
        return value


class SecretsSettings(_Strict):
    """``secrets``."""

    default: list[str] = Field(default_factory=list)


class TenantSettings(_Strict):
    """An entry of ``tenants``."""

    courier: CourierSettings = Field(default_factory=CourierSettings)


class Settings(_Strict):
    """The whole configuration."""

    dsn: str = "sqlite:///./var/postroom.db"
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    courier: CourierSettings = Field(default_factory=CourierSettings)
    tenants: dict[str, TenantSettings] = Field(default_factory=dict)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    listener: ListenerSettings = Field(default_factory=ListenerSettings)

    @model_validator(mode="after")
    def _one_tenant_per_client(self) -> Settings:
        try:
            check_tenants((name, self.tenant(name).listener) for name in self.tenant_names())
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def tenant(self, name: str) -> CourierSettings:
        """The courier settings of a tenant; raise ``KeyError`` for an unknown one."""
        if name == "default":
            return self.courier
        return self.tenants[name].courier

    def tenant_names(self) -> list[str]:
        """Every tenant the file declares, ``default`` first."""
        return ["default", *sorted(self.tenants)]
