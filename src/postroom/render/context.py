"""What a built-in template sees besides the caller's data: the ``mail`` namespace (language,
direction, branding, the greeting's name, the expiry in the locale's words).

The caller's data is never changed; ``mail`` is added beside it and wins over a data key of
the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from postroom.render.catalogues import format_duration as _duration
from postroom.render.catalogues import format_time
from postroom.render.locales import text_direction

DEFAULT_ACCENT = "#2563eb"
BRANDING_KEYS = (
    "product_name",
    "logo_url",
    "accent_color",
    "footer_text",
    "support_email",
    "address",
)
_FONTS = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
# Fonts the systems already have, per script: no web font is ever loaded.
_SCRIPT_FONTS = {
    "ja": "'Hiragino Sans', 'Yu Gothic', Meiryo, 'Noto Sans CJK JP', sans-serif",
    "zh": "'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', sans-serif",
    "ko": "'Apple SD Gothic Neo', 'Malgun Gothic', 'Noto Sans CJK KR', sans-serif",
    "ar": "Tahoma, 'Segoe UI', 'Noto Sans Arabic', Arial, sans-serif",
}


def _readable_on(color: str) -> str:
    """Dark or white text, whichever reads better on ``color`` (#rgb or #rrggbb)."""
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    red, green, blue = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return "#111827" if luminance > 0.55 else "#ffffff"


def _display_name(data: Mapping[str, Any]) -> str | None:
    """The identity's name, where Kratos's traits (``identity.traits`` or, in its registration
    models, ``traits``) or the data carry one."""
    identity = data.get("identity")
    traits = identity.get("traits") if isinstance(identity, Mapping) else data.get("traits")
    name = traits.get("name") if isinstance(traits, Mapping) else None
    if name is None:
        name = data.get("name")
    if isinstance(name, Mapping):  # Kratos's example schema: {"first": ..., "last": ...}
        parts = [name.get(k) for k in ("first", "last")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return name.strip() or None if isinstance(name, str) else None


def _minutes(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and value >= 0 else None


def mail_context(
    data: Mapping[str, Any], *, locale: str, branding: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``mail`` namespace for ``data`` rendered in ``locale`` with the tenant's branding;
    ``product_name`` in the data wins over the tenant's."""
    brand = {key: (branding or {}).get(key) for key in BRANDING_KEYS}
    if isinstance(data.get("product_name"), str) and data["product_name"]:
        brand["product_name"] = data["product_name"]
    accent = brand["accent_color"] or DEFAULT_ACCENT
    minutes = _minutes(data.get("expires_in_minutes"))
    whole_hours = minutes is not None and minutes >= 60 and minutes % 60 == 0
    sent_at = data.get("sent_at")
    language = locale.split("-")[0]
    return {
        "lang": locale,
        "dir": text_direction(locale),
        "brand": brand,
        "accent": accent,
        "accent_text": _readable_on(accent),
        "fonts": _SCRIPT_FONTS.get(language, _FONTS),
        "name": _display_name(data),
        "expires_minutes": None if whole_hours else minutes,
        "expires_duration": _duration(minutes, locale) if whole_hours and minutes else None,
        "sent_at": format_time(sent_at, locale) if isinstance(sent_at, datetime) else sent_at,
    }
