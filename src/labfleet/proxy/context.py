"""Per-process state shared by every connection of the data plane."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any

from labfleet.proxy.metrics import Counters
from labfleet.proxy.options import ProxyOptions
from labfleet.proxy.routes import Route, RouteTable
from labfleet.proxy.targets import TargetCache

if TYPE_CHECKING:
    from labfleet.proxy.forward import ClientProtocol
    from labfleet.proxy.pool import PoolManager
    from labfleet.proxy.upstream import UpstreamProtocol

log = logging.getLogger("labfleet.proxy")


class ProxyContext:
    """Everything a connection needs, reachable through one attribute."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        options: ProxyOptions,
        table: RouteTable,
        client_ssl: ssl.SSLContext | None,
    ) -> None:
        self.loop = loop
        self.options = options
        self.table = table
        self.targets = TargetCache()
        self.counters = Counters()
        self.connections: set[ClientProtocol] = set()
        self.client_ssl = client_ssl
        self.now = loop.time()
        self.shutting_down = False
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.default_route = Route(("<default>",), options.default_target or "", {}, 0.0)
        self.extra_headers = [f"{k}: {v}".encode("latin-1") for k, v in options.custom_headers]
        self.pools: PoolManager[UpstreamProtocol] = _make_pools(self)
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> None:
        """Run a background task and keep a reference so it is not collected."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _make_pools(ctx: ProxyContext) -> PoolManager[UpstreamProtocol]:
    from labfleet.proxy.pool import PoolManager
    from labfleet.proxy.upstream import UpstreamProtocol

    timeout = ctx.options.proxy_timeout_s or 10.0
    return PoolManager(
        lambda: UpstreamProtocol(ctx),
        max_total=ctx.options.max_connections_per_target,
        max_idle=ctx.options.max_idle_per_target,
        client_ssl=ctx.client_ssl,
        connect_timeout=min(timeout, 30.0),
    )
