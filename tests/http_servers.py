"""A real HTTP server in a thread that captures every request and answers from a script.

``http_server(replies)`` answers the n-th request with ``replies[n]`` (the last one repeats);
a reply is ``(status, headers, body)``, :data:`HANG` to accept the request and never answer
(until the server stops), or :data:`DROP` to close the connection without an answer.
Keep-alive HTTP/1.1, optional TLS.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

HANG = "hang"
DROP = "drop"  # close the connection without answering
Reply = tuple[int, dict[str, str], bytes] | str


def reply(status: int = 202, body: Any = b"", **headers: str) -> Reply:
    """A scripted answer; a dict or list body is sent as JSON."""
    if isinstance(body, (dict, list)):
        headers.setdefault("Content_Type", "application/json")
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    return status, {k.replace("_", "-"): v for k, v in headers.items()}, body


ACCEPTED: tuple[Reply, ...] = ((202, {}, b""),)


@dataclass
class Captured:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request was complete

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)


@dataclass
class HttpServer:
    port: int
    scheme: str
    requests: list[Captured] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v3/mail/send"

    def base(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


@contextmanager
def http_server(
    replies: Sequence[Reply] | Callable[[Captured, int], Reply] = ACCEPTED,
    *,
    tls: ssl.SSLContext | None = None,
    port: int = 0,
) -> Iterator[HttpServer]:
    """Run a capturing server on 127.0.0.1 (on ``port``, else any free one) for the
    duration of the block."""
    stopping = threading.Event()
    lock = threading.Lock()
    state: HttpServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            captured = Captured(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                at=time.monotonic(),
            )
            with lock:
                index = len(state.requests)
                state.requests.append(captured)
            if callable(replies):
                answer = replies(captured, index)
            else:
                answer = replies[min(index, len(replies) - 1)]
            if answer == HANG:
                stopping.wait(30)
                self.close_connection = True
                return
            if answer == DROP:
                self.close_connection = True
                return
            assert not isinstance(answer, str)
            status, headers, content = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            with lock:
                state.answered_at.append(time.monotonic())

        do_POST = do_PUT = do_PATCH = do_GET = _handle

    server = _Server(("127.0.0.1", port), Handler)
    server.tls = tls
    state = HttpServer(port=server.server_address[1], scheme="https" if tls else "http")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
