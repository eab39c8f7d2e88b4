"""Pebble, Let's Encrypt's test ACME server (Debian package ``pebble``), on loopback.

Real validation: ``PEBBLE_VA_ALWAYS_VALID`` stays unset, so Pebble really
fetches ``http://<domain>:<http_port>/.well-known/acme-challenge/<token>``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.platform import free_port

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for Pebble's own https listener (Pebble ships none in Debian)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pebble-cert.pem", directory / "pebble-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Pebble:
    directory: str
    management: str
    listener_ca: Path  # trust this to talk to Pebble's ACME API
    proc: subprocess.Popen[bytes]
    log_path: Path

    def root_ca(self) -> bytes:
        """The CA that signs issued certificates (changes with every Pebble start)."""
        resp = httpx.get(
            f"{self.management}/roots/0",
            verify=ssl.create_default_context(cafile=str(self.listener_ca)),
            timeout=10,
        )
        resp.raise_for_status()
        return resp.content

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_pebble(work: Path, http_port: int, validity_s: int | None = None) -> Pebble:
    work.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(work)
    port, mgmt = free_port(), free_port()
    conf = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{mgmt}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    if validity_s is not None:
        conf["pebble"]["certificateValidityPeriod"] = validity_s
    conf_path = work / "pebble-config.json"
    conf_path.write_text(json.dumps(conf))
    env = {k: v for k, v in os.environ.items() if k != "PEBBLE_VA_ALWAYS_VALID"}
    env.update({"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
    log_path = work / "pebble.log"
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([PEBBLE, "-config", str(conf_path)], stdout=log, stderr=log, env=env)
    pebble = Pebble(
        f"https://127.0.0.1:{port}/dir", f"https://127.0.0.1:{mgmt}", cert, proc, log_path
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pebble exited: {log_path.read_text()}")
        try:
            httpx.get(
                pebble.directory, verify=ssl.create_default_context(cafile=str(cert)), timeout=2
            ).raise_for_status()
            return pebble
        except httpx.HTTPError:
            time.sleep(0.1)
    pebble.stop()
    raise RuntimeError(f"pebble did not answer: {log_path.read_text()}")
