"""A real HTTP/websocket backend (tornado, like jupyter-server) for proxy tests.

Run as ``python backend_app.py NAME``; prints ``PORT <n>`` when listening.
Every JSON answer names the server (``NAME``) so tests can see *which*
backend a request reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys

from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

NAME = sys.argv[1] if len(sys.argv) > 1 else "backend"
HOLD = asyncio.Event()


class Echo(web.RequestHandler):
    """Describe the request as received: method, raw URI, headers, body digest."""

    def _describe(self) -> None:
        sock = self.request.connection.stream.socket  # type: ignore[attr-defined]
        body = self.request.body
        self.set_header("Content-Type", "application/json")
        self.write(
            json.dumps(
                {
                    "server": NAME,
                    "method": self.request.method,
                    "uri": self.request.uri,
                    "headers": list(self.request.headers.get_all()),
                    "body_len": len(body),
                    "body_sha": hashlib.sha256(body).hexdigest(),
                    "peer_port": sock.getpeername()[1],
                }
            )
        )

    def get(self, *args: str) -> None:
        self._describe()

    post = put = delete = patch = get

    def head(self, *args: str) -> None:
        self.set_header("Content-Length", "1234")


@web.stream_request_body
class Upload(web.RequestHandler):
    """Counts a streamed body without keeping it."""

    def prepare(self) -> None:
        self.count = 0
        self.digest = hashlib.sha256()
        self.request.connection.set_max_body_size(1 << 40)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        self.count += len(chunk)
        self.digest.update(chunk)

    def post(self) -> None:
        self.write({"server": NAME, "len": self.count, "sha": self.digest.hexdigest()})

    put = post


class Stream(web.RequestHandler):
    """``/stream/<n>``: n bytes of a repeating pattern, chunked, flushed as it goes."""

    async def get(self, n: str) -> None:
        total = int(n)
        block = bytes(range(256)) * 256  # 64 KiB
        sent = 0
        while sent < total:
            piece = block[: min(len(block), total - sent)]
            self.write(piece)
            await self.flush()
            sent += len(piece)


class Status(web.RequestHandler):
    def get(self, code: str) -> None:
        self.set_status(int(code))
        if int(code) not in (204, 304):
            self.write({"server": NAME, "status": int(code)})


class Hold(web.RequestHandler):
    """Answers only after ``/release`` was called (for graceful-shutdown tests)."""

    async def get(self) -> None:
        await HOLD.wait()
        self.write({"server": NAME, "held": True})


class Release(web.RequestHandler):
    def get(self) -> None:
        HOLD.set()
        self.write({"released": True})


class Echo_WS(websocket.WebSocketHandler):
    def open(self, *args: str) -> None:
        self.write_message(json.dumps({"server": NAME, "uri": self.request.uri}))

    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


async def main() -> None:
    app = web.Application(
        [
            (r".*/ws$", Echo_WS),
            (r".*/upload$", Upload),
            (r".*/stream/(\d+)$", Stream),
            (r".*/status/(\d+)$", Status),
            (r".*/hold$", Hold),
            (r".*/release$", Release),
            (r"/(.*)", Echo),
        ]
    )
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, max_body_size=1 << 40, idle_connection_timeout=3600)
    server.add_sockets(sockets)
    print(f"PORT {sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
