"""The proxy's counters, and their Prometheus exposition through prometheus_client.

The hot path only bumps plain ints on a :class:`Counters` (a prometheus_client
``Counter.inc`` takes a lock per call); on scrape a collector turns one
snapshot into metric families and ``generate_latest`` writes the text, so the
format (exact integers included) is the library's, not ours. With several
workers each one ships ``snapshot()`` to the API process, which sums them.

Label sets are bounded on purpose: status class, a fixed list of error kinds
and byte direction. No route, path or user name ever becomes a label: the
metrics port of CHP is unauthenticated, and a label per user would grow
without end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE: Final = b"text/plain; version=0.0.4; charset=utf-8"

ERROR_KINDS: Final = (
    "bad_request",  # refused request (framing, routing input)
    "connect",  # target unreachable or pool slot not free in time
    "upstream_reset",  # target closed the connection before answering
    "not_replayed",  # ... and the request was not idempotent, so it was not retried
    "bad_response",  # target sent a response we refuse to relay
    "timeout",  # target silent longer than --proxy-timeout
    "head_timeout",  # client head not complete within --timeout
    "body_timeout",  # client body stalled longer than --body-timeout
    "websocket_idle",  # tunnel idle and unanswered pings
    "connection_cap",  # client address over --max-connections-per-ip
)

_GAUGES: Final = (
    "active_connections",
    "upstream_connections",
    "websockets_active",
)
_SUMMED: Final = (
    *_GAUGES,
    "requests",
    "upstream_connects",
    "websockets_total",
    "api_requests",
    "bytes_in",
    "bytes_out",
)


class Counters:
    """Monotonic counters and gauges of one process."""

    __slots__ = (
        "active_connections",
        "api_requests",
        "bytes_in",
        "bytes_out",
        "errors",
        "requests",
        "responses",
        "upstream_connections",
        "upstream_connects",
        "websockets_active",
        "websockets_total",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.responses = [0, 0, 0, 0, 0, 0]  # index = status // 100
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self.active_connections = 0
        self.upstream_connections = 0
        self.upstream_connects = 0
        self.websockets_active = 0
        self.websockets_total = 0
        self.api_requests = 0
        self.bytes_in = 0  # from clients
        self.bytes_out = 0  # to clients

    def error(self, kind: str) -> None:
        """Count an error; an unknown kind is a KeyError (the label set stays fixed)."""
        self.errors[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def merge(self, snap: dict[str, Any]) -> None:
        """Add another process's snapshot into this one."""
        for i, v in enumerate(snap.get("responses", [])[:6]):
            self.responses[i] += int(v)
        for kind, v in snap.get("errors", {}).items():
            if kind in self.errors:
                self.errors[kind] += int(v)
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + int(snap.get(name, 0)))


class _Snapshot(Collector):
    def __init__(self, counters: Counters, route_count: int) -> None:
        self.c = counters
        self.route_count = route_count

    def collect(self) -> Iterator[Metric]:
        c = self.c

        def counter(name: str, doc: str, value: int) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        def gauge(name: str, doc: str, value: int) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield counter("labfleet_proxy_requests", "Proxied requests received.", c.requests)
        responses = CounterMetricFamily(
            "labfleet_proxy_responses", "Responses sent, by status class.", labels=["code"]
        )
        for i in range(1, 6):
            responses.add_metric([f"{i}xx"], c.responses[i])
        yield responses
        errors = CounterMetricFamily(
            "labfleet_proxy_errors", "Proxy errors, by kind.", labels=["kind"]
        )
        for kind in ERROR_KINDS:
            errors.add_metric([kind], c.errors.get(kind, 0))
        yield errors
        moved = CounterMetricFamily(
            "labfleet_proxy_bytes",
            "Body and tunnel bytes proxied (in: from clients, out: to clients).",
            labels=["direction"],
        )
        moved.add_metric(["in"], c.bytes_in)
        moved.add_metric(["out"], c.bytes_out)
        yield moved
        yield gauge(
            "labfleet_proxy_active_connections", "Open client connections.", c.active_connections
        )
        yield gauge(
            "labfleet_proxy_upstream_connections",
            "Open connections to targets.",
            c.upstream_connections,
        )
        yield counter(
            "labfleet_proxy_upstream_connects",
            "Connections opened to targets.",
            c.upstream_connects,
        )
        yield gauge(
            "labfleet_proxy_websockets_active", "Open websocket tunnels.", c.websockets_active
        )
        yield counter("labfleet_proxy_websockets", "Websocket tunnels opened.", c.websockets_total)
        yield counter("labfleet_proxy_api_requests", "REST API requests.", c.api_requests)
        yield gauge("labfleet_proxy_routes", "Routes in the table.", self.route_count)


def render(counters: Counters, route_count: int) -> str:
    """Prometheus text format 0.0.4, written by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(counters, route_count))
    return generate_latest(registry).decode("utf-8")
