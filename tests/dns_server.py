"""A real authoritative DNS server on loopback (dnslib's, over UDP), serving zones given as
zone-file text, for the deliverability tests. ``silent_nameserver`` answers nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from the records it holds: the records of the asked name and type (through a
    CNAME), NOERROR with no answer for another type of a known name, else NXDOMAIN."""

    def __init__(self, zone: str) -> None:
        self.records: list[Any] = RR.fromZone(zone)
        self.asked: list[tuple[str, str]] = []

    def _find(self, name: DNSLabel, qtype: str) -> list[Any]:
        return [r for r in self.records if r.rname == name and QTYPE[r.rtype] == qtype]

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        reply.header.aa = 1
        name, qtype = request.q.qname, QTYPE[request.q.qtype]
        self.asked.append((str(name).rstrip("."), qtype))
        for _ in range(8):  # follow CNAMEs inside the zone
            found = self._find(name, qtype)
            cname = self._find(name, "CNAME") if qtype != "CNAME" else []
            if found or not cname:
                break
            reply.add_answer(*cname)
            name = DNSLabel(str(cname[0].rdata.label))
        for record in found:
            reply.add_answer(record)
        if not reply.rr and not any(r.rname == name for r in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@contextmanager
def serving_zone(zone: str) -> Iterator[tuple[str, ZoneResolver]]:
    """Serve ``zone`` on 127.0.0.1 at a free UDP port; yield ``"127.0.0.1:PORT"`` and the
    resolver (whose ``asked`` lists the questions it was asked)."""
    resolver = ZoneResolver(zone)
    server = DNSServer(
        resolver, address="127.0.0.1", port=0, logger=DNSLogger(log="-request,-reply")
    )
    server.start_thread()
    port = server.server.server_address[1]
    try:
        yield f"127.0.0.1:{port}", resolver
    finally:
        server.stop()
        server.server.server_close()


@contextmanager
def silent_nameserver() -> Iterator[str]:
    """A UDP port on loopback that takes questions and never answers: every lookup times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"
