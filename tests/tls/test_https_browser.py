"""A person logs in over HTTPS (ACME certificate from Pebble) in headless Chromium.

Chromium trusts Pebble's issuing CA through ``--ignore-certificate-errors-spki-list``
(the SPKI hash of Pebble's intermediate, which the server sends in its chain), and
only that: the same browser without the flag refuses the page.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, login
from tests.support.platform import free_port, labfleet
from tests.tls.conftest import HttpsPlatform, acme_config
from tests.tls.pebble import Pebble


def _spki_hash(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _intermediate(pebble: Pebble) -> bytes:
    ctx = ssl.create_default_context(cafile=str(pebble.listener_ca))
    resp = httpx.get(f"{pebble.management}/intermediates/0", verify=ctx, timeout=10)
    resp.raise_for_status()
    return resp.content


def test_login_over_https_with_pebbles_ca_trusted(
    tmp_path: Path,
    pebble_factory: Callable[..., Pebble],
    https_platform: Callable[[str], HttpsPlatform],
) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing"
    http_port = free_port()
    pebble = pebble_factory(http_port)
    platform = https_platform(acme_config(pebble, http_port))
    name = "httpsuser"
    added = labfleet(
        "users", "add", name, "--password-stdin", input=PASSWORD + "\n", data_dir=platform.data_dir
    )
    assert added.returncode == 0, added.stderr
    platform.start()
    trust = f"--ignore-certificate-errors-spki-list={_spki_hash(_intermediate(pebble))}"

    with sync_playwright() as driver:
        untrusting = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = untrusting.new_page()
            with pytest.raises(PlaywrightError, match="ERR_CERT"):
                page.goto(f"{platform.url}/hub/login")
        finally:
            untrusting.close()

        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, trust]
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            # typed as http://: the redirect listener sends the browser to https
            page.goto(f"http://localhost:{http_port}/hub/login")
            assert page.url.startswith(f"https://localhost:{platform.port}/hub/login")
            login(page, platform.url, name, next_url="/hub/home")
            page.wait_for_url(f"{platform.url}/hub/home", timeout=60_000)
            assert page.locator("#start").count() == 1 or name in page.content()
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert any(c.get("secure") for c in cookies.values()), cookies
        finally:
            browser.close()
