"""Authenticator classes driven directly (JupyterHub's get_authenticated_user, no server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tornado import web

from labfleet.auth.accounts import AccountStore
from labfleet.auth.dummy import DemoAuthenticator
from labfleet.auth.github_identity import (
    IdentityError,
    allowed_by,
    denied_by,
    gids_for,
    git_environment,
    memberships,
    posix_identity,
    uid_for,
)
from labfleet.auth.hashing import ScryptParams
from labfleet.auth.password import LOCKED_OUT_MESSAGE, PasswordAuthenticator
from labfleet.auth.secret_refs import SecretError, resolve_secret


def _login(auth: Any, username: str, password: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = asyncio.run(
        auth.get_authenticated_user(None, {"username": username, "password": password})
    )
    return result


@pytest.fixture
def password_auth(tmp_path: Path) -> PasswordAuthenticator:
    store = AccountStore(tmp_path / "accounts.sqlite", ScryptParams(n=2**10))
    store.add("alice", "password-1", admin=True)
    store.add("bob", "password-1")
    return PasswordAuthenticator(
        accounts_db=str(store.path), scrypt_n=2**10, max_failures=2, lockout=600
    )


def test_password_login_returns_name_and_admin(password_auth: PasswordAuthenticator) -> None:
    assert _login(password_auth, "Alice", "password-1") == {
        "name": "alice",
        "admin": True,
        "auth_state": None,
        "user_info": None,
    }
    bob = _login(password_auth, "BOB", "password-1")
    assert bob is not None and bob["admin"] is False
    assert _login(password_auth, "bob", "wrong") is None


def test_allowed_users_narrow_the_accounts(password_auth: PasswordAuthenticator) -> None:
    password_auth.allowed_users = {"alice"}
    assert _login(password_auth, "alice", "password-1") is not None
    assert _login(password_auth, "bob", "password-1") is None


def test_admin_users_config_grants_admin(password_auth: PasswordAuthenticator) -> None:
    password_auth.admin_users = {"bob"}
    bob = _login(password_auth, "bob", "password-1")
    assert bob is not None and bob["admin"] is True


def test_lockout_raises_429(password_auth: PasswordAuthenticator) -> None:
    _login(password_auth, "bob", "x")
    _login(password_auth, "bob", "x")
    with pytest.raises(web.HTTPError) as info:
        _login(password_auth, "bob", "password-1")
    assert info.value.status_code == 429
    assert info.value.log_message == LOCKED_OUT_MESSAGE


@pytest.mark.parametrize("data", [{}, {"username": "bob"}, {"username": ["bob"], "password": "x"}])
def test_malformed_form_data_fails_quietly(
    password_auth: PasswordAuthenticator, data: dict[str, Any]
) -> None:
    assert asyncio.run(password_auth.get_authenticated_user(None, data)) is None


def test_validate_username_uses_labfleet_rules(password_auth: PasswordAuthenticator) -> None:
    assert password_auth.normalize_username(" ALICE ") == "alice"
    for bad in ["-rf", "a/b", "..", "a\nb", "x" * 10_000]:
        assert not password_auth.validate_username(password_auth.normalize_username(bad))


def test_demo_authenticator_shared_password() -> None:
    demo = DemoAuthenticator(shared_password="letmein", allow_all=True)
    assert _login(demo, "Someone", "letmein") is not None
    assert _login(demo, "someone", "nope") is None
    assert _login(demo, "../x", "letmein") is None


def test_secret_references(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    assert resolve_secret(f"file:{secret_file}") == "s3cret"
    assert resolve_secret("env:LF_X", {"LF_X": "v"}) == "v"
    assert resolve_secret("literal") == "literal"
    with pytest.raises(SecretError, match="LF_MISSING"):
        resolve_secret("env:LF_MISSING", {})
    with pytest.raises(SecretError):
        resolve_secret(f"file:{tmp_path / 'nope'}")


ORGS = [{"login": "Acme", "id": 7001}, {"login": "other", "id": 12}]
TEAMS = [{"slug": "ML", "organization": {"login": "acme", "id": 7001}}]


def test_github_memberships_and_rules() -> None:
    member = memberships(ORGS, TEAMS)
    assert member.groups() == ["acme", "acme:ml", "other"]
    assert denied_by(member, ["evil", "acme:ml"]) == "acme:ml"
    assert denied_by(member, ["evil"]) is None
    assert allowed_by(member, ["ACME"]) == "ACME"
    assert gids_for(member, 0) == [7001]  # 12 is a system gid: skipped
    assert gids_for(member, 10_000) == [10_012, 17_001]


@pytest.mark.parametrize(("github_id", "offset"), [(1, 0), (65534, 0), (2**31, 0), (500, 499)])
def test_unusable_uids_are_refused(github_id: int, offset: int) -> None:
    with pytest.raises(IdentityError):
        uid_for(github_id, offset)


def test_posix_identity_and_git_environment_from_auth_state() -> None:
    state = {
        "access_token": "gho_secret",
        "labfleet": {"uid": 5001, "gids": [7001, 3], "git": {"name": "A", "email": "a@x"}},
    }
    identity = posix_identity(state)
    assert identity is not None and identity.uid == 5001 and identity.gids == (7001,)
    assert posix_identity({}) is None
    with pytest.raises(IdentityError):
        posix_identity({"labfleet": {"uid": 0}})
    env = git_environment(state, "https://github.com/")
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "A"
    assert env["GITHUB_TOKEN"] == "gho_secret"
    assert env["GIT_CONFIG_KEY_0"] == "credential.https://github.com.helper"
    assert "gho_secret" not in env["GIT_CONFIG_VALUE_0"]
