"""The tests' SMTP servers end cleanly: a server stopped while a client is still connected
leaves no socket behind. A socket left open surfaced later as a ``ResourceWarning: unclosed
transport``, which pytest reports as a failure of whichever test the garbage collector ran in."""

from __future__ import annotations

import gc
import socket
import ssl
import warnings

from conftest import Pki
from smtp_servers import smtp_server


def unclosed_transports(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and "transport" in str(w.message)
    ]


def test_a_server_stopped_during_a_tls_session_leaves_no_socket_open(pki: Pki) -> None:
    client_context = ssl.create_default_context(cafile=str(pki.ca_file))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with smtp_server(implicit_tls=pki.server_context()) as srv:
            raw = socket.create_connection((srv.host, srv.port), timeout=5)
            tls = client_context.wrap_socket(raw, server_hostname="localhost")
            assert tls.recv(1024).startswith(b"220")
            tls.sendall(b"EHLO client.example\r\n")
            assert b"250" in tls.recv(4096)
            # The server stops here, with the session still open on both sides.
        tls.close()
        gc.collect()
    assert unclosed_transports(caught) == []
