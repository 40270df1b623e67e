"""Validation of what callers hand us: addresses, template types, data, sizes."""

from __future__ import annotations

import re
from typing import Any

from postroom.errors import InputError
from postroom.models import TemplateType

MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_BODY = 1_000_000  # characters, per part
MAX_ADDRESS = 320
_LOCAL = re.compile(r"^[^\s@<>()\[\],;:\\\"]{1,64}$")
_LABEL = re.compile(r"^(?!-)[^\s@<>()\[\],;:\\\"._]{1,63}(?<!-)$")


def validate_address(value: Any, *, field: str = "recipient") -> str:
    """Return the address stripped of surrounding space, or raise :class:`InputError`.

    Accepts ``local@domain`` (internationalised domains too); refuses display names, several
    addresses, line breaks and anything that is not one mailbox.
    """
    if not isinstance(value, str) or not value.strip():
        raise InputError("an email address is required, like you@example.org", field=field)
    address = value.strip()
    if "\r" in address or "\n" in address:
        raise InputError("contains a line break (CR or LF); give one address", field=field)
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    if (
        len(address) > MAX_ADDRESS
        or not at
        or not _LOCAL.match(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or not all(_LABEL.match(label) for label in labels)
    ):
        raise InputError(
            f"{address!r} is not a valid email address; give one address like you@example.org",
            field=field,
        )
    return address


def validate_template_type(value: Any, *, field: str = "template_type") -> TemplateType:
    """Return the template type, or raise :class:`InputError` listing the known ones."""
    try:
        return TemplateType(value)
    except ValueError:
        known = ", ".join(t.value for t in TemplateType)
        raise InputError(f"unknown template type {value!r}; known: {known}", field=field) from None


def validate_text(value: Any, *, field: str, limit: int, one_line: bool = False) -> str:
    """Return a string within ``limit`` characters (one line when asked), or raise."""
    if not isinstance(value, str):
        raise InputError("must be a string", field=field)
    if one_line and ("\r" in value or "\n" in value):
        raise InputError("contains a line break (CR or LF); it must be one line", field=field)
    if len(value) > limit:
        raise InputError(f"is {len(value)} characters long; the limit is {limit}", field=field)
    return value
