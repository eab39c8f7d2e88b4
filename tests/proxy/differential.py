"""Three HTTP/1.1 request parsers asked the same question: where does the first message end?

``ours`` runs the proxy's own pieces exactly as the data plane does
(``find_head_end`` → ``parse_request_head`` → byte count or
``ChunkedTracker``). ``h11_verdict`` and ``llhttp_verdict`` ask h11 and
llhttp (through httptools). Each answers ``Verdict``: ``reject``,
``incomplete`` (needs more bytes), or ``complete`` with the number of bytes
the first request occupies. Two parsers that both say ``complete`` but with
different lengths are exactly how request smuggling happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
import httptools

from labfleet.proxy.http_parse import (
    MAX_HEAD,
    ChunkedTracker,
    HttpError,
    find_head_end,
    parse_request_head,
)


@dataclass(frozen=True)
class Verdict:
    kind: str  # "reject" | "incomplete" | "complete"
    length: int = 0  # bytes of the first message, when complete
    why: str = ""  # the parser's reason, when rejected (not compared)

    def same(self, other: Verdict) -> bool:
        return self.kind == other.kind and self.length == other.length

    def __str__(self) -> str:
        if self.kind == "complete":
            return f"complete({self.length})"
        return f"{self.kind}({self.why})" if self.why else self.kind


REJECT = "reject"
INCOMPLETE = Verdict("incomplete")


def ours(data: bytes) -> Verdict:
    buf = data.lstrip(b"\r\n") if data.startswith(b"\r\n") else data
    skipped = len(data) - len(buf)
    try:
        end = find_head_end(buf)
        if end < 0:
            return INCOMPLETE
        head = parse_request_head(buf[:end])
    except HttpError as exc:
        return Verdict(REJECT, why=exc.reason)
    pos = end + 4
    if head.chunked:
        try:
            done = ChunkedTracker().feed(buf[pos:])
        except HttpError as exc:
            return Verdict(REJECT, why=exc.reason)
        if done < 0:
            return INCOMPLETE
        return Verdict("complete", skipped + pos + done)
    length = max(head.content_length, 0)
    if len(buf) - pos < length:
        return INCOMPLETE
    return Verdict("complete", skipped + pos + length)


def h11_verdict(data: bytes) -> Verdict:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    conn.receive_data(data)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return INCOMPLETE
            if isinstance(event, h11.EndOfMessage):
                return Verdict("complete", len(data) - len(conn.trailing_data[0]))
            if event is h11.PAUSED:  # pragma: no cover - only after EndOfMessage
                return INCOMPLETE
    except h11.RemoteProtocolError as exc:
        return Verdict(REJECT, why=str(exc)[:80])


class _Done:
    def __init__(self) -> None:
        self.done = False

    def on_message_complete(self) -> None:
        self.done = True


def llhttp_verdict(data: bytes) -> Verdict:
    """Fed one byte at a time, so the byte that completes the message is known."""
    sink = _Done()
    parser = httptools.HttpRequestParser(sink)
    for i in range(len(data)):
        try:
            parser.feed_data(data[i : i + 1])
        except httptools.HttpParserUpgrade:
            return Verdict("complete", i + 1)
        except httptools.HttpParserError as exc:
            return Verdict(REJECT, why=str(exc)[:80])
        if sink.done:
            return Verdict("complete", i + 1)
    return INCOMPLETE


# Refusals where we are knowingly stricter than both references, each named by
# the reason ``parse_request_head`` gives and justified here. Anything else on
# which we disagree with both h11 and llhttp is a failing test.
DELIBERATE = {
    "Transfer-Encoding in HTTP/1.0": "RFC 9112 §6.1: the framing MUST be treated as faulty",
    "duplicate Host header": "RFC 9112 §3.2: a server MUST answer 400",
    "malformed Host header": "RFC 9112 §3.2: invalid field value, MUST answer 400",
    "request target must be origin-form": "routing: only origin and absolute form are routed",
    "absolute-form authority does not match Host": "routing: Host alone picks a route",
    "malformed absolute-form authority": "routing: userinfo or empty authority",
    "HTTP version not supported": "only HTTP/1.0 and 1.1 are forwarded (505)",
}


@dataclass(frozen=True)
class Comparison:
    ours: Verdict
    h11: Verdict
    llhttp: Verdict

    @property
    def disagrees_with_both(self) -> bool:
        """A failing case: our verdict or framing matches neither reference."""
        if self.ours.same(self.h11) or self.ours.same(self.llhttp):
            return False
        return not (self.ours.kind == REJECT and self.ours.why in DELIBERATE)

    def __str__(self) -> str:
        return f"ours={self.ours} h11={self.h11} llhttp={self.llhttp}"


def compare(data: bytes) -> Comparison:
    return Comparison(ours(data), h11_verdict(data), llhttp_verdict(data))
