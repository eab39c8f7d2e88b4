"""Follow websocket frame boundaries in the target → client stream (pure, RFC 6455 §5.2).

The tunnel stays a byte splice; this only counts header and payload bytes
so that the proxy knows when it may slip in a frame of its own. It does so
for one thing: an unmasked, empty ``ping`` when a tunnel has been silent
for half of ``--websocket-idle-timeout``. A browser answers with a pong (a
client's pong travels on to the target, which RFC 6455 §5.5.3 lets it
ignore), so a live tab keeps its tunnel and a vanished one is closed.
"""

from __future__ import annotations

from typing import Final

PING: Final = b"\x89\x00"  # FIN + opcode 9, no mask, no payload


class FrameTracker:
    """``at_boundary`` is true when the bytes fed so far end exactly after a frame."""

    __slots__ = ("_header", "_payload_left", "broken")

    def __init__(self) -> None:
        self._header = b""  # bytes of an incomplete frame header
        self._payload_left = 0
        self.broken = False  # not websocket framing after all: never inject

    @property
    def at_boundary(self) -> bool:
        return not self.broken and not self._header and self._payload_left == 0

    def feed(self, data: bytes) -> None:
        pos = 0
        n = len(data)
        while pos < n and not self.broken:
            if self._payload_left:
                take = min(self._payload_left, n - pos)
                self._payload_left -= take
                pos += take
                continue
            header = self._header + data[pos : pos + 14]
            size = _header_size(header)
            if size < 0 or len(header) < size:
                used = len(header) - len(self._header)
                self._header = header
                pos += used
                if len(header) >= 14:
                    self.broken = True
                continue
            pos += size - len(self._header)
            self._header = b""
            self._payload_left = _payload_length(header)
            if self._payload_left < 0:
                self.broken = True


def _header_size(h: bytes) -> int:
    """Length of the frame header starting ``h``, or -1 if not yet known."""
    if len(h) < 2:
        return -1
    size = 2
    code = h[1] & 0x7F
    if code == 126:
        size += 2
    elif code == 127:
        size += 8
    if h[1] & 0x80:
        size += 4  # masking key (targets should not mask, but count it if they do)
    return size


def _payload_length(h: bytes) -> int:
    code = h[1] & 0x7F
    if code == 126:
        return int.from_bytes(h[2:4], "big")
    if code == 127:
        length = int.from_bytes(h[2:10], "big")
        return -1 if length >> 63 else length
    return code
