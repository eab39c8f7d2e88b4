"""The real kubectl's ``port-forward service/NAME`` through the API double to a local server.

Real: kubectl (whatever ``kubectl`` is on PATH; scripts/test installs Debian's 1.20), its
SPDY/3.1 streams, the TCP connections at both ends and the HTTP server playing the pod.
Double, named: the Kubernetes API (tests/kube/double), whose ``pods/NAME/portforward``
dials the pod's ``status.podIP`` where a kubelet would dial inside the pod.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labfleet.kube.smoke.access import port_forward
from tests.kube.double import KubeDouble, running_double

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (scripts/test installs it)"
)

#: kubectl 1.31+ tunnels SPDY in a WebSocket unless told not to; 1.20 to 1.30 only speak SPDY.
TRANSPORTS = {"websocket-or-spdy": "true", "spdy": "false"}


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from the pod, you asked for {self.path}\n".encode() * 2000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)[::-1]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pod_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def double(pod_server: int) -> Iterator[KubeDouble]:
    """A Service over one Running pod whose IP (127.0.0.1) and port are the local server's."""
    with running_double() as running:
        store, ns = running.store, "lab"
        store.create(running.kind("v1", "Namespace"), "", {"metadata": {"name": ns}}, "test")
        store.create(
            running.kind("v1", "Service"),
            ns,
            {
                "metadata": {"name": "proxy-public"},
                "spec": {
                    "selector": {"app": "proxy"},
                    "ports": [{"name": "http", "port": 80, "targetPort": pod_server}],
                },
            },
            "test",
        )
        store.create(
            running.kind("v1", "Pod"),
            ns,
            {
                "metadata": {"name": "proxy-0", "labels": {"app": "proxy"}},
                "spec": {
                    "containers": [
                        {
                            "name": "proxy",
                            "image": "proxy:1",
                            "ports": [{"containerPort": pod_server, "name": "http"}],
                        }
                    ]
                },
            },
            "test",
        )
        _wait_running(running, ns, "proxy-0")
        yield running


def _wait_running(double: KubeDouble, ns: str, name: str) -> None:
    import time

    for _ in range(200):
        pod = double.get("v1", "Pod", name, ns)
        if pod is not None and (pod.get("status") or {}).get("phase") == "Running":
            return
        time.sleep(0.05)
    raise AssertionError(f"pod {name} did not become Running in the double")


def _get(url: str, data: bytes | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
        body: bytes = response.read()
        return body


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_kubectl_port_forward_reaches_the_pods_server_through_the_double(
    double: KubeDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("KUBECTL_PORT_FORWARD_WEBSOCKETS", TRANSPORTS[transport])
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig", "lab")
    with port_forward("lab", "proxy-public", str(kubeconfig), None) as path:
        pid = int(re.search(r"pid (\d+)", path.how).group(1))  # type: ignore[union-attr]
        # several connections, one after another and at once, each a new pair of streams
        assert _get(path.url + "a").startswith(b"hello from the pod, you asked for /a\n")
        assert len(_get(path.url + "big")) == 2000 * len(
            b"hello from the pod, you asked for /big\n"
        )
        assert _get(path.url + "echo", b"x" * 100_000 + b"end") == b"dne" + b"x" * 100_000
        results: list[bytes] = []
        threads = [
            threading.Thread(target=lambda i=i: results.append(_get(f"{path.url}{i}")))
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == 4
    # port_forward stopped kubectl by its pid and waited for it
    assert not Path(f"/proc/{pid}").exists() or _zombie_or_gone(pid)
    methods = {m for m, p in double.server.requests if p.endswith("/pods/proxy-0/portforward")}
    # a WebSocket handshake is a GET (kubectl 1.31+ unless told not to); SPDY's is a POST
    tunnelled = transport == "websocket-or-spdy" and _kubectl_minor() >= 31
    assert methods == ({"GET"} if tunnelled else {"POST"}), double.server.requests


def _kubectl_minor() -> int:
    out = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    ).stdout
    return int(re.sub(r"\D", "", json.loads(out)["clientVersion"]["minor"]))


def _zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_port_nothing_listens_on_is_reported_on_the_error_stream(
    double: KubeDouble, tmp_path: Path
) -> None:
    """kubectl prints the double's error text, as it does a kubelet's; the connection ends."""
    store = double.store
    service = store.get(double.kind("v1", "Service"), "lab", "proxy-public")
    closed = _closed_port()
    service["spec"]["ports"][0]["targetPort"] = closed
    store.replace(double.kind("v1", "Service"), "lab", "proxy-public", service, "test")
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig", "lab")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
    process = subprocess.Popen(
        ["kubectl", "port-forward", "-n", "lab", "service/proxy-public", ":80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)", line).group(1)  # type: ignore[union-attr]
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            _get(f"http://127.0.0.1:{port}/")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"error forwarding port {closed} to pod" in output, output


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
