"""Request path → routing segments, refusing anything that could mis-route.

The routing decision is made on *decoded* segments (CHP's semantics), but a
segment is decoded only after the raw path was split on ``/``: an encoded
slash (``%2F``) therefore stays inside its segment and ``/user/alice%2F..%2Fbob``
is one odd segment that matches no user's route (it falls through to the
hub). Dot segments (``.``/``..``, also as ``%2e``) are refused outright: no
legitimate client sends them (browsers resolve them first) and a backend
that resolves them differently from the proxy is how traversal slips through.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from labfleet.proxy.http_parse import HttpError

_DECODED_BAD: Final = re.compile(r"[\x00-\x1f\x7f]")


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """``/a/b?x=1`` → (``/a/b``, ``?x=1``). Fragments never reach a server."""
    q = target.find(b"?")
    if q < 0:
        return target, b""
    return target[:q], target[q:]


def route_segments(path: bytes) -> list[str]:
    """Decoded segments of an origin-form path (which starts with ``/``)."""
    text = path.decode("ascii")
    segments = text[1:].split("/")
    if "%" not in text and "/." not in text:
        return segments
    out: list[str] = []
    for raw in segments:
        seg = raw
        if "%" in raw:
            try:
                seg = unquote(raw, errors="strict")
            except UnicodeDecodeError as exc:
                raise HttpError(400, "path is not valid UTF-8") from exc
            if _DECODED_BAD.search(seg):
                raise HttpError(400, "control character in path")
        if seg == "." or seg == "..":
            raise HttpError(400, "dot segment in path")
        out.append(seg)
    return out


def strip_prefix(path: bytes, count: int) -> bytes:
    """Drop the first ``count`` raw segments (for ``--no-include-prefix``)."""
    if count <= 0:
        return path
    parts = path.split(b"/", count + 1)
    rest = parts[count + 1] if len(parts) > count + 1 else b""
    return b"/" + rest
