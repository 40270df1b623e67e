"""The ``postroom`` command. Thin: parsing, printing and exit codes; the work is elsewhere.

Exit codes: 0 success, 1 the operation ran and failed, 2 bad usage or invalid input/config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from postroom.commands import (
    deliverability,
    diagnose,
    listener,
    messages,
    oauth,
    suppressions,
    templates,
)
from postroom.commands.common import (
    CONFIG_ENV,
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
from postroom.config.dev import dev_settings
from postroom.config.durations import check_at_most, parse_duration
from postroom.config.settings import MAX_RETENTION, MAX_TTL
from postroom.errors import InputError
from postroom.models import NewMessage, message_json
from postroom.service import tenants as tenant_service
from postroom.store import Store
from postroom.text import data_problem, terminal_safe

T = TypeVar("T")

app = typer.Typer(
    name="postroom",
    help="Postroom: the email courier for identity systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"postroom {version('postroom')}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    config: ConfigOpt = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print Postroom's version and exit.",
        ),
    ] = False,
) -> None:
    """Postroom: the email courier for identity systems. `--config FILE` works before the
    command too (`postroom --config postroom.yaml send ...`)."""
    if config is None:
        return
    # Every command's --config reads POSTROOM_CONFIG: the file given before the command
    # reaches it that way, and the environment is put back when the command ends.
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = str(config)

    def restore() -> None:
        if previous is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = previous

    ctx.call_on_close(restore)


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


@app.command()
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


# -- worker, migrate, serve ------------------------------------------------------------


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


@app.command()
def worker(
    drain: Annotated[
        bool, typer.Option("--drain", help="Deliver what is due now, then exit.")
    ] = False,
    max_wait: Annotated[
        str,
        typer.Option(
            "--max-wait", help="With --drain: also wait for retries due within this (e.g. 30s)."
        ),
    ] = "0s",
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, max=256, help="Sends in flight at once.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=1, max=65535, help="Serve /metrics on this port."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Deliver messages until stopped (SIGTERM finishes what is in flight)."""
    from postroom.config.tenants import TenantRegistry
    from postroom.metrics import Metrics
    from postroom.worker import Worker

    with user_errors():
        settings = settings_from(config)
        try:
            wait = check_at_most(parse_duration(max_wait), MAX_TTL)
        except ValueError as exc:
            raise InputError(str(exc), field="--max-wait") from None
        # A drain reports its own progress; the library's INFO lines would bury it.
        _log_to_stderr(default="WARNING" if drain else "INFO")

        async def work(store: Store) -> None:
            stop = asyncio.Event()
            _install_stop(stop)
            metrics = Metrics() if metrics_port else None
            gauge = None
            if metrics is not None and metrics_port is not None:
                from prometheus_client import start_http_server

                start_http_server(metrics_port, addr=settings.serve.host, registry=metrics.registry)
                gauge = asyncio.create_task(_update_queue_gauge(store, metrics))
            registry = TenantRegistry(settings, store)
            delivery = Worker(
                store, settings, concurrency=concurrency, tenants=registry, metrics=metrics
            )
            shown = None
            if drain and err.is_terminal:
                shown = asyncio.create_task(_drain_progress(delivery, await store.count_pending()))
            try:
                stats = await delivery.run(stop, drain=drain, max_wait=wait)
            finally:
                for task in (gauge, shown):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
            if drain:
                pending = await store.count_pending()
                out.print(
                    f"sent {stats.sent}, retrying {stats.retried}, abandoned {stats.abandoned}; "
                    f"{pending} still queued"
                )

        run_with_store(settings, work, delivers=True)


