"""``postroom listener``: logins of the SMTP listener, password hashes for the configuration
file, and the log of refused submissions (why Keycloak's "Test connection" failed).

Exit codes: 0 done, 1 the operation failed (a taken username, an unknown tenant), 2 bad input
or configuration.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from postroom.commands.common import (
    ConfigOpt,
    JsonOpt,
    out,
    plain,
    print_json,
    run_with_store,
    settings_from,
    user_errors,
)
from postroom.config.listener import Priority
from postroom.config.passwords import MIN_CHOSEN_LENGTH, scrypt_hash
from postroom.errors import InputError

if TYPE_CHECKING:
    from postroom.config.settings import Settings
    from postroom.service.smtp_logins import NewLogin
    from postroom.store import Store
# The tenant registry (and what it imports) is loaded by the command that needs it, so that
# every other command starts faster.

listener_app = typer.Typer(
    help="The SMTP submission listener: logins, password hashes, refusals.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``listener`` (add-login, hash-password, log) to ``app``."""
    app.add_typer(listener_app, name="listener")


@listener_app.command("add-login")
def add_login(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant whose mail it sends.")],
    username: Annotated[
        str | None, typer.Option("--username", help="Username (default: TENANT-xxxxxx).")
    ] = None,
    priority: Annotated[
        str, typer.Option("--priority", help="Priority of its mail: urgent, normal or bulk.")
    ] = "urgent",
    config: ConfigOpt = None,
) -> None:
    """Make a login with a generated password (shown once). A tenant of the configuration
    file gets the lines to paste there; a tenant saved through the API gets it saved."""
    with user_errors():
        if priority not in ("urgent", "normal", "bulk"):
            raise InputError("write urgent, normal or bulk", field="--priority")
        settings = settings_from(config)

        from postroom.config.tenants import TenantRegistry
        from postroom.service.smtp_logins import connection_settings, create_login

        async def work(store: Store) -> tuple[NewLogin, Settings]:
            registry = TenantRegistry(settings, store)
            chosen: Priority = priority  # type: ignore[assignment]
            login = await create_login(registry, tenant, username=username, priority=chosen)
            return login, await registry.settings()

        login, merged = run_with_store(settings, work)
        connection = connection_settings(merged, tenant)
    _print_login(login, tenant, connection)


def _print_login(login: NewLogin, tenant: str, connection: dict[str, Any]) -> None:
    out.print(plain(f"username  {login.username}"))
    out.print(plain(f"password  {login.password}"), soft_wrap=True)
    out.print("(the password is shown this once; Postroom keeps only a hash)", style="dim")
    if not login.saved:
        out.print()
        out.print(
            plain(
                f"Tenant {tenant!r} comes from the configuration file: add these lines there "
                "and restart `postroom serve`:"
            )
        )
        out.print(plain(login.yaml(tenant), lines=True))
    out.print()
    if not connection["enabled"]:
        out.print(
            "The listener is off: configure listener.smtp (host, port, cert_path, key_path).",
            style="yellow",
        )
    out.print(
        plain(
            f"SMTP client settings: host {connection['host']}, port {connection['port']}, "
            f"encryption {connection['encryption']}, authentication on, "
            f"username {login.username}"
        )
    )


@listener_app.command("hash-password")
def hash_password(
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from standard input.")
    ] = False,
    config: ConfigOpt = None,  # taken like every command's; a hash needs no settings
) -> None:
    """Print the scrypt hash of a password you chose, for courier.listener.logins[].password."""
    with user_errors():
        if stdin or not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        if len(password) < MIN_CHOSEN_LENGTH:
            raise InputError(
                f"is shorter than {MIN_CHOSEN_LENGTH} characters; choose a longer one",
                field="password",
            )
        out.print(scrypt_hash(password), soft_wrap=True)


@listener_app.command("log")
def refusal_log(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 20,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The newest refusals of the SMTP listener: when, client address, reply and why."""
    with user_errors():
        settings = settings_from(config)

        async def work(store: Store) -> list[dict[str, Any]]:
            return [r.to_json() for r in await store.list_refusals(limit)]

        rows = run_with_store(settings, work)
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print("no refusals")
        return
    table = Table("at", "client", "reply", "reason", "username")
    for row in rows:
        table.add_row(
            row["at"][:19],
            plain(row["client"]),
            plain(row["reply"]),
            plain(row["reason"]),
            plain(row["username"] or ""),
        )
    out.print(table)
