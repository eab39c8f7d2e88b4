"""The life cycle of one client connection, as an explicit state machine (pure).

Modelled on h11's ``_state.py``: every legal move is one row of
:data:`TRANSITIONS`, so a reviewer can read the whole protocol in one place,
and anything else raises :class:`IllegalTransition` instead of silently
leaving a connection half in one state and half in another.

::

    IDLE ──HEAD──▶ CONNECTING ──ATTACHED──────────▶ AWAITING ──RESPONSE_DONE──▶ IDLE
                     │   ▲      ──ATTACHED_WITH_BODY─▶ SENDING_BODY ─BODY_DONE─┘
                     │   └───────── RETRY (idempotent request, stale pooled socket)
                     ├─ERROR_PAGE─▶ ERROR_PAGE ──RESPONSE_DONE──▶ IDLE
                     └─RESPONSE_DONE (a local answer: health check, 404) ──▶ IDLE
    AWAITING / SENDING_BODY ──UPGRADED──▶ TUNNEL
    any state ──CLOSE──▶ CLOSED

``CONNECTING`` means "a request was accepted and no target is attached yet";
``SENDING_BODY`` means the request body is still flowing to the target (the
response may already be arriving: a target may answer early, and then the
connection closes after the response because the rest of the body is
unread); ``AWAITING`` means the whole request was sent.
"""

from __future__ import annotations

import enum
from typing import Final


class ClientState(enum.IntEnum):
    IDLE = 0  # between requests: waiting for (the rest of) a head
    CONNECTING = 1  # request accepted, waiting for a target connection
    SENDING_BODY = 2  # forwarding the request body to the target
    AWAITING = 3  # request sent, response in progress
    ERROR_PAGE = 4  # fetching the hub's error page for this request
    TUNNEL = 5  # upgraded (websocket): raw bytes both ways
    CLOSED = 6


class Event(enum.IntEnum):
    HEAD = 0  # a request head was parsed and routed
    ATTACHED = 1  # a target connection took the whole request
    ATTACHED_WITH_BODY = 2  # ... and the body follows
    BODY_DONE = 3  # the last byte of the request body was forwarded
    RESPONSE_DONE = 4  # the response ended; the connection is reusable
    RETRY = 5  # a stale pooled connection dropped an idempotent request
    ERROR_PAGE = 6  # an error answer is being fetched
    UPGRADED = 7  # 101 Switching Protocols
    CLOSE = 8


S = ClientState
E = Event

TRANSITIONS: Final[dict[tuple[ClientState, Event], ClientState]] = {
    (S.IDLE, E.HEAD): S.CONNECTING,
    (S.CONNECTING, E.ATTACHED): S.AWAITING,
    (S.CONNECTING, E.ATTACHED_WITH_BODY): S.SENDING_BODY,
    (S.CONNECTING, E.RESPONSE_DONE): S.IDLE,
    (S.CONNECTING, E.ERROR_PAGE): S.ERROR_PAGE,
    (S.SENDING_BODY, E.BODY_DONE): S.AWAITING,
    (S.SENDING_BODY, E.ERROR_PAGE): S.ERROR_PAGE,
    (S.SENDING_BODY, E.UPGRADED): S.TUNNEL,
    (S.AWAITING, E.RESPONSE_DONE): S.IDLE,
    (S.AWAITING, E.RETRY): S.CONNECTING,
    (S.AWAITING, E.ERROR_PAGE): S.ERROR_PAGE,
    (S.AWAITING, E.UPGRADED): S.TUNNEL,
    (S.ERROR_PAGE, E.RESPONSE_DONE): S.IDLE,
    **{(state, E.CLOSE): S.CLOSED for state in ClientState},
}


class IllegalTransition(RuntimeError):
    """A bug in the data plane: an event that makes no sense in the current state."""


class Lifecycle:
    """The state of one client connection; ``fire`` is the only way to change it.

    IntEnums, so the table lookup on the request path hashes plain ints.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = ClientState.IDLE

    def fire(self, event: Event) -> ClientState:
        try:
            self.state = new = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise IllegalTransition(f"{event.name} in state {self.state.name}") from None
        return new
