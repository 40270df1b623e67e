"""The DNS resolver the deliverability checks ask: the system's, or ``dns.nameservers``.

Every lookup has a budget (``dns.timeout``, 2 s by default); a lookup that runs out of it is
reported as "could not be checked", never as a missing record.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.exception
import dns.nameserver
import dns.resolver

UNAVAILABLE = (
    dns.exception.Timeout,
    dns.resolver.NoNameservers,
    dns.resolver.LifetimeTimeout,
    OSError,
)
"""Errors that mean the resolver could not answer (not that the record is absent)."""


def parse_nameserver(entry: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) as an IP address and port (53 when none).

    Raise ``ValueError`` naming the entry and the form to use.
    """
    text = entry.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = str(ipaddress.ip_address(host))
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{entry!r} is not a nameserver; write an IP address with an optional port, "
            "like 127.0.0.1:5353 or [::1]:53"
        ) from None
    return address, number


def make_resolver(nameservers: Sequence[str], *, timeout: float) -> dns.resolver.Resolver:
    """A resolver asking ``nameservers`` (``HOST[:PORT]``; the system's when empty), each
    lookup given ``timeout`` seconds in all. Raise ``ValueError`` for a bad entry."""
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*parse_nameserver(entry)) for entry in nameservers
        ]
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.lifetime = timeout
    resolver.timeout = min(1.0, timeout)
    return resolver


def txt_values(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    """Every TXT record at ``name``, each one's strings joined; [] when there is none.

    Raise one of :data:`UNAVAILABLE` when the resolver cannot answer in time.
    """
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
