"""Failure -> Diagnosis: the documented codes, and the provider knowledge that picks a code.

``catalogue`` holds every code with its retry rule and plain words; ``replies`` reads an SMTP
server reply (basic code, enhanced status code, text, stage) and names the code and, where the
reply betrays it, the provider. ``explain`` finds the reply (``pasted``) or a connection/TLS
error (``error_text``) in a text pasted from a log. Diagnosis only classifies: ``test-smtp``'s
driver, which walks a real SMTP conversation, lives beside the transports
(:mod:`postroom.transports.smtp_probe`).
"""

from __future__ import annotations

from postroom.diagnosis.catalogue import CODES, Entry, diagnose, is_transient
from postroom.diagnosis.classify import diagnose_error
from postroom.diagnosis.explain import Explanation, explain_text
from postroom.diagnosis.replies import Classified, classify_reply

__all__ = [
    "CODES",
    "Classified",
    "Entry",
    "Explanation",
    "classify_reply",
    "diagnose",
    "diagnose_error",
    "explain_text",
    "is_transient",
]
