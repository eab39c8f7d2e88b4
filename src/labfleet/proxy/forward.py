"""The data plane's client side: one protocol object per client socket.

Bytes are spliced, not re-encoded: the request head is parsed strictly and
rebuilt (``messages``), then body bytes are written to the other socket as
they arrive while :class:`ChunkedTracker` or a byte count follows where the
message ends. Nothing is buffered beyond one read; back-pressure pauses the
reading side whenever the writing side's buffer is full (``pause_writing``),
so a 2 GB upload or download never sits in memory.

Protocols (callbacks), not streams, because the common case — a keep-alive
request on a pooled target connection — then runs without creating a single
task or future.

:class:`ClientProtocol` is built in layers, one idea per module, bottom up:

* ``deadlines`` — the per-phase timeouts the sweeper checks;
* ``exchange`` — the connection's facts, and every way an exchange ends
  (idle again, the proxy's own answer or error page, a refusal that closes);
* ``body_relay`` — request bodies passed on as they arrive;
* ``tunnel`` — the upgrade: a raw two-way tunnel after ``101``;
* ``response_relay`` — what the target socket reports: head, done, dropped
  (where replay is decided);
* ``request_relay`` — request heads: parse, route, rebuild, attach a target;
* this module — the asyncio callbacks, which dispatch on the life-cycle state
  (``lifecycle``), and the per-address connection cap.
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

from labfleet.proxy import messages
from labfleet.proxy.body_relay import PIPELINE_LIMIT
from labfleet.proxy.lifecycle import ClientState, Event
from labfleet.proxy.request_relay import RequestRelay

IDLE: Final = ClientState.IDLE
CONNECTING: Final = ClientState.CONNECTING
SENDING_BODY: Final = ClientState.SENDING_BODY
AWAITING: Final = ClientState.AWAITING
ERROR_PAGE: Final = ClientState.ERROR_PAGE
TUNNEL: Final = ClientState.TUNNEL
CLOSED: Final = ClientState.CLOSED


class ClientProtocol(RequestRelay, asyncio.Protocol):
    """A downstream (browser-side) connection, possibly many requests long.

    Its state lives in ``self.lc`` (:mod:`labfleet.proxy.lifecycle`); every
    change goes through ``self.lc.fire(event)``. The other attributes
    (``exchange.Exchange``) are facts about the current request (framing,
    route, replay copy), not states.
    """

    __slots__ = ()

    # -- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ctx = self.ctx
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = str(peer[0]).encode("ascii")
        if ctx.trust.trusts(self.peer):
            self.trusted_hop = ctx.trust
        elif self.peer and ctx.options.max_connections_per_ip > 0:
            count = ctx.per_address.get(self.peer, 0)
            if count >= ctx.options.max_connections_per_ip:
                ctx.counters.error("connection_cap")
                self.lc.fire(Event.CLOSE)
                self.transport.write(
                    messages.simple_response(
                        503, b"too many connections\n", content_type=b"text/plain", close=True
                    )
                )
                transport.close()
                return
            ctx.per_address[self.peer] = count + 1
            self.counted = True
        ctx.connections.add(self)
        ctx.counters.active_connections += 1
        if ctx.shutting_down:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        ctx = self.ctx
        if self.counted:
            self.counted = False
            left = ctx.per_address.get(self.peer, 1) - 1
            if left > 0:
                ctx.per_address[self.peer] = left
            else:
                ctx.per_address.pop(self.peer, None)
        if self in ctx.connections:
            ctx.connections.discard(self)
            ctx.counters.active_connections -= 1
        if self.lc.state is TUNNEL:
            ctx.counters.websockets_active -= 1
        self.lc.fire(Event.CLOSE)
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.client = None
            up.close()

    def data_received(self, data: bytes) -> None:
        state = self.lc.state
        if state is TUNNEL:
            self._tunnel_data(data)
            return
        if state is SENDING_BODY:
            self._forward_body(data)
            return
        if state is CLOSED:
            return
        seen = len(self.buf)
        if seen:
            self.buf += data
        else:
            self.buf = data
            if state is IDLE:  # the first bytes of a head start its deadline (slowloris)
                self.head_started = self.ctx.now
        if state is IDLE:
            self._next_request(seen)
        elif len(self.buf) > PIPELINE_LIMIT:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        state = self.lc.state
        if state is TUNNEL:
            return self._tunnel_eof()
        if state in (AWAITING, CONNECTING, ERROR_PAGE) and not self.body_pending:
            self.keep_alive = False  # half-close: answer, then close
            return True
        return False

    def pause_writing(self) -> None:
        up = self.upstream
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        up = self.upstream
        if up is not None and up.transport is not None:
            up.transport.resume_reading()

    def idle(self) -> bool:
        """Nothing in flight: an idle keep-alive socket, or a tunnel (which cannot finish)."""
        state = self.lc.state
        return (state is IDLE and not self.buf) or state is TUNNEL

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()
