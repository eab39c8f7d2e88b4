"""Which peers may tell the proxy who the client is (pure).

``X-Real-Ip``, ``X-Forwarded-*`` and ``X-Scheme`` are claims. The hub's
tornado believes them (per-address login throttling, logs), so the proxy
passes them on only when the socket peer is a configured trusted proxy
(``--trusted-proxy CIDR``, ``proxy.trusted_proxies`` in labfleet.yaml). From
anyone else they are replaced by what the proxy itself saw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``192.0.2.7`` or ``::1``; ValueError names the bad item."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"--trusted-proxy {item!r} is not an IP network: {exc}") from None
    return tuple(out)


class TrustedProxies:
    __slots__ = ("_cache", "networks")

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)
        self._cache: dict[bytes, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: bytes) -> bool:
        """Whether ``address`` (an IP as ASCII bytes) is a trusted hop."""
        if not self.networks or not address:
            return False
        known = self._cache.get(address)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(address.decode("ascii").partition("%")[0])
        except ValueError:
            verdict = False
        else:
            mapped = getattr(ip, "ipv4_mapped", None)
            if mapped is not None:
                ip = mapped
            verdict = any(ip in net for net in self.networks)
        if len(self._cache) < 4096:
            self._cache[address] = verdict
        return verdict

    def client_address(
        self, real_ip: bytes | None, forwarded_for: bytes | None, peer: bytes
    ) -> bytes:
        """The client as a trusted peer reported it.

        The peer's own ``X-Real-Ip`` wins; otherwise the right-most entry of
        ``X-Forwarded-For`` that is not itself a trusted hop; otherwise the peer.
        """
        if real_ip:
            return real_ip
        if forwarded_for:
            for hop in reversed(forwarded_for.split(b",")):
                hop = hop.strip()
                if hop and not self.trusts(hop):
                    return hop
        return peer
