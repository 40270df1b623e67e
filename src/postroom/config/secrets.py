"""Credentials at rest: encrypted with ``secrets.default[0]``; older entries still decrypt,
so keys can be rotated by putting a new one first.

Which values of a ``courier`` section are credentials is decided here, in one place, for the
API and the dashboard alike: the password of an SMTP connection URI, HTTP auth values, OAuth2
client secrets and keys, and every HTTP or SMTP header and URL query key whose name looks like
a credential (:func:`is_credential_name`). Each credential is bound to the target it was saved
for: ``***`` keeps a stored one only while that target stays the same.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from postroom.errors import ConfigError, InputError

MASK = "***"
PREFIX = "enc:v1:"
MIN_SECRET_LENGTH = 32


class Crypter:
    """Encrypts and decrypts credential strings with the configured secrets."""

    def __init__(self, secrets: Sequence[str]) -> None:
        for index, secret in enumerate(secrets):
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"must be at least {MIN_SECRET_LENGTH} characters long",
                    path=f"secrets.default[{index}]",
                )
        self._fernet = MultiFernet([Fernet(_key(s)) for s in secrets]) if secrets else None

    @property
    def available(self) -> bool:
        """True when at least one secret is configured."""
        return self._fernet is not None

    def encrypt(self, value: str) -> str:
        """Encrypt with the first secret; raise ConfigError when none is configured."""
        if self._fernet is None:
            raise ConfigError(
                "no encryption secret is configured, so credentials cannot be stored; set "
                "secrets.default (or SECRETS_DEFAULT) to a random string of 32+ characters",
                path="secrets.default",
            )
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        """Decrypt a value written by :meth:`encrypt` with any of the configured secrets."""
        if not value.startswith(PREFIX):
            return value
        if self._fernet is None:
            raise ConfigError(
                "stored credentials are encrypted but no secret is configured; "
                "set secrets.default to the secret they were stored with",
                path="secrets.default",
            )
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a stored credential does not decrypt with any of secrets.default; "
                "keep the old secret in the list (after the new one) when rotating",
                path="secrets.default",
            ) from None


def _key(secret: str) -> bytes:
    digest = hashlib.sha256(b"postroom-credentials\x00" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


TOKEN_HASH = re.compile(r"sha256:[0-9a-f]{64}")
"""An intake token's stored form: ``sha256:`` and 64 lowercase hex digits."""


def hash_token(token: str) -> str:
    """The SHA-256 of a token as stored (tokens are random, so a plain SHA-256 suffices).

    Always hashed, even when ``token`` itself looks like a stored hash: a hash read from a
    database backup or a configuration file is never a credential.
    """
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def stored_token(value: str) -> str:
    """The stored form of a configured intake token: an entry that is already a hash
    (``sha256:`` and 64 hex digits) as it is, anything else hashed. Raise ``ValueError`` for
    an entry that starts with ``sha256:`` but is no such hash (it could never match)."""
    if not value.startswith("sha256:"):
        return hash_token(value)
    if not TOKEN_HASH.fullmatch(value.lower()):
        raise ValueError(
            "an intake token starting with 'sha256:' is read as the token's stored hash and "
            "must be 'sha256:' and 64 hex digits (the SHA-256 of the token); give the token "
            "itself otherwise"
        )
    return value.lower()


def token_matches(token: str, hashes: Sequence[str]) -> bool:
    """Constant-time check of a presented token against stored hashes; the presented token
    is always hashed first, so presenting a stored hash matches nothing."""
    presented = hash_token(token)
    found = False
    for stored in hashes:
        found |= hmac.compare_digest(presented, stored)
    return found


