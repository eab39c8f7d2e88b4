"""The servers' tuning arguments reach jupyter_server as the Tornado settings they mean."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from jupyter_server.serverapp import ServerApp
from tornado.testing import AsyncHTTPTestCase
from tornado.web import Application, RequestHandler

from labfleet.kube.smoke.hubapi import execute_request
from labfleet.spawn.server_tuning import TORNADO_SETTINGS, server_args
from tests.support.platform import free_port
from tests.support.sockets import peer_socket_option


@pytest.fixture
def app() -> ServerApp:
    ServerApp.clear_instance()
    made = ServerApp()
    made.parse_command_line(server_args())
    return made


def test_the_arguments_set_compression_on_a_real_server_app(app: ServerApp) -> None:
    assert app.tornado_settings == TORNADO_SETTINGS
    assert app.tornado_settings["compress_response"]  # a true value as Tornado reads it


class _Script(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/javascript")
        self.write("console.log('jupyterlab');\n" * 2000)


class CompressedResponses(AsyncHTTPTestCase):
    """Tornado with exactly the settings the servers get: scripts go out gzipped."""

    def get_app(self) -> Application:
        return Application([("/static/main.js", _Script)], **TORNADO_SETTINGS)  # type: ignore[arg-type]

    def test_scripts_are_gzipped_for_clients_that_accept_it(self) -> None:
        resp = self.fetch(
            "/static/main.js", headers={"Accept-Encoding": "gzip"}, decompress_response=False
        )
        assert resp.headers.get("Content-Encoding") == "gzip"
        body = gzip.decompress(resp.body)
        assert body.startswith(b"console.log") and len(resp.body) < len(body) / 4

    def test_clients_without_gzip_get_plain_bytes(self) -> None:
        resp = self.fetch("/static/main.js", decompress_response=False)
        assert "Content-Encoding" not in resp.headers


def _page_config(html: str) -> dict[str, object]:
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, html[:2000]
    return dict(json.loads(found.group(1)))


@contextlib.contextmanager
def _real_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, dict[str, str]]]:
    """A real ``jupyter-server`` with the spawner's arguments: (process, base URL, headers)."""
    port, token = free_port(), "not-a-secret"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    argv = [
        str(Path(sys.prefix) / "bin" / "jupyter-server"),
        f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={tmp_path}",
        f"--IdentityProvider.token={token}",
        *server_args(kernel_preload=False),
        *(["--allow-root"] if os.getuid() == 0 else []),
    ]
    headers = {"Authorization": f"token {token}"}
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/api/status", headers=headers, timeout=10).is_success:
                    break
            time.sleep(0.2)
        yield process, base, headers
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_members_jupyterlab_page_has_no_build_check(tmp_path: Path) -> None:
    """A real server with the spawner's arguments: JupyterLab is told not to ask for a
    rebuild, so no page load makes the server run ``node`` (``spawn.lab_settings``), and
    its extension manager installs nothing."""
    with _real_server(tmp_path) as (_, base, headers):
        resp = httpx.get(base + "/lab", headers=headers, timeout=30)
        assert resp.status_code == 200
        config = _page_config(resp.text)
        assert config["buildCheck"] is False
        assert config["buildAvailable"] is False
        # the read-only extension manager: members cannot install into a shared environment
        manager = config["extensionManager"]
        assert isinstance(manager, dict)
        assert manager["name"] == "read-only" and manager["can_install"] is False


async def _kernel_websocket_nodelay(pid: int, base: str, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(headers=headers, timeout=120) as http:
        resp = await http.post(base + "/api/kernels", json={})
        resp.raise_for_status()
        kernel_id = resp.json()["id"]
    url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    request = execute_request("print(6 * 7)", "test")
    async with websockets.connect(url, additional_headers=headers, open_timeout=120) as ws:
        await ws.send(json.dumps(request))
        while True:  # a reply: the server's open() (where the option is set) has run
            msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
            mine = msg.get("parent_header", {}).get("msg_id") == request["header"]["msg_id"]
            if mine and msg.get("msg_type") == "execute_reply":
                break
        ours = ws.transport.get_extra_info("sockname")[:2]
        return peer_socket_option(pid, ours, socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_kernel_websockets_send_without_nagles_delay(tmp_path: Path) -> None:
    """TCP_NODELAY on the server's end of a kernel websocket (``spawn.kernel_nodelay``).

    Without it each output frame behind an unacknowledged one waited for the
    client's delayed ACK: a ``print`` took ~45 ms instead of ~4.
    """
    with _real_server(tmp_path) as (process, base, headers):
        assert asyncio.run(_kernel_websocket_nodelay(process.pid, base, headers)) == 1
