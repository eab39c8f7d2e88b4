"""Notice the moment a launched server listens, instead of JupyterHub's backoff.

After ``Spawner.start`` returns, JupyterHub polls the server's URL with a
jittered exponential backoff (0.2 s, 0.4 s, 0.8 s, 1.6 s, ...). Once the
fork-server makes a server ready in well under a second, that backoff is a
large share of the wait. A spawner can await :func:`wait_listening` before
returning from ``start``: a TCP connect every few milliseconds (no HTTP, no
load on the server), which ends as soon as the port accepts, the process
dies, or the timeout passes — JupyterHub's own HTTP check then succeeds at
its first attempt.

Better still, the server says when it is up (:func:`wait_ready`): the hub
hands each launch the write end of a pipe (:class:`ReadyPipe`); the server's
``spawn.server_ready`` extension writes ``L`` when it loads and ``R`` once its
event loop serves, and a server that dies closes the pipe. The hub waits on the
read end in its event loop (no timer, no connect). The port poll stays as the
fallback for a server that never loads the extension (an environment without
labfleet, a custom command): it starts only after ``fallback_after`` seconds
without an ``L``.

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
from enum import Enum

from labfleet.spawn.processes import is_alive
from labfleet.spawn.server_ready import LOADED, READY


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


class Readiness(Enum):
    """How a wait for a new server ended (the cause a timeout or failure names)."""

    SIGNALLED = "the server signalled it serves"
    LISTENING = "the port accepted (the server sent no ready signal)"
    EXITED = "the server process exited"
    TIMEOUT = "no ready signal and no listening port before the timeout"

    @property
    def up(self) -> bool:
        return self in (Readiness.SIGNALLED, Readiness.LISTENING)


class ReadyPipe:
    """One launch's readiness pipe: the hub keeps the read end, the server inherits the other.

    Both ends are close-on-exec in the hub, so no other server launched at the
    same time inherits them; the launcher passes ``write_fd`` on explicitly.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.loaded = False  # the server's extension said hello (an ``R`` or EOF will follow)

    def close_write(self) -> None:
        """The hub's copy of the write end, once the server holds its own (after launch)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        self.close_write()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


async def wait_ready(
    pipe: ReadyPipe,
    ip: str,
    port: int,
    pid: int,
    ticks: int | None = None,
    timeout: float = 30.0,
    fallback_after: float = 3.0,
) -> Readiness:
    """Wait for the server's ``R`` on ``pipe`` (or its exit); the port poll only as a fallback.

    The poll (:func:`wait_listening`) starts when no ``L`` came within
    ``fallback_after`` seconds, or when the pipe closed without an ``R`` (an
    exiting server: the poll then ends at its first liveness check). Closes the
    pipe's read end.
    """
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Readiness] = loop.create_future()
    polls: list[asyncio.Task[bool]] = []

    def settle(result: Readiness) -> None:
        if not outcome.done():
            outcome.set_result(result)

    def poll_port() -> None:
        if outcome.done() or any(not task.done() for task in polls):
            return
        left = max(0.0, deadline - loop.time())
        # slower than a first-class poll: it serves only servers without the extension (or
        # ones so loaded that their L is late), and on a busy hub its connects cost the loop
        poll = wait_listening(ip, port, pid, ticks, left, interval=0.05, max_interval=0.5)
        task = asyncio.ensure_future(poll)
        task.add_done_callback(polled)
        polls.append(task)

    def polled(task: asyncio.Task[bool]) -> None:
        if task.cancelled():
            return
        if task.result():
            settle(Readiness.LISTENING)
        else:
            settle(Readiness.TIMEOUT if is_alive(pid, ticks) else Readiness.EXITED)

    def readable() -> None:
        try:
            data = os.read(pipe.read_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if READY in data:
            settle(Readiness.SIGNALLED)
        elif LOADED in data:  # an R (or EOF) will come: no port poll, even one started late
            pipe.loaded = True
            fallback.cancel()
            for task in polls:
                task.cancel()
        if not data:  # every holder closed it: the server is exiting (or dropped it)
            loop.remove_reader(pipe.read_fd)
            poll_port()

    deadline = loop.time() + timeout
    loop.add_reader(pipe.read_fd, readable)
    fallback = loop.call_later(fallback_after, lambda: None if pipe.loaded else poll_port())
    try:
        return await asyncio.wait_for(asyncio.shield(outcome), timeout)
    except TimeoutError:
        return Readiness.TIMEOUT
    finally:
        fallback.cancel()
        for task in polls:
            task.cancel()
        loop.remove_reader(pipe.read_fd)
        pipe.close()


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
