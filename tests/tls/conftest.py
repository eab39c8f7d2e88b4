"""Fixtures for HTTPS tests: Pebble, a platform reached over https, TLS peeking helpers."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.integration.conftest import write_config
from tests.support.platform import Platform, free_port
from tests.tls.pebble import Pebble, start_pebble


@dataclass
class HttpsPlatform(Platform):
    """``labfleet up`` with ``tls:``; health is checked over https without verification
    (the tests verify the chain themselves, against the CA they expect)."""

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def _healthy(self) -> bool:
        try:
            resp = httpx.get(f"{self.url}/hub/health", timeout=2, verify=False)  # noqa: S501
            return resp.status_code == 200
        except httpx.HTTPError:
            return False


def served_certificate(port: int, ca_pem: bytes | None = None) -> x509.Certificate:
    """The leaf the server presents on a fresh handshake (verified when ``ca_pem``)."""
    ctx = ssl.create_default_context()
    if ca_pem is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cadata=ca_pem.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


@pytest.fixture
def pebble_factory(tmp_path: Path) -> Iterator[Callable[..., Pebble]]:
    started: list[Pebble] = []

    def make(http_port: int, validity_s: int | None = None) -> Pebble:
        pebble = start_pebble(tmp_path / f"pebble-{len(started)}", http_port, validity_s)
        started.append(pebble)
        return pebble

    yield make
    for pebble in started:
        pebble.stop()


@pytest.fixture
def https_platform(tmp_path: Path) -> Iterator[Callable[[str], HttpsPlatform]]:
    started: list[HttpsPlatform] = []

    def make(config_text: str) -> HttpsPlatform:
        config = write_config(tmp_path / f"labfleet-{len(started)}.yaml", config_text)
        platform = HttpsPlatform(data_dir=tmp_path / f"data-{len(started)}", config=config)
        started.append(platform)
        return platform

    yield make
    for platform in started:
        platform.stop()


def acme_config(pebble: Pebble, http_port: int, **extra: object) -> str:
    lines = [
        "tls:",
        "  reload_interval: 0.5",
        "  acme:",
        "    email: admin@example.com",
        "    domains: [localhost]",
        f"    directory: {pebble.directory}",
        f"    http_port: {http_port}",
        f"    ca_bundle: {pebble.listener_ca}",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


__all__ = ["HttpsPlatform", "acme_config", "free_port", "served_certificate"]
