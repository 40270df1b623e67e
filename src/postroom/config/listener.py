"""Settings of the SMTP submission listener: ``listener.smtp`` (where it listens) and each
tenant's ``courier.listener`` (who may submit mail for it)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, Literal

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from postroom.config.model import SettingsModel
from postroom.config.networks import cidr_networks, is_loopback
from postroom.config.passwords import MIN_CHOSEN_LENGTH, is_hash, keyed_hash
from postroom.errors import ConfigError

MAX_PER_CLIENT = 20
"""Connections one client address may hold open at once."""
IDLE_TIMEOUT = 60.0
"""Seconds an SMTP session may stay silent before it is closed."""
Priority = Literal["urgent", "normal", "bulk"]

_SIZE = re.compile(r"(\d+)\s*(b|kib|mib|gib|kb|mb|gb)?", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3}
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")


def parse_size(value: object) -> int:
    """Bytes from ``10485760``, ``10MiB``, ``500KiB`` or ``1MB``; ``ValueError`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size; write bytes, or like 10MiB or 500KiB")
    return int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]


def _list_from_text(value: object) -> object:
    """A list given in an environment variable: YAML/JSON, or comma-separated words."""
    if isinstance(value, str):
        try:
            loaded = yaml.safe_load(value)
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, list):
            return loaded
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _Strict(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpListenerSettings(_Strict):
    """``listener.smtp``: where the submission listener accepts connections."""

    host: str = "127.0.0.1"
    port: int = Field(default=2587, ge=0, le=65535)
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    cert_path: str | None = None
    key_path: str | None = None
    max_message_size: Annotated[int, BeforeValidator(parse_size)] = Field(
        default=10 * 1024**2, gt=0, le=1024**3
    )
    max_recipients: int = Field(default=50, ge=1, le=10_000)
    max_connections: int = Field(default=200, ge=1, le=100_000)
    public_host: str | None = None

    @model_validator(mode="after")
    def _tls_for_the_network(self) -> SmtpListenerSettings:
        if bool(self.cert_path) != bool(self.key_path):
            raise ValueError("cert_path and key_path go together: set both, or neither")
        if self.tls_port is not None and not self.cert_path:
            raise ValueError(
                "tls_port (implicit TLS) needs a certificate: set cert_path and key_path"
            )
        if not self.cert_path and not is_loopback(self.host):
            raise ValueError(
                f"listening on {self.host}, beyond loopback, needs TLS so that passwords do "
                "not cross the network in clear: set cert_path and key_path (PEM files), or "
                "listen on 127.0.0.1"
            )
        return self

    @property
    def shown_host(self) -> str:
        """The host clients are told to connect to (``public_host``, else ``host``)."""
        return self.public_host or self.host


class ListenerSettings(_Strict):
    """``listener``: the SMTP submission listener, off unless ``listener.smtp`` is given."""

    smtp: SmtpListenerSettings = Field(default_factory=SmtpListenerSettings)

    @property
    def smtp_enabled(self) -> bool:
        """True when the configuration (file or environment) names ``listener.smtp``."""
        return "smtp" in self.model_fields_set


class LoginSettings(_Strict):
    """One entry of ``courier.listener.logins``. The password is kept hashed."""

    username: str
    password: str = Field(repr=False)
    priority: Priority = "urgent"

    @field_validator("username")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _USERNAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a usable username: 1 to 128 letters, digits and . _ @ + -"
            )
        return value

    @field_validator("password")
    @classmethod
    def _hashed(cls, value: str, info: ValidationInfo) -> str:
        username = info.data.get("username", "")
        if value.startswith(("sha256$", "scrypt$")):
            if not is_hash(value):
                raise ValueError(
                    "the password starts like a stored hash but is not one; paste the whole "
                    "line that `postroom listener hash-password` printed"
                )
            return value
        if len(value) < MIN_CHOSEN_LENGTH:
            raise ValueError(
                f"the password is shorter than {MIN_CHOSEN_LENGTH} characters; choose a "
                "longer one, or generate one with `postroom listener add-login`"
            )
        # A deterministic key, so that loading the same file twice gives equal settings.
        key = hashlib.sha256(b"postroom-login\x00" + username.encode()).digest()[:16]
        return keyed_hash(value, key=key)


class CourierListenerSettings(_Strict):
    """``courier.listener``: who may submit mail for this tenant through the listener."""

    logins: Annotated[list[LoginSettings], BeforeValidator(_list_from_text)] = Field(
        default_factory=list
    )
    allow_from: Annotated[list[str], BeforeValidator(_list_from_text)] = Field(default_factory=list)
    rewrite_from: bool = False

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return cidr_networks(value, example="[10.0.0.0/8, 192.0.2.7]")

    @field_validator("logins")
    @classmethod
    def _unique(cls, value: list[LoginSettings]) -> list[LoginSettings]:
        seen: set[str] = set()
        for login in value:
            if login.username in seen:
                raise ValueError(f"the username {login.username!r} is listed twice")
            seen.add(login.username)
        return value


def check_tenants(tenants: Iterable[tuple[str, CourierListenerSettings]]) -> None:
    """Refuse a username given to two tenants, and ``allow_from`` networks of two tenants that
    overlap (a client address must name one tenant). Raise :class:`ConfigError`."""
    owner: dict[str, str] = {}
    networks: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for name, listener in tenants:
        where = "courier" if name == "default" else f"tenants.{name}.courier"
        for login in listener.logins:
            other = owner.setdefault(login.username, name)
            if other != name:
                raise ConfigError(
                    f"the username {login.username!r} is a login of tenants {other!r} and "
                    f"{name!r}; a username names one tenant, so give each its own",
                    path=f"{where}.listener.logins",
                )
        for entry in listener.allow_from:
            net = ipaddress.ip_network(entry)
            for other, seen in networks:
                if other != name and net.version == seen.version and net.overlaps(seen):
                    raise ConfigError(
                        f"{net} overlaps {seen} of tenant {other!r}; a client address must "
                        "name one tenant, so make the networks disjoint",
                        path=f"{where}.listener.allow_from",
                    )
            networks.append((name, net))
