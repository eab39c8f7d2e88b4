"""ACME against Pebble through the real ``labfleet up``: issue, serve, renew, fail loudly."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable

import httpx

from tests.support.platform import free_port, labfleet
from tests.tls.conftest import HttpsPlatform, acme_config, served_certificate
from tests.tls.pebble import Pebble


def test_issue_serve_redirect_status_and_renew(
    pebble_factory: Callable[..., Pebble], https_platform: Callable[[str], HttpsPlatform]
) -> None:
    http_port = free_port()
    pebble = pebble_factory(http_port, validity_s=30)  # short-lived: renewed at ~20 s
    platform = https_platform(acme_config(pebble, http_port)).start()
    root = pebble.root_ca()

    # served over https, and the chain verifies against Pebble's CA (not self-signed)
    with httpx.Client(verify=_ctx(root), timeout=10) as client:
        resp = client.get(f"{platform.url}/hub/health")
        assert resp.status_code == 200
        login = client.get(f"{platform.url}/hub/login")
        assert login.headers["strict-transport-security"] == "max-age=31536000"
    first = served_certificate(platform.port, root)
    assert "Pebble" in first.issuer.rfc4514_string()

    # plain HTTP on http_port: a redirect to https, except the challenge path
    plain = httpx.get(f"http://localhost:{http_port}/hub/login?next=%2F", timeout=5)
    assert plain.status_code == 301
    assert plain.headers["location"] == f"https://localhost:{platform.port}/hub/login?next=%2F"
    unknown = httpx.get(f"http://localhost:{http_port}/.well-known/acme-challenge/nope", timeout=5)
    assert unknown.status_code == 404

    # the account key and the certificate files are private
    tls_dir = platform.data_dir / "tls"
    for name in ("account.key", "privkey.pem", "fullchain.pem"):
        assert stat.S_IMODE((tls_dir / name).stat().st_mode) == 0o600, name

    # labfleet status names issuer, names and expiry
    out = labfleet(
        "status", "--local", "-c", str(platform.config), data_dir=platform.data_dir
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("https certificate:"))
    assert "Pebble Intermediate CA" in line and "names localhost" in line and "expires" in line

    # renewal before expiry: a new certificate is served without a restart
    deadline = time.monotonic() + 90
    renewed = first
    while time.monotonic() < deadline and renewed.serial_number == first.serial_number:
        time.sleep(1)
        renewed = served_certificate(platform.port, root)
    assert renewed.serial_number != first.serial_number, platform.log()[-4000:]
    assert renewed.not_valid_after_utc > first.not_valid_after_utc
    assert "renewed the certificate" in platform.log()


def test_challenge_that_cannot_be_answered_stops_up_with_the_servers_reason(
    pebble_factory: Callable[..., Pebble], https_platform: Callable[[str], HttpsPlatform]
) -> None:
    http_port = free_port()
    pebble = pebble_factory(free_port())  # Pebble validates on a port nobody listens on
    platform = https_platform(acme_config(pebble, http_port))
    try:
        platform.start(timeout=60)
        raise AssertionError("labfleet up started without a certificate")
    except RuntimeError as exc:
        message = str(exc)
    assert "exited 1" in message
    assert "could not get a certificate" in message
    # Pebble's own words: the connection to the challenge port was refused
    assert "connection refused" in message.lower(), message
    assert "urn:ietf:params:acme:error:connection" in message
    assert not (platform.data_dir / "tls" / "fullchain.pem").exists()  # no fallback cert


def _ctx(root_pem: bytes) -> object:
    import ssl

    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=root_pem.decode())
    return ctx
