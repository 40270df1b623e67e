"""The tenant form: a tenant's ``courier`` section as form fields, and back.

Pure functions, no I/O. Credentials are write-only: the form never holds one, only whether one
is stored; a field left empty (or ``***``) sends ``***`` back, which
:meth:`~postroom.config.tenants.TenantRegistry.save` replaces with the stored value. Header
values that look like credentials are masked the same way. Intake tokens are write-only too:
the form says how many are stored and may replace them with, or add, a new one
(:func:`intake_token_from_form`). Everything the form does not show (OAuth2, rate limits,
retries, ...) is kept as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from postroom.config.credentials import is_credential_name
from postroom.config.secrets import MASK
from postroom.config.smtp_uri import Security, parse_smtp_uri
from postroom.errors import ConfigError, InputError
from postroom.presets import PRESETS, Preset, encode_credential
from postroom.service.tenants import IntakeToken, new_intake_token

SECURITY_MODES: dict[str, str] = {
    "starttls": "STARTTLS, certificate verified (smtp://, usually port 587)",
    "starttls-unverified": "STARTTLS, certificate not verified",
    "tls": "Implicit TLS, certificate verified (smtps://, usually port 465)",
    "tls-unverified": "Implicit TLS, certificate not verified",
    "cleartext": "Cleartext, no TLS at all (only inside a trusted network)",
}
STRATEGIES: dict[str, str] = {
    "smtp": "SMTP",
    "http": "HTTP API (Jsonnet body)",
    "outbox": "Outbox: write .eml files, send nothing",
}
HTTP_METHODS = ("POST", "PUT", "PATCH")
HTTP_AUTH = {"none": "None", "api_key": "API key (header or cookie)", "basic_auth": "Basic auth"}
INTAKE_ACTIONS = ("keep", "replace", "add")
"""What the form does with the intake tokens: keep the stored ones, replace them with a new
one, or add a new one beside them (to rotate without a gap)."""


@dataclass
class TenantForm:
    """The form's fields. ``*_stored`` say a credential is stored (it is never shown)."""

    strategy: str = "smtp"
    preset: str = ""
    host: str = ""
    port: str = ""
    security: str = "starttls"
    server_name: str = ""
    username: str = ""
    password_stored: bool = False
    from_address: str = ""
    from_name: str = ""
    reply_to: str = ""
    http_url: str = ""
    http_method: str = "POST"
    http_headers: str = ""
    http_auth: str = "none"
    http_key_name: str = ""
    http_key_in: str = "header"
    http_key_stored: bool = False
    http_user: str = ""
    http_password_stored: bool = False
    http_body: str = ""
    locale: str = ""
    product_name: str = ""
    logo_url: str = ""
    accent_color: str = ""
    footer_text: str = ""
    support_email: str = ""
    postal_address: str = ""
    intake_tokens_stored: int = 0
    intake_action: str = "replace"  # a new tenant gets a token unless the user says otherwise


# Form field -> key of courier.branding (``address`` is the postal one).
BRANDING_FIELDS = {
    "product_name": "product_name",
    "logo_url": "logo_url",
    "accent_color": "accent_color",
    "footer_text": "footer_text",
    "support_email": "support_email",
    "postal_address": "address",
}


def _dict(node: Any, *path: str) -> dict[str, Any]:
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _security(uri_security: Security, verify: bool) -> str:
    if uri_security is Security.CLEARTEXT:
        return "cleartext"
    base = "tls" if uri_security is Security.IMPLICIT_TLS else "starttls"
    return base if verify else f"{base}-unverified"


def header_lines(headers: Mapping[str, str]) -> str:
    """``Name: value`` lines, credential-looking values masked."""
    return "\n".join(
        f"{name}: {MASK if is_credential_name(name) else value}" for name, value in headers.items()
    )


def form_from_courier(courier: Mapping[str, Any]) -> TenantForm:
    """The form for a courier section as the registry shows it (credentials already masked)."""
    smtp = _dict(courier, "smtp")
    request = _dict(courier, "http", "request_config")
    auth = _dict(request, "auth")
    auth_config = _dict(auth, "config")
    form = TenantForm(
        preset=_text(courier.get("preset")),
        from_address=_text(smtp.get("from_address")),
        from_name=_text(smtp.get("from_name")),
        reply_to=_text(smtp.get("reply_to")),
        http_url=_text(request.get("url")),
        http_method=_text(request.get("method")).upper() or "POST",
        http_headers=header_lines(_dict(request, "headers")),
        http_body=_text(request.get("body")),
        locale=_text(courier.get("locale")),
    )
    branding = _dict(courier, "branding")
    for name, key in BRANDING_FIELDS.items():
        setattr(form, name, _text(branding.get(key)))
    tokens = courier.get("intake_tokens")
    form.intake_tokens_stored = len(tokens) if isinstance(tokens, list) else 0
    form.intake_action = "keep"
    uri = _text(smtp.get("connection_uri"))
    if uri:
        try:
            parsed = parse_smtp_uri(uri)
        except ConfigError:
            parsed = None
        if parsed is not None:
            form.host = parsed.host
            form.port = str(parsed.port)
            form.security = _security(parsed.security, parsed.verify)
            form.server_name = parsed.server_name or ""
            form.username = parsed.username or ""
            form.password_stored = bool(parsed.password)
    auth_type = _text(auth.get("type"))
    if auth_type in HTTP_AUTH:
        form.http_auth = auth_type
        form.http_key_name = _text(auth_config.get("name"))
        form.http_key_in = _text(auth_config.get("in")) or "header"
        form.http_key_stored = bool(auth_config.get("value"))
        form.http_user = _text(auth_config.get("user"))
        form.http_password_stored = bool(auth_config.get("password"))
    strategy = _text(courier.get("delivery_strategy"))
    if strategy not in STRATEGIES:
        strategy = "smtp" if uri else "http" if form.http_url else "outbox"
    form.strategy = strategy
    return form


