"""Locale tags (BCP 47) and the fallback chain a message is rendered with.

A message asks for a locale (``pt-BR``); it is rendered in the first locale of its chain that
Postroom has a catalogue or the tenant has an override for: the tag, then the tag with its last
subtag dropped (``pt``), then the tenant's ``courier.locale`` and its own chain, then ``en``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from postroom.errors import InputError

BUILTIN_LOCALES = (
    "en",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "pt-BR",
    "nl",
    "pl",
    "sv",
    "ja",
    "zh-Hans",
    "ko",
    "tr",
    "uk",
    "ar",
)
"""The locales of the built-in catalogues; ``en`` is the source language."""

RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur", "ps", "yi", "dv", "ckb", "sd", "ug"})
"""Languages written right to left: their HTML gets ``dir="rtl"``."""

DEFAULT_LOCALE = "en"
MAX_TAG = 35  # RFC 5646's advice for the longest tag worth supporting
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
# Chinese without a script: Simplified where the region writes it, Traditional elsewhere.
_CHINESE = {"zh": "zh-Hans", "zh-CN": "zh-Hans", "zh-SG": "zh-Hans", "zh-MY": "zh-Hans"}


def is_locale_tag(value: object) -> bool:
    """Whether ``value`` is a well-formed language tag such as ``de``, ``pt-BR``, ``zh-Hans``."""
    return isinstance(value, str) and len(value) <= MAX_TAG and bool(_TAG.fullmatch(value))


@lru_cache(maxsize=1024)
def _canonical(tag: str) -> str:
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())  # a script: Hans, Latn
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())  # a region: BR, 419
        else:
            out.append(part.lower())
    return "-".join(out)


def normalize_locale(value: object, *, field: str = "locale") -> str:
    """Return the tag in its canonical case (``pt_br`` -> ``pt-BR``); raise :class:`InputError`
    naming ``field`` when it is not a language tag."""
    if not is_locale_tag(value):
        raise InputError(
            f"{value!r} is not a language tag; give one like en, de, pt-BR or zh-Hans",
            field=field,
        )
    assert isinstance(value, str)
    return _canonical(value)


@lru_cache(maxsize=1024)
def own_chain(tag: str) -> tuple[str, ...]:
    """``tag`` and its more general forms, same language only: ``pt-BR`` -> ``pt-BR``, ``pt``."""
    chain: list[str] = []
    parts = tag.split("-")
    while parts:
        candidate = "-".join(parts)
        chain.append(candidate)
        if candidate in _CHINESE:
            chain.append(_CHINESE[candidate])
        parts.pop()
    return tuple(dict.fromkeys(chain))


@lru_cache(maxsize=1024)
def fallback_chain(requested: str | None, default: str = DEFAULT_LOCALE) -> tuple[str, ...]:
    """The locales to try, best first: ``pt-BR`` with tenant default ``de`` gives
    ``("pt-BR", "pt", "de", "en")``. Tags must be canonical (see :func:`normalize_locale`)."""
    chain = own_chain(requested) if requested else ()
    return tuple(dict.fromkeys((*chain, *own_chain(default), DEFAULT_LOCALE)))


def text_direction(locale: str) -> str:
    """``rtl`` for a language written right to left, else ``ltr``."""
    return "rtl" if locale.split("-")[0] in RTL_LANGUAGES else "ltr"
