"""Real SMTP servers for tests: aiosmtpd on real sockets, real TLS with trustme certificates.

Each server records what a user would want to know afterwards: the messages it accepted,
the AUTH credentials it saw, whether STARTTLS was asked for, and whether TLS was in use.
Fault injection is explicit: a test says which command misbehaves and how.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Accepted:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    received_at: float = field(default_factory=time.monotonic)
    queue_id: str = ""  # what the server's acceptance named the message, as Postfix does

    @property
    def message_id(self) -> str:
        """The Message-ID header of what was accepted."""
        for line in self.content.split(b"\r\n\r\n", 1)[0].splitlines():
            if line.lower().startswith(b"message-id:"):
                return line.split(b":", 1)[1].strip().decode()
        return ""


@dataclass
class Recording:
    messages: list[Accepted] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # (mechanism, user, pw)
    starttls_commands: int = 0
    connections: int = 0  # client sessions (counted at their first EHLO)
    ehlo_names: list[str] = field(default_factory=list)


# A fault is a function (recording, attempt number) -> SMTP reply or None (behave normally).
Fault = Callable[[Recording, int], str | None]


class Handler:
    """Accepts everything unless a fault for that command says otherwise."""

    def __init__(
        self,
        faults: dict[str, Fault] | None = None,
        data_reply: Callable[[Accepted], str] | None = None,
    ) -> None:
        self.rec = Recording()
        self.faults = faults or {}
        self.data_reply = data_reply
        self.calls: dict[str, int] = {}

    def _fault(self, command: str) -> str | None:
        self.calls[command] = self.calls.get(command, 0) + 1
        fault = self.faults.get(command)
        return fault(self.rec, self.calls[command]) if fault else None

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.rec.ehlo_names.append(hostname)
        if not session.extended_smtp or server._tls_protocol is None:
            self.rec.connections += 1  # a new session (EHLO again after STARTTLS is not)
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self._fault("MAIL")
        if reply == "STALL":
            await asyncio.sleep(3600)
        if reply:
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self._fault("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        reply = self._fault("DATA")
        if isinstance(reply, str) and reply.startswith("DELAY "):  # slow server: wait, accept
            await asyncio.sleep(float(reply.split()[1]))
            reply = None
        if reply == "DROP":
            assert server.transport is not None
            server.transport.abort()
            return "451 dropped"
        if reply:
            return reply
        queue_id = f"4F{len(self.rec.messages) + 1:07X}"
        accepted = Accepted(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.content,
            server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
            queue_id=queue_id,
        )
        self.rec.messages.append(accepted)
        if self.data_reply is not None:
            return self.data_reply(accepted)
        return f"250 2.0.0 Ok: queued as {queue_id}"  # Postfix's answer to end-of-data


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP that counts STARTTLS and connections, and can refuse at greeting.
    Each session is in ``sessions`` from its connection until its end."""

    greeting_reply: str | None = None
    sessions: dict[RecordingSMTP, asyncio.Future[None]]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # again after STARTTLS: the same session
        if self not in self.sessions:
            self.sessions[self] = self.loop.create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        ended = self.sessions.pop(self, None)
        if ended is not None and not ended.done():
            ended.set_result(None)

    async def smtp_STARTTLS(self, arg: str) -> None:
        self.event_handler.rec.starttls_commands += 1
        await super().smtp_STARTTLS(arg)

    async def _handle_client(self) -> None:
        if self.greeting_reply:
            await self.push(self.greeting_reply)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class ServerController(Controller):  # type: ignore[misc]
    def __init__(
        self, handler: Handler, *, greeting_reply: str | None = None, **kwargs: Any
    ) -> None:
        self.greeting_reply = greeting_reply
        self.sessions: dict[RecordingSMTP, asyncio.Future[None]] = {}
        super().__init__(handler, **kwargs)

    def stop(self, no_assert: bool = False) -> None:
        """End (abort) the sessions still open, then stop. aiosmtpd's own stop closes the event loop
        at once: a session whose client had just said QUIT (over TLS, the server's side ends
        a turn of the loop after the client's) never ran its end, and its socket was reported
        as an unclosed transport in whichever test came next."""
        if self._thread is not None and self.loop.is_running():
            ended = asyncio.run_coroutine_threadsafe(self._end_sessions(), self.loop)
            ended.result(timeout=5)
        super().stop(no_assert)

    async def _end_sessions(self) -> None:
        # Accept nothing more, and let connections already accepted become sessions (a
        # connection accepted as the loop closed left its socket unclosed: clients whose
        # sessions end here reconnect at once, a worker fleet eight at a time).
        self.server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while (left := deadline - loop.time()) > 0:
            sessions = {session._handler_coroutine for session in self.sessions}
            me = asyncio.current_task()
            accepting = [t for t in asyncio.all_tasks() if t is not me and t not in sessions]
            if not accepting:
                break
            await asyncio.wait(accepting, timeout=left)
        for session in list(self.sessions):
            if isinstance(session.transport, asyncio.Transport):
                session.transport.abort()
        if self.sessions:
            await asyncio.wait(list(self.sessions.values()), timeout=3)

    def _trigger_server(self) -> None:
        # aiosmtpd probes readiness with a TLS handshake of its own, which fails against the
        # deliberately broken TLS servers of some tests; a TCP connection is enough.
        with socket.create_connection((self.hostname, self.port), timeout=2):
            pass

    def factory(self) -> SMTP:
        with warnings.catch_warnings():
            # Tests of cleartext login want exactly that insecure server.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            server = RecordingSMTP(self.handler, **self.SMTP_kwargs)
        server.greeting_reply = self.greeting_reply
        server.sessions = self.sessions
        return server


