"""Which values of a ``courier`` section are credentials, decided here in one place for the
API and the dashboard alike: the password of an SMTP connection URI, HTTP auth values, OAuth2
client secrets and keys, the keys providers sign their event webhooks with
(``provider_events``), the secrets of ``webhooks`` to the identity system, and every HTTP or
SMTP header and URL query key whose name looks like a credential (:func:`is_credential_name`).

Each credential sits in a :class:`Slot` (where it lives) and is bound to a target (where it is
sent): :func:`bound_target` is what must stay the same for a ``***`` to keep a stored one.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlsplit, urlunsplit

_CREDENTIAL_NAME = re.compile(
    r"auth|token|secret|passw|key|sig|credential|session|cookie|code", re.IGNORECASE
)
"""A header name or URL query key that probably carries a credential (``Authorization``,
``X-Api-Key``, ``X-Postmark-Server-Token``, ``?key=``, ``?code=`` of Azure Functions...).
Erring on the side of secrecy costs a header that is write-only; the other way costs a key."""

_FIXED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("http", "request_config", "auth", "config", "value"), "http"),
    (("http", "request_config", "auth", "config", "password"), "http"),
    (("smtp", "oauth2", "client_secret"), "oauth"),
    (("smtp", "oauth2", "service_account_json"), "oauth"),
    (("smtp", "oauth2", "refresh_token"), "oauth"),
    # Keys a provider signs its event webhooks with: they come in, so nothing to bind to.
    (("provider_events", "mailgun", "signing_key"), "events"),
    (("provider_events", "postmark", "password"), "events"),
    (("provider_events", "generic", "secret"), "events"),
)
WEBHOOKS_PATH = ("webhooks",)
URI_PATH = ("smtp", "connection_uri")
HTTP_URL_PATH = ("http", "request_config", "url")
BODY_PATH = ("http", "request_config", "body")
TOKEN_URL_PATH = ("smtp", "oauth2", "token_url")
_URLS: tuple[tuple[tuple[str, ...], str], ...] = (
    (HTTP_URL_PATH, "http"),
    (BODY_PATH, "body"),
    (TOKEN_URL_PATH, "oauth"),
)
"""URLs whose credential-named query keys (``?sig=``, ``?code=``) are credentials too."""
_HEADER_DICTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("http", "request_config", "headers"), "http"),
    (("smtp", "headers"), "smtp"),
)


def is_credential_name(name: str) -> bool:
    """True for a header name or URL query key whose value Postroom treats as a credential:
    encrypted at rest, shown as ``***``, kept by ``***``, bound to its target."""
    return bool(_CREDENTIAL_NAME.search(name))


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one credential lives in a courier section, and which target it is bound to.

    ``kind``: ``plain`` (the value at ``path``), ``uri`` (the password of the URI at
    ``path``), ``header`` (the value of header ``name`` of the mapping at ``path``),
    ``query`` (the value of query key ``name`` of the URL at ``path``) or ``webhook`` (the
    ``secret`` of entry number ``name`` of the list at ``path``). ``target`` is ``smtp``
    (the connection URI's scheme, host and port), ``http`` (the HTTP URL's origin), ``oauth``
    (the token endpoint: provider, tenant, token URL and client), ``webhook`` (that entry's
    URL origin) or ``events`` (a key a provider signs with: bound to nothing).
    """

    path: tuple[str, ...]
    kind: str
    target: str
    name: str = ""

    @property
    def field(self) -> str:
        """The dotted name errors use, e.g. ``http.request_config.headers.X-Api-Key``."""
        dotted = ".".join(self.path)
        if self.kind == "header":
            return f"{dotted}.{self.name}"
        if self.kind == "query":
            return f"{dotted} (query key {self.name!r})"
        if self.kind == "webhook":
            return f"{dotted}[{self.name}].secret"
        return dotted

    def same_place(self, other: Slot) -> bool:
        """True when ``other`` is this credential in another version of the section."""
        return (self.path, self.kind, self.name.lower()) == (
            other.path,
            other.kind,
            other.name.lower(),
        )


