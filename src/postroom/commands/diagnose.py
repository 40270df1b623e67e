"""``postroom presets``, ``postroom test-smtp`` and ``postroom explain``: set-up help and
diagnosis on the command line. Thin: the work is in ``postroom.presets`` and
``postroom.diagnosis``; this module parses, prints and picks the exit code (0 success, 1 the
test ran and failed, 2 bad input).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.measure import Measurement
from rich.table import Column, Table

from postroom.commands.common import (
    ConfigOpt,
    JsonOpt,
    err,
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
from postroom.config.settings import CourierSettings
from postroom.diagnosis.explain import STAGES, Explanation, explain_text
from postroom.errors import InputError
from postroom.store import Tenants
from postroom.store.refresh_tokens import refresh_token_keeper

if TYPE_CHECKING:
    from postroom.presets import Preset
    from postroom.transports.smtp_probe import SmtpTestReport
# The presets and test-smtp (with the template renderer) are imported by the commands that
# use them, so that every other command starts faster.

presets_app = typer.Typer(
    help="Provider presets: settings, limits and set-up steps, and their connection URIs.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``presets`` (list, show, uri), ``test-smtp`` and ``explain`` to ``app``."""
    app.add_typer(presets_app, name="presets")
    app.command("test-smtp")(smtp_test_command)
    app.command("explain")(explain)


def _plain(text: str, *, style: str = "", stderr: bool = False, lines: bool = False) -> None:
    """Print text as it is (see ``cli.plain``): server replies contain brackets that are not
    markup, and may contain control characters meant for the terminal."""
    (err if stderr else out).print(plain(text, style, lines=lines))


def _warn(text: str) -> None:
    err.print(labelled("warning: ", text, label_style="yellow"))


# -- presets ------------------------------------------------------------------------------


@presets_app.command("list")
def presets_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List the provider presets."""
    from postroom.presets import PRESETS

    if as_json:
        print_json([preset.to_json() for preset in PRESETS.values()])
        return
    table = Table(
        Column("name", no_wrap=True),
        "kind",
        Column("host", no_wrap=True),
        "default limits",
        box=None,
        pad_edge=False,
    )
    for preset in PRESETS.values():
        where = f"{preset.host}:{preset.port}" if preset.host and preset.port else ""
        limits = "; ".join(limit.describe() for limit in preset.rate_limits)
        table.add_row(preset.name, preset.kind, where, limits)
    if not out.is_terminal:
        # In a pipe there is no width to fit: print every row whole.
        out.width = max(
            out.width, Measurement.get(out, out.options.update_width(1000), table).maximum
        )
    out.print(table)


@presets_app.command("show")
def presets_show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A preset name (presets list).")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show a preset: host, port, security, username format, limits, set-up steps, notes."""
    from postroom.presets import get_preset

    with user_errors():
        preset = get_preset(name)
    if as_json:
        print_json(preset.to_json())
        return
    _print_preset(preset)


def _print_preset(preset: Preset) -> None:
    _plain(f"{preset.title} ({preset.name})", style="bold")
    _plain(preset.summary)
    _plain("")
    rows: list[tuple[str, str | None]] = [
        ("kind", preset.kind),
        ("connection URI", preset.uri_template),
        ("host", preset.host),
        ("port", str(preset.port) if preset.port else None),
        ("security", preset.security),
        ("username", preset.username_format),
        ("regions", ", ".join(preset.regions) if preset.regions else None),
        ("credentials at", preset.credentials_url),
        (
            "default limits",
            "; ".join(limit.describe() for limit in preset.rate_limits) or "none documented",
        ),
    ]
    for key, value in rows:
        if value:
            _plain(f"{key:>16}  {value}")
    if preset.request_config is not None:
        config = dict(preset.request_config)
        body = config.pop("body", None)
        _plain("")
        _plain("request_config:", style="bold")
        _plain(json.dumps(config, indent=2), lines=True)
        if isinstance(body, str):
            _plain("body (Jsonnet):", style="bold")
            _plain(body.rstrip("\n"), lines=True)
    if preset.steps:
        _plain("")
        _plain("Set-up", style="bold")
        for number, step in enumerate(preset.steps, start=1):
            _plain(f"  {number}. {step}")
    if preset.notes:
        _plain("")
        _plain("Good to know", style="bold")
        for note in preset.notes:
            _plain(f"  - {note}")


