"""The commands that run Postroom itself: ``serve`` (API, dashboard, listener, worker),
``worker`` (deliver until stopped, or ``--drain``), ``migrate`` and ``cleanup``; and the log
lines they write to stderr.

Exit codes: 0 done, 1 the operation failed, 2 bad input or configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from postroom.commands.common import (
    ConfigOpt,
    err,
    out,
    run_with_store,
    settings_from,
    user_errors,
    with_api_tenants,
)
from postroom.config.dev import dev_settings
from postroom.config.durations import check_at_most, parse_duration
from postroom.config.settings import MAX_RETENTION, MAX_TTL
from postroom.errors import InputError
from postroom.store import Store
from postroom.text import terminal_safe


def register(app: typer.Typer) -> None:
    """Add ``worker``, ``cleanup``, ``migrate`` and ``serve`` to ``app``."""
    for command in (worker, cleanup, migrate, serve):
        app.command()(command)


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


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


def migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the database schema."""
    with user_errors():
        settings = settings_from(config)

        async def work(store: Store) -> None:
            return None

        run_with_store(settings, work, delivers=True)
        out.print("schema is up to date")


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
    from postroom.intake.listener_sockets import bind_sockets, listener_banner
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
