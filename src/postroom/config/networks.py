"""Addresses and networks in settings: loopback or not, and lists of CIDR networks."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback address (127.0.0.0/8, ::1) or the word
    ``localhost``; any other name is not, whatever it starts with."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cidr_networks(value: list[str], *, example: str) -> list[str]:
    """Each entry as a CIDR network (an address becomes a /32 or /128), so that a peer is
    matched by address, never by name; ``ValueError`` naming the entry and ``example``."""
    out = []
    for entry in value:
        try:
            out.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network; write addresses or CIDR "
                f"networks, like {example}"
            ) from None
    return out
