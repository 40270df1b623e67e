"""One SMTP session on aiosmtplib, in the six security modes of the connection URI: open
(resolve, connect, implicit TLS or greeting, EHLO, STARTTLS, login), then MAIL, RCPT, DATA per
message, RSET after a refusal, QUIT at the end.

We open the TCP socket ourselves (so that ``dns`` and ``connect`` are steps of their own) and
hand it to aiosmtplib for the SMTP conversation. Each step goes through
:meth:`SmtpConnection._step`, the one place where library errors are wrapped into
:class:`~postroom.errors.DeliveryError` with their stage and reply, and where a
:class:`~postroom.transports.base.Recorder` (``test-smtp``) sees the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiosmtplib
from aiosmtplib import SMTPResponse
from aiosmtplib.protocol import SMTPProtocol

from postroom.config.smtp import SmtpSettings
from postroom.config.smtp_uri import Security, SmtpUri
from postroom.errors import DeliveryError, OAuthError
from postroom.net.targets import Target, resolve_target
from postroom.oauth.client import TokenCache
from postroom.transports.base import Envelope, Recorder, SendResult
from postroom.transports.evidence import smtp_message_id
from postroom.transports.smtp_auth import login, xoauth2
from postroom.transports.smtp_errors import delivery_error, describe, reply_text
from postroom.transports.smtp_tls import (
    SmtpRecorder,
    describe_extensions,
    speaks_tls_first,
    tls_facts,
    tls_version,
)

T = TypeVar("T")


IMPLICIT_TLS_PORT = 465
"""The port where a greeting that never comes means "this port speaks TLS first"."""


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
        self.client: _Client | None = None
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
                step.reply = reply_text(result)
            if detail is not None:
                step.detail = detail(result)
            return result

    def _failure(self, stage: str, exc: BaseException) -> DeliveryError:
        error = delivery_error(stage, exc)
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

        sock = await self._step("connect", connect, detail=lambda s: f"connected to {_peer_of(s)}")
        implicit = uri.security is Security.IMPLICIT_TLS
        client = _Client(
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
        except Exception:
            self.client = None
            await client.close_fully()
            raise
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
                f"TLS {tls_version(client)} with {uri.tls_name}{self._observe_tls(client)}; "
                f"greeting {reply_text(r)}"
                if implicit
                else f"greeting {reply_text(r)}"
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
                    raise DeliveryError(describe("tls", exc), stage="tls") from exc

            await self._step(
                "starttls",
                starttls,
                detail=lambda r: (
                    f"TLS {tls_version(client)} with {uri.tls_name}{self._observe_tls(client)}"
                ),
            )
            await self._step("ehlo", self._ehlo, detail=lambda r: self._observe_ehlo(client))
        if self.tokens is not None:
            await self._oauth_login(self.tokens)
        elif uri.username is not None:
            await self._step(
                "auth", lambda: login(client, uri), detail=lambda r: f"logged in as {uri.username}"
            )
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
            peer = self._peer  # resolved and checked by open(): never resolved again
            if not probe or (
                peer is not None and await speaks_tls_first(peer, uri.tls_name, max(left, 0.1))
            ):
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

    async def _oauth_login(self, tokens: TokenCache) -> None:
        """A ``token`` step (the access token's expiry is recorded, never the token), then
        AUTH XOAUTH2. A refused token is dropped from the cache and a new one tried once."""
        client, security = self.client, self.uri.security
        assert client is not None
        user = self.settings.xoauth2_user() or ""
        provider = self.settings.oauth2.provider
        for last in (False, True):
            token = await self._step(
                "token", tokens.get, detail=lambda t: t.describe(tokens.source)
            )
            try:
                await self._step(
                    "auth",
                    lambda t=token: xoauth2(  # type: ignore[misc]
                        client, security, user, t, provider=provider
                    ),
                    detail=lambda r: f"logged in as {user} with XOAUTH2",
                )
                return
            except OAuthError:
                if last or not self.usable:
                    raise
                tokens.drop(token)

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
        reply = reply_text(response)
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
            self.client = None
        await client.close_fully()

    def abort(self) -> None:
        """Drop the connection without a word."""
        if self.client is not None:
            self.client.close()
            self.client = None


def _peer_of(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client that can wait until its connection is really gone: closing a
    transport only schedules its end (and a TLS one says goodbye first), and a connection
    left half-closed when its event loop stops is a leaked socket."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._gone = asyncio.Event()
        self._opened = False

    async def connect(self, **options: object) -> SMTPResponse:
        response = await super().connect(**options)  # type: ignore[arg-type]
        self._opened = True  # connected: its end is reported to _on_connection_lost
        return response

    def _on_connection_lost(self, protocol: SMTPProtocol) -> None:
        self._gone.set()
        super()._on_connection_lost(protocol)

    async def close_fully(self, wait: float = 1.0) -> None:
        """Close, and wait (at most ``wait`` seconds) until the connection has ended."""
        self.close()
        if self._opened and not self._gone.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), wait)
