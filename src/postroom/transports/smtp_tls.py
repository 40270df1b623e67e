"""What an SMTP server shows of itself: the client TLS context, the TLS session's facts
(version, cipher, certificate), the advertised extensions, and whether a port speaks TLS first.
``test-smtp`` keeps these in an :class:`SmtpRecorder`; real sends only build the context."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from datetime import datetime

import aiosmtplib
from cryptography import x509

from postroom.config.smtp import SmtpSettings
from postroom.config.smtp_uri import SmtpUri
from postroom.net.targets import Target
from postroom.transports.base import Recorder


def build_tls_context(uri: SmtpUri, settings: SmtpSettings) -> ssl.SSLContext:
    """A client context: system trust store (honours ``SSL_CERT_FILE``), TLS 1.2 or newer,
    verification unless the URI says ``skip_ssl_verify=true``, and the client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not uri.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.client_cert_path:
        context.load_cert_chain(settings.client_cert_path, keyfile=settings.client_key_path)
    return context


@dataclass(slots=True)
class TlsFacts:
    """What ``test-smtp`` shows of a TLS session: version, cipher and the server certificate."""

    version: str | None
    cipher: str | None
    verified: bool
    subject: str | None = None
    issuer: str | None = None
    names: tuple[str, ...] = ()
    not_after: datetime | None = None


@dataclass(slots=True)
class SmtpRecorder(Recorder):
    """A :class:`Recorder` that also keeps what the server said about itself: the extensions
    of its last EHLO answer and the TLS session. Real sends attach no recorder at all."""

    extensions: dict[str, str] = field(default_factory=dict)
    auth_methods: list[str] = field(default_factory=list)
    tls: TlsFacts | None = None


def tls_facts(client: aiosmtplib.SMTP, *, verified: bool) -> TlsFacts | None:
    """The TLS version, cipher and server certificate of a connected client (None without
    TLS). The certificate is read even when it was not verified (``skip_ssl_verify``)."""
    ssl_object = client.get_transport_info("ssl_object")
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    facts = TlsFacts(
        version=ssl_object.version(), cipher=cipher[0] if cipher else None, verified=verified
    )
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return facts
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return facts
    facts.subject = cert.subject.rfc4514_string() or None
    facts.issuer = cert.issuer.rfc4514_string() or None
    facts.not_after = cert.not_valid_after_utc
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        facts.names = tuple(
            [*san.get_values_for_type(x509.DNSName)]
            + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        pass
    return facts


def describe_extensions(client: aiosmtplib.SMTP) -> str | None:
    """The server's advertised extensions on one line, e.g. ``STARTTLS, AUTH PLAIN LOGIN``."""
    extensions = client.esmtp_extensions
    if not extensions:
        return None
    parts = [f"{name.upper()} {value}".strip() for name, value in extensions.items()]
    return "offers " + ", ".join(parts)


def tls_version(client: aiosmtplib.SMTP) -> str:
    ssl_object = client.get_transport_info("ssl_object")
    version = ssl_object.version() if ssl_object is not None else None
    return str(version or "?")


async def speaks_tls_first(target: Target, tls_name: str, wait: float) -> bool:
    """A quick second connection to ``target`` that tries a TLS handshake first, within
    ``wait`` seconds (certificate not checked: the only question is whether the port speaks
    TLS)."""
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                target.address,
                target.port,
                ssl=probe,
                server_hostname=tls_name,
                ssl_handshake_timeout=wait,
            ),
            wait,
        )
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 1)
    return True
