"""Request heads: parse, route, rebuild for the target, and attach a target socket.

A head is parsed strictly (``http_parse``), routed by its decoded path segments
(``paths``, ``routes``), and rebuilt with the proxy's own forwarding headers
(``messages``). A pooled keep-alive socket to the target is used at once when
one is idle; otherwise reading pauses while one is connected. When the request
has a body, the relay continues in :mod:`labfleet.proxy.body_relay`.

The top relay: it is the entry point of every request, so it sits above the
response and tunnel relays whose methods a target socket calls back
(``upstream.Downstream``).
"""

from __future__ import annotations

from typing import Final

from labfleet.proxy import messages
from labfleet.proxy.exchange import log_url
from labfleet.proxy.http_parse import (
    ChunkedTracker,
    Head,
    HttpError,
    find_head_end,
    host_without_port,
    parse_request_head,
)
from labfleet.proxy.lifecycle import Event
from labfleet.proxy.paths import route_segments, split_target, strip_prefix
from labfleet.proxy.pool import PoolTimeout
from labfleet.proxy.response_relay import ResponseRelay
from labfleet.proxy.runtime import log
from labfleet.proxy.targets import Target
from labfleet.proxy.upstream import UpstreamProtocol

_HEALTH: Final = b"/_chp_healthz"
# RFC 9110 §9.2.2: only these may be sent again after a connection dropped them.
IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class RequestRelay(ResponseRelay):
    __slots__ = ()

    def _next_request(self, seen: int = 0) -> None:
        """Parse the next head from ``self.buf``; its first ``seen`` bytes were checked before."""
        buf = self.buf
        if buf.startswith(b"\r\n"):
            stripped = buf.lstrip(b"\r\n")
            seen = max(0, seen - (len(buf) - len(stripped)))
            buf = stripped
        try:
            end = find_head_end(buf, seen)
            if end < 0:
                self.buf = buf
                return
            self.buf = buf[end + 4 :]
            head = parse_request_head(buf[:end])
            self.lc.fire(Event.HEAD)
            self._route(head)  # refuses hostile paths (dot segments, bad encodings)
        except HttpError as exc:
            self._reject(exc.status, exc.reason)

    def _route(self, head: Head) -> None:
        ctx = self.ctx
        opts = ctx.options
        ctx.counters.requests += 1
        self.head = head
        self.status = 0
        self.retried = False
        self.keep_alive = not head.connection_close and not ctx.shutting_down
        if head.chunked:
            self.chunks = ChunkedTracker()
            self.body_left = -1
        else:
            self.chunks = None
            self.body_left = max(head.content_length, 0)
        path, query = split_target(head.target)
        segments = route_segments(path)
        if path == _HEALTH:
            self._local_response(200, b'{"status": "OK"}', b"application/json")
            return
        if opts.host_routing:
            segments.insert(0, host_without_port(head.host))
        route = ctx.table.lookup(segments)
        if route is None:
            if not opts.default_target:
                self._send_error(404, "no route")
                return
            route = ctx.default_route
            target = ctx.targets.get(opts.default_target)
        else:
            try:
                target = ctx.targets.get(route.target)
            except ValueError:
                self._send_error(503, "invalid target")
                return
        self.route = route
        self.target = target
        upath = head.target
        if not opts.include_prefix and route is not ctx.default_route:
            depth = len(route.key) - (1 if opts.host_routing and route.key else 0)
            upath = strip_prefix(path, depth) + query
        if opts.prepend_path and target.path_prefix:
            upath = target.path_prefix + upath
        self.up_head = messages.upstream_request_head(
            head,
            upath,
            peer=self.peer,
            scheme=self.scheme,
            x_forward=opts.x_forward,
            trusted_hop=self.trusted_hop,
            host_override=target.host_header if opts.change_origin else None,
            extra=ctx.extra_headers,
        )
        # A copy to send again if a pooled connection turns out stale: idempotent
        # requests only (RFC 9110 §9.2.2), and only while small; the body is
        # added as it is forwarded.
        self.replay = self.up_head if head.method in IDEMPOTENT else None
        if ctx.debug:
            log.debug("PROXY %s %s -> %s", head.method.decode(), path.decode(), route.target)
        conn = ctx.pools.take_idle(target) if not head.http10 else None
        if conn is not None:
            self._attach(conn, self.up_head)
        else:
            self.transport.pause_reading()
            ctx.spawn(self._connect(target, self.up_head))

    async def _connect(self, target: Target, payload: bytes) -> None:
        try:
            conn = await self.ctx.pools.acquire(target)
        except (OSError, TimeoutError, PoolTimeout, ValueError) as exc:
            self.ctx.counters.error("connect")
            if not self.closed:
                log.warning("503 %s: cannot connect to target: %s", log_url(self.head), exc)
                self._send_error(503, "target unreachable")
            return
        if self.closed:  # the client left while we connected: keep the socket
            conn.pool_release(self.ctx.now)
            return
        self.ctx.counters.upstream_connects = self.ctx.pools.connects
        self._attach(conn, payload)
        self.transport.resume_reading()

    def _attach(self, conn: UpstreamProtocol, payload: bytes) -> None:
        head = self.head
        assert head is not None and conn.transport is not None
        self.upstream = conn
        conn.begin(self, head.method == b"HEAD", bool(head.upgrade))
        if not self.body_pending or payload is not self.up_head:  # (a replay holds its body)
            self.lc.fire(Event.ATTACHED)
            conn.transport.write(payload)
            return
        self.lc.fire(Event.ATTACHED_WITH_BODY)
        self.last_io = self.ctx.now
        data = self.buf
        self.buf = b""
        if data:
            self._forward_body(data, payload)  # head and body in one write
        else:
            conn.transport.write(payload)
