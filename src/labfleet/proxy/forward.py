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
from labfleet.proxy.context import ProxyContext, log
from labfleet.proxy.errors import fetch_error_page
from labfleet.proxy.http_parse import (
    MAX_HEAD,
    ChunkedTracker,
    Head,
    HttpError,
    host_without_port,
    parse_request_head,
)
from labfleet.proxy.paths import route_segments, split_target, strip_prefix
from labfleet.proxy.pool import PoolTimeout
from labfleet.proxy.routes import Route
from labfleet.proxy.targets import Target
from labfleet.proxy.upstream import UpstreamProtocol

# client states
IDLE: Final = 0  # waiting for (the rest of) a request head
CONNECTING: Final = 1  # head parsed, waiting for a target connection
BODY: Final = 2  # forwarding the request body
WAIT: Final = 3  # request sent, response in progress
TUNNEL: Final = 4  # upgraded: raw bytes both ways
CLOSED: Final = 5

_PIPELINE_LIMIT: Final = 1 << 20
_HEALTH: Final = b"/_chp_healthz"


class ClientProtocol(asyncio.Protocol):
    """A downstream (browser-side) connection, possibly many requests long."""

    __slots__ = (
        "body_left",
        "buf",
        "chunks",
        "ctx",
        "eof",
        "head",
        "head_started",
        "keep_alive",
        "last_io",
        "peer",
        "replay",
        "req_done",
        "resp_done",
        "retried",
        "route",
        "scheme",
        "state",
        "status",
        "target",
        "transport",
        "up_head",
        "upstream",
    )

    def __init__(self, ctx: ProxyContext, scheme: bytes) -> None:
        self.ctx = ctx
        self.scheme = scheme
        self.state = IDLE
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
        self.req_done = True
        self.resp_done = False
        self.body_left = 0
        self.chunks: ChunkedTracker | None = None
        self.status = 0
        self.peer = b""
        self.last_io = ctx.now
        self.head_started = ctx.now
        self.eof = False

    # -- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = str(peer[0]).encode("ascii")
        self.ctx.connections.add(self)
        self.ctx.counters.active_connections += 1
        if self.ctx.shutting_down:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        ctx = self.ctx
        ctx.connections.discard(self)
        ctx.counters.active_connections -= 1
        if self.state == TUNNEL:
            ctx.counters.websockets_active -= 1
        self.state = CLOSED
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.client = None
            up.close()

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == TUNNEL:
            up = self.upstream
            if up is not None and up.transport is not None:
                up.transport.write(data)
                route = self.route
                if route is not None:
                    route.bytes_in += len(data)
                    route.last_activity = time.time()
            return
        if state == BODY:
            self._forward_body(data)
            return
        if state == CLOSED:
            return
        if self.buf:
            self.buf += data
        else:
            self.buf = data
            if state == IDLE:  # the first bytes of a head start its deadline (slowloris)
                self.head_started = self.ctx.now
        if state == IDLE:
            self._next_request()
        elif len(self.buf) > _PIPELINE_LIMIT:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == TUNNEL:
            up = self.upstream
            if up is None or up.transport is None or up.eof:
                return False
            if up.transport.can_write_eof():
                up.transport.write_eof()
            return True
        if self.state in (WAIT, CONNECTING) and self.req_done:
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

    # -- request side ------------------------------------------------------
    def _next_request(self) -> None:
        buf = self.buf
        if buf.startswith(b"\r\n"):
            buf = buf.lstrip(b"\r\n")
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            if len(buf) > MAX_HEAD:
                self._reject(431, "request head too large")
            elif b"\n\n" in buf or b"\r\r" in buf:
                self._reject(400, "malformed line endings")
            return
        self.buf = buf[end + 4 :]
        try:
            head = parse_request_head(buf[:end])
            self._route(head)
        except HttpError as exc:
            self._reject(exc.status, exc.reason)

    def _route(self, head: Head) -> None:
        ctx = self.ctx
        opts = ctx.options
        ctx.counters.requests += 1
        self.head = head
        self.status = 0
        self.retried = False
        self.resp_done = False
        self.keep_alive = not head.connection_close and not ctx.shutting_down
        if head.chunked:
            self.chunks = ChunkedTracker()
            self.body_left = -1
            self.req_done = False
        else:
            self.chunks = None
            self.body_left = max(head.content_length, 0)
            self.req_done = self.body_left == 0
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
            host_override=target.host_header if opts.change_origin else None,
            extra=ctx.extra_headers,
        )
        if self.req_done:
            self.replay = self.up_head
        elif self.body_left > 0 and len(self.buf) >= self.body_left:
            self.replay = self.up_head + self.buf[: self.body_left]
        else:
            self.replay = None
        if ctx.debug:
            log.debug("PROXY %s %s -> %s", head.method.decode(), path.decode(), route.target)
        conn = ctx.pools.take_idle(target) if not head.http10 else None
        if conn is not None:
            self._attach(conn, self.up_head)
        else:
            self.state = CONNECTING
            self.transport.pause_reading()
            ctx.spawn(self._connect(target, self.up_head))

    async def _connect(self, target: Target, payload: bytes) -> None:
        try:
            conn = await self.ctx.pools.acquire(target)
        except (OSError, TimeoutError, PoolTimeout, ValueError) as exc:
            self.ctx.counters.error("connect")
            if self.state != CLOSED:
                log.warning("503 %s: cannot connect to target: %s", _log_url(self.head), exc)
                self._send_error(503, "target unreachable")
            return
        if self.state == CLOSED:  # the client left while we connected: keep the socket
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
        if self.req_done or payload is not self.up_head:  # (a replay holds its body)
            self.state = WAIT
            conn.transport.write(payload)
            return
        self.state = BODY
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
        up.last_io = self.ctx.now  # an upload in progress is activity (--proxy-timeout)
        n = len(data)
        chunks = self.chunks
        if chunks is not None:
            try:
                end = chunks.feed(data)
            except HttpError as exc:
                self._abort(exc.status, exc.reason)
                return
            if end < 0:
                up.transport.write(prefix + data if prefix else data)
                if self.route is not None:
                    self.route.bytes_in += n
                return
            rest = data[end:]
            data = data[:end]
        else:
            left = self.body_left
            if n < left:
                up.transport.write(prefix + data if prefix else data)
                self.body_left = left - n
                if self.route is not None:
                    self.route.bytes_in += n
                return
            rest = data[left:]
            data = data[:left]
            self.body_left = 0
        if data or prefix:
            up.transport.write(prefix + data if prefix else data)
        if self.route is not None:
            self.route.bytes_in += len(data)
        self.buf = rest
        self.req_done = True
        if self.state == BODY:
            self.state = WAIT
        if len(rest) > _PIPELINE_LIMIT:
            self.transport.pause_reading()

    # -- response side (called by UpstreamProtocol) -------------------------
    def response_started(self, head: Head, chunked: bool, until_close: bool) -> bytes:
        """The head to send; the caller writes it together with the first body bytes."""
        self.status = head.status
        if until_close or self.ctx.shutting_down or not self.req_done:
            self.keep_alive = False
        return messages.response_head(head, chunked=chunked, close=not self.keep_alive)

    def response_done(self, up: UpstreamProtocol, reusable: bool) -> None:
        ctx = self.ctx
        self.resp_done = True
        status = self.status
        ctx.counters.responses[status // 100] += 1
        route = self.route
        if route is not None and status < 300:
            route.last_activity = time.time()
        up.client = None
        self.upstream = None
        if reusable and self.req_done and not up.closed:
            if up.transport is not None:
                up.transport.resume_reading()
            up.pool_release(ctx.now)
        else:
            up.close()
        self._exchange_done()

    def start_tunnel(self, up: UpstreamProtocol) -> None:
        counters = self.ctx.counters
        counters.websockets_active += 1
        counters.websockets_total += 1
        counters.responses[1] += 1
        self.state = TUNNEL
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
        if self.state == TUNNEL or self.state == CLOSED:
            self.transport.close()
            return
        if up.got_bytes:
            self.transport.close()  # mid-response: nothing sane to send
            return
        target = self.target
        if up.reused and self.replay is not None and not self.retried and target is not None:
            self.retried = True  # a stale keep-alive connection: replay once
            self.state = CONNECTING
            self.transport.pause_reading()
            self.ctx.spawn(self._connect(target, self.replay))
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
        if not self.keep_alive or self.ctx.shutting_down or self.state == CLOSED:
            self.state = CLOSED
            self.transport.close()
            return
        self.state = IDLE
        self.last_io = self.ctx.now
        self.route = None
        self.head = None
        self.transport.resume_reading()
        if self.buf:
            self.head_started = self.ctx.now
            self.ctx.loop.call_soon(self._resume_pipeline)

    def _resume_pipeline(self) -> None:
        if self.state == IDLE and self.buf:
            self._next_request()

    def _reject(self, status: int, reason: str) -> None:
        """A request we will not parse further: answer and close."""
        self.ctx.counters.error("bad_request")
        self.ctx.counters.responses[status // 100] += 1
        if self.ctx.debug:
            log.debug("%d rejected: %s", status, reason)
        self.state = CLOSED
        body = f"{status} {reason}\n".encode()
        self.transport.write(
            messages.simple_response(status, body, content_type=b"text/plain", close=True)
        )
        self.transport.close()

    def _abort(self, status: int, reason: str) -> None:
        """Malformed framing inside a body already being forwarded."""
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.client = None
            up.close()
        if self.status:  # response already started
            self.state = CLOSED
            self.transport.close()
        else:
            self._reject(status, reason)

    def _local_response(self, status: int, body: bytes, ctype: bytes) -> None:
        head = self.head
        self.status = status
        self.ctx.counters.responses[status // 100] += 1
        if not self.req_done:
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
        if not self.req_done:
            self.keep_alive = False
        url = _url(self.head)
        error_target = self.ctx.options.error_target
        if error_target and status in (404, 502, 503, 504):
            self.state = CONNECTING
            self.transport.pause_reading()
            self.ctx.spawn(self._relay_error_page(error_target, status, url))
            return
        self.ctx.counters.responses[status // 100] += 1
        self._error_page(status, messages.builtin_error_page(status, url), b"")

    async def _relay_error_page(self, error_target: str, status: int, url: str) -> None:
        page = await fetch_error_page(error_target, status, url, client_ssl=self.ctx.client_ssl)
        if self.state == CLOSED:
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

    def check_timeouts(self, now: float) -> None:
        """Called about once a second by the server's sweeper."""
        opts = self.ctx.options
        state = self.state
        if state == IDLE:
            if self.buf:
                if now - self.head_started > opts.header_timeout_s:
                    self._reject(408, "request head timeout")
            elif now - self.last_io > opts.keep_alive_timeout_s or self.ctx.shutting_down:
                self.state = CLOSED
                self.transport.close()
        elif state in (WAIT, BODY) and opts.proxy_timeout_s:
            up = self.upstream
            if up is not None and now - up.last_io > opts.proxy_timeout_s and not up.got_head:
                self.ctx.counters.error("timeout")
                self._send_error(504, "target timed out")


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
