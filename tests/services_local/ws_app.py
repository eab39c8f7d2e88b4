"""A tiny websocket application: answers each message with what it saw (path, user, text)."""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve


async def echo(connection: ServerConnection) -> None:
    request = connection.request
    assert request is not None
    user = request.headers.get("X-Forwarded-User")
    cookie = request.headers.get("Cookie")
    async for message in connection:
        await connection.send(f"{request.path}|{user}|{cookie}|{message}")


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
