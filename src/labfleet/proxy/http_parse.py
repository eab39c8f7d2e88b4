"""Strict HTTP/1.1 message-head parsing and body framing (pure, no I/O).

Strictness is the point: every ambiguity that lets two HTTP parsers disagree
about where a message ends (request smuggling) is refused with a 400 instead
of being "repaired": conflicting or duplicate Content-Length, a
Transfer-Encoding other than exactly ``chunked``, obs-fold continuation
lines, bare CR/LF/NUL or other control bytes in header values, whitespace
before the colon, malformed chunk sizes. The proxy forwards bodies byte for
byte, so only the framing has to be tracked, never re-encoded.
"""

from __future__ import annotations

import re
from typing import Final

TOKEN_RE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE_RE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CTL_RE: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same sets as byte strings, for bytes.translate: one C pass, no regex engine.
_CTL_BYTES: Final = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_CTL_CR_LF: Final = _CTL_BYTES + b"\r\n"
_VCHAR: Final = bytes(range(0x21, 0x7F))  # a request target's bytes
_DIGITS_RE: Final = re.compile(rb"[0-9]{1,20}\Z")  # and below 2**64, as llhttp
_HOST_RE: Final = re.compile(
    rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z"
)
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_QUOTED = rb'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"'
# chunk-size, then ;name[=token|"quoted"] extensions without whitespace (as llhttp)
_CHUNK_EXT = rb"(?:;" + _TOKEN + rb"+(?:=(?:" + _TOKEN + rb"*|" + _QUOTED + rb"))?)*"
_CHUNK_SIZE_RE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})" + _CHUNK_EXT + rb"\Z")

# what a chunk-size line may look like before its CRLF has arrived
_CHUNK_PREFIX_RE: Final = re.compile(rb"[0-9A-Fa-f]{0,16}(?:;[\x21-\x7e\t ]*)?\r?\Z")

# The request methods llhttp (and so Node CHP) knows, minus RTSP's. Anything else
# is refused with 501 instead of being passed to a backend whose parser may differ.
KNOWN_METHODS: Final = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND "
    b"PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
    b"M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE "
    b"QUERY".split()
)

MAX_HEAD: Final = 65536
MAX_HEADERS: Final = 200

# Headers that describe one hop only; the proxy writes its own.
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)


