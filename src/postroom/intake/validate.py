"""Validation of what callers hand us: addresses, template types, data, sizes."""

from __future__ import annotations

import json
import re
from typing import Any

from postroom.errors import InputError
from postroom.models import TemplateType
from postroom.text import check_data, did_you_mean, header_line_problem

MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_BODY = 1_000_000  # characters, per part
MAX_ADDRESS = 320
# RFC 5322 dot-atom text (ASCII only: non-ASCII local parts need SMTPUTF8).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
# A DNS label in its ASCII form (an internationalised label is checked as its xn-- form).
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def validate_address(value: Any, *, field: str = "recipient") -> str:
    """Return the address stripped of surrounding space, or raise :class:`InputError`.

    Accepts ``local@domain`` (internationalised domains too); refuses display names, several
    addresses, line breaks (any that would split a header), NUL, lone surrogates and anything
    that is not one mailbox.
    """
    if not isinstance(value, str) or not value.strip():
        raise InputError("an email address is required, like you@example.org", field=field)
    address = value.strip()
    problem = header_line_problem(value)  # even at the end: a line break is never harmless here
    if problem is not None:
        raise InputError(f"{problem}; give one address, like you@example.org", field=field)
    local, at, domain = address.rpartition("@")
    if at and not local.isascii() and "@" not in local and not any(c.isspace() for c in local):
        raise InputError(
            f"{address!r} has non-ASCII characters before the @, which Postroom cannot send yet "
            "(internationalised domains after the @ are fine)",
            field=field,
        )
    if (
        len(address) > MAX_ADDRESS
        or not at
        or not _LOCAL.match(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or not _domain_ok(domain)
    ):
        raise InputError(
            f"{address!r} is not a valid email address; give one address like you@example.org",
            field=field,
        )
    return address


def _domain_ok(domain: str) -> bool:
    """True for a host name whose labels are valid, after converting an IDN to ASCII."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return len(ascii_domain) <= 253 and all(_LABEL.match(lab) for lab in ascii_domain.split("."))


def validate_template_type(value: Any, *, field: str = "template_type") -> TemplateType:
    """Return the template type, or raise :class:`InputError` listing the known ones."""
    try:
        found = TemplateType(value)
    except ValueError:
        found = None
    if found is TemplateType.RELAY:
        raise InputError(
            "relay is the type of mail submitted through the SMTP listener, not a template; "
            "send a subject and text instead",
            field=field,
        )
    if found is None:
        names = [t.value for t in TemplateType if t is not TemplateType.RELAY]
        hint = did_you_mean(str(value), names)
        raise InputError(
            f"unknown template type {value!r}{hint}; known: {', '.join(names)}", field=field
        )
    return found


# What a template cannot do without: an email with an empty code is worse than none.
REQUIRED_DATA: dict[TemplateType, str] = {
    TemplateType.LOGIN_CODE_VALID: "login_code",
    TemplateType.REGISTRATION_CODE_VALID: "registration_code",
    TemplateType.VERIFICATION_CODE_VALID: "verification_code",
    TemplateType.RECOVERY_CODE_VALID: "recovery_code",
    TemplateType.VERIFICATION_VALID: "verification_url",
    TemplateType.RECOVERY_VALID: "recovery_url",
}


def validate_required_data(template_type: TemplateType, data: dict[str, Any]) -> None:
    """Refuse template data that lacks the value the template exists to carry."""
    key = REQUIRED_DATA.get(template_type)
    if key is not None and (data.get(key) is None or str(data[key]).strip() == ""):
        raise InputError(
            f'{template_type.value} needs {key!r} in the template data, e.g. {{"{key}": "..."}}',
            field="data",
        )


def validate_text(value: Any, *, field: str, limit: int, one_line: bool = False) -> str:
    """Return a string within ``limit`` characters that is text (no NUL, no lone surrogate)
    and, when asked, one header line; or raise :class:`InputError` naming ``field``."""
    if not isinstance(value, str):
        raise InputError("must be a string", field=field)
    problem = header_line_problem(value) if one_line else None
    if problem is not None:
        raise InputError(problem, field=field)
    check_data(value, field=field)
    if len(value) > limit:
        raise InputError(f"is {len(value)} characters long; the limit is {limit}", field=field)
    return value


def parse_json(text: str, *, field: str | None = None, hint: str = "") -> Any:
    """The JSON value of ``text``; raise :class:`InputError` naming ``field`` and saying what is
    wrong and where (``hint`` follows, e.g. an example). NaN and Infinity are parsed here and
    refused with the rest of the data by :func:`postroom.text.check_data`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"{exc.msg} at column {exc.colno}"
    except ValueError as exc:  # such as an integer with more digits than Python converts
        problem = str(exc)
    except RecursionError:
        problem = "nested too deeply"
    raise InputError(f"is not valid JSON ({problem}){hint}", field=field)
