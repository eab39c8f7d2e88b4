"""``tls: {cert, key}``: served on --port, and a rotated pair is picked up live."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from tests.support.platform import labfleet
from tests.tls.certs import PrivateCA
from tests.tls.conftest import HttpsPlatform, served_certificate


def _expiry_gauge(platform: HttpsPlatform) -> float:
    prom = platform.data_dir / "state" / "metrics" / "labfleet_tls.prom"
    for line in prom.read_text().splitlines():
        if line.startswith("labfleet_tls_certificate_expiry_timestamp_seconds "):
            return float(line.split()[1])
    raise AssertionError(prom.read_text())


def _request(tls: ssl.SSLSocket) -> bytes:
    """One keep-alive GET on an open connection; returns the status line."""
    tls.sendall(b"GET /hub/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, "the proxy closed the open connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += tls.recv(65536)
    return head.split(b"\r\n", 1)[0]


def test_rotated_files_are_served_without_dropping_an_open_connection(
    tmp_path: Path, https_platform: Callable[[str], HttpsPlatform]
) -> None:
    ca = PrivateCA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    old = ca.issue(cert, key)
    config = f"tls:\n  cert: {cert}\n  key: {key}\n  reload_interval: 0.5\n"
    platform = https_platform(config).start()

    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    raw = socket.create_connection(("127.0.0.1", platform.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as kept:
        assert _request(kept) == b"HTTP/1.1 200 OK"
        assert served_certificate(platform.port, ca.pem).serial_number == old.serial_number

        new = ca.issue(cert, key)
        deadline = time.monotonic() + 30
        seen = old
        while time.monotonic() < deadline and seen.serial_number != new.serial_number:
            assert _request(kept) == b"HTTP/1.1 200 OK"  # keeps the connection busy
            time.sleep(0.3)
            seen = served_certificate(platform.port, ca.pem)
        assert seen.serial_number == new.serial_number, platform.log()[-3000:]
        # the connection opened before the rotation still works, on its old certificate
        assert _request(kept) == b"HTTP/1.1 200 OK"
        peer = kept.getpeercert(binary_form=True)
        assert peer is not None
        assert x509.load_der_x509_certificate(peer).serial_number == old.serial_number
    # Issue 15: the expiry gauge and `status --json` follow the served certificate
    deadline = time.monotonic() + 30
    while _expiry_gauge(platform) != new.not_valid_after_utc.timestamp():
        assert time.monotonic() < deadline, _expiry_gauge(platform)
        time.sleep(0.3)
    status = labfleet("status", "--json", data_dir=platform.data_dir)
    assert status.returncode == 0, status.stderr
    certificate = json.loads(status.stdout)["certificate"]
    assert certificate["not_after"] == new.not_valid_after_utc.isoformat()
    assert "localhost" in certificate["names"]


def test_missing_cert_file_is_a_plain_error(
    tmp_path: Path, https_platform: Callable[[str], HttpsPlatform]
) -> None:
    config = f"tls:\n  cert: {tmp_path / 'no-cert.pem'}\n  key: {tmp_path / 'no-key.pem'}\n"
    platform = https_platform(config)
    try:
        platform.start(timeout=30)
        raise AssertionError("started without its certificate")
    except RuntimeError as exc:
        assert "HTTPS cannot start" in str(exc) and "no-cert.pem does not exist" in str(exc)