class HttpError(Exception):
    """A message that must be refused; ``status`` is what the client gets."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Head:
    """A parsed request or response head.

    ``headers`` keeps the original (validated) header lines in order, minus
    the framing, hop-by-hop and X-Forwarded headers that the proxy re-derives.
    """

    __slots__ = (
        "authority",
        "chunked",
        "connection_close",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "http10",
        "method",
        "reason",
        "status",
        "target",
        "upgrade",
        "x_forwarded",
    )

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.status = 0
        self.reason = b""
        self.http10 = False
        self.headers: list[bytes] = []
        self.content_length = -1
        self.chunked = False
        self.connection_close = False
        self.upgrade = b""
        self.expect_continue = False
        self.host = b""
        self.authority = b""
        self.x_forwarded: dict[bytes, bytes] = {}


_SPECIAL: Final = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-host",
        b"x-real-ip",
        b"x-scheme",
    }
    | HOP_BY_HOP
)
# Connection tokens that name no header to strip (they are options of this hop).
_CONNECTION_OPTIONS: Final = frozenset({b"close", b"keep-alive", b"upgrade", b""})


def _parse_headers(lines: list[bytes], head: Head, *, request: bool) -> None:
    """Validate header lines; keep pass-through lines raw, interpret the special ones.

    The caller has already refused control bytes and bare CR/LF in the whole
    head (one regex pass), so only names need checking line by line.
    """
    if len(lines) > MAX_HEADERS:
        raise HttpError(431, "too many header fields")
    headers = head.headers
    connection_tokens: list[bytes] = []
    te_seen = False
    host_seen = False
    token_match = TOKEN_RE.match
    special = _SPECIAL
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        # Most names are letters, digits and dashes: two C calls; the regex decides the rest.
        if not sep or not (name.replace(b"-", b"").isalnum() or token_match(name)):
            if line[0] in (0x20, 0x09):  # a name never starts with SP/HTAB: obs-fold
                raise HttpError(400, "obsolete line folding is not accepted")
            raise HttpError(400, "malformed header field name")
        lname = name.lower()
        if lname not in special:
            # Proxy-* hop headers, and httpoxy's Proxy: ("p" first, to skip the call)
            if lname[0] != 0x70 or not lname.startswith(b"proxy"):
                headers.append(line)
            continue
        value = value.strip(b" \t")
        if lname == b"content-length":
            if not _DIGITS_RE.match(value):
                raise HttpError(400, "invalid Content-Length")
            length = int(value)
            if length >> 64:
                raise HttpError(400, "invalid Content-Length")
            if head.content_length >= 0:
                # a request may never repeat it; a response only with the same value
                if request or length != head.content_length:
                    raise HttpError(400, "duplicate Content-Length")
                continue
            head.content_length = length
        elif lname == b"transfer-encoding":
            if te_seen or value.lower() != b"chunked":
                raise HttpError(501 if request else 502, "unsupported Transfer-Encoding")
            te_seen = True
            head.chunked = True
        elif lname in HOP_BY_HOP:
            if lname == b"connection":
                connection_tokens.extend(t.strip().lower() for t in value.split(b","))
            elif lname == b"upgrade":
                head.upgrade = value
            # other hop-by-hop headers are dropped
        elif not request:
            headers.append(line)
        elif lname == b"host":
            if host_seen:
                raise HttpError(400, "duplicate Host header")
            host_seen = True
            head.host = value
            headers.append(line)
        elif lname == b"expect":
            if value.lower() == b"100-continue":
                head.expect_continue = True
            headers.append(line)
        elif lname in head.x_forwarded:
            head.x_forwarded[lname] += b"," + value
        else:
            head.x_forwarded[lname] = value
    if head.chunked and head.content_length >= 0:
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    if head.chunked and head.http10:
        raise HttpError(400, "Transfer-Encoding in HTTP/1.0")
    if b"close" in connection_tokens or (head.http10 and b"keep-alive" not in connection_tokens):
        head.connection_close = True
    if head.upgrade and (
        b"upgrade" not in connection_tokens
        or (request and head.upgrade.lower() != b"websocket")  # no h2c or other tunnels
    ):
        head.upgrade = b""
    named = set(connection_tokens) - _CONNECTION_OPTIONS
    if named:  # headers the sender declared hop-by-hop (RFC 9110 §7.6.1)
        headers[:] = [h for h in headers if h.partition(b":")[0].lower() not in named]
    if request and not host_seen and not head.http10:
        raise HttpError(400, "missing Host header")


def find_head_end(buf: bytes, new_from: int = 0) -> int:
    """Where the head in ``buf`` ends (index of its CRLFCRLF), or -1 while incomplete.

    Leading empty lines must be stripped by the caller. The size limit holds
    whether the head trickled in or arrived in one write (then it is 431 too).
    An incomplete head is checked as it arrives (bare CR/LF, control bytes,
    the request line once complete), so a broken one is refused at once
    instead of holding a connection until the head deadline. ``new_from`` is
    where the bytes not seen before start: each byte is scanned about once,
    even when a head trickles in one byte per read.
    """
    end = buf.find(b"\r\n\r\n", max(0, new_from - 3), MAX_HEAD + 4)
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise HttpError(431, "request head too large")
        pos = max(0, new_from - 1)
        seg = buf[pos:]
        if seg.endswith(b"\r"):
            seg = seg[:-1]  # its LF may be in the next read
        if seg.startswith(b"\n") and buf[pos - 1 : pos] == b"\r":
            seg = seg[1:]  # the LF of a CRLF split across reads
        if _bare_eol(seg):
            raise HttpError(400, "malformed line endings")
        if _CTL_RE.search(buf, pos):
            raise HttpError(400, "control character in request head")
        first = buf.find(b"\r\n", pos)
        if first >= 0 and b"\r\n" not in buf[:first]:  # the request line just completed
            _request_line(buf[:first], Head())
    return end


def _request_line(line: bytes, head: Head) -> tuple[bytes, bytes]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version == b"HTTP/1.1":
        pass
    elif version == b"HTTP/1.0":
        head.http10 = True
    elif version.startswith(b"HTTP/"):
        raise HttpError(505, "HTTP version not supported")
    else:
        raise HttpError(400, "malformed request line")
    if method not in KNOWN_METHODS:
        if not TOKEN_RE.match(method):
            raise HttpError(400, "malformed method")
        raise HttpError(501, "unknown method")
    if not target or target.translate(None, _VCHAR):  # not only visible ASCII
        raise HttpError(400, "malformed request target")
    return method, target


def _bare_eol(data: bytes) -> bool:
    """A CR or LF that is not part of a CRLF pair (C-speed counts, no regex)."""
    pairs = data.count(b"\r\n")
    return data.count(b"\r") != pairs or data.count(b"\n") != pairs


def _bad_head(data: bytes) -> bool:
    """Control bytes, or a CR or LF outside a CRLF pair, anywhere in ``data``.

    Deleting every control byte, CR and LF removes exactly two bytes per CRLF
    when the head is clean, and more otherwise: two C passes, no regex.
    """
    return len(data) - len(data.translate(None, _CTL_CR_LF)) != 2 * data.count(b"\r\n")


def parse_request_head(data: bytes) -> Head:
    """Parse ``data`` (the head without its final CRLFCRLF)."""
    if _bad_head(data):
        raise HttpError(400, "control character or bare CR/LF in request head")
    lines = data.split(b"\r\n")
    head = Head()
    method, target = _request_line(lines[0], head)
    head.method = method
    head.target = target
    _parse_headers(lines[1:], head, request=True)
    if head.host and not _HOST_RE.match(head.host):
        raise HttpError(400, "malformed Host header")
    if target[0] != 0x2F:  # not origin-form
        _absolute_form(head)
    return head


def _absolute_form(head: Head) -> None:
    """Accept ``http(s)://authority/path`` only when it names the Host we route by."""
    target = head.target
    lower = target[:8].lower()
    if lower.startswith(b"http://"):
        rest = target[7:]
    elif lower.startswith(b"https://"):
        rest = target[8:]
    else:
        raise HttpError(400, "request target must be origin-form")
    slash = rest.find(b"/")
    query = rest.find(b"?")
    end = min(i for i in (slash, query, len(rest)) if i >= 0)
    authority = rest[:end]
    path = rest[end:]
    if b"@" in authority or not authority:
        raise HttpError(400, "malformed absolute-form authority")
    if head.host and authority.lower() != head.host.lower():
        raise HttpError(400, "absolute-form authority does not match Host")
    if not head.host:
        head.host = authority
    if not path.startswith(b"/"):
        path = b"/" + path
    head.target = path
    head.authority = authority


