"""``courier.smtp.oauth2``: log in to SMTP with an OAuth2 access token (SASL XOAUTH2).

Three providers: ``microsoft`` (Entra ID client credentials, or the device-code sign-in of a
person through ``postroom oauth login``), ``google`` (a service account with domain-wide
delegation, RFC 7523's JWT bearer grant) and ``generic`` (client credentials at any token
URL). Everything that can be checked when the configuration loads is checked here, and each
problem names its key; the secrets themselves (client secret, service account key, refresh
token) are never part of an error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from postroom.config.model import SettingsModel
from postroom.errors import ConfigError

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_DELEGATED_SCOPE = "https://outlook.office.com/SMTP.Send offline_access"
MICROSOFT_DEVICE_TENANT = "common"
GOOGLE_SCOPE = "https://mail.google.com/"

Provider = Literal["microsoft", "google", "generic"]
Flow = Literal["client_credentials", "device_code"]

_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$")
_SERVICE_ACCOUNT_KEYS = ("client_email", "private_key", "token_uri")

# Which keys each provider (and flow) needs, and which it may have besides.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "microsoft/client_credentials": ("tenant_id", "client_id", "client_secret"),
    "microsoft/device_code": ("client_id",),
    "google": (),
    "generic": ("token_url", "client_id", "client_secret", "scope"),
}
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "microsoft/client_credentials": ("flow", "token_url", "scope"),
    "microsoft/device_code": (
        "flow",
        "tenant_id",
        "client_secret",
        "refresh_token",
        "token_url",
        "scope",
    ),
    "google": ("service_account_file", "service_account_json", "subject", "scope"),
    "generic": ("flow",),
}
_WHAT: dict[str, str] = {
    "tenant_id": "the Directory (tenant) ID of the Entra app registration",
    "client_id": "the application (client) ID",
    "client_secret": "the client secret's value",
    "token_url": "the provider's OAuth2 token endpoint (https://...)",
    "scope": "the scope the access token is asked for",
}


def loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses: the only hosts a token URL may reach
    over plain http (a token endpoint on the same machine, such as in tests)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_token_url(url: str) -> str:
    """Return ``url`` when it is https (or http to a loopback host); raise ``ValueError``
    otherwise. Token requests carry secrets, so they are never sent in clear over a
    network."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or not host or parts.scheme not in {"https", "http"}:
        raise ValueError(f"must be an https:// URL, like {MICROSOFT_AUTHORITY}/...")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "contains a user or password; give the client's credentials as client_id and "
            "client_secret, which are encrypted and never printed"
        )
    if parts.scheme == "http" and not loopback_host(host):
        raise ValueError(
            "must use https: the token request carries the client secret; plain http is "
            "allowed only to localhost"
        )
    return url.strip()


