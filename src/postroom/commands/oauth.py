"""``postroom oauth login``: Microsoft's device-code sign-in for a mailbox whose tenant logs in
with ``courier.smtp.oauth2.flow: device_code`` (personal Outlook.com accounts, or any mailbox
without an app registration of its own).

Thin: the sign-in is :func:`~postroom.oauth.device.request_device_code` and
:func:`~postroom.oauth.device.poll_device_code`; where the refresh token is kept is
:mod:`postroom.store.refresh_tokens`. Exit codes: 0 signed in, 1 the sign-in failed (with the
diagnosis), 2 bad input or configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from postroom.commands.common import (
    ConfigOpt,
    err,
    out,
    plain,
    run_with_store,
    settings_from,
    user_errors,
)
from postroom.errors import ConfigError, InputError, OAuthError

if TYPE_CHECKING:
    from postroom.config.settings import CourierSettings, Settings
    from postroom.oauth.tokens import TokenAnswer
    from postroom.store import Tenants
# The sign-in itself (the transports, the diagnosis) is imported by the command that runs
# it, so that every other command starts faster.

oauth_app = typer.Typer(help="OAuth2 sign-in for SMTP logins with XOAUTH2.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``oauth`` (login) to ``app``."""
    app.add_typer(oauth_app, name="oauth")


@oauth_app.command("login")
def login(
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant whose mailbox signs in.")
    ] = "default",
    config: ConfigOpt = None,
) -> None:
    """Sign a mailbox in with Microsoft's device code and keep its refresh token, encrypted."""
    with user_errors():
        settings = settings_from(config)
        where = run_with_store(settings, lambda store: _login(settings, store, tenant))
    out.print(
        f"Signed in. The refresh token is stored encrypted {where}; the worker gets access "
        "tokens from it and keeps the newest one.",
        markup=False,
    )


async def _login(settings: Settings, store: Tenants, tenant: str) -> str:
    from postroom.config.secrets import transform_secrets
    from postroom.config.tenants import TenantRegistry
    from postroom.oauth.device import poll_device_code, request_device_code
    from postroom.store.refresh_tokens import StoredRefreshToken

    registry = TenantRegistry(settings, store)
    merged = await registry.settings()
    if tenant not in merged.tenant_names():
        raise InputError(
            f"unknown tenant {tenant!r}; known tenants: {', '.join(merged.tenant_names())}",
            field="--tenant",
        )
    courier = merged.tenant(tenant)
    _check_device_flow(courier, tenant)
    if not registry.crypter.available:
        raise ConfigError(
            "the refresh token is a credential and is stored encrypted, but no secret is "
            "configured; set secrets.default (or SECRETS_DEFAULT) to a random string of 32+ "
            "characters first",
            path="secrets.default",
        )
    oauth = courier.smtp.oauth2
    try:
        code = await request_device_code(oauth, timeout=courier.smtp.timeout)
        minutes = max(int(code.expires_in // 60), 1)
        # The address and the code come from the provider's answer: printed as plain text.
        out.print(
            plain(f"To sign in, open {code.verification_uri} and enter the code {code.user_code}")
        )
        user = courier.smtp.xoauth2_user()
        who = f" as {user}" if user else " as the mailbox that sends"
        err.print(
            f"Sign in{who}. Waiting for the sign-in (the code expires in {minutes} min)...",
            markup=False,
        )
        answer = await poll_device_code(oauth, code, timeout=courier.smtp.timeout)
    except OAuthError as exc:
        _failed(exc)
    refresh_token = _refresh_token(answer)
    if registry.is_file_tenant(tenant):
        keeper = StoredRefreshToken(store, registry.crypter, tenant, configured=oauth.refresh_token)
        await keeper.save(refresh_token)
        return "in the database (table oauth_tokens), since the configuration file is read-only"
    stored = await store.get_tenant(tenant)
    assert stored is not None  # an API tenant, listed a moment ago
    decrypted: dict[str, Any] = transform_secrets(stored.courier, registry.crypter.decrypt)
    decrypted.setdefault("smtp", {}).setdefault("oauth2", {})["refresh_token"] = refresh_token
    await registry.save(tenant, decrypted)
    return "in the tenant's settings (smtp.oauth2.refresh_token)"


def _check_device_flow(courier: CourierSettings, tenant: str) -> None:
    oauth = courier.smtp.oauth2
    if oauth.provider == "microsoft" and oauth.effective_flow == "device_code":
        return
    where = "courier" if tenant == "default" else f"tenants.{tenant}.courier"
    now = f"its oauth2 is {oauth.kind}" if oauth.configured else "it has no oauth2 settings"
    raise InputError(
        f"tenant {tenant!r} does not sign in with a device code ({now}); set "
        f"{where}.smtp.oauth2 to {{provider: microsoft, flow: device_code, client_id: <app "
        "id>}, or use client credentials, which need no sign-in",
        field="--tenant",
    )


def _refresh_token(answer: TokenAnswer) -> str:
    if not answer.refresh_token:
        raise InputError(
            "Microsoft signed the mailbox in but gave no refresh token, so the worker could "
            "not renew access; the scope must include offline_access (leave oauth2.scope out)",
            field="scope",
        )
    return answer.refresh_token


def _failed(exc: OAuthError) -> NoReturn:
    from postroom.diagnosis.classify import diagnose_error

    diagnosis = diagnose_error(exc)
    err.print(plain(f"error: the sign-in failed: {diagnosis.code}", "bold red"))
    if diagnosis.reply:
        err.print(plain(f"  reply  {diagnosis.reply}"))
    err.print(plain(f"  cause  {diagnosis.cause}"))
    err.print(plain(f"  fix    {diagnosis.fix}"))
    raise typer.Exit(1)
