"""What every CLI command shares: the consoles, the ``--config`` and ``--json`` options, the
turning of Postroom's errors into one clear line and an exit code, loading the settings and
running work against the store."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy.engine import make_url

from postroom.config import Settings, load_settings
from postroom.errors import ConfigError, InputError, NotFoundError, PostroomError
from postroom.store import Store, open_store
from postroom.text import json_terminal_safe, terminal_safe

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

CONFIG_ENV = "POSTROOM_CONFIG"
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar=CONFIG_ENV,
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


_notes: list[Text] = []  # printed once the command has succeeded


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn Postroom's errors into a clear line and an exit code instead of a traceback;
    after a success, print the notes the command collected."""
    try:
        yield
        for note in _notes:
            err.print(note)
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


def _new_sqlite_file(dsn: str) -> Path | None:
    """The SQLite file ``dsn`` names when it does not exist yet (opening creates it)."""
    if not dsn.startswith("sqlite"):
        return None
    database = make_url(dsn).database
    if not database or database == ":memory:":
        return None
    path = Path(database)
    return None if path.exists() else path


def run_with_store(
    settings: Settings, work: Callable[[Store], Awaitable[T]], *, delivers: bool = False
) -> T:
    """Open the store, bring the schema up to date, run ``work``, close. A command that
    creates the database says so, and (unless it ``delivers`` itself) that no server or
    worker uses it yet."""
    created = _new_sqlite_file(settings.dsn)
    if created is not None and delivers:
        err.print(labelled("note: ", f"created a new database {created.resolve()}"))
    elif created is not None:  # said when the command succeeds (see user_errors)
        _notes.append(
            labelled(
                "note: ",
                f"created a new database {created.resolve()}; no `postroom serve` or "
                "`postroom worker` has used it yet, so nothing here is delivered until one "
                "runs with it (run commands where the server runs, or give the same "
                "--config / DSN)",
                label_style="yellow",
            )
        )

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
