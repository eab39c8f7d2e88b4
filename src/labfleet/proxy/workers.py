"""Several data-plane processes that are still one proxy to the hub.

The supervisor (the process JupyterHub started) owns the route table and
the REST API and serves no traffic itself. Each worker is a child process
that binds the public port with ``SO_REUSEPORT`` (the kernel spreads
connections over them) and keeps a replica of the table.

Control channel: one Unix socketpair per worker, newline-delimited JSON.

* supervisor → worker: ``snapshot`` (whole table, on start), ``add``, ``remove``;
* worker → supervisor: ``ready``; once a second ``stats`` with counters,
  and the routes whose ``last_activity`` moved, which the
  supervisor folds into its table so ``GET /api/routes`` shows activity.

A worker exits when its control channel closes, so a SIGKILLed supervisor
never leaves orphans holding the port with a stale table; a worker that dies
is restarted with the current table. SIGHUP to the supervisor replaces the
workers one at a time (graceful restart, e.g. after an upgrade): the new one
is listening before the old one stops accepting and drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from labfleet.proxy.api import ApiServer
from labfleet.proxy.metrics import Counters
from labfleet.proxy.options import ProxyOptions, TLSFiles
from labfleet.proxy.routes import Route, RouteKey, RouteTable
from labfleet.proxy.runtime import install_loop, log, setup_logging
from labfleet.proxy.server import (
    drain,
    install_signals,
    make_context,
    start_api,
    start_public,
    sweeper,
    write_pid_file,
)

CONTROL_FD_ENV = "LABFLEET_PROXY_CONTROL_FD"
OPTIONS_ENV = "LABFLEET_PROXY_WORKER_OPTIONS"


def options_to_json(opts: ProxyOptions) -> str:
    data = dataclasses.asdict(opts)
    data["auth_token"] = ""  # workers never need the API token
    return json.dumps(data)


def options_from_json(text: str) -> ProxyOptions:
    data = json.loads(text)
    for side in ("public_tls", "api_tls", "client_tls"):
        data[side] = TLSFiles(**data[side])
    data["custom_headers"] = tuple(tuple(h) for h in data["custom_headers"])
    data["trusted_proxies"] = tuple(data["trusted_proxies"])
    return ProxyOptions(**data)


def _route_msg(route: Route) -> list[Any]:
    return [list(route.key), route.target, route.data, route.last_activity]


class WorkerHandle:
    """The supervisor's view of one worker process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready = asyncio.Event()
        self.counters: dict[str, Any] = {}
        self.retired = False  # replaced by a rolling restart: do not bring it back

    def send(self, msg: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(json.dumps(msg).encode() + b"\n")


class SupervisorStore:
    """Route store that applies locally and broadcasts to every worker."""

    def __init__(self, table: RouteTable | None = None) -> None:
        self.table = table if table is not None else RouteTable()
        self.workers: list[WorkerHandle] = []
        self.own = Counters()
        # a single-process proxy that handed its data plane to a worker (SIGHUP)
        # still reports what it served before
        self.local: Callable[[], Counters] | None = None

    def add(self, key: RouteKey, target: str, data: dict[str, Any]) -> None:
        route = self.table.add(key, target, data)
        msg = {"op": "add", "route": _route_msg(route)}
        for w in self.workers:
            w.send(msg)

    def remove(self, key: RouteKey) -> bool:
        if not self.table.remove(key):
            return False
        for w in self.workers:
            w.send({"op": "remove", "key": list(key)})
        return True

    def counters(self) -> Counters:
        total = Counters()
        if self.local is not None:
            total.merge(self.local().snapshot())
        total.api_requests += self.own.api_requests
        for w in self.workers:
            total.merge(w.counters)
        return total

    def apply_stats(self, worker: WorkerHandle, msg: dict[str, Any]) -> None:
        worker.counters = msg.get("counters", {})
        for key, ts in msg.get("activity", []):
            route = self.table.get(tuple(key))
            if route is not None and ts > route.last_activity:
                route.last_activity = ts


async def _run_worker(store: SupervisorStore, w: WorkerHandle, opts: ProxyOptions) -> None:
    """Start one worker, feed it the table, read its reports until it exits."""
    parent_sock, child_sock = socket.socketpair()
    env = dict(os.environ)
    env.pop("CONFIGPROXY_AUTH_TOKEN", None)
    env[CONTROL_FD_ENV] = str(child_sock.fileno())
    env[OPTIONS_ENV] = options_to_json(opts)
    w.ready.clear()
    w.proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "labfleet.proxy.workers",
        env=env,
        pass_fds=(child_sock.fileno(),),
    )
    child_sock.close()
    reader, writer = await asyncio.open_unix_connection(sock=parent_sock, limit=1 << 26)
    w.writer = writer
    w.send({"op": "snapshot", "routes": [_route_msg(r) for r in store.table]})
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            msg = json.loads(line)
            if msg.get("op") == "ready":
                w.ready.set()
            elif msg.get("op") == "stats":
                store.apply_stats(w, msg)
    finally:
        writer.close()
        w.writer = None
        await w.proc.wait()


