"""The real client address of a hub request, for the login throttle and its log lines.

Tornado (with JupyterHub's ``xheaders=True``) believes ``X-Real-Ip`` and
``X-Forwarded-For`` from anyone. Here they count only when the socket peer is
a trusted hop (by default loopback: labfleet-proxy, which overwrites both
headers with its own peer's address). Anyone else is keyed on the socket peer,
so a client cannot pick its own throttle bucket by sending a header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TRUSTED_HOPS = ("127.0.0.0/8", "::1/128")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def socket_peer(request: Any) -> str | None:
    """The address the TCP connection came from (before any header was believed)."""
    context = getattr(getattr(request, "connection", None), "context", None)
    original = getattr(context, "_orig_remote_ip", None)
    if original:
        return str(original)
    address = getattr(context, "address", None)
    if isinstance(address, tuple) and address:
        return str(address[0])
    remote = getattr(request, "remote_ip", None)
    return str(remote) if remote else None


def forwarded_address(headers: Any) -> str | None:
    """What the hop in front says: ``X-Real-Ip``, else the last ``X-Forwarded-For`` entry."""
    real = _ip(headers.get("X-Real-Ip"))
    if real is not None:
        return str(real)
    chain = headers.get("X-Forwarded-For") or ""
    last = _ip(chain.split(",")[-1]) if chain else None
    return None if last is None else str(last)


def client_address(request: Any, trusted: tuple[Network, ...]) -> str:
    """The client's address: a trusted hop's header, otherwise the socket peer."""
    peer = _ip(socket_peer(request))
    if peer is None:
        return "unknown"
    if any(peer in network for network in trusted):
        forwarded = forwarded_address(getattr(request, "headers", {}))
        if forwarded is not None:
            return forwarded
    return str(peer)
