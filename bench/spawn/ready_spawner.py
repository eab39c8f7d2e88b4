"""Bench-only: LocalSpawner that returns from ``start`` once the server listens.

Measures what wiring ``labfleet.spawn.readiness.wait_listening`` into
``LocalSpawner.start`` would gain (JupyterHub's first HTTP check then
succeeds instead of backing off). Loaded by the hub through PYTHONPATH.
"""

from __future__ import annotations

from labfleet.spawn.local import LocalSpawner
from labfleet.spawn.readiness import wait_listening


class ReadyLocalSpawner(LocalSpawner):  # type: ignore[misc]
    async def start(self) -> tuple[str, int]:
        ip, port = await super().start()
        await wait_listening(ip, port, self.pid, self.pid_ticks or None, self.start_timeout)
        return ip, port
