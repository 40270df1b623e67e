"""``postroom messages``: list messages and show one with every attempt and its diagnosis,
through the same service layer as the admin API and the dashboard."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.measure import Measurement
from rich.table import Column, Table

from postroom.commands.common import (
    ConfigOpt,
    JsonOpt,
    labelled,
    out,
    plain,
    print_json,
    run_with_store,
    settings_from,
    user_errors,
)
from postroom.config import Settings
from postroom.errors import InputError
from postroom.models import Message, Status, message_json
from postroom.service import messages as message_service
from postroom.service import tenants as tenant_service
from postroom.store import MessageFilter

messages_app = typer.Typer(
    help="Inspect messages and their delivery attempts.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``messages`` (list, show) to ``app``."""
    app.add_typer(messages_app, name="messages")


@messages_app.command("list")
def messages_list(
    status: Annotated[
        str | None, typer.Option("--status", help="queued, processing, sent or abandoned.")
    ] = None,
    recipient: Annotated[str | None, typer.Option("--recipient")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List messages, newest first."""
    with user_errors():
        settings = settings_from(config)
        try:
            wanted = Status(status) if status else None
        except ValueError:
            raise InputError(
                f"unknown status {status!r}; use one of {', '.join(s.value for s in Status)}",
                field="--status",
            ) from None
        query = MessageFilter(status=wanted, recipient=recipient, tenant=tenant, limit=limit)
        page = run_with_store(settings, lambda store: message_service.list_page(store, query))
        rows = page.messages
        if as_json:
            print_json([message_json(m, expose_bodies=_expose(settings, m)) for m in rows])
            return
        table = Table(
            # The id is what `messages show` needs: never cut it, however narrow the output.
            Column("id", no_wrap=True, min_width=36),
            "created",
            "tenant",
            "recipient",
            "template",
            "locale",
            "status",
            "attempts",
            "last error",
        )
        for m in rows:
            table.add_row(
                m.id,
                m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                plain(m.tenant),
                plain(m.recipient),
                m.template_type.value,
                m.locale or "",
                _status_text(m),
                str(m.send_count),
                plain(m.last_error.code) if m.last_error else "",
            )
        if not rows:
            out.print("no messages")
            return
        # In a pipe or a file there is no terminal width to fit: print every column whole.
        if not out.is_terminal:
            out.width = max(
                out.width, Measurement.get(out, out.options.update_width(1000), table).maximum
            )
        out.print(table)


@messages_app.command("show")
def messages_show(
    message_id: Annotated[str, typer.Argument(metavar="ID", help="The message id.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show one message with every delivery attempt and its diagnosis."""
    with user_errors():
        settings = settings_from(config)
        message = run_with_store(settings, lambda store: message_service.get(store, message_id))
        data = message_json(message, expose_bodies=_expose(settings, message))
        if as_json:
            print_json(data)
            return
        for key in (
            "id",
            "tenant",
            "status",
            "recipient",
            "template_type",
            "locale",
            "subject",
            "send_count",
            "created_at",
            "updated_at",
            "next_attempt_at",
            "waiting_for",
        ):
            if data.get(key) is not None:
                out.print(labelled(f"{key:>16}  ", str(data[key]), label_style="bold"))
        if message.last_error:
            _print_diagnosis("last error", message.last_error.to_json())
        for number, dispatch in enumerate(reversed(message.dispatches), start=1):
            when = dispatch.created_at.strftime("%Y-%m-%d %H:%M:%S")
            out.print(f"\n[bold]attempt {number}[/] {when}  {dispatch.status.value}", markup=True)
            if dispatch.error:
                _print_diagnosis("  error", dispatch.error.to_json())


def _print_diagnosis(title: str, error: dict[str, Any]) -> None:
    kind = "transient" if error.get("transient") else "permanent"
    out.print(labelled(f"{title:>16}  ", f"{error['code']} ({kind})", label_style="bold red"))
    for key in ("stage", "reply", "cause", "fix"):
        if error.get(key):
            out.print(labelled(f"{key:>16}  ", str(error[key])))


def _status_text(m: Message) -> str:
    if m.status is Status.QUEUED and m.waiting_for:
        return f"queued ({m.waiting_for.value})"
    return m.status.value


def _expose(settings: Settings, message: Message) -> bool:
    return tenant_service.exposes_bodies(settings, message.tenant)
