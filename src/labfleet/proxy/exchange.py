"""What a client connection knows, and how each request/response exchange ends.

The bottom layer of :class:`~labfleet.proxy.forward.ClientProtocol`: the
facts about the current request (framing, route, replay copy; its state lives
in ``lc``, :mod:`labfleet.proxy.lifecycle`) and every way an exchange can
finish: back to idle for the next keep-alive request, the proxy's own answer
(health check, error page, the hub's ``--error-target`` page), or a refusal
that closes the connection. The relays above (request head, body, response,
tunnel) call down into it; nothing here calls up except through the two
stubs below (``_next_request``, ``_connect``), which the request relay defines.
"""

from __future__ import annotations

import asyncio
from typing import Final

from labfleet.proxy import messages
from labfleet.proxy.context import ProxyContext
from labfleet.proxy.deadlines import Deadlines
from labfleet.proxy.errors import fetch_error_page
from labfleet.proxy.http_parse import ChunkedTracker, Head
from labfleet.proxy.lifecycle import ClientState, Event, Lifecycle
from labfleet.proxy.paths import split_target
from labfleet.proxy.routes import Route
from labfleet.proxy.runtime import log
from labfleet.proxy.targets import Target
from labfleet.proxy.trust import TrustedProxies
from labfleet.proxy.upstream import UpstreamProtocol

IDLE: Final = ClientState.IDLE
CLOSED: Final = ClientState.CLOSED


class Exchange(Deadlines):
    """A downstream (browser-side) connection's facts and endings; see the module doc."""

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

    # Defined by the request relay, the top layer; called from here and the layers between.
    def _next_request(self, seen: int = 0) -> None:
        """Parse the next pipelined head (:mod:`labfleet.proxy.request_relay`)."""
        raise NotImplementedError

    async def _connect(self, target: Target, payload: bytes) -> None:
        """Send ``payload`` on a fresh or pooled target socket (``request_relay``)."""
        raise NotImplementedError

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


def log_url(head: Head | None) -> str:
    """For logs: the path only, since queries can carry ``?token=`` secrets."""
    if head is None:
        return "/"
    path, query = split_target(head.target)
    return path.decode("latin-1") + ("?..." if query else "")
