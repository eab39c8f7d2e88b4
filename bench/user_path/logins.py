"""Login storm: form logins per second, against the hash bound, and the hub's latency meanwhile.

``clients`` loops each do GET /hub/login + POST /hub/login for ``seconds``;
one more client meanwhile asks ``GET /hub/api/user`` (a token request that
touches the database) one after the other and records each latency: the p99
of those is "the hub stays responsive during a login storm". The bound is
``cores ÷ CPU-seconds per hash``, the hash measured here at the platform's
production cost (the hash is the whole cost of a password login).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from api_path import quantile

from labfleet.auth.hash_pool import core_count
from labfleet.auth.hashing import DEFAULT_PARAMS, hash_password, verify_password


def cpu_seconds_per_hash(samples: int = 5) -> float:
    encoded = hash_password("bench", DEFAULT_PARAMS)
    start = time.process_time()
    for _ in range(samples):
        verify_password("bench", encoded)
    return (time.process_time() - start) / samples


def hash_bound() -> tuple[int, float, float]:
    """(cores, CPU-s per hash, logins/s the hash allows)."""
    cores = core_count()
    per_hash = cpu_seconds_per_hash()
    return cores, per_hash, cores / per_hash


@dataclass
class Storm:
    logins: int = 0
    failures: int = 0
    seconds: float = 0.0
    probe_latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.logins / self.seconds if self.seconds else 0.0

    @property
    def probe_p99(self) -> float | None:
        return quantile(self.probe_latencies, 0.99)

    @property
    def probe_p50(self) -> float | None:
        return quantile(self.probe_latencies, 0.5)


async def _login_loop(
    url: str, names: list[str], password: str, until: float, storm: Storm
) -> None:
    i = 0
    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=60) as http:
        while time.monotonic() < until:
            name = names[i % len(names)]
            i += 1
            http.cookies.clear()
            try:
                await http.get("/hub/login")
                xsrf = http.cookies.get("_xsrf", path="/hub/") or ""
                resp = await http.post(
                    "/hub/login?next=%2Fhub%2Fhome",
                    data={"username": name, "password": password, "_xsrf": xsrf},
                )
            except httpx.HTTPError:
                storm.failures += 1
                continue
            if resp.status_code == 302:
                storm.logins += 1
            else:
                storm.failures += 1


async def _probe(url: str, token: str, until: float, storm: Storm) -> None:
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                await http.get("/hub/api/user")
            except httpx.HTTPError:
                continue
            storm.probe_latencies.append(time.monotonic() - start)
            await asyncio.sleep(0.01)


async def login_storm(
    url: str, names: list[str], password: str, token: str, clients: int, seconds: float
) -> Storm:
    storm = Storm()
    start = time.monotonic()
    until = start + seconds
    await asyncio.gather(
        *(
            _login_loop(url, names[i::clients] or names, password, until, storm)
            for i in range(clients)
        ),
        _probe(url, token, until, storm),
    )
    storm.seconds = time.monotonic() - start
    return storm


async def idle_probe(url: str, token: str, seconds: float = 2.0) -> Storm:
    """The same probe with no storm: the hub's latency at rest, for comparison."""
    storm = Storm()
    await _probe(url, token, time.monotonic() + seconds, storm)
    return storm
