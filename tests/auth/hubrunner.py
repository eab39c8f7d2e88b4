"""Start a real JupyterHub process for auth and policy tests, configured from a settings dict.

The settings are the same shape :func:`labfleet.auth.settings.build_auth_settings`
returns (``{"Class": {"trait": value}}``), so tests exercise the real
translation. The hub listens on a random loopback port; tests talk to it
directly (``/hub/login``, ``/hub/api``) through :class:`RoutelessProxy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent

_CONFIG = """
import json, pathlib
_settings = json.loads(pathlib.Path(__file__).with_name("settings.json").read_text())
for _section, _values in _settings.items():
    for _key, _value in _values.items():
        setattr(getattr(c, _section), _key, _value)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningHub:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    api_token: str

    @property
    def hub(self) -> str:
        return f"{self.url}/hub"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self) -> httpx.Client:
        """A client authenticated as the test service (admin scopes)."""
        return httpx.Client(
            base_url=f"{self.hub}/api",
            headers={"Authorization": f"token {self.api_token}"},
            timeout=30,
        )


def merge(*parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for section, values in part.items():
            merged.setdefault(section, {}).update(values)
    return merged


@contextlib.contextmanager
def run_hub(
    tmp: Path,
    settings: dict[str, dict[str, Any]],
    env: dict[str, str] | None = None,
    timeout: float = 90,
    python_path: list[Path] | None = None,
) -> Iterator[RunningHub]:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = secrets.token_hex(24)
    base = {
        "JupyterHub": {
            "hub_ip": "127.0.0.1",
            "hub_port": port,
            "ip": "127.0.0.1",
            "port": free_port(),
            "proxy_class": "routeless_proxy.RoutelessProxy",
            "db_url": f"sqlite:///{tmp / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(tmp / "cookie_secret"),
            "pid_file": str(tmp / "hub.pid"),
            "services": [{"name": "labfleet-test", "api_token": token}],
            "load_roles": [
                {
                    "name": "labfleet-test-admin",
                    "scopes": [
                        "admin:users",
                        "admin:servers",
                        "admin:groups",
                        "admin:auth_state",
                        "admin-ui",
                    ],
                    "services": ["labfleet-test"],
                }
            ],
            "cleanup_servers": True,
        },
        "Spawner": {"cmd": [sys.executable, "-c", "raise SystemExit('no spawner configured')"]},
    }
    (tmp / "settings.json").write_text(json.dumps(merge(base, settings)))
    (tmp / "jupyterhub_config.py").write_text(_CONFIG)
    log_path = tmp / "hub.log"
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), *map(str, python_path or []), os.environ.get("PYTHONPATH", "")]
        ),
        **(env or {}),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(tmp / "jupyterhub_config.py")],
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )
    hub = RunningHub(
        url=f"http://127.0.0.1:{port}",
        data_dir=tmp,
        process=process,
        log_path=log_path,
        api_token=token,
    )
    try:
        _wait_healthy(hub, timeout)
        yield hub
    finally:
        _stop(process)


def _wait_healthy(hub: RunningHub, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise RuntimeError(f"hub exited with {hub.process.returncode}:\n{hub.log()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{hub.hub}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"hub did not become healthy:\n{hub.log()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def xsrf_from(html: str) -> str:
    marker = 'name="_xsrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def login_form(
    client: httpx.Client, username: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Sign in through JupyterHub's own form, as a browser would (GET for _xsrf, then POST)."""
    page = client.get("/hub/login", headers=headers)
    page.raise_for_status()
    return client.post(
        "/hub/login",
        data={"username": username, "password": password, "_xsrf": xsrf_from(page.text)},
        headers=headers,
    )
