"""HTTP API presets: ready ``courier.http.request_config`` blocks with a Jsonnet body and auth.

Each preset's ``request_config`` is what a user pastes under ``courier.http``, with
``{placeholders}`` for their own values: ``{api_key}`` / ``{server_token}``, ``{domain}``
(Mailgun) and ``{from_address}``. The configuration refuses a request config that still holds
one, so a forgotten value is caught at start, not at the first message.
:func:`fill_request_config` replaces them (and picks Mailgun's EU host).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from postroom.errors import InputError
from postroom.presets.base import Preset

__all__ = ["HTTP_PRESETS", "MAILGUN_API_HOSTS", "fill_request_config"]

MAILGUN_API_HOSTS: dict[str, str] = {"us": "api.mailgun.net", "eu": "api.eu.mailgun.net"}

SENDGRID_BODY = """\
function(ctx) {
  personalizations: [{ to: [{ email: ctx.recipient }] }],
  from: { email: "{from_address}" },
  subject: ctx.subject,
  content: [{ type: "text/plain", value: ctx.body }]
    + (if ctx.html_body != null then [{ type: "text/html", value: ctx.html_body }] else []),
}
"""

MAILGUN_BODY = """\
// Form-encoded: a flat object of strings; null (no HTML part) leaves the field out.
function(ctx) {
  from: "{from_address}",
  to: ctx.recipient,
  subject: ctx.subject,
  text: ctx.body,
  html: ctx.html_body,
}
"""

POSTMARK_BODY = """\
function(ctx) {
  From: "{from_address}",
  To: ctx.recipient,
  Subject: ctx.subject,
  TextBody: ctx.body,
  [if ctx.html_body != null then "HtmlBody"]: ctx.html_body,
  MessageStream: "outbound",
}
"""

HTTP_PRESETS: tuple[Preset, ...] = (
    Preset(
        name="sendgrid-http",
        title="Twilio SendGrid (Web API v3)",
        kind="http",
        summary="SendGrid's v3 mail/send API with a Bearer API key, instead of SMTP.",
        host="api.sendgrid.com",
        port=443,
        security="HTTPS, certificate verified",
        credentials_url="https://app.sendgrid.com/settings/api_keys",
        params=("api_key", "from_address"),
        request_config={
            "url": "https://api.sendgrid.com/v3/mail/send",
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "auth": {
                "type": "api_key",
                "config": {"name": "Authorization", "value": "Bearer {api_key}", "in": "header"},
            },
            "body": SENDGRID_BODY,
        },
        steps=(
            "Authenticate your sending domain (Settings > Sender Authentication) or verify the "
            "From address as a Single Sender.",
            "Create an API key (Settings > API Keys) with Mail Send set to Full Access; SendGrid "
            "shows it only once.",
            "Paste the request_config under courier.http, replace {api_key} and "
            "{from_address}, and set courier.delivery_strategy: http.",
        ),
        notes=(
            "SendGrid answers 202 Accepted with an empty body; the X-Message-Id header is its "
            "message id.",
            "401 means the key is wrong or revoked, 403 that the key lacks Mail Send or the "
            "From address is not a verified sender.",
            "EU-pinned accounts (data residency) use https://api.eu.sendgrid.com/v3/mail/send.",
        ),
    ),
    Preset(
        name="mailgun-http",
        title="Mailgun (Messages API)",
        kind="http",
        summary="Mailgun's form-encoded /v3/{domain}/messages API with basic auth api:KEY "
        "(US or EU region).",
        host="api.mailgun.net",
        port=443,
        security="HTTPS, certificate verified",
        credentials_url="https://app.mailgun.com/settings/api_security",
        params=("api_key", "domain", "from_address", "region"),
        regions=tuple(MAILGUN_API_HOSTS),
        default_region="us",
        request_config={
            "url": "https://api.mailgun.net/v3/{domain}/messages",
            "method": "POST",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "auth": {"type": "basic_auth", "config": {"user": "api", "password": "{api_key}"}},
            "body": MAILGUN_BODY,
        },
        steps=(
            "Add and verify a sending domain (e.g. mg.example.org) with the DNS records Mailgun "
            "lists.",
            "Create a private API key (Settings > API Security).",
            "Paste the request_config under courier.http and replace {domain}, {api_key} and "
            "{from_address}; for an EU account use the host api.eu.mailgun.net.",
        ),
        notes=(
            "The basic-auth user is the literal word api; the password is the private API key.",
            "EU domains live on api.eu.mailgun.net: the US host answers 401 or 404 for them.",
            "Sandbox domains deliver only to up to five authorized recipients.",
        ),
    ),
    Preset(
        name="postmark-http",
        title="Postmark (Email API)",
        kind="http",
        summary="Postmark's /email API with the X-Postmark-Server-Token header.",
        host="api.postmarkapp.com",
        port=443,
        security="HTTPS, certificate verified",
        credentials_url="https://account.postmarkapp.com/servers",
        params=("server_token", "from_address"),
        request_config={
            "url": "https://api.postmarkapp.com/email",
            "method": "POST",
            "headers": {"Content-Type": "application/json", "Accept": "application/json"},
            "auth": {
                "type": "api_key",
                "config": {
                    "name": "X-Postmark-Server-Token",
                    "value": "{server_token}",
                    "in": "header",
                },
            },
            "body": POSTMARK_BODY,
        },
        steps=(
            "Verify a sender signature or the sending domain (Sender Signatures).",
            "Open the server you send from, API Tokens, and copy the Server API token.",
            "Paste the request_config under courier.http and replace {server_token} and "
            "{from_address}.",
        ),
        notes=(
            "Use the Server API token, not the Account API token: Postmark answers 401 to the "
            "latter on /email.",
            "Postmark refuses bad requests with 422 and an ErrorCode in the JSON body, shown in "
            "the diagnosis; MessageID in the answer is its message id.",
            "Identity email belongs in a transactional stream: MessageStream outbound is the "
            "default one.",
        ),
    ),
)

_PLACEHOLDER = re.compile(r"\{([a-z][a-z_]*)\}")


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


def fill_request_config(
    preset: Preset, values: dict[str, str], *, region: str | None = None
) -> dict[str, Any]:
    """The preset's ``request_config`` with ``{placeholders}`` replaced by ``values`` (those
    not given stay) and, for a preset with regions, the region's host.

    Raise :class:`InputError` for a preset without a request config or an unknown region.
    """
    if preset.request_config is None:
        raise InputError(f"{preset.name} is not an HTTP API preset", field="name")
    config = copy.deepcopy(preset.request_config)
    if region is not None:
        if preset.name != "mailgun-http" or region not in MAILGUN_API_HOSTS:
            known = ", ".join(preset.regions) or "none"
            raise InputError(f"unknown region {region!r}; known: {known}", field="region")
        config["url"] = config["url"].replace(MAILGUN_API_HOSTS["us"], MAILGUN_API_HOSTS[region])
    filled: dict[str, Any] = _fill(config, values)
    return filled
