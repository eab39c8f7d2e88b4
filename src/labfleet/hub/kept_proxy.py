"""A restarted hub keeps the proxy that is still running instead of replacing it.

JupyterHub's ``ConfigurableHTTPProxy.start`` stops any proxy named in its pid file
(SIGTERM, then a second after a second) and starts a new one with no routes. Under
``labfleet up`` the hub is restarted on its own (``labfleet reload``, a crash) while the
proxy it started keeps running, so that replacement cost every restart ~2-3 s of
sleeps, dropped every member's open connection (kernel websockets included) and left
``/hub/health`` and every server unroutable until the new hub had re-added all routes
(issue 16: 10,000 users and 500 servers back in ≤ 3 s).

Here ``start`` first looks for the proxy of the pid file: alive (pid + start time), run
with the command and ports this hub would use, and answering the routes API with this
hub's token. Then it is kept: the hub's usual route check (``check_routes`` right after
start) adds what is missing and deletes what is stale, without touching the routes that
are right. Anything else (no pid file, another command, a proxy that does not answer)
falls back to JupyterHub's replacement. ``stop`` and the periodic liveness check work on
the kept process as on one the hub started.
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path
from typing import Any

from jupyterhub.objects import Server
from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import PeriodicCallback

from labfleet.spawn.processes import is_alive, start_ticks


class KeptProcess:
    """The part of ``Popen`` JupyterHub's proxy class uses, for a proxy it did not start."""

    def __init__(self, pid: int, ticks: int | None) -> None:
        self.pid, self.ticks = pid, ticks
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not is_alive(self.pid, self.ticks):
            self.returncode = -1  # not our child: its exit status is not ours to read
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def __enter__(self) -> KeptProcess:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def read_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def runs_as_configured(cmdline: list[str], command: list[str], expected: dict[str, str]) -> bool:
    """Whether ``cmdline`` is ``command`` (contiguous: the same binary and options) with
    each ``--option value`` of ``expected`` (ports, TLS files) given as now."""
    n = len(command)
    if not n or not any(cmdline[i : i + n] == command for i in range(len(cmdline) - n + 1)):
        return False
    pairs = dict(itertools.pairwise(cmdline))
    return all(pairs.get(option) == value for option, value in expected.items())


class KeptProxy(ConfigurableHTTPProxy):  # type: ignore[misc]  # untyped base
    """``ConfigurableHTTPProxy`` that keeps a running proxy of the same configuration."""

    def expected_options(self) -> dict[str, str]:
        public, api = Server.from_url(self.public_url), Server.from_url(self.api_url)
        options = {"--port": str(public.port), "--api-port": str(api.port)}
        if self.ssl_key:
            options["--ssl-key"] = self.ssl_key
        if self.ssl_cert:
            options["--ssl-cert"] = self.ssl_cert
        return options

    def running_proxy(self) -> KeptProcess | None:
        """The proxy of the pid file when it is alive and runs as this hub would run it."""
        try:
            pid = int(Path(self.pid_file).read_text().strip())
        except (OSError, ValueError, TypeError):
            return None
        ticks = start_ticks(pid)
        if ticks is None or not runs_as_configured(
            read_cmdline(pid), list(self.command), self.expected_options()
        ):
            return None
        return KeptProcess(pid, ticks)

    async def answers(self) -> bool:
        """The routes API answers this hub's token (so it is the proxy this hub talks to)."""
        request = HTTPRequest(
            self.api_url.rstrip("/") + "/api/routes",
            headers={"Authorization": f"token {self.auth_token}"},
            request_timeout=5,
            connect_timeout=2,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except (HTTPClientError, OSError):
            return False
        return bool(response.code == 200)

    async def start(self) -> Any:
        kept = self.running_proxy()
        if kept is None or not await self.answers():
            self.log.info("No running proxy to keep (%s): starting one", self.pid_file)
            return await super().start()
        self.proxy_process = kept
        self.log.info(
            "Keeping the running proxy (pid %i): its routes and open connections stay", kept.pid
        )
        self._check_running_callback = PeriodicCallback(
            self.check_running, 1e3 * self.check_running_interval
        )
        self._check_running_callback.start()
        return None
