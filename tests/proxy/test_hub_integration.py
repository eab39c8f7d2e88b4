"""Real JupyterHub 6 driving labfleet-proxy through its stock ConfigurableHTTPProxy.

One hub, one real single-user server (jupyter-server + ipykernel). Checked:
routes added by the hub, HTTP and kernel websocket traffic through the proxy,
the proxy SIGKILLed while the user's route exists → the hub restarts it and
restores the routes, and the route removed when the server stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import PROXY_BIN, free_port, wait_port

pytestmark = pytest.mark.integration

SERVICE_TOKEN = "hub-test-service-token-0123456789abcdef"
PROXY_TOKEN = "hub-test-proxy-token-0123456789abcdef"

CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.default_url = "/tree"
c.JupyterHub.last_activity_interval = 2
c.ConfigurableHTTPProxy.command = [{proxy_bin!r}]
c.ConfigurableHTTPProxy.api_url = "{api_scheme}://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.check_running_interval = 1
c.ConfigurableHTTPProxy.pid_file = "{tmp}/proxy.pid"
c.JupyterHub.services = [{{"name": "tester", "api_token": "{service_token}"}}]
c.JupyterHub.load_roles = [{{
    "name": "tester",
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"],
    "services": ["tester"],
}}]
c.JupyterHub.internal_ssl = {internal_ssl}
c.JupyterHub.internal_certs_location = "{tmp}/internal-ssl"
"""


class Hub:
    def __init__(self, tmp: Path, *, internal_ssl: bool = False) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.api_port = free_port()
        (tmp / "home").mkdir()
        args = ["--allow-root"] if os.geteuid() == 0 else []
        (tmp / "jupyterhub_config.py").write_text(
            CONFIG.format(
                port=self.port,
                hub_port=free_port(),
                api_port=self.api_port,
                api_scheme="https" if internal_ssl else "http",
                internal_ssl=internal_ssl,
                tmp=tmp,
                args=args,
                proxy_bin=PROXY_BIN,
                singleuser=str(Path(PROXY_BIN).parent / "jupyterhub-singleuser"),
                service_token=SERVICE_TOKEN,
            )
        )
        bindir = str(Path(sys.executable).parent)
        env = dict(
            os.environ,
            CONFIGPROXY_AUTH_TOKEN=PROXY_TOKEN,
            PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
        )
        self.log = open(tmp / "hub.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(tmp / "jupyterhub_config.py")],
            cwd=tmp,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(
            base_url=self.url,
            timeout=60,
            headers={"Authorization": f"token {SERVICE_TOKEN}"},
        )
        wait_port(self.port, self.proc, timeout=120)
        self.wait_for(lambda: self.client.get("/hub/api/").status_code == 200, "hub API")

    def wait_for(self, check: Any, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                pass  # e.g. the pid file is rewritten while the hub restarts the proxy
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyterhub exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; log: {self.read_log()}")
            time.sleep(0.2)

    def proxy_routes(self) -> dict[str, Any]:
        r = httpx.get(
            f"http://127.0.0.1:{self.api_port}/api/routes",
            headers={"Authorization": f"token {PROXY_TOKEN}"},
            timeout=10,
        )
        r.raise_for_status()
        return dict(r.json())

    def proxy_pid(self) -> int:
        return int((self.tmp / "proxy.pid").read_text().strip())

    def read_log(self) -> str:
        self.log.flush()
        return (self.tmp / "hub.log").read_text()[-4000:]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the proxy and user servers too
        self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("hub"))
    yield h
    h.stop()


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _run_code(hub: Hub, user: str, code: str) -> str:
    """Start a kernel and run ``code`` over the kernel websocket, through the proxy."""
    from websockets.sync.client import connect

    r = hub.client.post(f"/user/{user}/api/kernels", json={})
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    url = f"ws://127.0.0.1:{hub.port}/user/{user}/api/kernels/{kernel}/channels"
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": user,
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "buffers": [],
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
    }
    out = []
    with connect(
        url, additional_headers={"Authorization": f"token {SERVICE_TOKEN}"}, open_timeout=60
    ) as ws:
        ws.send(json.dumps(request))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=120))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    hub.client.delete(f"/user/{user}/api/kernels/{kernel}")
    return "".join(out)


