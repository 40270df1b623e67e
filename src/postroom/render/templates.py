"""Template lookup (tenant override directory, then the built-ins) and sandboxed rendering.

An override directory holds ``<template_type>/email.subject.j2``, ``email.body.plaintext.j2``
and ``email.body.html.j2``; each file present replaces the built-in one, file by file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, TemplateNotFound, Undefined
from jinja2 import TemplateError as JinjaError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from postroom.errors import TemplateError
from postroom.models import RenderedEmail, TemplateType

BUILTIN = Path(__file__).parent / "builtin"
SUBJECT, TEXT, HTML = "email.subject.j2", "email.body.plaintext.j2", "email.body.html.j2"


class _Undefined(Undefined):
    """Missing data renders as nothing, but an attribute the sandbox refused is an error."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return super().__str__()


@lru_cache(maxsize=64)
def _environments(
    override: str | None,
) -> tuple[ImmutableSandboxedEnvironment, ImmutableSandboxedEnvironment]:
    paths = [str(Path(override))] if override else []
    loader = ChoiceLoader([FileSystemLoader([*paths, str(BUILTIN)])])
    text = ImmutableSandboxedEnvironment(
        loader=loader, autoescape=False, keep_trailing_newline=True, undefined=_Undefined
    )
    html = ImmutableSandboxedEnvironment(
        loader=loader, autoescape=True, keep_trailing_newline=True, undefined=_Undefined
    )
    return text, html


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


def render_email(
    template_type: TemplateType,
    data: dict[str, Any],
    *,
    override_path: str | None = None,
) -> RenderedEmail:
    """Render subject, plaintext and HTML for a template type; raise :class:`TemplateError`.

    For ``stub``, the caller's ``subject`` and ``body`` are used, and ``html_body`` when given.
    """
    text_env, html_env = _environments(override_path)
    kind = template_type.value

    def render(env: ImmutableSandboxedEnvironment, name: str) -> str:
        try:
            return env.get_template(f"{kind}/{name}").render(data)
        except TemplateNotFound as exc:  # this one, or one it includes
            raise TemplateError(f"no template {exc.name} in the overrides or built-ins") from None
        except Exception as exc:  # syntax, a sandbox violation, a filter failing on user data
            path, line = _template_position(exc)
            path = path or f"{kind}/{name}"
            where = f" (line {line})" if line else ""
            text = exc.message if isinstance(exc, JinjaError) and exc.message else str(exc)
            raise TemplateError(f"template {path} failed{where}: {text}") from exc

    subject = " ".join(render(text_env, SUBJECT).split())
    text = render(text_env, TEXT)
    if template_type is TemplateType.STUB and data.get("html_body"):
        html: str | None = str(data["html_body"])
    else:
        html = render(html_env, HTML)
    return RenderedEmail(subject=subject, text=text, html=html or None)
