"""One client connection to the SMTP listener (aiosmtpd's protocol) with Postroom's rules:
the connection counted against the limits (421 over them), AUTH PLAIN and LOGIN checked by the
listener's authenticator, and every 4xx or 5xx reply written to the refusal log with its reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from typing import Any, Protocol, cast

from aiosmtpd.smtp import SMTP, AuthResult

from postroom.config import Settings
from postroom.config.listener import IDLE_TIMEOUT
from postroom.config.networks import is_loopback
from postroom.intake.smtp_auth import Authenticator, LockedOut, RefusalLog, allow_from_tenant

# aiosmtpd warns at every successful AUTH about an attribute only it sets.
logging.getLogger("mail.log").addFilter(
    lambda record: "login_data is deprecated" not in record.getMessage()
)

# aiosmtpd's own replies, given an enhanced status code and a reason for the refusal log.
_STOCK: dict[str, tuple[str, str]] = {
    "552 Error: Too much mail data": ("552 5.3.4 Message too big", "the message is too big"),
    "552 Error: message size exceeds fixed maximum message size": (
        "552 5.3.4 Message too big",
        "the message is too big (announced in MAIL FROM SIZE=)",
    ),
    "553 5.1.3 Error: malformed address": (
        "553 5.1.3 Address cannot be parsed",
        "an address in MAIL FROM or RCPT TO cannot be parsed",
    ),
}


class SessionOwner(Protocol):
    """What a session needs of the listener that accepted it (and whose handler hooks answer
    MAIL, RCPT and DATA): its settings, the login check, the refusal log and the counts."""

    base: Settings
    dev: bool
    tls: ssl.SSLContext | None
    auth: Authenticator
    refusals: RefusalLog
    sessions: set[SmtpSession]

    def admit(self, client: str) -> str | None:
        """Count a new connection; the refusal reply when there are too many."""

    def release(self, client: str) -> None:
        """A counted connection ended."""


class SmtpSession(SMTP):
    """One client connection (aiosmtpd's protocol), with Postroom's rules added."""

    def __init__(self, listener: SessionOwner, *, implicit_tls: bool) -> None:
        smtp = listener.base.listener.smtp
        super().__init__(
            listener,
            data_size_limit=smtp.max_message_size,
            enable_SMTPUTF8=True,
            hostname=smtp.shown_host if not listener.dev else "localhost",
            ident="Postroom ESMTP",
            tls_context=None if implicit_tls else listener.tls,
            timeout=IDLE_TIMEOUT,
            auth_require_tls=not implicit_tls,
        )
        self.listener = listener
        self.implicit_tls = implicit_tls
        self.client = "?"
        self._counted = False
        self._refused = False
        self._why: tuple[str, str | None, str | None] | None = None

    # -- connection accounting ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection (refuse it with 421 when over a limit), then greet."""
        if not self._counted and not self._refused:
            peer = transport.get_extra_info("peername")
            self.client = str(peer[0]) if peer else "?"
            refusal = self.listener.admit(self.client)
            if refusal is not None:
                self._refused = True
                self.listener.refusals.record(self.client, refusal, "too many connections")
                writer = cast(asyncio.WriteTransport, transport)  # uvloop's is not a subclass
                writer.write(refusal.encode() + b"\r\n")
                writer.close()
                return
            self._counted = True
            self.listener.sessions.add(self)
            loopback = is_loopback(self.client)
            self._auth_require_tls = not (self.implicit_tls or loopback)
            settings = self.listener.base
            allowed = self.listener.dev or allow_from_tenant(settings, self.client) is not None
            self._auth_required = not allowed
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        """Release the connection's slot."""
        if self._refused:
            return
        if self._counted:
            self._counted = False
            self.listener.release(self.client)
            self.listener.sessions.discard(self)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        """The client closed its side."""
        if self._refused:
            return False
        result: bool | None = super().eof_received()
        return result

    # -- refusals -------------------------------------------------------------------------

    def refuse(
        self,
        reply: str,
        reason: str,
        *,
        username: str | None = None,
        tenant: str | None = None,
    ) -> str:
        """Remember why ``reply`` is sent, for the refusal log; return ``reply``."""
        self._why = (reason, username, tenant)
        return reply

    async def push(self, status: Any) -> None:
        """Send a reply; a 4xx or 5xx one is written to the refusal log."""
        if isinstance(status, str) and status[:1] in ("4", "5"):
            if status in _STOCK:
                status, reason = _STOCK[status]
                if status.startswith("552"):
                    limit = self.listener.base.listener.smtp.max_message_size
                    status += f": at most {limit} bytes"
            elif status.startswith("538"):
                reason = "AUTH before STARTTLS from a client beyond loopback"
            elif status.startswith("530"):
                reason = "no AUTH, and the client's address is in no tenant's allow_from"
            else:
                reason = status
            username = tenant = None
            if self._why is not None:
                reason, username, tenant = self._why
                self._why = None
            self.listener.refusals.record(
                self.client, status, reason, username=username, tenant=tenant
            )
        await super().push(status)

    # -- AUTH -----------------------------------------------------------------------------

    async def _login(self, mechanism: str, username: bytes, password: bytes) -> AuthResult:
        try:
            name, secret = username.decode(), password.decode()
        except UnicodeDecodeError:
            name, secret = username.decode("utf-8", "replace"), ""
        try:
            login = await self.listener.auth.check(name, secret, client=self.client)
        except LockedOut as locked:
            minutes = max(1, round(locked.seconds / 60))
            reply = self.refuse(
                f"454 4.7.0 Too many failed logins for this username from your address; "
                f"try again in {minutes} minute(s)",
                "locked out after repeated wrong passwords",
                username=name[:128],
            )
            return AuthResult(success=False, handled=False, message=reply)
        if login is None:
            reply = self.refuse(
                "535 5.7.8 Authentication credentials invalid",
                f"wrong username or password ({mechanism})",
                username=name[:128],
            )
            return AuthResult(success=False, handled=False, message=reply)
        return AuthResult(success=True, auth_data=login)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        """AUTH PLAIN, with the answer on the line or after a challenge."""
        blob: object = await self.challenge_auth("") if len(args) == 1 else _b64(args[1])
        if not isinstance(blob, bytes):
            if len(args) > 1:
                await self.push("501 5.5.2 Cannot decode base64")
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Cannot split the AUTH PLAIN answer")
            return AuthResult(success=False, handled=True)
        return await self._login("PLAIN", parts[1], parts[2])

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        """AUTH LOGIN: username and password after challenges."""
        if len(args) == 1:
            user = await self.challenge_auth("Username:")
        else:
            user = _b64(args[1]) or b""
        if not isinstance(user, bytes):
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._login("LOGIN", user, password)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None
