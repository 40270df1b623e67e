"""The gettext catalogues of the built-in templates, and locale-aware numbers, durations and
dates for them.

One ``locales/<tag>.po`` per locale (``en`` is the source language and has none). A catalogue
is compiled in memory the first time its locale is used and kept for the life of the process,
so rendering never parses a ``.po`` file twice.
"""

from __future__ import annotations

import gettext
import re
from datetime import UTC, datetime
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po
from babel.support import Translations
from babel.units import format_unit

CATALOGUES = Path(__file__).parent / "locales"
BUILTIN_TEMPLATES = Path(__file__).parent / "builtin"
MINUTES_PER_HOUR, MINUTES_PER_DAY = 60, 1440


@lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """The Babel locale of a BCP 47 tag (``pt-BR`` -> ``pt_BR``); English when Babel has none.
    Made once per tag: a message with a time in its data formats it with the same object."""
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError):  # babel's UnknownLocaleError is a ValueError
        return Locale("en")


def catalogue_path(tag: str) -> Path:
    """Where the catalogue of ``tag`` lives (it may not exist)."""
    return CATALOGUES / f"{tag}.po"


def read_catalogue(tag: str) -> Catalog:
    """Parse ``locales/<tag>.po``; raise ``FileNotFoundError`` when there is none."""
    with catalogue_path(tag).open("rb") as handle:
        return read_po(handle, locale=tag.replace("-", "_"))


@lru_cache(maxsize=64)
def translations(tag: str) -> gettext.NullTranslations:
    """The compiled translations of ``tag``; the source strings (English) when it has no
    catalogue."""
    if tag == "en" or not catalogue_path(tag).is_file():
        return gettext.NullTranslations()
    compiled = BytesIO()
    write_mo(compiled, read_catalogue(tag), use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain="messages")


@lru_cache(maxsize=256)
def has_catalogue(tag: str) -> bool:
    """Whether Postroom ships built-in strings for ``tag`` (``en`` always)."""
    return tag == "en" or catalogue_path(tag).is_file()


@lru_cache(maxsize=4096)
def format_duration(minutes: int, tag: str) -> str:
    """A whole number of hours or days in the words of the locale ("2 Stunden", "1 день")."""
    if minutes % MINUTES_PER_DAY == 0:
        value, unit = minutes // MINUTES_PER_DAY, "duration-day"
    else:
        value, unit = minutes // MINUTES_PER_HOUR, "duration-hour"
    return str(format_unit(value, unit, length="long", locale=babel_locale(tag)))


def format_time(value: datetime, tag: str) -> str:
    """A moment in the locale's medium date and time format, in UTC and saying so."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(format_datetime(value, "medium", tzinfo=UTC, locale=babel_locale(tag))) + " UTC"


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
EXTRACT_METHODS = [("**.j2", "jinja2")]
EXTRACT_OPTIONS = {"**.j2": {"trimmed": "true"}}
"""How the built-in templates' strings are found: the same as ``babel.cfg`` (``make messages``)."""


def template_strings(folder: Path = BUILTIN_TEMPLATES) -> Catalog:
    """Every translatable string of the templates in ``folder``, as a catalogue template."""
    template = Catalog(locale=None)
    for _file, line, message, _comments, context in extract_from_dir(
        folder, method_map=EXTRACT_METHODS, options_map=EXTRACT_OPTIONS
    ):
        template.add(message, None, [(_file, line)], context=context)
    return template


def _forms(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def catalogue_problems(catalogue: Catalog, expected: Catalog) -> list[str]:
    """What keeps ``catalogue`` from serving every string of ``expected``: a string missing
    or empty, a placeholder dropped or renamed, fewer plural forms than its language needs, a
    string the templates no longer use, and a missing review statement."""
    problems: list[str] = []
    needed = get_plural(catalogue.locale).num_plurals if catalogue.locale else 2
    if catalogue.num_plurals != needed:
        problems.append(
            f"Plural-Forms says {catalogue.num_plurals} forms; the language has {needed}"
        )
    if not any(line.startswith("# Review: ") for line in catalogue.header_comment.splitlines()):
        problems.append(
            "the header has no '# Review: ' line saying whether a native speaker read it"
        )
    for message in expected:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        found = catalogue.get(message.id if isinstance(message.id, str) else message.id[0])
        if found is None or found.fuzzy:
            problems.append(f"missing: {key!r}")
            continue
        english = _forms(message.id)
        wanted = set(_PLACEHOLDER.findall(" ".join(english)))
        forms = _forms(found.string)
        if len(english) > 1 and len(forms) < needed:
            problems.append(f"{key!r} has {len(forms)} plural forms; the language needs {needed}")
        for number, form in enumerate(forms):
            if not form.strip():
                problems.append(f"{key!r}: form {number} is empty")
            elif set(_PLACEHOLDER.findall(form)) != wanted:
                got = sorted(set(_PLACEHOLDER.findall(form)))
                problems.append(
                    f"{key!r}: form {number} has placeholders {got}, not {sorted(wanted)}"
                )
    used = {m.id if isinstance(m.id, str) else m.id[0] for m in expected if m.id}
    for message in catalogue:
        key = message.id if isinstance(message.id, str) else message.id[0]
        if message.id and key not in used:
            problems.append(f"no template uses {key!r}")
    return problems
