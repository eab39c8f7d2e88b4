"""The benchmark's backend: a minimal, fast HTTP/1.1 server plus a websocket echo.

Fast on purpose (raw asyncio protocol on uvloop, pre-built responses) so that
the proxy in front of it, not the backend, is what the numbers measure.

    python bench/proxy/backend.py HTTP_PORT WS_PORT

* any path → 200 with a 13-byte body (keep-alive);
* a path containing ``/big`` → a chunked body of ``BIG_BYTES`` (1 MiB chunks);
* ``/__connections`` → how many connections were accepted so far;
* WS_PORT: websocket echo (``websockets`` library).
"""

from __future__ import annotations

import asyncio
import sys

BIG_BYTES = 64 * 1024 * 1024
_CHUNK = b"x" * (1 << 20)
_SMALL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
_BIG_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_CHUNK_FRAME = b"%x\r\n" % len(_CHUNK) + _CHUNK + b"\r\n"
ACCEPTED = [0]  # connections accepted: how many sockets the proxy opened to us


class Backend(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.paused: asyncio.Event | None = None
        self.task: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        ACCEPTED[0] += 1

    def pause_writing(self) -> None:
        self.paused = asyncio.Event()

    def resume_writing(self) -> None:
        if self.paused is not None:
            self.paused.set()
            self.paused = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            buf = buf[end + 4 :]
            line = head.split(b"\r\n", 1)[0]
            if b"/big" in line:
                self.task = asyncio.ensure_future(self.send_big())
            elif b"/__connections" in line:
                body = str(ACCEPTED[0]).encode()
                assert self.transport is not None
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            else:
                assert self.transport is not None
                self.transport.write(_SMALL)
        self.buf = buf

    async def send_big(self) -> None:
        t = self.transport
        assert t is not None
        t.write(_BIG_HEAD)
        for _ in range(BIG_BYTES // len(_CHUNK)):
            t.write(_CHUNK_FRAME)
            if self.paused is not None:
                await self.paused.wait()
        t.write(b"0\r\n\r\n")


async def main(http_port: int, ws_port: int) -> None:
    import websockets

    async def echo(ws: websockets.ServerConnection) -> None:
        async for msg in ws:
            await ws.send(msg)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Backend, "127.0.0.1", http_port, backlog=4096)
    async with websockets.serve(echo, "127.0.0.1", ws_port):
        print("backend ready", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