def build_connection_uri(
    *,
    host: str,
    port: str,
    security: str,
    server_name: str,
    username: str,
    password: str | None,
) -> str:
    """The connection URI for the form's SMTP fields (credentials percent-encoded); ``***`` as
    the password keeps the stored one. Raise :class:`InputError` naming the field."""
    if not host:
        raise InputError("give the SMTP server's host name", field="host")
    if any(c.isspace() or c in "/?#@{}" for c in host):
        raise InputError(
            f"{host!r} is not a host name; replace any {{placeholder}} with your own value",
            field="host",
        )
    if security not in SECURITY_MODES:
        raise InputError("choose one of the listed security modes", field="security")
    scheme = "smtps" if security.startswith("tls") else "smtp"
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise InputError("a port is a number from 1 to 65535", field="port")
    if password and not username:
        raise InputError("give the username that goes with the password", field="username")
    auth = ""
    if username:
        auth = encode_credential(username)
        if password:
            auth += ":" + encode_credential(password)
        auth += "@"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{int(port)}"
    params = []
    if security.endswith("-unverified"):
        params.append("skip_ssl_verify=true")
    if security == "cleartext":
        params.append("disable_starttls=true")
    if server_name:
        if security == "cleartext":
            raise InputError("a certificate name needs a TLS mode", field="server_name")
        params.append(f"server_name={encode_credential(server_name)}")
    uri = f"{scheme}://{auth}{netloc}/" + ("?" + "&".join(params) if params else "")
    try:
        parse_smtp_uri(uri)
    except ConfigError as exc:
        raise InputError(str(exc), field="host") from None
    return uri


def parse_headers(text: str, stored: Mapping[str, str]) -> dict[str, str]:
    """``Name: value`` lines -> a dict. A masked value stays ``***`` (the registry keeps the
    stored value in its place) and is refused when ``stored`` (the masked stored headers) has
    no such header."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            raise InputError(f"line {number} is not 'Name: value'", field="http_headers")
        if value == MASK and name not in stored:
            raise InputError(
                f"line {number}: {name} reads {MASK} but no value is stored; type it",
                field="http_headers",
            )
        headers[name] = value
    return headers


def _set(node: dict[str, Any], key: str, value: str) -> None:
    if value:
        node[key] = value
    else:
        node.pop(key, None)


def courier_from_form(form: Mapping[str, str], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The courier section to save: the stored one (masked) with the form's fields applied.

    Raise :class:`InputError` naming the field for what the form can tell is wrong; the
    registry validates the rest when it saves.
    """

    def field(name: str) -> str:
        return form.get(name, "").strip()

    before = form_from_courier(stored)
    out: dict[str, Any] = copy.deepcopy(dict(stored))
    strategy = field("strategy")
    if strategy not in STRATEGIES:
        raise InputError("choose SMTP, HTTP API or Outbox", field="strategy")
    out["delivery_strategy"] = strategy
    preset = field("preset")
    if preset and preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}", field="preset")
    _set(out, "preset", preset)

    smtp = out.setdefault("smtp", {})
    host = field("host")
    if host or strategy == "smtp":
        password = form.get("password", "")
        username = field("username")
        if password in ("", MASK):
            password = MASK if before.password_stored and username else ""
        smtp["connection_uri"] = build_connection_uri(
            host=host,
            port=field("port"),
            security=field("security") or "starttls",
            server_name=field("server_name"),
            username=username,
            password=password or None,
        )
    else:
        smtp.pop("connection_uri", None)
    for key in ("from_address", "from_name", "reply_to"):
        _set(smtp, key, field(key))
    if not smtp:
        out.pop("smtp")

    http = out.setdefault("http", {})
    request = http.setdefault("request_config", {})
    url = field("http_url")
    if url or strategy == "http":
        if not url:
            raise InputError("give the provider's API URL", field="http_url")
        request["url"] = url
        method = field("http_method").upper() or "POST"
        if method not in HTTP_METHODS:
            raise InputError("choose POST, PUT or PATCH", field="http_method")
        request["method"] = method
        stored_headers = _dict(stored, "http", "request_config", "headers")
        headers = parse_headers(form.get("http_headers", ""), stored_headers)
        if headers:
            request["headers"] = headers
        else:
            request.pop("headers", None)
        body = form.get("http_body", "").strip()
        _set(request, "body", body.replace("\r\n", "\n") + "\n" if body else "")
        request_auth = _http_auth(form, before)
        if request_auth is None:
            request.pop("auth", None)
        else:
            request["auth"] = request_auth
    else:
        http.pop("request_config", None)
    if not http:
        out.pop("http")
    _language_and_branding(form, out)
    return out


