"""Wiring pieces: listeners, the pools, the timeout sweeper, signals and the drain.

``single.serve_single`` (the default: one process owns the route table, the
API and the data plane) and ``workers.serve_supervisor`` /
``workers.serve_worker`` (several processes) are built from these.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

from labfleet.proxy.api import ApiServer
from labfleet.proxy.context import ProxyContext
from labfleet.proxy.forward import ClientProtocol
from labfleet.proxy.options import ProxyOptions
from labfleet.proxy.pool import PoolManager
from labfleet.proxy.redirect import start_redirect
from labfleet.proxy.routes import RouteTable
from labfleet.proxy.runtime import log
from labfleet.proxy.tls import client_context, server_context, watch_cert_files
from labfleet.proxy.upstream import UpstreamProtocol


async def start_public(ctx: ProxyContext, *, reuse_port: bool) -> asyncio.Server:
    opts = ctx.options
    ssl_ctx = server_context(opts.public_tls)
    scheme = b"https" if ssl_ctx is not None else b"http"
    if ssl_ctx is not None and opts.ssl_reload_interval_s > 0:
        ctx.spawn(watch_cert_files(ssl_ctx, opts.public_tls, opts.ssl_reload_interval_s))

    def factory() -> ClientProtocol:
        return ClientProtocol(ctx, scheme)

    if opts.socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(opts.socket)
        return await ctx.loop.create_unix_server(factory, opts.socket, ssl=ssl_ctx, backlog=2048)
    return await ctx.loop.create_server(
        factory,
        host=opts.ip or None,
        port=opts.port,
        ssl=ssl_ctx,
        backlog=2048,
        reuse_port=reuse_port or None,
    )


async def start_api(opts: ProxyOptions, api: ApiServer) -> list[asyncio.Server]:
    """The REST API, plus CHP's optional ``--redirect-port`` and ``--metrics-port``."""
    servers = []
    ssl_ctx = server_context(opts.api_tls)
    if opts.api_socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(opts.api_socket)
        servers.append(await asyncio.start_unix_server(api.handle, opts.api_socket, ssl=ssl_ctx))
    else:
        servers.append(
            await asyncio.start_server(
                api.handle, opts.api_ip or None, opts.api_port_effective, ssl=ssl_ctx
            )
        )
    if opts.redirect_port is not None:
        servers.append(
            await start_redirect(opts.ip, opts.redirect_port, opts.redirect_to or opts.port)
        )
    if opts.metrics_port is not None:
        public_metrics = ApiServer(
            api.store, api.token, host_routing=api.host_routing, metrics_public=True
        )
        servers.append(
            await asyncio.start_server(
                public_metrics.handle, opts.metrics_ip or None, opts.metrics_port
            )
        )
    return servers


def make_pools(ctx: ProxyContext) -> PoolManager[UpstreamProtocol]:
    """The target pools, injected into the context (which knows no protocol class)."""
    opts = ctx.options
    return PoolManager(
        lambda: UpstreamProtocol(ctx),
        max_total=opts.max_connections_per_target,
        max_idle=opts.max_idle_per_target,
        client_ssl=ctx.client_ssl,
        connect_timeout=opts.connect_timeout_s,
    )


def make_context(opts: ProxyOptions, table: RouteTable) -> ProxyContext:
    loop = asyncio.get_running_loop()
    client_ssl = client_context(opts.client_tls, insecure=opts.insecure)
    return ProxyContext(loop, opts, table, client_ssl, make_pools)


async def sweeper(ctx: ProxyContext, tick: Callable[[], None] | None = None) -> None:
    """Coarse clock + timeouts: one timer for all connections, not one per request."""
    opts = ctx.options
    while True:
        await asyncio.sleep(1.0)
        ctx.now = now = ctx.loop.time()
        for conn in list(ctx.connections):
            conn.check_timeouts(now)
        ctx.pools.sweep(now, opts.upstream_idle_timeout_s)
        if tick is not None:
            tick()


def install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def drain(ctx: ProxyContext, public: asyncio.Server) -> None:
    """Stop accepting, close idle keep-alive sockets, let in-flight requests finish."""
    public.close()
    ctx.shutting_down = True
    for conn in list(ctx.connections):
        # idle keep-alive sockets have nothing in flight; websocket tunnels cannot
        # "finish" (kernels reconnect on their own), so both close at once
        if conn.idle():
            conn.close()
    deadline = ctx.loop.time() + ctx.options.shutdown_timeout_s
    while ctx.connections and ctx.loop.time() < deadline:
        await asyncio.sleep(0.05)
    for conn in list(ctx.connections):
        conn.abort()
    ctx.pools.close_all()
    log.info("data plane stopped")


def write_pid_file(opts: ProxyOptions) -> None:
    if opts.pid_file:
        with open(opts.pid_file, "w") as f:
            f.write(str(os.getpid()))
