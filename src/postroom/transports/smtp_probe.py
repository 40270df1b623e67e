"""``test-smtp``: walk a real SMTP conversation step by step and explain the step that failed.

It drives the very transport the worker uses (:class:`~postroom.transports.smtp.SmtpTransport`
with an :class:`~postroom.transports.smtp_tls.SmtpRecorder` attached), so a test that passes means
real delivery passes too. The test email is the built-in ``test`` template, rendered like any
message, with the redacted connection URI and the time it was sent.
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from postroom.config.oauth2 import OAuth2Settings
from postroom.config.settings import CourierSettings
from postroom.config.smtp_uri import Security, SmtpUri, parse_smtp_uri
from postroom.diagnosis.classify import diagnose_error
from postroom.errors import ConfigError, DeliveryError, InputError, TemplateError
from postroom.models import Diagnosis, RenderedEmail, TemplateType
from postroom.oauth.client import RefreshTokenKeeper
from postroom.presets import looks_like_aws_secret_key
from postroom.render.locales import fallback_chain
from postroom.render.mime import build_mime, envelope_address, header_address
from postroom.render.templates import render_email
from postroom.transports.base import Envelope, Step
from postroom.transports.smtp import SmtpTransport
from postroom.transports.smtp_tls import SmtpRecorder, TlsFacts

__all__ = ["CERT_WARNING_DAYS", "SmtpTestReport", "port_scheme_hint", "run_smtp_test"]

CERT_WARNING_DAYS = 14
"""A certificate that expires within this many days earns a warning."""

_PLACEHOLDER_SENDER = "no-reply@postroom.localhost"


@dataclass(slots=True)
class SmtpTestReport:
    """The outcome of one SMTP test: every step with its time, and for a failure the stage
    and the diagnosis. ``to_json()`` is the documented ``test-smtp`` JSON; the other fields are what
    the command line shows besides (extensions, TLS, certificate, warnings)."""

    uri: str
    steps: list[Step]
    diagnosis: Diagnosis | None = None
    failed_stage: str | None = None
    sender: str | None = None
    recipient: str | None = None
    no_send: bool = False
    preset: str | None = None
    accepted_reply: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    auth_methods: list[str] = field(default_factory=list)
    tls: TlsFacts | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every step up to the hand-off (or, with ``no_send``, RCPT) succeeded."""
        return self.diagnosis is None

    def to_json(self) -> dict[str, Any]:
        """The ``test-smtp --json`` object: ``ok``, ``uri`` (redacted), ``steps``,
        ``failed_stage`` and ``diagnosis`` (``code``, ``transient``, ``cause``, ``fix``)."""
        d = self.diagnosis
        return {
            "ok": self.ok,
            "uri": self.uri,
            "steps": [step.to_json() for step in self.steps],
            "failed_stage": self.failed_stage,
            "diagnosis": (
                {"code": d.code, "transient": d.transient, "cause": d.cause, "fix": d.fix}
                if d is not None
                else None
            ),
        }


def port_scheme_hint(uri: SmtpUri) -> str | None:
    """A hint when the port and the scheme disagree (465 with smtp://, 587 with smtps://)."""
    if uri.port == 465 and uri.security is not Security.IMPLICIT_TLS:
        return (
            f"port 465 normally speaks implicit TLS, which smtps:// does; with {uri.scheme}:// "
            f"Postroom waits for a plain greeting. Try smtps://{uri.host}:465/ (or "
            f"smtp://{uri.host}:587/ for STARTTLS)."
        )
    if uri.port == 587 and uri.security is Security.IMPLICIT_TLS:
        return (
            "port 587 normally speaks plain SMTP upgraded with STARTTLS, which smtp:// does; "
            f"smtps:// starts with TLS at once. Try smtp://{uri.host}:587/ (or "
            f"smtps://{uri.host}:465/ for implicit TLS)."
        )
    return None


def _address(value: str, what: str) -> str:
    try:
        header_address(value, field=what)
    except InputError:
        raise InputError(
            f"{value!r} is not an email address; write it like you@example.org", field=what
        ) from None
    return envelope_address(value)


