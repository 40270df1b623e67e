"""The diagnosis codes of the documented vocabulary as a type: a transport that knows the final
code of a failure (``DeliveryError.hint``), the classifiers and the catalogue all say
:data:`DiagnosisCode`, so a misspelt code is a type error instead of a ``KeyError`` at run
time. The catalogue (:mod:`postroom.diagnosis.catalogue`) gives each its rule and words."""

from __future__ import annotations

from typing import Literal, get_args

DiagnosisCode = Literal[
    "dns_unresolved",
    "connection_refused",
    "connection_timeout",
    "tls_wrong_mode",
    "tls_certificate_untrusted",
    "tls_hostname_mismatch",
    "tls_version_unsupported",
    "starttls_unavailable",
    "starttls_required",
    "auth_failed",
    "auth_disabled",
    "app_password_required",
    "auth_required",
    "auth_unsupported",
    "oauth_token_rejected",
    "sender_not_authorized",
    "sender_invalid",
    "account_suspended",
    "ip_blocklisted",
    "recipient_rejected",
    "relay_denied",
    "mailbox_full",
    "message_too_large",
    "rate_limited",
    "quota_exceeded",
    "greylisted",
    "server_unavailable",
    "http_error",
    "template_error",
    "target_forbidden",
    "settings_invalid",
    "expired",
    "cancelled",
    "protocol_error",
    "unknown",
]

ALL_CODES: tuple[DiagnosisCode, ...] = get_args(DiagnosisCode)
"""Every code, in the order of the documented table."""

Situation = Literal["no_greeting"]
"""What a transport knows beyond its code (``DeliveryError.situation``): ``no_greeting``, the
server accepted the connection and never sent its 220 line. Diagnosis explains each in words
of its own instead of the catalogue's."""
