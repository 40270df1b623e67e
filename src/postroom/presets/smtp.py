"""SMTP provider presets (the README's table) and the connection URI each one builds.

The notes and steps are written for a person setting the provider up, in our own words; the
limits are the providers' documented defaults, which become a tenant's ``rate_limits`` when it
names the preset and sets none of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from postroom.errors import InputError
from postroom.presets.base import Preset, RateLimit

__all__ = [
    "MAILGUN_HOSTS",
    "SES_REGIONS",
    "SMTP_PRESETS",
    "UriResult",
    "build_uri",
    "derive_ses_smtp_password",
    "encode_credential",
    "looks_like_aws_secret_key",
]

# Regions with an Amazon SES SMTP endpoint (email-smtp.<region>.amazonaws.com), after the
# "Amazon Simple Email Service endpoints and quotas" page of the AWS General Reference.
SES_REGIONS: tuple[str, ...] = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
)

MAILGUN_HOSTS: dict[str, str] = {"us": "smtp.mailgun.org", "eu": "smtp.eu.mailgun.org"}

_M365_NOTES = (
    "SMTP AUTH (authenticated client submission) is switched off by default in newer Microsoft "
    "365 tenants and can be switched off for the whole organisation or per mailbox; both must "
    "allow it for this mailbox, or the login fails with 5.7.139.",
    "Security Defaults, or a Conditional Access policy that blocks legacy authentication, stop "
    "password logins over SMTP whatever the password. Microsoft is retiring basic SMTP AUTH; "
    "oauth2 (XOAUTH2, client credentials) avoids all of this.",
    "A mailbox sends only as itself unless it has Send As rights on the From address "
    "(otherwise 5.7.60 or SendAsDenied).",
    "Microsoft allows at most 3 simultaneous SMTP connections per mailbox: keep the worker "
    "concurrency of this tenant at 3 or less.",
    "Some guides describe smtp.office365.com:587 as a relay that needs no login; Microsoft "
    "refuses that with '530 5.7.57 Client not authenticated to send mail'. For login-free "
    "sending use the microsoft365-relay preset.",
)

_RELAY_ENDPOINT_NOTE = (
    "The host is your domain's MX endpoint: the domain with its dots written as dashes, followed "
    "by .mail.protection.outlook.com. Compare it with the MX record the Microsoft 365 admin "
    "center shows for the domain (Settings > Domains) and use exactly that host if it differs."
)
_PORT_25_NOTE = (
    "Port 25 must be open outbound from the machine running Postroom; many cloud providers "
    "block it by default, which shows up as connection_timeout."
)


def _smtp(
    name: str,
    title: str,
    summary: str,
    *,
    host: str,
    port: int = 587,
    uri_template: str,
    params: tuple[str, ...],
    username_format: str,
    credentials_url: str | None,
    steps: tuple[str, ...],
    notes: tuple[str, ...] = (),
    rate_limits: tuple[RateLimit, ...] = (),
    regions: tuple[str, ...] = (),
    default_region: str | None = None,
) -> Preset:
    return Preset(
        name=name,
        title=title,
        kind="smtp",
        summary=summary,
        notes=notes,
        rate_limits=rate_limits,
        credentials_url=credentials_url,
        uri_template=uri_template,
        host=host,
        port=port,
        security="STARTTLS required, certificate verified (smtp://)",
        username_format=username_format,
        steps=steps,
        params=params,
        regions=regions,
        default_region=default_region,
    )


SMTP_PRESETS: tuple[Preset, ...] = (
    _smtp(
        "sendgrid",
        "Twilio SendGrid",
        "Transactional email over SMTP with an API key.",
        host="smtp.sendgrid.net",
        uri_template="smtp://apikey:{password}@smtp.sendgrid.net:587/",
        params=("password",),
        username_format="the literal word apikey (always, for every account)",
        credentials_url="https://app.sendgrid.com/settings/api_keys",
        steps=(
            "Authenticate your sending domain (Settings > Sender Authentication) or at least "
            "verify the From address as a Single Sender.",
            "Create an API key (Settings > API Keys) with Restricted Access and Mail Send set to "
            "Full Access; copy it, SendGrid shows it only once.",
            "Run `postroom presets uri sendgrid --password <API key>` and put the URI in "
            "courier.smtp.connection_uri.",
            "Set courier.smtp.from_address to the verified sender or an address of the "
            "authenticated domain.",
        ),
        notes=(
            "The SMTP username is not your SendGrid login: it is always the word apikey, and "
            "the password is the API key itself (it starts with SG.).",
            "Mail from an address that is not a verified Sender Identity is refused with 550.",
            "The plan's credits cap how much you can send; when they run out SendGrid answers "
            "'451 Authentication failed: Maximum credits exceeded'.",
        ),
    ),
    _smtp(
        "mailgun",
        "Mailgun",
        "Transactional email over SMTP with per-domain SMTP credentials (US or EU region).",
        host="smtp.mailgun.org",
        uri_template="smtp://{username}:{password}@smtp.mailgun.org:587/",
        params=("username", "password", "region"),
        username_format="the SMTP login of the sending domain, e.g. postmaster@mg.example.org",
        credentials_url="https://app.mailgun.com/mg/sending/domains",
        regions=tuple(MAILGUN_HOSTS),
        default_region="us",
        steps=(
            "Add and verify a sending domain (a subdomain such as mg.example.org is usual) by "
            "publishing the DNS records Mailgun lists.",
            "Under the domain's settings, open SMTP credentials and create (or reset) a login "
            "and password.",
            "Note the region your account lives in: EU accounts use smtp.eu.mailgun.org, so "
            "pass --region eu.",
            "Run `postroom presets uri mailgun --username <login> --password <password> "
            "[--region eu]`.",
        ),
        notes=(
            "The SMTP password is not the account password and not the private API key.",
            "Sandbox domains only deliver to up to five Authorized Recipients who accepted an "
            "invitation.",
            "A US-region login does not work against the EU host and the other way round.",
        ),
    ),
    _smtp(
        "amazon-ses",
        "Amazon SES",
        "Amazon Simple Email Service over its regional SMTP endpoint.",
        host="email-smtp.{region}.amazonaws.com",
        uri_template="smtp://{username}:{password}@email-smtp.{region}.amazonaws.com:587/",
        params=("username", "password", "region"),
        username_format="the SMTP user name SES created (an access key id, AKIA...)",
        credentials_url="https://console.aws.amazon.com/ses/home#/smtp",
        regions=SES_REGIONS,
        steps=(
            "Pick the region you send from and verify the From domain (or address) there; "
            "identities are verified per region.",
            "In the SES console of that region open SMTP settings and choose Create SMTP "
            "credentials; keep the SMTP user name and SMTP password it shows.",
            "New accounts start in the sandbox: 200 messages a day, one a second, and only to "
            "verified recipients. Request production access before sending to real users.",
            "Run `postroom presets uri amazon-ses --region <region> --username <SMTP user "
            "name> --password <SMTP password>`.",
        ),
        notes=(
            "The SMTP password is not the AWS secret access key: SES derives it from the key for "
            "each region. If all you have is an access key and its 40-character secret, pass "
            "--derive-from-secret-key and Postroom computes the SMTP password the way AWS "
            "documents it.",
            "SMTP credentials only work in the region they were made for, so the --region "
            "must match the endpoint.",
            "Your account's quota and maximum send rate are in the SES console (Account "
            "dashboard); set courier.rate_limits to match them.",
        ),
    ),
    _smtp(
        "postmark",
        "Postmark",
        "Transactional email over SMTP with a server API token.",
        host="smtp.postmarkapp.com",
        uri_template="smtp://{password}:{password}@smtp.postmarkapp.com:587/",
        params=("password",),
        username_format="the Server API Token (the same value as the password)",
        credentials_url="https://account.postmarkapp.com/servers",
        steps=(
            "Add a Sender Signature for the From address, or verify the whole domain, and "
            "confirm it.",
            "Open the server you send from, then API Tokens, and copy the Server API Token (not "
            "the Account API token).",
            "Run `postroom presets uri postmark --password <Server API Token>`: the token is "
            "both the username and the password.",
        ),
        notes=(
            "Postmark sends through the server's default transactional stream; to use another "
            "message stream add the X-PM-Message-Stream header under courier.smtp.headers.",
            "From addresses must be a confirmed Sender Signature or belong to a verified domain.",
        ),
    ),
    _smtp(
        "microsoft365",
        "Microsoft 365 (authenticated submission)",
        "Exchange Online mailbox sending over SMTP AUTH on smtp.office365.com.",
        host="smtp.office365.com",
        uri_template="smtp://{username}:{password}@smtp.office365.com:587/",
        params=("username", "password"),
        username_format="the mailbox's full sign-in address (user@example.org)",
        credentials_url="https://admin.microsoft.com/",
        rate_limits=(RateLimit(30, "1m"), RateLimit(10_000, "1d", "recipients")),
        steps=(
            "Choose (or create) a licensed mailbox to send from.",
            "In the Microsoft 365 admin center open the user, Mail, Manage email apps, and "
            "tick Authenticated SMTP; make sure SMTP AUTH is not disabled for the whole "
            "organisation.",
            "If the account uses per-user MFA, create an app password for it; with Security "
            "Defaults or Conditional Access, password logins are blocked, and oauth2 is the way.",
            "Run `postroom presets uri microsoft365 --username <mailbox> --password "
            "<password>` and set from_address to that mailbox (or one it has Send As rights on).",
        ),
        notes=_M365_NOTES,
    ),
    _smtp(
        "microsoft365-oauth",
        "Microsoft 365 with OAuth2 (XOAUTH2)",
        "Exchange Online mailbox sending over smtp.office365.com with an app's OAuth2 token "
        "instead of a password (client credentials).",
        host="smtp.office365.com",
        uri_template="smtp://{username}@smtp.office365.com:587/",
        params=("username",),
        username_format="the mailbox to send as (user@example.org); no password",
        credentials_url="https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps",
        rate_limits=(RateLimit(30, "1m"), RateLimit(10_000, "1d", "recipients")),
        steps=(
            "In the Microsoft Entra admin center register an application (single tenant). "
            "Note its Application (client) ID and Directory (tenant) ID, and create a client "
            "secret under Certificates & secrets; copy the secret's Value, not its ID.",
            "Under API permissions add Office 365 Exchange Online > Application permissions > "
            "SMTP.SendAsApp, then press 'Grant admin consent'.",
            "Tell Exchange Online about the app: in Exchange Online PowerShell (Connect-"
            "ExchangeOnline) run New-ServicePrincipal -AppId <client id> -ObjectId <object id "
            "of the app under Enterprise applications>.",
            "Give that service principal the mailbox: Add-MailboxPermission -Identity "
            "<mailbox> -User <service principal id> -AccessRights FullAccess.",
            "Make sure Authenticated SMTP is on for the mailbox (Set-CASMailbox -Identity "
            "<mailbox> -SmtpClientAuthenticationDisabled $false); OAuth2 logins go through it "
            "too.",
            "Run `postroom presets uri microsoft365-oauth --username <mailbox>` for "
            "courier.smtp.connection_uri, and set courier.smtp.oauth2 to {provider: microsoft, "
            "tenant_id: <tenant id>, client_id: <client id>, client_secret: <secret value>}.",
        ),
        notes=(
            "No password is involved: Postroom asks Microsoft Entra ID for an access token "
            "(scope https://outlook.office365.com/.default), keeps it until shortly before it "
            "expires, and logs in with AUTH XOAUTH2 as the URI's mailbox. This keeps working "
            "after Microsoft switches basic SMTP AUTH off.",
            "Client secrets expire (at most after two years); an expired one shows up as "
            "oauth_token_rejected with AADSTS7000222. Note the date and renew it in time.",
            "The app can send only as mailboxes it was given permission on; a missing "
            "Add-MailboxPermission shows up as '535 5.7.3 Authentication unsuccessful'.",
            "For a government or national cloud, set oauth2.token_url to that cloud's token "
            "endpoint (e.g. https://login.microsoftonline.us/<tenant id>/oauth2/v2.0/token).",
            "Personal Outlook.com accounts cannot use an app of their own: use the outlook "
            "preset with oauth2 flow device_code and `postroom oauth login`.",
            "Microsoft allows at most 3 simultaneous SMTP connections per mailbox: keep the "
            "worker concurrency of this tenant at 3 or less.",
        ),
    ),
    _smtp(
        "microsoft365-relay",
        "Microsoft 365 SMTP relay (connector)",
        "Login-free relay through your domain's Exchange Online endpoint, trusted by an inbound "
        "connector; reaches outside recipients.",
        host="{domain}.mail.protection.outlook.com",
        port=25,
        uri_template="smtp://{domain}.mail.protection.outlook.com:25/",
        params=("domain",),
        username_format="none: the connector trusts your IP address or certificate",
        credentials_url="https://admin.exchange.microsoft.com/#/connectors",
        steps=(
            "Give the machine running Postroom a static public IP address (or a TLS client "
            "certificate whose name is one of your accepted domains).",
            "In the Exchange admin center create a connector from 'Your organization's email "
            "server' to 'Office 365' that identifies the sender by that IP address or "
            "certificate.",
            "Add the IP to the domain's SPF record (ip4:<address>) so recipients trust the mail.",
            "Run `postroom presets uri microsoft365-relay --domain <your domain>`; send from an "
            "address in one of your accepted domains.",
        ),
        notes=(
            _RELAY_ENDPOINT_NOTE,
            "Without a matching connector Exchange Online treats the connection as direct send "
            "and refuses outside recipients (550 5.7.54 or 5.7.64 TenantAttribution).",
            "smtp.office365.com:587 without a login is not a relay: Microsoft answers '530 "
            "5.7.57 Client not authenticated to send mail'. The connector endpoint above is the "
            "login-free way.",
            "For a certificate-based connector, set courier.smtp.client_cert_path and "
            "client_key_path.",
            _PORT_25_NOTE,
        ),
    ),
    _smtp(
        "microsoft365-direct-send",
        "Microsoft 365 direct send",
        "Login-free delivery to your own tenant's mailboxes only, through your domain's "
        "Exchange Online endpoint.",
        host="{domain}.mail.protection.outlook.com",
        port=25,
        uri_template="smtp://{domain}.mail.protection.outlook.com:25/",
        params=("domain",),
        username_format="none",
        credentials_url=None,
        steps=(
            "Run `postroom presets uri microsoft365-direct-send --domain <your domain>`.",
            "Send from an address in one of your accepted domains, to recipients that are "
            "mailboxes of your own Microsoft 365 organisation.",
            "Add the sending IP address to the domain's SPF record so the mail is not marked as "
            "spoofed.",
        ),
        notes=(
            "Direct send only reaches mailboxes in your own organisation; anything addressed "
            "outside is refused (550 5.7.54 Unable to relay). For outside recipients use "
            "microsoft365-relay with a connector, or microsoft365 with a login.",
            "An Exchange admin can switch direct send off for the organisation "
            "(Set-OrganizationConfig -RejectDirectSend $true); then use the relay instead.",
            _RELAY_ENDPOINT_NOTE,
            _PORT_25_NOTE,
        ),
    ),
    _smtp(
        "azure-communication-services",
        "Azure Communication Services Email",
        "Email through an Azure Communication Services resource, logged in with a Microsoft "
        "Entra application.",
        host="smtp.azurecomm.net",
        uri_template="smtp://{username}:{password}@smtp.azurecomm.net:587/",
        params=("username", "password"),
        username_format="<resource name>.<Entra application id>.<Entra tenant id>, or an SMTP "
        "Username created on the resource",
        credentials_url="https://portal.azure.com/#view/HubsExtension/BrowseResource/resourceType/"
        "Microsoft.Communication%2FCommunicationServices",
        steps=(
            "Create an Email Communication Service with a verified domain (or the Azure-managed "
            "one) and connect it to your Communication Services resource.",
            "Register an application in Microsoft Entra ID and create a client secret for it.",
            "Give the application a role on the Communication Services resource that may send "
            "email (for example 'Communication and Email Service Owner').",
            "Use <resource name>.<application id>.<tenant id> as the username, or create an "
            "SMTP Username for the application on the resource and use that.",
            "Run `postroom presets uri azure-communication-services --username <username> "
            "--password <client secret>`; send from a MailFrom address of the connected domain.",
        ),
        notes=(
            "The password is the Entra application's client secret, not a user's password; "
            "client secrets expire, so note the expiry date.",
            "A wrong username format, an expired secret or a missing role all come back as "
            "'535 5.7.3 Authentication unsuccessful'.",
            "Azure-managed domains have low sending limits; use a custom verified domain and "
            "ask Azure support for higher quotas before going live.",
        ),
    ),
    _smtp(
        "google-workspace",
        "Google Workspace",
        "Sending as a Google Workspace user through smtp.gmail.com with an app password.",
        host="smtp.gmail.com",
        uri_template="smtp://{username}:{password}@smtp.gmail.com:587/",
        params=("username", "password"),
        username_format="the user's full address (user@example.org)",
        credentials_url="https://myaccount.google.com/apppasswords",
        rate_limits=(RateLimit(2_000, "1d"),),
        steps=(
            "Turn on 2-Step Verification for the sending user (the admin must allow it for the "
            "organisation).",
            "Create an app password at myaccount.google.com/apppasswords; it is 16 letters.",
            "Run `postroom presets uri google-workspace --username <address> --password <app "
            "password>`.",
        ),
        notes=(
            "Google does not accept the account's normal password from apps; only an app "
            "password or OAuth2.",
            "A user may send about 2,000 messages a day; beyond that Google answers 550 5.4.5 "
            "until the limit resets.",
            "Workspace admins can also offer smtp-relay.gmail.com (SMTP relay service), which "
            "authenticates by IP address; that is a different set-up.",
        ),
    ),
    _smtp(
        "google-workspace-oauth",
        "Google Workspace with OAuth2 (XOAUTH2)",
        "Sending as Google Workspace users through smtp.gmail.com with a service account's "
        "OAuth2 token (domain-wide delegation) instead of an app password.",
        host="smtp.gmail.com",
        uri_template="smtp://{username}@smtp.gmail.com:587/",
        params=("username",),
        username_format="the Workspace user to send as (user@example.org); no password",
        credentials_url="https://console.cloud.google.com/iam-admin/serviceaccounts",
        rate_limits=(RateLimit(2_000, "1d"),),
        steps=(
            "In a Google Cloud project create a service account (IAM & Admin > Service "
            "accounts) and add a JSON key to it; keep the downloaded file safe.",
            "Note the service account's client ID (a long number, on its details page).",
            "In the Google Admin console open Security > Access and data control > API "
            "controls > Domain-wide delegation, add that client ID with the OAuth scope "
            "https://mail.google.com/ (a super administrator must do this).",
            "Run `postroom presets uri google-workspace-oauth --username <user>` for "
            "courier.smtp.connection_uri, and set courier.smtp.oauth2 to {provider: google, "
            "service_account_file: /path/to/key.json}; tenants saved through the API give the "
            "key's content as service_account_json instead.",
        ),
        notes=(
            "Postroom signs a short JWT with the service account's key (RS256), exchanges it "
            "at the key file's token_uri for an access token that acts as the sending user "
            "(oauth2.subject, by default the URI's user), and logs in with AUTH XOAUTH2.",
            "Domain-wide delegation lets the service account act as any user of the domain: "
            "keep the key like a password. Postroom stores an inline key encrypted.",
            "A delegation that is missing or lacks the https://mail.google.com/ scope shows up "
            "as oauth_token_rejected (unauthorized_client); a deleted key as 'Invalid JWT "
            "Signature'; a wrong clock on this machine as an invalid_grant about iat and exp.",
            "A user may send about 2,000 messages a day; beyond that Google answers 550 5.4.5 "
            "until the limit resets.",
        ),
    ),
    _smtp(
        "gmail",
        "Gmail (personal account)",
        "Sending as a personal Gmail account through smtp.gmail.com with an app password.",
        host="smtp.gmail.com",
        uri_template="smtp://{username}:{password}@smtp.gmail.com:587/",
        params=("username", "password"),
        username_format="the full Gmail address (name@gmail.com)",
        credentials_url="https://myaccount.google.com/apppasswords",
        rate_limits=(RateLimit(500, "1d"),),
        steps=(
            "Turn on 2-Step Verification for the Google account.",
            "Create an app password at myaccount.google.com/apppasswords; it is 16 letters.",
            "Run `postroom presets uri gmail --username <address> --password <app password>`.",
        ),
        notes=(
            "The account's normal password does not work over SMTP: Gmail answers 534 5.7.9 "
            "(application-specific password required) or 535 5.7.8.",
            "A personal account may send about 500 messages a day, which is little for an "
            "identity system; use a transactional provider for production.",
        ),
    ),
    _smtp(
        "outlook",
        "Outlook.com (personal account)",
        "Personal Outlook.com / Hotmail accounts through smtp-mail.outlook.com.",
        host="smtp-mail.outlook.com",
        uri_template="smtp://{username}:{password}@smtp-mail.outlook.com:587/",
        params=("username", "password"),
        username_format="the full Outlook.com address",
        credentials_url="https://account.microsoft.com/security",
        steps=(
            "Register an application in Microsoft Entra ID for personal Microsoft accounts.",
            "Configure courier.smtp.oauth2 with provider microsoft and flow device_code, then "
            "run `postroom oauth login` once and sign in as the mailbox.",
            "Set courier.smtp.connection_uri to smtp://<address>@smtp-mail.outlook.com:587/ "
            "(no password: the OAuth2 token replaces it). `postroom presets uri outlook` prints "
            "the password form only for completeness; Microsoft refuses it.",
        ),
        notes=(
            "Since 2024-09-16 Microsoft refuses passwords (and app passwords) over SMTP for "
            "personal Outlook.com and Hotmail accounts: the login fails with '535 5.7.139 "
            "Authentication unsuccessful, basic authentication is disabled'. Use OAuth2 "
            "(oauth2.provider microsoft, flow device_code).",
            "Personal accounts have low daily sending limits and are not meant for application "
            "mail; use a transactional provider for production.",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class UriResult:
    """A connection URI built from a preset, with warnings that do not stop it."""

    uri: str
    warnings: tuple[str, ...] = ()


def encode_credential(value: str) -> str:
    """Percent-encode for the user or password part of a URI (RFC 3986: everything except
    ``A-Z a-z 0-9 - . _ ~``)."""
    return quote(value, safe="")


# -- Amazon SES ---------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"[A-Za-z0-9/+]{40}")
_ACCESS_KEY_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")


def looks_like_aws_secret_key(value: str) -> bool:
    """True for a 40-character AWS secret access key (an SES SMTP password has 44)."""
    return _SECRET_KEY.fullmatch(value) is not None


def derive_ses_smtp_password(secret_access_key: str, region: str) -> str:
    """The Amazon SES SMTP password for an IAM secret access key in ``region``.

    AWS's documented algorithm (version 4): an HMAC-SHA256 chain over the date ``11111111``,
    the region, ``ses``, ``aws4_request`` and ``SendRawEmail``, keyed first with ``AWS4`` plus
    the secret, then the version byte 0x04 in front, base64-encoded.
    """

    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()

    signature = sign(("AWS4" + secret_access_key).encode("utf-8"), "11111111")
    for part in (region, "ses", "aws4_request", "SendRawEmail"):
        signature = sign(signature, part)
    return base64.b64encode(bytes([0x04]) + signature).decode("ascii")


# -- building the URI ---------------------------------------------------------------------

_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ACS_USERNAME = re.compile(rf"[^.\s|]+\.{_UUID}\.{_UUID}")
_APP_PASSWORD = re.compile(r"[a-z]{4}(?: ?[a-z]{4}){3}")


@dataclass(slots=True)
class _Inputs:
    username: str | None
    password: str | None
    region: str | None
    domain: str | None
    derive: bool
    warnings: list[str]


def _need(value: str | None, name: str, preset: Preset, hint: str) -> str:
    if value is None or value == "":
        raise InputError(f"{preset.name} needs --{name}: {hint}", field=name)
    return value


def _no_login(inputs: _Inputs, preset: Preset) -> None:
    if inputs.username or inputs.password:
        raise InputError(
            f"{preset.name} logs in with no username or password (an inbound connector or "
            "direct send trusts your IP address); leave out --username and --password, or use "
            "the microsoft365 preset for a mailbox login",
            field="username" if inputs.username else "password",
        )


def _sendgrid(inputs: _Inputs, preset: Preset) -> None:
    if inputs.username is not None and inputs.username != "apikey":
        raise InputError(
            "SendGrid's SMTP username is always the word apikey, not your account name; "
            "leave out --username (or pass apikey) and give the API key as --password",
            field="username",
        )
    inputs.username = "apikey"
    key = _need(inputs.password, "password", preset, "a SendGrid API key with Mail Send access")
    if not key.startswith("SG."):
        inputs.warnings.append(
            "the password does not look like a SendGrid API key (they start with SG.); "
            "SendGrid accepts only an API key over SMTP, not the account password"
        )


def _mailgun(inputs: _Inputs, preset: Preset) -> None:
    region = (inputs.region or "us").lower()
    if region not in MAILGUN_HOSTS:
        raise InputError(
            f"Mailgun has no region {inputs.region!r}; use one of: {', '.join(MAILGUN_HOSTS)}",
            field="region",
        )
    inputs.region = region
    user = _need(inputs.username, "username", preset, "the domain's SMTP login")
    _need(inputs.password, "password", preset, "the SMTP password of that login")
    if "@" not in user:
        inputs.warnings.append(
            f"Mailgun SMTP logins look like postmaster@<sending domain>; {user!r} has no @"
        )


def _ses(inputs: _Inputs, preset: Preset) -> None:
    listing = ", ".join(SES_REGIONS)
    if not inputs.region:
        raise InputError(
            f"amazon-ses needs --region (the region of the SMTP endpoint); one of: {listing}",
            field="region",
        )
    region = inputs.region.lower()
    if region not in SES_REGIONS:
        raise InputError(
            f"Amazon SES has no SMTP endpoint in region {inputs.region!r}; use one of: {listing}",
            field="region",
        )
    inputs.region = region
    user = _need(inputs.username, "username", preset, "the SMTP user name from the SES console")
    secret = _need(inputs.password, "password", preset, "the SMTP password from the SES console")
    if inputs.derive:
        if not looks_like_aws_secret_key(secret):
            raise InputError(
                "--derive-from-secret-key expects the IAM user's 40-character secret access key "
                "as --password; the value given is not one",
                field="password",
            )
        inputs.password = derive_ses_smtp_password(secret, region)
        inputs.warnings.append(
            "derived the SMTP password from the secret access key for region "
            f"{region}; the IAM user needs permission for ses:SendRawEmail"
        )
    elif looks_like_aws_secret_key(secret):
        raise InputError(
            "this looks like an AWS secret access key (40 characters), not an SES SMTP "
            "password (44 characters, derived per region). Create SMTP credentials in the "
            "SES console, or pass --derive-from-secret-key to compute the SMTP password "
            "from the key",
            field="password",
        )
    if not _ACCESS_KEY_ID.fullmatch(user):
        inputs.warnings.append(
            "SES SMTP user names are access key ids (20 characters starting with AKIA); "
            f"{user!r} does not look like one"
        )


def _postmark(inputs: _Inputs, preset: Preset) -> None:
    if inputs.username and inputs.password and inputs.username != inputs.password:
        raise InputError(
            "Postmark uses the Server API Token as both username and password; give it once, "
            "as --password",
            field="username",
        )
    token = inputs.password or inputs.username
    inputs.password = _need(token, "password", preset, "the server's Server API Token")
    if not re.fullmatch(_UUID, inputs.password):
        inputs.warnings.append(
            "Postmark Server API Tokens look like 8-4-4-4-12 hexadecimal groups; check that "
            "this is the server's token and not the account token"
        )


def _mailbox(inputs: _Inputs, preset: Preset) -> None:
    user = _need(inputs.username, "username", preset, "the mailbox address")
    _need(inputs.password, "password", preset, "the mailbox's password or app password")
    if "@" not in user:
        inputs.warnings.append(
            f"{preset.title} expects the full mailbox address as the username; {user!r} has no @"
        )


def _google(inputs: _Inputs, preset: Preset) -> None:
    _mailbox(inputs, preset)
    assert inputs.password is not None
    if not _APP_PASSWORD.fullmatch(inputs.password):
        inputs.warnings.append(
            "the password does not look like a Google app password (16 letters); Google "
            "refuses the account's normal password over SMTP"
        )


def _outlook(inputs: _Inputs, preset: Preset) -> None:
    _mailbox(inputs, preset)
    inputs.warnings.append(
        "Microsoft has refused passwords over SMTP for personal Outlook.com accounts since "
        "2024-09-16: configure oauth2 (provider microsoft, flow device_code) and run "
        "`postroom oauth login`"
    )


def _oauth_mailbox(inputs: _Inputs, preset: Preset) -> None:
    if inputs.password:
        raise InputError(
            f"{preset.name} logs in with an OAuth2 token, not a password; leave out --password "
            "and configure courier.smtp.oauth2 instead",
            field="password",
        )
    user = _need(inputs.username, "username", preset, "the mailbox to send as")
    if "@" not in user:
        inputs.warnings.append(
            f"{preset.title} expects the full mailbox address as the username; {user!r} has no @"
        )


def _acs(inputs: _Inputs, preset: Preset) -> None:
    user = _need(inputs.username, "username", preset, "<resource>.<application id>.<tenant id>")
    _need(inputs.password, "password", preset, "the Entra application's client secret")
    if _ACS_USERNAME.fullmatch(user):
        return
    malformed = "|" in user or re.search(_UUID, user) is not None or user.count(".") >= 2
    if malformed and "@" not in user:
        inputs.warnings.append(
            f"{user!r} is neither <resource name>.<application id>.<tenant id> (two GUIDs "
            "after the resource name, separated by dots) nor a plain SMTP Username; check the "
            "format, or create an SMTP Username on the Communication Services resource"
        )


def _relay(inputs: _Inputs, preset: Preset) -> None:
    _no_login(inputs, preset)
    domain = _need(inputs.domain, "domain", preset, "your email domain, e.g. example.org")
    domain = domain.strip().lower().rstrip(".")
    if _DOMAIN.fullmatch(domain) is None:
        raise InputError(
            f"{inputs.domain!r} is not a domain name; give your email domain, e.g. example.org",
            field="domain",
        )
    inputs.domain = domain.replace(".", "-")


_CHECKS: dict[str, Callable[[_Inputs, Preset], None]] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "amazon-ses": _ses,
    "postmark": _postmark,
    "microsoft365": _mailbox,
    "microsoft365-oauth": _oauth_mailbox,
    "microsoft365-relay": _relay,
    "microsoft365-direct-send": _relay,
    "azure-communication-services": _acs,
    "google-workspace": _google,
    "google-workspace-oauth": _oauth_mailbox,
    "gmail": _google,
    "outlook": _outlook,
}


def build_uri(
    preset: Preset,
    *,
    username: str | None = None,
    password: str | None = None,
    region: str | None = None,
    domain: str | None = None,
    derive_from_secret_key: bool = False,
) -> UriResult:
    """The connection URI for an SMTP preset, in the documented format, with the user and
    password percent-encoded (RFC 3986 unreserved characters stay as they are).

    Raises :class:`InputError` (naming the option) for a missing or invalid value; things that
    are suspicious but may be right come back as warnings. Error texts never contain the
    password.
    """
    if preset.kind != "smtp" or preset.uri_template is None:
        raise InputError(
            f"{preset.name} is an HTTP API preset and has no SMTP connection URI; see "
            f"`postroom presets show {preset.name}` for its request_config",
            field="name",
        )
    if derive_from_secret_key and preset.name != "amazon-ses":
        raise InputError(
            "--derive-from-secret-key only applies to amazon-ses", field="derive-from-secret-key"
        )
    inputs = _Inputs(username, password, region, domain, derive_from_secret_key, [])
    if region is not None and not preset.regions:
        raise InputError(f"{preset.name} has no regions; leave out --region", field="region")
    if domain is not None and "domain" not in preset.params:
        raise InputError(f"{preset.name} takes no --domain", field="domain")
    _CHECKS[preset.name](inputs, preset)
    uri = preset.uri_template.format(
        username=encode_credential(inputs.username or ""),
        password=encode_credential(inputs.password or ""),
        region=inputs.region or "",
        domain=inputs.domain or "",
    )
    if preset.name == "mailgun":
        uri = uri.replace(MAILGUN_HOSTS["us"], MAILGUN_HOSTS[inputs.region or "us"])
    return UriResult(uri, tuple(inputs.warnings))
