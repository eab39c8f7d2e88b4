"""Process-level behaviour: flags, TLS, graceful shutdown, several workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import TOKEN, Backend, Proxy, free_port


def _metric(p: Proxy, name: str) -> float:
    text = httpx.get(p.api_url + "/metrics", headers={"Authorization": f"token {TOKEN}"}).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing")


def test_every_flag_jupyterhub_passes_plus_unknown_ones(
    tmp_path: Path, backends: dict[str, Backend]
) -> None:
    """The command line JupyterHub builds, CHP-only extras, and a flag nobody has."""
    pid_file = tmp_path / "proxy.pid"
    metrics_port = free_port()
    p = Proxy(
        "--metrics-ip",
        "127.0.0.1",
        "--metrics-port",
        str(metrics_port),
        "--error-target",
        backends["hub"].url + "/hub/error",
        "--log-level",
        "debug",
        "--timeout",
        "60000",
        "--proxy-timeout",
        "60000",
        "--keep-alive-timeout",
        "5000",
        "--pid-file",
        str(pid_file),
        "--custom-header",
        "X-Test: yes",
        "--ssl-protocol",
        "TLSv1_2",
        "--redirect-port",
        "0",
        "--auto-rewrite",
        "--no-such-flag",
        "value",
    )
    try:
        p.add("/user/alice", backends["alice"].url)
        r = httpx.get(p.url + "/user/alice/x")
        assert ["X-Test", "yes"] in r.json()["headers"]
        assert pid_file.read_text() == str(p.proc.pid)
        # --metrics-port serves /metrics without a token (CHP's metrics server), nothing else
        r = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert r.status_code == 200 and "labfleet_proxy_requests_total" in r.text
        r = httpx.get(f"http://127.0.0.1:{metrics_port}/api/routes")
        assert r.status_code == 403
    finally:
        err = p.stop()
    assert "--no-such-flag" in err
    assert TOKEN not in err  # the token is never logged


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1 (cryptography, no openssl CLI)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def test_tls_on_public_and_api_side(tmp_path: Path, backends: dict[str, Backend]) -> None:
    key, cert = _self_signed(tmp_path)
    p = Proxy("--ssl-key", key, "--ssl-cert", cert, "--api-ssl-key", key, "--api-ssl-cert", cert)
    try:
        r = httpx.post(
            f"https://127.0.0.1:{p.api_port}/api/routes/user/alice",
            json={"target": backends["alice"].url},
            headers={"Authorization": f"token {TOKEN}"},
            verify=ssl.create_default_context(cafile=cert),
        )
        assert r.status_code == 201
        r = httpx.get(
            f"https://127.0.0.1:{p.port}/user/alice/tls",
            verify=ssl.create_default_context(cafile=cert),
        )
        headers = dict((k.lower(), v) for k, v in r.json()["headers"])
        assert headers["x-forwarded-proto"] == "https"
    finally:
        p.stop()


def test_graceful_shutdown_finishes_in_flight(backends: dict[str, Backend]) -> None:
    bob = backends["bob"]
    p = Proxy()
    p.add("/user/bob", bob.url)
    result: dict[str, object] = {}

    def held() -> None:
        r = httpx.get(p.url + "/user/bob/hold", timeout=60)
        result["status"] = r.status_code
        result["body"] = r.json()

    t = threading.Thread(target=held)
    t.start()
    deadline = time.monotonic() + 60
    while _metric(p, "labfleet_proxy_upstream_connections") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p.proc.send_signal(signal.SIGTERM)
    # the listener closes at once: new connections are refused
    while True:
        try:
            with socket.create_connection(("127.0.0.1", p.port), timeout=1):
                pass
        except OSError:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert p.proc.poll() is None  # still serving the held request
    httpx.get(bob.url + "/release")
    t.join(30)
    assert result == {"status": 200, "body": {"server": "bob", "held": True}}
    assert p.proc.wait(30) == 0


@pytest.fixture
def worker_proxy(backends: dict[str, Backend]):  # type: ignore[no-untyped-def]
    p = Proxy("--workers", "2")
    yield p
    p.stop()
    assert p.proc.returncode in (0, -signal.SIGKILL)  # SIGTERM: workers drained, clean exit


def _workers_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def test_workers_share_routes_and_activity(
    worker_proxy: Proxy, backends: dict[str, Backend]
) -> None:
    p = worker_proxy
    assert len(_workers_of(p.proc.pid)) == 2
    p.add("/", backends["hub"].url)
    p.add("/user/alice", backends["alice"].url)
    # route updates reach every worker; many fresh connections spread over both
    deadline = time.monotonic() + 60
    while True:
        answers = [httpx.get(p.url + "/user/alice/w").status_code for _ in range(20)]
        if answers == [200] * 20:
            break
        assert time.monotonic() < deadline
    before = p.api("GET", "/user/alice").json()["last_activity"]
    time.sleep(0.01)
    httpx.get(p.url + "/user/alice/again")
    while p.api("GET", "/user/alice").json()["last_activity"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # counters arrive with each worker's next report (about once a second)
    while _metric(p, "labfleet_proxy_requests_total") < 21:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    p.api("DELETE", "/user/alice")
    while True:  # the removal reaches every worker too
        answers = [httpx.get(p.url + "/user/alice/w").json()["server"] for _ in range(10)]
        if answers == ["hub"] * 10:
            break
        assert time.monotonic() < deadline


def test_workers_exit_when_supervisor_is_killed(worker_proxy: Proxy) -> None:
    p = worker_proxy
    workers = _workers_of(p.proc.pid)
    assert len(workers) == 2
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait()
    deadline = time.monotonic() + 60
    for pid in workers:
        while Path(f"/proc/{pid}").exists():
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            if state == "Z":
                break
            assert time.monotonic() < deadline, "worker outlived its supervisor"
            time.sleep(0.05)
    with socket.socket() as s:  # nobody is left holding the port
        s.bind(("127.0.0.1", p.port))


def test_worker_restarts_after_crash(worker_proxy: Proxy, backends: dict[str, Backend]) -> None:
    p = worker_proxy
    p.add("/user/bob", backends["bob"].url)
    first = _workers_of(p.proc.pid)
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = _workers_of(p.proc.pid)
        if len(now) == 2 and first[0] not in now:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    while True:  # the new worker got the table
        answers = {json.loads(httpx.get(p.url + "/user/bob/").text)["server"] for _ in range(20)}
        if answers == {"bob"}:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_logs_never_contain_secrets(backends: dict[str, Backend]) -> None:
    """BAD_INPUTS 49: tokens in queries, Authorization and Cookie values stay out of logs."""
    p = Proxy("--log-level", "debug")
    try:
        p.add("/user/dead", "http://127.0.0.1:9")
        p.add("/user/alice", backends["alice"].url)
        secret_headers = {"Authorization": "token SECRET-AUTH-1", "Cookie": "s=SECRET-COOKIE-2"}
        for path in ("/user/dead/api?token=SECRET-QUERY-3", "/user/alice/x?token=SECRET-QUERY-3"):
            httpx.get(p.url + path, headers=secret_headers, timeout=30)
        httpx.get(p.api_url + "/api/routes", headers={"Authorization": "token SECRET-API-4"})
        raw = b"GET /user/al%00ice/?token=SECRET-QUERY-3 HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            s.sendall(raw)
            s.recv(4096)
    finally:
        err = p.stop()
    assert "503 /user/dead/api" in err  # the failure itself is logged...
    for secret in ("SECRET-AUTH-1", "SECRET-COOKIE-2", "SECRET-QUERY-3", "SECRET-API-4", TOKEN):
        assert secret not in err  # ...without any secret


def test_redirect_port_sends_clients_to_https() -> None:
    redirect = free_port()
    p = Proxy("--redirect-port", str(redirect), "--redirect-to", "8443", wait=False)
    try:
        from .conftest import wait_port

        wait_port(redirect, p.proc)
        r = httpx.get(
            f"http://127.0.0.1:{redirect}/user/alice/lab?x=1",
            headers={"Host": "Hub.Example:80"},
        )
        assert r.status_code == 301
        assert r.headers["location"] == "https://hub.example:8443/user/alice/lab?x=1"
        with socket.create_connection(("127.0.0.1", redirect), timeout=10) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nb.example\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 400")
    finally:
        p.stop()


def test_sighup_rolls_workers_without_dropping_requests(worker_proxy: Proxy) -> None:
    """Graceful restart: new workers take over, the old ones finish what they hold."""
    p = worker_proxy
    release = threading.Event()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def handle(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):  # one small request per read on loopback
                if b"/held" in data:
                    release.wait(60)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    p.add("/user/slow", f"http://127.0.0.1:{srv.getsockname()[1]}")
    deadline = time.monotonic() + 60
    while [httpx.get(p.url + "/user/slow/probe").status_code for _ in range(10)] != [200] * 10:
        assert time.monotonic() < deadline  # until every worker has the route
    result: dict[str, object] = {}

    def held() -> None:
        r = httpx.get(p.url + "/user/slow/held", timeout=90)
        result["answer"] = (r.status_code, r.text)

    t = threading.Thread(target=held)
    t.start()
    while _metric(p, "labfleet_proxy_upstream_connections") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    old = set(_workers_of(p.proc.pid))
    p.proc.send_signal(signal.SIGHUP)
    while True:  # two fresh workers are serving
        now = set(_workers_of(p.proc.pid))
        if len(now - old) == 2:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    release.set()
    t.join(60)
    assert result["answer"] == (200, "done")
    for _ in range(10):  # new requests are served throughout
        assert httpx.get(p.url + "/user/slow/after", timeout=30).text == "done"
    while old & set(_workers_of(p.proc.pid)):  # the old workers exit once drained
        assert time.monotonic() < deadline
        time.sleep(0.05)
    srv.close()


def test_sighup_restarts_a_single_process_proxy_gracefully(backends: dict[str, Backend]) -> None:
    """SIGHUP without --workers: a new data-plane process takes the port, the accepted
    in-flight request still finishes here, and the pid JupyterHub watches stays."""
    bob = Backend("bob")  # its own: /hold stays released once released
    p = Proxy()
    result: dict[str, object] = {}
    try:
        p.add("/user/bob", bob.url)
        p.add("/user/alice", backends["alice"].url)

        def held() -> None:
            r = httpx.get(p.url + "/user/bob/hold", timeout=60)
            result["status"] = r.status_code
            result["body"] = r.json()

        t = threading.Thread(target=held)
        t.start()
        deadline = time.monotonic() + 60
        while _metric(p, "labfleet_proxy_upstream_connections") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        p.proc.send_signal(signal.SIGHUP)
        while not _workers_of(p.proc.pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # new connections are served (by either process while the old one drains)
        for _ in range(5):
            assert httpx.get(p.url + "/user/alice/x", timeout=30).json()["server"] == "alice"
        assert "status" not in result  # the held request is still in flight
        httpx.get(bob.url + "/release")
        t.join(30)
        assert result == {"status": 200, "body": {"server": "bob", "held": True}}
        # the API still drives the new data plane
        p.add("/user/late", backends["alice"].url)
        while True:
            r = httpx.get(p.url + "/user/late/x", timeout=30)
            if r.status_code == 200 and r.json()["uri"] == "/user/late/x":
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert p.proc.poll() is None
    finally:
        httpx.get(bob.url + "/release")
        err = p.stop()
        bob.stop()
    assert p.proc.returncode == 0
    assert "SIGHUP ignored" not in err