@dataclass
class Server:
    host: str
    port: int
    handler: Handler

    @property
    def rec(self) -> Recording:
        return self.handler.rec


def make_authenticator(users: dict[str, str], rec_holder: list[Handler]) -> Any:
    def authenticator(
        server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8")
        password = auth_data.password.decode("utf-8")
        rec_holder[0].rec.logins.append((mechanism, user, password))
        ok = users.get(user) == password
        return AuthResult(success=ok, handled=False)

    return authenticator


@contextmanager
def smtp_server(
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    users: dict[str, str] | None = None,
    auth_mechanisms: tuple[str, ...] | None = None,
    faults: dict[str, Fault] | None = None,
    greeting_reply: str | None = None,
    idle_timeout: float | None = None,
    port: int | None = None,
    auth_required: bool = True,
    data_reply: Callable[[Accepted], str] | None = None,
) -> Iterator[Server]:
    """Start an aiosmtpd server on 127.0.0.1 for the duration of the block; ``data_reply``
    makes the 250 to end-of-data of each accepted message (as a provider words it)."""
    handler = Handler(faults, data_reply)
    holder = [handler]
    kwargs: dict[str, Any] = {}
    if starttls is not None:
        kwargs["tls_context"] = starttls
        kwargs["require_starttls"] = require_starttls
    if implicit_tls is not None:
        kwargs["ssl_context"] = implicit_tls
    if users is not None:
        kwargs["authenticator"] = make_authenticator(users, holder)
        kwargs["auth_required"] = auth_required  # False: AUTH offered, mail taken without
        # Plain-text servers may offer AUTH when a test asks for cleartext login.
        kwargs["auth_require_tls"] = starttls is not None and implicit_tls is None
        if auth_mechanisms is not None:
            every = {"PLAIN", "LOGIN"}
            kwargs["auth_exclude_mechanism"] = sorted(every - set(auth_mechanisms))
    if idle_timeout is not None:
        kwargs["timeout"] = idle_timeout
    port = port or free_port()
    controller = ServerController(
        handler,
        greeting_reply=greeting_reply,
        hostname="127.0.0.1",
        port=port,
        **kwargs,
    )
    controller.start()
    try:
        yield Server("127.0.0.1", port, handler)
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        sock.close()
