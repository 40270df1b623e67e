"""``postroom dkim generate|activate|list`` and ``postroom doctor``: DKIM keys and the DNS
check of a sender domain. Thin: the work is in :mod:`postroom.deliverability.service`.

Exit codes: 0 success, 1 the operation ran and failed (a check failed, a record is not
published), 2 bad usage or configuration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from postroom.commands.common import (
    ConfigOpt,
    JsonOpt,
    fail,
    labelled,
    out,
    plain,
    print_json,
    run_with_store,
    settings_from,
    user_errors,
    with_api_tenants,
)

if TYPE_CHECKING:
    from postroom.deliverability.checks import Report
    from postroom.deliverability.dkim import Algorithm
    from postroom.store import Store

dkim_app = typer.Typer(
    help="DKIM keys made by Postroom: generate, publish, activate, list.", no_args_is_help=True
)

TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant whose key it is.")]
SelectorOpt = Annotated[
    str, typer.Option("--selector", help="The key's name in DNS: <selector>._domainkey.<domain>.")
]
NameserverOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--nameserver",
        help="Ask this resolver, HOST[:PORT] (repeatable; default: dns.nameservers, else the "
        "system's).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``dkim`` (generate, activate, list) and ``doctor`` to ``app``."""
    app.add_typer(dkim_app, name="dkim")
    app.command("doctor")(doctor_command)


@dkim_app.command("generate")
def generate_command(
    tenant: TenantOpt = "default",
    selector: SelectorOpt = "postroom1",
    algorithm: Annotated[
        str, typer.Option("--algorithm", help="rsa (2048 bits, verified everywhere) or ed25519.")
    ] = "rsa",
    config: ConfigOpt = None,
) -> None:
    """Make a key for a tenant, store it encrypted and inactive, and print its DNS record."""
    from postroom.config.dkim import DkimSettings
    from postroom.deliverability.service import generate

    with user_errors():
        try:
            selector = DkimSettings(domain="example.org", selector=selector).selector or ""
        except ValueError as exc:
            fail(f"--selector: {str(exc).splitlines()[-1].strip()}")
        names: dict[str, Algorithm] = {
            "rsa": "rsa-sha256",
            "rsa-sha256": "rsa-sha256",
            "ed25519": "ed25519-sha256",
            "ed25519-sha256": "ed25519-sha256",
        }
        if algorithm not in names:
            fail(f"--algorithm: {algorithm!r} is not one; use rsa or ed25519")
        name = names[algorithm]
        settings = with_api_tenants(settings_from(config))
        stored, record = run_with_store(
            settings, lambda store: generate(store, settings, tenant, selector, name)
        )
    out.print(
        f"Made {name} key {stored.selector!r} for tenant {tenant} ({stored.domain}); it is "
        "stored encrypted and not used yet. Publish this DNS record:",
        markup=False,
    )
    out.print()
    out.print(record, markup=False, soft_wrap=True)
    out.print()
    out.print(
        f"Then switch signing to it: postroom dkim activate --tenant {tenant} --selector "
        f"{stored.selector}",
        markup=False,
    )


@dkim_app.command("activate")
def activate_command(
    tenant: TenantOpt = "default",
    selector: SelectorOpt = "postroom1",
    nameserver: NameserverOpt = None,
    skip_dns_check: Annotated[
        bool,
        typer.Option(
            "--skip-dns-check", help="Activate without checking that the record is published."
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Sign the tenant's mail with this key from now on, once its DNS record is published."""
    from postroom.deliverability.service import published, record_of

    with user_errors():
        settings = with_api_tenants(settings_from(config))

        async def work(store: Store) -> str | None:
            keys = {k.selector: k for k in await store.list_dkim_keys(tenant)}
            key = keys.get(selector)
            if key is None:
                known = ", ".join(keys) or "none"
                fail(
                    f"tenant {tenant!r} has no DKIM key {selector!r} (its keys: {known}); make "
                    f"one with postroom dkim generate --tenant {tenant} --selector {selector}",
                    1,
                )
            if not skip_dns_check:
                check = await published(settings, key, nameservers=nameserver)
                if check.status != "ok":
                    return f"{check.message}; {check.fix or ''}\n{record_of(key)}"
            await store.activate_dkim_key(tenant, selector)
            return None

        problem = run_with_store(settings, work)
    if problem is not None:
        fail(
            f"not activated: {problem}\nPublish it, wait for DNS to carry it, and run this "
            "again (or add --skip-dns-check if this resolver cannot see it)",
            1,
        )
    out.print(f"Tenant {tenant} now signs with key {selector!r}.", markup=False)


@dkim_app.command("list")
def list_command(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Every stored DKIM key: tenant, selector, algorithm, domain, state and age."""
    with user_errors():
        settings = settings_from(config)
        keys = run_with_store(settings, lambda store: store.list_dkim_keys(tenant))
    now = datetime.now(UTC)
    rows = [
        {
            "tenant": k.tenant,
            "selector": k.selector,
            "algorithm": k.algorithm,
            "domain": k.domain,
            "state": k.state,
            "created_at": k.created_at.isoformat(),
            "activated_at": k.activated_at.isoformat() if k.activated_at else None,
            "age_days": (now - k.created_at).days,
        }
        for k in keys
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No DKIM keys stored. Make one with postroom dkim generate.", markup=False)
        return
    table = Table("tenant", "selector", "algorithm", "domain", "state", "age", box=None)
    for row in rows:
        table.add_row(
            *(plain(str(row[c])) for c in ("tenant", "selector", "algorithm", "domain", "state")),
            f"{row['age_days']} d",
        )
    out.print(table)


def doctor_command(
    domain: Annotated[str, typer.Option("--domain", help="The sender domain to check.")],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Check for this tenant's provider and DKIM key."),
    ] = None,
    nameserver: NameserverOpt = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Budget of each DNS lookup (default 2s).")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Check a sender domain's SPF, DKIM, DMARC, MX, MTA-STS and TLS-RPT, and say exactly
    which DNS records to change. Exit 0 when nothing fails, 1 when a check fails."""
    from postroom.config.durations import parse_duration
    from postroom.deliverability.service import doctor

    with user_errors():
        try:
            budget = parse_duration(timeout) if timeout else None
        except ValueError as exc:
            fail(f"--timeout: {exc}")
        settings = with_api_tenants(settings_from(config))
        report = run_with_store(
            settings,
            lambda store: doctor(
                store, settings, domain, tenant=tenant, nameservers=nameserver, timeout=budget
            ),
        )
    if as_json:
        print_json(report.to_json())
    else:
        print_report(report)
    raise typer.Exit(1 if report.failed else 0)


STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def print_report(report: Report) -> None:
    """Each check on a line with its status, then its fix, then the verdict."""
    for check in report.checks:
        out.print(
            Text.assemble(
                Text(f"{check.status:<5}", style=STYLE[check.status]),
                Text(f"{check.name:<12}"),
                plain(check.message),
            )
        )
        if check.fix and check.status != "ok":
            out.print(labelled("      fix  ", check.fix, label_style="dim"))
    out.print(plain(report.verdict()))
