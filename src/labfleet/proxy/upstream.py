"""The target side of the data plane: one protocol per pooled target socket.

It parses the response head strictly (``parse_response_head``), relays 1xx
interim responses, switches to a raw tunnel on ``101``, and follows the
response framing (length, chunked, or until close) while splicing body bytes
to the client, so it knows when the socket can go back to the pool.
"""

from __future__ import annotations

import asyncio
import enum
import time
from typing import Protocol, cast

from labfleet.proxy import messages
from labfleet.proxy.context import ProxyContext
from labfleet.proxy.http_parse import (
    MAX_HEAD,
    ChunkedTracker,
    Head,
    HttpError,
    parse_response_head,
)
from labfleet.proxy.pool import PooledProtocol
from labfleet.proxy.routes import Route
from labfleet.proxy.wsframes import FrameTracker


class TargetState(enum.IntEnum):
    """Response side of one target socket: IDLE → HEAD → BODY → IDLE, or HEAD → TUNNEL."""

    IDLE = 0  # in the pool, or attached and not yet sent anything
    HEAD = 1  # waiting for (the rest of) the response head
    BODY = 2  # relaying the response body
    TUNNEL = 3  # after 101: raw bytes


R_IDLE = TargetState.IDLE
R_HEAD = TargetState.HEAD
R_BODY = TargetState.BODY
R_TUNNEL = TargetState.TUNNEL


class Downstream(Protocol):
    """What a target connection needs from the client connection it serves.

    ``forward.ClientProtocol`` implements it; defining it here keeps the
    import one-way (forward → upstream).
    """

    transport: asyncio.Transport
    route: Route | None
    eof: bool

    @property
    def closed(self) -> bool: ...

    def response_started(self, head: Head, chunked: bool, until_close: bool) -> bytes: ...

    def response_done(self, up: UpstreamProtocol, reusable: bool) -> None: ...

    def start_tunnel(self, up: UpstreamProtocol, websocket: bool) -> None: ...

    def upstream_lost(self, up: UpstreamProtocol) -> None: ...

    def upstream_failed(self, up: UpstreamProtocol, status: int, reason: str) -> None: ...


class UpstreamProtocol(PooledProtocol):
    """A connection to a target; lives in a pool between requests."""

    def __init__(self, ctx: ProxyContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.client: Downstream | None = None
        self.frames: FrameTracker | None = None
        self.state = R_IDLE
        self.buf = b""
        self.no_body = False
        self.upgrade = False
        self.got_bytes = False
        self.got_head = False
        self.body_left = 0
        self.chunks: ChunkedTracker | None = None
        self.until_close = False
        self.keep = True
        self.eof = False
        self.last_io = ctx.now

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ctx.counters.upstream_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.ctx.counters.upstream_connections -= 1
        self.closed = True
        if self.pool is not None:
            self.pool.discard(self)
        client = self.client
        if client is not None:
            self.client = None
            if self.state == R_BODY and self.until_close:
                self._finish(client)
            else:
                client.upstream_lost(self)

    def pool_release(self, now: float) -> None:
        if self.pool is not None:
            self.pool.release(self, now)
        else:
            self.close()

    def begin(self, client: Downstream, no_body: bool, upgrade: bool) -> None:
        self.client = client
        self.state = R_HEAD
        self.buf = b""
        self.no_body = no_body
        self.upgrade = upgrade
        self.got_bytes = False
        self.got_head = False
        self.frames = None
        self.last_io = self.ctx.now

    def pause_writing(self) -> None:
        client = self.client
        if client is not None:
            client.transport.pause_reading()

    def resume_writing(self) -> None:
        client = self.client
        if client is not None and not client.closed:
            client.transport.resume_reading()

    def eof_received(self) -> bool:
        self.eof = True
        client = self.client
        if client is not None and self.state == R_TUNNEL:
            if client.eof:
                return False
            if client.transport.can_write_eof():
                client.transport.write_eof()
            return True
        if client is None:
            self.close()  # an idle pooled connection the target closed: never reuse it
        return False

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            self.close()  # unsolicited bytes on an idle connection
            return
        state = self.state
        self.last_io = self.ctx.now
        if state == R_BODY:
            self._body(client, data)
            return
        if state == R_TUNNEL:
            client.transport.write(data)
            self.ctx.counters.bytes_out += len(data)
            if self.frames is not None:
                self.frames.feed(data)
            route = client.route
            if route is not None:
                route.last_activity = time.time()
            return
        self.got_bytes = True
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                self.buf = buf
                if len(buf) > MAX_HEAD:
                    client.upstream_failed(self, 502, "response head too large")
                return
            try:
                head = parse_response_head(buf[:end])
            except HttpError as exc:
                client.upstream_failed(self, 502, exc.reason)
                return
            buf = buf[end + 4 :]
            status = head.status
            if status >= 200:
                break
            if status == 101:
                if not self.upgrade:
                    client.upstream_failed(self, 502, "unexpected 101 response")
                    return
                self.got_head = True
                self.state = R_TUNNEL
                self.buf = b""
                websocket = head.upgrade.lower() == b"websocket"
                if websocket:
                    self.frames = FrameTracker()
                client.transport.write(messages.upgrade_head(head))
                if buf:
                    client.transport.write(buf)
                    if self.frames is not None:
                        self.frames.feed(buf)
                client.start_tunnel(self, websocket)
                return
            client.transport.write(messages.interim_head(head))
        self.buf = b""
        self.got_head = True
        self.chunks = None
        self.until_close = False
        self.body_left = 0
        if self.no_body or status == 204 or status == 304:
            pass
        elif head.chunked:
            self.chunks = ChunkedTracker()
        elif head.content_length >= 0:
            self.body_left = head.content_length
        else:
            self.until_close = True
        self.keep = not head.connection_close and not self.until_close
        self.state = R_BODY
        out = client.response_started(head, self.chunks is not None, self.until_close)
        if self.chunks is None and self.body_left == 0 and not self.until_close:
            if buf:
                self.keep = False  # bytes after a complete response: do not reuse
            client.transport.write(out)
            self._finish(client)
        elif buf:
            self._body(client, buf, out)  # head and first body bytes in one write
        else:
            client.transport.write(out)

    def _body(self, client: Downstream, data: bytes, prefix: bytes = b"") -> None:
        counters = self.ctx.counters
        n = len(data)
        if self.until_close:
            client.transport.write(prefix + data if prefix else data)
            counters.bytes_out += n
            return
        chunks = self.chunks
        if chunks is not None:
            try:
                end = chunks.feed(data)
            except HttpError:
                if prefix:  # nothing sent to the client yet: it can still get a 502
                    self.got_head = False
                client.upstream_failed(self, 502, "malformed chunked response")
                return
            if end < 0:
                client.transport.write(prefix + data if prefix else data)
                counters.bytes_out += n
                return
            if end < n:
                self.keep = False
                data = data[:end]
        else:
            left = self.body_left
            if n < left:
                client.transport.write(prefix + data if prefix else data)
                self.body_left = left - n
                counters.bytes_out += n
                return
            if n > left:
                self.keep = False
                data = data[:left]
            self.body_left = 0
        client.transport.write(prefix + data if prefix else data)
        counters.bytes_out += len(data)
        self._finish(client)

    def _finish(self, client: Downstream) -> None:
        self.state = R_IDLE
        client.response_done(self, self.keep and not self.closed)
