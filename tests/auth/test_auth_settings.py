"""build_auth_settings: the pure AuthSection → traitlets translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

RUNTIME = Runtime(data_dir=Path("/srv/labfleet"))


def test_password_is_the_default() -> None:
    settings = build_auth_settings(AuthSection(), RUNTIME)
    assert settings["JupyterHub"]["authenticator_class"] == (
        "labfleet.auth.password.PasswordAuthenticator"
    )
    assert settings["Authenticator"]["allow_all"] is False
    assert settings["PasswordAuthenticator"]["accounts_db"] == "/srv/labfleet/accounts.sqlite"
    assert settings["PasswordAuthenticator"]["max_failures"] == 5


def test_lists_are_normalised() -> None:
    auth = AuthSection.model_validate({"admin_users": ["Alice"], "allowed_users": ["BOB", "bob"]})
    settings = build_auth_settings(auth, RUNTIME)
    assert settings["Authenticator"]["admin_users"] == ["alice"]
    assert settings["Authenticator"]["allowed_users"] == ["bob"]


def test_dummy_allows_all_only_without_an_allow_list() -> None:
    demo = build_auth_settings(AuthSection.model_validate({"kind": "dummy"}), RUNTIME)
    assert demo["JupyterHub"]["authenticator_class"] == "labfleet.auth.dummy.DemoAuthenticator"
    assert demo["Authenticator"]["allow_all"] is True
    restricted = build_auth_settings(
        AuthSection.model_validate(
            {"kind": "dummy", "allowed_users": ["ann"], "dummy": {"password": "pw"}}
        ),
        RUNTIME,
    )
    assert restricted["Authenticator"]["allow_all"] is False
    assert restricted["DemoAuthenticator"]["shared_password"] == "pw"


def _auth(data: dict[str, object]) -> AuthSection:
    return AuthSection.model_validate(data)


IAP = {"kind": "iap", "iap": {"audience": "/projects/1/global/backendServices/2"}}
GITHUB = {"kind": "github", "github": {"client_id": "id", "client_secret": "env:GH"}}
GOOGLE = {"kind": "google", "google": {"client_id": "id", "client_secret": "file:/run/s"}}
OIDC = {
    "kind": "oidc",
    "oidc": {"issuer": "https://idp.example", "client_id": "id", "client_secret": "x"},
}


@pytest.mark.parametrize("base", [IAP, GITHUB, GOOGLE, OIDC])
def test_every_non_demo_kind_needs_an_explicit_allow_rule(base: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="explicit allow rule"):
        _auth(base)
    assert _auth({**base, "allow_all": True}).allow_all
    if base is GOOGLE:  # the hd restriction stays meaningful with allow_all
        assert _auth({**base, "allow_all": True, "allowed_domains": ["a.com"]}).allow_all
    assert _auth({**base, "allowed_users": ["ann"]}).allowed_users == ["ann"]


def test_iap_settings() -> None:
    auth = _auth({**IAP, "allowed_domains": ["Example.org"], "admin_users": ["Boss@Example.org"]})
    settings = build_auth_settings(auth, RUNTIME)
    assert settings["JupyterHub"]["authenticator_class"] == "labfleet.auth.iap.IapAuthenticator"
    assert settings["Authenticator"]["auto_login"] is True
    assert settings["Authenticator"]["admin_users"] == ["boss@example.org"]
    iap = settings["IapAuthenticator"]
    assert iap["audience"] == "/projects/1/global/backendServices/2"
    assert iap["allowed_domains"] == ["example.org"]
    assert iap["jwks"].startswith("https://www.gstatic.com/")


def test_github_settings() -> None:
    auth = _auth(
        {
            **GITHUB,
            "github": {
                **GITHUB["github"],  # type: ignore[dict-item]
                "url": "https://ghe.example",
                "allowed_organizations": ["Acme", "acme:ML"],
                "denied_organizations": ["evil"],
                "uid_from_id": True,
            },
            "admin_groups": ["acme:admins"],
        }
    )
    settings = build_auth_settings(auth, RUNTIME)
    github = settings["GitHubAuthenticator"]
    assert github["client_secret"] == "env:GH"  # resolved inside the hub, not here
    assert github["github_url"] == "https://ghe.example"
    assert github["allowed_organizations"] == ["acme", "acme:ml"]
    assert github["manage_groups"] is True and github["admin_groups"] == ["acme:admins"]
    assert list(github).index("manage_groups") < list(github).index("admin_groups")
    assert settings["Authenticator"]["enable_auth_state"] is True


def test_google_and_oidc_settings() -> None:
    google = build_auth_settings(_auth({**GOOGLE, "allowed_domains": ["corp.example"]}), RUNTIME)
    assert google["GoogleAuthenticator"]["hosted_domain"] == ["corp.example"]
    assert google["GoogleAuthenticator"]["strip_domain"] is False
    oidc_auth = _auth(
        {**OIDC, "oidc": {**OIDC["oidc"], "groups_claim": "groups"}, "allowed_groups": ["staff"]}  # type: ignore[dict-item]
    )
    oidc = build_auth_settings(oidc_auth, RUNTIME)["OidcAuthenticator"]
    assert oidc["auth_state_groups_key"] == "oauth_user.groups"
    assert oidc["allowed_groups"] == ["staff"] and oidc["manage_groups"] is True
    assert "authorize_url" not in oidc  # discovered from the issuer


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "iap", "allow_all": True}, "audience"),
        ({"kind": "github", "allow_all": True}, "client_id"),
        ({**OIDC, "oidc": {"client_id": "a", "client_secret": "b"}, "allow_all": True}, "issuer"),
        ({"kind": "password", "allowed_domains": ["a.com"]}, "allowed_domains"),
        ({"kind": "iap", "iap": {"audience": "x"}, "allowed_groups": ["g"]}, "allowed_groups"),
        ({**IAP, "allowed_domains": ["not a domain"]}, "domain"),
        ({**GITHUB, "github": {**GITHUB["github"], "allowed_organizations": ["a b"]}}, "org"),  # type: ignore[dict-item]
        (
            {**GOOGLE, "google": {**GOOGLE["google"], "strip_domain": True}, "allow_all": True},
            "strip_domain",
        ),  # type: ignore[dict-item]
        ({**IAP, "iap": {"audience": "x", "leeway": 3600}, "allow_all": True}, "leeway"),
        ({**IAP, "typo": 1}, "typo"),
        ({**OIDC, "allowed_groups": ["staff"]}, "groups_claim"),
        (
            {
                **GITHUB,
                "github": {**GITHUB["github"], "teams_as_groups": False},
                "admin_groups": ["a"],
                "allowed_users": ["x"],
            },
            "teams_as_groups",
        ),  # type: ignore[dict-item]
        ({**IAP, "allow_all": True, "allowed_domains": ["a.com"]}, "no effect"),
        ({**OIDC, "allow_all": True, "allowed_users": ["ann"]}, "no effect"),
        (
            {
                **GITHUB,
                "github": {**GITHUB["github"], "allowed_organizations": ["acme"]},
                "allow_all": True,
            },
            "no effect",
        ),  # type: ignore[dict-item]
    ],
)
def test_config_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _auth(data)


def test_github_extra_scopes_are_typed() -> None:
    """Issue 13: LSST's setup pushes with the sign-in token, which needs ``public_repo``."""
    github = {**GITHUB["github"], "allowed_organizations": ["lsst"]}  # type: ignore[dict-item]
    auth = _auth({**GITHUB, "github": {**github, "extra_scopes": ["public_repo", "public_repo"]}})
    scope = build_auth_settings(auth, RUNTIME)["GitHubAuthenticator"]["scope"]
    assert scope == ["read:user", "user:email", "read:org", "public_repo"]
    with pytest.raises(ValueError, match="public_repos"):
        _auth({**GITHUB, "github": {**github, "extra_scopes": ["public_repos"]}})
