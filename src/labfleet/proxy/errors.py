"""Error responses: the hub's error target (CHP semantics) or a built-in page.

CHP answers proxy errors by fetching ``{error_target}/{code}?url=<request
url>`` and relaying that page's body and content type under the original
status code; if that fetch fails it falls back to a plain page. We do the
same, with a short timeout and a size cap.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import quote, unquote, urlsplit

from labfleet.proxy.http_parse import ChunkedTracker, HttpError, parse_response_head

_MAX_PAGE = 1 << 20


def error_target_url(error_target: str, code: int, url: str) -> str:
    base = error_target if error_target.endswith("/") else error_target + "/"
    return f"{base}{code}?url={quote(url, safe='')}"


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise HttpError(502, "truncated chunked error page")
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 4 + size


async def fetch_error_page(
    error_target: str,
    code: int,
    url: str,
    *,
    client_ssl: ssl.SSLContext | None,
    timeout: float = 5.0,
) -> tuple[bytes, bytes] | None:
    """(content type, body) of the hub's error page, or None when it cannot be had."""
    full = error_target_url(error_target, code, url)
    parts = urlsplit(full)
    scheme = parts.scheme.lower()
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        if "unix" in scheme:
            connect = asyncio.open_unix_connection(
                unquote(parts.netloc),
                ssl=client_ssl if "https" in scheme else None,
            )
            host = "localhost"
        else:
            tls = scheme == "https"
            host = parts.netloc
            connect = asyncio.open_connection(
                parts.hostname,
                parts.port or (443 if tls else 80),
                ssl=(client_ssl or ssl.create_default_context()) if tls else None,
            )
        reader, writer = await asyncio.wait_for(connect, timeout)
    except (OSError, TimeoutError, ValueError):
        return None
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        data = await asyncio.wait_for(reader.read(_MAX_PAGE), timeout)
        while len(data) < _MAX_PAGE:
            more = await asyncio.wait_for(reader.read(_MAX_PAGE), timeout)
            if not more:
                break
            data += more
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    try:
        head = parse_response_head(data[:end])
        body = data[end + 4 :]
        if head.chunked:
            tracker = ChunkedTracker()
            if tracker.feed(body) < 0:
                return None
            body = _dechunk(body)
        elif head.content_length >= 0:
            body = body[: head.content_length]
    except (HttpError, ValueError):
        return None
    ctype = b"text/html; charset=utf-8"
    for line in head.headers:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-type":
            ctype = value.strip()
    return ctype, body
