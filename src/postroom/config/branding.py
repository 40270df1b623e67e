"""``courier.branding`` and ``courier.locale``: how a tenant's mail looks and which language it
speaks when a message does not say, without editing a template."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator

from postroom.config.model import SettingsModel
from postroom.errors import InputError
from postroom.render.locales import normalize_locale
from postroom.render.mime import header_address
from postroom.text import header_line_problem

_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def _one_line(value: str | None, name: str) -> str | None:
    if value is not None and header_line_problem(value) is not None:
        raise ValueError(f"{name} must be one line")
    return value


class BrandingSettings(SettingsModel):
    """``courier.branding``: shown by every built-in template; unset fields are left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product_name: str | None = Field(default=None, max_length=100)
    logo_url: str | None = Field(default=None, max_length=2048)
    accent_color: str | None = None
    footer_text: str | None = Field(default=None, max_length=500)
    support_email: str | None = None
    address: str | None = Field(default=None, max_length=300)

    @field_validator("product_name")
    @classmethod
    def _product_line(cls, value: str | None) -> str | None:
        return _one_line(value, "product_name")

    @field_validator("logo_url")
    @classmethod
    def _https_logo(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or any(c in value for c in " \"'<>\\"):
            raise ValueError(
                "logo_url must be an https:// URL without spaces or quotes, like "
                "https://example.org/logo.png (mail clients block plain http images)"
            )
        return value

    @field_validator("accent_color")
    @classmethod
    def _hex_color(cls, value: str | None) -> str | None:
        if value is not None and not _COLOR.fullmatch(value):
            raise ValueError(f"accent_color {value!r} is not a colour; write it as #1d4ed8 or #26f")
        return value

    @field_validator("support_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            header_address(value, field="support_email")
            return value
        except InputError as exc:
            raise ValueError(str(exc)) from None


def valid_locale(value: str) -> str:
    """``courier.locale``: a language tag in canonical case; raise ``ValueError`` otherwise."""
    try:
        return normalize_locale(value, field="courier.locale")
    except InputError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
