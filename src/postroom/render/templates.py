"""Template lookup (tenant override directory, then the built-ins), translation and sandboxed
rendering.

An override directory holds ``<template_type>/email.subject.j2``, ``email.body.plaintext.j2``
and ``email.body.html.j2``, and per locale ``email.subject.<locale>.j2`` and so on; each file
present replaces the built-in one, file by file. A message is rendered in the first locale of
its chain (``pt-BR``, ``pt``, the tenant's default, ``en``) that has built-in strings or an
override file; its files are then looked up for that locale and its own more general forms
(``pt-BR``, ``pt``), then without a locale, never in another language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import Environment, FileSystemLoader, Template, TemplateNotFound, Undefined
from jinja2 import TemplateError as JinjaError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from postroom.errors import TemplateError
from postroom.models import RenderedEmail, TemplateType
from postroom.render.catalogues import has_catalogue, translations
from postroom.render.context import mail_context
from postroom.render.locales import DEFAULT_LOCALE, own_chain

BUILTIN = Path(__file__).parent / "builtin"
SUBJECT, TEXT, HTML = "email.subject.j2", "email.body.plaintext.j2", "email.body.html.j2"
NAMES = (SUBJECT, TEXT, HTML)
# Style blocks become style attributes (mail clients drop or mangle <style>); @media rules an
# override may have are kept, as they cannot be inlined. Nothing is ever fetched.
# Runs of white space in a subject become one space, but no-break spaces stay (French "Acme :").
_SPACES = re.compile(r"[^\S\u00a0\u202f]+")
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


class _Undefined(Undefined):
    """Missing data renders as nothing, but an attribute the sandbox refused is an error."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return super().__str__()


def _environment(
    loader: FileSystemLoader, *, autoescape: bool, locale: str, overridden: bool
) -> Any:
    kind = ImmutableSandboxedEnvironment if overridden else Environment
    env = kind(
        loader=loader,
        autoescape=autoescape,
        auto_reload=overridden,
        keep_trailing_newline=True,
        undefined=_Undefined,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


@lru_cache(maxsize=256)
def _environments(override: str | None, locale: str) -> tuple[Environment, Environment]:
    """One text and one HTML environment per override directory and locale: each keeps its
    compiled templates, so a template is compiled once per locale, not once per message.

    With an override directory, every template renders in Jinja's sandbox (an override is
    written by someone else, and may replace the built-in layouts too), and a file edited in
    place is read again (Jinja looks at its modification time each time it is used). The
    built-ins alone are Postroom's own code, changed only with Postroom: they render without
    the sandbox (the caller's data is only ever values in them, never template code) and
    their files are not looked at again; about twice as fast."""
    paths = [str(Path(override))] if override else []
    loader = FileSystemLoader([*paths, str(BUILTIN)])
    overridden = bool(override)
    return (
        _environment(loader, autoescape=False, locale=locale, overridden=overridden),
        _environment(loader, autoescape=True, locale=locale, overridden=overridden),
    )


def _has_override(override: str | None, kind: str, locale: str) -> bool:
    if not override:
        return False
    folder = Path(override) / kind
    return any((folder / _localized(name, locale)).is_file() for name in NAMES)


def _localized(name: str, locale: str) -> str:
    return name.replace(".j2", f".{locale}.j2")


def resolve_locale(
    template_type: TemplateType, chain: Sequence[str], *, override_path: str | None = None
) -> str:
    """The first locale of ``chain`` that has built-in strings or an override file for the
    template type: the locale the message is rendered (and stored) in."""
    for locale in chain:
        if has_catalogue(locale) or _has_override(override_path, template_type.value, locale):
            return locale
    return DEFAULT_LOCALE


def _template_position(exc: Exception) -> tuple[str | None, int | None]:
    """The template file and line an error came from (full path for an override)."""
    path, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
    if path and line:
        return path, line  # a syntax error
    tb = exc.__traceback__
    while tb is not None:  # Jinja puts template frames, with template lines, in the traceback
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            path, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return path, line


def _select(
    env: Environment,
    kind: str,
    name: str,
    chain: Sequence[str],
    override: str | None,
) -> Template:
    if not override:  # the built-ins have no per-locale files: no lookups that cannot succeed
        return env.get_template(f"{kind}/{name}")
    candidates = [f"{kind}/{_localized(name, locale)}" for locale in chain]
    return env.select_template([*candidates, f"{kind}/{name}"])


def render_email(
    template_type: TemplateType,
    data: dict[str, Any],
    *,
    override_path: str | None = None,
    locales: Sequence[str] = (DEFAULT_LOCALE,),
    branding: Mapping[str, Any] | None = None,
) -> RenderedEmail:
    """Render subject, plaintext and HTML for a template type in the first locale of the
    chain ``locales`` that has strings (see :func:`resolve_locale`); raise
    :class:`TemplateError`.

    For ``stub``, the caller's ``subject`` and ``body`` are used, and ``html_body`` when given.
    Built-in HTML has its CSS inlined.
    """
    kind = template_type.value
    locale = resolve_locale(template_type, locales, override_path=override_path)
    chain = own_chain(locale)  # never another language's file: sv does not take de's
    text_env, html_env = _environments(override_path, locale)
    context = {**data, "mail": mail_context(data, locale=locale, branding=branding)}
    if context["mail"]["brand"]["product_name"]:
        context["product_name"] = context["mail"]["brand"]["product_name"]

    def render(env: Environment, name: str) -> str:
        try:
            return _select(env, kind, name, chain, override_path).render(context)
        except TemplateNotFound as exc:  # this one, or one it includes
            raise TemplateError(f"no template {exc.name} in the overrides or built-ins") from None
        except Exception as exc:  # syntax, a sandbox violation, a filter failing on user data
            path, line = _template_position(exc)
            path = path or f"{kind}/{name}"
            where = f" (line {line})" if line else ""
            text = exc.message if isinstance(exc, JinjaError) and exc.message else str(exc)
            raise TemplateError(f"template {path} failed{where}: {text}") from exc

    subject = _SPACES.sub(" ", render(text_env, SUBJECT)).strip()
    text = render(text_env, TEXT)
    if template_type is TemplateType.STUB and data.get("html_body"):
        html: str | None = str(data["html_body"])
    else:
        html = render(html_env, HTML)
        if html and "<style" in html:
            html = _INLINER.inline(html)
    return RenderedEmail(subject=subject, text=text, html=html or None, locale=locale)
