"""SMTP delivery: a small pool of reused sessions to one server (:class:`SmtpTransport`),
the transport the worker and ``test-smtp`` drive. One session's conversation is
:mod:`postroom.transports.smtp_connection`."""

from __future__ import annotations

import asyncio
import ssl
from functools import cached_property

import aiosmtplib

from postroom.config.smtp import SmtpSettings
from postroom.config.smtp_uri import Security, SmtpUri
from postroom.errors import DeliveryError
from postroom.oauth.client import RefreshTokenKeeper, TokenCache, token_cache
from postroom.transports.base import Envelope, Recorder, SendResult
from postroom.transports.smtp_connection import SmtpConnection
from postroom.transports.smtp_tls import build_tls_context


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