class OAuth2Settings(SettingsModel):
    """``courier.smtp.oauth2``: XOAUTH2 login instead of a password (see the README)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider | None = None
    flow: Flow | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = Field(default=None, repr=False)
    refresh_token: str | None = Field(default=None, repr=False)
    service_account_file: str | None = None
    service_account_json: str | None = Field(default=None, repr=False)
    subject: str | None = None
    token_url: str | None = None
    scope: str | None = None

    @field_validator("token_url")
    @classmethod
    def _secure_token_url(cls, value: str | None) -> str | None:
        return check_token_url(value) if value else None

    @field_validator("tenant_id")
    @classmethod
    def _tenant_id(cls, value: str | None) -> str | None:
        if value is not None and not _TENANT_ID.match(value):
            raise ValueError(
                "is not an Entra tenant: give the Directory (tenant) ID (a GUID), a domain "
                "such as contoso.onmicrosoft.com, or common / consumers / organizations"
            )
        return value

    @field_validator("service_account_json")
    @classmethod
    def _service_account_json(cls, value: str | None) -> str | None:
        if value is not None:
            parse_service_account(value)
        return value

    @model_validator(mode="after")
    def _provider_keys(self) -> OAuth2Settings:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if self.provider is None:
            if given:
                raise ValueError(
                    f"{given[0]} is set but provider is not; set provider to microsoft, google "
                    "or generic"
                )
            return self
        if self.provider != "microsoft" and self.flow == "device_code":
            raise ValueError(
                "flow device_code is Microsoft's sign-in for a person's mailbox; it needs "
                "provider microsoft"
            )
        kind = self.kind
        for name in _REQUIRED[kind]:
            if getattr(self, name) in (None, ""):
                raise ValueError(
                    f"{name} is required for provider {self._described_kind()}: "
                    f"{_WHAT.get(name, name)}"
                )
        allowed = {"provider", *_REQUIRED[kind], *_OPTIONAL[kind]}
        for name in given:
            if name not in allowed:
                raise ValueError(
                    f"{name} does not apply to provider {self._described_kind()}; "
                    f"the keys it takes: {', '.join(sorted(allowed))}"
                )
        if self.provider == "google" and (self.service_account_file is None) == (
            self.service_account_json is None
        ):
            raise ValueError(
                "provider google needs exactly one of service_account_file (the path of the "
                "service account's JSON key) or service_account_json (its content)"
            )
        return self

    def _described_kind(self) -> str:
        if self.provider == "microsoft":
            return f"microsoft with flow {self.effective_flow}"
        return str(self.provider)

    @property
    def configured(self) -> bool:
        """True when an OAuth2 login is configured (``provider`` is set)."""
        return self.provider is not None

    @property
    def effective_flow(self) -> str:
        """``client_credentials``, ``device_code`` or (Google) ``jwt_bearer``."""
        if self.provider == "google":
            return "jwt_bearer"
        return self.flow or "client_credentials"

    @property
    def kind(self) -> str:
        """The provider, with the flow for Microsoft (``microsoft/device_code``)."""
        if self.provider == "microsoft":
            return f"microsoft/{self.effective_flow}"
        return str(self.provider)

    def token_endpoint(self) -> str:
        """The token URL for Microsoft and generic (Google's comes from its key file)."""
        if self.token_url:
            return self.token_url
        if self.provider == "microsoft":
            tenant = self.tenant_id or MICROSOFT_DEVICE_TENANT
            return f"{MICROSOFT_AUTHORITY}/{tenant}/oauth2/v2.0/token"
        raise ConfigError("token_url is required", path="courier.smtp.oauth2.token_url")

    def device_code_endpoint(self) -> str:
        """Microsoft's device authorization endpoint, next to its token endpoint."""
        token = self.token_endpoint()
        base, _sep, last = token.rstrip("/").rpartition("/")
        return f"{base}/devicecode" if last == "token" else f"{token.rstrip('/')}/devicecode"

    def effective_scope(self) -> str:
        """The scope asked for: ``scope`` when given, else the provider's SMTP scope."""
        if self.scope:
            return self.scope
        if self.provider == "google":
            return GOOGLE_SCOPE
        if self.effective_flow == "device_code":
            return MICROSOFT_DELEGATED_SCOPE
        return MICROSOFT_SCOPE

    def service_account(self) -> dict[str, Any]:
        """The Google service account key (from the file or inline); raise ``ConfigError``
        naming the key when it cannot be read or lacks what the JWT bearer grant needs."""
        where = "courier.smtp.oauth2."
        if self.service_account_json is not None:
            text, key = self.service_account_json, where + "service_account_json"
        elif self.service_account_file is not None:
            key = where + "service_account_file"
            try:
                text = Path(self.service_account_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {self.service_account_file}: {exc.strerror or exc}", path=key
                ) from None
        else:
            raise ConfigError(
                "provider google needs service_account_file or service_account_json",
                path="courier.smtp.oauth2",
            )
        try:
            return parse_service_account(text)
        except ValueError as exc:
            raise ConfigError(str(exc), path=key) from None


def parse_service_account(text: str) -> dict[str, Any]:
    """Parse a Google service account key file's JSON; raise ``ValueError`` (never quoting
    the content) when it is not one."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise ValueError(
            "is not JSON; give the service account's key file exactly as Google downloaded it"
        ) from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object (a service account key file)")
    for name in _SERVICE_ACCOUNT_KEYS:
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(
                f"has no {name}; download a new JSON key for the service account "
                "(IAM & Admin > Service accounts > Keys > Add key > JSON)"
            )
    if data.get("type", "service_account") != "service_account":
        raise ValueError(
            f"is a {data.get('type')!r} key, not a service account key; domain-wide "
            "delegation needs a service account"
        )
    try:
        check_token_url(data["token_uri"])
    except ValueError as exc:
        raise ValueError(f"token_uri {exc}") from None
    return data
