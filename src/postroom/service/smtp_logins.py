"""SMTP listener logins and connection settings, as the API, the dashboard and the CLI see
them. A username names one tenant across all of them (file and API alike)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import yaml

from postroom.config import Settings
from postroom.config.listener import Priority
from postroom.config.passwords import generate_password, keyed_hash
from postroom.config.tenants import TenantRegistry
from postroom.errors import ConflictError, InputError, NotFoundError
from postroom.store.listener import StoredLogin, now

_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")


@dataclass(frozen=True, slots=True)
class NewLogin:
    """A login just made: the password, shown this once, and where it is kept."""

    username: str
    password: str
    password_hash: str
    priority: str
    saved: bool  # False for a file tenant: the operator pastes :meth:`yaml` into the file

    def yaml(self, tenant: str) -> str:
        """The ``courier.listener`` lines to paste into the configuration file."""
        entry = {"username": self.username, "password": self.password_hash}
        if self.priority != "urgent":
            entry["priority"] = self.priority
        where = "courier" if tenant == "default" else f"tenants.{tenant}.courier"
        body = yaml.safe_dump({"logins": [entry]}, sort_keys=False).rstrip()
        return f"# under {where}.listener:\n{body}\n"


def _username_in_file(settings: Settings, username: str) -> str | None:
    for name in settings.tenant_names():
        if any(x.username == username for x in settings.tenant(name).listener.logins):
            return name
    return None


async def create_login(
    registry: TenantRegistry,
    tenant: str,
    *,
    username: str | None = None,
    priority: Priority = "urgent",
) -> NewLogin:
    """Make a login with a generated password for ``tenant``. An API tenant's is saved; a file
    tenant's is returned to paste (the file is the operator's). Raise ``NotFoundError`` for an
    unknown tenant, ``ConflictError`` for a username taken in any tenant, ``InputError`` for
    an unusable username."""
    settings = await registry.settings()
    if tenant not in settings.tenant_names():
        raise NotFoundError(f"no tenant {tenant!r}")
    username = username or f"{tenant}-{secrets.token_hex(3)}"
    if not _USERNAME.fullmatch(username):
        raise InputError("1 to 128 letters, digits and . _ @ + - (no spaces)", field="username")
    owner = _username_in_file(settings, username)
    if owner is not None or await registry.store.get_login(username) is not None:
        raise ConflictError(f"the username {username!r} is taken; choose another")
    password = generate_password()
    login = NewLogin(username, password, keyed_hash(password), priority, False)
    if registry.is_file_tenant(tenant):
        return login
    await registry.store.add_login(
        StoredLogin(username, tenant, login.password_hash, priority, now())
    )
    return NewLogin(username, password, login.password_hash, priority, True)


async def list_logins(registry: TenantRegistry, tenant: str) -> list[dict[str, Any]]:
    """A tenant's logins: username, priority, where kept and when made (never a password)."""
    settings = await registry.settings()
    if tenant not in settings.tenant_names():
        raise NotFoundError(f"no tenant {tenant!r}")
    out: list[dict[str, Any]] = [
        {"username": x.username, "priority": x.priority, "source": "file", "created_at": None}
        for x in settings.tenant(tenant).listener.logins
    ]
    for stored in await registry.store.list_logins(tenant):
        out.append(
            {
                "username": stored.username,
                "priority": stored.priority,
                "source": "api",
                "created_at": stored.created_at.isoformat().replace("+00:00", "Z"),
            }
        )
    return out


async def delete_login(registry: TenantRegistry, tenant: str, username: str) -> None:
    """Delete an API tenant's login; ``ConflictError`` for one from the file,
    ``NotFoundError`` when the tenant has no such login."""
    settings = await registry.settings()
    if _username_in_file(settings, username) == tenant:
        raise ConflictError(f"the login {username!r} is in the configuration file; remove it there")
    if not await registry.store.delete_login(tenant, username):
        raise NotFoundError(f"tenant {tenant!r} has no login {username!r}")


def connection_settings(
    settings: Settings, tenant: str, *, ports: dict[str, int] | None = None
) -> dict[str, Any]:
    """What to type into Keycloak's realm Email tab (or any SMTP client) for ``tenant``;
    ``ports`` are the ones the running listener bound (``port``, ``tls_port``), when known."""
    smtp = settings.listener.smtp
    ports = ports or {}
    courier = settings.tenant(tenant)
    tls = bool(smtp.cert_path)
    return {
        "enabled": settings.listener.smtp_enabled,
        "host": smtp.shown_host,
        "port": ports.get("port", smtp.port),
        "encryption": "STARTTLS" if tls else "none",
        "tls_port": ports.get("tls_port", smtp.tls_port),
        "from_address": courier.smtp.from_address,
        "allow_from": list(courier.listener.allow_from),
        "rewrite_from": courier.listener.rewrite_from,
    }
