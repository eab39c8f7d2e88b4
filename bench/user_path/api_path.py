"""A member's path over HTTP, timed step by step: log in → server ready → kernel → first output.

The same code drives labfleet and stock JupyterHub. "Log in" is the real form
(GET /hub/login for the XSRF cookie, POST username+password), then a token
for the API (one hub request); "server ready" is the spawn POST until the
user's ``/api/status`` answers 200 *through the proxy* (waiting on the hub's progress
event stream first, as the spawn page does, rather than polling the hub); "kernel" is
``POST /user/<name>/api/kernels``; "first output" is an ``execute_request``
of ``print(...)`` over the kernel's websocket until its stream arrives.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import websockets

#: the steps of one member's path, in order
STEPS = ("login", "ready", "kernel", "output")


@dataclass
class PathTiming:
    """Seconds spent in each step (cumulative ``total``), or the error that ended the path."""

    user: str
    steps: dict[str, float] = field(default_factory=dict)
    error: str = ""
    kernel_id: str = ""
    token: str = ""

    @property
    def total(self) -> float | None:
        return None if self.error else sum(self.steps.values())


def quantile(values: list[float], q: float) -> float | None:
    """Nearest rank (with 5 samples p95 is the max, which is what it honestly is)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Member:
    """One member's HTTP client: cookies of the hub, then a token for the REST calls."""

    def __init__(self, url: str, name: str, password: str, timeout: float = 300) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.password = password
        self.timeout = timeout
        self.http = httpx.AsyncClient(base_url=self.url, follow_redirects=False, timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def login(self) -> str:
        """Form login, then a token (returned); raises on a refused sign-in."""
        await self.http.get("/hub/login")
        xsrf = self.http.cookies.get("_xsrf", path="/hub/") or ""
        resp = await self.http.post(
            "/hub/login?next=%2Fhub%2Fhome",
            data={"username": self.name, "password": self.password, "_xsrf": xsrf},
        )
        if resp.status_code != 302:
            raise RuntimeError(f"login answered {resp.status_code}")
        xsrf = self.http.cookies.get("_xsrf", path="/hub/") or xsrf  # renewed at login
        resp = await self.http.post(
            f"/hub/api/users/{quote(self.name)}/tokens",
            json={"note": "bench"},
            headers={"X-XSRFToken": xsrf},
        )
        resp.raise_for_status()
        token: str = resp.json()["token"]
        self.http.headers["Authorization"] = f"token {token}"
        return token

    async def start_and_wait(self, poll: float = 0.02) -> None:
        user = quote(self.name)
        resp = await self.http.post(f"/hub/api/users/{user}/server", json={})
        if resp.status_code not in (201, 202):
            raise RuntimeError(f"spawn POST answered {resp.status_code}: {resp.text[:200]}")
        if resp.status_code == 202:
            await self._wait_progress()
        deadline = time.monotonic() + self.timeout
        last = ""
        tries = 0
        while time.monotonic() < deadline:
            try:
                status = await self.http.get(f"/user/{user}/api/status")
                if status.status_code == 200:
                    return
                last = str(status.status_code)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            tries += 1
            if tries % 25 == 0 and not await self._server_pending_or_up():
                raise RuntimeError("the spawn failed (see the hub log)")
            await asyncio.sleep(poll)
        raise TimeoutError(f"server not ready within {self.timeout}s (last: {last})")

    async def _wait_progress(self) -> None:
        """Until the hub's progress stream says ready (what the spawn page's browser does).

        Polling ``/user/<name>/api/status`` while the server is pending sends every
        poll to the hub (no route yet): in a slow burst that was thousands of hub
        requests, loading the very loop being measured. The event stream is one
        request per member; the status check afterwards normally answers at once.
        A stream that cannot be read leaves the waiting to the status poll.
        """
        url = f"/hub/api/users/{quote(self.name)}/server/progress"
        try:
            async with self.http.stream("GET", url) as stream:
                if stream.status_code != 200:
                    return
                async for line in stream.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if event.get("failed"):
                        raise RuntimeError(f"the spawn failed: {event.get('message', '')[:200]}")
                    if event.get("ready"):
                        return
        except httpx.HTTPError:
            return

    async def _server_pending_or_up(self) -> bool:
        resp = await self.http.get(f"/hub/api/users/{quote(self.name)}")
        return resp.status_code != 200 or bool(resp.json().get("servers"))

    async def start_kernel(self) -> str:
        resp = await self.http.post(f"/user/{quote(self.name)}/api/kernels", json={})
        resp.raise_for_status()
        kernel_id: str = resp.json()["id"]
        return kernel_id

    async def first_output(self, kernel_id: str, code: str = "print(6 * 7)") -> str:
        ws_url = self.url.replace("http", "ws", 1) + (
            f"/user/{quote(self.name)}/api/kernels/{kernel_id}/channels"
        )
        headers = {"Authorization": str(self.http.headers["Authorization"])}
        msg_id = uuid.uuid4().hex
        request = {
            "header": {
                "msg_id": msg_id,
                "username": self.name,
                "session": uuid.uuid4().hex,
                "msg_type": "execute_request",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False},
        }
        async with websockets.connect(
            ws_url, additional_headers=headers, max_size=None, open_timeout=self.timeout
        ) as ws:
            await ws.send(json.dumps(request))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg.get("msg_type") == "stream":
                    text: str = msg["content"]["text"]
                    return text
                if msg.get("msg_type") == "error":
                    raise RuntimeError(f"kernel error: {msg['content'].get('ename')}")

    async def stop(self) -> None:
        await self.http.delete(f"/hub/api/users/{quote(self.name)}/server")


async def member_path(
    url: str, name: str, password: str, until: str = "output", signed_in: Member | None = None
) -> PathTiming:
    """Time one member's path up to and including step ``until``.

    ``signed_in``: a member who has logged in already; the path starts at the spawn.
    """
    timing = PathTiming(name)
    member = signed_in or Member(url, name, password)
    try:
        mark = time.monotonic()

        def lap(step: str) -> None:
            nonlocal mark
            now = time.monotonic()
            timing.steps[step] = now - mark
            mark = now

        if signed_in is None:
            timing.token = await member.login()
            lap("login")
        if until == "login":
            return timing
        await member.start_and_wait()
        lap("ready")
        if until == "ready":
            return timing
        timing.kernel_id = await member.start_kernel()
        lap("kernel")
        if until == "kernel":
            return timing
        out = await member.first_output(timing.kernel_id)
        lap("output")
        if "42" not in out:
            timing.error = f"unexpected output {out!r}"
    except Exception as exc:
        timing.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        await member.close()
    return timing


@dataclass
class Burst:
    """N members at once, each through the same steps."""

    timings: list[PathTiming]
    wall: float

    @property
    def ok(self) -> list[float]:
        return [t.total for t in self.timings if t.total is not None]

    @property
    def failures(self) -> int:
        return sum(1 for t in self.timings if t.error)


async def sign_in(url: str, names: list[str], password: str) -> list[Member]:
    """Members who have logged in (untimed), for a burst that starts at the spawn."""
    members = [Member(url, n, password) for n in names]
    await asyncio.gather(*(m.login() for m in members))
    return members


async def burst(
    url: str,
    names: list[str],
    password: str,
    until: str,
    signed_in: list[Member] | None = None,
    on_start: Callable[[], Awaitable[None]] | None = None,
) -> Burst:
    """N members at once, from signed out, or from ``signed_in`` (:func:`sign_in`).

    Signed in, the burst measures what the platform does with N starts (the goal
    in issue 16 and bench/spawn's figure); from signed out it includes N password
    hashes, which on 2 cores are seconds of CPU on their own. ``on_start`` runs
    just before the clock starts (the profile's first sample).
    """
    members: list[Member | None] = list(signed_in) if signed_in else [None] * len(names)
    if on_start is not None:
        await on_start()
    start = time.monotonic()
    timings = await asyncio.gather(
        *(member_path(url, n, password, until, m) for n, m in zip(names, members, strict=True))
    )
    return Burst(list(timings), time.monotonic() - start)


async def stop_servers(url: str, admin_token: str, names: list[str], timeout: float = 180) -> None:
    headers = {"Authorization": f"token {admin_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        await asyncio.gather(*(http.delete(f"/hub/api/users/{quote(n)}/server") for n in names))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            models = await asyncio.gather(*(http.get(f"/hub/api/users/{quote(n)}") for n in names))
            if all(not m.json().get("servers") for m in models):
                return
            await asyncio.sleep(0.25)


def first_output_table(runs: list[tuple[str, list[PathTiming]]]) -> str:
    """The one-member-at-a-time table, one row per platform, with a ratio vs stock.

    ``runs``: (platform, timings) pairs. The ratio is stock's total p50 over the
    row's (higher: faster than stock); "—" without a stock run that succeeded.
    """
    lines = [
        "| platform | users | "
        + " | ".join(f"{s} p50 s" for s in STEPS)
        + " | total p50 s | total max s | failures | total p50 vs stock |",
        "| --- | --- | " + " | ".join("---" for _ in STEPS) + " | --- | --- | --- | --- |",
    ]

    def totals(timings: list[PathTiming]) -> list[float]:
        return [t.total for t in timings if t.total is not None]

    stock = next((totals(t) for p, t in runs if p == "stock"), [])
    stock_p50 = quantile(stock, 0.5)
    for platform, timings in runs:
        ok = [t for t in timings if not t.error]
        mine = totals(ok)
        steps = [_fmt(quantile([t.steps[s] for t in ok if s in t.steps], 0.5)) for s in STEPS]
        p50 = quantile(mine, 0.5)
        vs = f"{stock_p50 / p50:.1f}x" if stock_p50 and p50 else "—"
        lines.append(
            f"| {platform} | {len(timings)} | {' | '.join(steps)} | {_fmt(p50)} "
            f"| {_fmt(quantile(mine, 1.0))} | {len(timings) - len(ok)} | {vs} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
