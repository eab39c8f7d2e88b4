"""Time "start" (REST POST) → "server answers" (GET through the proxy returns 200).

The same code drives labfleet and stock JupyterHub: an admin token, users
created through the REST API, servers started with ``POST /hub/api/users/
<name>/server`` and ``GET /user/<name>/api/status`` polled through the public
proxy until it answers 200 (before the route exists the hub answers with a
redirect, which is not followed).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx


@dataclass
class Spawn:
    user: str
    seconds: float | None  # None: did not answer within the timeout
    error: str = ""
    #: CPU seconds the server process had used when it first answered (load-independent)
    cpu: float | None = None


@dataclass
class Summary:
    platform: str
    scenario: str
    spawns: list[Spawn] = field(default_factory=list)
    wall: float = 0.0  # first POST → last 200 (the burst as a whole)

    @property
    def ok(self) -> list[float]:
        return sorted(s.seconds for s in self.spawns if s.seconds is not None)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.spawns if s.seconds is None)

    @property
    def cpu_median(self) -> float | None:
        values = sorted(s.cpu for s in self.spawns if s.cpu is not None)
        return values[len(values) // 2] if values else None

    def quantile(self, q: float) -> float | None:
        values = self.ok
        if not values:
            return None
        # nearest rank: with 5 samples p95 is the max, which is what it honestly is
        return values[max(0, math.ceil(q * len(values)) - 1)]


class Driver:
    """One platform's REST API and proxy, seen with an admin token."""

    def __init__(self, url: str, token: str, poll: float, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.poll = poll
        self.timeout = timeout
        self.http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"token {token}"},
            follow_redirects=False,
            timeout=60,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def create_users(self, names: list[str]) -> None:
        resp = await self.http.post("/hub/api/users", json={"usernames": names})
        if resp.status_code not in (201, 409):
            resp.raise_for_status()

    async def spawn(self, name: str) -> Spawn:
        user = quote(name)
        started = time.monotonic()
        resp = await self.http.post(f"/hub/api/users/{user}/server", json={})
        if resp.status_code not in (201, 202):
            return Spawn(name, None, f"POST {resp.status_code}: {resp.text[:200]}")
        deadline = started + self.timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                status = await self.http.get(f"/user/{user}/api/status")
                if status.status_code == 200:
                    seconds = time.monotonic() - started
                    return Spawn(name, seconds, cpu=await self.server_cpu(name))
                last = str(status.status_code)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            await asyncio.sleep(self.poll)
        return Spawn(name, None, f"no 200 within {self.timeout}s (last: {last})")

    async def server_cpu(self, name: str) -> float | None:
        """utime+stime of the server's process, from the pid in its spawner state."""
        resp = await self.http.get(f"/hub/api/users/{quote(name)}")
        state = resp.json().get("servers", {}).get("", {}).get("state") or {}
        pid = state.get("pid")
        if not pid:
            return None
        try:
            stat = Path(f"/proc/{int(pid)}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rfind(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop_all(self, names: list[str], timeout: float = 120) -> None:
        await asyncio.gather(
            *(self.http.delete(f"/hub/api/users/{quote(n)}/server") for n in names)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            models = await asyncio.gather(
                *(self.http.get(f"/hub/api/users/{quote(n)}") for n in names)
            )
            if all(not m.json().get("servers") for m in models):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"servers still running after {timeout}s")


async def sequential(driver: Driver, platform: str, names: list[str]) -> Summary:
    summary = Summary(platform, f"{len(names)} sequential")
    first = time.monotonic()
    for name in names:
        summary.spawns.append(await driver.spawn(name))
    summary.wall = time.monotonic() - first
    return summary


async def concurrent(driver: Driver, platform: str, names: list[str]) -> Summary:
    summary = Summary(platform, f"{len(names)} concurrent")
    first = time.monotonic()
    summary.spawns = list(await asyncio.gather(*(driver.spawn(n) for n in names)))
    summary.wall = time.monotonic() - first
    return summary
