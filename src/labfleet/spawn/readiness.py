"""Notice the moment a launched server listens, instead of JupyterHub's backoff.

After ``Spawner.start`` returns, JupyterHub polls the server's URL with a
jittered exponential backoff (0.2 s, 0.4 s, 0.8 s, 1.6 s, ...). Once the
fork-server makes a server ready in well under a second, that backoff is a
large share of the wait. A spawner can await :func:`wait_listening` before
returning from ``start``: a TCP connect every few milliseconds (no HTTP, no
load on the server), which ends as soon as the port accepts, the process
dies, or the timeout passes — JupyterHub's own HTTP check then succeeds at
its first attempt.

:class:`StartGate` admits a few server starts at a time in arrival order, so a
burst does not turn into everyone finishing together at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from collections.abc import AsyncIterator

from labfleet.spawn.processes import is_alive


async def wait_listening(
    ip: str,
    port: int,
    pid: int,
    ticks: int | None = None,
    timeout: float = 30.0,
    interval: float = 0.005,
    max_interval: float = 0.1,
) -> bool:
    """True once ``ip:port`` accepts a connection; False if ``pid`` exits or time runs out.

    The interval grows from ``interval`` to ``max_interval`` (x1.5 per try), so a
    burst of spawns does not turn into thousands of connects per second.
    """
    host = "127.0.0.1" if ip in ("", "0.0.0.0") else ip  # noqa: S104 - a bind-all address
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            if not is_alive(pid, ticks):
                return False
            await asyncio.sleep(interval)
            interval = min(max_interval, interval * 1.5)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


class StartGate:
    """At most ``slots`` servers initialising at once; later starts wait their turn (FIFO).

    A server start is ~0.2 CPU-seconds of its own initialisation. Fifty started
    at once on two cores share the CPU evenly, so every one of them finishes at
    the very end (p50 ≈ max: the first member waits for the last). Admitting a
    few at a time in arrival order gives the same total but lets the first
    members in first. A slot is held from launch until the port accepts, and
    never longer than ``hold_max`` seconds (a normal start holds it ~0.5 s), so a
    server that hangs, or a fork-server still warming up, delays the others by
    at most that (its start goes on outside the gate).
    """

    def __init__(self, slots: int, hold_max: float = 2.0) -> None:
        self.slots = max(1, slots)
        self.hold_max = hold_max
        self._free = asyncio.Semaphore(self.slots)

    async def admit(self) -> Ticket:
        """Wait for a slot; the ticket gives it back (by ``release`` or after ``hold_max``)."""
        await self._free.acquire()
        ticket = Ticket(self._free)
        ticket.timer = asyncio.get_running_loop().call_later(self.hold_max, ticket.release)
        return ticket

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        ticket = await self.admit()
        try:
            yield
        finally:
            ticket.release()

    @property
    def free(self) -> int:
        """Slots free now (for tests and the benchmark's profile)."""
        return self._free._value


class Ticket:
    """One admitted start's slot; ``release`` is idempotent."""

    def __init__(self, free: asyncio.Semaphore) -> None:
        self._free = free
        self._released = False
        self.timer: asyncio.TimerHandle | None = None

    def release(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self._released:
            self._released = True
            self._free.release()


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StartGate] = (
    weakref.WeakKeyDictionary()
)


def start_gate() -> StartGate:
    """This event loop's gate: two slots per core (a start also waits on I/O)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        gate = _gates[loop] = StartGate(2 * max(1, cores))
    return gate
