"""The ``postroom`` command. Thin: parsing, printing and exit codes; the work is elsewhere.

Exit codes: 0 success, 1 the operation ran and failed, 2 bad usage or invalid input/config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from postroom.config import Settings, load_settings
from postroom.config.durations import check_at_most, parse_duration
from postroom.config.settings import MAX_RETENTION, MAX_TTL
from postroom.errors import ConfigError, InputError, NotFoundError, PostroomError
from postroom.models import Message, NewMessage, Status, message_json
from postroom.store import MessageFilter, Store, open_store
from postroom.text import data_problem, json_terminal_safe, terminal_safe

T = TypeVar("T")

app = typer.Typer(
    name="postroom",
    help="Postroom: the email courier for identity systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
messages_app = typer.Typer(
    help="Inspect messages and their delivery attempts.", no_args_is_help=True
)
app.add_typer(messages_app, name="messages")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="POSTROOM_CONFIG",
        help="YAML configuration file (default: ./postroom.yaml when present).",
        dir_okay=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def plain(text: str, style: str = "", *, lines: bool = False) -> Text:
    """``text`` for Rich to print as it is: no markup, no emoji codes, and every control
    character escaped (:func:`~postroom.text.terminal_safe`); with ``lines``, line breaks
    stay. Every command prints text that came from outside (a server reply, a stored
    subject, a file's line) through this."""
    return Text(terminal_safe(text, keep_newlines=lines), style=style)


def labelled(
    label: str, text: str, *, style: str = "", label_style: str = "", lines: bool = False
) -> Text:
    """``label`` (ours, styled) followed by outside ``text`` shown with :func:`plain`."""
    return Text.assemble(Text(label, style=label_style), plain(text, style, lines=lines))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and exit."""
    err.print(labelled("error: ", message, label_style="bold red", lines=True))
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn Postroom's errors into a clear line and an exit code instead of a traceback."""
    try:
        yield
    except (ConfigError, InputError) as exc:
        fail(str(exc), 2)
    except NotFoundError as exc:
        fail(str(exc), 1)
    except PostroomError as exc:
        fail(str(exc), 1)


def settings_from(config: Path | None) -> Settings:
    """Load the configuration and print its warnings to stderr."""
    loaded = load_settings(config)
    for warning in loaded.warnings:
        err.print(labelled("warning: ", warning, label_style="yellow"))
    return loaded.settings


def run_with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, bring the schema up to date, run ``work``, close."""

    async def main() -> T:
        store = open_store(settings.dsn)
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.close()

    return run_async(main())


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop where it is installed (faster sockets), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(coro)
    return uvloop.run(coro)


def with_api_tenants(settings: Settings) -> Settings:
    """The settings plus the tenants saved through the admin API (a warning on stderr for
    each saved tenant that cannot be used, and why)."""
    from postroom.config.tenants import TenantRegistry

    async def load(store: Store) -> tuple[Settings, dict[str, str]]:
        registry = TenantRegistry(settings, store)
        merged = await registry.settings()
        return merged, registry.broken_tenants()

    merged, broken = run_with_store(settings, load)
    for name, reason in broken.items():
        err.print(
            f"[yellow]warning:[/] tenant {name} cannot be used: {escape(reason)}", markup=True
        )
    return merged


def print_json(value: Any) -> None:
    """Print JSON to stdout, unstyled; characters a terminal acts on are ``\\u`` escapes."""
    sys.stdout.write(json_terminal_safe(json.dumps(value, indent=2, ensure_ascii=False)) + "\n")


# -- send ----------------------------------------------------------------------------


def _parse_data(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    from postroom.intake.validate import parse_json

    value = parse_json(raw, field="--data", hint="""; write it like '{"login_code": "123456"}'""")
    if not isinstance(value, dict):
        raise InputError('must be a JSON object, like \'{"login_code": "123456"}\'', field="--data")
    return value


def _read_bulk(path: Path, skip_invalid: bool, settings: Settings) -> list[NewMessage]:
    """Validate and render every line; refuse the file (or skip bad lines) as asked."""
    from postroom.intake.bulk import read_bulk

    read = read_bulk(path, settings)
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
    bulk: Annotated[
        Path | None,
        typer.Option("--bulk", help="JSON Lines file: one message per line.", dir_okay=False),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="With --bulk: enqueue the valid lines anyway.")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Enqueue a message (or a JSON Lines file of them) and print its id."""
    with user_errors():
        settings = with_api_tenants(settings_from(config))
        if bulk is not None:
            if to or template or subject or text:
                raise InputError("give either --bulk or a single message, not both", field="--bulk")
            _send_bulk(settings, bulk, skip_invalid)
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
        )
        courier = settings.tenant(tenant) if tenant in settings.tenant_names() else None
        message, _created = run_with_store(
            settings, lambda store: enqueue(store, settings, [request])
        )[0]
        if as_json:
            expose = bool(courier and courier.expose_message_bodies)
            print_json(message_json(message, expose_bodies=expose))
        else:
            sys.stdout.write(message.id + "\n")


def _send_bulk(settings: Settings, path: Path, skip_invalid: bool) -> None:
    from postroom.intake import enqueue_prepared

    prepared = _read_bulk(path, skip_invalid, settings)
    chunk = 500

    async def work(store: Store) -> tuple[int, int]:
        done = created = 0
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
                stored = await enqueue_prepared(store, settings, batch)
                done += len(batch)
                created += sum(1 for _message, new in stored if new)
                progress.update(task, completed=done)
        return done, created

    count, created = run_with_store(settings, work)
    known = count - created
    again = f"; {known} already enqueued under the same idempotency key" if known else ""
    out.print(f"enqueued {created} message(s){again}")


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
        _log_to_stderr()

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
            try:
                stats = await Worker(
                    store, settings, concurrency=concurrency, tenants=registry, metrics=metrics
                ).run(stop, drain=drain, max_wait=wait)
            finally:
                if gauge is not None:
                    gauge.cancel()
            if drain:
                pending = await store.count_pending()
                out.print(
                    f"sent {stats.sent}, retrying {stats.retried}, abandoned {stats.abandoned}; "
                    f"{pending} still queued"
                )

        run_with_store(settings, work)


async def _update_queue_gauge(store: Store, metrics: Any) -> None:
    while True:
        try:
            metrics.set_queue(await store.count_by_status())
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

        run_with_store(settings, work)
        out.print("schema is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on.")] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not deliver in this process.")
    ] = False,
    dev: Annotated[
        bool, typer.Option("--dev", help="Development: loopback only, no sign-in, bodies shown.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Run the HTTP API, dashboard and health checks, with a worker in-process."""
    from postroom.web.app import create_app
    from postroom.web.server import check_listen, run_server

    with user_errors():
        settings = settings_from(config)
        bind = host or settings.serve.host
        listen_port = settings.serve.port if port is None else port
        check_listen(bind, dev=dev, admin_token=settings.serve.admin_token)
        _log_to_stderr()
        admin_token = settings.serve.admin_token
        if not dev and not admin_token:
            admin_token = secrets.token_urlsafe(32)
            err.print(
                "No serve.admin_token is configured; this run's admin token (shown once) is:\n"
                f"  {admin_token}"
            )
        err.print(
            f"Postroom {'(dev) ' if dev else ''}listening on http://{bind}:{listen_port}/ "
            f"- dashboard: http://{bind}:{listen_port}/ - delivery: {settings.courier.strategy}"
        )
        application = create_app(
            settings, run_worker=not no_worker, dev=dev, admin_token=admin_token
        )
        run_server(application, host=bind, port=listen_port)


class _TerminalSafeFormatter(logging.Formatter):
    """Log lines quote servers and callers: their control characters are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), keep_newlines=True)


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalSafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=os.environ.get("POSTROOM_LOG_LEVEL", "INFO").upper(), handlers=[handler]
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


# -- messages --------------------------------------------------------------------------


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
        rows = run_with_store(settings, lambda store: store.list_messages(query))
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
        message = run_with_store(settings, lambda store: store.get(message_id))
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
    try:
        return settings.tenant(message.tenant).expose_message_bodies
    except KeyError:
        return False


from postroom.commands.deliverability import register as _register_deliverability  # noqa: E402
from postroom.commands.diagnose import register as _register_diagnose  # noqa: E402
from postroom.commands.oauth import register as _register_oauth  # noqa: E402

_register_diagnose(app)
_register_oauth(app)
_register_deliverability(app)


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