@presets_app.command("uri")
def presets_uri(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A preset name (presets list).")],
    username: Annotated[str | None, typer.Option("--username", help="SMTP username.")] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="SMTP password, API key or token.")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Region (amazon-ses; mailgun: us or eu).")
    ] = None,
    domain: Annotated[
        str | None, typer.Option("--domain", help="Your email domain (Microsoft 365 relay).")
    ] = None,
    derive: Annotated[
        bool,
        typer.Option(
            "--derive-from-secret-key",
            help="amazon-ses: --password is the IAM secret access key; derive the SMTP password.",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Print the connection URI for a preset, with the credentials percent-encoded."""
    from postroom.presets import build_uri, get_preset

    with user_errors():
        result = build_uri(
            get_preset(name),
            username=username,
            password=password,
            region=region,
            domain=domain,
            derive_from_secret_key=derive,
        )
    for warning in result.warnings:
        _warn(warning)
    sys.stdout.write(result.uri + "\n")


# -- test-smtp ---------------------------------------------------------------------------


def _tenant(settings: Settings, tenant: str) -> CourierSettings:
    if tenant in settings.tenant_names():
        return settings.tenant(tenant)
    # Not in the file: perhaps a tenant saved through the admin API.
    with_api = with_api_tenants(settings)
    if tenant in with_api.tenant_names():
        return with_api.tenant(tenant)
    raise InputError(
        f"unknown tenant {tenant!r}; known tenants: {', '.join(with_api.tenant_names())}",
        field="--tenant",
    )


def smtp_test_command(
    uri: Annotated[
        str | None,
        typer.Option("--uri", help="Connection URI to test instead of the tenant's settings."),
    ] = None,
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant whose SMTP settings to test.")
    ] = "default",
    to: Annotated[
        str | None, typer.Option("--to", help="Recipient of the test email (default: the sender).")
    ] = None,
    sender: Annotated[
        str | None, typer.Option("--from", help="Sender (default: the tenant's from_address).")
    ] = None,
    no_send: Annotated[
        bool, typer.Option("--no-send", help="Stop after RCPT: check everything, send nothing.")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Walk the real SMTP conversation step by step and explain the step that failed."""
    with user_errors():
        settings = settings_from(config)
        courier = _tenant(settings, tenant)
        if uri is None and courier.strategy != "smtp":
            raise InputError(
                f"tenant {tenant!r} has no SMTP settings (its delivery strategy is "
                f"{courier.strategy}); set courier.smtp.connection_uri, or pass --uri",
                field="--tenant",
            )
        report = _run_smtp_test(
            settings, courier, tenant, uri=uri, to=to, sender=sender, no_send=no_send
        )
    checked = _deliverability(settings, courier, tenant, sender or courier.smtp.from_address)
    if as_json:
        print_json({**report.to_json(), "deliverability": checked})
    else:
        _print_report(report)
        _plain("")
        _plain(checked["line"], style=_VERDICT_STYLE.get(checked["status"], ""))
    raise typer.Exit(0 if report.ok else 1)  # the verdict never changes the exit code


_VERDICT_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skipped": "dim"}


def _deliverability(
    settings: Settings, courier: CourierSettings, tenant: str, sender: str
) -> dict[str, Any]:
    """The one-line DNS verdict for the sender's domain (the store is opened only when the
    tenant signs with a stored key, to compare it with the published one)."""
    from postroom.deliverability.service import verdict

    if courier.dkim.domain is not None and courier.dkim.private_key_path is None:
        return run_with_store(settings, lambda store: verdict(store, settings, tenant, sender))
    return asyncio.run(verdict(None, settings, tenant, sender))


_STAGE_WIDTH = max(len(stage) for stage in STAGES)


def _run_smtp_test(
    settings: Settings, courier: CourierSettings, tenant: str, **options: Any
) -> SmtpTestReport:
    """Run the test; a device-code OAuth2 login reads (and keeps) its refresh token in the
    store, so the store is opened for it."""
    from postroom.transports.smtp_probe import run_smtp_test

    oauth = courier.smtp.oauth2
    if not (oauth.configured and oauth.effective_flow == "device_code"):
        return asyncio.run(run_smtp_test(courier, **options))

    async def work(store: Tenants) -> SmtpTestReport:
        keeper = refresh_token_keeper(store, courier, tenant, secrets=settings.secrets.default)
        return await run_smtp_test(courier, refresh_tokens=keeper, **options)

    return run_with_store(settings, work)


def _print_report(report: SmtpTestReport) -> None:
    from postroom.presets import PRESETS

    what = "checking (no email is sent)" if report.no_send else "sending a test email"
    _plain(f"Testing {report.uri}: {what} from {report.sender} to {report.recipient}")
    for warning in report.warnings:
        _warn(warning)
    for step in report.steps:
        mark, style = ("✓", "green") if step.ok else ("✗", "red")
        line = f"  {mark} {step.stage:<{_STAGE_WIDTH}} {step.ms:8.1f} ms"
        if step.detail and (step.ok or not step.reply):
            line += f"  {step.detail}"
        _plain(line, style="" if step.ok else style)
        if not step.ok and step.reply:
            _plain(f"      reply  {step.reply}", style="red")
    _print_server(report)
    _plain("")
    diagnosis = report.diagnosis
    if diagnosis is None:
        if report.no_send:
            _plain(
                f"OK: the server accepts mail from {report.sender} to {report.recipient}; "
                "nothing was sent (--no-send).",
                style="green",
            )
        else:
            accepted = f" ({report.accepted_reply})" if report.accepted_reply else ""
            _plain(
                f"OK: the server accepted the test email for {report.recipient}{accepted}.",
                style="green",
            )
        return
    kind = "transient, would be retried" if diagnosis.transient else "permanent"
    _plain(f"FAILED at {report.failed_stage}: {diagnosis.code} ({kind})", style="bold red")
    _plain(f"  cause  {diagnosis.cause}")
    _plain(f"  fix    {diagnosis.fix}")
    if report.preset is not None and report.preset in PRESETS:
        preset = PRESETS[report.preset]
        _plain("")
        _plain(f"Good to know about {preset.title} (preset {preset.name})", style="bold")
        for note in preset.notes:
            _plain(f"  - {note}")


def _print_server(report: SmtpTestReport) -> None:
    lines: list[str] = []
    if report.extensions:
        names = [f"{k.upper()} {v}".strip() for k, v in report.extensions.items()]
        lines.append(f"{'extensions':>12}  {', '.join(names)}")
    tls = report.tls
    if tls is not None:
        cipher = f" ({tls.cipher})" if tls.cipher else ""
        lines.append(f"{'TLS':>12}  {tls.version or '?'}{cipher}")
        if tls.subject:
            verified = "verified" if tls.verified else "not verified (skip_ssl_verify)"
            lines.append(f"{'certificate':>12}  {tls.subject}, {verified}")
            if tls.names:
                lines.append(f"{'names':>12}  {', '.join(tls.names)}")
            if tls.issuer:
                lines.append(f"{'issued by':>12}  {tls.issuer}")
            if tls.not_after:
                days = (tls.not_after - datetime.now(UTC)).days
                lines.append(f"{'expires':>12}  {tls.not_after:%Y-%m-%d} ({days} days)")
    if lines:
        _plain("")
        _plain("Server", style="bold")
        for line in lines:
            _plain(line)


# -- explain ------------------------------------------------------------------------------


def explain(
    text: Annotated[
        str,
        typer.Argument(
            metavar="TEXT", help="The server reply or error line, quoted; - reads standard input."
        ),
    ],
    stage: Annotated[
        str | None,
        typer.Option("--stage", help=f"Where it happened: {', '.join(STAGES)}."),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Explain a server reply or an error text pasted from a log."""
    with user_errors():
        if text == "-":
            text = sys.stdin.read()
        explanation = explain_text(text, stage=stage)
    if as_json:
        print_json(explanation.to_json())
        return
    _print_explanation(explanation)


def _print_explanation(explanation: Explanation) -> None:
    d = explanation.diagnosis
    kind = "transient: retried" if d.transient else "permanent: not retried"
    _plain(f"{'code':>9}  {d.code} ({kind})", style="bold")
    if explanation.provider:
        _plain(f"{'provider':>9}  {explanation.provider}")
    if explanation.stage:
        guessed = " (guessed; pass --stage to set it)" if explanation.stage_guessed else ""
        _plain(f"{'stage':>9}  {explanation.stage}{guessed}")
    if d.reply:
        _plain(f"{'reply':>9}  {d.reply}")
    _plain(f"{'cause':>9}  {d.cause}")
    _plain(f"{'fix':>9}  {d.fix}")
