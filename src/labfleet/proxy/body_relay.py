"""Request bodies, relayed to the target as they arrive.

Only the framing is followed (a byte count, or :class:`ChunkedTracker` for
chunked bodies), never a re-encoding: each read is written on as it came, so
an upload never sits in memory. Bytes past the body's end belong to the next
pipelined request and stay in ``buf``. While the request is idempotent and
small, a copy grows here too, so that a stale pooled connection can be retried
(:mod:`labfleet.proxy.response_relay`).
"""

from __future__ import annotations

from typing import Final

from labfleet.proxy.exchange import Exchange
from labfleet.proxy.http_parse import HttpError
from labfleet.proxy.lifecycle import ClientState, Event

SENDING_BODY: Final = ClientState.SENDING_BODY

PIPELINE_LIMIT: Final = 1 << 20  # buffered pipelined bytes before reading pauses
REPLAY_LIMIT: Final = 64 * 1024  # an idempotent request up to this size can be replayed


class BodyRelay(Exchange):
    __slots__ = ()

    def _forward_body(self, data: bytes, prefix: bytes = b"") -> None:
        up = self.upstream
        if up is None or up.transport is None:
            self.transport.close()
            return
        now = self.ctx.now
        self.last_io = now  # --body-timeout counts from the last byte received
        up.last_io = now  # an upload in progress is activity (--proxy-timeout)
        n = len(data)
        chunks = self.chunks
        rest = b""
        if chunks is not None:
            try:
                end = chunks.feed(data)
            except HttpError as exc:
                self._abort(exc.status, exc.reason)
                return
            if end >= 0:
                rest = data[end:]
                data = data[:end]
                self.chunks = None
        else:
            left = self.body_left
            if n >= left:
                rest = data[left:]
                data = data[:left]
                self.body_left = 0
            else:
                self.body_left = left - n
        up.transport.write(prefix + data if prefix else data)
        self.ctx.counters.bytes_in += len(data)
        replay = self.replay
        if replay is not None:
            self.replay = replay + data if len(replay) + len(data) <= REPLAY_LIMIT else None
        if self.body_pending:
            return
        self.buf = rest
        if self.lc.state is SENDING_BODY:
            self.lc.fire(Event.BODY_DONE)
        if len(rest) > PIPELINE_LIMIT:
            self.transport.pause_reading()
