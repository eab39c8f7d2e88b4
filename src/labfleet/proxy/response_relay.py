"""Responses: what a target socket (:class:`UpstreamProtocol`) reports back.

The target side parses and frames the response; these callbacks decide what
the client gets: the rebuilt head, keep-alive or close, the target socket back
to the pool or closed, and what happens when the target drops the connection.
That last case is where replay is decided: only an idempotent request (RFC 9110
§9.2.2) on a stale pooled socket is sent again, once; a ``POST`` gets ``502``.
"""

from __future__ import annotations

import time
from typing import Final

from labfleet.proxy import messages
from labfleet.proxy.exchange import log_url
from labfleet.proxy.http_parse import Head
from labfleet.proxy.lifecycle import ClientState, Event
from labfleet.proxy.runtime import log
from labfleet.proxy.tunnel import TunnelRelay
from labfleet.proxy.upstream import UpstreamProtocol

AWAITING: Final = ClientState.AWAITING
TUNNEL: Final = ClientState.TUNNEL
CLOSED: Final = ClientState.CLOSED


class ResponseRelay(TunnelRelay):
    __slots__ = ()

    def response_started(self, head: Head, chunked: bool, until_close: bool) -> bytes:
        """The head to send; the caller writes it together with the first body bytes."""
        self.status = head.status
        if until_close or self.ctx.shutting_down or self.body_pending:
            self.keep_alive = False
        out = messages.response_head(head, chunked=chunked, close=not self.keep_alive)
        if self.ctx.hsts_line and self.scheme == b"https":
            out = out[:-2] + self.ctx.hsts_line + b"\r\n\r\n"
        return out

    def response_done(self, up: UpstreamProtocol, reusable: bool) -> None:
        ctx = self.ctx
        status = self.status
        ctx.counters.responses[status // 100] += 1
        route = self.route
        if route is not None and status < 300:
            route.last_activity = time.time()
        up.client = None
        self.upstream = None
        if reusable and not self.body_pending and not up.closed:
            if up.transport is not None:
                up.transport.resume_reading()
            up.pool_release(ctx.now)
        else:
            up.close()
        self._exchange_done()

    def upstream_lost(self, up: UpstreamProtocol) -> None:
        """The target connection closed while serving us."""
        self.upstream = None
        state = self.lc.state
        if state is TUNNEL or state is CLOSED:
            self.transport.close()
            return
        if up.got_bytes:
            self.transport.close()  # mid-response: nothing sane to send
            return
        target = self.target
        if up.reused and state is AWAITING and target is not None:
            # A pooled keep-alive connection the target had already closed. The
            # request may or may not have been acted on, so only an idempotent
            # one is sent again, once, on a fresh connection.
            if self.replay is not None and not self.retried:
                self.retried = True
                self.lc.fire(Event.RETRY)
                self.transport.pause_reading()
                self.ctx.spawn(self._connect(target, self.replay))
                return
            if self.replay is None:
                self.ctx.counters.error("not_replayed")
                log.warning(
                    "502 %s: target closed a reused connection; %s is not retried",
                    log_url(self.head),
                    self.head.method.decode() if self.head else "the request",
                )
                self._send_error(502, "target closed the connection")
                return
        self.ctx.counters.error("upstream_reset")
        log.warning("503 %s: target closed the connection", log_url(self.head))
        self._send_error(503, "target closed the connection")

    def upstream_failed(self, up: UpstreamProtocol, status: int, reason: str) -> None:
        """The target sent something we refuse to relay."""
        up.client = None
        self.upstream = None
        up.close()
        self.ctx.counters.error("bad_response")
        log.warning("%d %s: %s", status, log_url(self.head), reason)
        if up.got_head:
            self.transport.close()
        else:
            self._send_error(status, reason)