def _sender(courier: CourierSettings, uri: SmtpUri, sender: str | None) -> str:
    if sender:
        return _address(sender, "from")
    configured = courier.smtp.from_address
    if (
        "from_address" not in courier.smtp.model_fields_set
        and configured == _PLACEHOLDER_SENDER
        and uri.username
        and "@" in uri.username
    ):
        # No From configured: the mailbox that logs in is the natural sender (Microsoft 365,
        # Gmail, Outlook.com accept nothing else without extra rights).
        return _address(uri.username, "from")
    return _address(configured, "from")


def _render(
    courier: CourierSettings,
    uri: SmtpUri,
    sender: str,
    recipient: str,
    chosen: RenderedEmail | None = None,
) -> tuple[RenderedEmail, bytes]:
    sent_at = datetime.now(UTC)
    email = chosen  # a template preview's "send me this"
    if email is None:
        data = {
            "to": recipient,
            "uri": uri.redacted(),
            "sent_at": sent_at,  # written in the tenant's language by the template
            "product_name": courier.branding.product_name or "Postroom",
        }
        email = render_email(
            TemplateType.TEST,
            data,
            override_path=courier.template_override_path,
            locales=fallback_chain(courier.locale),
            branding=courier.branding.model_dump(),
        )
    mime = build_mime(
        email,
        sender=sender,
        sender_name=courier.smtp.from_name,
        recipient=recipient,
        reply_to=courier.smtp.reply_to,
        headers=courier.smtp.headers,
        date=sent_at,
    )
    return email, mime


def _secrets(uri: SmtpUri, oauth: OAuth2Settings | None = None) -> list[str]:
    """Values that must never be printed: the password as given and as it sits in a URI, and
    the OAuth2 client secret and refresh token."""
    found: set[str] = set()
    if uri.password:
        found |= {uri.password, quote(uri.password, safe="")}
    if oauth is not None:
        found |= {s for s in (oauth.client_secret, oauth.refresh_token) if s}
    return sorted(found, key=len, reverse=True)


def _scrub(text: str | None, secrets: list[str]) -> str | None:
    if text is None:
        return None
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def _refine(diagnosis: Diagnosis, uri: SmtpUri, hint: str | None) -> Diagnosis:
    """Situation-specific words the bare reply cannot know: the port/scheme mix-up and an AWS
    secret key used as the SES SMTP password."""
    wrong_mode_like = {
        "tls_wrong_mode",
        "connection_timeout",
        "server_unavailable",
        "protocol_error",
        "starttls_unavailable",
    }
    if hint is not None and diagnosis.code in wrong_mode_like:
        return replace(diagnosis, fix=f"The port and scheme disagree: {hint} {diagnosis.fix}")
    if (
        diagnosis.code == "auth_failed"
        and uri.host.endswith(".amazonaws.com")
        and uri.password is not None
        and looks_like_aws_secret_key(uri.password)
    ):
        return replace(
            diagnosis,
            cause="The password is an AWS secret access key (40 characters); Amazon SES SMTP "
            "needs the SMTP password derived from it for the endpoint's region (44 characters).",
            fix="Create SMTP credentials in the SES console, or run `postroom presets uri "
            "amazon-ses --derive-from-secret-key --region <region> --username <access key id> "
            "--password <secret key>` and use the URI it prints.",
        )
    return diagnosis