# -- which values of a courier section are credentials ------------------------------------

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
)
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
class _Slot:
    """Where one credential lives in a courier section, and which target it is bound to.

    ``kind``: ``plain`` (the value at ``path``), ``uri`` (the password of the URI at
    ``path``), ``header`` (the value of header ``name`` of the mapping at ``path``) or
    ``query`` (the value of query key ``name`` of the URL at ``path``). ``target`` is ``smtp``
    (the connection URI's scheme, host and port), ``http`` (the HTTP URL's origin) or
    ``oauth`` (the token endpoint: provider, tenant, token URL and client).
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
        return dotted

    def same_place(self, other: _Slot) -> bool:
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


def _slots(courier: dict[str, Any]) -> list[_Slot]:
    """Every credential present in ``courier``."""
    found = [_Slot(path, "plain", target) for path, target in _FIXED]
    found = [slot for slot in found if isinstance(_get(courier, slot.path), str)]
    uri = _get(courier, URI_PATH)
    if isinstance(uri, str) and _uri_password(uri) is not None:
        found.append(_Slot(URI_PATH, "uri", "smtp"))
    for path, target in _HEADER_DICTS:
        headers = _get(courier, path)
        if isinstance(headers, dict):
            found += [
                _Slot(path, "header", target, name)
                for name, value in headers.items()
                if isinstance(name, str) and isinstance(value, str) and is_credential_name(name)
            ]
    for path, target in _URLS:
        url = _get(courier, path)
        if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
            with contextlib.suppress(ValueError):
                found += [
                    _Slot(path, "query", target, unquote_plus(key))
                    for key, value in _query_pairs(url)
                    if value is not None and is_credential_name(unquote_plus(key))
                ]
    return found


def _read(courier: dict[str, Any], slot: _Slot) -> str:
    value = _get(courier, slot.path)
    if slot.kind == "uri":
        return _uri_password(value) or ""
    if slot.kind == "header":
        return str(value[slot.name])
    if slot.kind == "query":
        for key, raw in _query_pairs(value):
            if unquote_plus(key) == slot.name and raw is not None:
                return unquote_plus(raw)
        return ""
    return str(value)


def _write(courier: dict[str, Any], slot: _Slot, secret: str) -> None:
    value = _get(courier, slot.path)
    if slot.kind == "uri":
        _set(courier, slot.path, _with_uri_password(value, secret))
    elif slot.kind == "header":
        value[slot.name] = secret
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


def _target(courier: dict[str, Any], kind: str) -> object:
    """What a credential of this target kind is sent to, for comparison."""
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


_TARGET_WORDS = {
    "smtp": "the SMTP server or how it is reached (smtp.connection_uri apart from its password)",
    "http": "the HTTP endpoint (scheme, host and port of http.request_config.url)",
    "body": "the place the Jsonnet body is fetched from (http.request_config.body)",
    "oauth": (
        "the OAuth2 grant (smtp.oauth2 provider, flow, tenant_id, token_url, client_id, scope, "
        "subject) or the SMTP server its tokens go to (smtp.connection_uri)"
    ),
}


def transform_secrets(courier: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of a courier section with ``fn`` applied to every credential string."""
    out = copy.deepcopy(courier)
    for slot in _slots(out):
        _write(out, slot, fn(_read(out, slot)))
    return out


def mask_secrets(courier: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to show: every credential reads ``***`` and intake tokens too."""
    out = transform_secrets(courier, lambda _value: MASK)
    if isinstance(out.get("intake_tokens"), list):
        out["intake_tokens"] = [MASK for _ in out["intake_tokens"]]
    return out


def keep_masked(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Where ``new`` says ``***``, take the stored (decrypted) value instead.

    A kept credential goes only where it went before: when the target it is bound to (the
    SMTP server, the HTTP endpoint's origin, the OAuth2 token endpoint) differs between
    ``stored`` and ``new``, the credential must be given again. Raise :class:`InputError`
    naming the field when a ``***`` has nothing to keep or its target changed.
    """
    out = copy.deepcopy(new)
    stored_slots = _slots(stored)
    for slot in _slots(out):
        if _read(out, slot) != MASK:
            continue
        before = next((s for s in stored_slots if s.same_place(slot)), None)
        if before is None or not _read(stored, before):
            raise InputError(
                f"is {MASK!r} (keep the stored value) but nothing is stored to keep; give the "
                "value itself",
                field=slot.field,
            )
        if _target(out, slot.target) != _target(stored, slot.target):
            raise InputError(
                f"is {MASK!r} (keep the stored value), but {_TARGET_WORDS[slot.target]} changed "
                "since it was saved; a kept credential only goes where it went before, so give "
                "it again to send it to the new target",
                field=slot.field,
            )
        _write(out, slot, _read(stored, before))
    tokens = out.get("intake_tokens")
    if isinstance(tokens, list) and MASK in tokens:
        kept = [t for t in stored.get("intake_tokens") or [] if isinstance(t, str)]
        out["intake_tokens"] = kept + [t for t in tokens if t != MASK]
    return out
