"""How a nameserver is written in ``dns.nameservers`` and ``--nameserver``: ``HOST[:PORT]``."""

from __future__ import annotations

import ipaddress


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
