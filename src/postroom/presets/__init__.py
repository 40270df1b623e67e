"""Provider presets as data: SMTP presets (``smtp.py``) and HTTP API presets (``http.py``),
gathered into one registry keyed by name."""

from __future__ import annotations

import importlib
import importlib.util

from postroom.errors import InputError
from postroom.presets.base import Preset, RateLimit
from postroom.presets.smtp import (
    SES_REGIONS,
    SMTP_PRESETS,
    UriResult,
    build_uri,
    derive_ses_smtp_password,
    encode_credential,
    looks_like_aws_secret_key,
)
from postroom.text import did_you_mean


def _http_presets() -> tuple[Preset, ...]:
    """The HTTP API presets of ``presets/http.py`` (issue 4); none while that module does not
    exist yet. A module that exists but fails to import is an error, not an empty list."""
    if importlib.util.find_spec("postroom.presets.http") is None:
        return ()
    module = importlib.import_module("postroom.presets.http")
    presets: tuple[Preset, ...] = tuple(module.HTTP_PRESETS)
    return presets


def _registry(presets: tuple[Preset, ...]) -> dict[str, Preset]:
    out: dict[str, Preset] = {}
    for preset in presets:
        if preset.name in out:
            raise ValueError(f"two presets are named {preset.name!r}; preset names must be unique")
        out[preset.name] = preset
    return out


PRESETS: dict[str, Preset] = _registry((*SMTP_PRESETS, *_http_presets()))
"""Every preset by name: the SMTP ones in the README's order, then the HTTP API ones."""


def preset_names() -> list[str]:
    """The known preset names, in registry order."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raise :class:`InputError` listing the known names."""
    preset = PRESETS.get(name.strip().lower()) if isinstance(name, str) else None
    if preset is None:
        hint = did_you_mean(name.strip().lower(), PRESETS) if isinstance(name, str) else ""
        raise InputError(
            f"unknown preset {name!r}{hint}; known presets: {', '.join(PRESETS)}", field="preset"
        )
    return preset


__all__ = [
    "PRESETS",
    "SES_REGIONS",
    "SMTP_PRESETS",
    "Preset",
    "RateLimit",
    "UriResult",
    "build_uri",
    "derive_ses_smtp_password",
    "encode_credential",
    "get_preset",
    "looks_like_aws_secret_key",
    "preset_names",
]
