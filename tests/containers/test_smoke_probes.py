"""The code ``labfleet smoke`` runs in a user's kernel, run here against real sockets.

No container engine is needed: the probe code is plain Python, executed by a real
interpreter against a listening socket, a closed port and an HTTP server that refuses.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from labfleet.config.load import parse_text
from labfleet.kube.smoke.plan import (
    Outcome,
    Probe,
    boundary_probes,
    judge,
    parse_probe_output,
    probe_code,
    smoke_names,
)


class _Refuse(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def refusing_http() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_probe_code_tells_reachable_from_unreachable_and_refused(refusing_http: int) -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    try:
        probes = [
            Probe("metadata", "the cloud metadata server", "tcp", f"127.0.0.1:{_closed_port()}"),
            Probe(
                "neighbour",
                "another user's server",
                "tcp",
                listening.getsockname()[0] + ":" + str(listening.getsockname()[1]),
            ),
            Probe(
                "hub-api",
                "the hub API without a token",
                "http",
                f"http://127.0.0.1:{refusing_http}/hub/api/users",
            ),
            Probe(
                "proxy-api",
                "the proxy's REST API",
                "http",
                f"http://127.0.0.1:{refusing_http}/api/routes",
            ),
        ]
        ran = subprocess.run(
            [sys.executable, "-c", probe_code(probes)],
            text=True,
            capture_output=True,
            timeout=60,
            check=True,
        )
    finally:
        listening.close()
    answers = parse_probe_output("some other output\n" + ran.stdout)
    assert answers["metadata"].startswith("unreachable: ConnectionRefusedError")
    assert answers["neighbour"] == "connected"
    assert answers["hub-api"] == answers["proxy-api"] == "HTTP 403"
    verdicts = {p.key: judge(p, answers[p.key])[0] for p in probes}
    # a refusing hub is fine; anything else a user's pod can reach is a failure
    assert verdicts == {
        "metadata": Outcome.OK,
        "neighbour": Outcome.FAIL,
        "hub-api": Outcome.OK,
        "proxy-api": Outcome.FAIL,
    }


def test_probes_name_the_in_cluster_services_of_the_fleet() -> None:
    config = parse_text("name: lab\nkubernetes:\n  namespace: team\nhub:\n  base_url: /jh/\n")
    names = smoke_names(config, "abc123")
    assert (names.user, names.neighbour) == ("smoke-abc123", "smoke-abc123-b")
    targets = {p.key: p.target for p in boundary_probes(names, "10.1.2.3")}
    assert targets == {
        "metadata": "169.254.169.254:80",
        "neighbour": "10.1.2.3:8888",
        "proxy-api": "http://lab-proxy-api.team.svc:8001/api/routes",
        "hub-api": "http://lab-hub.team.svc:8081/jh/hub/api/users",
    }
    assert "neighbour" not in {p.key for p in boundary_probes(names, None)}
