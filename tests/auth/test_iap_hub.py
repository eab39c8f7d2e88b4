"""A real JupyterHub with IapAuthenticator: every request is authenticated from the header.

Tokens are signed by P-256 keys the test generates and publishes as a JWKS
on a loopback HTTP server (the production default is Google's JWKS URL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from hubrunner import RunningHub, merge, run_hub
from jwt_keys import AUDIENCE, JwksServer, SigningKey, unsigned_token

from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

pytestmark = pytest.mark.integration

HEADER = "x-goog-iap-jwt-assertion"
KEY = SigningKey("key-1")
ROTATED = SigningKey("key-2")
IMPOSTOR = SigningKey("key-1")  # same kid, different key


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer(KEY).running() as server:
        yield server


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, jwks: JwksServer) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("iap-hub")
    auth = AuthSection.model_validate(
        {
            "kind": "iap",
            "iap": {"audience": AUDIENCE, "jwks": jwks.url, "leeway": 30},
            "allowed_domains": ["a.com"],
            "allowed_users": ["alice@b.com"],
            "admin_users": ["boss@a.com"],
        }
    )
    settings = build_auth_settings(auth, Runtime(data_dir=tmp))
    # No refresh rate limit here, so key rotation is observable without waiting;
    # the limit itself is unit-tested in test_iap_unit.py.
    fast = {
        "IapAuthenticator": {"jwks_min_refresh": 0},
        "JupyterHub": {"default_url": "/hub/home"},  # sign-in does not spawn here
    }
    with run_hub(tmp / "hub", merge(settings, fast)) as running:
        yield running


def _get(hub: RunningHub, path: str, token: str | None, **kwargs: object) -> httpx.Response:
    headers = {HEADER: token} if token else {}
    return httpx.get(f"{hub.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_valid_assertion_signs_in_without_a_form(hub: RunningHub) -> None:
    with httpx.Client(base_url=hub.url, headers={HEADER: KEY.token("carol@a.com")}) as client:
        home = client.get("/hub/home", follow_redirects=True)
        assert home.status_code == 200
        assert "carol@a.com" in home.text
        assert 'name="password"' not in client.get("/hub/login", follow_redirects=True).text


def test_domains_do_not_collide(hub: RunningHub) -> None:
    for email in ("alice@a.com", "alice@b.com"):
        response = _get(hub, "/hub/login", KEY.token(email))
        assert response.status_code == 302
    with hub.api() as api:
        names = {user["name"] for user in api.get("/users").json()}
    assert {"alice@a.com", "alice@b.com"} <= names
    assert "alice" not in names


def test_admin_users_are_admins(hub: RunningHub) -> None:
    assert _get(hub, "/hub/login", KEY.token("Boss@A.com")).status_code == 302
    with hub.api() as api:
        assert api.get("/users/boss@a.com").json()["admin"] is True
        assert api.get("/users/carol@a.com").json()["admin"] is False


@pytest.mark.parametrize(
    ("case", "token", "status"),
    [
        ("missing header", None, 401),
        ("alg none", unsigned_token("carol@a.com", "key-1"), 401),
        ("wrong key", IMPOSTOR.token("carol@a.com"), 401),
        ("unknown kid", SigningKey("nope").token("carol@a.com"), 401),
        (
            "wrong audience",
            KEY.token("carol@a.com", aud="/projects/1/global/backendServices/2"),
            401,
        ),
        ("wrong issuer", KEY.token("carol@a.com", iss="https://evil.example"), 401),
        ("expired", KEY.token("carol@a.com", exp=int(time.time()) - 120), 401),
        ("from the future", KEY.token("carol@a.com", iat=int(time.time()) + 3600), 401),
        ("no email", KEY.token(None), 401),
        ("garbage", "not.a.jwt", 401),
        ("domain not allowed", KEY.token("mallory@evil.com"), 403),
        ("user not allowed", KEY.token("bob@b.com"), 403),
        ("hostile local part", KEY.token("../x@a.com"), 403),
    ],
)
def test_refusals(hub: RunningHub, case: str, token: str | None, status: int) -> None:
    response = _get(hub, "/hub/login", token)
    assert response.status_code == status, case
    assert "jupyterhub-session-id" not in response.cookies


def test_unsigned_identity_headers_are_ignored(hub: RunningHub) -> None:
    headers = {
        "x-goog-authenticated-user-email": "accounts.google.com:boss@a.com",
        "x-goog-authenticated-user-id": "accounts.google.com:1",
        "X-Forwarded-User": "boss@a.com",
        "REMOTE_USER": "boss@a.com",
    }
    assert httpx.get(f"{hub.url}/hub/login", headers=headers, timeout=30).status_code == 401


def test_two_assertion_headers_are_refused(hub: RunningHub) -> None:
    headers = [(HEADER, KEY.token("carol@a.com")), (HEADER, KEY.token("boss@a.com"))]
    response = httpx.get(f"{hub.url}/hub/login", headers=headers, timeout=30)
    assert response.status_code == 401


def test_cookie_without_header_is_not_enough(hub: RunningHub) -> None:
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        client.get("/hub/login", headers={HEADER: KEY.token("carol@a.com")})
        assert "jupyterhub-session-id" in client.cookies
        response = client.get("/hub/home", follow_redirects=True)
        assert response.status_code == 401


def test_identity_change_switches_the_user(hub: RunningHub) -> None:
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        client.get("/hub/login", headers={HEADER: KEY.token("carol@a.com")})
        home = client.get(
            "/hub/home", headers={HEADER: KEY.token("alice@b.com")}, follow_redirects=True
        )
        assert home.status_code == 200
        assert "alice@b.com" in home.text
        assert "carol@a.com" not in home.text


def test_rotated_key_is_fetched_on_unknown_kid(hub: RunningHub, jwks: JwksServer) -> None:
    assert _get(hub, "/hub/login", ROTATED.token("carol@a.com")).status_code == 401
    jwks.publish(KEY, ROTATED)
    before = jwks.requests
    assert _get(hub, "/hub/login", ROTATED.token("carol@a.com")).status_code == 302
    assert jwks.requests == before + 1
    assert _get(hub, "/hub/login", KEY.token("carol@a.com")).status_code == 302
    assert jwks.requests == before + 1  # cached


def test_log_has_reasons_but_no_tokens(hub: RunningHub) -> None:
    log = hub.log()
    assert "IAP sign-in refused" in log
    assert "wrong audience" in log
    assert "eyJ" not in log
    assert "Failed to get current user" not in log  # refresh_user ends sessions cleanly


def test_500_header_dump_has_no_token(hub: RunningHub) -> None:
    """JupyterHub logs all request headers on a 500; the assertion must come out redacted.

    The test hub's spawner cannot start servers (no system user), so /hub/spawn is a 500.
    """
    token = KEY.token("carol@a.com")
    with httpx.Client(base_url=hub.url, headers={HEADER: token}, timeout=30) as client:
        client.get("/hub/login")
        assert client.get("/hub/spawn").status_code == 500
    deadline = time.monotonic() + 15  # the access log line is written after the response
    while "500 GET /hub/spawn (carol@a.com" not in (log := hub.log()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert '"X-Goog-Iap-Jwt-Assertion": "[secret]"' in log
    assert token not in log
