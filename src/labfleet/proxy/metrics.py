"""Prometheus text exposition of the proxy's counters (no client library).

The hot path only bumps plain ints on a :class:`Counters`; rendering happens
on scrape. With several workers each one ships ``snapshot()`` to the API
process, which sums them (``merge``) before rendering.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from labfleet.proxy.routes import Route


class Counters:
    """Monotonic counters and gauges of one process."""

    __slots__ = (
        "active_connections",
        "api_requests",
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
        self.errors: dict[str, int] = {}
        self.active_connections = 0
        self.upstream_connections = 0
        self.upstream_connects = 0
        self.websockets_active = 0
        self.websockets_total = 0
        self.api_requests = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def merge(self, snap: dict[str, Any]) -> None:
        """Add another process's snapshot into this one."""
        self.requests += int(snap.get("requests", 0))
        for i, v in enumerate(snap.get("responses", [])[:6]):
            self.responses[i] += int(v)
        for kind, v in snap.get("errors", {}).items():
            self.errors[kind] = self.errors.get(kind, 0) + int(v)
        for gauge in (
            "active_connections",
            "upstream_connections",
            "upstream_connects",
            "websockets_active",
            "websockets_total",
            "api_requests",
        ):
            setattr(self, gauge, getattr(self, gauge) + int(snap.get(gauge, 0)))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(counters: Counters, routes: Iterable[Route], route_bytes: dict[str, list[int]]) -> str:
    """Prometheus text format 0.0.4."""
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{labels} {value:g}")

    metric(
        "labfleet_proxy_requests_total",
        "counter",
        "Proxied requests received.",
        [("", counters.requests)],
    )
    metric(
        "labfleet_proxy_responses_total",
        "counter",
        "Responses sent, by status class.",
        [(f'{{code="{i}xx"}}', counters.responses[i]) for i in range(1, 6)],
    )
    metric(
        "labfleet_proxy_errors_total",
        "counter",
        "Proxy errors, by kind.",
        [(f'{{kind="{_label(k)}"}}', v) for k, v in sorted(counters.errors.items())],
    )
    metric(
        "labfleet_proxy_active_connections",
        "gauge",
        "Open client connections.",
        [("", counters.active_connections)],
    )
    metric(
        "labfleet_proxy_upstream_connections",
        "gauge",
        "Open connections to targets.",
        [("", counters.upstream_connections)],
    )
    metric(
        "labfleet_proxy_upstream_connects_total",
        "counter",
        "Connections opened to targets.",
        [("", counters.upstream_connects)],
    )
    metric(
        "labfleet_proxy_websockets_active",
        "gauge",
        "Open websocket tunnels.",
        [("", counters.websockets_active)],
    )
    metric(
        "labfleet_proxy_websockets_total",
        "counter",
        "Websocket tunnels opened.",
        [("", counters.websockets_total)],
    )
    metric(
        "labfleet_proxy_api_requests_total",
        "counter",
        "REST API requests.",
        [("", counters.api_requests)],
    )
    metric(
        "labfleet_proxy_routes", "gauge", "Routes in the table.", [("", float(len(list(routes))))]
    )
    byte_samples: list[tuple[str, float]] = []
    for path, (inb, outb) in sorted(route_bytes.items()):
        byte_samples.append((f'{{route="{_label(path)}",direction="in"}}', inb))
        byte_samples.append((f'{{route="{_label(path)}",direction="out"}}', outb))
    metric(
        "labfleet_proxy_route_bytes_total",
        "counter",
        "Bytes proxied per route (in: from clients, out: to clients).",
        byte_samples,
    )
    return "\n".join(out) + "\n"
