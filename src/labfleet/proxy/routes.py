"""The route table: prefix → target, with CHP's semantics and no I/O.

A route key is a tuple of *decoded* path segments. With host routing the
first segment is the (lower-cased) host, exactly like CHP, which stores
``/alice.hub.example/user/alice`` for the route spec
``alice.hub.example/user/alice/``. Lookup is the longest prefix, segment by
segment, so ``/user/alice`` never matches ``/user/alicex``.

The table is a plain dict from key to :class:`Route`; a lookup probes at most
``depth`` keys (one dict hit each), which is cheaper in Python than a trie
walk for the shallow prefixes JupyterHub uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

RouteKey = tuple[str, ...]


class RouteError(ValueError):
    """A route path that cannot be stored (bad encoding, dot segments)."""


class Route:
    """One routing entry; mutable only in its activity and byte counters."""

    __slots__ = ("bytes_in", "bytes_out", "data", "key", "last_activity", "path", "target")

    def __init__(self, key: RouteKey, target: str, data: Mapping[str, Any], now: float) -> None:
        self.key = key
        self.path = key_to_path(key)
        self.target = target
        self.data = {k: v for k, v in data.items() if k not in ("target", "last_activity")}
        self.last_activity = now
        self.bytes_in = 0
        self.bytes_out = 0

    def to_json(self) -> dict[str, Any]:
        """CHP's representation: the stored data plus target and last_activity."""
        out: dict[str, Any] = dict(self.data)
        out["target"] = self.target
        out["last_activity"] = format_timestamp(self.last_activity)
        return out


def format_timestamp(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as JavaScript's ``Date`` prints."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> float:
    """Parse an ISO 8601 timestamp (``Z`` or offset; naive means UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {text!r}: must be ISO 8601") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def path_to_key(path: str, *, host_routing: bool = False) -> RouteKey:
    """Turn an API route path (as in ``/api/routes/<path>``) into a key.

    Each ``/``-separated segment is percent-decoded on its own, so ``%2F``
    stays inside a segment and can never create a new one. Dot segments are
    refused. With host routing the host segment is lower-cased.
    """
    segments = [s for s in path.strip("/").split("/")] if path.strip("/") else []
    key: list[str] = []
    for raw in segments:
        try:
            seg = unquote(raw, errors="strict")
        except UnicodeDecodeError as exc:
            raise RouteError(f"route path {path!r} is not valid UTF-8") from exc
        if seg in (".", ".."):
            raise RouteError(f"route path {path!r} contains a dot segment")
        if any(ord(c) < 0x20 or c == "\x7f" for c in seg):
            raise RouteError(f"route path {path!r} contains control characters")
        key.append(seg)
    if host_routing and key:
        key[0] = key[0].lower()
    return tuple(key)


def key_to_path(key: RouteKey) -> str:
    """CHP's unescaped form: ``/`` + segments joined by ``/``."""
    return "/" + "/".join(key)


class RouteTable:
    """All routes, keyed by decoded segment tuples; longest-prefix lookup."""

    __slots__ = ("_depth", "_routes", "version")

    def __init__(self) -> None:
        self._routes: dict[RouteKey, Route] = {}
        self._depth = 0
        self.version = 0

    def __len__(self) -> int:
        return len(self._routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(list(self._routes.values()))

    def get(self, key: RouteKey) -> Route | None:
        return self._routes.get(key)

    def add(
        self,
        key: RouteKey,
        target: str,
        data: Mapping[str, Any],
        now: float | None = None,
    ) -> Route:
        """Insert or replace a route; a new route starts as active now (CHP does this)."""
        route = Route(key, target, data, time.time() if now is None else now)
        old = self._routes.get(key)
        if old is not None:  # byte counters are per path, not per target
            route.bytes_in, route.bytes_out = old.bytes_in, old.bytes_out
        self._routes[key] = route
        self._depth = max(self._depth, len(key))
        self.version += 1
        return route

    def remove(self, key: RouteKey) -> bool:
        if self._routes.pop(key, None) is None:
            return False
        self._depth = max((len(k) for k in self._routes), default=0)
        self.version += 1
        return True

    def replace_all(self, routes: Iterable[Route]) -> None:
        self._routes = {r.key: r for r in routes}
        self._depth = max((len(k) for k in self._routes), default=0)
        self.version += 1

    def lookup(self, segments: list[str]) -> Route | None:
        """Longest prefix of ``segments`` that is a route, or None."""
        routes = self._routes
        n = min(len(segments), self._depth)
        while n >= 0:
            route = routes.get(tuple(segments[:n]))
            if route is not None:
                return route
            n -= 1
        return None

    def inactive_since(self, ts: float) -> list[Route]:
        return [r for r in self._routes.values() if r.last_activity < ts]

    def to_json(self, routes: Iterable[Route] | None = None) -> dict[str, dict[str, Any]]:
        chosen = self._routes.values() if routes is None else routes
        return {r.path: r.to_json() for r in chosen}
