"""The two platforms of the user-path bench, started the same way each time.

* **labfleet**: ``labfleet up`` (fork-server launcher, password accounts at
  production scrypt cost, labfleet's proxy); members get accounts written
  straight into the account store.
* **stock**: JupyterHub 6 + ``SimpleLocalProcessSpawner`` + Node CHP +
  ``DummyAuthenticator`` (``bench/support/stock_hub.py``); any name signs in, so its
  login row is the hub without a hash.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
for extra in (REPO, REPO / "src"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bench.support import stock_hub  # noqa: E402
from tests.support.platform import Platform  # noqa: E402

from labfleet.auth.accounts import AccountStore  # noqa: E402
from labfleet.runtime import Runtime  # noqa: E402

ADMIN = "benchadmin"
PASSWORD = "bench-password-" + os.urandom(6).hex()
TIMEOUT = 300


@dataclass
class Running:
    name: str
    url: str
    stop: Callable[[], object]
    add_members: Callable[[list[str]], None]
    #: restart only the hub; returns when the new hub process exists
    restart_hub: Callable[[], None]
    log: Path | None
    hub_pid: Callable[[], int | None]


def admin_token(url: str) -> str:
    return stock_hub.admin_token(url, ADMIN, PASSWORD)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def start_labfleet(work: Path, hash_niceness: int | None = None) -> Running:
    config = work / "labfleet.yaml"
    extra = "JupyterHub: {concurrent_spawn_limit: 200}"
    if hash_niceness is not None:  # inherited by labfleet up → the hub → its hash pool
        os.environ["LABFLEET_HASH_NICENESS"] = str(hash_niceness)
    config.write_text(
        "culling: {enabled: false}\n"
        f"servers: {{start_timeout: {TIMEOUT}, http_timeout: {TIMEOUT}}}\n"
        f"hub: {{extra_config: {{{extra}}}}}\n"
    )
    data = work / "data"
    stock_hub.add_labfleet_admin(data, ADMIN, PASSWORD)
    platform = Platform(data_dir=data, config=config).start(timeout=180)
    store = AccountStore(Runtime(data_dir=data).accounts_db)

    def add_members(names: list[str]) -> None:
        for name in names:
            if not store.exists(name):
                store.add(name, PASSWORD)

    def restart_hub() -> None:
        assert platform.proc is not None
        old = _read_pid(data / "state" / "jupyterhub.pid")
        os.kill(platform.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pid = _read_pid(data / "state" / "jupyterhub.pid")
            if pid and pid != old:
                return
            time.sleep(0.005)
        raise TimeoutError("no new hub after SIGHUP")

    return Running(
        "labfleet",
        platform.url,
        platform.stop,
        add_members,
        restart_hub,
        platform.log_path,
        lambda: _read_pid(data / "state" / "jupyterhub.pid"),
    )


def start_stock(work: Path) -> Running:
    hub = stock_hub.start_stock(work, ADMIN, TIMEOUT)

    def restart_hub() -> None:
        hub.stop()  # stock stops its servers with the hub (cleanup_servers); CHP stays
        hub.start_process()

    return Running(
        "stock",
        hub.url,
        hub.stop,
        lambda names: None,
        restart_hub,
        hub.log_path,
        lambda: hub.proc.pid if hub.proc else None,
    )


def wait_healthy(url: str, timeout: float = 300) -> float:
    """Seconds until ``/hub/health`` answers 200 (polled every 10 ms)."""
    start = time.monotonic()
    deadline = start + timeout
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/hub/health").status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise TimeoutError("hub not healthy")
