"""Generic OIDC and Google sign-in against LocalOpenIDProvider (a real authlib provider).

Over real HTTP with cookies: hub → provider login form → hub callback.
Covers verified e-mail, hosted domain (hd), groups → admin/allow, domain
allow rule, wrong state, and that no code or token reaches the log.
"""

from __future__ import annotations

import re

import httpx
import pytest
from hubrunner import RunningHub
from oidc_provider import CLIENT_SECRET, LocalOpenIDProvider

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The .grant. parameter will become mandatory"),
]


def sign_in(hub: RunningHub, provider: LocalOpenIDProvider, account: str) -> httpx.Response:
    """The browser's steps, with the hub's cookies kept; returns the callback's response."""
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        start = client.get("/hub/oauth_login")
        assert start.status_code == 302
        authorize_url = start.headers["location"]
        assert authorize_url.startswith(f"{provider.url}/authorize")
        with httpx.Client(timeout=30) as at_provider:
            assert at_provider.get(authorize_url).status_code == 200  # the login form
            consent = at_provider.post(authorize_url, data={"username": account})
        assert consent.status_code == 302, consent.text
        callback = client.get(consent.headers["location"])
        callback.extensions["signed_in"] = "jupyterhub-session-id" in client.cookies
        return callback


def _user(hub: RunningHub, name: str) -> dict[str, object]:
    with hub.api() as api:
        response = api.get(f"/users/{name}")
        response.raise_for_status()
        return dict(response.json())


# -- generic OIDC -------------------------------------------------------------


def test_oidc_verified_domain_user_signs_in(
    oidc_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    callback = sign_in(oidc_hub, provider, "alice")
    assert callback.status_code == 302 and callback.extensions["signed_in"]
    user = _user(oidc_hub, "alice@corp.example")
    assert user["groups"] == ["staff"]
    assert user["admin"] is False


def test_oidc_unverified_email_is_refused(
    oidc_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    callback = sign_in(oidc_hub, provider, "eve")
    assert callback.status_code == 403
    assert "not verified" in callback.text
    assert not callback.extensions["signed_in"]


def test_oidc_admin_group(oidc_hub: RunningHub, provider: LocalOpenIDProvider) -> None:
    assert sign_in(oidc_hub, provider, "dan").status_code == 302
    assert _user(oidc_hub, "dan@corp.example")["admin"] is True


def test_oidc_allowed_group_from_another_domain(
    oidc_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    assert sign_in(oidc_hub, provider, "pat").status_code == 302


def test_oidc_outsider_is_refused(oidc_hub: RunningHub, provider: LocalOpenIDProvider) -> None:
    callback = sign_in(oidc_hub, provider, "zed")
    assert callback.status_code == 403
    assert not callback.extensions["signed_in"]


def test_oidc_hostile_email_is_refused(oidc_hub: RunningHub, provider: LocalOpenIDProvider) -> None:
    assert sign_in(oidc_hub, provider, "hostile").status_code == 403


def test_oidc_wrong_state_is_refused(oidc_hub: RunningHub, provider: LocalOpenIDProvider) -> None:
    with httpx.Client(base_url=oidc_hub.url, timeout=30) as client:
        start = client.get("/hub/oauth_login")
        with httpx.Client(timeout=30) as at_provider:
            consent = at_provider.post(start.headers["location"], data={"username": "alice"})
        forged = re.sub(r"state=[^&]+", "state=forged", consent.headers["location"])
        response = client.get(forged)
        assert response.status_code == 400
        assert "jupyterhub-session-id" not in client.cookies


def test_oidc_redirect_uri_must_match(oidc_hub: RunningHub, provider: LocalOpenIDProvider) -> None:
    with httpx.Client(base_url=oidc_hub.url, timeout=30) as client:
        start = client.get("/hub/oauth_login")
    evil = re.sub(
        r"redirect_uri=[^&]+",
        "redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
        start.headers["location"],
    )
    with httpx.Client(timeout=30) as at_provider:
        response = at_provider.post(evil, data={"username": "alice"})
    assert response.status_code == 400
    assert "evil.example" not in response.headers.get("location", "")


# -- Google --------------------------------------------------------------------


def test_google_workspace_user_signs_in(
    google_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    callback = sign_in(google_hub, provider, "alice")
    assert callback.status_code == 302 and callback.extensions["signed_in"]
    assert _user(google_hub, "alice@corp.example")["name"] == "alice@corp.example"


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        ("bob", "Workspace domain"),  # email in corp.example, but no hd claim
        ("carol", "Workspace domain"),  # hd of another domain
        ("eve", "not verified"),
    ],
)
def test_google_refusals_hold_even_with_allow_all(
    google_hub: RunningHub, provider: LocalOpenIDProvider, account: str, reason: str
) -> None:
    callback = sign_in(google_hub, provider, account)
    assert callback.status_code == 403
    assert reason in callback.text
    assert not callback.extensions["signed_in"]


def test_logs_hold_no_codes_or_tokens(
    oidc_hub: RunningHub, google_hub: RunningHub, provider: LocalOpenIDProvider
) -> None:
    for hub in (oidc_hub, google_hub):
        log = hub.log()
        assert CLIENT_SECRET not in log
        assert not re.search(r"code=(?!\[secret\])[A-Za-z0-9]", log)
        for token in provider.tokens:
            assert token not in log
