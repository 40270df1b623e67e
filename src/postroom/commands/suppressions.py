"""``postroom suppressions list|remove``: the addresses each tenant no longer mails after a
hard bounce or a spam complaint, and taking one off the list once it works again.

Exit codes: 0 done, 1 nothing to remove, 2 bad input or configuration.
"""

from __future__ import annotations

from typing import Annotated

import typer

from postroom.commands.common import (
    ConfigOpt,
    JsonOpt,
    out,
    print_json,
    run_with_store,
    settings_from,
    user_errors,
)
from postroom.errors import NotFoundError
from postroom.store import Store, utcnow
from postroom.store.events_base import Suppression
from postroom.store.records import events_of
from postroom.text import terminal_safe

suppressions_app = typer.Typer(
    help="The suppression list: addresses not mailed after a hard bounce or a complaint.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``suppressions`` (list, remove) to ``app``."""
    app.add_typer(suppressions_app, name="suppressions")


@suppressions_app.command("list")
def list_command(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: every one).")
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Part of an address, e.g. a domain.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100000)] = 100,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List suppressed addresses, newest first, with why and until when."""
    with user_errors():
        settings = settings_from(config)

        async def work(store: Store) -> list[Suppression]:
            return await events_of(store).list_suppressions(
                tenant, search=search, now=utcnow(), limit=limit
            )

        found = run_with_store(settings, work)
        if as_json:
            print_json([s.to_json() for s in found])
            return
        if not found:
            out.print("no suppressed addresses")
            return
        for entry in found:
            until = entry.expires_at.isoformat(timespec="seconds") if entry.expires_at else "never"
            out.print(
                terminal_safe(
                    f"{entry.tenant}  {entry.address}  {entry.event}  expires {until}\n"
                    f"    {entry.reason}",
                    keep_newlines=True,
                ),
                markup=False,
            )


@suppressions_app.command("remove")
def remove_command(
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="The address to mail again.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant.")] = "default",
    config: ConfigOpt = None,
) -> None:
    """Take an address off a tenant's suppression list, so that it is mailed again."""
    with user_errors():
        settings = settings_from(config)

        async def work(store: Store) -> bool:
            return await events_of(store).remove_suppression(tenant, address)

        if not run_with_store(settings, work):
            raise NotFoundError(f"{address} is not suppressed for tenant {tenant!r}")
        out.print(terminal_safe(f"{address} will be mailed again (tenant {tenant})"), markup=False)