def _get(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _set(node: Any, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _query_pairs(url: str) -> list[tuple[str, str | None]]:
    """The query of ``url`` as (raw key, raw value) pairs, exactly as written."""
    query = urlsplit(url).query if "?" in url else ""
    pairs: list[tuple[str, str | None]] = []
    for part in query.split("&") if query else []:
        key, eq, value = part.partition("=")
        pairs.append((key, value if eq else None))
    return pairs


def _with_query_value(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    rebuilt = [
        f"{k}={quote(value, safe='*') if unquote_plus(k) == key else v}" if v is not None else k
        for k, v in _query_pairs(url)
    ]
    return urlunsplit(parts._replace(query="&".join(rebuilt)))


def credential_slots(courier: dict[str, Any]) -> list[Slot]:
    """Every credential present in ``courier``."""
    found = [Slot(path, "plain", target) for path, target in _FIXED]
    found = [slot for slot in found if isinstance(_get(courier, slot.path), str)]
    uri = _get(courier, URI_PATH)
    if isinstance(uri, str) and _uri_password(uri) is not None:
        found.append(Slot(URI_PATH, "uri", "smtp"))
    for path, target in _HEADER_DICTS:
        headers = _get(courier, path)
        if isinstance(headers, dict):
            found += [
                Slot(path, "header", target, name)
                for name, value in headers.items()
                if isinstance(name, str) and isinstance(value, str) and is_credential_name(name)
            ]
    hooks = _get(courier, WEBHOOKS_PATH)
    if isinstance(hooks, list):
        found += [
            Slot(WEBHOOKS_PATH, "webhook", "webhook", str(index))
            for index, hook in enumerate(hooks)
            if isinstance(hook, dict) and isinstance(hook.get("secret"), str)
        ]
    for path, target in _URLS:
        url = _get(courier, path)
        if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
            with contextlib.suppress(ValueError):
                found += [
                    Slot(path, "query", target, unquote_plus(key))
                    for key, value in _query_pairs(url)
                    if value is not None and is_credential_name(unquote_plus(key))
                ]
    return found


def read_credential(courier: dict[str, Any], slot: Slot) -> str:
    """The credential in ``slot`` of ``courier`` (a URI's password or a query value decoded)."""
    value = _get(courier, slot.path)
    if slot.kind == "uri":
        return _uri_password(value) or ""
    if slot.kind == "header":
        return str(value[slot.name])
    if slot.kind == "webhook":
        return str(value[int(slot.name)]["secret"])
    if slot.kind == "query":
        for key, raw in _query_pairs(value):
            if unquote_plus(key) == slot.name and raw is not None:
                return unquote_plus(raw)
        return ""
    return str(value)


def write_credential(courier: dict[str, Any], slot: Slot, secret: str) -> None:
    """Put ``secret`` into ``slot`` of ``courier`` (in place), encoded as the place needs."""
    value = _get(courier, slot.path)
    if slot.kind == "uri":
        _set(courier, slot.path, _with_uri_password(value, secret))
    elif slot.kind == "header":
        value[slot.name] = secret
    elif slot.kind == "webhook":
        value[int(slot.name)]["secret"] = secret
    elif slot.kind == "query":
        _set(courier, slot.path, _with_query_value(value, slot.name, secret))
    else:
        _set(courier, slot.path, secret)


def _uri_password(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        return unquote(parts.password) if parts.password is not None else None
    except ValueError:
        return None


def _with_uri_password(uri: str, password: str) -> str:
    parts = urlsplit(uri)
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{quote(password, safe='*')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_DEFAULT_PORTS = {"smtp": 587, "smtps": 465, "http": 80, "https": 443}


def _origin(url: Any) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the port filled in; None when there is none."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None


def _smtp_target(uri: Any) -> tuple[object, ...] | None:
    """Everything of an SMTP connection URI but its password: scheme, host, port, login name
    and the security options (``skip_ssl_verify``, ``server_name``, ...), normalised, so that
    a kept password follows neither a new server nor a weaker way of talking to it."""
    origin = _origin(uri)
    if origin is None or not isinstance(uri, str):
        return None
    try:
        parts = urlsplit(uri.strip())
        options = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
        return (*origin, unquote(parts.username or ""), parts.path.rstrip("/"), options)
    except ValueError:
        return None


def _public_query(url: Any) -> tuple[tuple[str, str], ...]:
    """The query pairs of ``url`` that are not credentials (those are compared as secrets)."""
    if not isinstance(url, str):
        return ()
    try:
        pairs = parse_qsl(urlsplit(url.strip()).query, keep_blank_values=True)
    except ValueError:
        return ()
    return tuple(sorted((k, v) for k, v in pairs if not is_credential_name(k)))


def bound_target(courier: dict[str, Any], kind: str, slot: Slot) -> object:
    """What a credential of this target kind is sent to, for comparison."""
    if kind == "events":
        return None
    if kind == "webhook":
        hooks = _get(courier, WEBHOOKS_PATH)
        index = int(slot.name)
        entry = hooks[index] if isinstance(hooks, list) and index < len(hooks) else None
        return _origin(entry.get("url")) if isinstance(entry, dict) else None
    if kind == "smtp":
        return _smtp_target(_get(courier, URI_PATH))
    if kind == "http":
        return _origin(_get(courier, HTTP_URL_PATH))
    if kind == "body":
        return _origin(_get(courier, BODY_PATH))
    oauth2 = _get(courier, ("smtp", "oauth2"))
    oauth2 = oauth2 if isinstance(oauth2, dict) else {}
    # An OAuth2 secret yields access tokens, and those go to the SMTP server: the binding
    # covers both ends (who mints the token, for whom, with what reach, and where it is spent).
    minted = tuple(
        oauth2.get(key)
        for key in ("provider", "flow", "tenant_id", "client_id", "scope", "subject")
    )
    token_url = oauth2.get("token_url")
    minted += (_origin(token_url), _public_query(token_url))
    return (minted, _smtp_target(_get(courier, URI_PATH)))


TARGET_WORDS = {
    "smtp": "the SMTP server or how it is reached (smtp.connection_uri apart from its password)",
    "http": "the HTTP endpoint (scheme, host and port of http.request_config.url)",
    "body": "the place the Jsonnet body is fetched from (http.request_config.body)",
    "oauth": (
        "the OAuth2 grant (smtp.oauth2 provider, flow, tenant_id, token_url, client_id, scope, "
        "subject) or the SMTP server its tokens go to (smtp.connection_uri)"
    ),
    "webhook": "the webhook's URL (scheme, host and port)",
}
