"""build_auth_settings: the pure AuthSection → traitlets translation."""

from __future__ import annotations

from pathlib import Path

from labfleet.auth.settings import build_auth_settings
from labfleet.config.auth import AuthSection
from labfleet.hub.runtime import Runtime

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
