"""SMTP delivery on aiosmtplib, in the six security modes of the connection URI.

We open the TCP socket ourselves (so that ``dns`` and ``connect`` are steps of their own) and
hand it to aiosmtplib for the SMTP conversation. Each step goes through
:meth:`SmtpConnection._step`, the one place where library errors are wrapped into
:class:`~postroom.errors.DeliveryError` with their stage and reply, and where a
:class:`~postroom.transports.base.Recorder` (``test-smtp``) sees the conversation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TypeVar

import aiosmtplib
from aiosmtplib import SMTPResponse
from cryptography import x509

from postroom.codes import DiagnosisCode
from postroom.config.settings import SmtpSettings
from postroom.config.smtp_uri import Security, SmtpUri
from postroom.errors import DeliveryError, OAuthError, readable
from postroom.net.targets import Target, resolve_target
from postroom.oauth.client import AccessToken, RefreshTokenKeeper, TokenCache, token_cache
from postroom.transports.base import Envelope, Recorder, SendResult
from postroom.transports.evidence import smtp_message_id

T = TypeVar("T")


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


def _reply(response: SMTPResponse) -> str:
    return readable(f"{response.code} {' '.join(response.message.split())}".strip())


IMPLICIT_TLS_PORT = 465
"""The port where a greeting that never comes means "this port speaks TLS first"."""


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


class SmtpConnection:
    """One SMTP session: opened with :meth:`open`, then any number of :meth:`deliver` calls."""

    def __init__(
        self,
        uri: SmtpUri,
        settings: SmtpSettings,
        *,
        tls_context: ssl.SSLContext | None,
        recorder: Recorder | None = None,
        allow_private_targets: bool = True,
        tokens: TokenCache | None = None,
    ) -> None:
        self.uri = uri
        self.settings = settings
        self.tls_context = tls_context
        self.recorder = recorder
        self.allow_private_targets = allow_private_targets
        self.tokens = tokens
        self.client: aiosmtplib.SMTP | None = None
        self.delivered = 0
        self.auth_skipped = False  # the server offered AUTH and the URI has no login
        self._peer: Target | None = None  # the checked address open() connected to

    @property
    def usable(self) -> bool:
        """True while the session is open and in a clean state for the next message."""
        return self.client is not None and self.client.is_connected

    async def _step(
        self,
        stage: str,
        action: Callable[[], Awaitable[T]],
        *,
        detail: Callable[[T], str | None] | None = None,
    ) -> T:
        """Run one step; record it; wrap any failure into a DeliveryError for ``stage``."""
        if self.recorder is None:  # a real send: nobody watches the steps
            try:
                return await action()
            except DeliveryError:
                raise
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise self._failure(stage, exc) from exc
        with self.recorder.timed(stage) as step:
            try:
                result = await action()
            except DeliveryError as exc:
                step.stage = exc.stage
                step.reply = exc.reply
                step.detail = str(exc)
                raise
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                error = self._failure(stage, exc)
                if error.reply is not None:
                    step.reply = error.reply
                else:
                    step.detail = str(error)
                raise error from exc
            if isinstance(result, SMTPResponse):
                step.reply = _reply(result)
            if detail is not None:
                step.detail = detail(result)
            return result

    def _failure(self, stage: str, exc: BaseException) -> DeliveryError:
        error = _delivery_error(stage, exc)
        error.auth_skipped = self.auth_skipped
        return error

    async def open(self) -> None:
        """Resolve, connect, (implicit TLS), greeting, EHLO, (STARTTLS, EHLO), AUTH."""
        uri, timeout = self.uri, self.settings.timeout
        loop = asyncio.get_running_loop()

        async def resolve() -> list[Target]:
            # Connect only to the addresses checked here (SSRF guard for API tenants).
            return await resolve_target(
                uri.host,
                uri.port,
                allow_private_targets=self.allow_private_targets,
                timeout=timeout,
            )

        targets = await self._step(
            "dns", resolve, detail=lambda a: f"{uri.host} -> {', '.join(t.address for t in a)}"
        )

        async def connect() -> socket.socket:
            last: BaseException | None = None
            for target in targets:
                sock = socket.socket(target.family, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    await asyncio.wait_for(
                        loop.sock_connect(sock, (target.address, target.port)), timeout
                    )
                    self._peer = target
                    return sock
                except (OSError, TimeoutError) as exc:
                    sock.close()
                    last = exc
            assert last is not None
            if isinstance(last, TimeoutError):
                raise DeliveryError(
                    f"no answer from {uri.host}:{uri.port} within {timeout:g}s",
                    stage="connect",
                    hint="connection_timeout",
                ) from last
            raise DeliveryError(
                f"cannot connect to {uri.host}:{uri.port}: {getattr(last, 'strerror', last)}",
                stage="connect",
                hint="connection_refused" if isinstance(last, ConnectionRefusedError) else None,
            ) from last

        sock = await self._step("connect", connect, detail=lambda s: f"connected to {_peer(s)}")
        implicit = uri.security is Security.IMPLICIT_TLS
        client = aiosmtplib.SMTP(
            hostname=uri.tls_name,
            sock=sock,
            use_tls=implicit,
            start_tls=False,
            tls_context=self.tls_context if implicit else None,
            local_hostname=self.settings.local_name,
            timeout=timeout,
        )
        self.client = client
        try:
            await self._handshake(client, implicit)
        except BaseException:
            client.close()
            self.client = None
            raise

    async def _handshake(self, client: aiosmtplib.SMTP, implicit: bool) -> None:
        uri = self.uri
        await self._step(
            "tls" if implicit else "connect",
            client.connect if implicit else self._greeting,
            detail=lambda r: (
                f"TLS {_tls_version(client)} with {uri.tls_name}{self._observe_tls(client)}; "
                f"greeting {_reply(r)}"
                if implicit
                else f"greeting {_reply(r)}"
            ),
        )
        await self._step("ehlo", self._ehlo, detail=lambda r: self._observe_ehlo(client))
        if uri.security is Security.STARTTLS:

            async def starttls() -> SMTPResponse:
                if not client.supports_extension("starttls"):
                    raise DeliveryError(
                        "the server does not offer STARTTLS, and the URI requires it",
                        stage="starttls",
                        hint="starttls_unavailable",
                    )
                try:
                    return await client.starttls(
                        server_hostname=uri.tls_name, tls_context=self.tls_context
                    )
                except (ssl.SSLError, aiosmtplib.SMTPConnectError) as exc:
                    raise DeliveryError(_describe("tls", exc), stage="tls") from exc

            await self._step(
                "starttls",
                starttls,
                detail=lambda r: (
                    f"TLS {_tls_version(client)} with {uri.tls_name}{self._observe_tls(client)}"
                ),
            )
            await self._step("ehlo", self._ehlo, detail=lambda r: self._observe_ehlo(client))
        if self.tokens is not None:
            await self._oauth_login(self.tokens)
        elif uri.username is not None:
            await self._step("auth", self._login, detail=lambda r: f"logged in as {uri.username}")
        else:
            self.auth_skipped = client.supports_extension("auth")

    async def _greeting(self) -> SMTPResponse:
        """Wait for the greeting of a plain (STARTTLS or cleartext) connection. A server that
        never greets on port 465, or that answers a TLS handshake on a second connection,
        expects implicit TLS: that is ``tls_wrong_mode``, not a timeout."""
        assert self.client is not None
        uri, timeout = self.uri, self.settings.timeout
        # The greeting wait and the TLS probe share one budget: together they take `timeout`.
        probe = 0.0 if uri.port == IMPLICIT_TLS_PORT else min(timeout / 4, 5.0)
        started = time.monotonic()
        try:
            return await self.client.connect(timeout=timeout - probe)
        except aiosmtplib.SMTPConnectTimeoutError as exc:
            left = timeout - (time.monotonic() - started)
            if not probe or await self._speaks_tls_first(max(left, 0.1)):
                raise DeliveryError(
                    f"no greeting from {uri.host}:{uri.port}: the port expects TLS from the "
                    "first byte (implicit TLS), so smtp:// waits for a greeting that never comes",
                    stage="connect",
                    hint="tls_wrong_mode",
                ) from exc
            silent = DeliveryError(
                f"{uri.host}:{uri.port} accepted the connection but sent no greeting within "
                f"{timeout:g}s",
                stage="connect",
                hint="connection_timeout",
            )
            silent.situation = "no_greeting"
            raise silent from exc

    async def _speaks_tls_first(self, wait: float) -> bool:
        """A quick second connection that tries a TLS handshake first, within ``wait``
        seconds (certificate not checked: the only question is whether the port speaks TLS)."""
        probe = ssl.create_default_context()
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        target = self._peer  # resolved and checked by open(): never resolved again
        if target is None:
            return False
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    target.address,
                    target.port,
                    ssl=probe,
                    server_hostname=self.uri.tls_name,
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

    def _observe_ehlo(self, client: aiosmtplib.SMTP) -> str | None:
        """Keep the advertised extensions for ``test-smtp``; describe them for the step."""
        if isinstance(self.recorder, SmtpRecorder):
            self.recorder.extensions = dict(client.esmtp_extensions)
            self.recorder.auth_methods = list(client.server_auth_methods)
        return describe_extensions(client)

    def _observe_tls(self, client: aiosmtplib.SMTP) -> str:
        """Keep the TLS facts for ``test-smtp``; the certificate's part of the step detail."""
        if not isinstance(self.recorder, SmtpRecorder):
            return ""
        facts = tls_facts(client, verified=self.uri.verify)
        self.recorder.tls = facts
        if facts is None or facts.subject is None:
            return ""
        expires = f", expires {facts.not_after:%Y-%m-%d}" if facts.not_after else ""
        checked = "" if facts.verified else " (not verified)"
        return f"; certificate {facts.subject}{expires}{checked}"

    async def _ehlo(self) -> SMTPResponse:
        assert self.client is not None
        try:
            return await self.client.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            if exc.code >= 500:
                return await self.client.helo()
            raise

    def _require_auth(self, client: aiosmtplib.SMTP) -> None:
        if not client.supports_extension("auth"):
            hint: DiagnosisCode = "auth_unsupported"
            if self.uri.security is Security.CLEARTEXT and client.supports_extension("starttls"):
                hint = "starttls_required"
            raise DeliveryError(
                "the server offers no AUTH command on this connection", stage="auth", hint=hint
            )

    async def _login(self) -> SMTPResponse:
        client, uri = self.client, self.uri
        assert client is not None and uri.username is not None
        methods = client.server_auth_methods
        self._require_auth(client)
        password = uri.password or ""
        if "plain" in methods:
            return await client.auth_plain(uri.username, password)
        if "login" in methods:
            return await client.auth_login(uri.username, password)
        raise DeliveryError(
            f"the server offers AUTH {' '.join(m.upper() for m in methods)}, "
            "but Postroom logs in with PLAIN or LOGIN",
            stage="auth",
            hint="auth_unsupported",
        )

    async def _oauth_login(self, tokens: TokenCache) -> None:
        """A ``token`` step (the access token's expiry is recorded, never the token), then
        AUTH XOAUTH2. A refused token is dropped from the cache and a new one tried once."""
        user = self.settings.xoauth2_user() or ""
        for last in (False, True):
            token = await self._step(
                "token", tokens.get, detail=lambda t: t.describe(tokens.source)
            )
            try:
                await self._step(
                    "auth",
                    lambda t=token: self._xoauth2(user, t),  # type: ignore[misc]
                    detail=lambda r: f"logged in as {user} with XOAUTH2",
                )
                return
            except OAuthError:
                if last or not self.usable:
                    raise
                tokens.drop(token)

    async def _xoauth2(self, user: str, token: AccessToken) -> SMTPResponse:
        """SASL XOAUTH2: ``user=<user>^Aauth=Bearer <token>^A^A``. A server that refuses
        the way Gmail does (a 334 challenge carrying a base64 JSON error) is answered with an
        empty line, after which its final reply (535) follows."""
        client = self.client
        assert client is not None
        self._require_auth(client)
        methods = client.server_auth_methods
        if "xoauth2" not in methods:
            raise DeliveryError(
                f"the server offers AUTH {' '.join(m.upper() for m in methods)}, but not "
                "XOAUTH2, which the oauth2 settings need",
                stage="auth",
                hint="auth_unsupported",
            )
        blob = f"user={user}\x01auth=Bearer {token.value}\x01\x01".encode()
        response = await client.execute_command(b"AUTH", b"XOAUTH2", base64.b64encode(blob))
        challenge: str | None = None
        if response.code == 334:
            challenge = _xoauth2_challenge(response.message)
            response = await client.execute_command(b"")
        if response.code == 235:
            return response
        text = " ".join(response.message.split())
        if challenge:
            text = f"{text} [XOAUTH2 error: {challenge}]"
        raise OAuthError(
            "the server refused the OAuth2 access token",
            stage="auth",
            reply_code=response.code,
            reply_text=text,
            provider=self.settings.oauth2.provider,
        )

    async def deliver(self, envelope: Envelope) -> SendResult:
        """MAIL, RCPT, DATA for one message on the open session."""
        client = self.client
        assert client is not None
        await self._step("mail", lambda: client.mail(envelope.sender))
        try:
            for recipient in envelope.recipients:
                await self._step("rcpt", lambda r=recipient: client.rcpt(r))  # type: ignore[misc]
            response = await self._step("data", lambda: client.data(envelope.data))
        except DeliveryError:
            await self._reset()
            raise
        self.delivered += 1
        reply = _reply(response)
        host = f"[{self.uri.host}]" if ":" in self.uri.host else self.uri.host
        return SendResult(
            reply=reply,
            provider_message_id=smtp_message_id(reply),
            transport="smtp",
            host=f"{host}:{self.uri.port}",
        )

    async def check_envelope(self, envelope: Envelope) -> None:
        """MAIL and RCPT for ``envelope`` without DATA, then RSET (``test-smtp --no-send``):
        the server says whether it would take the message, and nothing is sent."""
        client = self.client
        assert client is not None
        await self._step("mail", lambda: client.mail(envelope.sender))
        try:
            for recipient in envelope.recipients:
                await self._step("rcpt", lambda r=recipient: client.rcpt(r))  # type: ignore[misc]
        finally:
            await self._reset()

    async def _reset(self) -> None:
        """After a refused transaction, RSET so the session can carry the next message."""
        if self.client is None or not self.client.is_connected:
            return
        try:
            await self.client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.abort()

    async def quit(self) -> None:
        """Say QUIT politely; errors are recorded but never raised."""
        if self.client is None:
            return
        client = self.client
        try:
            if client.is_connected:
                await self._step("quit", client.quit)
        except DeliveryError:
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection without a word."""
        if self.client is not None:
            self.client.close()
            self.client = None


def _xoauth2_challenge(message: str) -> str | None:
    """The JSON error of a 334 XOAUTH2 challenge as one line, e.g.
    ``status 401, schemes bearer, scope https://mail.google.com/``."""
    try:
        data = json.loads(base64.b64decode(message.strip(), validate=True))
    except (binascii.Error, ValueError):
        return " ".join(message.split())[:200] or None
    if not isinstance(data, dict):
        return None
    parts = [f"{key} {value}" for key, value in data.items() if isinstance(value, (str, int))]
    return ", ".join(parts)[:300] or None


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


