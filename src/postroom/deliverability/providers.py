"""What each mail provider needs in a sender domain's DNS: the SPF include that authorises its
servers, the DKIM selectors it signs with when the domain is authenticated with it, and whether
it keeps the sender's address as the envelope sender (so that SPF can align with From)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from postroom.config.settings import CourierSettings


@dataclass(frozen=True, slots=True)
class ProviderDns:
    """One provider's DNS facts."""

    name: str
    spf_include: str
    dkim_selectors: tuple[str, ...]
    keeps_envelope_sender: bool  # False: the provider's own bounce domain, so SPF cannot align
    dkim_hint: str


SENDGRID = ProviderDns(
    "SendGrid",
    "sendgrid.net",
    ("s1", "s2"),
    False,
    "authenticate the domain in SendGrid (Settings > Sender Authentication), which gives the "
    "s1 and s2 CNAME records",
)
MAILGUN = ProviderDns(
    "Mailgun",
    "mailgun.org",
    ("mx", "smtp", "k1", "pic"),
    False,
    "publish the DKIM record Mailgun shows under Sending > Domains > DNS records",
)
SES = ProviderDns(
    "Amazon SES",
    "amazonses.com",
    (),
    False,
    "turn on Easy DKIM for the domain in SES and publish its three CNAME records",
)
POSTMARK = ProviderDns(
    "Postmark",
    "spf.mtasv.net",
    (),
    False,
    "publish the DKIM TXT record Postmark shows under Sender Signatures > DNS settings",
)
MICROSOFT = ProviderDns(
    "Microsoft 365",
    "spf.protection.outlook.com",
    ("selector1", "selector2"),
    True,
    "enable DKIM for the domain in Microsoft Defender (Email authentication settings) and "
    "publish the selector1 and selector2 CNAME records it shows",
)
AZURE = ProviderDns(
    "Azure Communication Services",
    "spf.azurecomm.net",
    ("selector1-azurecomm-prod-net", "selector2-azurecomm-prod-net"),
    False,
    "verify the custom domain in Azure Communication Services and publish its DKIM CNAMEs",
)
GOOGLE = ProviderDns(
    "Google Workspace",
    "_spf.google.com",
    ("google",),
    True,
    "generate the DKIM key in the Google Admin console (Apps > Gmail > Authenticate email) "
    "and publish it as google._domainkey",
)

_BY_PRESET = {
    "sendgrid": SENDGRID,
    "sendgrid-http": SENDGRID,
    "mailgun": MAILGUN,
    "mailgun-http": MAILGUN,
    "amazon-ses": SES,
    "postmark": POSTMARK,
    "postmark-http": POSTMARK,
    "microsoft365": MICROSOFT,
    "microsoft365-relay": MICROSOFT,
    "microsoft365-direct-send": MICROSOFT,
    "outlook": MICROSOFT,
    "azure-communication-services": AZURE,
    "google-workspace": GOOGLE,
    "gmail": GOOGLE,
}
_BY_HOST = (
    ("sendgrid.net", SENDGRID),
    ("sendgrid.com", SENDGRID),
    ("mailgun.org", MAILGUN),
    ("mailgun.net", MAILGUN),
    ("amazonaws.com", SES),
    ("postmarkapp.com", POSTMARK),
    ("office365.com", MICROSOFT),
    ("outlook.com", MICROSOFT),
    ("azurecomm.net", AZURE),
    ("gmail.com", GOOGLE),
    ("google.com", GOOGLE),
    ("googleapis.com", GOOGLE),
)


def provider_of(courier: CourierSettings) -> ProviderDns | None:
    """The provider a tenant sends through, from its preset or else its SMTP host or HTTP URL
    (None for an unknown host, the outbox, or a server of the operator's own)."""
    if courier.preset in _BY_PRESET:
        return _BY_PRESET[courier.preset]
    host = ""
    if courier.strategy == "smtp":
        uri = courier.smtp.uri()
        host = uri.host if uri is not None else ""
    elif courier.strategy == "http":
        host = urlsplit(courier.http.request_config.url or "").hostname or ""
    host = host.lower().rstrip(".")
    for suffix, provider in _BY_HOST:
        if host == suffix or host.endswith("." + suffix):
            return provider
    return None
