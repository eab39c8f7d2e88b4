"""Bounded keep-alive connection pools to targets.

One :class:`HostPool` per target address. ``max_total`` bounds the sockets a
single target can hold (CHP opens one per request and exhausts ports under
churn); when the bound is reached new requests queue for a released
connection or a freed slot instead of opening more sockets. Idle
connections are reused LIFO (warmest first) and closed after an idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from labfleet.proxy.targets import Target


class PooledProtocol(asyncio.Protocol):
    """Base for upstream protocols: what the pool needs to know about one socket."""

    transport: asyncio.Transport | None
    closed: bool
    idle_since: float
    reused: bool
    pool: HostPool[Any] | None

    def __init__(self) -> None:
        self.transport = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.pool = None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            if self.pool is not None:
                self.pool.discard(self)


P = TypeVar("P", bound=PooledProtocol)


class PoolTimeout(Exception):
    """No connection slot became free in time."""


class HostPool(Generic[P]):
    __slots__ = ("idle", "max_idle", "max_total", "total", "waiters")

    def __init__(self, max_total: int, max_idle: int) -> None:
        self.idle: list[P] = []
        self.total = 0
        self.max_total = max_total
        self.max_idle = max_idle
        self.waiters: deque[asyncio.Future[P | None]] = deque()

    def take_idle(self) -> P | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def release(self, conn: P, now: float) -> None:
        """Give a finished, reusable connection back (or to a waiter)."""
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                conn.reused = True
                fut.set_result(conn)
                return
        if len(self.idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = now
        self.idle.append(conn)

    def discard(self, conn: P) -> None:
        """A connection closed: free its slot, wake one waiter to open a new one."""
        if conn.pool is not self:
            return
        conn.pool = None
        self.total -= 1
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return


class PoolManager(Generic[P]):
    """All pools of one process; creates connections with ``factory``."""

    def __init__(
        self,
        factory: Callable[[], P],
        *,
        max_total: int,
        max_idle: int,
        client_ssl: ssl.SSLContext | None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._factory = factory
        self._pools: dict[tuple[object, ...], HostPool[P]] = {}
        self._max_total = max_total
        self._max_idle = max_idle
        self._client_ssl = client_ssl
        self._connect_timeout = connect_timeout
        self.connects = 0

    def pool_for(self, target: Target) -> HostPool[P]:
        pool = self._pools.get(target.key)
        if pool is None:
            pool = self._pools[target.key] = HostPool(self._max_total, self._max_idle)
        return pool

    def take_idle(self, target: Target) -> P | None:
        pool = self._pools.get(target.key)
        return pool.take_idle() if pool is not None else None

    async def acquire(self, target: Target) -> P:
        """An idle connection, a new one, or (at the bound) the next one released."""
        pool = self.pool_for(target)
        while True:
            conn = pool.take_idle()
            if conn is not None:
                return conn
            if pool.total < pool.max_total:
                return await self._open(target, pool)
            fut: asyncio.Future[P | None] = asyncio.get_running_loop().create_future()
            pool.waiters.append(fut)
            try:
                got = await asyncio.wait_for(fut, self._connect_timeout)
            except TimeoutError as exc:
                raise PoolTimeout(f"no free connection to {target.host}:{target.port}") from exc
            if got is not None and not got.closed:
                return got

    async def _open(self, target: Target, pool: HostPool[P]) -> P:
        loop = asyncio.get_running_loop()
        pool.total += 1
        conn = self._factory()
        conn.pool = pool
        ssl_ctx: ssl.SSLContext | None = None
        if target.tls:
            ssl_ctx = self._client_ssl or ssl.create_default_context()
        try:
            if target.unix_path is not None:
                coro = loop.create_unix_connection(
                    lambda: conn,
                    target.unix_path,
                    ssl=ssl_ctx,
                    server_hostname="localhost" if ssl_ctx else None,
                )
            else:
                coro = loop.create_connection(lambda: conn, target.host, target.port, ssl=ssl_ctx)
            await asyncio.wait_for(coro, self._connect_timeout)
        except BaseException:
            conn.closed = True
            pool.discard(conn)
            raise
        self.connects += 1
        return conn

    def sweep(self, now: float, idle_timeout: float) -> None:
        """Close connections idle longer than ``idle_timeout``; forget empty pools."""
        empty = []
        for key, pool in self._pools.items():
            if pool.idle:
                for conn in [c for c in pool.idle if now - c.idle_since > idle_timeout]:
                    conn.close()
            if pool.total == 0 and not pool.waiters:
                empty.append(key)
        for key in empty:  # targets of deleted routes must not accumulate
            del self._pools[key]

    def close_all(self) -> None:
        for pool in self._pools.values():
            for conn in list(pool.idle):
                conn.close()

    def open_connections(self) -> int:
        return sum(p.total for p in self._pools.values())
