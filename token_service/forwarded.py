"""Which address an HTTP request comes from, for per-address brute-force throttling.

The TCP peer, unless the peer is one of ``NATIVE_IAM_TRUSTED_PROXIES``: then the
``X-Forwarded-For`` chain is read from the right (each proxy appends the address it saw), skipping
the trusted proxies, and the first address that is not one of them is the client. Anything left
of it was written by the client and is never believed. From an untrusted peer the header is
ignored altogether, so a client cannot choose its own address (and with it a fresh counter).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from token_service.settings import IPNetwork

__all__ = ["client_address", "is_https"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # One client, one counter: ::ffff:192.0.2.1 (a dual-stack socket's view) is 192.0.2.1.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[IPNetwork]) -> str | None:
    """The client's address (normalized text), or ``None`` when the peer has none (a Unix socket).

    ``forwarded_for``: every ``X-Forwarded-For`` header of the request, in order.
    """
    address = _parse(peer) if peer else None
    if address is None or not _trusted(address, proxies):
        return None if address is None else str(address)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        parsed = _parse(hop)
        if parsed is None:  # garbage behind a trusted proxy: the last trusted hop is all we know
            break
        address = parsed
        if not _trusted(address, proxies):
            break
    return str(address)


def is_https(scheme: str, peer: str | None, forwarded_proto: Iterable[str], proxies: Sequence[IPNetwork]) -> bool:
    """Whether the browser reached us over HTTPS: the connection's own scheme, or the
    ``X-Forwarded-Proto`` of a trusted proxy (the last value: the one that proxy wrote). From an
    untrusted peer the header is ignored (a client could claim anything)."""
    if scheme == "https":
        return True
    address = _parse(peer) if peer else None
    if address is None or not _trusted(address, proxies):
        return False
    values = [v.strip().lower() for header in forwarded_proto for v in header.split(",")]
    return bool(values) and values[-1] == "https"
