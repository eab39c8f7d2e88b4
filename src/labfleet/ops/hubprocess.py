"""Find and restart the running hub and proxy of a data directory (``labfleet up``).

Crash-only: ``labfleet up`` is sent SIGHUP, kills the hub without cleanup and starts a
fresh one, which reads the secrets again and finds users' servers still running (a SIGTERM
to the hub would make JupyterHub stop every server first). The proxy, when it must go too,
is stopped first with SIGTERM so the new hub cannot adopt it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from labfleet.runtime import Runtime


class RestartError(Exception):
    pass


def _pid_from(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def hub_pid(runtime: Runtime) -> int | None:
    return _pid_from(runtime.state_dir / "jupyterhub.pid")


def proxy_pid(runtime: Runtime) -> int | None:
    return _pid_from(runtime.state_dir / "proxy.pid")


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _handles_sighup(pid: int) -> bool:
    """Whether ``pid`` catches SIGHUP (bit 1 of SigCgt in /proc/PID/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)))
    except (OSError, ValueError, IndexError):
        pass
    return False


def supervised(pid: int) -> bool:
    """Whether ``labfleet up`` watches this hub (and so restarts it when it exits)."""
    parent = _parent_of(pid)
    if parent is None:
        return False
    try:
        argv = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(a.endswith(b"labfleet") or a == b"labfleet.cli.main" for a in argv) and b"up" in argv


def hub_health_url(runtime: Runtime, base_url: str = "/") -> str:
    try:
        port = int(json.loads((runtime.state_dir / "ports.json").read_text())["hub"])
    except (OSError, ValueError, KeyError) as exc:
        raise RestartError(f"cannot find the hub's port in {runtime.state_dir}: {exc}") from exc
    return f"http://127.0.0.1:{port}{base_url}hub/health"


def public_health_url(pid: int, base_url: str = "/") -> str | None:
    """The address `labfleet up` itself polls (through the proxy), read from the hub's env.

    The supervisor treats a hub that dies before it answers *there* as a failed start and
    gives up, so a restart is over only when this URL answers, not just the hub's own port.
    """
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    port = env.get("LABFLEET_PORT")
    if not port:
        return None
    ip = env.get("LABFLEET_IP", "127.0.0.1")
    host = "127.0.0.1" if ip in ("0.0.0.0", "127.0.0.1", "") else ip  # noqa: S104
    return f"http://{host}:{port}{base_url}hub/health"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own hub
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            raise RestartError(f"process {pid} did not exit")
        time.sleep(0.1)


def restart_hub(
    runtime: Runtime, base_url: str = "/", *, with_proxy: bool = False, timeout: float = 120
) -> bool:
    """Restart a supervised hub (and its proxy); False when no hub runs. Waits until healthy."""
    pid = hub_pid(runtime)
    if pid is None:
        return False
    if not supervised(pid):
        raise RestartError(
            f"the hub (pid {pid}) is not run by `labfleet up`: restart it yourself to apply"
        )
    url = hub_health_url(runtime, base_url)
    if with_proxy:
        proxy = proxy_pid(runtime)
        if proxy is not None:
            os.kill(proxy, signal.SIGTERM)
            _wait_gone(proxy, 30)
    # SIGHUP asks `labfleet up` to restart only the hub (no crash-guard count); it kills the
    # hub without cleanup itself. A supervisor without that handler: kill the hub ourselves.
    parent = _parent_of(pid)
    if parent is not None and _handles_sighup(parent):
        os.kill(parent, signal.SIGHUP)
    else:
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = hub_pid(runtime)
        if new is not None and new != pid and _healthy(url):
            public = public_health_url(new, base_url)
            if public is None or _healthy(public):
                time.sleep(1.5)  # let the supervisor's own poll (every 0.2 s) see it healthy too
                return True
        time.sleep(0.25)
    raise RestartError("the hub did not come back healthy; see the `labfleet up` log")