def parse_response_head(data: bytes) -> Head:
    if _bad_head(data):
        raise HttpError(502, "control character or bare CR/LF in response head")
    lines = data.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    status, _, reason = rest.partition(b" ")
    head = Head()
    if version == b"HTTP/1.0":
        head.http10 = True
    elif version != b"HTTP/1.1":
        raise HttpError(502, "upstream sent an invalid status line")
    if len(status) != 3 or not status.isdigit():
        raise HttpError(502, "upstream sent an invalid status code")
    if _BAD_VALUE_RE.search(reason):
        raise HttpError(502, "upstream sent an invalid reason phrase")
    head.status = int(status)
    head.reason = reason
    try:
        _parse_headers(lines[1:], head, request=False)
    except HttpError as exc:
        raise HttpError(502, "upstream response: " + exc.reason) from exc
    return head


class ChunkedTracker:
    """Follow chunked framing incrementally without copying the payload.

    ``feed(data)`` returns the index just past the end of the message within
    ``data``, or -1 when all of ``data`` belongs to the message and more is
    expected. Raises HttpError on malformed framing.
    """

    __slots__ = ("_line", "_remaining", "_state")

    _SIZE, _DATA, _DATA_CRLF, _TRAILER = 0, 1, 2, 3

    def __init__(self) -> None:
        self._state = self._SIZE
        self._remaining = 0
        self._line = b""

    def feed(self, data: bytes) -> int:
        pos = 0
        n = len(data)
        while pos < n:
            state = self._state
            if state == self._DATA:
                take = min(self._remaining, n - pos)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = self._DATA_CRLF
                    self._line = b""
            else:
                end = data.find(b"\n", pos)
                if end < 0:
                    self._line += data[pos:]
                    if len(self._line) > 4096:
                        raise HttpError(400, "chunk line too long")
                    self._check_partial(state)
                    return -1
                line = self._line + data[pos : end + 1]
                self._line = b""
                pos = end + 1
                if len(line) < 2 or line[-2] != 0x0D:
                    raise HttpError(400, "bare LF in chunked framing")
                line = line[:-2]
                if b"\r" in line:
                    raise HttpError(400, "bare CR in chunked framing")
                if state == self._SIZE:
                    m = _CHUNK_SIZE_RE.match(line)
                    if m is None:
                        raise HttpError(400, "malformed chunk size")
                    size = int(m.group(1), 16)
                    if size == 0:
                        self._state = self._TRAILER
                    else:
                        self._remaining = size
                        self._state = self._DATA
                elif state == self._DATA_CRLF:
                    if line:
                        raise HttpError(400, "chunk data longer than its size")
                    self._state = self._SIZE
                else:  # trailer section
                    if not line:
                        self._state = self._SIZE
                        return pos
                    if line[0] in (0x20, 0x09) or b":" not in line or _BAD_VALUE_RE.search(line):
                        raise HttpError(400, "malformed trailer field")
        return -1

    def _check_partial(self, state: int) -> None:
        """Refuse a framing line as soon as its first bytes are wrong, not at its LF."""
        line = self._line
        if state == self._SIZE:
            ok = _CHUNK_PREFIX_RE.match(line) is not None
        elif state == self._DATA_CRLF:
            ok = line in (b"", b"\r")
        else:
            ok = True
        if not ok:
            raise HttpError(400, "malformed chunk framing")


def host_without_port(host: bytes) -> str:
    """Routing host: lower-cased, port removed (IPv6 brackets kept)."""
    text = host.decode("latin-1").lower()
    if text.startswith("["):
        return text[: text.find("]") + 1]
    return text.partition(":")[0]