async def run_smtp_test(
    courier: CourierSettings,
    *,
    uri: str | None = None,
    to: str | None = None,
    sender: str | None = None,
    no_send: bool = False,
    allow_private_targets: bool = True,
    refresh_tokens: RefreshTokenKeeper | None = None,
    email: RenderedEmail | None = None,
) -> SmtpTestReport:
    """Test the tenant's SMTP settings (or ``uri``) with the same transport code as real
    delivery, and report each step with its duration.

    ``sender`` defaults to the tenant's ``from_address`` (or the login when that is a mailbox
    address and no From is configured); ``to`` defaults to the sender. With ``no_send`` the
    conversation stops after RCPT, resets and quits. A delivery failure is not an exception:
    it is in the report (``ok`` False, ``failed_stage``, ``diagnosis``). Raises
    :class:`InputError` or :class:`ConfigError` for bad input: no URI configured or given, an
    invalid URI, an invalid address, an unreadable client certificate or service account key.

    With ``courier.smtp.oauth2`` a ``token`` step comes before ``auth`` (the token's expiry is
    shown, never the token); a ``uri`` with a password tests a password login instead.
    ``refresh_tokens`` keeps a device-code sign-in's refresh token (the store's). ``email``
    is sent instead of the test email (a template preview's "send me this").
    """
    raw = uri if uri is not None else courier.smtp.connection_uri
    if not raw:
        raise InputError(
            "this tenant has no SMTP settings (courier.smtp.connection_uri); set it, or pass "
            "--uri smtp://user:pass@host:587/",
            field="uri",
        )
    parsed = parse_smtp_uri(raw)
    smtp = courier.smtp
    if uri is not None:
        # The URI under test names the mailbox; a password in it means a password login.
        update: dict[str, Any] = {"connection_uri": raw}
        if parsed.password:
            update["oauth2"] = OAuth2Settings()
        smtp = smtp.model_copy(update=update)
    secrets = _secrets(parsed, smtp.oauth2)
    from_address = _sender(courier, parsed, sender)
    recipient = _address(to, "to") if to else from_address
    report = SmtpTestReport(
        uri=parsed.redacted(),
        steps=[],
        sender=from_address,
        recipient=recipient,
        no_send=no_send,
        preset=courier.preset,
    )
    hint = port_scheme_hint(parsed)
    if hint is not None:
        report.warnings.append(hint)
    if from_address == _PLACEHOLDER_SENDER:
        report.warnings.append(
            f"the From address is Postroom's placeholder {_PLACEHOLDER_SENDER}; set "
            "courier.smtp.from_address (or pass --from) to an address the provider lets "
            "you send from"
        )
    recorder = SmtpRecorder()
    data = b""
    if not no_send:
        with recorder.timed("render") as step:
            try:
                email, data = _render(courier, parsed, from_address, recipient, email)
            except (TemplateError, InputError) as exc:
                step.detail = str(exc)
                report.steps = recorder.steps
                report.failed_stage = "render"
                report.diagnosis = Diagnosis(
                    code="template_error",
                    transient=False,
                    cause=f"The test email could not be rendered: {exc}.",
                    fix="Fix the test template override (template_override_path/test/) or "
                    "remove it to use the built-in one.",
                )
                return report
            step.detail = f"test email {email.subject!r}, {len(data):,} bytes"
    transport = SmtpTransport(
        parsed,
        smtp,
        recorder=recorder,
        allow_private_targets=allow_private_targets,
        refresh_tokens=refresh_tokens,
    )
    try:
        _ = transport.tls_context
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the client certificate: {getattr(exc, 'strerror', None) or exc}",
            path="courier.smtp.client_cert_path",
        ) from None
    _ = transport.tokens  # a Google key file that cannot be read is a ConfigError, now
    envelope = Envelope(
        message_id=f"test-{uuid.uuid4()}",
        sender=from_address,
        recipients=(recipient,),
        data=data,
    )
    try:
        if no_send:
            await transport.check(envelope)
        else:
            result = await transport.send(envelope)
            report.accepted_reply = result.reply
    except DeliveryError as exc:
        report.diagnosis = _refine(diagnose_error(exc), parsed, hint)
        report.failed_stage = exc.stage
    finally:
        await transport.close()
    for step in recorder.steps:
        step.detail = _scrub(step.detail, secrets)
        step.reply = _scrub(step.reply, secrets)
    report.steps = recorder.steps
    if report.failed_stage is not None and not any(
        s.stage == report.failed_stage and not s.ok for s in report.steps
    ):
        failed = next((s for s in report.steps if not s.ok), None)
        if failed is not None:
            report.failed_stage = failed.stage
    report.extensions = dict(recorder.extensions)
    report.auth_methods = list(recorder.auth_methods)
    report.tls = recorder.tls
    _certificate_warning(report)
    return report


def _certificate_warning(report: SmtpTestReport) -> None:
    tls = report.tls
    if tls is None or tls.not_after is None:
        return
    left = tls.not_after - datetime.now(UTC)
    days = left.total_seconds() / 86400
    if days < 0:
        report.warnings.append(f"the server's certificate expired on {tls.not_after:%Y-%m-%d}")
    elif days < CERT_WARNING_DAYS:
        report.warnings.append(
            f"the server's certificate expires on {tls.not_after:%Y-%m-%d}, in "
            f"{max(int(days), 0)} day(s): the server's administrator should renew it now"
        )