def _tls_version(client: aiosmtplib.SMTP) -> str:
    ssl_object = client.get_transport_info("ssl_object")
    version = ssl_object.version() if ssl_object is not None else None
    return str(version or "?")


def _delivery_error(stage: str, exc: BaseException) -> DeliveryError:
    """A library error during ``stage`` as a DeliveryError: the server's reply when it
    refused, else what went wrong with the connection."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return DeliveryError(
            f"the server refused {stage.upper()}",
            stage=stage,
            reply_code=exc.code,
            reply_text=exc.message,
        )
    return DeliveryError(_describe(stage, exc), stage=stage)


def _describe(stage: str, exc: BaseException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = getattr(root, "reason", None) or str(root) or type(root).__name__
    if isinstance(root, ssl.SSLCertVerificationError):
        text = root.verify_message or text
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return f"the server closed the connection during {stage.upper()}"
    if isinstance(exc, TimeoutError):
        return f"no answer during {stage.upper()} ({exc})"
    return f"{stage.upper()} failed: {text}"


class SmtpTransport:
    """Delivers over a small pool of reused SMTP sessions to one server.

    Up to ``pool_size`` sessions run at once; an idle session is reused for the next message
    and reopened when the server has dropped it.
    """

    def __init__(
        self,
        uri: SmtpUri,
        settings: SmtpSettings,
        *,
        pool_size: int = 1,
        recorder: Recorder | None = None,
        allow_private_targets: bool = True,
        refresh_tokens: RefreshTokenKeeper | None = None,
    ) -> None:
        self.uri = uri
        self.settings = settings
        self.recorder = recorder
        self.allow_private_targets = allow_private_targets
        self.refresh_tokens = refresh_tokens
        self._idle: list[SmtpConnection] = []
        self._slots = asyncio.Semaphore(pool_size)
        self._closed = False

    @cached_property
    def tls_context(self) -> ssl.SSLContext | None:
        """Built once per transport; None for cleartext."""
        if self.uri.security is Security.CLEARTEXT:
            return None
        return build_tls_context(self.uri, self.settings)

    @cached_property
    def tokens(self) -> TokenCache | None:
        """The OAuth2 token cache every connection shares (None without ``oauth2``)."""
        return token_cache(
            self.settings.oauth2,
            user=self.settings.xoauth2_user(),
            timeout=self.settings.timeout,
            allow_private_targets=self.allow_private_targets,
            refresh_tokens=self.refresh_tokens,
        )

    def _new_connection(self) -> SmtpConnection:
        return SmtpConnection(
            self.uri,
            self.settings,
            tls_context=self.tls_context,
            recorder=self.recorder,
            allow_private_targets=self.allow_private_targets,
            tokens=self.tokens,
        )

    async def send(self, envelope: Envelope) -> SendResult:
        """Hand one message to the server; raise ``DeliveryError`` when it cannot be."""
        if self._closed:
            raise RuntimeError("transport closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is not None and conn.usable:
                try:
                    reused = await conn.deliver(envelope)
                except DeliveryError as exc:
                    if not _dropped_before_data(exc):
                        self._keep(conn)
                        raise
                    conn.abort()  # the server closed an idle session: open a fresh one
                else:
                    self._keep(conn)
                    return reused
            conn = self._new_connection()
            await conn.open()
            try:
                result = await conn.deliver(envelope)
            except DeliveryError:
                self._keep(conn)
                raise
            self._keep(conn)
            return result

    async def check(self, envelope: Envelope) -> None:
        """Open a session and ask MAIL and RCPT for ``envelope`` without sending it; the
        session is kept for :meth:`close` to QUIT. Raises ``DeliveryError`` like :meth:`send`."""
        if self._closed:
            raise RuntimeError("transport closed")
        async with self._slots:
            conn = self._new_connection()
            await conn.open()
            try:
                await conn.check_envelope(envelope)
            finally:
                self._keep(conn)

    def _keep(self, conn: SmtpConnection) -> None:
        """Put ``conn`` back for the next send while it is usable; else close it."""
        if conn.usable and not self._closed:
            self._idle.append(conn)
        else:
            conn.abort()

    async def close(self) -> None:
        """QUIT every idle session."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.quit() for conn in idle))


def _dropped_before_data(exc: DeliveryError) -> bool:
    """True when a reused session failed at MAIL because the server had closed it."""
    if exc.stage != "mail":
        return False
    cause = exc.__cause__
    return isinstance(cause, (aiosmtplib.SMTPServerDisconnected, ConnectionError)) or (
        exc.reply_code == 421
    )
