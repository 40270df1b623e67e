"""Tenants: the ones the configuration file declares (read-only, the operator's own) and the
ones saved through the admin API (stored with their credentials encrypted).

:class:`TenantRegistry` gives every reader one up-to-date :class:`Settings` with both kinds,
and is the only place that validates, encrypts and masks what the API saves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from postroom.config.loader import describe_validation_error
from postroom.config.secrets import (
    Crypter,
    keep_masked,
    mask_secrets,
    token_matches,
    transform_secrets,
)
from postroom.config.settings import CourierSettings, Settings, TenantSettings
from postroom.errors import ConfigError, ConflictError, InputError, NotFoundError
from postroom.store import Store

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# Keys that name files on the server: an API client gives inline content instead.
FILE_KEYS: tuple[tuple[str, ...], ...] = (
    ("template_override_path",),
    ("outbox_path",),
    ("smtp", "client_cert_path"),
    ("smtp", "client_key_path"),
    ("smtp", "oauth2", "service_account_file"),
)


def _get(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def private_host(host: str) -> bool:
    """True for names and literal addresses that are loopback, private, link-local or the like.

    This is the early check at save time; transports check the resolved address again when
    they connect.
    """
    name = host.strip("[]").lower().rstrip(".")
    if name in {"localhost", "metadata.google.internal"} or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return not address.is_global


class TenantRegistry:
    """Tenants from the file and the store, merged into one :class:`Settings`."""

    def __init__(self, settings: Settings, store: Store, *, refresh: float = 1.0) -> None:
        self.file_settings = settings
        self.store = store
        self.crypter = Crypter(settings.secrets.default)
        self.refresh = refresh
        self._current = settings
        self._version: str | None = None
        self._checked = 0.0
        self._api_names: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()

    def is_file_tenant(self, name: str) -> bool:
        """True for ``default`` and the tenants the configuration file declares."""
        return name == "default" or name in self.file_settings.tenants

    def allows_private_targets(self, name: str) -> bool:
        """File tenants are the operator's own; API tenants only with the operator's flag."""
        return self.is_file_tenant(name) or self.file_settings.serve.allow_private_targets

    async def settings(self) -> Settings:
        """The file settings with every API tenant added (re-read when they change)."""
        if time.monotonic() - self._checked < self.refresh:
            return self._current
        async with self._lock:
            if time.monotonic() - self._checked < self.refresh:
                return self._current
            version = await self.store.tenants_version()
            if version != self._version:
                stored = await self.store.list_tenants()
                tenants = dict(self.file_settings.tenants)
                names = set()
                for tenant in stored:
                    if self.is_file_tenant(tenant.id):
                        continue  # the file wins; the API refuses to save these anyway
                    courier = self._decrypt(tenant.courier)
                    tenants[tenant.id] = TenantSettings(
                        courier=CourierSettings.model_validate(courier)
                    )
                    names.add(tenant.id)
                self._current = self.file_settings.model_copy(update={"tenants": tenants})
                self._api_names = frozenset(names)
                self._version = version
            self._checked = time.monotonic()
            return self._current

    def invalidate(self) -> None:
        """Re-read the store on the next :meth:`settings` call."""
        self._checked = 0.0

    def _decrypt(self, courier: dict[str, Any]) -> dict[str, Any]:
        return transform_secrets(courier, self.crypter.decrypt)

    # -- what the API shows --------------------------------------------------------------

    async def describe(self, name: str) -> dict[str, Any]:
        """A tenant's courier section with credentials masked; raise ``NotFoundError``."""
        settings = await self.settings()
        if name not in settings.tenant_names():
            raise NotFoundError(f"no tenant {name!r}")
        source = "file" if self.is_file_tenant(name) else "api"
        if source == "api":
            stored = await self.store.get_tenant(name)
            if stored is None:
                raise NotFoundError(f"no tenant {name!r}")
            courier = stored.courier
        else:
            courier = settings.tenant(name).model_dump(mode="json", exclude_defaults=True)
        return {"id": name, "source": source, "courier": mask_secrets(courier)}

    async def list(self) -> list[dict[str, Any]]:
        """Every tenant, masked, ``default`` first."""
        settings = await self.settings()
        return [await self.describe(name) for name in settings.tenant_names()]

    async def tenants_for_token(self, token: str) -> set[str]:
        """The tenants whose intake tokens include ``token``."""
        settings = await self.settings()
        return {
            name
            for name in settings.tenant_names()
            if token_matches(token, settings.tenant(name).intake_tokens)
        }

    # -- what the API saves --------------------------------------------------------------

    async def save(self, name: str, courier: Any) -> dict[str, Any]:
        """Validate, encrypt and store an API tenant; return it masked.

        Raise ``ConflictError`` for a file tenant, ``InputError`` for an invalid body.
        """
        self._check_name(name)
        if not isinstance(courier, dict):
            raise InputError("the body must be a JSON object: a tenant's courier section")
        stored = await self.store.get_tenant(name)
        plain = keep_masked(courier, self._decrypt(stored.courier) if stored else {})
        self._refuse_file_paths(plain)
        try:
            validated = CourierSettings.model_validate(
                plain,
                # An https:// body is fetched while validating: not from private addresses.
                context={"allow_private_targets": self.allows_private_targets(name)},
            )
        except ValidationError as exc:
            lines = [describe_validation_error(e, CourierSettings) for e in exc.errors()]
            raise InputError("invalid tenant settings: " + "; ".join(lines)) from None
        if not self.allows_private_targets(name):
            self._refuse_private_targets(validated)
        plain["intake_tokens"] = validated.intake_tokens
        try:
            encrypted = transform_secrets(plain, self.crypter.encrypt)
        except ConfigError as exc:
            raise InputError(str(exc)) from None
        await self.store.put_tenant(name, encrypted)
        self.invalidate()
        return {"id": name, "source": "api", "courier": mask_secrets(encrypted)}

    async def delete(self, name: str) -> None:
        """Delete an API tenant; ``ConflictError`` for a file tenant."""
        self._check_name(name)
        if not await self.store.delete_tenant(name):
            raise NotFoundError(f"no tenant {name!r}")
        self.invalidate()

    def _check_name(self, name: str) -> None:
        if self.is_file_tenant(name):
            raise ConflictError(
                f"tenant {name!r} is declared in the configuration file; edit the file to "
                "change it (the API manages only tenants it created)"
            )
        if not TENANT_ID.match(name):
            raise InputError(
                "a tenant id is 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with "
                "a letter or digit",
                field="id",
            )

    @staticmethod
    def _refuse_file_paths(courier: dict[str, Any]) -> None:
        for path in FILE_KEYS:
            if _get(courier, path) is not None:
                raise InputError(
                    "names a file on the server, which tenants saved through the API may not "
                    "do; give the content inline instead",
                    field=".".join(path),
                )
        body = _get(courier, ("http", "request_config", "body"))
        if isinstance(body, str) and body.strip().lower().startswith("file://"):
            raise InputError(
                "is a file:// body; tenants saved through the API give the Jsonnet inline or "
                "as base64://",
                field="http.request_config.body",
            )

    def _refuse_private_targets(self, courier: CourierSettings) -> None:
        hosts: list[tuple[str, str]] = []
        uri = courier.smtp.uri()
        if uri is not None:
            hosts.append(("smtp.connection_uri", uri.host))
        http = getattr(courier, "http", None)
        url = getattr(getattr(http, "request_config", None), "url", None)
        if isinstance(url, str):
            hosts.append(("http.request_config.url", urlsplit(url).hostname or ""))
        oauth2 = courier.smtp.oauth2
        if oauth2.token_url is not None:
            hosts.append(("smtp.oauth2.token_url", urlsplit(oauth2.token_url).hostname or ""))
        if oauth2.service_account_json is not None:  # checked when the settings were read
            token_uri = str(oauth2.service_account()["token_uri"])
            hosts.append(("smtp.oauth2.service_account_json", urlsplit(token_uri).hostname or ""))
        for field, host in hosts:
            if private_host(host):
                raise InputError(
                    f"targets {host}, a loopback or private address; tenants saved through the "
                    "API may not, unless the operator sets serve.allow_private_targets: true in "
                    "the configuration file",
                    field=field,
                )
