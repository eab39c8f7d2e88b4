"""The API double's ``POST /api/v1/namespaces/NS/pods/NAME/portforward`` (the HTTP side).

kubectl 1.20 to 1.30 ask for ``Upgrade: SPDY/3.1`` and, after ``101 Switching Protocols``,
speak SPDY on the bare connection; kubectl 1.31 and later first try a WebSocket
(subprotocol ``SPDY/3.1+portforward.k8s.io``) carrying the same frames, and fall back to
the plain upgrade when a server refuses it. Both are served here; the frames themselves
are portforward_spdy.py's. The pod's port is dialled at ``status.podIP`` (a test double:
see that module), and a pod that is not Running is refused the way the API server does.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import WSMsgType, web

from .portforward_spdy import PROTOCOL, TUNNELLED_PROTOCOL, Dial, PortForwardSession
from .store import ApiStatus

UPGRADED = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Connection: Upgrade\r\n"
    b"Upgrade: SPDY/3.1\r\n"
    b"X-Stream-Protocol-Version: " + PROTOCOL.encode() + b"\r\n\r\n"
)


def pod_dialer(pod: dict[str, Any]) -> Dial:
    """Where the pod's ports are: its IP, as the double's controller or a test reported it."""
    status = pod.get("status") or {}
    name = pod["metadata"]["name"]
    if status.get("phase") != "Running" or not status.get("podIP"):
        raise ApiStatus(
            400,
            "BadRequest",
            f"pod {name} does not have a host assigned"
            if not status.get("podIP")
            else f"unable to upgrade connection: pod {name} is not running",
        )
    ip = status["podIP"]

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(ip, port)

    return dial


class _Upgraded(asyncio.Protocol):
    """The connection after ``101``: bytes go to a queue, end of file is ``b""``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def eof_received(self) -> bool | None:
        self.queue.put_nowait(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(b"")


async def serve_port_forward(
    request: web.Request, pod: dict[str, Any], stopping: asyncio.Event
) -> web.StreamResponse:
    dial = pod_dialer(pod)
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        return await _tunnelled(request, dial, stopping)
    offered = request.headers.getall("X-Stream-Protocol-Version", [])
    if upgrade != "spdy/3.1" or PROTOCOL not in ",".join(offered):
        raise ApiStatus(400, "BadRequest", "Upgrade request required")
    transport = request.transport
    if transport is None:
        raise ApiStatus(400, "BadRequest", "the connection is gone")
    # From here on the connection is SPDY's: aiohttp's HTTP protocol no longer reads it.
    upgraded = _Upgraded()
    transport.set_protocol(upgraded)
    transport.write(UPGRADED)

    async def send(frame: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("kubectl hung up")
        transport.write(frame)

    session = PortForwardSession(send, dial)
    try:
        while not stopping.is_set():
            try:
                data = await asyncio.wait_for(upgraded.queue.get(), 0.5)
            except TimeoutError:
                continue
            if not data:
                break
            await session.feed(data)
            if session.closed:
                break
    finally:
        await session.close()
        transport.close()
        if request.protocol is not None:
            request.protocol.force_close()
    return web.Response(status=101)


async def _tunnelled(
    request: web.Request, dial: Dial, stopping: asyncio.Event
) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=(TUNNELLED_PROTOCOL,), max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise ApiStatus(400, "BadRequest", "not a WebSocket upgrade")
    await ws.prepare(request)
    if ws.ws_protocol != TUNNELLED_PROTOCOL:
        await ws.close()
        return ws
    session = PortForwardSession(ws.send_bytes, dial)
    try:
        while not stopping.is_set() and not session.closed:
            try:
                message = await ws.receive(timeout=0.5)
            except TimeoutError:
                continue
            if message.type == WSMsgType.BINARY:
                await session.feed(message.data)
            elif message.type in (
                WSMsgType.CLOSE,
                WSMsgType.CLOSING,
                WSMsgType.CLOSED,
                WSMsgType.ERROR,
            ):
                break
    finally:
        await session.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws
