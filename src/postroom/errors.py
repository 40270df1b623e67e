"""The one exception tree of Postroom.

::

    PostroomError                     anything Postroom raises on purpose
    ├── ConfigError                   the configuration is invalid (exit 2); names the key path
    ├── InputError                    a caller's input is invalid (exit 2); names the field
    │   └── DuplicateRequestError     an idempotency key reused with a different request
    ├── NotFoundError                 no such message / tenant
    ├── TemplateError                 a template failed to render (diagnosis ``template_error``)
    └── DeliveryError                 a transport could not hand a message off; carries the
                                      stage, the server's reply and the underlying exception,
                                      for ``diagnosis`` to classify. Transports never decide
                                      retry or give-up: ``worker.retry`` does.

Messages never contain credentials: callers redact URIs before they put them in a message.
"""

from __future__ import annotations


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


class NotFoundError(PostroomError):
    """The thing asked for does not exist."""


class TemplateError(PostroomError):
    """A template could not be rendered."""


class DeliveryError(PostroomError):
    """A transport failed to hand a message off.

    ``stage`` is one of SPEC.md's stages (``dns``, ``connect``, ``tls``, ``ehlo``, ``starttls``,
    ``auth``, ``mail``, ``rcpt``, ``data``, ``quit``, ``request``...). ``reply_code`` and
    ``reply_text`` carry the server's answer when there was one. The original exception is
    chained as ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        reply_code: int | None = None,
        reply_text: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.stage = stage
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.hint = hint
        super().__init__(message)

    @property
    def reply(self) -> str | None:
        """The server reply as one line, e.g. ``"535 5.7.8 Authentication failed"``."""
        if self.reply_code is None:
            return self.reply_text
        text = " ".join((self.reply_text or "").split())
        return f"{self.reply_code} {text}".strip()
