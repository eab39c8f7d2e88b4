"""The interface contract: with ``auth.kind: iap``, ``labfleet up`` authenticates every
browser request from the header alone (no login form), through labfleet's own proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jwt_keys import AUDIENCE, SigningKey, jwks_document
from tests.support.platform import Platform

pytestmark = pytest.mark.integration

HEADER = "x-goog-iap-jwt-assertion"
KEY = SigningKey("up-key")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("iap-up")
    jwks = tmp / "jwks.json"
    jwks.write_bytes(jwks_document(KEY))
    config = tmp / "labfleet.yaml"
    config.write_text(
        "auth:\n"
        "  kind: iap\n"
        f"  iap: {{audience: '{AUDIENCE}', jwks: '{jwks}'}}\n"
        "  allowed_domains: [a.com]\n"
        "  admin_users: [boss@a.com]\n"
    )
    running = Platform(data_dir=tmp / "data", config=config).start()
    try:
        yield running
    finally:
        running.stop()


def _home(
    platform: Platform, email: str | None, client: httpx.Client | None = None
) -> httpx.Response:
    headers = {HEADER: KEY.token(email)} if email else {}
    if client is None:
        return httpx.get(f"{platform.url}/hub/home", headers=headers, follow_redirects=True)
    return client.get(f"{platform.url}/hub/home", headers=headers, follow_redirects=True)


def test_header_alone_signs_in_through_the_proxy(platform: Platform) -> None:
    response = _home(platform, "carol@a.com")
    assert response.status_code == 200
    assert "carol@a.com" in response.text
    assert 'name="password"' not in response.text


def test_refusals_through_the_proxy(platform: Platform) -> None:
    assert _home(platform, None).status_code == 401
    assert _home(platform, "mallory@evil.com").status_code == 403
    forged = SigningKey("up-key").token("carol@a.com")
    assert httpx.get(f"{platform.url}/hub/home", headers={HEADER: forged}).status_code in (
        302,
        401,
    )
    assert (
        httpx.get(
            f"{platform.url}/hub/home", headers={HEADER: forged}, follow_redirects=True
        ).status_code
        == 401
    )


def test_every_request_is_checked(platform: Platform) -> None:
    with httpx.Client(timeout=30) as browser:
        assert _home(platform, "carol@a.com", browser).status_code == 200
        assert _home(platform, None, browser).status_code == 401  # cookie alone is not enough
        switched = _home(platform, "dave@a.com", browser)
        assert switched.status_code == 200 and "dave@a.com" in switched.text


def test_no_initial_admin_password_and_no_tokens_logged(platform: Platform) -> None:
    log = platform.log()
    assert platform.admin_password() is None  # no password accounts with IAP
    assert "eyJ" not in log
    assert not Path(platform.data_dir / "accounts.sqlite").exists()
