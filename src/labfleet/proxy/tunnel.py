"""The upgrade: after a ``101`` the connection is a raw two-way tunnel (websockets).

Bytes go both ways as they come, with half-close passed on; every read
counts as activity for the route (``last_activity``, which the idle culler
reads) and for the websocket idle deadline (:mod:`labfleet.proxy.deadlines`).
"""

from __future__ import annotations

import time

from labfleet.proxy.body_relay import BodyRelay
from labfleet.proxy.lifecycle import Event
from labfleet.proxy.upstream import UpstreamProtocol


class TunnelRelay(BodyRelay):
    __slots__ = ()

    def start_tunnel(self, up: UpstreamProtocol, websocket: bool) -> None:
        counters = self.ctx.counters
        counters.websockets_active += 1
        counters.websockets_total += 1
        counters.responses[1] += 1
        self.lc.fire(Event.UPGRADED)
        self.last_io = self.ctx.now
        self.ping_at = 0.0
        if self.route is not None:
            self.route.last_activity = time.time()
        data = self.buf
        self.buf = b""
        if data and up.transport is not None:
            up.transport.write(data)
        self.transport.resume_reading()

    def _tunnel_data(self, data: bytes) -> None:
        up = self.upstream
        if up is not None and up.transport is not None:
            up.transport.write(data)
            self.ctx.counters.bytes_in += len(data)
            self.last_io = self.ctx.now
            route = self.route
            if route is not None:
                route.last_activity = time.time()

    def _tunnel_eof(self) -> bool:
        """The client half-closed: pass it on; False closes our side too."""
        up = self.upstream
        if up is None or up.transport is None or up.eof:
            return False
        if up.transport.can_write_eof():
            up.transport.write_eof()
        return True
