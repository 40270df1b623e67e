"""Template lookup (tenant override directory, then the built-ins) and sandboxed rendering.

An override directory holds ``<template_type>/email.subject.j2``, ``email.body.plaintext.j2``
and ``email.body.html.j2``; each file present replaces the built-in one, file by file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, TemplateNotFound
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from postroom.errors import TemplateError
from postroom.models import RenderedEmail, TemplateType

BUILTIN = Path(__file__).parent / "builtin"
SUBJECT, TEXT, HTML = "email.subject.j2", "email.body.plaintext.j2", "email.body.html.j2"


@lru_cache(maxsize=64)
def _environments(
    override: str | None,
) -> tuple[ImmutableSandboxedEnvironment, ImmutableSandboxedEnvironment]:
    paths = [str(Path(override))] if override else []
    loader = ChoiceLoader([FileSystemLoader([*paths, str(BUILTIN)])])
    text = ImmutableSandboxedEnvironment(
        loader=loader, autoescape=False, keep_trailing_newline=True
    )
    html = ImmutableSandboxedEnvironment(loader=loader, autoescape=True, keep_trailing_newline=True)
    return text, html


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
        except TemplateNotFound:
            raise TemplateError(
                f"no template {kind}/{name} in the overrides or built-ins"
            ) from None
        except JinjaError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (line {line})" if line else ""
            raise TemplateError(f"template {kind}/{name} failed{where}: {exc}") from exc
        except Exception as exc:  # a sandbox violation or a filter blowing up on user data
            raise TemplateError(f"template {kind}/{name} failed: {exc}") from exc

    subject = " ".join(render(text_env, SUBJECT).split())
    text = render(text_env, TEXT)
    if template_type is TemplateType.STUB and data.get("html_body"):
        html: str | None = str(data["html_body"])
    else:
        html = render(html_env, HTML)
    return RenderedEmail(subject=subject, text=text, html=html or None)
