"""``postroom messages``: list, show, retry and cancel messages, through the same service
layer as the admin API and the dashboard (:mod:`postroom.store.search` names messages the way
people do). Thin: this module parses, prints and picks the exit code (0 success, 1 the message
is not there or cannot be changed, 2 bad input)."""

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
    with_api_tenants,
)
from postroom.config import Settings
from postroom.errors import InputError
from postroom.models import Message, Status, TemplateType, message_json
from postroom.service import messages as message_service
from postroom.service import tenants as tenant_service
from postroom.store import MessageFilter, Store
from postroom.store.search import resolve_message_id, short_id
from postroom.text import did_you_mean

messages_app = typer.Typer(
    help="Inspect messages and their delivery attempts; retry or cancel one.",
    no_args_is_help=True,
)

IdArg = Annotated[
    str,
    typer.Argument(
        metavar="ID",
        help="The message id, its short form from `messages list`, or any unique start or end.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``messages`` (list, show, retry, cancel) to ``app``."""
    app.add_typer(messages_app, name="messages")


def _status(value: str | None) -> Status | None:
    try:
        return Status(value) if value else None
    except ValueError:
        raise InputError(
            f"unknown status {value!r}; use one of {', '.join(s.value for s in Status)}",
            field="--status",
        ) from None


def _template(value: str | None) -> str | None:
    if value is None:
        return None
    names = [t.value for t in TemplateType]
    if value not in names:
        raise InputError(
            f"unknown template type {value!r}{did_you_mean(value, names)}; "
            f"use one of {', '.join(names)}",
            field="--template",
        )
    return value


@messages_app.command("list")
def messages_list(
    status: Annotated[
        str | None, typer.Option("--status", help="queued, processing, sent or abandoned.")
    ] = None,
    recipient: Annotated[
        str | None,
        typer.Option(
            "--recipient", help="An address (any case), or @example.org for a whole domain."
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="Only this template type.")
    ] = None,
    provider_id: Annotated[
        str | None,
        typer.Option("--provider-id", help="The provider's id for a message it accepted."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="At most this many rows.")
    ] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List messages, newest first (the short id is enough for `messages show`)."""
    with user_errors():
        settings = settings_from(config)
        query = MessageFilter(
            status=_status(status),
            recipient=recipient,
            tenant=tenant,
            template_type=_template(template),
            provider_message_id=provider_id,
            limit=limit,
        )
        page = run_with_store(settings, lambda store: message_service.list_page(store, query))
        rows = page.messages
        if as_json:
            print_json([message_json(m, expose_bodies=_expose(settings, m)) for m in rows])
            return
        if not rows:
            out.print("no messages")
            return
        out.print(_table(rows))


def _table(rows: list[Message]) -> Table:
    """Readable at 80 columns: the short id, status and recipient are never cut; the tenant
    and the locale show only when the rows have several."""
    tenants = len({m.tenant for m in rows}) > 1
    locales = len({m.locale or "en" for m in rows}) > 1  # shown when the rows differ
    fit = out.is_terminal  # a pipe or a file gets every column whole

    def most(width: int) -> int | None:
        return width if fit else None

    table = Table(
        Column("id", no_wrap=True),
        Column("created UTC", no_wrap=True),
        Column("status"),
        Column("try", justify="right", no_wrap=True),
        Column("recipient", overflow="fold", min_width=20, ratio=4),
        *([Column("tenant", overflow="ellipsis", max_width=most(10))] if tenants else []),
        Column("template", overflow="ellipsis", max_width=most(14), ratio=1),
        *([Column("locale", overflow="ellipsis", max_width=most(7))] if locales else []),
        Column("error", overflow="ellipsis", max_width=most(22), ratio=1),
        box=None,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for m in rows:
        table.add_row(
            short_id(m.id),
            m.created_at.strftime("%m-%d %H:%M"),
            _status_text(m),
            str(m.send_count),
            plain(m.recipient),
            *([plain(m.tenant)] if tenants else []),
            m.template_type.value,
            *([m.locale or ""] if locales else []),
            plain(m.last_error.code) if m.last_error else "",
        )
    if not fit:
        out.width = max(
            out.width, Measurement.get(out, out.options.update_width(1000), table).maximum
        )
    return table


@messages_app.command("show")
def messages_show(message_id: IdArg, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show one message: where each attempt went (transport, host, the provider's reply and
    id) or why it failed (diagnosis, cause and fix)."""
    with user_errors():
        settings = settings_from(config)

        async def read(store: Store) -> Message:
            return await message_service.get(store, await resolve_message_id(store, message_id))

        message = run_with_store(settings, read)
        data = message_json(message, expose_bodies=_expose(settings, message))
        if as_json:
            print_json(data)
            return
        _print_message(message, data)


def _print_message(message: Message, data: dict[str, Any]) -> None:
    for key in (
        "id",
        "tenant",
        "status",
        "recipient",
        "template_type",
        "priority",
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
        gave_up = message.status is Status.ABANDONED
        _print_diagnosis("last error", message.last_error.to_json(), gave_up=gave_up)
    for number, dispatch in enumerate(reversed(message.dispatches), start=1):
        when = dispatch.created_at.strftime("%Y-%m-%d %H:%M:%S")
        out.print(f"\n[bold]attempt {number}[/] {when}  {dispatch.status.value}", markup=True)
        for key in ("transport", "host", "reply", "provider_message_id"):
            value = getattr(dispatch, key)
            if value:
                out.print(labelled(f"{key.replace('_', ' '):>16}  ", value))
        if dispatch.error:
            _print_diagnosis("  error", dispatch.error.to_json())


def _print_diagnosis(title: str, error: dict[str, Any], *, gave_up: bool = False) -> None:
    kind = "permanent"
    if error.get("transient"):
        kind = "transient, but the attempts ran out" if gave_up else "transient"
    out.print(labelled(f"{title:>16}  ", f"{error['code']} ({kind})", label_style="bold red"))
    for key in ("stage", "reply", "cause", "fix"):
        if error.get(key):
            out.print(labelled(f"{key:>16}  ", str(error[key])))


@messages_app.command("retry")
def messages_retry(message_id: IdArg, config: ConfigOpt = None) -> None:
    """Queue an abandoned message again now, with its tenant's attempts and TTL afresh."""
    with user_errors():
        settings = with_api_tenants(settings_from(config))

        async def work(store: Store) -> Message:
            full = await resolve_message_id(store, message_id)
            return await message_service.retry(store, settings, full)

        message = run_with_store(settings, work)
        out.print(f"{message.id} queued again; `postroom worker --drain` or `serve` sends it")


@messages_app.command("cancel")
def messages_cancel(message_id: IdArg, config: ConfigOpt = None) -> None:
    """Abandon a queued message (code ``cancelled``) so that it is never sent."""
    with user_errors():
        settings = settings_from(config)

        async def work(store: Store) -> Message:
            full = await resolve_message_id(store, message_id)
            return await message_service.cancel(store, full)

        message = run_with_store(settings, work)
        out.print(f"{message.id} cancelled")


def _status_text(m: Message) -> str:
    if m.status is Status.QUEUED and m.waiting_for:
        return f"queued ({m.waiting_for.value})"
    return m.status.value


def _expose(settings: Settings, message: Message) -> bool:
    return tenant_service.exposes_bodies(settings, message.tenant)
