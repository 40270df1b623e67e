"""``postroom templates preview``: a template type rendered for a tenant in a locale with
sample data, exactly as it would be sent (nothing is stored or sent)."""

from __future__ import annotations

import sys
import tempfile
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from postroom.commands.common import (
    ConfigOpt,
    err,
    out,
    plain,
    settings_from,
    user_errors,
    with_api_tenants,
)
from postroom.intake.preview import preview_body, render_preview

templates_app = typer.Typer(help="Preview the email templates.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``templates`` (preview) to ``app``."""
    app.add_typer(templates_app, name="templates")


@templates_app.command("preview")
def preview(
    template_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Template type, e.g. login_code_valid.")
    ],
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant whose branding and overrides apply.")
    ] = "default",
    locale: Annotated[
        str | None,
        typer.Option("--locale", help="Language (BCP 47: de, pt-BR); default: the tenant's."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="text (subject and plain text), html or eml.")
    ] = "text",
    open_it: Annotated[
        bool, typer.Option("--open", help="Write the HTML to a file and open it in a browser.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Print a template as it would be sent, with sample data; the locale used goes to stderr."""
    with user_errors():
        settings = with_api_tenants(settings_from(config))
        message = render_preview(settings, template_type, tenant=tenant, locale=locale)
        body, _media_type = preview_body(message, "html" if open_it else fmt)
    err.print(plain(f"{message.template_type.value} in {message.locale} for tenant {tenant}"))
    if open_it:
        with tempfile.NamedTemporaryFile(
            "wb", prefix=f"postroom-{message.template_type.value}-", suffix=".html", delete=False
        ) as handle:
            handle.write(body)
        path = Path(handle.name)
        out.print(plain(str(path)))
        webbrowser.open(path.as_uri())
        return
    sys.stdout.buffer.write(body if body.endswith(b"\n") else body + b"\n")
