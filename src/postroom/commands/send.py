"""``postroom send``: enqueue one message from options, or a JSON Lines file of them
(``--bulk``) with a progress bar, refusing or skipping invalid lines as asked.

Exit codes: 0 enqueued, 1 the store failed, 2 bad input or configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from postroom.commands.common import (
    ConfigOpt,
    JsonOpt,
    err,
    labelled,
    out,
    print_json,
    run_with_store,
    settings_from,
    user_errors,
    with_api_tenants,
)
from postroom.config import Settings
from postroom.errors import InputError
from postroom.models import NewMessage, message_json
from postroom.service import tenants as tenant_service
from postroom.store import Store


def register(app: typer.Typer) -> None:
    """Add ``send`` to ``app``."""
    app.command()(send)


def _parse_data(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    from postroom.intake.validate import parse_json

    value = parse_json(raw, field="--data", hint="""; write it like '{"login_code": "123456"}'""")
    if not isinstance(value, dict):
        raise InputError('must be a JSON object, like \'{"login_code": "123456"}\'', field="--data")
    return value


def _read_bulk(
    path: Path, skip_invalid: bool, settings: Settings, priority: str
) -> list[NewMessage]:
    """Validate and render every line; refuse the file (or skip bad lines) as asked."""
    from postroom.intake.bulk import read_bulk

    read = read_bulk(path, settings, priority=priority)
    if read.bad and not skip_invalid:
        listing = "\n  ".join(read.bad)
        raise InputError(
            f"{len(read.bad)} invalid line(s), nothing was enqueued "
            f"(fix them, or pass --skip-invalid to enqueue the valid ones):\n  {listing}",
            field=str(path),
        )
    for line in read.bad:
        err.print(labelled("skipped ", line, label_style="yellow"))
    return read.good


def send(
    to: Annotated[str | None, typer.Option("--to", help="Recipient address.")] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="Template type, e.g. login_code_valid.")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Template data as a JSON object.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Subject (without --template).")
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="Plain-text body (without --template).")
    ] = None,
    html: Annotated[
        str | None, typer.Option("--html", help="HTML body (optional, with --text).")
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant (realm or project).")] = "default",
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="The same key never enqueues twice.")
    ] = None,
    locale: Annotated[
        str | None,
        typer.Option(
            "--locale",
            help="Language of the message (BCP 47: de, pt-BR, zh-Hans).",
        ),
    ] = None,
    bulk: Annotated[
        Path | None,
        typer.Option("--bulk", help="JSON Lines file: one message per line.", dir_okay=False),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="With --bulk: enqueue the valid lines anyway.")
    ] = False,
    priority: Annotated[
        str | None,
        typer.Option(
            "--priority",
            help="urgent, normal or bulk (default: by template type; bulk with --bulk, where "
            "a line's own priority key wins).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Enqueue a message (or a JSON Lines file of them) and print its id."""
    with user_errors():
        settings = with_api_tenants(settings_from(config))
        if bulk is not None:
            if to or template or subject or text or locale:
                raise InputError("give either --bulk or a single message, not both", field="--bulk")
            _send_bulk(settings, bulk, skip_invalid, priority or "bulk")
            return
        if to is None:
            raise InputError("is required, e.g. --to you@example.org", field="--to")
        if template is None and (subject is None or text is None):
            raise InputError(
                "give --template TYPE [--data JSON], or --subject S --text T", field="--template"
            )
        from postroom.intake import SendRequest, enqueue

        request = SendRequest(
            to=to,
            template_type=template,
            data=_parse_data(data),
            subject=subject,
            text=text,
            html=html,
            tenant=tenant,
            idempotency_key=idempotency_key,
            priority=priority,
            locale=locale,
        )
        message, _created = run_with_store(
            settings, lambda store: enqueue(store, settings, [request])
        )[0]
        if as_json:
            print_json(
                message_json(
                    message, expose_bodies=tenant_service.exposes_bodies(settings, message.tenant)
                )
            )
        else:
            sys.stdout.write(message.id + "\n")


def _send_bulk(settings: Settings, path: Path, skip_invalid: bool, priority: str) -> None:
    from postroom.intake import enqueue_prepared
    from postroom.intake.bulk import ttl_warnings

    prepared = _read_bulk(path, skip_invalid, settings, priority)
    for warning in ttl_warnings(prepared, settings):
        err.print(labelled("warning ", warning, label_style="yellow"))
    chunk = 500

    async def work(store: Store) -> tuple[int, int, int]:
        done = created = suppressed = 0
        with Progress(
            TextColumn("enqueueing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("enqueue", total=len(prepared))
            for start in range(0, len(prepared), chunk):
                batch = prepared[start : start + chunk]
                stored = await enqueue_prepared(store, settings, batch, bulk=True)
                suppressed += len(batch) - len(stored)
                done += len(batch)
                created += sum(1 for _message, new in stored if new)
                progress.update(task, completed=done)
        return done, created, suppressed

    count, created, suppressed = run_with_store(settings, work)
    known = count - created - suppressed
    again = f"; {known} already enqueued under the same idempotency key" if known else ""
    left = (
        f"; {suppressed} left out: the address is on the suppression list "
        "(see `postroom suppressions list`)"
        if suppressed
        else ""
    )
    out.print(f"enqueued {created} message(s){again}{left}")