async def _drain_progress(delivery: Any, due: int) -> None:
    """A progress bar on the terminal while a drain works: messages finished (sent or
    abandoned) of those pending when it started; retries show in the description."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("delivering", total=max(due, 1))
        while True:
            stats = delivery.stats
            progress.update(
                task,
                completed=stats.sent + stats.abandoned,
                description=f"delivering (sent {stats.sent}, retrying {stats.retried})",
            )
            await asyncio.sleep(0.2)


async def _update_queue_gauge(store: Store, metrics: Any) -> None:
    while True:
        try:
            metrics.set_queue(await store.count_by_status())
            metrics.set_lanes(await store.lane_summary())
        except Exception:  # the next round tries again; a gauge must not stop the worker
            logging.getLogger("postroom.worker").debug("queue gauge update failed", exc_info=True)
        await asyncio.sleep(5)


@app.command()
def cleanup(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Delete sent and abandoned messages older than this (e.g. 30d); "
            "default: each tenant's courier.retention.",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Delete sent and abandoned messages past the retention period (serve does it daily)."""
    from postroom.worker.retention import cleanup as run_cleanup

    with user_errors():
        settings = with_api_tenants(settings_from(config))
        age = None
        if older_than is not None:
            try:
                age = check_at_most(parse_duration(older_than), MAX_RETENTION)
            except ValueError as exc:
                raise InputError(str(exc), field="--older-than") from None
        deleted = run_with_store(
            settings, lambda store: run_cleanup(store, settings, older_than=age)
        )
        out.print(f"deleted {deleted} finished message(s)")


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the database schema."""
    with user_errors():
        settings = settings_from(config)

        async def work(store: Store) -> None:
            return None

        run_with_store(settings, work, delivers=True)
        out.print("schema is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any).")
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not deliver in this process.")
    ] = False,
    dev: Annotated[
        bool, typer.Option("--dev", help="Development: loopback only, no sign-in, bodies shown.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Run the HTTP API, dashboard and health checks, with a worker in-process."""
    from postroom.intake.smtp_listener import bind_sockets, listener_banner
    from postroom.web.app import create_app
    from postroom.web.server import bind as bind_socket
    from postroom.web.server import check_listen, run_server

    with user_errors():
        settings = settings_from(config)
        bind = host or settings.serve.host
        listen_port = settings.serve.port if port is None else port
        check_listen(bind, dev=dev, admin_token=settings.serve.admin_token)
        notes: list[str] = []
        if dev:
            settings, notes = dev_settings(settings)
        sock = bind_socket(bind, listen_port)  # the banner comes once the port is ours
        listen_port = sock.getsockname()[1]
        _log_to_stderr()
        admin_token = settings.serve.admin_token
        if not dev and not admin_token:
            admin_token = secrets.token_urlsafe(32)
            err.print(
                "No serve.admin_token is configured; this run's admin token (shown once) is:\n"
                f"  {admin_token}"
            )
        smtp_sockets = (
            bind_sockets(settings, dev=dev) if dev or settings.listener.smtp_enabled else []
        )
        shown = f"[{bind}]" if ":" in bind else bind
        err.print(
            f"Postroom {'(dev) ' if dev else ''}listening on http://{shown}:{listen_port}/ "
            f"- dashboard: http://{shown}:{listen_port}/ - delivery: {settings.courier.strategy}"
        )
        for note in notes:
            err.print(f"  dev: {note}")
        for line in listener_banner(settings, smtp_sockets, dev=dev):
            err.print(line)
        application = create_app(
            settings,
            run_worker=not no_worker,
            dev=dev,
            admin_token=admin_token,
            smtp_sockets=smtp_sockets,
        )
        run_server(application, sock=sock)


class _TerminalSafeFormatter(logging.Formatter):
    """Log lines quote servers and callers: their control characters are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), keep_newlines=True)


def _log_to_stderr(*, default: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalSafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=os.environ.get("POSTROOM_LOG_LEVEL", default).upper(), handlers=[handler]
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


for register in (
    messages.register,
    diagnose.register,
    oauth.register,
    listener.register,
    deliverability.register,
    templates.register,
    suppressions.register,
):
    register(app)


def _refuse_undecodable(argv: list[str]) -> None:
    """Exit 2 naming the option when an argument is not UTF-8 (Python holds such bytes as
    lone surrogates, which no database, header or terminal takes)."""
    for index, arg in enumerate(argv):
        found = data_problem(arg)
        if found is None:
            continue
        if arg.startswith("-"):
            option = arg.split("=", 1)[0]
        elif index and argv[index - 1].startswith("-"):
            option = argv[index - 1]
        else:
            option = f"argument {index + 1}"
        err.print(labelled("error: ", f"{option}: {found[1]}", label_style="bold red"))
        sys.exit(2)


def main() -> None:
    """Console-script entry point."""
    _refuse_undecodable(sys.argv[1:])
    app()


if __name__ == "__main__":
    main()
