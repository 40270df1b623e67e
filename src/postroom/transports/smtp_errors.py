"""How the SMTP conversation's outcomes read: a server reply on one line, and a library error
(aiosmtplib, socket, TLS, timeout) as a :class:`~postroom.errors.DeliveryError` with its stage
and, when the server refused, its reply."""

from __future__ import annotations

import ssl

import aiosmtplib
from aiosmtplib import SMTPResponse

from postroom.errors import DeliveryError, readable


def reply_text(response: SMTPResponse) -> str:
    """``250 2.0.0 Ok: queued`` with the reply's lines and spaces folded into one line."""
    return readable(f"{response.code} {' '.join(response.message.split())}".strip())


def delivery_error(stage: str, exc: BaseException) -> DeliveryError:
    """A library error during ``stage`` as a DeliveryError: the server's reply when it
    refused, else what went wrong with the connection."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return DeliveryError(
            f"the server refused {stage.upper()}",
            stage=stage,
            reply_code=exc.code,
            reply_text=exc.message,
        )
    return DeliveryError(describe(stage, exc), stage=stage)


def describe(stage: str, exc: BaseException) -> str:
    """What went wrong during ``stage`` without a server reply, from the root cause."""
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = getattr(root, "reason", None) or str(root) or type(root).__name__
    if isinstance(root, ssl.SSLCertVerificationError):
        text = root.verify_message or text
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return f"the server closed the connection during {stage.upper()}"
    if isinstance(exc, TimeoutError):
        return f"no answer during {stage.upper()} ({exc})"
    return f"{stage.upper()} failed: {text}"
