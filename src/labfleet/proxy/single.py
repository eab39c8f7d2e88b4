"""The default single-process proxy, and its graceful restart on SIGHUP.

One process owns the route table, the REST API and the data plane. SIGHUP
restarts the data plane without closing the port: the process starts one
worker (a fresh interpreter, so upgraded code is loaded) that binds the
same port with ``SO_REUSEPORT``, and once that worker listens this process
stops accepting, lets its accepted in-flight requests finish (up to
``--shutdown-timeout``) and from then on keeps only the table and the API,
exactly like the supervisor of ``--workers 1``. Its pid, which JupyterHub
watches, does not change. Later SIGHUPs roll that worker as usual.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from labfleet.proxy.api import ApiServer
from labfleet.proxy.context import ProxyContext
from labfleet.proxy.metrics import Counters
from labfleet.proxy.options import ProxyOptions
from labfleet.proxy.routes import RouteTable
from labfleet.proxy.runtime import log
from labfleet.proxy.server import (
    drain,
    install_signals,
    make_context,
    start_api,
    start_public,
    sweeper,
    write_pid_file,
)
from labfleet.proxy.workers import SupervisorStore, WorkerFleet, WorkerHandle


def _local_counters(ctx: ProxyContext) -> Callable[[], Counters]:
    def read() -> Counters:
        ctx.counters.upstream_connects = ctx.pools.connects
        return ctx.counters

    return read


async def serve_single(
    opts: ProxyOptions, ready: Callable[[], Awaitable[None]] | None = None
) -> int:
    table = RouteTable()
    store = SupervisorStore(table)
    ctx = make_context(opts, table)
    store.local = _local_counters(ctx)
    if opts.default_target:
        log.info("Default target %s", opts.default_target)
    stop = asyncio.Event()
    install_signals(stop)
    fleet = WorkerFleet(store, opts, stop)
    # SO_REUSEPORT so that a SIGHUP replacement can listen before we stop
    public = await start_public(ctx, reuse_port=not opts.socket)
    handoff: list[asyncio.Task[None]] = []

    async def hand_over() -> None:
        log.info("SIGHUP: starting a new data-plane process")
        if not await fleet.start_ready(WorkerHandle(0)):
            log.error("the new data-plane process did not start; this one keeps serving")
            handoff.clear()
            return
        log.info("SIGHUP: new process listening; finishing in-flight requests here")
        await drain(ctx, public)

    def on_hup() -> None:
        if stop.is_set():
            return
        if opts.socket:
            log.warning("SIGHUP ignored: graceful restart needs a TCP listener, not --socket")
        elif not handoff:
            handoff.append(asyncio.ensure_future(hand_over()))
        elif handoff[0].done():
            fleet.on_hup()  # already a supervisor: roll its worker

    ctx.loop.add_signal_handler(signal.SIGHUP, on_hup)
    api = ApiServer(
        store,
        opts.auth_token,
        host_routing=opts.host_routing,
        on_request=lambda: setattr(store.own, "api_requests", store.own.api_requests + 1),
    )
    api_servers = await start_api(opts, api)
    write_pid_file(opts)
    where = opts.socket or f"{opts.ip or '*'}:{opts.port}"
    log.info(
        "labfleet-proxy listening on %s, API on %s",
        where,
        opts.api_socket or f"{opts.api_ip}:{opts.api_port_effective}",
    )
    sweep = asyncio.ensure_future(sweeper(ctx))
    if ready is not None:
        await ready()
    await stop.wait()
    log.info("Shutting down: finishing in-flight requests")
    for server in api_servers:
        server.close()
    for task in handoff:
        if not task.done():
            task.cancel()
    await asyncio.gather(drain(ctx, public), fleet.shutdown())
    sweep.cancel()
    return 0
