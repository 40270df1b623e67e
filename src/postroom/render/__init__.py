"""Rendering: template lookup (tenant override -> built-ins), Jinja2 sandbox, MIME bytes."""

from postroom.render.mime import build_mime, check_header_value
from postroom.render.templates import render_email

__all__ = ["build_mime", "check_header_value", "render_email"]
