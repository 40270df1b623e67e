"""The one exception tree of Postroom.

::

    PostroomError                     anything Postroom raises on purpose
    ├── ConfigError                   the configuration is invalid (exit 2); names the key path
    ├── InputError                    a caller's input is invalid (exit 2); names the field
    │   └── DuplicateRequestError     an idempotency key reused with a different request
    ├── SuppressedError               the recipient is on the tenant's suppression list (422)
    ├── NotFoundError                 no such message / tenant
    ├── ConflictError                 the thing is in the wrong state for the request (409)
    ├── RecipientLimitError           a per-recipient limit refuses the message now (429);
    │                                 names the limit and when to try again
    ├── UnavailableError              something the request needs cannot be used right now,
    │                                 e.g. a tenant whose saved settings are broken (503)
    ├── TemplateError                 a template failed to render (diagnosis ``template_error``)
    └── DeliveryError                 a transport could not hand a message off; carries the
        │                             stage, the server's reply and the underlying exception,
        │                             for ``diagnosis`` to classify. Transports never decide
        │                             retry or give-up: ``worker.retry`` does.
        ├── HttpDeliveryError         the same from HTTP delivery: ``reply_code`` is the HTTP
        │                             status, ``retry_after`` the provider's Retry-After
        └── OAuthError                an OAuth2 login failed: the token endpoint refused
                                      (stage ``token``) or the server refused the token (``auth``)

Messages never contain credentials: callers redact URIs before they put them in a message.
"""

from __future__ import annotations

from postroom.codes import DiagnosisCode, Situation


class PostroomError(Exception):
    """Base of every error Postroom raises on purpose."""


class ConfigError(PostroomError):
    """The configuration is invalid. ``path`` is the dotted key path, when there is one."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InputError(PostroomError):
    """A caller's input is invalid. ``field`` names it."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class DuplicateRequestError(InputError):
    """An idempotency key was reused with a different request body."""

    def __init__(
        self,
        message: str = "was already used for a different message; use a new key for a new message",
        *,
        field: str | None = "idempotency_key",
    ) -> None:
        super().__init__(message, field=field)


class SuppressedError(PostroomError):
    """The recipient is on the tenant's suppression list (a hard bounce or a complaint), so
    the message was not stored. ``address``, ``reason`` and ``since`` say why."""

    def __init__(self, address: str, *, reason: str, since: str) -> None:
        self.address = address
        self.reason = reason
        self.since = since
        super().__init__(
            f"{address} is suppressed since {since} ({reason}); nothing was stored. Remove it "
            "with DELETE /admin/tenants/{tenant}/suppressions/{address} or "
            "`postroom suppressions remove` once the address works again"
        )


class NotFoundError(PostroomError):
    """The thing asked for does not exist."""


class ConflictError(PostroomError):
    """The request does not fit the current state (e.g. retrying a message that was sent)."""


class RecipientLimitError(PostroomError):
    """A per-recipient limit (``courier.recipient_limits.cooldown`` or ``.per_hour``) refuses
    the message; nothing was stored. ``limit`` names the setting, ``retry_after`` is how many
    whole seconds until the message would be accepted."""

    def __init__(self, message: str, *, limit: str, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(message)


class UnavailableError(PostroomError):
    """What the request needs cannot be used right now (a tenant whose saved settings are
    broken); the operator must act, the caller may try again later."""


class TemplateError(PostroomError):
    """A template could not be rendered."""


class DeliveryError(PostroomError):
    """A transport failed to hand a message off.

    ``stage`` is one of the stages (``dns``, ``connect``, ``tls``, ``ehlo``, ``starttls``,
    ``auth``, ``mail``, ``rcpt``, ``data``, ``quit``, ``request``...). ``reply_code`` and
    ``reply_text`` carry the server's answer when there was one. The original exception is
    chained as ``__cause__``. ``retry_after`` is how many seconds the server asked us to wait
    before the next attempt (HTTP ``Retry-After``), when it said so. ``hint`` is the final
    diagnosis code when the code that raises already knows it (e.g. ``connection_timeout``
    for a connect that ran out of time): :func:`postroom.diagnosis.diagnose_error` then uses
    it as it is instead of classifying the reply; None leaves the classification to diagnosis.
    ``situation`` says more than the code (``no_greeting``: a connection with no 220 line is
    a ``connection_timeout``), for diagnosis to explain in words of its own.
    ``auth_skipped`` is True when the SMTP server offered AUTH and no login was made (the URI
    has no username).
    """

    auth_skipped: bool = False
    situation: Situation | None = None

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        reply_code: int | None = None,
        reply_text: str | None = None,
        hint: DiagnosisCode | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.stage = stage
        self.reply_code = reply_code
        self.reply_text = None if reply_text is None else readable(reply_text)
        self.hint = hint
        self.retry_after = retry_after
        super().__init__(readable(message))

    @property
    def reply(self) -> str | None:
        """The server reply as one line, e.g. ``"535 5.7.8 Authentication failed"``."""
        if self.reply_code is None:
            return self.reply_text
        text = " ".join((self.reply_text or "").split())
        return f"{self.reply_code} {text}".strip()


class HttpDeliveryError(DeliveryError):
    """HTTP delivery failed. ``stage`` is ``render`` (the Jsonnet body), ``dns``, ``connect``,
    ``tls`` or ``request``; ``reply_code`` is the HTTP status when the provider answered, and
    ``reply_text`` the start of its response body."""


class OAuthError(DeliveryError):
    """An OAuth2 (XOAUTH2) login failed.

    Stage ``token``: the provider's token endpoint refused or could not be reached;
    ``reply_code`` is the HTTP status and ``error`` / ``description`` the OAuth2 error the
    endpoint gave (e.g. ``invalid_client`` / ``AADSTS7000215: Invalid client secret ...``).
    Stage ``auth``: the SMTP server refused the access token; ``reply_code`` and
    ``reply_text`` are its reply. ``provider`` is the configured ``oauth2.provider``. Neither
    the token nor a secret is ever part of the message.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        reply_code: int | None = None,
        reply_text: str | None = None,
        hint: DiagnosisCode | None = None,
        error: str | None = None,
        description: str | None = None,
        provider: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.error = error
        self.description = description
        self.provider = provider
        self.endpoint = endpoint
        super().__init__(
            message, stage=stage, reply_code=reply_code, reply_text=reply_text, hint=hint
        )


def readable(text: str) -> str:
    """``text`` as valid Unicode: bytes a server sent that are not UTF-8 (which asyncio
    libraries keep as lone surrogates) become the characters they most likely were, or U+FFFD.
    Everything a peer says passes through here before it is stored, shown or serialised."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: most servers that are not UTF-8 speak Latin-1 (or Windows-1252).
        return raw.decode("cp1252", "replace")


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception behind it (``__cause__``, else ``__context__``), in order."""
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen
