"""Notice the moment a launched server listens, instead of JupyterHub's backoff.

After ``Spawner.start`` returns, JupyterHub polls the server's URL with a
jittered exponential backoff (0.2 s, 0.4 s, 0.8 s, 1.6 s, ...). Once the
fork-server makes a server ready in well under a second, that backoff is a
large share of the wait. A spawner can await :func:`wait_listening` before
returning from ``start``: a TCP connect every few milliseconds (no HTTP, no
load on the server), which ends as soon as the port accepts, the process
dies, or the timeout passes — JupyterHub's own HTTP check then succeeds at
its first attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

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
