"""The API double's ``pods/NAME/portforward``: the server side of kubectl's SPDY/3.1 streams.

``kubectl port-forward`` asks the API server to upgrade the connection to SPDY/3.1 with
the ``portforward.k8s.io`` sub-protocol (kubectl 1.31 and later first try the same SPDY
frames tunnelled in WebSocket binary messages, subprotocol ``SPDY/3.1+portforward.k8s.io``).
For every local connection it opens two streams that carry the headers ``streamtype``
(``error`` or ``data``), ``port`` and ``requestid``: what the kubelet would write to the
pod's port travels as DATA frames on the data stream, and a failure to reach the port is
written as text on the error stream. A stream ends with a frame flagged FIN from each side.

This is a test double: where a kubelet would dial the port inside the pod's network
namespace, the double dials ``status.podIP:port`` over TCP, so a pod whose IP a test set
(a podman container's address, or 127.0.0.1 for a local server) is reached for real.

Written from the SPDY/3 draft: frames are an 8-byte head (control frames: version and
type; data frames: the stream id), 8 bits of flags and a 24-bit length; header blocks are
name/value pairs with 32-bit lengths, deflated by one zlib stream per direction that is
primed with the draft's dictionary and sync-flushed after each block.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

SPDY_VERSION = 3
FLAG_FIN = 0x01

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9

RST_PROTOCOL_ERROR = 1
GOAWAY_PROTOCOL_ERROR = 1
#: Kubernetes' names for the sub-protocol, plain and tunnelled in WebSocket messages.
PROTOCOL = "portforward.k8s.io"
TUNNELLED_PROTOCOL = "SPDY/3.1+portforward.k8s.io"

#: Length-prefixed words, then a run of bare text: the SPDY/3 header dictionary.
_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_TEXT = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TEXT.encode()

#: The largest DATA frame the double sends (the 24-bit length allows more; kubelets send 32k).
CHUNK = 32 * 1024


class SpdyError(Exception):
    """A frame the double cannot make sense of: the session ends with GOAWAY."""


@dataclass(frozen=True)
class Frame:
    control: bool
    kind: int  # control frame type, or 0 for DATA
    flags: int
    stream: int  # DATA's stream id; the first word of a stream's control frame
    payload: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def split_frames(buffer: bytearray) -> list[Frame]:
    """Take every complete frame off the front of ``buffer`` (the rest stays)."""
    frames: list[Frame] = []
    while len(buffer) >= 8:
        first, second = struct.unpack(">II", buffer[:8])
        length = second & 0xFFFFFF
        if len(buffer) < 8 + length:
            break
        payload = bytes(buffer[8 : 8 + length])
        del buffer[: 8 + length]
        flags = second >> 24
        if first & 0x80000000:
            version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != SPDY_VERSION:
                raise SpdyError(f"SPDY version {version}, not 3")
            stream = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF if len(payload) >= 4 else 0
            frames.append(Frame(True, kind, flags, stream, payload))
        else:
            frames.append(Frame(False, 0, flags, first & 0x7FFFFFFF, payload))
    return frames


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    head = struct.pack(">HHI", 0x8000 | SPDY_VERSION, kind, (flags << 24) | len(payload))
    return head + payload


def data_frame(stream: int, data: bytes, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream & 0x7FFFFFFF, (flags << 24) | len(data)) + data


class HeaderCodec:
    """One direction's zlib state each way: a header block is only readable in sequence."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def decode(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        (count,) = struct.unpack(">I", raw[:4])
        offset, headers = 4, {}
        for _ in range(count):
            (size,) = struct.unpack(">I", raw[offset : offset + 4])
            name = raw[offset + 4 : offset + 4 + size].decode().lower()
            offset += 4 + size
            (size,) = struct.unpack(">I", raw[offset : offset + 4])
            value = raw[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            headers[name] = value.split("\0")[0]
        return headers

    def encode(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            for text in (name.lower().encode(), value.encode()):
                raw += struct.pack(">I", len(text)) + text
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Send = Callable[[bytes], Awaitable[None]]


@dataclass
class Forward:
    """One local connection of kubectl's: its error and data streams, and the pod's socket."""

    port: int
    error_stream: int = 0
    data_stream: int = 0
    writer: asyncio.StreamWriter | None = None
    early: list[bytes] = field(default_factory=list)
    client_done: bool = False
    task: asyncio.Task[None] | None = None


class PortForwardSession:
    """The server end of one upgraded connection; ``feed`` it bytes as they arrive."""

    def __init__(self, send: Send, dial: Dial) -> None:
        self._send_bytes, self._dial = send, dial
        self._codec = HeaderCodec()
        self._buffer = bytearray()
        self._lock = asyncio.Lock()
        self._forwards: dict[str, Forward] = {}
        self._by_stream: dict[int, Forward] = {}
        self._last_stream = 0
        self.closed = False
        #: (port, error text) for each connection the pod's port refused (tests read it).
        self.errors: list[tuple[int, str]] = []

    async def _send(self, frame: bytes) -> None:
        if self.closed:
            return
        async with self._lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send_bytes(frame)

    async def feed(self, data: bytes) -> None:
        self._buffer += data
        try:
            frames = split_frames(self._buffer)
            for frame in frames:
                await self._handle(frame)
        except (SpdyError, struct.error, zlib.error, UnicodeDecodeError):
            await self._send(
                control_frame(
                    GOAWAY, 0, struct.pack(">II", self._last_stream, GOAWAY_PROTOCOL_ERROR)
                )
            )
            await self.close()

    async def _handle(self, frame: Frame) -> None:
        if not frame.control:
            await self._data(frame)
        elif frame.kind == SYN_STREAM:
            await self._syn_stream(frame)
        elif frame.kind == RST_STREAM:
            forward = self._by_stream.get(frame.stream)
            if forward is not None:
                self._drop(forward)
        elif frame.kind == PING:
            await self._send(control_frame(PING, 0, frame.payload[:4]))
        elif frame.kind == GOAWAY:
            await self.close()
        # SETTINGS, HEADERS and WINDOW_UPDATE change nothing the double does.

    async def _syn_stream(self, frame: Frame) -> None:
        stream = frame.stream
        headers = self._codec.decode(frame.payload[10:])
        self._last_stream = max(self._last_stream, stream)
        await self._send(
            control_frame(SYN_REPLY, 0, struct.pack(">I", stream) + self._codec.encode({}))
        )
        kind = headers.get("streamtype", "")
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            await self._send(
                control_frame(RST_STREAM, 0, struct.pack(">II", stream, RST_PROTOCOL_ERROR))
            )
            return
        # kubectl numbers its connections; one without a request id pairs by port.
        key = headers.get("requestid") or f"port-{port}"
        forward = self._forwards.setdefault(key, Forward(port))
        self._by_stream[stream] = forward
        if kind == "error":
            forward.error_stream = stream
        elif kind == "data":
            forward.data_stream = stream
            forward.task = asyncio.ensure_future(self._pump(key, forward))
        else:
            await self._send(
                control_frame(RST_STREAM, 0, struct.pack(">II", stream, RST_PROTOCOL_ERROR))
            )

    async def _data(self, frame: Frame) -> None:
        forward = self._by_stream.get(frame.stream)
        if forward is None or frame.stream != forward.data_stream:
            return  # kubectl writes nothing on the error stream but its FIN
        if forward.writer is None:
            forward.early.append(frame.payload)
            forward.client_done = forward.client_done or frame.fin
            return
        if frame.payload:
            forward.writer.write(frame.payload)
        if frame.fin:
            forward.client_done = True
            if forward.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    forward.writer.write_eof()

    async def _pump(self, key: str, forward: Forward) -> None:
        """The pod's port to kubectl, until the pod's side ends; then FIN both streams."""
        try:
            try:
                reader, writer = await self._dial(forward.port)
            except OSError as error:
                message = f"error forwarding port {forward.port} to pod: dial tcp: {error.strerror}"
                self.errors.append((forward.port, message))
                if forward.error_stream:
                    await self._send(data_frame(forward.error_stream, message.encode()))
                return
            forward.writer = writer
            for chunk in forward.early:
                writer.write(chunk)
            if forward.client_done and writer.can_write_eof():
                writer.write_eof()
            while chunk := await reader.read(CHUNK):
                await self._send(data_frame(forward.data_stream, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            await self._send(data_frame(forward.data_stream, b"", fin=True))
            if forward.error_stream:
                await self._send(data_frame(forward.error_stream, b"", fin=True))
            self._forwards.pop(key, None)
            if forward.writer is not None:
                forward.writer.close()

    def _drop(self, forward: Forward) -> None:
        if forward.writer is not None:
            forward.writer.close()
        if forward.task is not None and forward.writer is None:
            forward.task.cancel()

    async def close(self) -> None:
        """The connection is gone: every pod socket closes, every pump stops."""
        self.closed = True
        tasks = [f.task for f in self._forwards.values() if f.task is not None]
        for forward in list(self._forwards.values()):
            if forward.writer is not None:
                forward.writer.close()
            if forward.task is not None:
                forward.task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
