"""Per-phase deadlines of a client connection, checked by the sweeper once a second.

A mixin of :class:`~labfleet.proxy.forward.ClientProtocol`, kept apart so the
whole timeout policy reads in one place: the head (``--timeout``), each stall of
the request body (``--body-timeout``), the target's silence before its response
head (``--proxy-timeout``), idle keep-alive (``--keep-alive-timeout``) and idle
websocket tunnels (``--websocket-idle-timeout``, a ping first).
"""

from __future__ import annotations

import asyncio

from labfleet.proxy.context import ProxyContext
from labfleet.proxy.http_parse import Head
from labfleet.proxy.lifecycle import ClientState, Event, Lifecycle
from labfleet.proxy.paths import split_target
from labfleet.proxy.runtime import log
from labfleet.proxy.upstream import UpstreamProtocol
from labfleet.proxy.wsframes import PING


class Deadlines:
    __slots__ = ()

    ctx: ProxyContext
    lc: Lifecycle
    buf: bytes
    head: Head | None
    head_started: float
    last_io: float
    ping_at: float
    transport: asyncio.Transport
    upstream: UpstreamProtocol | None

    def _close_with(self, status: int, reason: str) -> None:
        raise NotImplementedError

    def _abort(self, status: int, reason: str, *, counted: bool = False) -> None:
        raise NotImplementedError

    def _send_error(self, status: int, reason: str) -> None:
        raise NotImplementedError

    def check_timeouts(self, now: float) -> None:
        """Called about once a second by the server's sweeper: one deadline per phase."""
        opts = self.ctx.options
        state = self.lc.state
        if state is ClientState.IDLE:
            if self.buf:
                if now - self.head_started > opts.header_timeout_s:
                    self.ctx.counters.error("head_timeout")
                    self._close_with(408, "request head timeout")
            elif now - self.last_io > opts.keep_alive_timeout_s or self.ctx.shutting_down:
                self.lc.fire(Event.CLOSE)
                self.transport.close()
        elif state is ClientState.SENDING_BODY:
            if not self.transport.is_reading():
                # paused by back-pressure: the target is the slow one, not the client
                self.last_io = now  # type: ignore[misc]  # a slot of ClientProtocol
            elif now - self.last_io > opts.body_timeout_s:
                self.ctx.counters.error("body_timeout")
                log.info("408 %s: request body stalled", _log_path(self.head))
                self._abort(408, "request body timeout", counted=True)
                return
            self._check_target(now)
        elif state is ClientState.AWAITING:
            self._check_target(now)
        elif state is ClientState.TUNNEL and opts.websocket_idle_timeout_s > 0:
            self._check_tunnel(now, opts.websocket_idle_timeout_s)

    def _check_target(self, now: float) -> None:
        timeout = self.ctx.options.proxy_timeout_s
        up = self.upstream
        if timeout and up is not None and now - up.last_io > timeout and not up.got_head:
            self.ctx.counters.error("timeout")
            self._send_error(504, "target timed out")

    def _check_tunnel(self, now: float, timeout: float) -> None:
        """Half the timeout silent: ping the client; no answer in the other half: close."""
        up = self.upstream
        activity = max(self.last_io, up.last_io if up is not None else 0.0)
        half = timeout / 2
        if self.ping_at > activity:  # pinged, nothing since
            if now - self.ping_at >= half:
                self.ctx.counters.error("websocket_idle")
                self.lc.fire(Event.CLOSE)
                self.transport.close()
            return
        if now - activity < half:
            return
        frames = up.frames if up is not None else None
        if frames is not None and frames.at_boundary:
            self.transport.write(PING)
            self.ping_at = now  # type: ignore[misc]  # a slot of ClientProtocol
        elif now - activity >= timeout:
            self.ctx.counters.error("websocket_idle")
            self.lc.fire(Event.CLOSE)
            self.transport.close()


def _log_path(head: Head | None) -> str:
    if head is None:
        return "/"
    path, query = split_target(head.target)
    return path.decode("latin-1") + ("?..." if query else "")
