"""Building the heads the proxy writes (pure functions over parsed heads)."""

from __future__ import annotations

import html
from http import HTTPStatus

from labfleet.proxy.http_parse import Head
from labfleet.proxy.trust import TrustedProxies


def _reason(code: int) -> bytes:
    try:
        return HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def upstream_request_head(
    head: Head,
    path: bytes,
    *,
    peer: bytes,
    scheme: bytes,
    x_forward: bool,
    trusted_hop: TrustedProxies | None,
    host_override: bytes | None,
    extra: list[bytes],
) -> bytes:
    """The request head sent to the target: our framing, forwarding headers, no hop-by-hop.

    ``trusted_hop`` is set only when the socket peer is a trusted proxy; then
    its ``X-Real-Ip``/``X-Forwarded-*``/``X-Scheme`` claims are kept (and the
    peer appended to ``X-Forwarded-For``). From anyone else they are replaced
    by what this proxy saw, so a client cannot pick the address the hub logs
    and throttles on.
    """
    version = b" HTTP/1.0" if head.http10 else b" HTTP/1.1"
    lines = [head.method + b" " + path + version]
    if host_override is None:
        lines.extend(head.headers)
    else:
        lines.extend([h for h in head.headers if h[:5].lower() != b"host:"])
        lines.append(b"Host: " + host_override)
    if head.chunked:
        lines.append(b"Transfer-Encoding: chunked")
    elif head.content_length >= 0:
        lines.append(b"Content-Length: %d" % head.content_length)
    if head.upgrade:
        lines.append(b"Connection: Upgrade")
        lines.append(b"Upgrade: " + head.upgrade)
    elif head.http10:
        lines.append(b"Connection: close")
    xf = head.x_forwarded if trusted_hop is not None else {}
    if x_forward:
        host = head.host
        colon = host.rfind(b":")
        if colon > 0 and host[colon + 1 :].isdigit() and not host.endswith(b"]"):
            port = host[colon + 1 :]
        else:
            port = b"443" if scheme == b"https" else b"80"
        old = xf.get(b"x-forwarded-for")
        if trusted_hop is not None:
            real = trusted_hop.client_address(xf.get(b"x-real-ip"), old, peer)
        else:
            real = peer
        if real:
            lines.append(b"X-Real-Ip: " + real)
        if peer:
            lines.append(b"X-Forwarded-For: " + (old + b"," + peer if old else peer))
        elif old:
            lines.append(b"X-Forwarded-For: " + old)
        lines.append(b"X-Forwarded-Port: " + (xf.get(b"x-forwarded-port") or port))
        lines.append(b"X-Forwarded-Proto: " + (xf.get(b"x-forwarded-proto") or scheme))
        lines.append(b"X-Forwarded-Host: " + (xf.get(b"x-forwarded-host") or host))
        if b"x-scheme" in xf:
            lines.append(b"X-Scheme: " + xf[b"x-scheme"])
    else:
        lines.extend([b"%s: %s" % item for item in xf.items()])
    lines.extend(extra)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def response_head(head: Head, *, chunked: bool, close: bool) -> bytes:
    """The final response head for the client."""
    lines = [b"HTTP/1.1 %d %s" % (head.status, head.reason)]
    lines.extend(head.headers)
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    elif head.content_length >= 0:
        lines.append(b"Content-Length: %d" % head.content_length)
    if close:
        lines.append(b"Connection: close")
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def interim_head(head: Head) -> bytes:
    """1xx responses (100 Continue, 103 Early Hints) pass through as they are."""
    lines = [b"HTTP/1.1 %d %s" % (head.status, head.reason)]
    lines.extend(head.headers)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def upgrade_head(head: Head) -> bytes:
    """101 Switching Protocols with the hop-by-hop upgrade headers restored."""
    lines = [b"HTTP/1.1 101 %s" % (head.reason or b"Switching Protocols")]
    lines.extend(head.headers)
    lines.append(b"Connection: Upgrade")
    if head.upgrade:
        lines.append(b"Upgrade: " + head.upgrade)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def simple_response(
    code: int,
    body: bytes,
    *,
    content_type: bytes = b"text/html; charset=utf-8",
    close: bool = False,
    head_only: bool = False,
) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (code, _reason(code)),
        b"Content-Type: " + content_type,
        b"Content-Length: %d" % len(body),
        b"X-Content-Type-Options: nosniff",
        b"Cache-Control: no-store",
    ]
    if close:
        lines.append(b"Connection: close")
    lines.append(b"\r\n")
    out = b"\r\n".join(lines)
    return out if head_only else out + body


def builtin_error_page(code: int, url: str) -> bytes:
    """A minimal page; the URL is HTML-escaped (it is attacker-controlled)."""
    phrase = _reason(code).decode()
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{code} {phrase}</title></head>\n<body><h1>{code} {phrase}</h1>\n"
        f"<p>labfleet-proxy could not serve <code>{html.escape(url, quote=True)}</code>.</p>"
        "\n</body></html>\n"
    ).encode()
