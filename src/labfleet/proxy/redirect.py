"""CHP's ``--redirect-port``: a plain-HTTP listener that sends clients to https.

Every request gets ``301 Location: https://<host>[:<redirect-to>]<path>``. The
Host header and the target went through the strict head parser first, so
neither can inject anything into the Location header.
"""

from __future__ import annotations

import asyncio
import contextlib

from labfleet.proxy import messages
from labfleet.proxy.http_parse import MAX_HEAD, HttpError, host_without_port, parse_request_head


def location(host: bytes, target: bytes, https_port: int) -> bytes:
    name = host_without_port(host).encode("ascii")
    port = b"" if https_port == 443 else b":%d" % https_port
    return b"https://" + name + port + target


async def _handle(
    https_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if len(raw) > MAX_HEAD:
            raise HttpError(431, "request head too large")
        head = parse_request_head(raw[:-4])
        if not head.host:
            raise HttpError(400, "missing Host header")
        to = location(head.host, head.target, https_port)
        writer.write(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: " + to + b"\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    except HttpError as exc:
        writer.write(messages.simple_response(exc.status, b"", close=True))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()


async def start_redirect(ip: str, port: int, https_port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(https_port, reader, writer)

    return await asyncio.start_server(handle, ip or None, port)
