"""Per-process state shared by every connection of the data plane.

It knows the pool only as :class:`~labfleet.proxy.pool.PoolManager` and the
client connections only through :class:`SweptConnection`; whoever wires the
process (``server``) creates the pool with its connection factory and hands
it in. So ``context`` sits below ``forward`` and ``upstream`` and imports
neither of them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from labfleet.proxy.metrics import Counters
from labfleet.proxy.options import ProxyOptions
from labfleet.proxy.pool import PoolManager
from labfleet.proxy.routes import Route, RouteTable
from labfleet.proxy.runtime import log
from labfleet.proxy.targets import TargetCache
from labfleet.proxy.trust import TrustedProxies, parse_networks


class SweptConnection(Protocol):
    """What the sweeper and the drain need from a client connection."""

    def check_timeouts(self, now: float) -> None: ...

    def idle(self) -> bool: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class ProxyContext:
    """Everything a connection needs, reachable through one attribute."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        options: ProxyOptions,
        table: RouteTable,
        client_ssl: ssl.SSLContext | None,
        make_pools: Callable[[ProxyContext], PoolManager[Any]],
    ) -> None:
        self.loop = loop
        self.options = options
        self.table = table
        self.targets = TargetCache()
        self.counters = Counters()
        self.connections: set[SweptConnection] = set()
        self.per_address: dict[bytes, int] = {}
        self.trust = TrustedProxies(parse_networks(options.trusted_proxies))
        self.client_ssl = client_ssl
        self.now = loop.time()
        self.shutting_down = False
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.default_route = Route(("<default>",), options.default_target or "", {}, 0.0)
        self.extra_headers = [f"{k}: {v}".encode("latin-1") for k, v in options.custom_headers]
        hsts = options.hsts_max_age
        self.hsts_line = b"" if hsts is None else b"Strict-Transport-Security: max-age=%d" % hsts
        self.pools: PoolManager[Any] = make_pools(self)
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> None:
        """Run a background task and keep a reference so it is not collected."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