def _language_and_branding(form: Mapping[str, str], out: dict[str, Any]) -> None:
    """``courier.locale`` and ``courier.branding`` from the form; a field the submission does
    not carry is left as stored, an empty one is removed."""
    if "locale" in form:
        _set(out, "locale", form["locale"].strip())
    branding = out.setdefault("branding", {})
    for name, key in BRANDING_FIELDS.items():
        if name in form:
            _set(branding, key, form[name].strip())
    if not branding:
        out.pop("branding")


def _http_auth(form: Mapping[str, str], before: TenantForm) -> dict[str, Any] | None:
    kind = form.get("http_auth", "none").strip()
    if kind == "none":
        return None
    if kind == "api_key":
        value = form.get("http_key_value", "")
        if value in ("", MASK):
            if not (before.http_auth == "api_key" and before.http_key_stored):
                raise InputError("type the API key", field="http_key_value")
            value = MASK
        name = form.get("http_key_name", "").strip()
        if not name:
            raise InputError("give the header (or cookie) name", field="http_key_name")
        where = form.get("http_key_in", "header").strip()
        if where not in ("header", "cookie"):
            raise InputError("choose header or cookie", field="http_key_in")
        return {"type": "api_key", "config": {"name": name, "value": value, "in": where}}
    if kind == "basic_auth":
        password = form.get("http_password", "")
        if password in ("", MASK):
            if not (before.http_auth == "basic_auth" and before.http_password_stored):
                raise InputError("type the password", field="http_password")
            password = MASK
        user = form.get("http_user", "").strip()
        return {"type": "basic_auth", "config": {"user": user, "password": password}}
    raise InputError("choose none, API key or basic auth", field="http_auth")


def intake_token_from_form(form: Mapping[str, str]) -> IntakeToken | None:
    """The new intake token the form asks for (typed, or made when the field is empty), or
    None to keep the stored tokens. Raise :class:`InputError` naming the field."""
    action = form.get("intake_action", "keep").strip()
    typed = form.get("intake_token", "").strip()
    if action not in INTAKE_ACTIONS:
        raise InputError("choose to keep, replace or add a token", field="intake_action")
    if action == "keep":
        if typed:
            raise InputError(
                "holds a token, but the stored tokens are to be kept; choose to replace them "
                "or to add it, or empty the field",
                field="intake_token",
            )
        return None
    return new_intake_token(typed, keep_others=action == "add")


def form_from_submission(form: Mapping[str, str], stored: TenantForm) -> TenantForm:
    """What to show again after a refused save: the fields as typed, never a credential."""
    out = TenantForm(**asdict(stored))
    for name in asdict(out):
        if name.endswith("_stored"):
            continue
        if name in form:
            setattr(out, name, form[name])
    return out


# -- presets for the picker -------------------------------------------------------------------


def _literal_user(template: str | None) -> str:
    """The username a URI template fixes (SendGrid's ``apikey``), else empty."""
    if not template or "@" not in template:
        return ""
    user = template.split("://", 1)[-1].rsplit("@", 1)[0].split(":", 1)[0]
    return "" if "{" in user else user


def preset_choice(preset: Preset) -> dict[str, Any]:
    """What the picker fills in for a preset, and the notes shown beside the form."""
    out: dict[str, Any] = {
        "name": preset.name,
        "title": preset.title,
        "kind": preset.kind,
        "summary": preset.summary,
        "notes": list(preset.notes),
        "steps": list(preset.steps),
        "credentials_url": preset.credentials_url or "",
        "limits": [limit.describe() for limit in preset.rate_limits],
        "username_format": preset.username_format or "",
    }
    if preset.kind == "smtp":
        host = preset.host or ""
        if "{region}" in host and preset.default_region:
            host = host.replace("{region}", preset.default_region)
        template = preset.uri_template or ""
        out.update(
            host=host,
            port=str(preset.port or ""),
            security="tls" if template.startswith("smtps://") else "starttls",
            username=_literal_user(template),
            login="@" in template,
        )
    else:
        config = preset.request_config or {}
        auth = _dict(config, "auth")
        auth_config = _dict(auth, "config")
        out.update(
            url=_text(config.get("url")),
            method=_text(config.get("method")) or "POST",
            headers=header_lines(_dict(config, "headers")),
            auth=_text(auth.get("type")) or "none",
            key_name=_text(auth_config.get("name")),
            key_in=_text(auth_config.get("in")) or "header",
            key_hint=_text(auth_config.get("value")),
            user=_text(auth_config.get("user")),
            body=_text(config.get("body")),
        )
    return out


def preset_choices() -> list[dict[str, Any]]:
    """Every preset the picker offers, SMTP ones first."""
    return [preset_choice(p) for p in PRESETS.values()]
