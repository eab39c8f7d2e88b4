"""The real client address of a hub request, for the login throttle and its log lines.

Tornado (with JupyterHub's ``xheaders=True``) believes ``X-Real-Ip`` and
``X-Forwarded-For`` from anyone. Here they count only when the socket peer is
a trusted hop (by default loopback: labfleet-proxy, which overwrites both
headers with its own peer's address). Anyone else is keyed on the socket peer,
so a client cannot pick its own throttle bucket by sending a header.

On one machine every member's kernel can also reach the hub's loopback port
and claim any ``X-Real-Ip``. So a loopback peer is believed only when the
connecting socket belongs to the hub's own system user (the proxy runs as
the hub does; isolated members' servers do not): the owner is read from
``/proc/net/tcp{,6}`` for that one connection. Where that table cannot be
read, the network rule alone decides.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
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


def _proc_hex(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    """An endpoint as ``/proc/net/tcp{,6}`` writes it (32-bit words in host order)."""
    packed = address.packed
    words = [packed[i : i + 4][::-1].hex().upper() for i in range(0, len(packed), 4)]
    return "".join(words) + f":{port:04X}"


def socket_owner_uid(
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address,
    peer_port: int,
    proc: Path = Path("/proc/net"),
) -> int | None:
    """The uid owning the loopback socket ``peer:peer_port`` (the client end), if listed."""
    candidates = [("tcp", peer)]
    if isinstance(peer, ipaddress.IPv4Address):
        candidates.append(("tcp6", ipaddress.IPv6Address("::ffff:" + str(peer))))
    for table, address in candidates:
        wanted = _proc_hex(address, peer_port)
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and fields[1] == wanted:
                try:
                    return int(fields[7])
                except ValueError:
                    return None
    return None


def _peer_port(request: Any) -> int | None:
    address = getattr(
        getattr(getattr(request, "connection", None), "context", None), "address", None
    )
    if isinstance(address, tuple) and len(address) > 1 and isinstance(address[1], int):
        return address[1]
    return None


def _loopback_owner(request: Any) -> int | None:
    """The uid owning the client end of this request's loopback connection, cached per connection.

    Cached on the connection's stream so a keep-alive connection (the proxy's pool) reads
    ``/proc/net/tcp`` once, and a later look (the request log, after the client may have
    closed its end) still sees the owner found while the connection was live.
    """
    connection = getattr(request, "connection", None)
    stream = getattr(connection, "stream", None)
    cached = getattr(stream, "_labfleet_peer_owner", _UNSET)
    if cached is not _UNSET:
        return cached if isinstance(cached, int) else None
    peer = _ip(socket_peer(request))
    port = _peer_port(request)
    uid = None if peer is None or port is None else socket_owner_uid(peer, port)
    if stream is not None and uid is not None:
        with contextlib.suppress(AttributeError):
            stream._labfleet_peer_owner = uid
    return uid


_UNSET = object()


def _same_user(
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address, request: Any, strict: bool
) -> bool:
    """For a loopback peer: whether its socket is the hub's own user's.

    Unknown owner (no ``/proc/net`` entry): believed unless ``strict``.
    """
    if not peer.is_loopback:
        return True
    uid = _loopback_owner(request)
    if uid is None:
        return not strict
    return uid == os.getuid()


def client_address(request: Any, trusted: tuple[Network, ...], strict: bool = False) -> str:
    """The client's address: a trusted hop's header, otherwise the socket peer.

    ``strict``: a loopback hop whose socket owner cannot be read is not believed (for
    records such as the request log, where a wrong "trusted" answer lets a member write
    any address, and a wrong "untrusted" one only shows the proxy's address).
    """
    peer = _ip(socket_peer(request))
    if peer is None:
        return "unknown"
    forwarded = forwarded_address(getattr(request, "headers", {}))
    if forwarded is None:
        return str(peer)
    hop = any(peer in network for network in trusted)
    if hop and _same_user(peer, request, strict):
        return forwarded
    return str(peer)
