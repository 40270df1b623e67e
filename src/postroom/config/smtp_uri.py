"""The SMTP connection URI and its six security modes .

=============================================  ===========================================
``smtp://user:pass@host:587/``                  STARTTLS required, certificate verified
``smtp://...?skip_ssl_verify=true``             STARTTLS required, not verified
``smtp://...?disable_starttls=true``            cleartext, never upgrades
``smtps://user:pass@host:465/``                 implicit TLS, verified
``smtps://...?skip_ssl_verify=true``            implicit TLS, not verified
``smtp(s)://...?server_name=NAME``              SNI and certificate check against NAME
=============================================  ===========================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from postroom.errors import ConfigError

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
_BOOL_PARAMS = ("skip_ssl_verify", "disable_starttls", "legacy_ssl")
_KNOWN_PARAMS = (*_BOOL_PARAMS, "server_name")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class Security(enum.StrEnum):
    """How the connection is protected."""

    STARTTLS = "starttls"
    IMPLICIT_TLS = "implicit_tls"
    CLEARTEXT = "cleartext"


@dataclass(frozen=True, slots=True)
class SmtpUri:
    """A parsed connection URI. ``str()`` is the redacted form, safe to print."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    security: Security
    verify: bool
    server_name: str | None

    @property
    def tls_name(self) -> str:
        """The name used for SNI and the certificate check."""
        return self.server_name or self.host

    def redacted(self) -> str:
        """The URI with the password replaced by ``***``."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":***"
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = []
        if not self.verify:
            query.append("skip_ssl_verify=true")
        if self.security is Security.CLEARTEXT:
            query.append("disable_starttls=true")
        if self.server_name:
            query.append(f"server_name={self.server_name}")
        suffix = "?" + "&".join(query) if query else ""
        return f"{self.scheme}://{auth}{host}:{self.port}/{suffix}"

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"SmtpUri({self.redacted()!r})"


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"query parameter {name}={raw!r} must be true or false")


def parse_smtp_uri(uri: str) -> SmtpUri:
    """Parse a connection URI; raise :class:`ConfigError` that names the problem and the fix.

    The error text never contains the password.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError("the connection URI is empty; write it like smtp://user:pass@host:587/")
    if "://" not in uri:
        raise ConfigError(
            "the connection URI must start with smtp:// (STARTTLS or cleartext) "
            "or smtps:// (implicit TLS); write it like smtp://user:pass@host:587/"
        )
    rest = uri.strip().split("://", 1)[1]
    if "@" in rest and any(c in rest.rsplit("@", 1)[0] for c in "/?#"):
        # The URI parser would cut the password at that character and read the rest as
        # host, port or query: refuse without echoing any of it.
        raise ConfigError(
            "the user or password contains a '/', '?' or '#' that is not percent-encoded; "
            "encode special characters in the user and password (/ as %2F, ? as %3F, "
            "# as %23, @ as %40, : as %3A, % as %25)"
        )
    try:
        parts = urlsplit(uri.strip())
        port_value = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"the connection URI is malformed ({_scrub(str(exc), uri)}); "
            "write it like smtp://user:pass@host:587/ and percent-encode special characters "
            "in the user and password (@ as %40, : as %3A, / as %2F)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = scheme or "(none)"
        raise ConfigError(
            f"unsupported scheme {shown!r}: use smtp:// (STARTTLS or cleartext) "
            "or smtps:// (implicit TLS)"
        )
    if not parts.hostname:
        raise ConfigError(
            "the connection URI has no host; write it like smtp://user:pass@smtp.example.org:587/"
        )
    if any(c.isspace() for c in parts.hostname):
        raise ConfigError(f"the host {parts.hostname!r} contains a space; give a host name")
    if port_value == 0:
        raise ConfigError("port 0 is not a port to connect to; give 1 to 65535, or leave it out")
    params: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _KNOWN_PARAMS:
            raise ConfigError(
                f"unknown query parameter {name!r}; allowed: {', '.join(_KNOWN_PARAMS)}"
            )
        params[name] = value
    flags = {name: _flag(name, params[name]) for name in _BOOL_PARAMS if name in params}
    skip_verify = flags.get("skip_ssl_verify", False)
    disable_starttls = flags.get("disable_starttls", False)
    if flags.get("legacy_ssl") and scheme == "smtp":
        raise ConfigError("legacy_ssl=true means implicit TLS: write smtps:// instead of smtp://")
    if scheme == "smtps":
        if disable_starttls:
            raise ConfigError(
                "disable_starttls=true has no meaning with smtps:// (implicit TLS); "
                "use smtp://...?disable_starttls=true for a cleartext connection"
            )
        security = Security.IMPLICIT_TLS
    elif disable_starttls:
        security = Security.CLEARTEXT
    else:
        security = Security.STARTTLS
    server_name = params.get("server_name") or None
    if "server_name" in params and not server_name:
        raise ConfigError("query parameter server_name is empty; give the certificate's name")
    return SmtpUri(
        scheme=scheme,
        host=parts.hostname,
        port=port_value if port_value is not None else DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        security=security,
        verify=not skip_verify,
        server_name=server_name,
    )


def _scrub(text: str, uri: str) -> str:
    """Remove anything between ``://`` and ``@`` of the URI from a library message."""
    try:
        creds = uri.split("://", 1)[1].rsplit("@", 1)[0] if "@" in uri else ""
    except IndexError:
        creds = ""
    return text.replace(creds, "***") if creds else text
