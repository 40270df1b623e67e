"""Tenants: the ones the configuration file declares (read-only, the operator's own) and the
ones saved through the admin API (stored with their credentials encrypted).

:class:`TenantRegistry` gives every reader one up-to-date :class:`Settings` with both kinds,
and is the only place that validates, encrypts and masks what the API saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from postroom.clock import utcnow
from postroom.config.bodies import prepare_body, with_kept_body
from postroom.config.listener import check_tenants
from postroom.config.loader import describe_validation_error
from postroom.config.secrets import (
    Crypter,
    keep_masked,
    mask_secrets,
    transform_secrets,
)
from postroom.config.settings import CourierSettings, Settings, TenantSettings
from postroom.errors import (
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    UnavailableError,
)
from postroom.store import Tenants
from postroom.store.base import StoredTenant

log = logging.getLogger("postroom.tenants")
# How far the clocks of the processes that save tenants and the worker may differ.
CLOCK_MARGIN = timedelta(seconds=5)

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# Keys that name files on the server: an API client gives inline content instead.
FILE_KEYS: tuple[tuple[str, ...], ...] = (
    ("template_override_path",),
    ("outbox_path",),
    ("smtp", "client_cert_path"),
    ("dkim", "private_key_path"),
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


KEPT_BODY = "_kept_body"
"""Key of a stored tenant that holds its ``https://`` body as fetched when it was saved
(``{"url", "source"}``); never shown, never accepted from a caller."""


def _reason(exc: Exception) -> str:
    """One line saying why a stored tenant cannot be used."""
    if isinstance(exc, ValidationError):
        return "; ".join(describe_validation_error(e, CourierSettings) for e in exc.errors())
    return str(exc) or type(exc).__name__


class TenantRegistry:
    """Tenants from the file and the store, merged into one :class:`Settings`.

    A saved tenant is validated (and its Jsonnet body fetched and checked) once, when it is
    saved. Re-reading the store only decrypts and builds the settings, with no network and no
    subprocess; a stored tenant that can no longer be used (a secret that does not decrypt,
    a rule it breaks since an upgrade) is left out and reported by :meth:`broken`, so that it
    fails only its own messages.
    """

    def __init__(self, settings: Settings, store: Tenants, *, refresh: float = 1.0) -> None:
        self.file_settings = settings
        self.store = store
        self.crypter = Crypter(settings.secrets.default)
        self.refresh = refresh
        self._current = settings
        self._version: str | None = None
        # When the store was last read (time.monotonic()); None: never, or invalidated. Not
        # 0.0: the monotonic clock starts near 0 at boot, less than a long refresh ago.
        self._checked: float | None = None
        self._read_at: datetime | None = None  # when the last read of the store began
        self._api_names: frozenset[str] = frozenset()
        self._broken: dict[str, str] = {}
        self._built: dict[str, tuple[datetime, TenantSettings]] = {}
        self._lock = asyncio.Lock()

    def is_file_tenant(self, name: str) -> bool:
        """True for ``default`` and the tenants the configuration file declares."""
        return name == "default" or name in self.file_settings.tenants

    def allows_private_targets(self, name: str) -> bool:
        """File tenants are the operator's own; API tenants only with the operator's flag."""
        return self.is_file_tenant(name) or self.file_settings.serve.allow_private_targets

    def broken(self, name: str) -> str | None:
        """Why the saved tenant ``name`` cannot be used (as of the last :meth:`settings`), or
        None when it can (or does not exist)."""
        return self._broken.get(name)

    def broken_tenants(self) -> dict[str, str]:
        """Every saved tenant that cannot be used, with why (as of the last :meth:`settings`)."""
        return dict(self._broken)

    def check_usable(self, name: str) -> None:
        """Raise ``UnavailableError`` saying why when the saved tenant ``name`` is broken."""
        reason = self._broken.get(name)
        if reason is not None:
            raise UnavailableError(
                f"tenant {name!r} cannot take messages: its saved settings cannot be used "
                f"({reason}); an operator must save them again"
            )

    async def settings(self) -> Settings:
        """The file settings with every usable API tenant added (re-read when they change)."""
        if self._fresh():
            return self._current
        async with self._lock:
            if self._fresh():
                return self._current
            began = utcnow()
            version = await self.store.tenants_version()
            if version != self._version:
                stored = await self.store.list_tenants()
                # Decrypting and validating is CPU work: off the event loop, and only for the
                # rows that changed since the last read.
                await asyncio.to_thread(self._rebuild, stored)
                self._version = version
            self._checked = time.monotonic()
            self._read_at = began
            return self._current

    async def settings_read_after(self, moment: datetime) -> Settings:
        """:meth:`settings` as read from the store after ``moment`` (a message's enqueue, by
        another process's clock: a few seconds' margin): a tenant saved through the API a
        moment ago, in another process, is in them."""
        if self._read_at is None or self._read_at < moment + CLOCK_MARGIN:
            self.invalidate()
        return await self.settings()

    @property
    def invalidated(self) -> bool:
        """A tenant was saved or removed in this process since the last read."""
        return self._checked is None

    def _fresh(self) -> bool:
        return self._checked is not None and time.monotonic() - self._checked < self.refresh

    def _rebuild(self, stored: list[StoredTenant]) -> None:
        tenants = dict(self.file_settings.tenants)
        names: set[str] = set()
        broken: dict[str, str] = {}
        built: dict[str, tuple[datetime, TenantSettings]] = {}
        for tenant in stored:
            if self.is_file_tenant(tenant.id):
                continue  # the file wins; the API refuses to save these anyway
            before = self._built.get(tenant.id)
            if before is not None and before[0] == tenant.updated_at:
                settings = before[1]
            else:
                try:
                    settings = TenantSettings(courier=self._effective(tenant.courier))
                except Exception as exc:  # one bad row must not take the others down
                    broken[tenant.id] = _reason(exc)
                    log.warning("tenant %s cannot be used: %s", tenant.id, broken[tenant.id])
                    continue
            built[tenant.id] = (tenant.updated_at, settings)
            tenants[tenant.id] = settings
            names.add(tenant.id)
        self._current = self.file_settings.model_copy(update={"tenants": tenants})
        self._api_names = frozenset(names)
        self._broken = broken
        self._built = built

    def invalidate(self) -> None:
        """Re-read the store on the next :meth:`settings` call."""
        self._checked = None

    def _decrypt(self, courier: dict[str, Any]) -> dict[str, Any]:
        return transform_secrets(courier, self.crypter.decrypt)

    def _effective(self, stored: dict[str, Any]) -> CourierSettings:
        """The settings a stored courier section stands for: decrypted, its fetched body in
        place of the URL, validated without any I/O."""
        if not isinstance(stored, dict):
            raise ConfigError(f"the stored settings are a {type(stored).__name__}, not a mapping")
        courier = self._decrypt({k: v for k, v in stored.items() if k != KEPT_BODY})
        return CourierSettings.model_validate(with_kept_body(courier, stored.get(KEPT_BODY)))

    # -- what the API shows --------------------------------------------------------------

    async def describe(self, name: str) -> dict[str, Any]:
        """A tenant's courier section with credentials masked; raise ``NotFoundError``.

        A saved tenant that cannot be used carries ``error``: why, in one line."""
        settings = await self.settings()
        if name not in settings.tenant_names() and name not in self._broken:
            raise NotFoundError(f"no tenant {name!r}")
        source = "file" if self.is_file_tenant(name) else "api"
        if source == "api":
            stored = await self.store.get_tenant(name)
            if stored is None:
                raise NotFoundError(f"no tenant {name!r}")
            saved = stored.courier if isinstance(stored.courier, dict) else {}
            courier = {k: v for k, v in saved.items() if k != KEPT_BODY}
        else:
            courier = settings.tenant(name).model_dump(mode="json", exclude_defaults=True)
        out = {"id": name, "source": source, "courier": mask_secrets(courier)}
        if name in self._broken:
            out["error"] = self._broken[name]
        return out

    async def list(self) -> list[dict[str, Any]]:
        """Every tenant, masked, ``default`` first (saved tenants that cannot be used too)."""
        settings = await self.settings()
        names = [*settings.tenant_names(), *sorted(self._broken)]
        return [await self.describe(name) for name in names]

    # -- what the API saves --------------------------------------------------------------

    async def save(self, name: str, courier: Any) -> dict[str, Any]:
        """Validate, encrypt and store an API tenant; return it masked.

        The Jsonnet body is loaded and checked here, off the event loop (an ``https://`` body
        is fetched now, through the guarded client, and kept with the tenant). Raise
        ``ConflictError`` for a file tenant, ``InputError`` naming the field for an invalid
        body or a kept credential whose target changed.
        """
        self._check_name(name)
        if not isinstance(courier, dict):
            raise InputError("the body must be a JSON object: a tenant's courier section")
        stored = await self.store.get_tenant(name)
        before: dict[str, Any] = {}
        if stored is not None:
            with contextlib.suppress(ConfigError):  # undecryptable: every secret is asked for
                before = self._decrypt({k: v for k, v in stored.courier.items() if k != KEPT_BODY})
        plain = keep_masked(courier, before)
        self._refuse_file_paths(plain)
        try:
            validated = CourierSettings.model_validate(plain)
        except ValidationError as exc:
            raise InputError("invalid tenant settings: " + _reason(exc)) from None
        await self._check_listener(name, validated)
        allow_private = self.allows_private_targets(name)
        if not allow_private:
            self._refuse_private_targets(validated)
        try:
            fetched = await prepare_body(
                validated.http.request_config, allow_private_targets=allow_private
            )
        except ConfigError as exc:
            raise InputError(str(exc), field="http.request_config.body") from None
        plain["intake_tokens"] = validated.intake_tokens
        try:
            encrypted = transform_secrets(plain, self.crypter.encrypt)
        except ConfigError as exc:
            raise InputError(str(exc)) from None
        if fetched is not None:
            encrypted[KEPT_BODY] = {"url": validated.http.request_config.body, "source": fetched}
        await self.store.put_tenant(name, encrypted)
        self.invalidate()
        shown = {k: v for k, v in encrypted.items() if k != KEPT_BODY}
        return {"id": name, "source": "api", "courier": mask_secrets(shown)}

    async def delete(self, name: str) -> None:
        """Delete an API tenant; ``ConflictError`` for a file tenant."""
        self._check_name(name)
        if not await self.store.delete_tenant(name):
            raise NotFoundError(f"no tenant {name!r}")
        for login in await self.store.list_logins(name):
            await self.store.delete_login(name, login.username)
        self.invalidate()

    async def _check_listener(self, name: str, courier: CourierSettings) -> None:
        """SMTP listener logins of API tenants live in their own table; ``allow_from`` must not
        overlap another tenant's."""
        if courier.listener.logins:
            raise InputError(
                "tenants saved through the API get their SMTP logins from "
                f"POST /admin/tenants/{name}/smtp-logins, which generates the password",
                field="listener.logins",
            )
        settings = await self.settings()
        others = [(n, settings.tenant(n).listener) for n in settings.tenant_names() if n != name]
        try:
            check_tenants([*others, (name, courier.listener)])
        except ConfigError as exc:
            raise InputError(str(exc).split(": ", 1)[-1], field="listener.allow_from") from None

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
        body = courier.http.request_config.body
        if body is not None and body.startswith("https://"):
            hosts.append(("http.request_config.body", urlsplit(body).hostname or ""))
        oauth2 = courier.smtp.oauth2
        if oauth2.token_url is not None:
            hosts.append(("smtp.oauth2.token_url", urlsplit(oauth2.token_url).hostname or ""))
        if oauth2.service_account_json is not None:  # checked when the settings were read
            token_uri = str(oauth2.service_account()["token_uri"])
            hosts.append(("smtp.oauth2.service_account_json", urlsplit(token_uri).hostname or ""))
        for index, hook in enumerate(courier.webhooks):
            hosts.append((f"webhooks[{index}].url", urlsplit(hook.url).hostname or ""))
        for field, host in hosts:
            if private_host(host):
                raise InputError(
                    f"targets {host}, a loopback or private address; tenants saved through the "
                    "API may not, unless the operator sets serve.allow_private_targets: true in "
                    "the configuration file",
                    field=field,
                )
