"""The data plane: one protocol object per client socket and per target socket.

Bytes are spliced, not re-encoded: the request head is parsed strictly and
rebuilt (``messages``), then body bytes are written to the other socket as
they arrive while :class:`ChunkedTracker` or a byte count follows where the
message ends. Nothing is buffered beyond one read; back-pressure pauses the
reading side whenever the writing side's buffer is full (``pause_writing``),
so a 2 GB upload or download never sits in memory.

Protocols (callbacks), not streams, because the common case — a keep-alive
request on a pooled target connection — then runs without creating a single
task or future.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, cast

from labfleet.proxy import messages
from labfleet.proxy.context import ProxyContext
from labfleet.proxy.deadlines import Deadlines
from labfleet.proxy.errors import fetch_error_page
from labfleet.proxy.http_parse import (
    ChunkedTracker,
    Head,
    HttpError,
    find_head_end,
    host_without_port,
    parse_request_head,
)
from labfleet.proxy.lifecycle import ClientState, Event, Lifecycle
from labfleet.proxy.paths import route_segments, split_target, strip_prefix
from labfleet.proxy.pool import PoolTimeout
from labfleet.proxy.routes import Route
from labfleet.proxy.runtime import log
from labfleet.proxy.targets import Target
from labfleet.proxy.trust import TrustedProxies
from labfleet.proxy.upstream import UpstreamProtocol

IDLE: Final = ClientState.IDLE
CONNECTING: Final = ClientState.CONNECTING
SENDING_BODY: Final = ClientState.SENDING_BODY
AWAITING: Final = ClientState.AWAITING
ERROR_PAGE: Final = ClientState.ERROR_PAGE
TUNNEL: Final = ClientState.TUNNEL
CLOSED: Final = ClientState.CLOSED

_PIPELINE_LIMIT: Final = 1 << 20
_REPLAY_LIMIT: Final = 64 * 1024  # an idempotent request up to this size can be replayed
_HEALTH: Final = b"/_chp_healthz"
# RFC 9110 §9.2.2: only these may be sent again after a connection dropped them.
IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class ClientProtocol(Deadlines, asyncio.Protocol):
    """A downstream (browser-side) connection, possibly many requests long.

    Its state lives in ``self.lc`` (:mod:`labfleet.proxy.lifecycle`); every
    change goes through ``self.lc.fire(event)``. The other attributes are
    facts about the current request (framing, route, replay copy), not states.
    """

    __slots__ = (
        "body_left",
        "buf",
        "chunks",
        "counted",
        "ctx",
        "eof",
        "head",
        "head_started",
        "keep_alive",
        "last_io",
        "lc",
        "peer",
        "ping_at",
        "replay",
        "retried",
        "route",
        "scheme",
        "status",
        "target",
        "transport",
        "trusted_hop",
        "up_head",
        "upstream",
    )

    def __init__(self, ctx: ProxyContext, scheme: bytes) -> None:
        self.ctx = ctx
        self.scheme = scheme
        self.lc = Lifecycle()
        self.buf = b""
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.upstream: UpstreamProtocol | None = None
        self.head: Head | None = None
        self.route: Route | None = None
        self.target: Target | None = None
        self.up_head = b""
        self.replay: bytes | None = None
        self.retried = False
        self.keep_alive = True
        self.body_left = 0
        self.chunks: ChunkedTracker | None = None
        self.status = 0
        self.peer = b""
        self.trusted_hop: TrustedProxies | None = None
        self.counted = False
        self.last_io = ctx.now
        self.head_started = ctx.now
        self.ping_at = 0.0
        self.eof = False

    @property
    def closed(self) -> bool:
        return self.lc.state is CLOSED

    @property
    def body_pending(self) -> bool:
        """Part of the current request body has not been forwarded yet."""
        return self.chunks is not None or self.body_left > 0

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
            up = self.upstream
            if up is not None and up.transport is not None:
                up.transport.write(data)
                self.ctx.counters.bytes_in += len(data)
                self.last_io = self.ctx.now
                route = self.route
                if route is not None:
                    route.last_activity = time.time()
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
        elif len(self.buf) > _PIPELINE_LIMIT:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        state = self.lc.state
        if state is TUNNEL:
            up = self.upstream
            if up is None or up.transport is None or up.eof:
                return False
            if up.transport.can_write_eof():
                up.transport.write_eof()
            return True
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

    # -- request side ------------------------------------------------------
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
                log.warning("503 %s: cannot connect to target: %s", _log_url(self.head), exc)
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

    def _forward_body(self, data: bytes, prefix: bytes = b"") -> None:
        up = self.upstream
        if up is None or up.transport is None:
            self.transport.close()
            return
        now = self.ctx.now
        self.last_io = now  # --body-timeout counts from the last byte received
        up.last_io = now  # an upload in progress is activity (--proxy-timeout)
        n = len(data)
        chunks = self.chunks
        rest = b""
        if chunks is not None:
            try:
                end = chunks.feed(data)
            except HttpError as exc:
                self._abort(exc.status, exc.reason)
                return
            if end >= 0:
                rest = data[end:]
                data = data[:end]
                self.chunks = None
        else:
            left = self.body_left
            if n >= left:
                rest = data[left:]
                data = data[:left]
                self.body_left = 0
            else:
                self.body_left = left - n
        up.transport.write(prefix + data if prefix else data)
        self.ctx.counters.bytes_in += len(data)
        replay = self.replay
        if replay is not None:
            self.replay = replay + data if len(replay) + len(data) <= _REPLAY_LIMIT else None
        if self.body_pending:
            return
        self.buf = rest
        if self.lc.state is SENDING_BODY:
            self.lc.fire(Event.BODY_DONE)
        if len(rest) > _PIPELINE_LIMIT:
            self.transport.pause_reading()

    # -- response side (called by UpstreamProtocol) -------------------------
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
                    _log_url(self.head),
                    self.head.method.decode() if self.head else "the request",
                )
                self._send_error(502, "target closed the connection")
                return
        self.ctx.counters.error("upstream_reset")
        log.warning("503 %s: target closed the connection", _log_url(self.head))
        self._send_error(503, "target closed the connection")

    def upstream_failed(self, up: UpstreamProtocol, status: int, reason: str) -> None:
        """The target sent something we refuse to relay."""
        up.client = None
        self.upstream = None
        up.close()
        self.ctx.counters.error("bad_response")
        log.warning("%d %s: %s", status, _log_url(self.head), reason)
        if up.got_head:
            self.transport.close()
        else:
            self._send_error(status, reason)

    # -- endings ---------------------------------------------------------
    def _exchange_done(self) -> None:
        if self.lc.state is CLOSED:
            return
        if not self.keep_alive or self.ctx.shutting_down or self.body_pending:
            self.lc.fire(Event.CLOSE)
            self.transport.close()
            return
        self.lc.fire(Event.RESPONSE_DONE)
        self.last_io = self.ctx.now
        self.route = None
        self.head = None
        self.replay = None
        self.transport.resume_reading()
        if self.buf:
            self.head_started = self.ctx.now
            self.ctx.loop.call_soon(self._resume_pipeline)

    def _resume_pipeline(self) -> None:
        if self.lc.state is IDLE and self.buf:
            self._next_request()

    def _reject(self, status: int, reason: str) -> None:
        """A request we will not parse further: answer and close."""
        self.ctx.counters.error("bad_request")
        self._close_with(status, reason)

    def _close_with(self, status: int, reason: str) -> None:
        self.ctx.counters.responses[status // 100] += 1
        if self.ctx.debug:
            log.debug("%d: %s", status, reason)
        self.lc.fire(Event.CLOSE)
        body = f"{status} {reason}\n".encode()
        self.transport.write(
            messages.simple_response(status, body, content_type=b"text/plain", close=True)
        )
        self.transport.close()

    def _abort(self, status: int, reason: str, *, counted: bool = False) -> None:
        """A request body that went wrong while being forwarded."""
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.client = None
            up.close()
        if self.status:  # response already started
            self.lc.fire(Event.CLOSE)
            self.transport.close()
        elif counted:
            self._close_with(status, reason)
        else:
            self._reject(status, reason)

    def _local_response(self, status: int, body: bytes, ctype: bytes) -> None:
        head = self.head
        self.status = status
        self.ctx.counters.responses[status // 100] += 1
        if self.body_pending:
            self.keep_alive = False
        self.transport.write(
            messages.simple_response(
                status,
                body,
                content_type=ctype,
                close=not self.keep_alive,
                head_only=head is not None and head.method == b"HEAD",
            )
        )
        self._exchange_done()

    def _send_error(self, status: int, reason: str) -> None:
        """CHP's error behaviour: the hub's error page if configured, else ours."""
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.client = None
            up.close()
        if self.body_pending:
            self.keep_alive = False
        url = _url(self.head)
        error_target = self.ctx.options.error_target
        if error_target and status in (404, 502, 503, 504):
            self.lc.fire(Event.ERROR_PAGE)
            self.transport.pause_reading()
            self.ctx.spawn(self._relay_error_page(error_target, status, url))
            return
        self.ctx.counters.responses[status // 100] += 1
        self._error_page(status, messages.builtin_error_page(status, url), b"")

    async def _relay_error_page(self, error_target: str, status: int, url: str) -> None:
        page = await fetch_error_page(error_target, status, url, client_ssl=self.ctx.client_ssl)
        if self.closed:
            return
        self.ctx.counters.responses[status // 100] += 1
        if page is None:
            self._error_page(status, messages.builtin_error_page(status, url), b"")
        else:
            self._error_page(status, page[1], page[0])

    def _error_page(self, status: int, body: bytes, ctype: bytes) -> None:
        self.status = status
        head = self.head
        self.transport.write(
            messages.simple_response(
                status,
                body,
                content_type=ctype or b"text/html; charset=utf-8",
                close=not self.keep_alive,
                head_only=head is not None and head.method == b"HEAD",
            )
        )
        self._exchange_done()


def _url(head: Head | None) -> str:
    """The request URL as CHP hands it to the error target (path and query)."""
    if head is None:
        return "/"
    return head.target.decode("latin-1")


def _log_url(head: Head | None) -> str:
    """For logs: the path only, since queries can carry ``?token=`` secrets."""
    if head is None:
        return "/"
    path, query = split_target(head.target)
    return path.decode("latin-1") + ("?..." if query else "")
