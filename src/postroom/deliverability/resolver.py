"""The DNS resolver the deliverability checks ask: the system's, or ``dns.nameservers``.

Every lookup has a budget (``dns.timeout``, 2 s by default); a lookup that runs out of it is
reported as "could not be checked", never as a missing record.
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.exception
import dns.nameserver
import dns.resolver

from postroom.deliverability.nameservers import parse_nameserver

UNAVAILABLE = (
    dns.exception.Timeout,
    dns.resolver.NoNameservers,
    dns.resolver.LifetimeTimeout,
    OSError,
)
"""Errors that mean the resolver could not answer (not that the record is absent)."""


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