def test_hub_drives_labfleet_proxy(hub: Hub) -> None:
    first_pid = hub.proxy_pid()
    assert "labfleet-proxy" in _cmdline(first_pid)

    # the hub's own route, then a user's route when their server starts
    assert "/" in hub.proxy_routes()
    assert hub.client.post("/hub/api/users/alice").status_code in (201, 409)
    r = hub.client.post("/hub/api/users/alice/server")
    assert r.status_code in (201, 202), r.text

    def ready() -> bool:
        user = hub.client.get("/hub/api/users/alice").json()
        server = user.get("servers", {}).get("", {})
        return bool(server.get("ready"))

    hub.wait_for(ready, "alice's server")
    hub.wait_for(lambda: "/user/alice" in hub.proxy_routes(), "alice's route")
    route = hub.proxy_routes()["/user/alice"]
    assert route["jupyterhub"] is True and route["user"] == "alice"

    r = hub.client.get("/user/alice/api/status")
    assert r.status_code == 200 and "kernels" in r.json()

    # kernel traffic over a websocket through the proxy
    assert _run_code(hub, "alice", "print(6 * 7)").strip() == "42"

    # SIGKILL the proxy: the hub notices, starts a new one and restores routes
    os.kill(first_pid, signal.SIGKILL)

    def restarted() -> bool:
        pid = hub.proxy_pid()
        return pid != first_pid and _alive(pid) and "/user/alice" in hub.proxy_routes()

    hub.wait_for(restarted, "the proxy to be restarted with routes restored", timeout=120)
    assert "labfleet-proxy" in _cmdline(hub.proxy_pid())
    hub.wait_for(
        lambda: hub.client.get("/user/alice/api/status").status_code == 200,
        "alice's server through the new proxy",
        timeout=60,
    )

    # stopping the server removes its route
    r = hub.client.delete("/hub/api/users/alice/server")
    assert r.status_code in (202, 204)
    hub.wait_for(lambda: "/user/alice" not in hub.proxy_routes(), "route removal", timeout=120)


def test_hub_with_internal_ssl(tmp_path: Path) -> None:
    """JupyterHub's internal_ssl: --api-ssl-* with client certs required, --client-ssl-*
    to reach the hub over https. The hub reaches our API and we reach the hub."""
    import ssl

    h = Hub(tmp_path, internal_ssl=True)
    try:
        cmdline = _cmdline(h.proxy_pid())
        for flag in ("--api-ssl-request-cert", "--api-ssl-reject-unauthorized", "--client-ssl-key"):
            assert flag in cmdline
        # the hub added its route over mutual TLS, and the proxy reaches the hub over https
        r = h.client.get("/hub/api/")
        assert r.status_code == 200 and "version" in r.json()
        # the API insists on a client certificate from a trusted CA: with the hub's it
        # works, without one the TLS handshake is refused
        certs = tmp_path / "internal-ssl"
        url = f"https://127.0.0.1:{h.api_port}/api/routes"
        auth = {"Authorization": f"token {PROXY_TOKEN}"}
        ctx = ssl.create_default_context(cafile=str(certs / "proxy-api-ca" / "proxy-api-ca.crt"))
        ctx.load_cert_chain(
            str(certs / "hub-internal" / "hub-internal.crt"),
            str(certs / "hub-internal" / "hub-internal.key"),
        )
        assert "/" in httpx.get(url, headers=auth, verify=ctx).json()
        bare = ssl.create_default_context(cafile=str(certs / "proxy-api-ca" / "proxy-api-ca.crt"))
        with pytest.raises((ssl.SSLError, httpx.HTTPError, ConnectionError)):
            httpx.get(url, headers=auth, verify=bare).raise_for_status()
    finally:
        h.stop()
