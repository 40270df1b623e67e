"""The SSRF guard: which addresses a tenant's transport may connect to.

A tenant saved through the admin API may not make Postroom connect to loopback, private,
link-local (the cloud metadata service at 169.254.169.254 among them), unspecified, multicast,
reserved or carrier-grade NAT addresses, unless the operator sets
``serve.allow_private_targets: true``. The rule is checked on the *resolved* address, right
before connecting, so a public name that resolves to a private address (or is re-pointed there
later) is refused too. Tenants from the configuration file are the operator's own and may reach
anything.

:func:`resolve_target` resolves a host, checks every address, and returns the addresses to
connect to; transports connect to exactly those, never resolving the name a second time. A
refusal is a :class:`~postroom.errors.DeliveryError` with the hint ``target_forbidden``; a name
that does not resolve has the hint ``dns_unresolved``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from postroom.errors import DeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}


@dataclass(frozen=True, slots=True)
class Target:
    """One resolved address a transport may connect to."""

    family: int
    address: str
    port: int


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def forbidden_reason(address: str | IPAddress) -> str | None:
    """Why ``address`` is not a public address (e.g. ``"loopback"``), or None when it is.

    Loopback, private (RFC 1918, IPv6 ULA), link-local (including the cloud metadata address),
    unspecified, multicast, reserved, carrier-grade NAT (100.64.0.0/10) and every other range
    that is not globally reachable are refused. IPv6 addresses that embed an IPv4 address
    (``::ffff:127.0.0.1``, NAT64, 6to4, Teredo) are judged by the address they embed.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return forbidden_reason(embedded)
    if ip in _METADATA:
        return "the cloud metadata service"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "carrier-grade NAT"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not publicly routable"
    return None


def check_address(host: str, address: str, *, allow_private_targets: bool) -> None:
    """Raise ``DeliveryError`` (hint ``target_forbidden``) when ``address`` may not be used.

    ``host`` is the name the address was resolved from; it is named in the error.
    """
    if allow_private_targets:
        return
    reason = forbidden_reason(address.split("%", 1)[0])  # drop an IPv6 zone index
    if reason is None:
        return
    shown = host if host == address else f"{host} ({address})"
    raise DeliveryError(
        f"{shown} is a {reason} address; tenants saved through the admin API may not connect "
        "to it unless serve.allow_private_targets is true",
        stage="connect",
        hint="target_forbidden",
    )


def _targets(
    host: str,
    port: int,
    infos: Sequence[tuple[int, object]],
    *,
    allow_private_targets: bool,
) -> list[Target]:
    out: list[Target] = []
    for family, sockaddr in infos:
        address = str(sockaddr[0]) if isinstance(sockaddr, tuple) else str(sockaddr)
        # Any forbidden address refuses the host: a name that mixes public and private
        # addresses is a trick, not a configuration.
        check_address(host, address, allow_private_targets=allow_private_targets)
        target = Target(family=family, address=address, port=port)
        if target not in out:
            out.append(target)
    return out


def _unresolved(host: str, exc: OSError) -> DeliveryError:
    detail = getattr(exc, "strerror", None) or str(exc)
    return DeliveryError(
        f"the host name {host} does not resolve ({detail})", stage="dns", hint="dns_unresolved"
    )


async def resolve_target(
    host: str, port: int, *, allow_private_targets: bool, timeout: float | None = None
) -> list[Target]:
    """Resolve ``host`` and return the addresses to connect to, every one of them checked.

    Raise ``DeliveryError`` with hint ``dns_unresolved`` (stage ``dns``) when the name does not
    resolve, and with hint ``target_forbidden`` when any address is forbidden.
    """
    host = host.strip("[]")
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except socket.gaierror as exc:
        raise _unresolved(host, exc) from exc
    except TimeoutError as exc:
        raise DeliveryError(
            f"resolving {host} took longer than {timeout:g}s", stage="dns", hint="dns_unresolved"
        ) from exc
    pairs = [(family, sockaddr) for family, _t, _p, _c, sockaddr in infos]
    return _targets(host, port, pairs, allow_private_targets=allow_private_targets)