class WorkerFleet:
    """Starts, restarts and replaces the worker processes of one supervisor."""

    def __init__(self, store: SupervisorStore, opts: ProxyOptions, stop: asyncio.Event) -> None:
        self.store = store
        self.opts = opts
        self.stop = stop
        self.runners: list[asyncio.Future[None]] = []
        self.restarting: list[asyncio.Task[None]] = []

    def start(self, w: WorkerHandle) -> None:
        self.store.workers.append(w)
        self.runners.append(asyncio.ensure_future(self._keep_running(w)))

    async def _keep_running(self, w: WorkerHandle) -> None:
        while not self.stop.is_set() and not w.retired:
            await _run_worker(self.store, w, self.opts)
            if not self.stop.is_set() and not w.retired:
                log.warning(
                    "worker %d exited (%s); restarting",
                    w.index,
                    w.proc.returncode if w.proc else "?",
                )
                await asyncio.sleep(0.5)

    async def start_ready(self, w: WorkerHandle, timeout: float = 30) -> bool:
        """Start ``w`` and wait until it listens; on failure it is stopped again."""
        self.start(w)
        try:
            await asyncio.wait_for(w.ready.wait(), timeout)
        except TimeoutError:
            w.retired = True
            self.store.workers.remove(w)
            if w.proc is not None and w.proc.returncode is None:
                w.proc.kill()
            return False
        return True

    async def rolling_restart(self) -> None:
        """SIGHUP: replace workers one by one; each old one drains its in-flight work."""
        for old in list(self.store.workers):
            if not await self.start_ready(WorkerHandle(old.index)):
                log.error("replacement worker did not become ready; keeping the old one")
                return
            old.retired = True
            self.store.workers.remove(old)
            if old.proc is not None and old.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    old.proc.send_signal(signal.SIGTERM)
        log.info("rolling restart of %d workers done", len(self.store.workers))

    def on_hup(self) -> None:
        if not any(not t.done() for t in self.restarting) and not self.stop.is_set():
            self.restarting.append(asyncio.ensure_future(self.rolling_restart()))

    async def shutdown(self) -> None:
        for t in self.restarting:
            t.cancel()
        for w in self.store.workers:
            if w.proc is not None and w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        if self.runners:
            await asyncio.wait(self.runners, timeout=self.opts.shutdown_timeout_s + 5)


async def serve_supervisor(opts: ProxyOptions) -> int:
    store = SupervisorStore()
    stop = asyncio.Event()
    install_signals(stop)
    fleet = WorkerFleet(store, opts, stop)
    for i in range(opts.workers):
        fleet.start(WorkerHandle(i))
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, fleet.on_hup)
    failed = False
    try:
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in store.workers)), 30)
    except TimeoutError:
        log.error("workers did not become ready (is port %s free?)", opts.port)
        failed = True
        stop.set()
    api = ApiServer(
        store,
        opts.auth_token,
        host_routing=opts.host_routing,
        on_request=lambda: setattr(store.own, "api_requests", store.own.api_requests + 1),
    )
    api_servers = await start_api(opts, api) if not stop.is_set() else []
    write_pid_file(opts)
    log.info(
        "labfleet-proxy: %d workers on port %s, API on %s",
        opts.workers,
        opts.port,
        opts.api_socket or f"{opts.api_ip}:{opts.api_port_effective}",
    )
    await stop.wait()
    for server in api_servers:
        server.close()
    await fleet.shutdown()
    return 1 if failed else 0


async def serve_worker(opts: ProxyOptions, control_fd: int) -> int:
    table = RouteTable()
    ctx = make_context(opts, table)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # restarts are the supervisor's call
    sock = socket.socket(fileno=control_fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 26)
    reported: dict[RouteKey, float] = {}

    def send(msg: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(json.dumps(msg).encode() + b"\n")

    def report() -> None:
        activity = []
        for r in table:
            if reported.get(r.key) != r.last_activity:
                reported[r.key] = r.last_activity
                activity.append([list(r.key), r.last_activity])
        counters = ctx.counters
        counters.upstream_connects = ctx.pools.connects
        send(
            {
                "op": "stats",
                "counters": counters.snapshot(),
                "activity": activity,
            }
        )

    async def control() -> None:
        while True:
            line = await reader.readline()
            if not line:
                break
            msg = json.loads(line)
            op = msg.get("op")
            if op == "snapshot":
                routes = [Route(tuple(k), t, d, ts) for k, t, d, ts in msg["routes"]]
                table.replace_all(routes)
                for r in routes:
                    reported[r.key] = r.last_activity
            elif op == "add":
                k, t, d, ts = msg["route"]
                table.add(tuple(k), t, d, ts)
                reported[tuple(k)] = ts
            elif op == "remove":
                table.remove(tuple(msg["key"]))
        stop.set()  # the supervisor is gone

    control_task = asyncio.ensure_future(control())
    public = await start_public(ctx, reuse_port=True)
    send({"op": "ready"})
    sweep = asyncio.ensure_future(sweeper(ctx, tick=report))
    await stop.wait()
    control_task.cancel()
    await drain(ctx, public)
    sweep.cancel()
    with contextlib.suppress(Exception):
        report()
        writer.close()
    return 0


def worker_main() -> int:
    opts = options_from_json(os.environ[OPTIONS_ENV])
    setup_logging(opts.log_level)
    install_loop()
    gc.collect()
    gc.freeze()
    return asyncio.run(serve_worker(opts, int(os.environ[CONTROL_FD_ENV])))


if __name__ == "__main__":
    sys.exit(worker_main())
